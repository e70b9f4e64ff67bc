//! The guest side of `sandkasten-vm bench` (the `bench` job):
//! the same `sandkasten-http`, from the installed package, sandboxed and
//! bare, measured in turn; one JSON [`BenchReport`] on stdout.
//!
//! - **sandboxed**: the shipped `sandkasten-http.socket` and `.service`,
//!   unchanged: the reference unit is what a user runs, so it is what is
//!   measured (its `SANDKASTEN_LOCKDOWN=1` included: Landlock and a second
//!   seccomp filter are part of its sandbox).
//! - **bare**: the same binary and content root under
//!   `systemd-socket-activate` as root: the same socket hand-over, no unit,
//!   no sandbox.
//!
//! The test files are written into the content root, as root, before either
//! starts. Throughput comes from `sandkasten-load`'s HTTP client (the
//! library, in this process: the guest has no wrk), every answer checked
//! for status 200 and its length. In each round every scenario runs bare,
//! then sandboxed, so the two share whatever the emulated machine is doing
//! at the time.
//!
//! The cold start is from connect to the first byte of the answer when that
//! connection has to start the server: sandboxed, the service is stopped
//! (the socket still listens) and PID 1 starts it with its namespaces,
//! dynamic user and filters; bare, a fresh `systemd-socket-activate` starts
//! the server on its first connection. Warm is the same request with that
//! server running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sandkasten_load::{http_blocking, Http};

use super::systemd::{show_one as show, systemctl};
use super::CONTENT_DIR;
use sandkasten_vm_contract::bench::{median, BenchReport, Latency, Throughput};
use sandkasten_vm_contract::reference;

const SOCKET: &str = reference::HTTP.socket;
const SERVICE: &str = reference::HTTP.service;
/// The server as installed, and what `systemd-socket-activate` runs bare.
const SERVER: &str = "/usr/libexec/sandkasten/sandkasten-http";
/// The shipped socket's port.
const SANDBOXED_PORT: u16 = reference::HTTP.tcp;
/// The bare server's port for the throughput; each cold round takes a
/// port above it of its own.
const BARE_PORT: u16 = 8080;
/// Connections of each load: enough to keep both vCPUs busy, few enough
/// that a latency under TCG still says something.
const CONCURRENCY: usize = 16;
/// How long any single wait may take (a start under TCG takes about 1 s).
const WAIT: Duration = Duration::from_secs(30);
/// Requests per round whose median is the warm figure.
const WARM_REQUESTS: usize = 5;
/// How long after the cold request the warm ones start.
const WARM_AFTER: Duration = Duration::from_millis(300);

/// The test files: name and size. The 4 MiB file is above the server's
/// in-memory limit: it goes out with `sendfile`, so the sandboxed run also
/// proves that the unit's system-call filter lets that path through.
const FILES: [(&str, u64); 3] =
    [("bench-1k.bin", 1024), ("bench-100k.bin", 100 * 1024), ("bench-4m.bin", 4 * 1024 * 1024)];
/// The file the cold and warm requests get.
const LATENCY_FILE: (&str, u64) = FILES[0];

/// A throughput scenario: name, file, a new connection per request.
struct Scenario {
    name: &'static str,
    file: (&'static str, u64),
    close: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario { name: "1 KiB, keep-alive", file: FILES[0], close: false },
    Scenario { name: "1 KiB, new connection per request", file: FILES[0], close: true },
    Scenario { name: "100 KiB, keep-alive", file: FILES[1], close: false },
    Scenario { name: "4 MiB, keep-alive", file: FILES[2], close: false },
];

/// Measures and prints the report; 0 when it could be written (its errors
/// are the host's to judge).
pub fn run(rounds: usize, duration: f64) -> i32 {
    let info = super::guest_info();
    let mut report = BenchReport {
        release: String::new(),
        systemd: info.systemd,
        kernel: info.kernel,
        accel: String::new(),
        image: None,
        rounds,
        duration_s: duration,
        concurrency: CONCURRENCY,
        throughput: Vec::new(),
        cold: Latency::default(),
        warm: Latency::default(),
        errors: Vec::new(),
        rows: Vec::new(),
    };
    if let Err(e) = measure(&mut report) {
        report.errors.push(e);
    }
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("bench: cannot write the report: {e}");
            1
        }
    }
}

