//! A systemd under test (`--systemd DIR`): bookworm's userland and kernel
//! with the systemd of bookworm-backports installed over bookworm's own,
//! and `enforce --check` telling what that build changes against the
//! committed report of bookworm's own systemd (252), with the cause.
//! (Measured 2026-12-07: 254.26-1~bpo12+1, without the BPF framework,
//! changes nothing there; the test holds either way, and the cause line's
//! wording is unit-tested in `jobs::enforce`.)

use std::path::Path;
use std::process::Command;

use crate::util::{one_guest_at_a_time, sandkasten_vm};

/// The packages of the systemd source bookworm's image has installed, and
/// what 254 adds to their dependencies (`systemd-dev`).
const SYSTEMD_SET: [&str; 7] =
    ["systemd", "systemd-sysv", "libsystemd0", "libsystemd-shared", "libudev1", "udev", "systemd-dev"];

/// Downloads `SYSTEMD_SET` from bookworm-backports on this host's Debian
/// mirror into `dir`, with an apt configuration of its own (the host's
/// sources stay as they are).
fn backports_systemd(dir: &Path) {
    let apt = dir.join("apt");
    for sub in ["lists/partial", "cache/archives/partial", "parts"] {
        std::fs::create_dir_all(apt.join(sub)).unwrap();
    }
    let mirror = sandkasten_vm::image::host_mirror();
    std::fs::write(
        apt.join("sources.list"),
        format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} bookworm-backports main\n"),
    )
    .unwrap();
    let options = [
        format!("Dir::Etc::SourceList={}", apt.join("sources.list").display()),
        format!("Dir::Etc::SourceParts={}", apt.join("parts").display()),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "Dir::State::status=/dev/null".to_owned(),
    ];
    let apt_get = |args: &[&str], cwd: &Path| {
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(cwd);
        for option in &options {
            cmd.args(["-o", option]);
        }
        let out = cmd.args(args).output().expect("run apt-get");
        assert!(out.status.success(), "apt-get {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    apt_get(&["update"], dir);
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let mut download = vec!["download"];
    download.extend(SYSTEMD_SET);
    apt_get(&download, &debs);
}

#[test]
fn enforce_tells_what_the_backports_systemd_changes_on_bookworm_and_why() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let work = tempfile::tempdir().unwrap();
    backports_systemd(work.path());
    let debs = work.path().join("debs");
    let committed_path = sandkasten_vm::payload::workspace_root().join("units/enforcement/bookworm.json");
    let committed_before = std::fs::read(&committed_path).unwrap();
    let json = work.path().join("report.json");
    let out = sandkasten_vm(&[
        "enforce",
        "--accel",
        "tcg",
        "--release",
        "bookworm",
        "--check",
        "--systemd",
        debs.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let guest = &reports[0]["guest"];

    // The build ran, and the report names it beside the image it went into.
    assert!(guest["systemd"].as_str().unwrap().starts_with("254"), "the guest's systemd: {guest}");
    let build = &guest["image"]["systemd_build"];
    let packages: Vec<&str> =
        build["packages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(packages.iter().any(|p| p.starts_with("systemd=254.") && p.contains("bpo12")), "{packages:?}");
    assert_eq!(packages.len(), SYSTEMD_SET.len());
    assert_eq!(build["sha256"].as_str().unwrap().len(), 16);
    let image_packages = guest["image"]["packages"].to_string();
    assert!(
        image_packages.contains("systemd=252."),
        "the image's own systemd is named too: {image_packages}"
    );
    assert!(reports[0]["failures"].as_array().unwrap().is_empty(), "a complete measurement: {}", reports[0]);

    // Each difference from 252's committed report comes with its cause;
    // no difference, no cause and exit 0.
    let differences = stdout.lines().filter(|l| l.contains("differs from the measurement")).count();
    let cause = stdout.lines().find(|l| l.starts_with("CAUSE: each difference above is the systemd build's"));
    if differences > 0 {
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        let cause = cause.unwrap_or_else(|| panic!("no cause for the differences: {stdout}"));
        assert!(
            cause.contains("systemd 254.") && cause.contains("in place of the image's systemd 252."),
            "{cause}"
        );
    } else {
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(cause.is_none(), "{stdout}");
    }
    // 254 built with the BPF framework enforces what 252 could only ignore.
    let features = guest["features"].as_str().unwrap();
    if features.split_whitespace().any(|f| f == "+BPF_FRAMEWORK") {
        let row = reports[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["directive"] == "SocketBindDeny=")
            .unwrap();
        assert_eq!(row["status"], "enforced", "{row}");
    }
    // The committed report stays the release's own systemd's.
    assert_eq!(std::fs::read(&committed_path).unwrap(), committed_before);
}
