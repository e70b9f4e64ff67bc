//! `sandkasten-lockdown PROGRAM ARGS...` on real programs: the program runs
//! with its arguments and exit status intact, under the lockdown, and each
//! thing the lockdown refuses is shown done by the same program without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WRAPPER: &str = env!("CARGO_BIN_EXE_sandkasten-lockdown");

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("start the command");
    eprintln!(
        "status {}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sh -c SCRIPT`, under the wrapper or bare.
fn sh(locked: bool, script: &str) -> Output {
    let mut command = if locked { Command::new(WRAPPER) } else { Command::new("sh") };
    if locked {
        command.arg("sh");
    }
    run(command.args(["-c", script]))
}

#[test]
fn the_program_gets_its_arguments_and_its_status_is_the_wrappers() {
    let out = run(Command::new(WRAPPER).args(["printf", "%s|", "-n", "a b", "--help"]));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-n|a b|--help|");
    assert_eq!(sh(true, "exit 7").status.code(), Some(7));
    // Same process: the program has the pid the wrapper was started with
    // (what systemd watches as the service's main process).
    let child = Command::new(WRAPPER)
        .args(["sh", "-c", "echo $$"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), started.to_string());
}

#[test]
fn a_program_that_cannot_run_is_named_with_the_status_env_uses() {
    let out = run(Command::new(WRAPPER).arg("no-such-program-here"));
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run no-such-program-here"));
    let plain = tempfile::NamedTempFile::new().unwrap();
    let out = run(Command::new(WRAPPER).arg(plain.path()));
    assert_eq!(out.status.code(), Some(126), "a file that is not executable");
    let out = run(&mut Command::new(WRAPPER));
    assert_eq!(out.status.code(), Some(2), "no program: a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("<PROGRAM>"));
}

/// Code written through /proc/self/mem: the open for writing is refused
/// under the lockdown (Landlock: /proc is no place to write), and works for
/// the same shell without it.
#[test]
fn proc_self_mem_is_not_writable_under_the_lockdown() {
    let script = "exec 3<>/proc/self/mem && echo opened";
    let bare = sh(false, script);
    assert_eq!(String::from_utf8_lossy(&bare.stdout).trim(), "opened", "the control must open it");
    let locked = sh(true, script);
    assert!(!locked.status.success());
    assert!(String::from_utf8_lossy(&locked.stderr).contains("Permission denied"));
}

/// A directory that is none of the lockdown's writable places (not beneath
/// /tmp, /var/tmp or /dev, whatever the checkout's place): created for the
/// test, removed after.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Option<Scratch> {
        let base =
            if runs_as_root() { PathBuf::from("/var/lib") } else { PathBuf::from(std::env::var_os("HOME")?) };
        let dir = base.join(format!("sandkasten-lockdown-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runs_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

#[test]
fn files_are_written_only_in_the_writable_places() {
    let Some(scratch) = Scratch::new() else {
        eprintln!("skipped: no directory outside the writable places to try");
        return;
    };
    let outside = scratch.0.join("written");
    let script = format!("echo x > {}", outside.display());
    assert!(sh(false, &script).status.success(), "the control writes {}", outside.display());
    std::fs::remove_file(&outside).unwrap();
    let locked = sh(true, &script);
    assert!(!locked.status.success() && !outside.exists(), "the lockdown let it write {}", outside.display());
    // /tmp stays writable (PrivateTmp= gives each unit its own).
    let inside = Path::new("/tmp").join(format!("sandkasten-lockdown-test-{}", std::process::id()));
    let locked = sh(true, &format!("echo x > {0} && cat {0} && rm {0}", inside.display()));
    assert_eq!(String::from_utf8_lossy(&locked.stdout).trim(), "x");
}
