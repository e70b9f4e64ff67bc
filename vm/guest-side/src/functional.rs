//! The functional checks, guest side: each reference server must work the
//! way production runs it, or the escape matrix would measure sandboxes
//! around servers that never came up.
//!
//! For every server this checks, through the socket PID 1 holds (no port of
//! the server's own):
//! - it answers: HTTP `GET /` and a `Range:` request, the gopher menu and a
//!   text file, TCP and UDP echo, and the `Accept=yes` echo (one instance per
//!   connection);
//! - it starts only on the first connection: the service is inactive before
//!   it and active after it (socket activation, not a server left running);
//! - its main process runs as a dynamic user (systemd's range 61184-65519,
//!   systemd.exec(5)) in a network namespace of its own (`PrivateNetwork=`),
//!   so the probe later runs in the sandbox the directives describe;
//! - it logs natively to the journal (tracing-journald's records, which carry
//!   a `TARGET` field, over the journal socket bound into the sandbox).
//!
//! The servers are independent, so each one's checks run on a thread of its
//! own (in order within a server: the state before the first connection is
//! read before that connection). Every network operation and every command
//! has a deadline; no check can hang the plan.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::systemd::{self, command, failure, QUERY_TIMEOUT};
use sandkasten_vm_contract::Functional;

/// The sockets the checks go through, started in one `systemctl` call.
use sandkasten_vm_contract::reference::{self, SOCKETS};

/// Connect, each write and each read: at most this long; a whole reply
/// (several reads) at most twice this.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for a connection that starts its service: the answer waits for
/// the cold start (namespaces, dynamic user, seccomp) while the probe passes
/// load the guest. CI saw gopher's first answer take more than 5 s under TCG;
/// a client such as curl waits minutes. The time taken is in the detail.
const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a reply is kept.
const REPLY_CAP: usize = 4000;
/// The longest success detail (the first line of this many bytes).
const DETAIL_OK: usize = 200;
/// The longest excerpt of what was seen in a failure detail.
const DETAIL_FAILED: usize = 300;

/// `systemctl start` of the sockets (their egress guard comes up first).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// `systemctl show` and `list-units`.
/// One `journalctl` read.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the journal gets to show the first native record.
const JOURNAL_WAIT: Duration = Duration::from_secs(5);

/// systemd's dynamic users (systemd.exec(5), `DynamicUser=`).
const DYNAMIC_UIDS: std::ops::RangeInclusive<u32> = 61184..=65519;

/// The `Accept=yes` echo socket: one instance per connection.
const INETD_SOCKET: &str = reference::ECHO_INETD.socket;
/// Where it listens (on 127.0.0.1).
const INETD_PORT: u16 = reference::ECHO_INETD.tcp;
/// The check its echo answers.
const INETD_ECHO: &str = "TCP echo, one instance per connection";

/// The unit whose journal must hold native records.
const JOURNAL_UNIT: &str = reference::HTTP.service;

/// Runs every functional check in the guest (as root, PID 1 systemd),
/// calling `emit` with each result as it is known.
pub fn run(emit: &mut dyn FnMut(Functional)) {
    eprintln!("matrix: functional checks");
    if let Err(error) = systemctl_start(&SOCKETS) {
        // The checks below say which server this leaves without a socket.
        eprintln!("matrix: systemctl start {}: {error}", SOCKETS.join(" "));
    }

    let (tx, rx) = mpsc::channel();
    let jobs = SERVERS.iter().map(Job::Server).chain([Job::Inetd]);
    thread::scope(|scope| {
        for job in jobs {
            let worker = tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("functional {}", job.socket()))
                .spawn_scoped(scope, move || job.run(&worker));
            if spawned.is_err() {
                // No thread to be had: the same checks, one after another.
                job.run(&tx);
            }
        }
        drop(tx);
        for result in rx {
            emit(result);
        }
    });

    emit(journal_check());
}

/// A server reached through a socket that starts one long-running service.
struct Server {
    /// The socket unit (the label of the request checks).
    socket: &'static str,
    /// The service it starts on the first connection.
    service: &'static str,
    /// What is asked of it, in order.
    requests: &'static [Request],
}

/// One request and what its reply must contain.
struct Request {
    /// The check's name.
    name: &'static str,
    /// What the reply must contain.
    needle: &'static str,
    /// How it is asked.
    exchange: Exchange,
}

