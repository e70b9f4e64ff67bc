//! The load clients behind `scripts/bench`'s gopher and echo rows, and the
//! HTTP client of `sandkasten-vm bench` ([`http`], in a guest that has no
//! wrk): one process keeps many exchanges in flight against a server on
//! 127.0.0.1 for a fixed time and reports what came back.
//!
//! They replace the benchmark's Python epoll clients and keep their
//! parameters, defaults and JSON output (see [`GopherReport`],
//! [`EchoTcpReport`], [`EchoUdpReport`]), so `scripts/bench.py` parses them
//! as before; what changes is that the client's own cost no longer caps the
//! rates it measures.
//!
//! This crate has its own client code rather than the workspace test
//! support's (`sandkasten-tests`): there, a client is one blocking
//! [`std::net::TcpStream`] with 5 s timeouts that does one exchange and
//! checks it, which is right for a test and wrong for a load generator, which
//! must keep dozens of exchanges in flight from one thread and check only
//! their length. A gopher request is the selector and CRLF (RFC 1436), and
//! an echo is whatever was sent; there is no request or response logic
//! left to share.
//!
//! Only loopback is ever used: the clients take a port, not an address.

use std::io::{self, ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

mod http;
pub use http::{http, http_blocking, Answer, Framer, Http, HttpReport};

/// Where every load goes.
pub const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

const KIB: usize = 1024;

/// Read buffer per connection, as the Python clients' `recv(256 KiB)`.
const READ_BUFFER: usize = 256 * KIB;

/// A UDP round with no reply for this long counts its datagrams as lost and
/// sends again.
const UDP_LOST: Duration = Duration::from_millis(50);

/// The gopher client's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Gopher {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Seconds of load.
    #[arg(long)]
    pub duration: f64,
    /// Exchanges kept in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Selector to request; the request is the selector and CRLF.
    #[arg(long, default_value = "")]
    pub selector: String,
    /// Byte count a correct answer has; any other length counts as an error.
    #[arg(long)]
    pub expect: Option<u64>,
}

/// The gopher client's result, as `bench.py` reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GopherReport {
    /// Exchanges answered in full (with `expect` bytes, if given).
    pub requests: u64,
    /// Exchanges that failed or had the wrong length.
    pub errors: u64,
    /// Time from the first connect to the end.
    pub seconds: f64,
    /// Bytes of every answer read to its end (right length or not).
    pub bytes: u64,
    /// `requests / seconds`.
    pub rate: f64,
    /// CPU seconds (user and system) this process used.
    pub cpu: f64,
}

/// The TCP echo client's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoTcp {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Seconds of load, after the warm-up.
    #[arg(long)]
    pub duration: f64,
    /// Connections, each streaming on its own (`--concurrency` as in the
    /// Python client).
    #[arg(long, alias = "concurrency", default_value_t = 64)]
    pub streams: usize,
    /// Bytes per write.
    #[arg(long, default_value_t = 64 * KIB)]
    pub chunk: usize,
    /// Most bytes sent and not yet echoed, per connection.
    #[arg(long, default_value_t = 512 * KIB as u64)]
    pub window: u64,
    /// Seconds before bytes start to count.
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
}

/// The TCP echo client's result, as `bench.py` reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EchoTcpReport {
    /// Bytes echoed back after the warm-up.
    pub bytes: u64,
    /// The load's duration (as set, not as measured).
    pub seconds: f64,
    /// `bytes / seconds`.
    pub rate: f64,
    /// Connections that failed or were closed by the server (they are not
    /// reopened).
    pub errors: u64,
    /// CPU seconds (user and system) this process used.
    pub cpu: f64,
}

/// The UDP echo client's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoUdp {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Seconds of load, after the warm-up.
    #[arg(long)]
    pub duration: f64,
    /// Bytes per datagram.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Datagrams kept in flight.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Seconds before datagrams start to count.
    #[arg(long, default_value_t = 0.3)]
    pub warmup: f64,
}

/// The UDP echo client's result, as `bench.py` reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EchoUdpReport {
    /// Bytes echoed back after the warm-up, in datagrams of `size` (a relay
    /// that merges datagrams still gets credit for every byte).
    pub datagrams: f64,
    /// The load's duration (as set, not as measured).
    pub seconds: f64,
    /// `datagrams / seconds`.
    pub rate: f64,
    /// CPU seconds (user and system) this process used.
    pub cpu: f64,
}

/// CPU time (user and system, all threads) this process used so far, in
/// seconds: Python's `time.process_time()`.
pub fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn seconds(what: &str, value: f64) -> io::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        io::Error::new(ErrorKind::InvalidInput, format!("{what} must be a number of seconds ≥ 0"))
    })
}

fn positive(what: &str, value: f64) -> io::Result<Duration> {
    let d = seconds(what, value)?;
    if d.is_zero() {
        return Err(io::Error::new(ErrorKind::InvalidInput, format!("{what} must be positive")));
    }
    Ok(d)
}

