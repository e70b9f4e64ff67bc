//! Telling systemd how we are: `READY=1`, `STATUS=`, `WATCHDOG=1`,
//! `STOPPING=1` (sd_notify(3)).
//!
//! The messages go out through libsystemd, which sends each datagram to the
//! notify socket's address (`sendmsg`) instead of connecting to it first:
//! the units' system-call allow-lists leave out `connect(2)`, which would
//! let a compromised server re-aim the sockets systemd hands over.
//!
//! Everything here is a no-op when `NOTIFY_SOCKET` is unset, so the same
//! binary runs under `Type=simple`, `Type=notify` and from a shell. A failed
//! send is logged, never fatal: a service that cannot reach the notify socket
//! still serves, and systemd will report the missing readiness itself.

use std::time::Duration;

use libsystemd::daemon::NotifyState;

/// Sends one or more states to the service manager.
fn send(states: &[NotifyState]) {
    if let Err(err) = libsystemd::daemon::notify(false, states) {
        tracing::warn!(%err, "failed to notify the service manager");
    }
}

/// `READY=1` with a first status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status.to_owned())]);
}

/// `STATUS=` with a human-readable line, shown by `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status.to_owned())]);
}

/// `WATCHDOG=1`: we are alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// `STOPPING=1` with the reason.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status.to_owned())]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) recommends; `None` when no watchdog is armed for
/// this process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}
