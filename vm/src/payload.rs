//! The payload of a matrix or `exec --unit` run: the Debian packages
//! `sandkasten` (the servers, the reference units, the egress guard and the
//! sample content, exactly as an admin installs them; see
//! `services/package/Cargo.toml`) and `sandkasten-probe` (the probe and this
//! harness's guest side), which the guest installs with dpkg at boot; units
//! given on the command line and generated units in the payload's
//! `overlay/etc/systemd/system`; and the guest's job (`job.json`, run by the
//! same `run` script for every job; `sandkasten_vm_contract::job`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext};

pub use crate::contract::job::RUN_SCRIPT;
use crate::contract::paths::layout;
use crate::contract::GuestJob;

/// Where the packages sit in the payload; the guest's initrd (or, with the
/// stock initrd, the harness runner) installs every `.deb` there with dpkg.
pub const PACKAGES_IN_PAYLOAD: &str = layout::PACKAGES;

/// The Debian packages the guest installs, each named after the crate that
/// describes it: the servers with their units, and the probe with this
/// harness's guest side.
pub const PACKAGES: [&str; 2] = ["sandkasten", "sandkasten-probe"];

/// The binaries those packages hold.
pub const BINARIES: [&str; 6] = [
    "sandkasten-http",
    "sandkasten-gopher",
    "sandkasten-echo",
    "sandkasten-lockdown",
    "sandkasten-probe",
    "sandkasten-vm",
];

/// The workspace this harness was built from (the parent of `vm/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("vm/ has a parent").to_owned()
}

/// What one build made: the Debian packages.
#[derive(Debug, Clone)]
pub struct Build {
    /// One `.deb` per name in [`PACKAGES`], built from the same binaries.
    pub packages: Vec<PathBuf>,
    /// The directory they were written to, this build's own: two harness
    /// commands at once (a test run beside an audit) once shared
    /// `target/debian`, and one copied the other's half-written package.
    _dir: std::sync::Arc<tempfile::TempDir>,
}

/// Builds the release binaries with cargo, printing its progress, then the
/// Debian packages from them with cargo-deb (`--no-build`: the same
/// binaries, not a second build).
///
/// Release, because the guest runs under TCG where a debug build of the
/// probe's attempts would be needlessly slow; the default target is
/// baseline x86-64, which the guest's `-cpu qemu64` runs.
pub fn build(workspace: &Path) -> Result<Build, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace).args(["build", "--release", "--quiet"]);
    for bin in BINARIES {
        cmd.args(["--bin", bin]);
    }
    let status = cmd.status().ctx(|| "failed to run cargo".to_owned())?;
    if !status.success() {
        return Err(Error::Command {
            command: "cargo build --release".into(),
            status: status.to_string(),
            output: "(cargo printed it above)".into(),
        });
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let parent = target.join("debian");
    mkdir(&parent)?;
    let dir = tempfile::Builder::new().prefix("harness-").tempdir_in(&parent).map_err(|e| io(&parent, e))?;
    let packages =
        PACKAGES.iter().map(|name| package(&cargo, workspace, name, dir.path())).collect::<Result<_, _>>()?;
    Ok(Build { packages, _dir: std::sync::Arc::new(dir) })
}

/// Runs `cargo deb` for the crate `name` on the binaries already built;
/// the path of the package it wrote into `out_dir`.
fn package(cargo: &std::ffi::OsStr, workspace: &Path, name: &str, out_dir: &Path) -> Result<PathBuf, Error> {
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args(["deb", "--package", name, "--no-build", "--quiet", "--output"])
        .arg(out_dir)
        .output()
        .ctx(|| "failed to run cargo deb".to_owned())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("no such command") {
            return Err(Error::Config(
                "cargo-deb is not installed: run scripts/package once (it installs it), \
                 or `cargo install cargo-deb --locked`"
                    .into(),
            ));
        }
        return Err(Error::Command {
            command: format!("cargo deb -p {name}"),
            status: out.status.to_string(),
            output: stderr.trim().to_owned(),
        });
    }
    // cargo-deb prints the path of the package it wrote, last.
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| workspace.join(l.trim()))
        .ok_or_else(|| Error::Config(format!("cargo deb -p {name} named no package: {}", stdout.trim())))
}

/// Lays out a payload in `dir`: `build`'s packages, `plan` as the `run`
/// script, and `extra_units` (unit files given on the command line) in the
/// overlay's `/etc/systemd/system`, where they override a packaged unit of
/// the same name.
pub fn stage(dir: &Path, build: &Build, plan: &str, extra_units: &[PathBuf]) -> Result<(), Error> {
    let units = dir.join(layout::UNITS);
    let packages = dir.join(PACKAGES_IN_PAYLOAD);
    for d in [&units, &packages] {
        mkdir(d)?;
    }
    for package in &build.packages {
        copy(package, &packages.join(package.file_name().unwrap_or_default()))?;
    }
    for unit in extra_units {
        let name = unit
            .file_name()
            .ok_or_else(|| Error::Config(format!("{} is not a unit file", unit.display())))?;
        copy(unit, &units.join(name))?;
    }
    let run = dir.join(layout::RUN);
    std::fs::write(&run, plan).map_err(|e| io(&run, e))?;
    set_mode(&run, 0o755)
}

/// Adds the guest side's job to a payload staged with [`RUN_SCRIPT`].
pub fn stage_job(dir: &Path, job: &GuestJob) -> Result<(), Error> {
    write(&dir.join(layout::JOB), &serde_json::to_string_pretty(job).expect("a job serializes"))
}

/// A file or directory of the user's (`--binary`, `--files`) and where it
/// goes in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// On this machine.
    pub from: PathBuf,
    /// In the guest: an absolute path.
    pub to: PathBuf,
}

/// Adds `installs` to a staged payload's overlay, which the guest lays
/// over its root before systemd starts: each file (or directory tree, with
/// its modes and symbolic links) lands exactly at its `to`.
pub fn stage_installs(dir: &Path, installs: &[Install]) -> Result<(), Error> {
    let overlay = dir.join(layout::OVERLAY);
    for install in installs {
        let relative = install.to.strip_prefix("/").map_err(|_| {
            Error::Config(format!("{}: the guest path must be absolute", install.to.display()))
        })?;
        copy_tree(&install.from, &overlay.join(relative))?;
    }
    Ok(())
}

/// Copies a file, a symbolic link or a whole directory tree.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| io(from, e))?;
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| io(from, e))?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(target, to).map_err(|e| io(to, e))
    } else if meta.is_dir() {
        mkdir(to)?;
        for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
            let entry = entry.map_err(|e| io(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        set_mode(to, std::os::unix::fs::PermissionsExt::mode(&meta.permissions()))
    } else {
        copy(from, to)
    }
}

/// Adds a plan to a payload staged with [`RUN_SCRIPT`]: the generated
/// units beside the reference units, and the plan as the guest's job.
pub fn stage_plan(dir: &Path, staged: &crate::passes::Staged) -> Result<(), Error> {
    let units = dir.join(layout::UNITS);
    for g in &staged.units {
        write(&units.join(&g.service_name), &g.service)?;
        if let (Some(name), Some(text)) = (&g.socket_name, &g.socket) {
            write(&units.join(name), text)?;
        }
    }
    stage_job(dir, &GuestJob::Plan { plan: staged.plan.clone() })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { context: path.display().to_string(), source }
}

fn mkdir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| io(path, e))
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to).map(drop).map_err(|e| io(from, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))
}
