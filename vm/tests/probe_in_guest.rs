//! The probe's host tests (`services/probe/tests`) run again inside the
//! bookworm guest, as root there.
//!
//! What those tests expect of the root control depends on the kernel they
//! run on: some kernels refuse `connect()` to every TCP socket that has
//! been a listener, and there the listener routes are the kernel's policy
//! instead of escapes. The machine that runs the suite may have such a
//! kernel; bookworm's 6.1 does not. Running the same test binary in the
//! guest keeps the other side proven on every run: there the control must
//! turn a handed-over listener into a client, and the egress guard must be
//! what stops it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sandkasten_vm::payload;
use sandkasten_vm::{AccelRequest, Config, Guest, Release};

use crate::util::one_guest_at_a_time;

/// The probe's test binary and the probe binary it runs
/// (`CARGO_BIN_EXE_sandkasten-probe`, an absolute path compiled into the
/// tests), as `cargo test --no-run` builds them.
struct ProbeTests {
    tests: PathBuf,
    probe: PathBuf,
}

/// Builds the probe's test target (a no-op after `cargo test --workspace`
/// has built it) and reads where cargo put both binaries.
fn build_probe_tests(workspace: &Path) -> ProbeTests {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args(["test", "-p", "sandkasten-probe", "--test", "tests", "--no-run", "--message-format=json"])
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo test --no-run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let (mut tests, mut probe) = (None, None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(name), Some(executable)) =
            (message["target"]["name"].as_str(), message["executable"].as_str())
        else {
            continue;
        };
        let kinds = message["target"]["kind"].to_string();
        match name {
            "tests" if kinds.contains("\"test\"") => tests = Some(PathBuf::from(executable)),
            "sandkasten-probe" if kinds.contains("\"bin\"") => probe = Some(PathBuf::from(executable)),
            _ => {}
        }
    }
    ProbeTests {
        tests: tests.expect("cargo named the probe's test binary"),
        probe: probe.expect("cargo named the probe binary"),
    }
}

/// Every Markdown document under `dir` of the workspace, as paths relative
/// to it (build output and hidden directories left out).
fn markdown_files(workspace: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(workspace.join(dir)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let relative = dir.join(&name);
        if entry.file_type().unwrap().is_dir() {
            if !name.to_string_lossy().starts_with('.') && name != "target" {
                found.extend(markdown_files(workspace, &relative));
            }
        } else if relative.extension().is_some_and(|e| e == "md") {
            found.push(relative);
        }
    }
    found
}

/// The guest side: the kernel first, then the tests with their output.
/// The harness runner is a unit with systemd's default `TasksMax=` (15% of
/// the guest's threads-max, about 1100 tasks): lifted for its own cgroup,
/// so that the root control has nothing in its way, as on a host. The
/// tests find the probe and the repository's files where the payload has
/// them, not at the build's paths (a checkout under /tmp, as CI's may be,
/// would be hidden by the guest's own /tmp).
const RUN: &str = r#"#!/bin/sh
echo "kernel $(uname -r)"
echo max >"/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/pids.max"
export SANDKASTEN_PROBE_BIN=/payload/sandkasten-probe SANDKASTEN_PROBE_REPO=/payload/repo
exec /payload/probe-tests --test-threads 2 2>&1
"#;

#[test]
fn the_probes_host_tests_pass_inside_the_bookworm_guest() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let workspace = payload::workspace_root();
    let built = build_probe_tests(&workspace);
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &str| {
        let to = dir.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    copy(&built.tests, "probe-tests");
    copy(&built.probe, "sandkasten-probe");
    // The tests read the egress ruleset and check what the documents say.
    let mut files = markdown_files(&workspace, Path::new(""));
    files.push("units/sandkasten-egress.nft".into());
    for file in files {
        copy(&workspace.join(&file), &format!("repo/{}", file.display()));
    }
    let run = dir.path().join("run");
    std::fs::write(&run, RUN).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut config = Config::new(Release::Bookworm);
    config.accel = AccelRequest::Tcg;
    config.payload_dir = Some(dir.path().to_path_buf());
    config.timeout = Some(Duration::from_secs(900));
    let result = Guest::boot(&config).expect("guest run");
    let output = String::from_utf8_lossy(result.result());
    eprintln!("{output}");
    assert_eq!(result.status, 0, "the probe's tests failed in the guest:\n{output}");
    assert!(output.starts_with("kernel 6.1."), "bookworm's kernel: {output}");
    // Every test ran as root there: none returned early as "skipped".
    assert!(!output.contains("skipped:"), "a test skipped itself in the guest:\n{output}");
    assert!(output.contains("test result: ok."), "{output}");
}
