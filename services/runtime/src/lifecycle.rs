//! The life of a server process: connection slots, idle exit, stop and drain.
//!
//! [`drive`] owns the process from the moment the sockets are registered with
//! tokio until exit. A server sees only the cheap, cloneable [`Context`]:
//!
//! - a connection needs a [`Slot`] before it is accepted, so at most
//!   `--max-connections` are served at once and the rest wait in the kernel's
//!   backlog (where systemd's `Backlog=` bounds them) instead of in our
//!   memory;
//! - an accepted connection holds an [`Admission`]; when the last one is
//!   dropped and nothing happens for `--idle-exit`, we stop, and systemd
//!   starts us again on the next connection;
//! - SIGTERM or SIGINT fire [`Context::stopped`]; the server stops accepting,
//!   and tasks started with [`Context::spawn`] get `--grace` to finish.

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activation::{InheritedSocket, Socket};
use crate::{notify, RuntimeArgs, ServeError};

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
    Signal(&'static str),
    /// No connection for `--idle-exit`.
    Idle,
    /// The serve function returned by itself (its one connection is done).
    Finished,
    /// The serve function failed (a listener became unusable).
    Failed,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Signal(name) => write!(f, "{name} received"),
            StopReason::Idle => f.write_str("idle"),
            StopReason::Finished => f.write_str("done"),
            StopReason::Failed => f.write_str("failed"),
        }
    }
}

/// What a server gets from the runtime. Clones share one state.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    /// Cancelled once, when the process should stop accepting.
    stop: CancellationToken,
    /// Set by whoever cancelled `stop` first.
    stop_reason: Mutex<Option<StopReason>>,
    /// One permit per connection that may be served at once.
    slots: Arc<Semaphore>,
    /// Connection tasks, drained on stop.
    tracker: TaskTracker,
    /// Connections open right now.
    open: AtomicUsize,
    /// Connections (or datagrams) served since start.
    served: AtomicU64,
    /// When the last connection closed or the last datagram arrived.
    last_activity: Mutex<Instant>,
    /// Woken whenever `open` or `last_activity` changes.
    activity: Notify,
    read_timeout: Duration,
}

/// Room for one more connection, taken before `accept()`.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    ctx: Context,
}

/// One open connection. Dropping it frees its slot and counts as activity
/// for idle exit.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    ctx: Context,
}

impl Context {
    pub(crate) fn new(args: &RuntimeArgs) -> Context {
        Context {
            inner: Arc::new(Inner {
                stop: CancellationToken::new(),
                stop_reason: Mutex::new(None),
                slots: Arc::new(Semaphore::new(args.max_connections as usize)),
                tracker: TaskTracker::new(),
                open: AtomicUsize::new(0),
                served: AtomicU64::new(0),
                last_activity: Mutex::new(Instant::now()),
                activity: Notify::new(),
                read_timeout: args.read_timeout(),
            }),
        }
    }

    /// Completes once the server should stop accepting.
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await
    }

    /// Whether a stop has been requested.
    pub fn is_stopping(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Asks the server to stop; the first reason given wins.
    pub fn request_stop(&self, reason: StopReason) {
        let mut current = self.inner.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_none() {
            *current = Some(reason);
            self.inner.stop.cancel();
        }
    }

    /// Why the server stopped (`None` while it runs).
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.inner.stop_reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for room for one more connection; `None` once stopping.
    pub async fn slot(&self) -> Option<Slot> {
        tokio::select! {
            biased;
            _ = self.stopped() => None,
            permit = self.inner.slots.clone().acquire_owned() => {
                // The semaphore is never closed, so acquiring cannot fail.
                let permit = permit.expect("connection semaphore is never closed");
                Some(Slot { permit, ctx: self.clone() })
            }
        }
    }

    /// Waits for a slot and admits one connection that is already open (an
    /// `Accept=yes` stream, stdin/stdout); `None` once stopping.
    pub async fn admit(&self) -> Option<Admission> {
        self.slot().await.map(Slot::admit)
    }

    /// Runs a connection's task; [`drive`] waits for it on stop, up to the
    /// grace period.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.tracker.spawn(task);
    }

    /// Records activity that holds no connection (a UDP datagram): it
    /// postpones idle exit and counts as served.
    pub fn touch(&self) {
        self.inner.served.fetch_add(1, Ordering::Relaxed);
        self.mark_activity();
    }

    /// The deadline for each read from a client (`--read-timeout`).
    pub fn read_timeout(&self) -> Duration {
        self.inner.read_timeout
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Connections and datagrams served since start.
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    fn mark_activity(&self) {
        *self.inner.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.inner.activity.notify_one();
    }

    /// A line for `STATUS=` and logs.
    fn status_line(&self) -> String {
        let open = self.open_connections();
        let served = self.served();
        match self.stop_reason() {
            Some(reason) => format!("stopping ({reason}), {open} open, {served} served"),
            None if open == 0 => format!("idle, {served} served"),
            None => format!("{open} open, {served} served"),
        }
    }
}

