//! Serving stream sockets: the accept loop, `Accept=yes` connections, and
//! the supervision of both, shared by every server.
//!
//! [`serve_listener`] takes a connection slot before it accepts (so a full
//! server leaves new connections in the kernel's backlog), stops accepting
//! the moment a stop is requested, and survives transient accept errors such
//! as `EMFILE` by backing off instead of spinning or exiting.
//! [`serve_connections`] runs one such loop per listener, serves a connected
//! stream (`Accept=yes`) as a single connection, and stops everything when
//! one listener dies, so that systemd restarts the unit with fresh sockets
//! rather than leaving it half-serving.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::lifecycle::{Context, StopReason};
use crate::{Error, ServeError, Socket};

/// Serves every stream socket with `handler`, one call per connection, until
/// a stop is requested or (for an `Accept=yes` stream) its one connection is
/// done.
///
/// UDP sockets are refused with [`Error::Datagram`]. The first listener that
/// fails for good requests a stop; its error is returned once the others
/// have stopped accepting.
pub async fn serve_connections<H, Fut>(
    ctx: &Context,
    sockets: Vec<Socket>,
    handler: H,
) -> Result<(), ServeError>
where
    H: Fn(TcpStream, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(udp) = sockets.iter().find(|s| matches!(s, Socket::Udp { .. })) {
        return Err(Error::Datagram { name: udp.name().to_owned() }.into());
    }
    let mut tasks = JoinSet::new();
    for socket in sockets {
        let (ctx, handler) = (ctx.clone(), handler.clone());
        match socket {
            Socket::TcpListener { name, listener } => {
                tasks.spawn(async move {
                    serve_listener(&ctx, listener, handler)
                        .await
                        .map_err(|source| Error::Listener { name, source })
                });
            }
            Socket::Stream { stream, .. } => {
                tasks.spawn(async move {
                    serve_stream(&ctx, stream, handler).await;
                    Ok(())
                });
            }
            Socket::Udp { .. } => unreachable!("UDP sockets were refused above"),
        }
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let err: ServeError = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err.into(),
            Err(panicked) => panicked.into(),
        };
        tracing::error!(%err, "stopping: a listener failed");
        ctx.request_stop(StopReason::Failed);
        failure.get_or_insert(err);
    }
    failure.map_or(Ok(()), Err)
}

/// Serves the one connection of an `Accept=yes` instance as a tracked task,
/// returning when it is done or a stop is requested (the runtime's drain
/// then waits for it, up to `--grace`).
async fn serve_stream<H, Fut>(ctx: &Context, stream: TcpStream, handler: H)
where
    H: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(err) => {
            // The client is already gone (ENOTCONN): nothing to serve.
            tracing::info!(%err, "connected socket has no peer, closing");
            return;
        }
    };
    let Some(admission) = ctx.admit().await else { return };
    let task = handler(stream, peer);
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    ctx.spawn(async move {
        task.await;
        drop(admission);
        drop(done);
    });
    tokio::select! {
        _ = finished => {}
        _ = ctx.stopped() => {}
    }
}

/// Accepts connections on `listener` until a stop is requested, running
/// `handler` for each in a tracked task.
///
/// Returns `Ok(())` when stopping, or the error that made the listener
/// unusable (`EBADF`, `EINVAL`, `ENOTSOCK`: retrying cannot help).
pub async fn serve_listener<H, Fut>(ctx: &Context, listener: TcpListener, handler: H) -> io::Result<()>
where
    H: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::default();
    loop {
        let Some(slot) = ctx.slot().await else { return Ok(()) };
        let (stream, peer) = tokio::select! {
            biased;
            _ = ctx.stopped() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_fatal(&err) => return Err(err),
                Err(err) => {
                    let pause = backoff.next();
                    tracing::warn!(%err, pause_ms = pause.as_millis() as u64, "accept failed, retrying");
                    tokio::select! {
                        _ = ctx.stopped() => return Ok(()),
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        backoff = Backoff::default();
        let admission = slot.admit();
        let task = handler(stream, peer);
        ctx.spawn(async move {
            task.await;
            drop(admission);
        });
    }
}

/// Errors after which the listener will never accept again.
fn is_fatal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(errno::EBADF | errno::EINVAL | errno::ENOTSOCK))
}

/// The few errno values we need, without a libc dependency.
mod errno {
    pub const EBADF: i32 = 9;
    pub const EINVAL: i32 = 22;
    pub const ENOTSOCK: i32 = 88;
}

/// 10 ms doubling up to 1 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = Duration::from_millis(10u64 << self.attempt.min(7)).min(Duration::from_secs(1));
        self.attempt += 1;
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..10).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}
