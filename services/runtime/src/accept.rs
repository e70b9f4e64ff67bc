//! The accept loop that every stream server shares.
//!
//! It takes a connection slot before it accepts (so a full server leaves new
//! connections in the kernel's backlog), stops accepting the moment a stop is
//! requested, and survives transient accept errors such as `EMFILE` by
//! backing off instead of spinning or exiting.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::lifecycle::Context;

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
    matches!(err.raw_os_error(), Some(libc_errno::EBADF | libc_errno::EINVAL | libc_errno::ENOTSOCK))
}

/// The few errno values we need, without a libc dependency.
mod libc_errno {
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
