//! KVM or TCG.
//!
//! `/dev/kvm` can exist and open and still never run a guest: under nested
//! virtualisation (measured here: PVM) qemu either aborts or its vCPU spins
//! without executing a single guest instruction, and a trivial real-mode probe
//! even succeeds. So `auto` boots the image's own kernel under KVM with no root
//! disk and a short deadline: a working KVM reaches the kernel's "no root"
//! panic (and, with `panic=-1 -no-reboot`, qemu's exit) in about a second.
//! The outcome is cached per host boot, qemu version and kernel, because a
//! failing probe costs its whole deadline.
//!
//! The decision itself ([`decide`]) is a pure function of the request, the
//! device check and the probe, so it is tested without qemu.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::machine::{Accel, Probe};

/// What the caller asked for (`--accel`, whose values these are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccelRequest {
    /// KVM if a probe boot proves it works, else TCG.
    #[default]
    Auto,
    /// KVM, taken on the caller's word (no probe).
    Kvm,
    /// TCG, always.
    Tcg,
}

impl FromStr for AccelRequest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(AccelRequest::Auto),
            "kvm" => Ok(AccelRequest::Kvm),
            "tcg" => Ok(AccelRequest::Tcg),
            other => Err(Error::Config(format!("unknown accelerator {other:?} (auto, kvm or tcg)"))),
        }
    }
}

/// The accelerator chosen and a line saying why, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The accelerator to use.
    pub accel: Accel,
    /// Why, in one line ("KVM unusable here (...), using TCG").
    pub note: String,
}

/// Chooses the accelerator. `device` is the result of opening `/dev/kvm`
/// read-write; `probe` is only called for `auto` when the device opened.
pub fn decide(request: AccelRequest, device: Result<(), String>, probe: impl FnOnce() -> Probe) -> Decision {
    match request {
        AccelRequest::Tcg => Decision { accel: Accel::Tcg, note: "using TCG (requested)".into() },
        AccelRequest::Kvm => Decision { accel: Accel::Kvm, note: "using KVM (requested, not probed)".into() },
        AccelRequest::Auto => {
            let reason = match device {
                Err(reason) => reason,
                Ok(()) => match probe() {
                    Probe::Usable => {
                        return Decision {
                            accel: Accel::Kvm,
                            note: "KVM works here (probe boot), using KVM".into(),
                        }
                    }
                    Probe::Unusable(reason) => reason,
                },
            };
            Decision { accel: Accel::Tcg, note: format!("KVM unusable here ({reason}), using TCG") }
        }
    }
}

/// Whether `/dev/kvm` opens read-write (the cheap half of the check).
pub fn kvm_device() -> Result<(), String> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("/dev/kvm: {e}")),
    }
}

/// A remembered probe result: valid for one host boot, qemu and kernel.
#[derive(Debug, Serialize, Deserialize)]
struct CachedProbe {
    key: String,
    probe: Probe,
}

/// Runs (or recalls) the KVM probe boot of `kernel`. The result is kept in
/// `<cache>/accel-probe.json`, keyed by the host's boot ID, qemu's version and
/// the kernel file, so a broken KVM costs its deadline once per host boot.
pub fn probe_cached(cache_dir: &Path, kernel: &Path) -> Probe {
    let path = cache_dir.join("accel-probe.json");
    let key = probe_key(kernel);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(cached) = serde_json::from_str::<CachedProbe>(&text) {
            if cached.key == key {
                return cached.probe;
            }
        }
    }
    let probe = crate::qemu::probe_kvm(kernel);
    let cached = CachedProbe { key, probe: probe.clone() };
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let json = serde_json::to_string_pretty(&cached).expect("a probe always serialises");
        let _ = std::fs::write(&path, json);
    }
    probe
}

fn probe_key(kernel: &Path) -> String {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let meta = std::fs::metadata(kernel).map(|m| m.len()).unwrap_or(0);
    format!("{} {} {} {}", boot_id.trim(), crate::qemu::version(), kernel.display(), meta)
}