/// One exchange with a server on 127.0.0.1.
#[derive(Clone, Copy)]
enum Exchange {
    /// A TCP connection: send, then read the reply.
    Tcp { port: u16, send: &'static str, reply: Reply },
    /// One datagram out, one back.
    Udp { port: u16, send: &'static str },
}

/// How much of a TCP reply to wait for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reply {
    /// Until the server closes (or [`REPLY_CAP`] bytes).
    ToEnd,
    /// The first line, without its newline.
    Line,
}

/// The echo socket's datagram port.
const ECHO_UDP: u16 = match reference::ECHO.udp {
    Some(port) => port,
    None => panic!("the echo socket listens for datagrams"),
};

/// The servers with one long-running service each, in the order checked.
static SERVERS: [Server; 3] = [
    Server {
        socket: reference::HTTP.socket,
        service: reference::HTTP.service,
        requests: &[
            Request {
                name: "GET /",
                needle: "Served from a sandbox",
                exchange: Exchange::Tcp {
                    port: reference::HTTP.tcp,
                    send: "GET / HTTP/1.0\r\n\r\n",
                    reply: Reply::ToEnd,
                },
            },
            Request {
                name: "GET with Range: bytes=0-9",
                needle: "206 Partial Content",
                exchange: Exchange::Tcp {
                    port: reference::HTTP.tcp,
                    send: "GET /index.html HTTP/1.0\r\nRange: bytes=0-9\r\n\r\n",
                    reply: Reply::ToEnd,
                },
            },
        ],
    },
    Server {
        socket: reference::GOPHER.socket,
        service: reference::GOPHER.service,
        requests: &[
            Request {
                name: "menu",
                needle: "Welcome to sandkasten-gopher",
                exchange: Exchange::Tcp { port: reference::GOPHER.tcp, send: "\r\n", reply: Reply::ToEnd },
            },
            Request {
                name: "text file",
                needle: "Why socket activation?",
                exchange: Exchange::Tcp {
                    port: reference::GOPHER.tcp,
                    send: "docs/why-socket-activation.txt\r\n",
                    reply: Reply::ToEnd,
                },
            },
        ],
    },
    Server {
        socket: reference::ECHO.socket,
        service: reference::ECHO.service,
        requests: &[
            Request {
                name: "TCP echo",
                needle: "hello over tcp",
                exchange: Exchange::Tcp {
                    port: reference::ECHO.tcp,
                    send: "hello over tcp\n",
                    reply: Reply::Line,
                },
            },
            Request {
                name: "UDP echo",
                needle: "hello over udp",
                exchange: Exchange::Udp { port: ECHO_UDP, send: "hello over udp\n" },
            },
        ],
    },
];

/// One thread's share of the checks.
#[derive(Clone, Copy)]
enum Job {
    Server(&'static Server),
    Inetd,
}

impl Job {
    fn socket(self) -> &'static str {
        match self {
            Job::Server(server) => server.socket,
            Job::Inetd => INETD_SOCKET,
        }
    }

