//! The canary: the other side of every attempt that aims outside the
//! sandbox.
//!
//! Started by the harness in the root namespaces before the probe, it opens
//! the targets (TCP on 127.0.0.1 and on a 192.0.2.0/24 address, UDP, an
//! abstract unix socket, a SysV shared memory segment, a POSIX message
//! queue, a process to signal and trace), records the host facts the probe
//! needs to tell "blocked" from "unsupported", and writes both into the
//! state file. Then it records everything that reaches it. The harness asks
//! for that record over a control socket (`canary-report`), so an escape is
//! confirmed from outside, not only by the probe's own account.
//!
//! The canary is single-threaded: one poll loop, every socket non-blocking,
//! and before answering a report it drains everything already queued, so a
//! probe that has finished is fully accounted for.
//!
//! # Layout
//! - `state`: the state file, the report and the greeting: the data the
//!   canary and the probe share, depending on nothing else of the crate.
//! - `server`: the canary process: targets, state file, poll loop.
//! - `host_facts`: what the canary learns about the host before the probe.
//! - `ids`: run id and attempt of whatever reached the canary.
//! - `client`: [`query`], the control socket's other side.
//! - `markers`: the marker prefix and [`scan_markers`].
//!
//! None of these imports the probe's context or its attempt families; what
//! they share with those lives in [`crate::sys`] and [`crate::host`].

mod client;
mod host_facts;
mod ids;
mod markers;
mod server;
mod state;

pub use client::query;
pub use host_facts::host_facts;
pub use markers::{scan_markers, MARKER_PREFIX};
pub use server::{run, CanaryConfig};
pub use state::{greeting, CanaryState, Event, HostFacts, Marker, Report, SHM_SIZE};
