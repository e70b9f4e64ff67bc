//! sandkasten-vm: boots a real systemd in a qemu guest to prove that
//! sandkasten's sandboxes hold.
//!
//! The machine running the harness need not boot with systemd (CI's does
//! not), so every claim about a unit's sandbox is checked inside a
//! throw-away guest whose PID 1 is a stock Debian systemd.
//!
//! This crate is the host side. What it says to the guest is the
//! `sandkasten-vm-contract` crate (re-exported as [`contract`]); the guest
//! side is `sandkasten-vm-guest` (re-exported as [`inside`]), which knows
//! only the contract. ARCHITECTURE.md draws the three and their layers.
//!
//! # Layout
//! - [`image`]: the guest recipe (package list, units, kernel arguments under
//!   `vm/guest/`, embedded at compile time), its hash, and the cached build
//!   (`mmdebstrap` → ext4 image + kernel + initrds).
//! - [`accel`]: KVM or TCG. `/dev/kvm` existing proves nothing (nested
//!   virtualisation may hand out a device whose vCPUs never run), so `auto`
//!   boots the guest kernel once under KVM with a short deadline.
//! - [`guest`]: [`Guest`] prepares an image and an accelerator once and boots
//!   runs from it; a [`Run`] holds what the guest reported and the timings.
//! - `qemu` (private): the qemu command line and the child process, which never
//!   outlives the harness.
//! - `initrd` (private): the tiny initrd (a cpio archive written by hand).
//! - [`payload`]: the servers, units and content staged for a run.
//! - [`machine`] and [`progress`]: the machine's choices (CPU model, initrd,
//!   accelerator) and the events a boot reports, below everything that boots.
//! - [`contract`]: the plan the host gives the guest and the events the guest
//!   answers with, typed once for both sides (its own crate).
//! - [`passes`] and [`variant`]: which probe passes a matrix or an ablation
//!   runs, and the units they run in, generated from the reference units.
//! - [`systemd_build`]: a systemd under test (`--systemd DIR`), installed
//!   over the release's own.
//! - [`inside`]: the guest side (`sandkasten-vm guest JOB`; its own crate).
//! - [`host_mode`]: the guest side's plan carried out on this machine
//!   (`enforce --host`).
//! - [`matrix`]: the guest's answer turned into ARCHITECTURE.md's schema, a table,
//!   JUnit, and a verdict, failing closed on every gap.
//! - [`shard`]: a matrix split across machines (`--shard I/N`) and its
//!   reports joined again (`sandkasten-vm merge`).
//! - [`ablation`]: the measured map of which directive holds which attempt.
//! - [`audit`]: the catalogue in a unit of one's own, with what closes each
//!   escape.
//! - [`lab`]: the lab steps measured in escapes, and the README's table.
//! - [`reliability`] and [`bench`]: the shipped http socket under crashes
//!   and hangs, and what its sandbox costs in requests/s and start time.
//!
//! # Protocol with the guest
//! `vm/guest/overlay/usr/lib/sandkasten/harness-runner` runs the command and
//! writes to three virtio serial ports: `sandkasten.results` (stdout, byte for
//! byte), `sandkasten.stderr`, and `sandkasten.control` (`start UPTIME`, then
//! `end STATUS UPTIME`). A run passes only when the `end` line arrived.
#![deny(missing_docs)]

pub mod ablation;
pub mod accel;
pub mod audit;
pub mod bench;
pub use sandkasten_vm_contract as contract;
pub mod enforcement;
mod error;
pub mod guest;
pub mod harden;
pub mod host_mode;
pub mod image;
mod initrd;
pub use sandkasten_vm_guest as inside;
pub mod jobs;
pub mod lab;
pub mod machine;
pub mod matrix;
pub mod passes;
pub mod payload;
mod process;
pub mod progress;
mod qemu;
pub mod release;
pub mod release_diff;
pub mod reliability;
pub mod shard;
pub mod systemd_build;
pub mod variant;

pub use accel::{Accel, AccelRequest};
pub use error::Error;
pub use guest::{Config, CpuModel, Event, Guest, InitrdKind, Run, Timings};
pub use image::{Image, Recipe};
pub use release::{Release, Releases};

use std::path::PathBuf;

/// The exit code of the CLI when the harness itself failed (EX_UNAVAILABLE),
/// kept apart from any status the guest command returns.
pub const EXIT_HARNESS_FAILURE: u8 = 69;

/// Where images, probe results and per-run logs live: `$SANDKASTEN_VM_CACHE`,
/// else `${XDG_CACHE_HOME:-$HOME/.cache}/sandkasten`. Outside the checkout so
/// that a fresh clone (CI) reuses an image built before.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SANDKASTEN_VM_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("sandkasten")
}
