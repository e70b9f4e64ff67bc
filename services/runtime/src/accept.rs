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
//! rather than leaving it half-serving. A panic in one connection's handler
//! ends that task only (tokio catches it): the connection closes, its slot
//! is freed, and the server goes on (tested below).

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

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn args() -> crate::RuntimeArgs {
        crate::RuntimeArgs {
            listen: Vec::new(),
            idle_exit: 0,
            grace: 1,
            max_connections: 4,
            read_timeout: 5,
            blocking_threads: 1,
            threads: 1,
        }
    }

    /// Reads until the server closes; what came, or the error (a reset).
    async fn read_all(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.map(|_| answer)
    }

    #[tokio::test]
    async fn a_panic_in_one_connection_closes_it_and_the_server_goes_on() {
        let ctx = Context::new(&args());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let server = {
            let (ctx, calls) = (ctx.clone(), calls.clone());
            tokio::spawn(async move {
                serve_listener(&ctx, listener, move |mut stream, _| {
                    let call = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if call == 0 {
                            panic!("a bug that one request triggers");
                        }
                        stream.write_all(b"served").await.unwrap();
                    }
                })
                .await
            })
        };
        let mut first = TcpStream::connect(address).await.unwrap();
        let first = read_all(&mut first).await;
        assert!(first.as_ref().map_or(true, |a| a.is_empty()), "the panicking connection answered {first:?}");
        for _ in 0..5 {
            let mut next = TcpStream::connect(address).await.unwrap();
            assert_eq!(read_all(&mut next).await.unwrap(), b"served");
        }
        // Every slot came back, the panicking one's too.
        tokio::time::timeout(Duration::from_secs(5), async {
            while ctx.open_connections() != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a slot was never freed");
        ctx.request_stop(StopReason::Finished);
        server.await.unwrap().unwrap();
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..10).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}
