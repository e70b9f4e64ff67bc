//! A systemd under test (`--systemd DIR`): the Debian packages of a build,
//! a local one or a backport, installed in the guest over the release's
//! own before systemd starts. The guest's initrd installs every package in
//! the payload with dpkg before it hands over to systemd, so the build's
//! packages only join the payload; the report names the build
//! ([`crate::contract::SystemdBuild`]) beside the image.
//!
//! Which packages a build needs is the release's: every package of the
//! systemd source the image has installed (bookworm's: `systemd`,
//! `systemd-sysv`, `libsystemd0`, `libsystemd-shared`, `libudev1`,
//! `udev`), in the build's version, and what the new version adds to their
//! dependencies (254 adds `systemd-dev`). dpkg refuses a set that leaves a
//! dependency open, and the run fails with its log.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::contract::SystemdBuild;
use crate::error::{Error, IoContext};
use crate::process::require_tool;

/// The packages of one build, read from a directory.
#[derive(Debug, Clone)]
pub struct SystemdDebs {
    /// The package files, in name order.
    pub files: Vec<PathBuf>,
    /// What a report says of them.
    pub build: SystemdBuild,
}

impl SystemdDebs {
    /// Every `*.deb` in `dir`, which must hold a package named `systemd`.
    pub fn read(dir: &Path) -> Result<SystemdDebs, Error> {
        require_tool("dpkg-deb", "dpkg")?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ctx(|| format!("--systemd {}: cannot list it", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "deb"))
            .collect();
        files.sort();
        let mut packages = Vec::new();
        let mut hash = Sha256::new();
        for file in &files {
            packages.push(name_and_version(file)?);
            hash.update(std::fs::read(file).ctx(|| format!("cannot read {}", file.display()))?);
        }
        if !packages.iter().any(|p| p.starts_with("systemd=")) {
            return Err(Error::Config(format!(
                "--systemd {}: no package named systemd among its {} .deb file(s); give the directory \
                 that holds a systemd build's packages (systemd, systemd-sysv, libsystemd0, \
                 libsystemd-shared, libudev1, udev, ...)",
                dir.display(),
                files.len()
            )));
        }
        let sha256: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        let build = SystemdBuild { from: dir.display().to_string(), packages, sha256 };
        Ok(SystemdDebs { files, build })
    }

    /// The version of the `systemd` package.
    pub fn version(&self) -> &str {
        self.build.packages.iter().find_map(|p| p.strip_prefix("systemd=")).unwrap_or_default()
    }

    /// Copies the packages into the payload at `payload`, beside the
    /// harness's own, with what dpkg needs to replace a systemd in one
    /// run: the overlay (laid on `/` before dpkg runs) lets it deconfigure
    /// the old systemd where a new package `Breaks:` it (254's
    /// `systemd-dev` breaks systemd << 253), and keeps the triggers from
    /// writing a stock initramfs nobody boots (a minute under TCG).
    pub fn stage(&self, payload: &Path) -> Result<(), Error> {
        let packages_dir = payload.join(crate::payload::PACKAGES_IN_PAYLOAD);
        std::fs::create_dir_all(&packages_dir).ctx(|| format!("cannot create {}", packages_dir.display()))?;
        for file in &self.files {
            let to = packages_dir.join(file.file_name().unwrap_or_default());
            std::fs::copy(file, &to).ctx(|| format!("cannot copy {} to {}", file.display(), to.display()))?;
        }
        let overlay = payload.join(crate::contract::paths::layout::OVERLAY);
        for (path, text) in DPKG_SETTINGS {
            let to = overlay.join(path);
            std::fs::create_dir_all(to.parent().expect("a file in a directory"))
                .ctx(|| format!("cannot create {}", to.display()))?;
            std::fs::write(&to, text).ctx(|| format!("cannot write {}", to.display()))?;
        }
        Ok(())
    }
}

/// Files laid on the guest's `/` for the install of a systemd build.
const DPKG_SETTINGS: [(&str, &str); 2] = [
    ("etc/dpkg/dpkg.cfg.d/sandkasten-systemd-under-test", "auto-deconfigure\n"),
    ("etc/initramfs-tools/update-initramfs.conf", "update_initramfs=no\nbackup_initramfs=no\n"),
];

/// How long a boot that installs a systemd build may take to reach the
/// guest side: dpkg replaces systemd in the initrd first.
pub const BOOT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// `systemd=254.26-1~bpo12+1`, from the package's control file.
fn name_and_version(file: &Path) -> Result<String, Error> {
    let output = Command::new("dpkg-deb")
        .arg("--show")
        .arg("--showformat=${Package}=${Version}")
        .arg(file)
        .output()
        .ctx(|| format!("cannot run dpkg-deb on {}", file.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !text.contains('=') {
        return Err(Error::Config(format!(
            "{} is not a Debian package: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(text)
}
