//! RFC 862 echo: whatever arrives is sent back.
//!
//! The smallest useful socket-activated server, and so the one the workshop
//! starts with. Every socket kind systemd can hand over is served:
//!
//! - TCP listeners (`ListenStream=`, `Accept=no`): one task per connection;
//! - UDP sockets (`ListenDatagram=`): each datagram goes back to its sender;
//! - one connected stream (`Accept=yes`): systemd accepted it and started an
//!   instance just for it; we echo it and exit;
//! - stdin/stdout (`--inetd`, for `StandardInput=socket`).
//!
//! A connection whose client sends nothing for `--read-timeout` is closed, so
//! an idle peer cannot hold a connection slot forever. On stop, connections
//! are closed after the data already read has been echoed: echo has no
//! request boundary to wait for.
#![deny(missing_docs)]

use std::time::Duration;

use sandkasten_runtime::{accept, Context, ServeError, Socket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Read buffer per connection: large enough for line rate on loopback,
/// small enough that 256 connections stay near 4 MiB.
const BUFFER: usize = 16 * 1024;

/// The largest UDP payload (IPv4, 65535 − 8 − 20).
const MAX_DATAGRAM: usize = 65_507;

/// Serves every socket until a stop is requested (or, for an `Accept=yes`
/// stream, until its connection ends).
pub async fn serve(ctx: Context, sockets: Vec<Socket>) -> Result<(), ServeError> {
    let mut udp = tokio::task::JoinSet::new();
    let mut streams = Vec::new();
    for socket in sockets {
        match socket {
            Socket::Udp { socket, .. } => {
                let ctx = ctx.clone();
                udp.spawn(async move { serve_udp(&ctx, socket).await });
            }
            other => streams.push(other),
        }
    }
    let stop = ctx.clone();
    let timeout = ctx.read_timeout();
    let result = accept::serve_connections(&ctx, streams, move |mut stream, peer| {
        let stop = stop.clone();
        async move {
            let (mut reader, mut writer) = stream.split();
            if let Err(err) = echo(&stop, &mut reader, &mut writer, timeout).await {
                tracing::debug!(%peer, %err, "connection ended");
            }
        }
    })
    .await;
    udp.join_all().await;
    result
}

/// Echoes stdin to stdout (`--inetd`).
pub async fn serve_stdio(ctx: &Context) -> Result<(), ServeError> {
    let Some(_admission) = ctx.admit().await else { return Ok(()) };
    let (mut stdin, mut stdout) = (tokio::io::stdin(), tokio::io::stdout());
    echo(ctx, &mut stdin, &mut stdout, ctx.read_timeout()).await?;
    Ok(())
}

/// Copies `reader` to `writer` until end of input, a stop, or `timeout`
/// without input.
async fn echo<R, W>(ctx: &Context, reader: &mut R, writer: &mut W, timeout: Duration) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = tokio::select! {
            _ = ctx.stopped() => break,
            read = tokio::time::timeout(timeout, reader.read(&mut buf)) => match read {
                Ok(read) => read?,
                Err(_) => {
                    tracing::debug!(timeout_secs = timeout.as_secs(), "client silent, closing");
                    break;
                }
            },
        };
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n]).await?;
    }
    writer.flush().await?;
    // Half-close to mirror the client's EOF. The units leave shutdown(2) out
    // of the allow-list (it would let a compromised server take a handed-over
    // listener out of LISTEN), so EPERM is expected there; closing the socket
    // sends the same FIN a moment later.
    if let Err(err) = writer.shutdown().await {
        tracing::debug!(%err, "no half-close; the close will end the stream");
    }
    Ok(())
}

/// Sends every datagram back to its sender until a stop is requested.
///
/// Errors belong to one peer (an ICMP error from an earlier send surfaces as
/// `ECONNREFUSED` on the next receive), never to the socket: log and go on.
async fn serve_udp(ctx: &Context, socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = tokio::select! {
            _ = ctx.stopped() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(err) => {
                    tracing::debug!(%err, "udp receive failed");
                    continue;
                }
            },
        };
        ctx.touch();
        if let Err(err) = socket.send_to(&buf[..n], peer).await {
            tracing::debug!(%peer, %err, "udp send failed");
        }
    }
}
