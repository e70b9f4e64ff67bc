//! The run loop against a fake qemu (a shell script): retries, crash
//! reports and the port protocol, in milliseconds and without an image.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use sandkasten_vm::guest::BOOTS;
use sandkasten_vm::image::Recipe;
use sandkasten_vm::{Release, EXIT_HARNESS_FAILURE};

/// Plays qemu: counts its starts, crashes or hangs before the guest side
/// starts as `FAKE_MODE` says, else writes a result to the ports (control is port0, results port1, stderr port2).
const FAKE_QEMU: &str = r#"#!/bin/bash
n=$(( $(cat "$FAKE_STATE/starts" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$FAKE_STATE/starts"
if [[ $FAKE_MODE == crash || ( $FAKE_MODE == crash-once && $n == 1 ) ]]; then
    echo "boom: attempt $n" >&2
    exit 1
fi
if [[ $FAKE_MODE == powers-off ]]; then
    exit 0
fi
hangs=false
[[ $FAKE_MODE == hangs || ( $FAKE_MODE == hangs-once && $n == 1 ) ]] && hangs=true
for arg in "$@"; do
    case $arg in
    file,id=port0,path=*) control=${arg#*path=} ;;
    file,id=port1,path=*) results=${arg#*path=} ;;
    file,id=port2,path=*) errors=${arg#*path=} ;;
    file:*) console=${arg#file:} ;;
    esac
done
echo "fake console line" >>"$console"
if $hangs; then
    echo "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [systemd:1]" >>"$console"
    exec sleep 30
fi
echo "start 1.5" >>"$control"
printf '{"fake":%d}' "$n" >>"$results"
echo "to stderr" >>"$errors"
echo "end 4 2.5" >>"$control"
exec sleep 30
"#;

/// A cache with an "image" whose files only need to exist.
fn fake_cache(root: &Path) {
    let dir = root.join("images").join(Recipe::new(Release::Bookworm).key());
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["rootfs.img", "vmlinuz", "initrd.tiny", "initrd.stock"] {
        std::fs::write(dir.join(f), b"").unwrap();
    }
    let manifest = r#"{"release":"bookworm","recipe_hash":"x","kernel":"6.1","systemd":"252",
        "mirror":"http://m","build_seconds":0.0,"packages":[]}"#;
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
}

fn run_fake(mode: &str, args: &[&str]) -> (Output, u32) {
    let tmp = tempfile::tempdir().unwrap();
    fake_cache(&tmp.path().join("cache"));
    let qemu = tmp.path().join("qemu");
    std::fs::write(&qemu, FAKE_QEMU).unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sandkasten-vm"))
        .args(["exec", "--accel", "tcg", "--timeout", "20", "--cache-dir"])
        .arg(tmp.path().join("cache"))
        .args(args)
        .args(["--", "true"])
        .env("SANDKASTEN_VM_QEMU", &qemu)
        .env("FAKE_STATE", tmp.path())
        .env("FAKE_MODE", mode)
        .output()
        .unwrap();
    eprintln!("mode {mode}: {}\nstdout: {}", out.status, String::from_utf8_lossy(&out.stdout));
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    let starts = std::fs::read_to_string(tmp.path().join("starts")).unwrap_or_default();
    (out, starts.trim().parse().unwrap_or(0))
}

#[test]
fn result_and_status_come_from_the_ports() {
    let (out, starts) = run_fake("ok", &[]);
    assert_eq!(starts, 1);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, br#"{"fake":1}"#);
    assert!(String::from_utf8_lossy(&out.stderr).contains("to stderr"));
}

#[test]
fn a_crash_is_booted_again() {
    let (out, starts) = run_fake("crash-once", &[]);
    assert_eq!(starts, 2);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, br#"{"fake":2}"#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("qemu crashed (exit status: 1: boom: attempt 1; console: "), "{stderr}");
    assert!(stderr.contains("; booting again"), "{stderr}");
}

#[test]
fn a_crash_on_every_boot_fails_with_qemu_stderr() {
    let (out, starts) = run_fake("crash", &[]);
    assert_eq!(starts, BOOTS);
    assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("qemu failed (exit status: 1)"), "{stderr}");
    assert!(stderr.contains(&format!("boom: attempt {BOOTS}")), "{stderr}");
}

/// A boot that never reaches the guest side (a guest kernel stuck in soft
/// lockups, seen in CI) is killed at the boot deadline and booted again.
#[test]
fn a_hung_boot_is_booted_again_at_the_boot_deadline() {
    let (out, starts) = run_fake("hangs-once", &["--boot-deadline", "1"]);
    assert_eq!(starts, 2);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, br#"{"fake":2}"#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the guest's boot hung (its script had not started after 1 s, the kernel reports a soft lockup; console: "), "{stderr}");
}

#[test]
fn a_boot_that_always_hangs_fails_long_before_the_runs_deadline() {
    let started = std::time::Instant::now();
    let (out, starts) = run_fake("hangs", &["--boot-deadline", "1"]);
    assert_eq!(starts, BOOTS);
    assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the guest did not boot within 1 s under tcg"), "{stderr}");
    assert!(stderr.contains("soft lockup"), "the console tail is in the error: {stderr}");
    // Three boot deadlines, not the run's 20 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
}

#[test]
fn a_guest_that_stops_without_a_result_is_not_retried() {
    let (out, starts) = run_fake("powers-off", &[]);
    assert_eq!(starts, 1);
    assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a complete result"));
}