fn random_bytes(len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Keeps `concurrency` gopher exchanges in flight (connect, send the
/// selector, read to EOF, close) for `duration` seconds; an exchange still
/// open at the end counts neither way.
pub async fn gopher(args: &Gopher) -> io::Result<GopherReport> {
    let duration = positive("--duration", args.duration)?;
    let addr = SocketAddr::from((HOST, args.port));
    let request: Arc<[u8]> = format!("{}\r\n", args.selector).into_bytes().into();
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency {
        tasks.spawn(gopher_worker(addr, request.clone(), args.expect, deadline));
    }
    let (mut requests, mut errors, mut bytes) = (0, 0, 0);
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.map_err(io::Error::other)?;
        requests += tally.done;
        errors += tally.errors;
        bytes += tally.bytes;
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(GopherReport { requests, errors, seconds, bytes, rate: requests as f64 / seconds, cpu: cpu_seconds() })
}

#[derive(Default)]
struct Tally {
    done: u64,
    errors: u64,
    bytes: u64,
}

async fn gopher_worker(
    addr: SocketAddr,
    request: Arc<[u8]>,
    expect: Option<u64>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; READ_BUFFER];
    // The explicit check: an exchange that never has to wait would never
    // give the timeout a chance to fire.
    while Instant::now() < deadline {
        match timeout_at(deadline, gopher_exchange(addr, &request, &mut buf)).await {
            Err(_) => break,
            Ok(Ok(n)) => {
                tally.bytes += n;
                if expect.is_none() || expect == Some(n) {
                    tally.done += 1;
                } else {
                    tally.errors += 1;
                }
            }
            Ok(Err(_)) => tally.errors += 1,
        }
    }
    tally
}

/// One gopher exchange: the answer's length.
async fn gopher_exchange(addr: SocketAddr, request: &[u8], buf: &mut [u8]) -> io::Result<u64> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut total = 0;
    loop {
        match stream.read(buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Streams data through `streams` TCP echo connections, at most `window`
/// bytes in flight on each, and counts the bytes that come back after the
/// warm-up. Connections are opened (5 s timeout each) before the clock
/// starts; one that cannot be opened fails the run.
pub async fn echo_tcp(args: &EchoTcp) -> io::Result<EchoTcpReport> {
    let duration = positive("--duration", args.duration)?;
    let warmup = seconds("--warmup", args.warmup)?;
    if args.chunk == 0 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "--chunk must be positive"));
    }
    let addr = SocketAddr::from((HOST, args.port));
    let payload: Arc<[u8]> = random_bytes(args.chunk)?.into();
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let stream = timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(ErrorKind::TimedOut, format!("connect to {addr} timed out")))??;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let t_measure = Instant::now() + warmup;
    let deadline = t_measure + duration;
    let mut tasks = JoinSet::new();
    for stream in streams {
        tasks.spawn(echo_stream(stream, payload.clone(), args.window, t_measure, deadline));
    }
    let (mut bytes, mut errors) = (0, 0);
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.map_err(io::Error::other)?;
        bytes += tally.bytes;
        errors += tally.errors;
    }
    let seconds = duration.as_secs_f64();
    Ok(EchoTcpReport { bytes, seconds, rate: bytes as f64 / seconds, errors, cpu: cpu_seconds() })
}

/// One echo connection, driven by readiness as the epoll client was: read
/// whenever there is something to read, write a chunk whenever the window
/// has room. Tallies the bytes counted and whether the connection failed.
async fn echo_stream(
    stream: TcpStream,
    payload: Arc<[u8]>,
    window: u64,
    t_measure: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut sent, mut received) = (0u64, 0u64);
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let wants = sent - received < window;
        let interest = if wants { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        let ready = match timeout_at(deadline, stream.ready(interest)).await {
            Err(_) => break,
            Ok(Ok(ready)) => ready,
            Ok(Err(_)) => {
                tally.errors += 1;
                break;
            }
        };
        if ready.is_readable() {
            match stream.try_read(&mut buf) {
                Ok(0) => {
                    tally.errors += 1;
                    break;
                }
                Ok(n) => {
                    received += n as u64;
                    if Instant::now() >= t_measure {
                        tally.bytes += n as u64;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    tally.errors += 1;
                    break;
                }
            }
        }
        if ready.is_writable() && sent - received < window {
            match stream.try_write(&payload) {
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    tally.errors += 1;
                    break;
                }
            }
        }
    }
    tally
}

/// Keeps `window` datagrams of `size` bytes in flight to a UDP echo server
/// and counts the bytes that come back after the warm-up. When nothing has
/// come back for 50 ms, whatever is in flight counts as lost and the window
/// is sent again.
///
/// The Python client compared its window, in datagrams, with the bytes in
/// flight, so it never had more than one datagram out; here the window is
/// what its documentation said, datagrams.
pub async fn echo_udp(args: &EchoUdp) -> io::Result<EchoUdpReport> {
    let duration = positive("--duration", args.duration)?;
    let warmup = seconds("--warmup", args.warmup)?;
    if args.size == 0 || args.size > 65507 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "--size must be 1 to 65507 bytes"));
    }
    let socket = UdpSocket::bind((HOST, 0)).await?;
    socket.connect((HOST, args.port)).await?;
    let payload = random_bytes(args.size)?;
    let window = args.window * args.size;
    let t0 = Instant::now();
    let t_measure = t0 + warmup;
    let deadline = t_measure + duration;
    let mut buf = vec![0u8; 65536];
    let (mut outstanding, mut counted) = (0usize, 0u64);
    let mut last_reply = t0;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        while outstanding < window {
            match socket.try_send(&payload) {
                Ok(_) => outstanding += args.size,
                // A full buffer, or the ICMP refusal of an earlier datagram:
                // wait for replies or the loss timeout.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::ConnectionRefused) => break,
                Err(e) => return Err(e),
            }
        }
        match timeout_at((last_reply + UDP_LOST).min(deadline), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let now = Instant::now();
                outstanding = outstanding.saturating_sub(n);
                if now >= t_measure {
                    counted += n as u64;
                }
                last_reply = now;
            }
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let now = Instant::now();
                if now - last_reply >= UDP_LOST {
                    outstanding = 0;
                    last_reply = now;
                }
            }
        }
    }
    let seconds = duration.as_secs_f64();
    let datagrams = counted as f64 / args.size as f64;
    Ok(EchoUdpReport { datagrams, seconds, rate: datagrams / seconds, cpu: cpu_seconds() })
}
