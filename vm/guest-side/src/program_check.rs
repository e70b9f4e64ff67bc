//! `audit --check`: does the program a unit runs still serve in that
//! unit's sandbox? An audit puts the probe where the program was; a
//! sandbox that breaks the program would otherwise report its escapes as
//! if all were well. So before any probe pass the unit runs as written,
//! the user's check runs against it, and the unit is stopped again.

use std::process::Command;
use std::time::{Duration, Instant};

use sandkasten_vm_contract::{Functional, ProgramCheck};

use crate::systemd::{command, output, QUERY_TIMEOUT};

/// How long the unit may take to start, and the check to answer.
const LIMIT: Duration = Duration::from_secs(60);
/// The journal lines shown when the check fails.
const JOURNAL_LINES: &str = "8";

/// Starts the unit, runs the check, stops the unit; the check's result.
pub fn run(check: &ProgramCheck) -> Functional {
    run_with(check, LIMIT, READY_WAIT, &mut |_| {})
}

/// [`run`], each command bounded by `limit`, the program given `ready_wait`
/// to serve; while the program still serves
/// (the check passed), `serving` is called with the check as it ran (its
/// port found, when the check named none) before the unit is stopped.
pub fn run_with(
    check: &ProgramCheck,
    limit: Duration,
    ready_wait: Duration,
    serving: &mut dyn FnMut(&ProgramCheck),
) -> Functional {
    let started = Instant::now();
    let since = format!("@{}", unix_seconds());
    let first = check.socket.as_deref().unwrap_or(&check.service);
    // Many starts in a row (harden's trials) must not meet the start limit.
    let _ = command("systemctl", &["reset-failed", &check.service], QUERY_TIMEOUT);
    let start = command("systemctl", &["start", first], limit);
    let outcome = match &start {
        Ok(out) if !out.status.success() => {
            Err(format!("systemctl start {first} failed: {}", out.stderr.trim()))
        }
        Err(e) => Err(format!("systemctl start {first}: {e}")),
        Ok(_) => until_ready(check, limit, ready_wait),
    };
    let result = match outcome {
        Ok((said, ran)) => {
            serving(&ran);
            Functional {
                unit: check.service.clone(),
                check: label(check),
                ok: true,
                detail: format!("passed in {:.1} s{}", started.elapsed().as_secs_f64(), said),
            }
        }
        Err(why) => Functional {
            unit: check.service.clone(),
            check: label(check),
            ok: false,
            detail: format!("{why}; {}", service_state(&check.service, &since)),
        },
    };
    stop(check);
    result
}

/// How long a stop may take before the unit is killed: a program whose
/// sandbox dropped its client's packets (`IPAddressDeny=`) may wait for
/// that client for good, and the next start would wait for the stop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Stops the service and its socket, killing what does not stop in
/// [`STOP_WAIT`], so that the next start of the unit finds it stopped.
fn stop(check: &ProgramCheck) {
    let mut units = vec![check.service.as_str()];
    units.extend(check.socket.as_deref());
    let mut args = vec!["stop"];
    args.extend(&units);
    let stopped = command("systemctl", &args, STOP_WAIT).is_ok_and(|out| out.status.success());
    let down =
        active_state(&check.service).is_some_and(|state| matches!(state.as_str(), "inactive" | "failed"));
    if !stopped || !down {
        let _ = command("systemctl", &["kill", "--signal=SIGKILL", &check.service], QUERY_TIMEOUT);
        let _ = command("systemctl", &args, QUERY_TIMEOUT);
    }
}

/// Seconds since the epoch, for `journalctl --since @SECONDS`.
fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How long a program that binds its own port may take to listen (an
/// interpreter under TCG imports for seconds); the check is tried again
/// until then while the service still runs.
const READY_WAIT: Duration = Duration::from_secs(30);

/// The check, tried again every half second while it fails, the service
/// is still up and `ready_wait` has not passed: `systemctl start`
/// returns before a `Type=simple` program listens. A check without a port
/// gets the port the unit's processes listen on, once they do.
fn until_ready(
    check: &ProgramCheck,
    limit: Duration,
    ready_wait: Duration,
) -> Result<(String, ProgramCheck), String> {
    let started = Instant::now();
    loop {
        let mut ran = check.clone();
        if ran.port.is_none() {
            ran.port = crate::unit_processes::listening_ports(&check.service).first().copied();
        }
        let result = run_command(&ran, limit);
        if result.is_ok() || started.elapsed() > ready_wait || !still_up(&check.service) {
            return result.map(|said| (said, ran));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether the service is starting or running (not failed, not stopped).
fn still_up(service: &str) -> bool {
    active_state(service).is_some_and(|state| matches!(state.as_str(), "active" | "activating" | "reloading"))
}

/// The service's `ActiveState` as systemd says it, if it answers.
fn active_state(service: &str) -> Option<String> {
    output(&["systemctl", "show", "-p", "ActiveState", "--value", service]).ok().map(|s| s.trim().to_owned())
}

fn label(check: &ProgramCheck) -> String {
    format!("the program serves its check ({})", check.command)
}

/// Runs the check with bash, `$ADDR` and `$PORT` set; Ok with the first
/// line it printed, else why it failed.
fn run_command(check: &ProgramCheck, limit: Duration) -> Result<String, String> {
    let mut bash = Command::new("bash");
    bash.args(["-c", &check.command]);
    if let Some(port) = check.port {
        bash.env("PORT", port.to_string()).env("ADDR", format!("127.0.0.1:{port}"));
    }
    let out = crate::systemd::run_with_limit(bash, limit)?;
    let text = format!("{}{}", out.stdout, out.stderr);
    let first = text.lines().next().unwrap_or_default().trim().to_owned();
    if out.status.success() {
        Ok(if first.is_empty() { String::new() } else { format!(": {first}") })
    } else {
        let tail: Vec<&str> = text.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!("the check exited with {}: {}", out.status, tail.join(" | ")))
    }
}

/// What systemd says of the service, and its last journal lines since
/// `since` (this start's, not an earlier one's): why a program that never
/// served did not.
fn service_state(service: &str, since: &str) -> String {
    let state = output(&["systemctl", "show", "-p", "ActiveState,Result,ExecMainStatus", service])
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| e);
    let journal = output(&[
        "journalctl",
        "-u",
        service,
        "--since",
        since,
        "-n",
        JOURNAL_LINES,
        "-o",
        "cat",
        "--no-pager",
    ])
    .map(|text| text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | "))
    .unwrap_or_else(|e| e);
    format!("{service}: {state}; its journal: {journal}")
}
