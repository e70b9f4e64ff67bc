//! The load clients against small in-process servers that count what they
//! serve: the clients' counts must agree with the servers', a wrong answer
//! must show up as errors, and the binary must print what `bench.py` reads.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sandkasten_load::{echo_tcp, echo_udp, gopher, http, EchoTcp, EchoUdp, Gopher, Http};

const ANSWER: usize = 10_000;

/// A gopher server (a thread per connection) that answers `answer(selector)`
/// and closes; counts the answers it wrote in full.
fn gopher_server(answer: fn(&str) -> Vec<u8>) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let count = count.clone();
            thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut line = String::new();
                if BufReader::new(&mut stream).read_line(&mut line).is_err() {
                    return;
                }
                let selector = line.trim_end_matches(['\r', '\n']);
                if stream.write_all(&answer(selector)).is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, served)
}

fn ten_thousand_bytes(selector: &str) -> Vec<u8> {
    assert_eq!(selector, "/file", "the client sent the wrong selector");
    vec![b'x'; ANSWER]
}

fn gopher_args(port: u16, expect: Option<u64>) -> Gopher {
    Gopher { port, duration: 0.5, concurrency: 8, selector: "/file".into(), expect }
}

#[tokio::test]
async fn gopher_counts_agree_with_the_server() {
    let (addr, served) = gopher_server(ten_thousand_bytes);
    let report = gopher(&gopher_args(addr.port(), Some(ANSWER as u64))).await.unwrap();
    let served = served.load(Ordering::Relaxed);
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.requests >= 50, "only {} exchanges in 0.5 s: {report:?}", report.requests);
    // Answers written but not yet read to their end when time ran out count
    // neither way: at most one per exchange in flight.
    assert!(
        served >= report.requests && served <= report.requests + 8,
        "server wrote {served} answers, client counted {}",
        report.requests
    );
    assert_eq!(report.bytes, report.requests * ANSWER as u64);
    assert!(report.seconds >= 0.5 && report.seconds < 1.5, "{report:?}");
    assert!((report.rate - report.requests as f64 / report.seconds).abs() < 1e-6);
    assert!(report.cpu > 0.0);
}

#[tokio::test]
async fn gopher_answers_of_the_wrong_length_are_errors() {
    let (addr, served) = gopher_server(ten_thousand_bytes);
    let report = gopher(&gopher_args(addr.port(), Some(ANSWER as u64 + 1))).await.unwrap();
    let served = served.load(Ordering::Relaxed);
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.errors >= 50 && served >= report.errors && served <= report.errors + 8, "{report:?}");
    // Their bytes were still read.
    assert_eq!(report.bytes, report.errors * ANSWER as u64);
}

#[tokio::test]
async fn gopher_without_expect_takes_any_answer() {
    let (addr, _) = gopher_server(|_| b"3no such selector\tfake\t(NULL)\t0\r\n.\r\n".to_vec());
    let report = gopher(&gopher_args(addr.port(), None)).await.unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.requests >= 50, "{report:?}");
}

#[tokio::test]
async fn gopher_against_a_closed_port_counts_errors_and_ends_on_time() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let report = gopher(&gopher_args(port, None)).await.unwrap();
    assert_eq!(report.requests, 0);
    assert!(report.errors > 0);
    assert!(report.seconds < 1.5, "{report:?}");
}

/// An HTTP/1.1 server (a thread per connection) that answers every GET of
/// `/file` with `ANSWER` bytes and a Content-Length, as many as a
/// connection asks for; counts the answers and the connections.
fn http_server() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let (s, a) = (served.clone(), accepted.clone());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            a.fetch_add(1, Ordering::Relaxed);
            let s = s.clone();
            thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut reader = BufReader::new(stream);
                loop {
                    let mut head = Vec::new();
                    let mut line = String::new();
                    while line != "\r\n" {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(line.clone());
                    }
                    assert_eq!(head[0], "GET /file HTTP/1.1\r\n", "the client sent the wrong request");
                    let close = head.iter().any(|l| l.eq_ignore_ascii_case("connection: close\r\n"));
                    let mut answer =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {ANSWER}\r\n\r\n").into_bytes();
                    answer.resize(answer.len() + ANSWER, b'x');
                    if reader.get_mut().write_all(&answer).is_err() {
                        return;
                    }
                    s.fetch_add(1, Ordering::Relaxed);
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, served, accepted)
}