    fn run(self, tx: &Sender<Functional>) {
        match self {
            Job::Server(server) => check_server(server, tx),
            Job::Inetd => check_inetd(tx),
        }
    }
}

/// A result to send; a closed channel (the plan gave up) is no error here.
fn send(tx: &Sender<Functional>, result: Functional) {
    let _ = tx.send(result);
}

fn functional(unit: &str, check: &str, ok: bool, detail: impl Into<String>) -> Functional {
    Functional { unit: unit.to_owned(), check: check.to_owned(), ok, detail: detail.into() }
}

/// A server's checks in order: inactive before the first connection, its
/// requests, active after them, sandboxed. The first request starts the
/// service, so it gets [`ACTIVATION_TIMEOUT`] and says how long it took.
fn check_server(server: &Server, tx: &Sender<Functional>) {
    let before = systemctl_show(server.service);
    send(tx, inactive_before(server.socket, server.service, &before.state()));
    for (index, request) in server.requests.iter().enumerate() {
        let first = index == 0;
        let start = Instant::now();
        let seen = exchange(request.exchange, if first { ACTIVATION_TIMEOUT } else { IO_TIMEOUT });
        let mut result = expect(server.socket, request.name, request.needle, &seen);
        if first {
            let _ =
                write!(result.detail, " (first answer, service start included: {})", secs(start.elapsed()));
        }
        send(tx, result);
    }
    let after = systemctl_show(server.service);
    send(tx, active_after(server.socket, server.service, &after.state()));
    for result in sandboxed(server.service, &after) {
        send(tx, result);
    }
}

/// `Accept=yes`: an instance per connection, alive while the connection is.
/// The connection stays open until its instance has been checked. Every
/// connection starts an instance, so it gets [`ACTIVATION_TIMEOUT`].
fn check_inetd(tx: &Sender<Functional>) {
    let limit = ACTIVATION_TIMEOUT;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, INETD_PORT));
    let start = Instant::now();
    let connection = connect(address, limit);
    let (_open, seen) = match connection {
        Ok(mut stream) => {
            let seen = converse(&mut stream, b"hello inetd\n", Reply::Line, limit);
            (Some(stream), seen)
        }
        Err(error) => (None, Seen { bytes: Vec::new(), error: Some(error) }),
    };
    let mut echoed = inetd_echo(&seen);
    let _ = write!(echoed.detail, " (instance start included: {})", secs(start.elapsed()));
    send(tx, echoed);

    let listed = command(
        "systemctl",
        &["list-units", "--plain", "--no-legend", "--state=running", "sandkasten-echo-inetd@*.service"],
        QUERY_TIMEOUT,
    );
    match listed.as_ref().ok().and_then(|out| first_unit(&out.stdout)) {
        Some(instance) => {
            for result in sandboxed(instance, &systemctl_show(instance)) {
                send(tx, result);
            }
        }
        None => {
            let mut detail = String::from("none running");
            match &listed {
                Err(error) => {
                    let _ = write!(detail, " ({error})");
                }
                Ok(out) if !out.status.success() => {
                    let _ = write!(detail, " ({})", failure("systemctl list-units", out));
                }
                Ok(_) => {}
            }
            send(tx, functional(INETD_SOCKET, "an instance runs for the connection", false, detail));
        }
    }
    // `_open` closes here, after the instance was looked at.
}

/// The `Accept=yes` echo's verdict: the line came back as sent.
fn inetd_echo(seen: &Seen) -> Functional {
    // As `read -r` takes it: without its newline, blanks trimmed.
    let reply = String::from_utf8_lossy(&seen.bytes);
    let reply = reply.trim_end_matches('\n').trim_matches([' ', '\t']);
    if reply == "hello inetd" {
        return functional(INETD_SOCKET, INETD_ECHO, true, reply);
    }
    let mut detail = format!("got '{}'", cut(reply, DETAIL_FAILED));
    if let Some(error) = &seen.error {
        let _ = write!(detail, " ({error})");
    }
    functional(INETD_SOCKET, INETD_ECHO, false, detail)
}

/// Native journal records from inside the sandbox (AF_UNIX to the bound-in
/// journal socket): tracing-journald's records carry a TARGET field. The
/// journal gets [`JOURNAL_WAIT`] to show one.
fn journal_check() -> Functional {
    let name = "logs natively to the journal";
    let deadline = Instant::now() + JOURNAL_WAIT;
    loop {
        let out = command("journalctl", &["-u", JOURNAL_UNIT, "-o", "json", "--no-pager"], JOURNAL_TIMEOUT);
        match &out {
            Ok(out) if out.stdout.contains("\"TARGET\"") => {
                return functional(JOURNAL_UNIT, name, true, "records with TARGET");
            }
            _ if Instant::now() < deadline => thread::sleep(Duration::from_millis(500)),
            Ok(out) if out.status.success() => {
                return functional(JOURNAL_UNIT, name, false, "no native records");
            }
            Ok(out) => {
                let why = failure("journalctl", out);
                return functional(JOURNAL_UNIT, name, false, format!("no native records ({why})"));
            }
            Err(error) => {
                return functional(JOURNAL_UNIT, name, false, format!("no native records ({error})"));
            }
        }
    }
}

// --- systemd's view of a unit ---------------------------------------------------

/// What `systemctl show -p ActiveState,MainPID UNIT` said.
#[derive(Debug, Default, PartialEq)]
struct Show {
    /// `ActiveState=`, when given.
    active_state: Option<String>,
    /// `MainPID=`, when given and not 0.
    main_pid: Option<u32>,
    /// Why the answer is missing or partial.
    error: Option<String>,
}

impl Show {
    /// The state for a detail: the unit's, else why there is none.
    fn state(&self) -> String {
        match (&self.active_state, &self.error) {
            (Some(state), _) => state.clone(),
            (None, Some(error)) => format!("unknown ({error})"),
            (None, None) => "unknown".to_owned(),
        }
    }
}

