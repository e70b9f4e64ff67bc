//! Host mode: a plan carried out on the machine we run on, not in a guest
//! (`enforce --host`). A host job that runs the guest side's library
//! ([`crate::inside`]) in-process; the guest side never imports it.
//!
//! An admin who copies a unit onto a host (a laptop, a container under
//! Incus, LXC or Proxmox, where nesting changes what systemd can do) asks
//! what that host enforces. The plan's units are installed as runtime units
//! (`/run/systemd/system`: gone at the next boot, removed at the end), then
//! the same code as in the guest carries out the plan. Not `systemd-run`
//! transient units: a transient unit cannot be an `Accept=yes` template,
//! and the point is to run the very unit text the VM runs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::contract::paths::{CANARY_STATE, CANARY_UNIX_DIR, PROBE};
use crate::contract::{GuestEvent, OUTPUT_DIR};
use crate::inside::carry_out;
use crate::inside::systemd::{command, failure, QUERY_TIMEOUT};
use crate::passes::Staged;

/// Where the plan's units go: systemd's runtime unit directory.
const RUNTIME_UNITS: &str = "/run/systemd/system";
/// The egress guard the reference sockets require.
const EGRESS_GUARD: &str = "sandkasten-egress.service";

/// Why this machine cannot run host mode, if it cannot: PID 1 must be
/// systemd, we must be root, and sandkasten must be installed (the probe
/// and the egress guard the reference sockets require).
fn unfit() -> Option<String> {
    // sd_booted(3): systemd creates this directory at boot.
    if !Path::new("/run/systemd/system").is_dir() {
        let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        return Some(format!(
            "this machine's PID 1 is not systemd (it is {:?}): host mode needs systemd to start the test \
             units; measure in a VM instead: sandkasten-vm enforce --release RELEASE",
            init.trim()
        ));
    }
    // /proc/self belongs to the effective uid (no unsafe geteuid here).
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX) != 0 {
        return Some(
            "host mode starts units and must run as root (sudo sandkasten-vm enforce --host)".into(),
        );
    }
    if !Path::new(PROBE).is_file() {
        return Some(format!(
            "host mode needs the probe at {PROBE}: install the package sandkasten-probe first \
             (scripts/install --probe)"
        ));
    }
    let load = command("systemctl", &["show", "-p", "LoadState", "--value", EGRESS_GUARD], QUERY_TIMEOUT);
    if !load.is_ok_and(|out| out.stdout.trim() == "loaded") {
        return Some(format!(
            "host mode needs {EGRESS_GUARD}, which the reference sockets require: install the package \
             sandkasten first (scripts/install --probe)"
        ));
    }
    None
}

/// Installs `staged`'s units, carries out its plan here and removes
/// everything it made; the events, one JSON line each, as the guest would
/// have written them.
pub fn run(staged: &Staged) -> Result<String, String> {
    if let Some(why) = unfit() {
        return Err(why);
    }
    eprintln!("sandkasten-vm: {} test passes on this host", staged.plan.passes.len());
    let mut installed: Vec<PathBuf> = Vec::new();
    let result = install(staged, &mut installed).map(|()| {
        let mut output = String::new();
        carry_out(&staged.plan, &mut |event: &GuestEvent| {
            output.push_str(&serde_json::to_string(event).expect("events serialize"));
            output.push('\n');
        });
        output
    });
    clean_up(staged, &installed);
    result
}

fn install(staged: &Staged, installed: &mut Vec<PathBuf>) -> Result<(), String> {
    let dir = Path::new(RUNTIME_UNITS);
    for generated in &staged.units {
        let files = [
            (Some(&generated.service_name), Some(&generated.service)),
            (generated.socket_name.as_ref(), generated.socket.as_ref()),
        ];
        for (name, text) in files {
            let (Some(name), Some(text)) = (name, text) else { continue };
            let path = dir.join(name);
            if path.exists() {
                return Err(format!(
                    "{} exists already: another run is under way, or one was interrupted (then remove \
                     /run/systemd/system/sk-* and run systemctl daemon-reload; a reboot clears them too)",
                    path.display()
                ));
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            installed.push(path);
        }
    }
    daemon_reload()
}

fn daemon_reload() -> Result<(), String> {
    let out = command("systemctl", &["daemon-reload"], QUERY_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failure("systemctl daemon-reload", &out))
    }
}

/// Stops what the plan started and removes what it wrote: best effort,
/// every step tried.
fn clean_up(staged: &Staged, installed: &[PathBuf]) {
    let mut units = vec!["sandkasten-canary.service".to_owned()];
    for pass in &staged.plan.passes {
        units.extend([pass.socket(), pass.instances(), pass.unit()]);
    }
    let mut args = vec!["stop"];
    args.extend(units.iter().map(String::as_str));
    let _ = command("systemctl", &args, QUERY_TIMEOUT);
    args[0] = "reset-failed";
    let _ = command("systemctl", &args, QUERY_TIMEOUT);
    for path in installed {
        let _ = std::fs::remove_file(path);
    }
    let _ = daemon_reload();
    let _ = command("ip", &["link", "del", "sk-canary"], QUERY_TIMEOUT);
    let _ = std::fs::remove_dir_all(OUTPUT_DIR);
    let _ = std::fs::remove_dir_all(CANARY_UNIX_DIR);
    if let Some(dir) = Path::new(CANARY_STATE).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
