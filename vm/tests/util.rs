use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// TCG guests are CPU-bound on a 2-core machine: one at a time keeps the
/// timings (and the timeout test) meaningful.
static GUEST: Mutex<()> = Mutex::new(());

/// The right to boot a guest, or `None` when `SANDKASTEN_VM_TESTS=skip`
/// (what `scripts/test --no-vm` sets): then the test says so and returns.
pub fn one_guest_at_a_time() -> Option<MutexGuard<'static, ()>> {
    if std::env::var_os("SANDKASTEN_VM_TESTS").is_some_and(|v| v == "skip") {
        eprintln!("skipped: SANDKASTEN_VM_TESTS=skip (scripts/test --no-vm)");
        return None;
    }
    Some(GUEST.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Runs the sandkasten-vm binary with `args`, printing everything a failing
/// assertion needs to be understood.
pub fn sandkasten_vm(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandkasten-vm"));
    cmd.args(args);
    let out = cmd.output().expect("run sandkasten-vm");
    eprintln!("$ sandkasten-vm {}", args.join(" "));
    eprintln!("status: {}", out.status);
    eprintln!("stdout:\n{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Copies the files (not the directories) of `from/SUB` to `to/SUB` for
/// each of `subs` (`""`: `from` itself): what a payload needs of the
/// workspace.
pub fn copy_tree(from: &Path, to: &Path, subs: &[&str]) {
    for sub in subs {
        let (from, to) = (from.join(sub), to.join(sub));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// A payload for host mode in a guest: the release build's packages,
/// `script` as its run script, and the workspace's reference units with
/// their ablation maps in `/payload/units` (what `--units` reads there).
pub fn host_mode_payload(script: &str) -> tempfile::TempDir {
    use sandkasten_vm::payload;
    let workspace = payload::workspace_root();
    let build = payload::build(&workspace).expect("release build");
    let dir = tempfile::tempdir().unwrap();
    payload::stage(dir.path(), &build, script, &[]).expect("payload");
    copy_tree(&workspace.join("units"), &dir.path().join("units"), &["", "ablation"]);
    dir
}
