//! The guest side of `sandkasten-vm reliability`: real HTTP clients
//! through the shipped `sandkasten-http.socket` while the service is
//! killed, hung, restarted, left idle or starved, each scenario counted
//! into a [`Scenario`]; one JSON [`ReliabilityReport`] on stdout.
//!
//! The clients open a new connection per request (as curl in a loop does),
//! so every request is a fresh test of whether the socket still takes
//! connections. Each waits up to [`CLIENT_TIMEOUT`] for its answer: longer
//! than any recovery, so a request that waits in the socket's backlog
//! while the service comes back counts as answered, late, not as lost.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::systemd::{output, show_one as show, systemctl};
use sandkasten_vm_contract::reference;
use sandkasten_vm_contract::reliability::{ReliabilityReport, Scenario};

const SOCKET: &str = reference::HTTP.socket;
const SERVICE: &str = reference::HTTP.service;
const ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], reference::HTTP.tcp);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
/// How long a client waits for its answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Clients of the steady load.
const CLIENTS: usize = 4;
/// Kills in the crash burst: each as soon as systemd has a new main
/// process, more than the default start limit (5 in 10 s) allows.
const BURST: usize = 12;
/// Connections that send nothing (more than `--max-connections`' 256).
const SILENT: usize = 300;
/// Clients that arrive at once in the flood.
const FLOOD: usize = 320;
/// The idle exit the trickle scenario sets, and its trickle's pauses:
/// around the idle exit, so that requests arrive as the service leaves.
const IDLE_EXIT_SECS: u64 = 2;
const TRICKLE_PAUSES_MS: [u64; 8] = [1900, 2000, 2100, 1800, 2200, 1950, 2050, 2000];
/// A drop-in that sets the trickle's idle exit.
const IDLE_DROPIN: &str = "/run/systemd/system/sandkasten-http.service.d/reliability-idle.conf";

/// One request: when it started and ended, and whether it was answered.
#[derive(Debug, Clone)]
struct Sample {
    start: Instant,
    end: Instant,
    error: Option<String>,
}

/// One scenario, given its name.
type ScenarioFn = fn(&str) -> Result<Scenario, String>;

/// Runs every scenario and prints the report; 0 when they all ran.
pub fn run() -> i32 {
    let mut report = ReliabilityReport {
        release: String::new(),
        // The matrix's own reading of the guest, not a second parser.
        systemd: super::guest_info().systemd,
        image: None,
        scenarios: Vec::new(),
        errors: Vec::new(),
    };
    if let Err(e) = systemctl(&["start", SOCKET]) {
        report.errors.push(e);
    } else {
        let scenarios: [(&str, ScenarioFn); 9] = [
            ("SIGKILL under load", |n| killed(n, "KILL")),
            ("SIGSEGV under load", |n| killed(n, "SEGV")),
            ("SIGABRT under load", |n| killed(n, "ABRT")),
            ("SIGSTOP (hang) under load", |n| killed(n, "STOP")),
            ("crash burst", crash_burst),
            ("systemctl restart under load", restarted),
            ("idle exit under a trickle", idle_trickle),
            ("300 clients that send nothing", silent_clients),
            ("320 clients at once", flood),
        ];
        for (name, scenario) in scenarios {
            eprintln!("reliability: {name}");
            // Each scenario starts from a running service that answers.
            if let Err(e) = answered_once() {
                report.errors.push(format!("before '{name}': {e}"));
                let _ = systemctl(&["reset-failed", SERVICE, SOCKET]);
                let _ = systemctl(&["restart", SOCKET]);
                continue;
            }
            match scenario(name) {
                Ok(s) => {
                    eprintln!(
                        "reliability: {name}: {} sent, {} failed, {} in flight, socket {}",
                        s.sent, s.failed, s.in_flight, s.socket_after
                    );
                    report.scenarios.push(s);
                }
                Err(e) => report.errors.push(format!("{name}: {e}")),
            }
        }
    }
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("reliability: cannot write the report: {e}");
            1
        }
    }
}