/// One `systemctl show` for both properties. `Key=Value` lines rather than
/// `--value`: systemctl prints properties in its own order, not the order
/// asked for.
fn systemctl_show(unit: &str) -> Show {
    match command("systemctl", &["show", "-p", "ActiveState,MainPID", unit], QUERY_TIMEOUT) {
        Ok(out) => {
            let mut show = parse_show(&out.stdout);
            if !out.status.success() || show.active_state.is_none() {
                show.error = Some(failure("systemctl show", &out));
            }
            show
        }
        Err(error) => Show { error: Some(error), ..Show::default() },
    }
}

fn parse_show(stdout: &str) -> Show {
    let block = systemd::parse_show(stdout).into_iter().next().unwrap_or_default();
    Show {
        active_state: block.get("ActiveState").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        main_pid: block.get("MainPID").and_then(|pid| pid.trim().parse().ok()).filter(|&pid| pid != 0),
        error: None,
    }
}

/// The first unit of `systemctl list-units --plain --no-legend`.
fn first_unit(stdout: &str) -> Option<&str> {
    stdout.lines().find_map(|line| line.split_whitespace().next())
}

/// The service must not run before the first connection.
fn inactive_before(socket: &str, service: &str, state: &str) -> Functional {
    let check = format!("{service} waits for its first connection");
    if state == "inactive" {
        functional(socket, &check, true, "inactive before it")
    } else {
        functional(socket, &check, false, format!("{state} before any connection"))
    }
}

/// The service must run after the first connection.
fn active_after(socket: &str, service: &str, state: &str) -> Functional {
    let check = format!("{service} started by the first connection");
    if state == "active" {
        functional(socket, &check, true, "active")
    } else {
        functional(socket, &check, false, format!("{state} after the connection"))
    }
}

/// Whether UNIT's main process runs as a dynamic user in a network
/// namespace of its own.
fn sandboxed(unit: &str, show: &Show) -> [Functional; 2] {
    let (user, netns) = ("runs as a dynamic user", "has its own network namespace");
    let Some(pid) = show.main_pid else {
        let detail = match &show.error {
            Some(error) => format!("no main process ({error})"),
            None => "no main process".to_owned(),
        };
        return [functional(unit, user, false, detail.clone()), functional(unit, netns, false, detail)];
    };

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
    let user = match status.as_ref().map(|status| status_uid(status)) {
        Ok(Some(uid)) => functional(unit, user, is_dynamic_uid(uid), format!("uid {uid}")),
        Ok(None) => functional(unit, user, false, format!("no Uid: line in /proc/{pid}/status")),
        Err(error) => functional(unit, user, false, format!("/proc/{pid}/status: {error}")),
    };

    let own = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    let init = std::fs::read_link("/proc/1/ns/net");
    let netns = match (own, init) {
        (Ok(own), Ok(init)) if own != init => functional(unit, netns, true, own.display().to_string()),
        (Ok(own), Ok(_)) => functional(unit, netns, false, format!("shares PID 1's {}", own.display())),
        (Err(error), _) => functional(unit, netns, false, format!("/proc/{pid}/ns/net: {error}")),
        (_, Err(error)) => functional(unit, netns, false, format!("/proc/1/ns/net: {error}")),
    };
    [user, netns]
}

/// The real uid of a `/proc/PID/status`.
fn status_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|line| line.strip_prefix("Uid:")?.split_whitespace().next()?.parse().ok())
}

fn is_dynamic_uid(uid: u32) -> bool {
    DYNAMIC_UIDS.contains(&uid)
}

// --- talking to the servers -------------------------------------------------------

/// What came back from a server, and what went wrong on the way.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// The reply (at most [`REPLY_CAP`] bytes).
    bytes: Vec<u8>,
    /// Why the reply ended early or never came.
    error: Option<String>,
}

/// One request: the reply must contain `needle` .
/// The detail is the reply's first line when it does, an excerpt when not.
fn expect(unit: &str, name: &str, needle: &str, seen: &Seen) -> Functional {
    let text = String::from_utf8_lossy(&seen.bytes).replace('\r', "");
    if text.contains(needle) {
        let first = cut(&text, DETAIL_OK).lines().next().unwrap_or("");
        return functional(unit, name, true, first);
    }
    let excerpt = cut(&text, DETAIL_FAILED);
    let got = match (&seen.error, excerpt.is_empty()) {
        (None, _) => excerpt.to_owned(),
        (Some(error), true) => error.clone(),
        (Some(error), false) => format!("{excerpt} ({error})"),
    };
    functional(unit, name, false, format!("expected '{needle}', got: {got}"))
}

