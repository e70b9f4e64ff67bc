//! The part of every sandkasten server that talks to systemd.
//!
//! A server built on this crate never opens its own listening socket in
//! production: PID 1 binds it from a `.socket` unit and passes it in. That is
//! what lets the service run with `PrivateNetwork=yes`: an inherited socket
//! keeps the network namespace it was created in.
//!
//! # Layout
//! - [`activation`]: take the sockets systemd passed (`LISTEN_FDS`), classify
//!   them, or bind `--listen ADDR` for development.
//! - [`notify`]: `READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`.
//! - [`logging`]: journald when stderr is the journal, plain stderr otherwise.
//! - [`lifecycle`]: the [`Context`] handed to a server: connection slots,
//!   idle exit, the shutdown signal and the drain on SIGTERM.
//! - [`accept`]: the accept loop every stream server shares.
//! - [`args`]: the command-line flags every server shares.
//! - [`lockdown`]: what systemd cannot express (writes only in the writable
//!   places, no shared page both executable and writable, signals to this
//!   process only), installed when the unit asks for it.
//!
//! A server's `main` calls [`activation::take`] (before any thread exists),
//! [`logging::init`], then [`run`] with its serve function.
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod accept;
pub mod activation;
pub mod args;
pub mod lifecycle;
pub mod lockdown;
pub mod logging;
pub mod notify;

use std::future::Future;
use std::process::ExitCode;

pub use activation::{InheritedSocket, Socket};
pub use args::RuntimeArgs;
pub use lifecycle::{Admission, Context, StopReason};

/// Errors that keep a server from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither systemd nor `--listen` gave us a socket.
    #[error(
        "no sockets to serve: start this program from a systemd .socket unit \
         (it passes LISTEN_FDS), or pass --listen ADDR for development"
    )]
    NoSockets,
    /// `LISTEN_FDS`/`LISTEN_FDNAMES` could not be parsed or did not match.
    #[error("invalid socket-activation environment: {0}")]
    Environment(#[source] std::io::Error),
    /// An inherited file descriptor is not a socket this crate serves.
    #[error("inherited fd {fd} (name {name:?}) is {what}; pass TCP or UDP sockets only")]
    Unsupported {
        /// The file descriptor number, from 3 on.
        fd: i32,
        /// Its `FileDescriptorName=`.
        name: String,
        /// What it turned out to be.
        what: String,
    },
    /// Inspecting or converting an inherited file descriptor failed.
    #[error("failed to take inherited fd {fd}: {source}")]
    Inspect {
        /// The file descriptor number.
        fd: i32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `--listen ADDR` could not be bound.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stream-only server was handed a UDP socket: the `.socket` unit is
    /// wrong, and failing loudly beats serving half of it.
    #[error("socket {name:?} is a UDP socket; this server needs ListenStream= sockets")]
    Datagram {
        /// Its `FileDescriptorName=`.
        name: String,
    },
    /// A listener failed in a way that retrying cannot fix.
    #[error("listener {name:?} failed: {source}")]
    Listener {
        /// Its `FileDescriptorName=`.
        name: String,
        /// The accept error.
        #[source]
        source: std::io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a server's serve function may fail with.
pub type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `serve` on a multi-threaded tokio runtime and manages the process
/// lifecycle around it.
///
/// `serve` gets the [`Context`] and the sockets, now registered with tokio.
/// It must return once [`Context::stopped`] fires and it has stopped
/// accepting; connection tasks it started with [`Context::spawn`] are then
/// drained for up to `--grace` seconds. `READY=1` is sent once the sockets
/// are registered, `STOPPING=1` when the drain starts.
///
/// Returns the process exit code: 0 after a requested stop (SIGTERM, SIGINT,
/// idle exit, or `serve` finishing on its own), 1 when `serve` failed.
pub fn run<F, Fut>(
    name: &'static str,
    args: &RuntimeArgs,
    sockets: Vec<InheritedSocket>,
    serve: F,
) -> ExitCode
where
    F: FnOnce(Context, Vec<Socket>) -> Fut,
    Fut: Future<Output = Result<(), ServeError>>,
{
    // Before the first thread: the filter then covers every thread.
    match lockdown::from_env() {
        Ok(true) => tracing::info!(
            "lockdown on: files written only in /tmp, /var/tmp, /dev and the unit's directories, \
             no executable shared memory, signals to this process only"
        ),
        Ok(false) => {}
        Err(err) => {
            // The unit asked for it: serving without it would be a weaker
            // sandbox than the one the unit file promises.
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads())
        .max_blocking_threads(args.blocking_threads as usize)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("{}", Error::Runtime(err));
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(lifecycle::drive(name, args, sockets, serve));
    // Connections still running after the grace period are cut here; a
    // blocking file read must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