/// Signal `signal` to the service's main process under load.
fn killed(name: &str, signal: &str) -> Result<Scenario, String> {
    let load = Load::start(CLIENTS, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(2));
    let pid = main_pid()?.ok_or("the service has no main process")?;
    let mut kills = vec![kill(pid, signal)?];
    let mut note = String::new();
    if signal == "SEGV" {
        // Rust's std handles SIGSEGV to report stack overflows; for a
        // signal that is no fault its handler restores the default action
        // and returns, so a sent SIGSEGV only arms the next one. A real
        // fault runs again under the default and kills: so does a second.
        std::thread::sleep(Duration::from_millis(500));
        if main_pid()? == Some(pid) {
            kills.push(kill(pid, signal)?);
            note = "the first SIGSEGV only reset Rust's handler, the second killed; ".into();
        }
    }
    let mut s = after_kills(name, load, &kills);
    if main_pid()? == Some(pid) {
        return Err(format!("the service survived SIG{signal}"));
    }
    s.note = format!("{note}{} restart(s) by systemd so far", restarts()?);
    Ok(s)
}

/// Kill the service again as soon as it is back, `BURST` times.
fn crash_burst(name: &str) -> Result<Scenario, String> {
    let load = Load::start(2, Duration::ZERO);
    let mut kills = Vec::new();
    let mut last = None;
    for _ in 0..BURST {
        let pid = wait_for_new_main_pid(last, CLIENT_TIMEOUT)?;
        kills.push(kill(pid, "KILL")?);
        last = Some(pid);
    }
    let mut s = after_kills(name, load, &kills);
    s.note = format!("{BURST} kills, {} restart(s) by systemd so far", restarts()?);
    Ok(s)
}

/// The end of a scenario with kills: the load runs until a request sent
/// after the last kill is answered (or times out), and 2 s more; the
/// scenario, with its recovery time from the last kill.
fn after_kills(name: &str, load: Load, kills: &[Kill]) -> Scenario {
    let last = kills.last().expect("one kill at least").end;
    load.wait_for_answer_after(last, CLIENT_TIMEOUT);
    std::thread::sleep(Duration::from_secs(2));
    let samples = load.stop();
    let mut s = scenario(name, &samples, kills);
    s.recovery_s = recovery(&samples, last);
    s
}

/// `systemctl restart` while requests flow: nothing may be lost.
fn restarted(name: &str) -> Result<Scenario, String> {
    let load = Load::start(CLIENTS, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(2));
    let at = Instant::now();
    systemctl(&["restart", SERVICE])?;
    let took = at.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let samples = load.stop();
    let mut s = scenario(name, &samples, &[]);
    s.note = format!("restart took {:.1} s, slowest answer {:.1} s", took.as_secs_f64(), slowest(&samples));
    Ok(s)
}

/// Requests trickle in around the service's idle exit, so some arrive as
/// it leaves: each must be answered, by it or by its successor.
fn idle_trickle(name: &str) -> Result<Scenario, String> {
    let dropin = format!(
        "[Service]\nExecStart=\nExecStart=/usr/libexec/sandkasten/sandkasten-http --root /usr/share/sandkasten/www \
         --idle-exit {IDLE_EXIT_SECS}\n"
    );
    let dir = std::path::Path::new(IDLE_DROPIN).parent().expect("a drop-in has a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(IDLE_DROPIN, dropin).map_err(|e| format!("{IDLE_DROPIN}: {e}"))?;
    let result = (|| {
        systemctl(&["daemon-reload"])?;
        systemctl(&["restart", SERVICE])?;
        let exec = show(SERVICE, "ExecStart")?;
        if !exec.contains(&format!("--idle-exit {IDLE_EXIT_SECS} ")) {
            return Err(format!("the drop-in did not take: ExecStart is {exec}"));
        }
        let mut samples = Vec::new();
        let mut starts = std::collections::BTreeSet::new();
        for pause in TRICKLE_PAUSES_MS.iter().cycle().take(16) {
            samples.push(one_request());
            starts.insert(show(SERVICE, "InvocationID")?);
            std::thread::sleep(Duration::from_millis(*pause));
        }
        let mut s = scenario(name, &samples, &[]);
        s.note = format!(
            "--idle-exit {IDLE_EXIT_SECS}, pauses of 1.8 to 2.2 s: {} service start(s) seen",
            starts.len()
        );
        Ok(s)
    })();
    let _ = std::fs::remove_file(IDLE_DROPIN);
    systemctl(&["daemon-reload"])?;
    systemctl(&["restart", SERVICE])?;
    result
}

/// Connections that send nothing fill every slot: the load must still be
/// answered once the read timeout frees them.
fn silent_clients(name: &str) -> Result<Scenario, String> {
    let address = SocketAddr::from(ADDRESS);
    let silent: Vec<TcpStream> = (0..SILENT).filter_map(|_| TcpStream::connect(address).ok()).collect();
    let held = silent.len();
    let load = Load::start(CLIENTS, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(15));
    let samples = load.stop();
    drop(silent);
    let mut s = scenario(name, &samples, &[]);
    s.note = format!("{held} silent connections held; slowest answer {:.1} s", slowest(&samples));
    Ok(s)
}

/// More clients at once than `--max-connections`: the rest wait in the
/// backlog and are answered.
fn flood(name: &str) -> Result<Scenario, String> {
    let handles: Vec<JoinHandle<Sample>> = (0..FLOOD)
        .map(|_| std::thread::Builder::new().stack_size(64 * 1024).spawn(one_request))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start a client thread: {e}"))?;
    let samples: Vec<Sample> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let mut s = scenario(name, &samples, &[]);
    s.note = format!("slowest answer {:.1} s", slowest(&samples));
    Ok(s)
}

/// Counts `samples` into a scenario; `kills` are when the service was
/// killed: a request that was open at any moment of one may be lost.
fn scenario(name: &str, samples: &[Sample], kills: &[Kill]) -> Scenario {
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.error.is_some()).collect();
    let open_at_a_kill = |s: &Sample| kills.iter().any(|k| s.start <= k.end && s.end >= k.start);
    let in_flight = failed.iter().filter(|s| open_at_a_kill(s)).count();
    let socket_after = show(SOCKET, "ActiveState").unwrap_or_else(|e| format!("unknown ({e})"));
    Scenario {
        name: name.to_owned(),
        sent: samples.len() as u64,
        answered: (samples.len() - failed.len()) as u64,
        failed: failed.len() as u64,
        in_flight: in_flight as u64,
        recovery_s: None,
        socket_after,
        note: String::new(),
        errors: failed
            .iter()
            .filter(|s| !open_at_a_kill(s))
            .filter_map(|s| s.error.clone())
            .take(3)
            .collect(),
    }
}