impl Slot {
    /// Turns the reserved room into an open connection (call after accept).
    pub fn admit(self) -> Admission {
        let inner = &self.ctx.inner;
        inner.open.fetch_add(1, Ordering::Relaxed);
        inner.served.fetch_add(1, Ordering::Relaxed);
        inner.activity.notify_one();
        Admission { _permit: self.permit, ctx: self.ctx }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.ctx.inner.open.fetch_sub(1, Ordering::Relaxed);
        self.ctx.mark_activity();
    }
}

/// Owns the process from socket registration to exit; see [`crate::run`].
pub(crate) async fn drive<F, Fut>(
    name: &'static str,
    args: &RuntimeArgs,
    sockets: Vec<InheritedSocket>,
    serve: F,
) -> ExitCode
where
    F: FnOnce(Context, Vec<Socket>) -> Fut,
    Fut: Future<Output = Result<(), ServeError>>,
{
    let ctx = Context::new(args);
    // First of all: a SIGTERM that arrives while we start must still mean
    // "stop cleanly", not the default action (death by signal).
    let signals = match watch_signals(ctx.clone()) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(%err, "failed to install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    for socket in &sockets {
        tracing::info!(socket = %socket.describe(), "serving");
    }
    let sockets = match sockets.into_iter().map(InheritedSocket::into_tokio).collect::<Result<Vec<_>, _>>() {
        Ok(sockets) => sockets,
        Err(err) => {
            tracing::error!(%err, "failed to register sockets with the async runtime");
            return ExitCode::FAILURE;
        }
    };
    if let Some(idle) = args.idle_exit() {
        tokio::spawn(exit_when_idle(ctx.clone(), idle));
    }
    tokio::spawn(heartbeat(ctx.clone(), notify::watchdog_interval()));
    notify::ready(&format!("{name} ready, {}", ctx.status_line()));

    let result = serve(ctx.clone(), sockets).await;
    ctx.request_stop(if result.is_ok() { StopReason::Finished } else { StopReason::Failed });
    let reason = ctx.stop_reason().unwrap_or(StopReason::Finished);
    let open = ctx.open_connections();
    tracing::info!(%reason, open, served = ctx.served(), "stopping");
    notify::stopping(&ctx.status_line());

    ctx.inner.tracker.close();
    tokio::select! {
        _ = ctx.inner.tracker.wait() => {}
        _ = tokio::time::sleep(args.grace()) => {
            tracing::warn!(open = ctx.open_connections(), grace_secs = args.grace, "grace period over, closing connections");
        }
        _ = signals.second() => {
            tracing::warn!(open = ctx.open_connections(), "second signal, closing connections now");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Lets the drain be cut short by a second SIGTERM/SIGINT.
struct Signals {
    again: Arc<Notify>,
}

impl Signals {
    async fn second(&self) {
        self.again.notified().await
    }
}

/// SIGTERM and SIGINT request a stop; any later one ends the drain.
fn watch_signals(ctx: Context) -> std::io::Result<Signals> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let again = Arc::new(Notify::new());
    let wake = again.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if ctx.is_stopping() {
                wake.notify_one();
            } else {
                ctx.request_stop(StopReason::Signal(name));
            }
        }
    });
    Ok(Signals { again })
}

/// Requests a stop once no connection has been open for `idle`.
async fn exit_when_idle(ctx: Context, idle: Duration) {
    loop {
        // Arm the wake-up before reading the state, so a change in between
        // is not lost (Notify keeps one permit for notify_one).
        let changed = ctx.inner.activity.notified();
        let deadline = *ctx.inner.last_activity.lock().unwrap_or_else(|e| e.into_inner()) + idle;
        if ctx.open_connections() == 0 && Instant::now() >= deadline {
            tracing::info!(
                idle_secs = idle.as_secs(),
                "no connections, exiting until systemd starts us again"
            );
            ctx.request_stop(StopReason::Idle);
            return;
        }
        let busy = ctx.open_connections() > 0;
        tokio::select! {
            _ = ctx.stopped() => return,
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline), if !busy => {}
        }
    }
}

/// Pings the watchdog at half its timeout and keeps `STATUS=` current.
async fn heartbeat(ctx: Context, watchdog: Option<Duration>) {
    const STATUS_EVERY: Duration = Duration::from_secs(2);
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    // With no watchdog armed this branch is disabled below; the period is
    // irrelevant then.
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut last_status = String::new();
    loop {
        // Runs on through the drain: a long drain must not trip the watchdog.
        tokio::select! {
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify::watchdog(),
            _ = status_tick.tick() => {
                let status = ctx.status_line();
                if status != last_status {
                    notify::status(&status);
                    last_status = status;
                }
            }
        }
    }
}