fn measure(report: &mut BenchReport) -> Result<(), String> {
    write_files()?;
    systemctl(&["start", SOCKET])?;
    let bare = Bare::start(BARE_PORT)?;
    // Both answer every file right (and both servers are up) before any
    // figure counts.
    for port in [BARE_PORT, SANDBOXED_PORT] {
        for (name, size) in FILES {
            get(port, name, size).map_err(|e| format!("the check before measuring: {e}"))?;
        }
    }
    report.throughput = SCENARIOS
        .iter()
        .map(|s| Throughput { name: s.name.to_owned(), bare: Vec::new(), sandboxed: Vec::new() })
        .collect();
    for round in 1..=report.rounds {
        for (scenario, samples) in SCENARIOS.iter().zip(&mut report.throughput) {
            for (side, port) in [("bare", BARE_PORT), ("sandboxed", SANDBOXED_PORT)] {
                let args = Http {
                    port,
                    duration: report.duration_s,
                    concurrency: CONCURRENCY,
                    path: format!("/{}", scenario.file.0),
                    close: scenario.close,
                    expect: Some(scenario.file.1),
                };
                let load = http_blocking(&args).map_err(|e| format!("{}, {side}: {e}", scenario.name))?;
                eprintln!(
                    "bench: round {round}/{}: {}, {side}: {:.0} req/s, p99 {:.1} ms, {} errors",
                    report.rounds, scenario.name, load.rate, load.p99_ms, load.errors
                );
                match side {
                    "bare" => samples.bare.push(load),
                    _ => samples.sandboxed.push(load),
                }
            }
        }
    }
    drop(bare);
    for round in 1..=report.rounds {
        let port = BARE_PORT + u16::try_from(round).map_err(|_| "too many rounds")?;
        let (cold, warm) = bare_start(port)?;
        push(&mut report.cold.bare_ms, &mut report.warm.bare_ms, cold, warm);
        let (cold, warm) = sandboxed_start()?;
        push(&mut report.cold.sandboxed_ms, &mut report.warm.sandboxed_ms, cold, warm);
        eprintln!(
            "bench: round {round}/{}: cold start bare {:.1} ms, sandboxed {:.1} ms",
            report.rounds,
            ms(report.cold.bare_ms.last()),
            ms(report.cold.sandboxed_ms.last())
        );
    }
    Ok(())
}

fn push(cold_ms: &mut Vec<f64>, warm_ms: &mut Vec<f64>, cold: Duration, warm: f64) {
    cold_ms.push(cold.as_secs_f64() * 1000.0);
    warm_ms.push(warm);
}

fn ms(value: Option<&f64>) -> f64 {
    value.copied().unwrap_or(f64::NAN)
}

