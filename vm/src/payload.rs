//! The payload of a matrix or `exec --unit` run: the workspace's release
//! binaries, the reference units and the sample content, laid out in the
//! payload's `overlay/` exactly where `scripts/install` puts them
//! (`/usr/libexec/sandkasten`, `/etc/systemd/system`, `/usr/share/sandkasten`),
//! so the guest boots with them in place; plus the guest plan as `run`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// The guest side of a matrix or ablation: `sandkasten-vm inside` (see
/// [`crate::inside`]) with the plan the host wrote beside it.
pub const INSIDE_PLAN: &str = "#!/bin/sh\n\
# The guest side of a matrix or ablation run (vm/src/inside).\n\
exec /usr/libexec/sandkasten/sandkasten-vm inside /payload/plan.json\n";

/// The guest side of `exec --unit` (`vm/plan/in-unit`).
pub const IN_UNIT_PLAN: &str = include_str!("../plan/in-unit");

/// The binaries the guest needs: the servers, the probe, and this harness
/// for its guest side.
pub const BINARIES: [&str; 5] =
    ["sandkasten-http", "sandkasten-gopher", "sandkasten-echo", "sandkasten-probe", "sandkasten-vm"];

/// The workspace this harness was built from (the parent of `vm/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("vm/ has a parent").to_owned()
}

/// Builds the release binaries with cargo, printing its progress.
///
/// Release, because the guest runs under TCG where a debug build of the
/// probe's attempts would be needlessly slow; the default target is
/// baseline x86-64, which the guest's `-cpu qemu64` runs.
pub fn build_binaries(workspace: &Path) -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args(["build", "--release", "--quiet"]);
    for bin in BINARIES {
        cmd.args(["--bin", bin]);
    }
    let status = cmd.status().map_err(|e| Error::Config(format!("failed to run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Config(format!("cargo build --release failed ({status})")));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release"))
}

/// Lays out a payload in `dir`: binaries from `bin_dir`, units and content
/// from `workspace`, `plan` as the `run` script, and `extra_units` (unit
/// files given on the command line) beside the reference units.
pub fn stage(
    dir: &Path,
    workspace: &Path,
    bin_dir: &Path,
    plan: &str,
    extra_units: &[PathBuf],
) -> Result<(), Error> {
    let overlay = dir.join("overlay");
    let libexec = overlay.join("usr/libexec/sandkasten");
    let units = overlay.join("etc/systemd/system");
    let share = overlay.join("usr/share/sandkasten");
    for d in [&libexec, &units, &share] {
        mkdir(d)?;
    }
    for bin in BINARIES {
        copy(&bin_dir.join(bin), &libexec.join(bin))?;
    }
    for entry in read_dir(&workspace.join("units"))? {
        let name = entry.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.ends_with(".socket") || name.ends_with(".service") {
            copy(&entry, &units.join(&name))?;
        }
    }
    for unit in extra_units {
        let name = unit
            .file_name()
            .ok_or_else(|| Error::Config(format!("{} is not a unit file", unit.display())))?;
        copy(unit, &units.join(name))?;
    }
    // The egress guard's rules, where sandkasten-egress.service loads them.
    copy(&workspace.join("units/sandkasten-egress.nft"), &share.join("sandkasten-egress.nft"))?;
    copy_tree(&workspace.join("services/http/sample"), &share.join("www"))?;
    copy_tree(&workspace.join("services/gopher/sample"), &share.join("gopher"))?;
    let run = dir.join("run");
    std::fs::write(&run, plan).map_err(|e| io(&run, e))?;
    set_mode(&run, 0o755)
}

/// Adds a plan to a staged payload: the generated units beside the
/// reference units, and the plan for `sandkasten-vm inside`.
pub fn stage_plan(dir: &Path, staged: &crate::passes::Staged) -> Result<(), Error> {
    let units = dir.join("overlay/etc/systemd/system");
    for g in &staged.units {
        write(&units.join(&g.service_name), &g.service)?;
        if let (Some(name), Some(text)) = (&g.socket_name, &g.socket) {
            write(&units.join(name), text)?;
        }
    }
    let plan = serde_json::to_string_pretty(&staged.plan).expect("a plan serializes");
    write(&dir.join("plan.json"), &plan)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("{}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| io(path, e))
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to).map(drop).map_err(|e| io(from, e))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    Ok(entries)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    mkdir(to)?;
    for entry in read_dir(from)? {
        let target = to.join(entry.file_name().unwrap_or_default());
        if entry.is_dir() {
            copy_tree(&entry, &target)?;
        } else {
            copy(&entry, &target)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))
}
