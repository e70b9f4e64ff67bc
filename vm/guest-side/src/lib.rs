//! sandkasten-vm's guest side, its own crate so that it can know nothing
//! but the contract (`sandkasten-vm-contract`): it never sees how the host
//! builds plans or reads answers. The `sandkasten-vm` binary runs it in the
//! guest (`sandkasten-vm guest /payload/job.json`: [`run`] does the job
//! the host wrote), and host mode (`enforce --host`, `audit --host`,
//! `harden --host`) runs the same command on the machine itself.
//!
//! The plan of a matrix or ablation run, run as root in a fresh guest whose
//! PID 1 is systemd:
//!
//! It carries out a [`Plan`]: the functional checks of every reference
//! server (in a thread of their own, beside the probe passes), the canary
//! outside every sandbox, then each pass in its generated unit, several at
//! once. Every wait has a deadline. Each pass ends in one
//! [`PassReport`](sandkasten_vm_contract::PassReport) that says what is missing as
//! plainly as what was found: a unit that never started, an attempt without
//! a verdict, a canary that could not be asked. The host decides; this side
//! only reports, one [`GuestEvent`] per line on stdout.

#![deny(missing_docs)]

pub mod bench;
mod functional;
mod harden;
mod in_unit;
mod pass;
mod program_check;
pub mod reliability;
pub mod systemd;
mod unit_processes;

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sandkasten_vm_contract::{GuestEvent, GuestInfo, GuestJob, Plan, Score, OUTPUT_DIR};

pub use sandkasten_vm_contract::paths::{CANARY_STATE, CANARY_UNIX_DIR, CONTENT_DIR, PROBE};

/// Does the job the host wrote at `job_path` (`sandkasten-vm guest JOB`);
/// the exit status is the job's: for a plan 0 when it ran to its end (the
/// verdicts are the host's business), 1 when it could not; for `exec --unit`
/// the command's own.
pub fn run(job_path: &Path) -> i32 {
    let job: GuestJob = match std::fs::read_to_string(job_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(job) => job,
        Err(e) => {
            eprintln!("sandkasten-vm guest: cannot read the job {}: {e}", job_path.display());
            return 1;
        }
    };
    match job {
        GuestJob::Plan { plan } => i32::from(!carry_out(&plan, &mut emit)),
        GuestJob::Bench { rounds, duration_s } => bench::run(rounds, duration_s),
        GuestJob::Reliability => reliability::run(),
        GuestJob::InUnit { unit, command } => in_unit::run(&unit, &command),
        GuestJob::Harden(job) => harden::run(&job),
    }
}

/// Carries out `plan` on this machine (its PID 1 systemd, the plan's units
/// installed), handing each event to `emit`; false when it could not.
pub fn carry_out(plan: &Plan, emit: &mut dyn FnMut(&GuestEvent)) -> bool {
    let started = Instant::now();
    emit(&GuestEvent::Guest(guest_info()));
    let (tx, rx) = mpsc::channel();
    let functional = plan.functional.then(|| {
        let tx = tx.clone();
        std::thread::spawn(move || functional::run(&mut |check| drop(tx.send(GuestEvent::Check(check)))))
    });
    drop(tx);
    if let Err(e) = std::fs::create_dir_all(OUTPUT_DIR) {
        eprintln!("inside: cannot create {OUTPUT_DIR}: {e}");
        return false;
    }
    for file in &plan.sysusers {
        if let Err(e) = systemd::output(&["systemd-sysusers", file]) {
            log(&format!("systemd-sysusers {file}: {e}"));
        }
    }
    for unit in &plan.scores {
        emit(&GuestEvent::Score(score(unit)));
    }
    for check in &plan.program_checks {
        log(&format!("the program of {} against its check", check.service));
        emit(&GuestEvent::Check(program_check::run(check)));
    }
    let canary = start_canary();
    if let Err(e) = &canary {
        log(&format!("the canary did not start: {e}"));
    }
    pass::run_all(plan, canary.is_ok(), &mut |report| {
        // Checks that came in meanwhile go out first.
        for event in rx.try_iter() {
            emit(&event);
        }
        emit(&GuestEvent::Pass(report));
    });
    if let Some(handle) = functional {
        if handle.join().is_err() {
            log("the functional checks panicked");
        }
    }
    for event in rx.try_iter() {
        emit(&event);
    }
    log(&format!("plan done in {:.1} s", started.elapsed().as_secs_f64()));
    emit(&GuestEvent::Done);
    true
}

