//! The HTTP/1.1 client: `concurrency` connections, each sending `GET path`
//! and reading the answer before it sends the next, for a fixed time.
//!
//! It exists for `sandkasten-vm bench`, which compares the same server in
//! its unit and bare inside a guest that has no wrk; the host benchmark's
//! HTTP rows stay wrk's. Each answer is framed by its `Content-Length`
//! (the static servers measured here always send one), not by the end of
//! the connection: on a kept-alive connection that is the only way to know
//! where one answer ends, and with a new connection per request it stops
//! the clock at the last byte of the body rather than at the server's
//! close.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use crate::{cpu_seconds, positive, HOST};

/// Most bytes a response head may have before the answer counts as wrong.
const MAX_HEAD: usize = 16 * 1024;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The HTTP client's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Http {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Seconds of load.
    #[arg(long)]
    pub duration: f64,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The path to GET.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A new connection per request (`Connection: close`) instead of
    /// keep-alive.
    #[arg(long)]
    pub close: bool,
    /// Body length a correct answer has; any other length counts as an
    /// error (as does any status but 200).
    #[arg(long)]
    pub expect: Option<u64>,
}

/// The HTTP client's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpReport {
    /// Requests answered `200` (with `expect` body bytes, if given).
    pub requests: u64,
    /// Requests that failed, or were answered with another status or length.
    pub errors: u64,
    /// Time from the first connect to the end.
    pub seconds: f64,
    /// Body bytes of every answer read in full (right or wrong).
    pub bytes: u64,
    /// `requests / seconds`.
    pub rate: f64,
    /// The median time of an answered request, from sending it (from
    /// connecting, with `close`) to its last byte, in milliseconds.
    pub p50_ms: f64,
    /// The 99th percentile of the same.
    pub p99_ms: f64,
    /// CPU seconds (user and system) this process used.
    pub cpu: f64,
}

/// Keeps `concurrency` connections busy with `GET path` for `duration`
/// seconds; a request still open at the end counts neither way. A
/// connection that fails or that the server closes is opened again for
/// the next request.
pub async fn http(args: &Http) -> io::Result<HttpReport> {
    let duration = positive("--duration", args.duration)?;
    if args.concurrency == 0 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "--concurrency must be positive"));
    }
    if !args.path.starts_with('/') || args.path.contains(char::is_whitespace) {
        return Err(io::Error::new(ErrorKind::InvalidInput, "--path must start with / and have no spaces"));
    }
    let addr = SocketAddr::from((HOST, args.port));
    let connection = if args.close { "close" } else { "keep-alive" };
    let request: Arc<[u8]> =
        format!("GET {} HTTP/1.1\r\nHost: {HOST}\r\nConnection: {connection}\r\n\r\n", args.path)
            .into_bytes()
            .into();
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency {
        tasks.spawn(worker(addr, request.clone(), args.close, args.expect, deadline));
    }
    let (mut requests, mut errors, mut bytes) = (0, 0, 0);
    let mut latencies = Vec::new();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.map_err(io::Error::other)?;
        requests += tally.requests;
        errors += tally.errors;
        bytes += tally.bytes;
        latencies.extend(tally.latencies);
    }
    latencies.sort_unstable();
    let seconds = t0.elapsed().as_secs_f64();
    Ok(HttpReport {
        requests,
        errors,
        seconds,
        bytes,
        rate: requests as f64 / seconds,
        p50_ms: percentile_ms(&latencies, 50),
        p99_ms: percentile_ms(&latencies, 99),
        cpu: cpu_seconds(),
    })
}

/// [`http`] on a tokio runtime of its own (one thread, as `sandkasten-load`
/// runs by default), for callers that have none: `sandkasten-vm bench`'s
/// guest side is otherwise blocking code.
pub fn http_blocking(args: &Http) -> io::Result<HttpReport> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(http(args))
}

/// The `pct`th percentile (nearest rank) of sorted `latencies`, in
/// milliseconds; 0 when there are none.
fn percentile_ms(latencies: &[Duration], pct: usize) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let rank = (latencies.len() * pct).div_ceil(100).max(1);
    latencies[rank - 1].as_secs_f64() * 1000.0
}

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    bytes: u64,
    latencies: Vec<Duration>,
}

async fn worker(
    addr: SocketAddr,
    request: Arc<[u8]>,
    close: bool,
    expect: Option<u64>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<(TcpStream, Framer)> = None;
    // The explicit check: an exchange that never has to wait would never
    // give the timeout a chance to fire.
    while Instant::now() < deadline {
        let started = std::time::Instant::now();
        let exchange = async {
            let (stream, framer) = match &mut conn {
                Some(open) => open,
                None => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    conn.insert((stream, Framer::default()))
                }
            };
            stream.write_all(&request).await?;
            framer.next(stream).await
        };
        match timeout_at(deadline, exchange).await {
            Err(_) => break,
            Ok(Ok(answer)) => {
                tally.bytes += answer.body;
                if answer.status == 200 && expect.map_or(true, |n| n == answer.body) {
                    tally.requests += 1;
                    tally.latencies.push(started.elapsed());
                } else {
                    tally.errors += 1;
                }
                if close || answer.close {
                    conn = None;
                }
            }
            Ok(Err(_)) => {
                tally.errors += 1;
                conn = None;
            }
        }
    }
    tally
}

