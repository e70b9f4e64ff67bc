//! `sandkasten-probe`: proves that a systemd sandbox stops each escape
//! attempt of the catalogue, while the same attempt escapes in an
//! unsandboxed control.
//!
//! The probe is built to be hard to fool. An attempt reports only what it
//! observed; whether that is `blocked` is decided against the attempt's
//! accepted outcomes, and anything unforeseen is an `error`. Escapes that
//! leave the sandbox are confirmed from outside by the canary. Facts that
//! decide "unsupported" come from the canary too, not from inside the
//! sandbox under test.
//!
//! # Layout
//! - [`catalogue`]: the attempts as data (id, directive, accepted outcomes).
//! - [`verdict`]: outcomes, verdicts and the one place they are classified.
//! - [`runner`]: the lockdown once, then one forked process per attempt,
//!   deadline, group kill.
//! - [`context`]: options, run id, the canary's facts, scratch files.
//! - [`canary`]: the targets outside the sandbox and their report, one
//!   concept per file: `canary/state.rs` (the state file, report and
//!   greeting the probe shares with the canary), `server.rs` (the canary
//!   process and its poll loop), `host_facts.rs`, `ids.rs` (who reached a
//!   target), `client.rs` ([`canary::query`]), `markers.rs` (the marker
//!   prefix and scan). It imports neither [`context`] nor any attempt
//!   family; [`context`] imports its state types and marker prefix.
//! - Attempt families: [`net`], [`handover`], [`fs`], [`code`], [`dev`], [`privilege`],
//!   [`namespaces`], [`syscalls`], [`memory`], [`resources`], [`ipc`],
//!   [`siblings`].
//! - [`output`], [`cli`]: rendering and the command line; [`sys`]: raw
//!   system-call helpers; [`host`]: the disk and ABI questions the canary
//!   and the attempt families both ask.
//!
//! The probe needs `unsafe` to make raw system calls; each block says why
//! it is sound.
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod canary;
pub mod catalogue;
pub mod cli;
pub mod code;
pub mod context;
pub mod dev;
pub mod fs;
pub mod handover;
pub mod host;
pub mod ipc;
pub mod memory;
pub mod namespaces;
pub mod net;
pub mod output;
pub mod privilege;
pub mod resources;
pub mod runner;
pub mod siblings;
pub mod sys;
pub mod syscalls;
pub mod verdict;
