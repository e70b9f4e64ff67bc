//! What one boot is asked to do: [`Config`], with the machine's choices
//! from [`crate::machine`]. Kept apart from the run loop so the settings a
//! caller fills in are read in one place, with their defaults.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::accel::AccelRequest;
use crate::image::Release;
use crate::machine::{CpuModel, InitrdKind};

/// What to boot and run. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Debian release of the guest.
    pub release: Release,
    /// `auto` probes KVM once and falls back to TCG.
    pub accel: AccelRequest,
    /// A directory copied to `/payload` in the guest (binaries, units, a
    /// script). Its `overlay/` subdirectory, if any, is copied onto `/` before
    /// systemd starts (tiny initrd) or before the command (stock initrd).
    pub payload_dir: Option<PathBuf>,
    /// The command to run as root in `/payload`; `None` runs `/payload/run`.
    pub command: Option<Vec<OsString>>,
    /// The whole run's deadline; `None`: 60 s under KVM, 300 s under TCG.
    pub timeout: Option<Duration>,
    /// qemu start → the guest script's `start` line. A boot that misses it
    /// has hung and is booted again; `None`: 30 s under KVM, 60 s under
    /// TCG ([`crate::Accel::default_boot_deadline`]).
    pub boot_deadline: Option<Duration>,
    /// `None`: `host` under KVM, `qemu64,+rdrand` under TCG.
    pub cpu: Option<CpuModel>,
    /// The initrd to boot with.
    pub initrd: InitrdKind,
    /// Extra kernel arguments after `vm/guest/cmdline.txt` (debugging,
    /// measuring boot levers; e.g. `systemd.log_level=debug`).
    pub extra_cmdline: Vec<String>,
    /// Debian packages the guest image holds beyond the recipe's own
    /// (`--package`: the interpreter or server a user's unit runs); each
    /// set is an image of its own, built once and cached.
    pub packages: Vec<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs (ARCHITECTURE.md, boot levers: 1 is much slower than 2 under TCG).
    pub smp: u32,
    /// Images, probe cache and run logs; `None`: [`crate::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Where this run's console log (and port files) go; `None`: a fresh
    /// directory under `<cache>/runs/` (the newest 30 are kept).
    pub run_dir: Option<PathBuf>,
}

impl Config {
    /// Defaults: auto accelerator, tiny initrd, 1 GiB, 2 vCPUs, `/payload/run`.
    pub fn new(release: Release) -> Config {
        Config {
            release,
            accel: AccelRequest::Auto,
            payload_dir: None,
            command: None,
            timeout: None,
            boot_deadline: None,
            cpu: None,
            initrd: InitrdKind::Tiny,
            extra_cmdline: Vec::new(),
            packages: Vec::new(),
            memory_mib: 1024,
            smp: 2,
            cache_dir: None,
            run_dir: None,
        }
    }

    pub(super) fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(crate::default_cache_dir)
    }
}