fn http_args(port: u16, close: bool, expect: Option<u64>) -> Http {
    Http { port, duration: 0.5, concurrency: 4, path: "/file".into(), close, expect }
}

#[tokio::test]
async fn http_keep_alive_reads_each_answer_by_its_length_on_one_connection_each() {
    let (addr, served, accepted) = http_server();
    let report = http(&http_args(addr.port(), false, Some(ANSWER as u64))).await.unwrap();
    let served = served.load(Ordering::Relaxed);
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.requests >= 50, "only {} requests in 0.5 s: {report:?}", report.requests);
    // Framed by length, not by a close: four connections served them all.
    assert_eq!(accepted.load(Ordering::Relaxed), 4);
    assert!(served >= report.requests && served <= report.requests + 4, "{served} served: {report:?}");
    assert_eq!(report.bytes, report.requests * ANSWER as u64);
    assert!(report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms, "{report:?}");
    assert!((report.rate - report.requests as f64 / report.seconds).abs() < 1e-6);
}

#[tokio::test]
async fn http_close_opens_a_connection_per_request() {
    let (addr, served, accepted) = http_server();
    let report = http(&http_args(addr.port(), true, Some(ANSWER as u64))).await.unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.requests >= 50, "{report:?}");
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted >= report.requests && accepted <= report.requests + 4, "{accepted}: {report:?}");
    assert!(served.load(Ordering::Relaxed) >= report.requests);
}

#[tokio::test]
async fn http_answers_of_the_wrong_length_are_errors() {
    let (addr, _, _) = http_server();
    let report = http(&http_args(addr.port(), false, Some(ANSWER as u64 - 1))).await.unwrap();
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.errors >= 50, "{report:?}");
    assert_eq!(report.bytes, report.errors * ANSWER as u64, "the answers were still read in full");
    assert_eq!((report.p50_ms, report.p99_ms), (0.0, 0.0), "no answered request, no latency");
}

/// A TCP echo server (a thread per connection) that counts the bytes it
/// echoed and the connections it accepted; `close_after` bytes, it hangs up.
fn tcp_echo_server(close_after: Option<usize>) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echoed = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let (e, a) = (echoed.clone(), accepted.clone());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            a.fetch_add(1, Ordering::Relaxed);
            let e = e.clone();
            thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    e.fetch_add(n as u64, Ordering::Relaxed);
                    total += n;
                    if close_after.is_some_and(|limit| total >= limit) {
                        return;
                    }
                }
            });
        }
    });
    (addr, echoed, accepted)
}

fn echo_tcp_args(port: u16) -> EchoTcp {
    EchoTcp { port, duration: 0.5, streams: 4, chunk: 16 * 1024, window: 64 * 1024, warmup: 0.1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_tcp_counts_what_came_back_after_the_warmup() {
    let (addr, echoed, accepted) = tcp_echo_server(None);
    let report = echo_tcp(&echo_tcp_args(addr.port())).await.unwrap();
    let echoed = echoed.load(Ordering::Relaxed);
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(accepted.load(Ordering::Relaxed), 4, "one connection per stream");
    assert!(report.bytes >= 1024 * 1024, "only {} bytes in 0.5 s", report.bytes);
    // The warm-up's bytes came back but do not count.
    assert!(report.bytes < echoed, "counted {} of {echoed} echoed bytes", report.bytes);
    assert_eq!(report.seconds, 0.5);
    assert_eq!(report.rate, report.bytes as f64 / 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_tcp_connections_the_server_closes_are_errors() {
    let (addr, _, _) = tcp_echo_server(Some(100 * 1024));
    let report = echo_tcp(&echo_tcp_args(addr.port())).await.unwrap();
    assert_eq!(report.errors, 4, "{report:?}");
}

#[tokio::test]
async fn echo_tcp_fails_when_it_cannot_connect() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(echo_tcp(&echo_tcp_args(port)).await.is_err());
}

/// A UDP echo server that counts the datagrams it received and echoes them
/// (or, with `echo` false, drops them).
fn udp_echo_server(echo: bool) -> (SocketAddr, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            count.fetch_add(1, Ordering::Relaxed);
            if echo {
                let _ = socket.send_to(&buf[..n], peer);
            }
        }
    });
    (addr, received)
}

