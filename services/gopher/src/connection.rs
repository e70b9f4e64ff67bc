//! One gopher connection: read a request line, answer, close.
//!
//! Gopher has no keep-alive, so a connection is exactly one exchange, and
//! every step has a deadline so that a client cannot hold one of the
//! `--max-connections` slots forever: the request line must arrive within
//! `--read-timeout`, and each chunk of the response must be taken by the
//! client within the same time.
//!
//! Files are sent as they are on disk, also for type 0: no dot-stuffing and
//! no final `.` line. Clients read text to the end of the connection; a
//! stuffed file would differ from the original for any client that does not
//! undo it (and for the same selector fetched as type 9). Menus and errors
//! do end with `.`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::menu;
use crate::selector::{self, SelectorError, MAX_LINE};
use crate::{respond, Config, RequestError, Response};

/// How much of a file is read and written at a time.
const CHUNK: usize = 64 * 1024;

/// How long we keep reading what a client sent after its request line
/// before closing (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);

/// What reading the request line gave.
enum Line {
    /// A line, without its terminator; `extra` if bytes followed it.
    Complete { line: Vec<u8>, extra: bool },
    /// The client closed without sending anything.
    Empty,
    /// No line end within [`MAX_LINE`] bytes.
    TooLong,
}

/// Serves one connection from `peer` to the end.
pub async fn handle(mut stream: TcpStream, peer: SocketAddr, config: Arc<Config>, read_timeout: Duration) {
    let origin = match stream.local_addr() {
        Ok(local) => config.origin(local),
        Err(err) => {
            tracing::warn!(%peer, %err, "cannot read the connection's local address");
            return;
        }
    };
    let line = match timeout(read_timeout, read_line(&mut stream)).await {
        Ok(Ok(line)) => line,
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "reading the request failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, timeout_secs = read_timeout.as_secs(), "no request line in time, closing");
            return;
        }
    };
    let (line, extra) = match line {
        Line::Complete { line, extra } => (line, extra),
        Line::Empty => return,
        Line::TooLong => {
            let err = RequestError::Selector(SelectorError::LineTooLong);
            refuse(&mut stream, peer, b"", &err, read_timeout).await;
            linger(&mut stream).await;
            return;
        }
    };
    let request = match selector::parse(&line) {
        Ok(request) => request,
        Err(err) => {
            refuse(&mut stream, peer, &line, &RequestError::Selector(err), read_timeout).await;
            if extra {
                linger(&mut stream).await;
            }
            return;
        }
    };
    // File-system work blocks; keep it off the async workers.
    let response = match tokio::task::spawn_blocking(move || respond(&config, &request)).await {
        Ok(response) => response,
        Err(err) => Err(RequestError::Internal(err.to_string())),
    };
    let result = match response {
        Ok(Response::Menu(items)) => {
            send(&mut stream, menu::render(&items, &origin).as_bytes(), read_timeout).await
        }
        Ok(Response::Text(text)) => send(&mut stream, text.as_bytes(), read_timeout).await,
        Ok(Response::File(file)) => {
            send_file(&mut stream, tokio::fs::File::from_std(file), read_timeout).await
        }
        Err(err) => {
            refuse(&mut stream, peer, &line, &err, read_timeout).await;
            Ok(())
        }
    };
    match result {
        Ok(()) => {
            tracing::debug!(%peer, selector = %lossy(&line), "served");
            let _ = timeout(read_timeout, stream.shutdown()).await;
            if extra {
                linger(&mut stream).await;
            }
        }
        Err(err) => tracing::debug!(%peer, selector = %lossy(&line), %err, "client went away"),
    }
}

/// Reads up to the first LF, at most [`MAX_LINE`] bytes.
async fn read_line(stream: &mut TcpStream) -> std::io::Result<Line> {
    let mut buf = vec![0u8; MAX_LINE];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Ok(Line::TooLong);
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            // EOF without a line end: serve what came (`printf /x | nc`).
            if len == 0 {
                return Ok(Line::Empty);
            }
            buf.truncate(len);
            return Ok(Line::Complete { line: buf, extra: false });
        }
        if let Some(at) = buf[len..len + n].iter().position(|&b| b == b'\n') {
            let end = len + at + 1;
            let extra = end < len + n;
            buf.truncate(end);
            let line = selector::strip_terminator(&buf).to_vec();
            return Ok(Line::Complete { line, extra });
        }
        len += n;
    }
}

/// Sends a type 3 error and logs why.
async fn refuse(
    stream: &mut TcpStream,
    peer: SocketAddr,
    line: &[u8],
    err: &RequestError,
    write_timeout: Duration,
) {
    tracing::warn!(%peer, selector = %lossy(line), reason = %err, "refused");
    let _ = send(stream, menu::error(&err.client_message()).as_bytes(), write_timeout).await;
    let _ = timeout(write_timeout, stream.shutdown()).await;
}

async fn send(stream: &mut TcpStream, bytes: &[u8], write_timeout: Duration) -> std::io::Result<()> {
    timeout(write_timeout, stream.write_all(bytes)).await.unwrap_or_else(|_| Err(timed_out()))
}

async fn send_file(
    stream: &mut TcpStream,
    mut file: tokio::fs::File,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        send(stream, &buf[..n], write_timeout).await?;
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "client took no data within the timeout")
}

/// After our answer, reads (and drops) what the client sent beyond its
/// request line, briefly, before the socket is closed. Closing a socket with
/// unread data makes the kernel send RST, and an RST can destroy the answer
/// before the client has read it.
async fn linger(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = timeout(LINGER, async {
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// A request line for a log field: lossy UTF-8, escaped, cut to a sane
/// length.
fn lossy(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(300)]);
    format!("{text:?}")
}
