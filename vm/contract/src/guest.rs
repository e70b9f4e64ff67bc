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
    /// The image the guest booted, filled in by the host; absent on a
    /// host of one's own (`--host`) and in recorded answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
}

/// Which build of a release a report measured: a release's packages move
/// (sid's daily), so its codename and systemd's version line do not say.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageInfo {
    /// When the image was built, UTC, RFC 3339.
    pub built: String,
    /// Its recipe hash (the tail of its cache directory's name).
    pub recipe: String,
    /// The packages a sandbox goes through, `name=version`: the kernel,
    /// systemd and the libraries it sandboxes with, as the image has them.
    pub packages: Vec<String>,
    /// The systemd build installed over the image's own before systemd
    /// started (`--systemd DIR`); absent when the image's own ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_build: Option<SystemdBuild>,
}

/// A systemd under test: Debian packages of a build (a local one, a
/// backport) that replace the release's own in the guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SystemdBuild {
    /// The directory they came from, as given.
    pub from: String,
    /// Its packages, `name=version`.
    pub packages: Vec<String>,
    /// SHA-256 over the package files in name order (16 hex digits): two
    /// builds of one version differ here.
    pub sha256: String,
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