/// `systemd-analyze security`'s overall exposure of `unit`, as this
/// guest's systemd rates it.
fn score(unit: &str) -> Score {
    match systemd::output(&["systemd-analyze", "security", "--no-pager", unit]) {
        Ok(text) => match parse_exposure(&text) {
            Some((exposure, rating)) => Score { unit: unit.to_owned(), exposure: Some(exposure), rating },
            None => {
                Score { unit: unit.to_owned(), exposure: None, rating: "no overall exposure line".into() }
            }
        },
        Err(e) => Score { unit: unit.to_owned(), exposure: None, rating: e },
    }
}

/// `→ Overall exposure level for x.service: 9.6 UNSAFE 😨` → (9.6, UNSAFE).
pub(crate) fn parse_exposure(text: &str) -> Option<(f64, String)> {
    let line = text.lines().find(|l| l.contains("Overall exposure level"))?;
    let mut words = line.rsplit_once(": ")?.1.split_whitespace();
    let exposure = words.next()?.parse().ok()?;
    Some((exposure, words.next().unwrap_or("").to_owned()))
}

/// One event on stdout, flushed at once (the host follows the port live).
fn emit(event: &GuestEvent) {
    let line = serde_json::to_string(event).expect("events serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A progress line for the person watching (stderr, shown by the host).
pub(crate) fn log(message: &str) {
    eprintln!("inside: {message}");
}

pub(crate) fn guest_info() -> GuestInfo {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let release = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let version = systemd::output(&["systemctl", "--version"]).unwrap_or_default();
    let mut lines = version.lines();
    let systemd = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .trim_matches(|c| c == '(' || c == ')')
        .to_owned();
    let features = lines.next().unwrap_or("").to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    GuestInfo { release, systemd, kernel, features, accel: String::new(), image: None }
}

/// Starts the canary outside every sandbox (a transient unit) on a dummy
/// interface with the documentation address 192.0.2.1, and waits for its
/// state file.
fn start_canary() -> Result<(), String> {
    for dir in [Path::new(CANARY_STATE).parent().expect("state in a directory"), Path::new(CANARY_UNIX_DIR)] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(CANARY_STATE);
    let _ = systemd::output(&["modprobe", "dummy"]);
    if systemd::output(&["ip", "link", "add", "sk-canary", "type", "dummy"]).is_err() {
        systemd::output(&[
            "ip",
            "link",
            "add",
            "sk-canary",
            "type",
            "veth",
            "peer",
            "name",
            "sk-canary-peer",
        ])?;
        systemd::output(&["ip", "link", "set", "sk-canary-peer", "up"])?;
    }
    systemd::output(&["ip", "addr", "add", "192.0.2.1/24", "dev", "sk-canary"])?;
    systemd::output(&["ip", "link", "set", "sk-canary", "up"])?;
    systemd::output(&[
        "systemd-run",
        "--quiet",
        "--unit=sandkasten-canary",
        "-p",
        "Type=exec",
        PROBE,
        "canary",
        "--state",
        CANARY_STATE,
        "--unix-dir",
        CANARY_UNIX_DIR,
        "--content-dir",
        CONTENT_DIR,
        "--lifetime",
        "3600",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::metadata(CANARY_STATE).is_ok_and(|m| m.len() > 0) {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o644);
            return std::fs::set_permissions(CANARY_STATE, mode).map_err(|e| e.to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no state file after 20 s; its journal: {}",
        systemd::output(&["journalctl", "-u", "sandkasten-canary", "--no-pager", "-n", "20"])
            .unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exposure_line_is_read_with_its_rating() {
        let text = "NAME  DESCRIPTION  EXPOSURE\n\u{2192} Overall exposure level for sandkasten-lab1.service: 6.1 MEDIUM \u{1f610}\n";
        assert_eq!(super::parse_exposure(text), Some((6.1, "MEDIUM".to_owned())));
        assert_eq!(super::parse_exposure("no such line"), None);
    }
}
