//! The runtime contract (services/runtime), seen from outside a real server
//! process: sandkasten-echo, the smallest server, stands for all three.
//! sd_notify messages, idle exit, SIGTERM, the journal fallback, and
//! refusing to start without sockets.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sandkasten_tests::{connect, tcp_listener, Launch, NotifySocket};

use crate::ECHO;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn ready_then_stopping_on_sigterm_and_exit_zero() {
    let (listener, _) = tcp_listener();
    let mut notify = NotifySocket::new();
    let mut server = Launch::new(ECHO).socket(listener, "echo").notify(&notify).spawn();

    let ready = notify.wait_for("READY=1", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", server.report()));
    assert!(ready.contains("STATUS="), "READY=1 without a status line: {ready:?}");
    server.sigterm();
    let stopping = notify.wait_for("STOPPING=1", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", server.report()));
    assert!(stopping.contains("SIGTERM"), "STOPPING=1 should say why: {stopping:?}");
    assert!(server.wait(WAIT).success(), "{}", server.report());
}

#[test]
fn status_reports_connections_served() {
    let (listener, addr) = tcp_listener();
    let mut notify = NotifySocket::new();
    let server = Launch::new(ECHO).socket(listener, "echo").notify(&notify).spawn();
    notify.wait_for("READY=1", WAIT).unwrap();
    for _ in 0..3 {
        drop(connect(addr));
    }
    notify.wait_for("3 served", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", server.report()));
}

#[test]
fn watchdog_is_pinged_at_half_its_timeout() {
    let (listener, _) = tcp_listener();
    let mut notify = NotifySocket::new();
    let server =
        Launch::new(ECHO).socket(listener, "echo").notify(&notify).env("WATCHDOG_USEC", "1000000").spawn();
    let fail = |e: String| panic!("{e}\n{}", server.report());
    notify.wait_count("WATCHDOG=1", 1, WAIT).unwrap_or_else(fail);
    let first = Instant::now();
    notify.wait_count("WATCHDOG=1", 4, WAIT).unwrap_or_else(fail);
    // Three intervals of half the 1 s timeout: 1.5 s. Pinging at the full
    // timeout would take 3 s (too late), pinging in a busy loop far less.
    let elapsed = first.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1200) && elapsed < Duration::from_millis(2500),
        "three watchdog intervals took {elapsed:?}, expected 1.5 s"
    );
}

#[test]
fn no_watchdog_pings_when_the_watchdog_belongs_to_another_process() {
    let (listener, _) = tcp_listener();
    let mut notify = NotifySocket::new();
    let server = Launch::new(ECHO)
        .socket(listener, "echo")
        .notify(&notify)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .spawn();
    notify.wait_for("READY=1", WAIT).unwrap();
    let _ = notify.wait_for("WATCHDOG=1", Duration::from_millis(600));
    assert_eq!(notify.count("WATCHDOG=1"), 0, "{}", server.report());
}

#[test]
fn idle_exit_waits_for_open_connections_then_exits_zero() {
    let (listener, addr) = tcp_listener();
    let mut notify = NotifySocket::new();
    let mut server = Launch::new(ECHO)
        .args(["--idle-exit", "1", "--read-timeout", "30"])
        .socket(listener, "echo")
        .notify(&notify)
        .spawn();
    notify.wait_for("READY=1", WAIT).unwrap();
    let held = connect(addr);
    // Make sure the connection is accepted before the first second is over.
    let mut probe = held.try_clone().unwrap();
    std::io::Write::write_all(&mut probe, b"x").unwrap();
    let mut buf = [0u8; 1];
    std::io::Read::read_exact(&mut probe, &mut buf).unwrap();

    assert!(
        server.try_wait(Duration::from_millis(2500)).is_none(),
        "exited with a connection open\n{}",
        server.report()
    );
    let closed = Instant::now();
    drop(probe);
    drop(held);
    let status = server.wait(WAIT);
    assert!(status.success(), "{}", server.report());
    let after = closed.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "exited {after:?} after the last connection closed, before --idle-exit"
    );
    let stopping = notify.wait_for("STOPPING=1", WAIT).unwrap();
    assert!(stopping.contains("idle"), "{stopping:?}");
}

#[test]
fn without_sockets_or_listen_it_exits_2_and_says_how_to_run_it() {
    let mut server = Launch::new(ECHO).spawn();
    let status = server.wait(WAIT);
    assert_eq!(status.code(), Some(2), "{}", server.report());
    let stderr = server.stderr();
    assert!(stderr.contains(".socket unit") && stderr.contains("--listen ADDR"), "{stderr}");
}

#[test]
fn a_file_passed_as_a_socket_is_refused_with_its_name() {
    let file = tempfile::tempfile().unwrap();
    let mut server = Launch::new(ECHO).socket(file, "bogus").spawn();
    let status = server.wait(WAIT);
    assert_eq!(status.code(), Some(2), "{}", server.report());
    let stderr = server.stderr();
    assert!(
        stderr.contains("fd 3") && stderr.contains("\"bogus\"") && stderr.contains("not a socket"),
        "{stderr}"
    );
}

#[test]
fn listen_flag_binds_when_systemd_passed_nothing() {
    // Reserve a free port, release it, and ask the server to bind it.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let server = Launch::new(ECHO).args(["--listen", &addr]).spawn();
    server.wait_for_log("serving", WAIT);
    let mut stream = connect(addr.parse().unwrap());
    std::io::Write::write_all(&mut stream, b"hi").unwrap();
    let mut buf = [0u8; 2];
    std::io::Read::read_exact(&mut stream, &mut buf).unwrap_or_else(|e| panic!("{e}\n{}", server.report()));
    assert_eq!(&buf, b"hi");
}

#[test]
fn unreachable_journal_falls_back_to_prefixed_stderr_lines() {
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        // With a live journald the native protocol is used and nothing
        // reaches stderr; this machine's CI has no journald.
        eprintln!("journald is running here; the fallback cannot be observed");
        return;
    }
    let (listener, _) = tcp_listener();
    let server = Launch::new(ECHO).socket(listener, "echo").journal_stream().spawn();
    server.wait_for_log("serving", WAIT);
    let stderr = server.stderr();
    assert!(
        stderr.lines().any(|l| l.starts_with("<4>") && l.contains("journal socket unreachable")),
        "{stderr}"
    );
    assert!(stderr.lines().any(|l| l.starts_with("<5>") && l.contains("serving")), "{stderr}");
}