/// At most `max` bytes of `text`, not splitting a character.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn exchange(exchange: Exchange, limit: Duration) -> Seen {
    match exchange {
        Exchange::Tcp { port, send, reply } => {
            tcp_exchange(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), send.as_bytes(), reply, limit)
        }
        Exchange::Udp { port, send } => {
            udp_exchange(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), send.as_bytes(), limit)
        }
    }
}

fn connect(address: SocketAddr, limit: Duration) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(&address, limit).map_err(|error| io_error("connect", address, limit, &error))
}

/// Connects, sends `request`, reads the reply; the connection closes after.
fn tcp_exchange(address: SocketAddr, request: &[u8], reply: Reply, limit: Duration) -> Seen {
    match connect(address, limit) {
        Ok(mut stream) => converse(&mut stream, request, reply, limit),
        Err(error) => Seen { bytes: Vec::new(), error: Some(error) },
    }
}

/// Sends `request` and reads the reply: each write and read waits `limit`
/// at most, the whole reply twice that.
fn converse(stream: &mut TcpStream, request: &[u8], reply: Reply, limit: Duration) -> Seen {
    let address = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let mut seen = Seen::default();
    if let Err(error) = stream.set_write_timeout(Some(limit)).and_then(|()| stream.write_all(request)) {
        seen.error = Some(io_error("send to", address, limit, &error));
        return seen;
    }
    let deadline = Instant::now() + 2 * limit;
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).min(limit);
        if left.is_zero() {
            seen.error = Some(format!("no complete reply from {address} in {}", secs(2 * limit)));
            break;
        }
        if let Err(error) = stream.set_read_timeout(Some(left)) {
            seen.error = Some(io_error("read from", address, limit, &error));
            break;
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                seen.bytes.extend_from_slice(&buffer[..n]);
                if reply == Reply::Line {
                    if let Some(end) = seen.bytes.iter().position(|&b| b == b'\n') {
                        seen.bytes.truncate(end);
                        break;
                    }
                }
                if seen.bytes.len() >= REPLY_CAP {
                    seen.bytes.truncate(REPLY_CAP);
                    break;
                }
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                seen.error = Some(io_error("read from", address, limit, &error));
                break;
            }
        }
    }
    seen
}

/// One datagram to `address`, one back (whole, as `dd bs=65536 count=1`).
fn udp_exchange(address: SocketAddr, datagram: &[u8], limit: Duration) -> Seen {
    let mut buffer = vec![0u8; 65536];
    let received = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|socket| {
            socket.connect(address)?;
            socket.set_write_timeout(Some(limit))?;
            socket.set_read_timeout(Some(limit))?;
            socket.send(datagram)?;
            socket.recv(&mut buffer)
        })
        .map_err(|error| io_error("UDP exchange with", address, limit, &error));
    match received {
        Ok(n) => {
            buffer.truncate(n.min(REPLY_CAP));
            Seen { bytes: buffer, error: None }
        }
        Err(error) => Seen { bytes: Vec::new(), error: Some(error) },
    }
}