/// From `at` to the end of the first answered request started after it.
fn recovery(samples: &[Sample], at: Instant) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.error.is_none() && s.start >= at)
        .map(|s| s.end.duration_since(at).as_secs_f64())
        .min_by(f64::total_cmp)
}

fn slowest(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.end.duration_since(s.start).as_secs_f64()).fold(0.0, f64::max)
}

/// Clients sending one request after another, each on a new connection.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (stop, samples) = (stop.clone(), samples.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let sample = one_request();
                        samples.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load { stop, samples, clients }
    }

    /// Waits until a request started after `at` was answered, or `limit`.
    fn wait_for_answer_after(&self, at: Instant, limit: Duration) {
        while at.elapsed() < limit {
            let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            if recovery(&samples, at).is_some() {
                return;
            }
            drop(samples);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the clients after their current request; every sample.
    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            let _ = client.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One request on a new connection.
fn one_request() -> Sample {
    let start = Instant::now();
    let error = exchange().err();
    Sample { start, end: Instant::now(), error }
}

fn exchange() -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(ADDRESS), CLIENT_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.write_all(REQUEST).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("answer: {:?}", String::from_utf8_lossy(&answer[..answer.len().min(40)])))
    }
}

fn answered_once() -> Result<(), String> {
    match one_request().error {
        None => Ok(()),
        Some(e) => Err(format!("a request before the scenario failed: {e}")),
    }
}

fn main_pid() -> Result<Option<u32>, String> {
    let pid: u32 = show(SERVICE, "MainPID")?.parse().map_err(|e| format!("MainPID: {e}"))?;
    Ok((pid != 0).then_some(pid))
}

/// Restarts systemd made of the service since it was loaded.
fn restarts() -> Result<String, String> {
    show(SERVICE, "NRestarts")
}

/// The next main process of the service, as soon as systemd has one.
fn wait_for_new_main_pid(old: Option<u32>, limit: Duration) -> Result<u32, String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(pid) = main_pid()?.filter(|&p| Some(p) != old) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("the service did not come back within {} s", limit.as_secs()))
}

/// When a kill was sent: from before `kill` started to after it returned
/// (under TCG a process start takes tens of milliseconds).
#[derive(Debug, Clone, Copy)]
struct Kill {
    start: Instant,
    end: Instant,
}

fn kill(pid: u32, signal: &str) -> Result<Kill, String> {
    let start = Instant::now();
    output(&["kill", "-s", signal, &pid.to_string()])?;
    Ok(Kill { start, end: Instant::now() })
}