/// What one answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Its status code.
    pub status: u16,
    /// Its body's length (its `Content-Length`, read in full).
    pub body: u64,
    /// Whether the server said it closes the connection after it.
    pub close: bool,
}

/// A response head: everything before the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: u64,
    close: bool,
    /// Its length, with the blank line that ends it.
    len: usize,
}

/// Reads answers off one connection, each by its `Content-Length`. Bytes
/// read past the end of one answer are kept for the next.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Reads the next answer from `stream`, its head and exactly its body.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> io::Result<Answer> {
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!("no end of the response head in {MAX_HEAD} bytes")));
            }
            self.fill(stream).await?;
        };
        self.buf.drain(..head.len);
        let mut left = head.content_length;
        loop {
            let take = left.min(self.buf.len() as u64);
            self.buf.drain(..take as usize);
            left -= take;
            if left == 0 {
                break;
            }
            self.fill(stream).await?;
        }
        Ok(Answer { status: head.status, body: head.content_length, close: head.close })
    }

    /// Appends what the next read brings; the end of the stream is an error
    /// (an answer is never complete without its declared length).
    async fn fill<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let n = stream.read(&mut self.buf[start..]).await;
        self.buf.truncate(start + *n.as_ref().unwrap_or(&0));
        match n? {
            0 => Err(io::Error::new(ErrorKind::UnexpectedEof, "the connection closed inside an answer")),
            _ => Ok(()),
        }
    }
}

/// The response head at the start of `buf`, or `None` when it has not
/// all arrived yet.
fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("a response head that is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1 status line: {status_line:?}")))?;
    let (mut content_length, mut close) = (None, status_line.starts_with("HTTP/1.0"));
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("a bad header: {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse().map_err(|_| invalid(format!("a bad Content-Length: {value:?}")))?;
            if content_length.is_some_and(|l| l != length) {
                return Err(invalid("two different Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(format!("Transfer-Encoding {value} (only Content-Length is read)")));
        }
    }
    let content_length = content_length.ok_or_else(|| invalid("an answer without Content-Length"))?;
    Ok(Some(Head { status, content_length, close, len: end + 4 }))
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, as a socket might.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let end = (self.at + self.step).min(self.bytes.len()).min(self.at + buf.remaining());
            buf.put_slice(&self.bytes[self.at..end]);
            self.at = end;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn response(status: &str, body: &[u8], extra: &str) -> Vec<u8> {
        let mut r =
            format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r
    }

    async fn answers(bytes: Vec<u8>, step: usize) -> Vec<io::Result<Answer>> {
        let mut stream = Trickle { bytes, at: 0, step };
        let mut framer = Framer::default();
        let mut out = Vec::new();
        loop {
            let answer = framer.next(&mut stream).await;
            let failed = answer.is_err();
            out.push(answer);
            if failed {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn answers_back_to_back_are_split_by_their_length() {
        // A body that looks like a head: framing by anything but the length
        // would take it for the next answer.
        let trap = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let mut bytes = response("200 OK", trap, "");
        bytes.extend(response("404 Not Found", b"gone", "Connection: close\r\n"));
        bytes.extend(response("200 OK", &[b'x'; 100_000], ""));
        for step in [1, 7, 1000, 1 << 20] {
            let got = answers(bytes.clone(), step).await;
            let (ok, last) = got.split_at(3);
            let ok: Vec<Answer> = ok.iter().map(|a| *a.as_ref().unwrap()).collect();
            assert_eq!(
                ok,
                [
                    Answer { status: 200, body: trap.len() as u64, close: false },
                    Answer { status: 404, body: 4, close: true },
                    Answer { status: 200, body: 100_000, close: false },
                ],
                "read {step} bytes at a time"
            );
            // Nothing left over: the stream ends between answers.
            assert_eq!(last[0].as_ref().unwrap_err().kind(), ErrorKind::UnexpectedEof);
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_not_an_answer() {
        let mut bytes = response("200 OK", &[b'x'; 1024], "");
        bytes.truncate(bytes.len() - 1);
        let got = answers(bytes, 100).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap_err().kind(), ErrorKind::UnexpectedEof);
    }

    #[test]
    fn heads_are_read_or_refused() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n").unwrap(), None);
        let head = parse_head(b"HTTP/1.1 200 OK\r\nServer: x\r\nCONTENT-LENGTH:  5 \r\n\r\nhello").unwrap();
        assert_eq!(head, Some(Head { status: 200, content_length: 5, close: false, len: 51 }));
        let head = parse_head(b"HTTP/1.0 304 Not Modified\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(head.close, "HTTP/1.0 closes unless it says otherwise");
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"ICY 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            let error = parse_head(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidData, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&ms, 50), 100.0);
        assert_eq!(percentile_ms(&ms, 99), 198.0);
        assert_eq!(percentile_ms(&ms[..1], 99), 1.0);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }
}