fn echo_udp_args(port: u16) -> EchoUdp {
    EchoUdp { port, duration: 0.5, size: 100, window: 4, warmup: 0.1 }
}

#[tokio::test]
async fn echo_udp_counts_echoed_datagrams() {
    let (addr, received) = udp_echo_server(true);
    let report = echo_udp(&echo_udp_args(addr.port())).await.unwrap();
    let received = received.load(Ordering::Relaxed) as f64;
    assert!(report.datagrams >= 500.0, "only {} datagrams in 0.5 s", report.datagrams);
    assert!(report.datagrams < received, "counted {} of {received}", report.datagrams);
    assert_eq!(report.datagrams.fract(), 0.0, "whole datagrams of 100 bytes came back");
    assert_eq!(report.seconds, 0.5);
    assert_eq!(report.rate, report.datagrams / 0.5);
}

#[tokio::test]
async fn echo_udp_keeps_its_window_and_resends_after_a_loss() {
    // Nothing comes back: the client sends its window of 4, waits 50 ms,
    // counts them lost and sends 4 more, for 0.6 s: about 12 windows.
    let (addr, received) = udp_echo_server(false);
    let report = echo_udp(&echo_udp_args(addr.port())).await.unwrap();
    thread::sleep(Duration::from_millis(50));
    let received = received.load(Ordering::Relaxed);
    assert_eq!(report.datagrams, 0.0);
    assert_eq!(received % 4, 0, "{received} datagrams: not whole windows of 4");
    assert!((4 * 6..=4 * 14).contains(&received), "{received} datagrams: windows of 4 every 50 ms?");
}

/// Runs the binary; its stdout parsed as one JSON object.
fn run(args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sandkasten-load")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    match serde_json::from_str(&stdout).unwrap() {
        serde_json::Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

fn keys(map: &serde_json::Map<String, serde_json::Value>) -> BTreeSet<&str> {
    map.keys().map(String::as_str).collect()
}

#[test]
fn the_binary_prints_what_bench_py_reads() {
    let (addr, _) = gopher_server(ten_thousand_bytes);
    let port = addr.port().to_string();
    for runtime in ["current-thread", "multi-thread"] {
        let out = run(&[
            "gopher",
            "--port",
            &port,
            "--duration",
            "0.3",
            "--concurrency",
            "4",
            "--selector",
            "/file",
            "--expect",
            "10000",
            "--runtime",
            runtime,
        ]);
        assert_eq!(keys(&out), BTreeSet::from(["requests", "errors", "seconds", "bytes", "rate", "cpu"]));
        assert!(out["requests"].as_u64().unwrap() > 0 && out["errors"].as_u64() == Some(0), "{out:?}");
    }

    let (addr, _, _) = tcp_echo_server(None);
    // bench.py passes the stream count as --concurrency, as the Python
    // client took it.
    let out =
        run(&["echo-tcp", "--port", &addr.port().to_string(), "--duration", "0.3", "--concurrency", "2"]);
    assert_eq!(keys(&out), BTreeSet::from(["bytes", "seconds", "rate", "errors", "cpu"]));
    assert!(out["bytes"].as_u64().unwrap() > 0 && out["errors"].as_u64() == Some(0), "{out:?}");

    let (addr, _) = udp_echo_server(true);
    let out = run(&["echo-udp", "--port", &addr.port().to_string(), "--duration", "0.3"]);
    assert_eq!(keys(&out), BTreeSet::from(["datagrams", "seconds", "rate", "cpu"]));
    assert!(out["rate"].as_f64().unwrap() > 0.0, "{out:?}");
}

#[test]
fn the_binary_fails_on_bad_arguments() {
    for args in [
        &["gopher", "--port", "70"][..],
        &["gopher", "--port", "70", "--duration", "-1"],
        &["echo-udp", "--port", "7", "--duration", "1", "--size", "0"],
        &["chargen", "--port", "19", "--duration", "1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sandkasten-load")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed {}", String::from_utf8_lossy(&out.stdout));
    }
}
