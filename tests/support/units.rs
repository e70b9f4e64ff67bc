//! The reference units in units/ and the lab steps in units/lab/: reading
//! them, and checking them with systemd's own tools.
//!
//! Each unit that runs one of our servers is checked by the crate that
//! builds that server, against its own binary (`CARGO_BIN_EXE_*`): [`owners`]
//! says which units those are, [`verify`] runs `systemd-analyze verify` with
//! the binary in place, [`assert_exec_paths_cover`] compares what the binary
//! loads with `ExecPaths=`. tests/units.rs checks what needs no binary of
//! ours, and that every unit in units/ has an owner here.

use std::path::{Path, PathBuf};
use std::process::Command;

use sandkasten_vm_contract::reference;

/// The lab steps (units/lab/): each runs sandkasten-http.
const LAB_STEPS: [&str; 7] = [
    "lab/sandkasten-lab0.service",
    "lab/sandkasten-lab1.service",
    "lab/sandkasten-lab2.service",
    "lab/sandkasten-lab3.socket",
    "lab/sandkasten-lab3.service",
    "lab/sandkasten-lab4.socket",
    "lab/sandkasten-lab4.service",
];

/// The units that run each server binary, by the binary's name: the
/// reference deployment (`sandkasten_vm_contract::reference`, the one
/// list of it) and the lab steps. The crate that builds the binary checks
/// them against it.
pub fn owners() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut owners: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for server in reference::SERVERS {
        let units = [server.socket, server.service];
        match owners.iter_mut().find(|(binary, _)| *binary == server.binary) {
            Some((_, owned)) => owned.extend(units),
            None => owners.push((server.binary, units.to_vec())),
        }
    }
    let http = owners.iter_mut().find(|(binary, _)| *binary == reference::HTTP.binary).expect("http runs");
    http.1.extend(LAB_STEPS);
    owners
}

/// The egress guard's unit: it runs nft, no binary of ours, and every
/// reference socket requires it (so [`verify`] always puts it in place).
pub const EGRESS_GUARD: &str = "sandkasten-egress.service";

/// The units [`owners`] lists for `binary`.
pub fn owned_by(binary: &str) -> Vec<&'static str> {
    owners()
        .into_iter()
        .find(|(owner, _)| *owner == binary)
        .map(|(_, units)| units)
        .unwrap_or_else(|| panic!("no units run {binary} (see sandkasten_tests::units::owners)"))
}

/// The workspace's units/ directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").join("units")
}

/// The path of unit `name` (as in [`owners`]: `lab/…` for a lab step), as
/// a string for messages and `systemd-analyze` arguments.
pub fn reference(name: &str) -> String {
    dir().join(name).to_str().expect("the checkout's path is UTF-8").to_owned()
}

/// Runs `systemd-analyze` with `args`: whether it succeeded, and its stdout
/// and stderr.
pub fn analyze(args: &[&str]) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze not found: install Debian's systemd package");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The `[Service]` section of a unit, as its lines.
pub fn service_section(unit: impl AsRef<Path>) -> Vec<String> {
    let unit = unit.as_ref();
    let text = std::fs::read_to_string(unit).unwrap_or_else(|e| panic!("{}: {e}", unit.display()));
    text.lines()
        .skip_while(|l| *l != "[Service]")
        .take_while(|l| !l.starts_with("[Install]"))
        .map(str::to_owned)
        .collect()
}

/// All values of `key=` in a unit's `[Service]` section.
pub fn values(unit: impl AsRef<Path>, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    service_section(unit).iter().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
}

/// Runs `systemd-analyze verify` on `units` (named as in [`owners`]) in a
/// root with systemd's own units, the egress guard and its nft, and each of
/// `binaries` (name, path) where `ExecStart=` expects it: it must pass
/// without a word. Then, for each binary, that verify notices it missing.
pub fn verify(units: &[&str], binaries: &[(&str, &Path)]) {
    let root = tempfile::tempdir().unwrap();
    let system = root.path().join("etc/systemd/system");
    let libexec = root.path().join("usr/libexec/sandkasten");
    std::fs::create_dir_all(&system).unwrap();
    std::fs::create_dir_all(&libexec).unwrap();
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    let status = Command::new("cp")
        .args(["-r", "/usr/lib/systemd/system"])
        .arg(root.path().join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(status.success(), "copying /usr/lib/systemd/system failed (is systemd installed?)");
    for (name, path) in binaries {
        std::fs::copy(path, libexec.join(name)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    // The egress guard and its program.
    let nft = Path::new("/usr/sbin/nft");
    assert!(nft.exists(), "/usr/sbin/nft not found: install Debian's nftables");
    std::fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
    std::fs::copy(nft, root.path().join("usr/sbin/nft")).unwrap();
    std::fs::copy(dir().join(EGRESS_GUARD), system.join(EGRESS_GUARD)).unwrap();
    let mut names = Vec::new();
    for unit in units {
        let name = Path::new(unit).file_name().unwrap().to_str().unwrap();
        std::fs::copy(dir().join(unit), system.join(name)).unwrap_or_else(|e| panic!("{unit}: {e}"));
        names.push(name.replace("@.service", "@instance.service"));
    }
    let root_arg = format!("--root={}", root.path().display());
    let run = || {
        let mut args = vec!["verify", root_arg.as_str()];
        args.extend(names.iter().map(String::as_str));
        analyze(&args)
    };
    let (ok, text) = run();
    assert!(ok && text.trim().is_empty(), "systemd-analyze verify {names:?} complained:\n{text}");

    // And it does notice a missing program.
    for (name, path) in binaries {
        std::fs::remove_file(libexec.join(name)).unwrap();
        let (ok, text) = run();
        assert!(!ok && text.contains(name), "verify {names:?} missed a missing {name}:\n{text}");
        std::fs::copy(path, libexec.join(name)).unwrap();
    }
}

/// [`verify`] of the units [`owners`] lists for `binary`, with `path` (the
/// crate's `CARGO_BIN_EXE_<binary>`) in place.
pub fn verify_owned(binary: &str, path: impl AsRef<Path>) {
    verify(&owned_by(binary), &[(binary, path.as_ref())]);
}

/// `ExecPaths=` names single library files: a binary that starts loading
/// another library would fail to start under the unit. Checks with `ldd`
/// that every library `path` loads is covered by `ExecPaths=` in each
/// service [`owners`] lists for `binary` that sets `NoExecPaths=`.
pub fn assert_exec_paths_cover(binary: &str, path: impl AsRef<Path>) {
    let path = path.as_ref();
    let out = Command::new("ldd").arg(path).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let libs: Vec<&str> =
        text.lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/'))).collect();
    assert!(!libs.is_empty(), "ldd {} names no library:\n{text}", path.display());
    let services: Vec<&str> = owned_by(binary)
        .iter()
        .copied()
        .filter(|u| u.ends_with(".service") && !values(reference(u), "NoExecPaths").is_empty())
        .collect();
    assert!(!services.is_empty(), "no unit that runs {binary} sets NoExecPaths=");
    for unit in services {
        let exec_paths: Vec<String> = values(reference(unit), "ExecPaths")
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_owned))
            .collect();
        for lib in &libs {
            let real = std::fs::canonicalize(lib).unwrap_or_else(|e| panic!("{lib}: {e}"));
            let covered = exec_paths.iter().any(|p| real.starts_with(p));
            assert!(
                covered,
                "{unit}: {binary} loads {} (as {lib}), which ExecPaths= does not name",
                real.display()
            );
        }
    }
}