/// The test files in the content root, readable by the service's dynamic
/// user.
fn write_files() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for (name, size) in FILES {
        let path = std::path::Path::new(CONTENT_DIR).join(name);
        let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The sandboxed cold start: the service stopped, its socket listening,
/// one request; then warm.
fn sandboxed_start() -> Result<(Duration, f64), String> {
    systemctl(&["stop", SERVICE])?;
    wait_for(|| Ok(show(SERVICE, "ActiveState")? == "inactive"), "the service to stop")?;
    let socket = show(SOCKET, "ActiveState")?;
    if socket != "active" {
        return Err(format!("the socket is {socket} with its service stopped"));
    }
    let cold = get(SANDBOXED_PORT, LATENCY_FILE.0, LATENCY_FILE.1)?;
    // The connection started it: it was inactive, and runs now.
    let state = show(SERVICE, "ActiveState")?;
    if !super::systemd::running(&state) {
        return Err(format!("the service is {state} after the request that should have started it"));
    }
    Ok((cold, warm(SANDBOXED_PORT)?))
}

/// The bare cold start: a fresh `systemd-socket-activate` on `port`, one
/// request (which starts the server); then warm.
fn bare_start(port: u16) -> Result<(Duration, f64), String> {
    let bare = Bare::start(port)?;
    let cold = get(port, LATENCY_FILE.0, LATENCY_FILE.1)?;
    let warm = warm(port)?;
    drop(bare);
    Ok((cold, warm))
}

/// The median connect-to-first-byte of a few requests to a running server,
/// in milliseconds, once its start has settled: at 50 ms after the cold
/// request (what `scripts/bench` waits on the host) the sandboxed warm
/// figure was still 2 to 6 ms against 1 ms bare, under TCG.
fn warm(port: u16) -> Result<f64, String> {
    std::thread::sleep(WARM_AFTER);
    let mut times = Vec::new();
    for _ in 0..WARM_REQUESTS {
        times.push(get(port, LATENCY_FILE.0, LATENCY_FILE.1)?.as_secs_f64() * 1000.0);
    }
    Ok(median(&times).expect("a few requests"))
}

/// `GET /name` on a new connection: from connect to the answer's first
/// byte. The whole answer must be `200` with a body of `size` bytes.
fn get(port: u16, name: &str, size: u64) -> Result<Duration, String> {
    let what = |e: std::io::Error| format!("GET /{name} on port {port}: {e}");
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), WAIT).map_err(what)?;
    stream.set_read_timeout(Some(WAIT)).map_err(what)?;
    stream.set_write_timeout(Some(WAIT)).map_err(what)?;
    let request = format!("GET /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(what)?;
    let mut answer = vec![0u8];
    stream.read_exact(&mut answer).map_err(what)?;
    let first_byte = started.elapsed();
    stream.read_to_end(&mut answer).map_err(what)?;
    check_answer(&answer, size).map_err(|e| format!("GET /{name} on port {port}: {e}"))?;
    Ok(first_byte)
}

/// Whether `answer` (read to the end of its connection) is a `200` with a
/// body of `size` bytes.
fn check_answer(answer: &[u8], size: u64) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    let status = text.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {status:?}"));
    }
    let body = answer.windows(4).position(|w| w == b"\r\n\r\n").map(|end| answer.len() - end - 4);
    match body {
        Some(len) if len as u64 == size => Ok(()),
        Some(len) => Err(format!("a body of {len} bytes, not {size}")),
        None => Err("no end of the head".into()),
    }
}

/// The bare contender: `systemd-socket-activate` listening for the server,
/// which it starts on the first connection. Killed when dropped.
struct Bare(Child);

impl Bare {
    fn start(port: u16) -> Result<Bare, String> {
        let child = Command::new("systemd-socket-activate")
            .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=http", SERVER, "--root", CONTENT_DIR])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run systemd-socket-activate: {e}"))?;
        let mut bare = Bare(child);
        // Connecting to see whether it listens would start the server:
        // ask the kernel instead.
        wait_for(
            || match bare.0.try_wait() {
                Ok(Some(status)) => Err(format!("systemd-socket-activate exited: {status}")),
                _ => Ok(listening(port)),
            },
            "systemd-socket-activate to listen",
        )?;
        Ok(bare)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether something listens on 127.0.0.1:`port` (`/proc/net/tcp`).
fn listening(port: u16) -> bool {
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| listens_in(&table, port))
}

fn listens_in(table: &str, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
    })
}

/// Polls `done` until it is true, for at most [`WAIT`].
fn wait_for(mut done: impl FnMut() -> Result<bool, String>, what: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if done()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("waited {} s for {what}", WAIT.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_found_by_address_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   \
            1: 0100007F:1F91 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(listens_in(table, 8080));
        assert!(!listens_in(table, 8081), "an established connection is no listener");
        assert!(!listens_in(table, 80));
    }

    #[test]
    fn answers_are_checked_for_status_and_length() {
        assert_eq!(check_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 3), Ok(()));
        assert_eq!(check_answer(b"HTTP/1.1 200 OK\r\n\r\nab", 3), Err("a body of 2 bytes, not 3".to_owned()));
        assert_eq!(
            check_answer(b"HTTP/1.1 404 Not Found\r\n\r\n", 0),
            Err("answered \"HTTP/1.1 404 Not Found\"".to_owned())
        );
    }
}
