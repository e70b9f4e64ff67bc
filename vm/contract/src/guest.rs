//! What the guest says of itself and of the servers it checked: the first
//! event of every plan ([`GuestInfo`]) and the functional checks
//! ([`Functional`]) run through each reference socket.

use serde::{Deserialize, Serialize};

/// The guest a plan ran in: what the guest side reads of itself, and the
/// accelerator the host fills in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GuestInfo {
    /// Debian codename.
    pub release: String,
    /// systemd's version.
    pub systemd: String,
    /// `uname -r` in the guest.
    pub kernel: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// systemd's compile-time features (`systemctl --version`, line 2).
    pub features: String,
}

/// One functional check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Functional {
    /// The socket or service it concerns.
    pub unit: String,
    /// What was checked.
    pub check: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    #[serde(default)]
    pub detail: String,
}
