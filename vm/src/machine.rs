//! The machine qemu emulates: the choices a boot's [`crate::Config`] makes
//! and the qemu command line (`qemu`) reads, and the accelerator the
//! decision ([`crate::accel`]) picks, kept below all three.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The CPU model qemu emulates (`-cpu`); also the `--cpu` flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuModel {
    /// `qemu64,+rdrand`: the fastest under TCG (ARCHITECTURE.md, boot levers); RDRAND keeps
    /// dbus from waiting for entropy. Lacks SSE4.2: payloads must be built for
    /// baseline x86-64.
    Qemu64,
    /// `max`: every feature TCG can emulate.
    Max,
    /// `host` under KVM (`max` under TCG).
    Host,
}

/// Which initrd boots the guest; also the `--initrd` flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InitrdKind {
    /// Busybox + seven modules + switch_root: the fastest.
    #[default]
    Tiny,
    /// Debian's initramfs-tools image (udev, scripts): for comparison.
    Stock,
}

/// The accelerator a guest runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// qemu's software emulation: slow (tens of seconds to boot) but everywhere.
    Tcg,
}

impl Accel {
    /// The default whole-run deadline: boot plus guest script.
    pub fn default_timeout(self) -> Duration {
        match self {
            Accel::Kvm => Duration::from_secs(60),
            Accel::Tcg => Duration::from_secs(300),
        }
    }

    /// The default boot deadline: qemu start → the guest script's `start`
    /// line. A lean guest gets there in 5 to 10 s under TCG (the slowest
    /// of 30 boots in a CI run: 9.4 s), a stock initrd's in about 30 s; a
    /// boot that takes this long has hung.
    pub fn default_boot_deadline(self) -> Duration {
        match self {
            Accel::Kvm => Duration::from_secs(30),
            Accel::Tcg => Duration::from_secs(60),
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The outcome of a probe boot under KVM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Probe {
    /// The kernel ran to its end under KVM.
    Usable,
    /// KVM cannot run this guest; why.
    Unusable(String),
}