fn io_error(what: &str, address: SocketAddr, limit: Duration, error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("{what} {address}: no answer in {}", secs(limit))
        }
        _ => format!("{what} {address}: {error}"),
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// `systemctl start` of `units`, all in one call.
fn systemctl_start(units: &[&str]) -> Result<(), String> {
    let mut args = vec!["start"];
    args.extend_from_slice(units);
    let out = command("systemctl", &args, START_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failure("systemctl start", &out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn show_is_parsed_in_any_order() {
        let show = parse_show("MainPID=1234\nActiveState=active\n");
        assert_eq!(show.active_state.as_deref(), Some("active"));
        assert_eq!(show.main_pid, Some(1234));
        let show = parse_show("ActiveState=inactive\nMainPID=0\n");
        assert_eq!(show.active_state.as_deref(), Some("inactive"));
        assert_eq!(show.main_pid, None, "MainPID=0 is no main process");
        assert_eq!(parse_show(""), Show::default());
        assert_eq!(parse_show("MainPID=\nActiveState=\n"), Show::default());
    }

    #[test]
    fn state_says_why_it_is_unknown() {
        let show = Show { error: Some("systemctl: timed out".into()), ..Show::default() };
        assert_eq!(show.state(), "unknown (systemctl: timed out)");
        assert!(!inactive_before("s.socket", "s.service", &show.state()).ok);
        let show = Show { active_state: Some("failed".into()), ..Show::default() };
        assert_eq!(show.state(), "failed");
    }

    #[test]
    fn activation_checks_keep_the_scripts_names() {
        let before = inactive_before("a.socket", "a.service", "inactive");
        assert_eq!(
            before,
            functional("a.socket", "a.service waits for its first connection", true, "inactive before it")
        );
        let before = inactive_before("a.socket", "a.service", "active");
        assert!(!before.ok);
        assert_eq!(before.detail, "active before any connection");

        let after = active_after("a.socket", "a.service", "active");
        assert_eq!(
            after,
            functional("a.socket", "a.service started by the first connection", true, "active")
        );
        let after = active_after("a.socket", "a.service", "activating");
        assert!(!after.ok);
        assert_eq!(after.detail, "activating after the connection");
    }

    #[test]
    fn dynamic_uid_range() {
        assert!(!is_dynamic_uid(0));
        assert!(!is_dynamic_uid(61183));
        assert!(is_dynamic_uid(61184));
        assert!(is_dynamic_uid(63000));
        assert!(is_dynamic_uid(65519));
        assert!(!is_dynamic_uid(65520));
        assert!(!is_dynamic_uid(65534), "nobody is no dynamic user");
    }

    #[test]
    fn uid_is_the_real_uid_of_the_status() {
        let status =
            "Name:\tsandkasten-http\nUmask:\t0022\nUid:\t61999\t61998\t61997\t61996\nGid:\t1\t1\t1\t1\n";
        assert_eq!(status_uid(status), Some(61999));
        assert_eq!(status_uid("Name:\tx\n"), None);
    }

    #[test]
    fn no_main_process_fails_both() {
        let [user, netns] = sandboxed("x.service", &Show::default());
        assert_eq!(user, functional("x.service", "runs as a dynamic user", false, "no main process"));
        assert_eq!(netns, functional("x.service", "has its own network namespace", false, "no main process"));
        let show = Show { error: Some("systemctl show: boom".into()), ..Show::default() };
        let [user, _] = sandboxed("x.service", &show);
        assert_eq!(user.detail, "no main process (systemctl show: boom)");
    }

    #[test]
    fn sandboxed_reads_a_live_process() {
        // The test process itself: its uid as /proc shows it, and a namespace
        // (shared with PID 1 or not, as the host runs tests; unprivileged,
        // PID 1's is unreadable, and the check says so).
        let show = Show { main_pid: Some(std::process::id()), ..Show::default() };
        let [user, netns] = sandboxed("self", &show);
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(user.detail, format!("uid {uid}"));
        assert_eq!(user.ok, is_dynamic_uid(uid));
        assert!(netns.detail.contains("net:[") || netns.detail.starts_with("/proc/1/ns/net: "), "{netns:?}");
    }

    #[test]
    fn first_unit_of_list_units() {
        let first = "sandkasten-echo-inetd@3-127.0.0.1:7007-127.0.0.1:40000.service";
        let second = "sandkasten-echo-inetd@4-127.0.0.1:7007-127.0.0.1:40002.service";
        let out = format!("{first} loaded active running echo\n{second} loaded active running echo\n");
        assert_eq!(first_unit(&out), Some(first));
        assert_eq!(first_unit(""), None);
        assert_eq!(first_unit("\n  \n"), None);
    }

    #[test]
    fn expect_reports_the_first_line_or_what_was_seen() {
        let seen = Seen {
            bytes: b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nServed from a sandbox".to_vec(),
            error: None,
        };
        assert_eq!(
            expect("u", "GET /", "Served from a sandbox", &seen),
            functional("u", "GET /", true, "HTTP/1.0 200 OK")
        );

        // The needle past the detail's 200 bytes still counts; the detail is short.
        let mut bytes = vec![b'x'; 500];
        bytes.extend_from_slice(b"needle");
        let found = expect("u", "n", "needle", &Seen { bytes, error: None });
        assert!(found.ok);
        assert_eq!(found.detail.len(), DETAIL_OK);

        let missed = expect("u", "n", "needle", &Seen { bytes: vec![b'y'; 1000], error: None });
        assert!(!missed.ok);
        assert_eq!(missed.detail, format!("expected 'needle', got: {}", "y".repeat(DETAIL_FAILED)));

        let refused = Seen { bytes: Vec::new(), error: Some("connect 127.0.0.1:80: refused".into()) };
        assert_eq!(
            expect("u", "n", "needle", &refused).detail,
            "expected 'needle', got: connect 127.0.0.1:80: refused"
        );
        let partial = Seen { bytes: b"HTTP/1.0 404".to_vec(), error: Some("read: no answer".into()) };
        assert_eq!(
            expect("u", "n", "needle", &partial).detail,
            "expected 'needle', got: HTTP/1.0 404 (read: no answer)"
        );
    }

    #[test]
    fn cut_keeps_characters_whole() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn inetd_reply_is_compared_as_read_takes_it() {
        let seen = Seen { bytes: b"hello inetd".to_vec(), error: None };
        assert_eq!(inetd_echo(&seen), functional(INETD_SOCKET, INETD_ECHO, true, "hello inetd"));
        let seen = Seen { bytes: b"hello inetd\r".to_vec(), error: None };
        assert!(!inetd_echo(&seen).ok);
        let seen = Seen { bytes: Vec::new(), error: Some("connect: refused".into()) };
        assert_eq!(inetd_echo(&seen).detail, "got '' (connect: refused)");
    }

    /// A one-connection TCP server on the host: reads what the client sends
    /// (up to `until`), answers `reply`, and closes if `close`.
    fn server(reply: &'static [u8], close: bool) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(reply);
            if !close {
                thread::sleep(Duration::from_secs(3));
            }
        });
        address
    }

    #[test]
    fn tcp_reads_to_the_end() {
        let address = server(b"HTTP/1.0 206 Partial Content\r\n\r\n0123456789", true);
        let seen = tcp_exchange(address, b"GET / HTTP/1.0\r\n\r\n", Reply::ToEnd, SHORT);
        assert_eq!(seen.error, None);
        assert_eq!(seen.bytes, b"HTTP/1.0 206 Partial Content\r\n\r\n0123456789");
    }

    #[test]
    fn tcp_line_needs_no_close() {
        let address = server(b"hello over tcp\nmore", false);
        let start = Instant::now();
        let seen = tcp_exchange(address, b"hello over tcp\n", Reply::Line, Duration::from_secs(2));
        assert_eq!(seen, Seen { bytes: b"hello over tcp".to_vec(), error: None });
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_silent_server_times_out_with_what_it_sent() {
        let address = server(b"partial", false);
        let start = Instant::now();
        let seen = tcp_exchange(address, b"x", Reply::ToEnd, SHORT);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        assert_eq!(seen.bytes, b"partial");
        assert!(seen.error.as_deref().unwrap_or_default().contains("no answer"), "{seen:?}");
    }

    #[test]
    fn a_closed_port_is_an_error() {
        // Bind, note the port, close: nothing listens there now.
        let address = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap();
        let seen = tcp_exchange(address, b"x", Reply::ToEnd, SHORT);
        assert!(seen.bytes.is_empty());
        assert!(seen.error.as_deref().unwrap_or_default().starts_with("connect"), "{seen:?}");
    }

    #[test]
    fn udp_echo_and_silence() {
        let echo = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = echo.local_addr().unwrap();
        thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            if let Ok((n, peer)) = echo.recv_from(&mut buffer) {
                let _ = echo.send_to(&buffer[..n], peer);
            }
            // Keep the socket (and so the port) for the silent case.
            thread::sleep(Duration::from_secs(3));
        });
        let seen = udp_exchange(address, b"hello over udp\n", SHORT);
        assert_eq!(seen, Seen { bytes: b"hello over udp\n".to_vec(), error: None });
        let seen = udp_exchange(address, b"again", SHORT);
        assert!(seen.bytes.is_empty());
        assert!(seen.error.is_some());
    }

    #[test]
    fn commands_have_a_deadline() {
        let out = command("sh", &["-c", "echo out; echo err >&2; exit 3"], Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(failure("sh", &out), "sh: err");

        let start = Instant::now();
        let error = command("sleep", &["10"], SHORT).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
        assert!(error.contains("no answer"), "{error}");

        assert!(command("/nonexistent/program", &[], SHORT).is_err());
    }
}
