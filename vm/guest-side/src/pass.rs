//! Running the passes of a plan, several at once, and collecting each into
//! a [`PassReport`] that names every gap.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use sandkasten_probe::canary::{self, CanaryState};
use sandkasten_probe::catalogue;

use super::{log, systemd, CANARY_STATE};
use sandkasten_vm_contract::{Pass, PassReport, Plan, Verdict, VerdictKind};

/// How long a template may take to start its first instance after the
/// connection that asks for it.
const INSTANCE_START: Duration = Duration::from_secs(20);
/// How often running passes are looked at.
const POLL: Duration = Duration::from_millis(100);

/// A pass that was started and has not ended.
struct Running<'a> {
    pass: &'a Pass,
    started: Instant,
    /// Connections held open while the probe runs.
    clients: Vec<TcpStream>,
    /// A template: whether an instance was ever seen; a plain unit:
    /// whether it was ever seen running.
    seen_instance: bool,
    failures: Vec<String>,
}

/// Runs every pass of `plan`, at most `plan.parallel` at once, and hands
/// each report to `done` as soon as its pass ended.
pub fn run_all(plan: &Plan, canary_up: bool, done: &mut dyn FnMut(PassReport)) {
    let mut queue = plan.passes.iter();
    let mut running: Vec<Running> = Vec::new();
    let parallel = plan.parallel.max(1);
    loop {
        while running.len() < parallel {
            let Some(pass) = queue.next() else { break };
            running.push(start(pass));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(POLL);
        for finished in poll(&mut running) {
            let result = finished.result.clone();
            let run =
                running.remove(running.iter().position(|r| r.pass.name == finished.name).expect("running"));
            done(finish(run, &result, canary_up));
        }
    }
}

fn start(pass: &Pass) -> Running<'_> {
    log(&format!("pass {} ({} attempts)", pass.name, pass.attempts.len()));
    let mut run = Running {
        pass,
        started: Instant::now(),
        clients: Vec::new(),
        seen_instance: false,
        failures: Vec::new(),
    };
    let _ = std::fs::remove_file(pass.output());
    if pass.template {
        if let Err(e) = systemd::output(&["systemctl", "start", &pass.socket()]) {
            run.failures.push(format!("cannot start its socket: {e}"));
        }
    } else if let Err(e) = systemd::output(&["systemctl", "start", "--no-block", &pass.unit()]) {
        run.failures.push(format!("cannot start {}: {e}", pass.unit()));
    }
    if let Some(port) = pass.port {
        for _ in 0..pass.clients.max(1) {
            match dial(port) {
                Ok(stream) => run.clients.push(stream),
                Err(e) => run.failures.push(format!("cannot connect to its socket on port {port}: {e}")),
            }
        }
    }
    run
}

/// A client connection to the pass's socket; retried while the socket
/// comes up.
fn dial(port: u16) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5)) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A pass that ended, and systemd's `Result=` for it.
struct Finished {
    name: String,
    result: String,
}

/// Looks at every running pass once; returns those that ended (or ran out
/// of time, after stopping them).
fn poll(running: &mut [Running]) -> Vec<Finished> {
    let mut finished = Vec::new();
    let plain: Vec<String> = running.iter().filter(|r| !r.pass.template).map(|r| r.pass.unit()).collect();
    let shown = systemd::show(&plain, &["Id", "ActiveState", "Result", "ExecMainExitTimestampMonotonic"])
        .unwrap_or_else(|e| {
            log(&format!("systemctl show: {e}"));
            Vec::new()
        });
    for run in running.iter_mut() {
        let pass = run.pass;
        let over_time = run.started.elapsed() > Duration::from_secs(pass.deadline_s);
        let (ended, result) = if pass.template {
            let instances = systemd::instances(&pass.instances()).unwrap_or_default();
            run.seen_instance |= !instances.is_empty();
            let ended = if run.seen_instance {
                !instances.iter().any(|(_, state)| systemd::running(state))
            } else if run.started.elapsed() > INSTANCE_START {
                run.failures.push(format!("no instance started within {} s", INSTANCE_START.as_secs()));
                true
            } else {
                false
            };
            (ended, String::new())
        } else {
            let unit = pass.unit();
            match shown.iter().find(|s| s.get("Id") == Some(&unit)) {
                Some(s) => {
                    let state = s.get("ActiveState").map_or("", String::as_str);
                    let exited = s.get("ExecMainExitTimestampMonotonic").is_some_and(|t| t != "0");
                    // A unit nothing refers to (no socket) is unloaded once
                    // it is inactive, and then shows no exit time: having
                    // seen it run, or every verdict written, says it ended.
                    run.seen_instance |= systemd::running(state);
                    let ended = !systemd::running(state)
                        && (exited
                            || state == "failed"
                            || run.seen_instance
                            || all_verdicts_written(pass)
                            || !run.failures.is_empty());
                    (ended, s.get("Result").cloned().unwrap_or_default())
                }
                None => (false, String::new()),
            }
        };
        if ended {
            finished.push(Finished { name: pass.name.clone(), result });
        } else if over_time {
            run.failures.push(format!("did not end within its deadline of {} s; stopped", pass.deadline_s));
            let unit = pass.instances();
            let _ = systemd::output(&["systemctl", "kill", "--signal=SIGKILL", &unit]);
            let _ = systemd::output(&["systemctl", "stop", &unit]);
            finished.push(Finished { name: pass.name.clone(), result: "timeout".to_owned() });
        }
    }
    finished
}

/// Whether the pass's output holds a line for every attempt.
fn all_verdicts_written(pass: &Pass) -> bool {
    let output = std::fs::read_to_string(pass.output()).unwrap_or_default();
    output.lines().filter(|l| l.starts_with('{')).count() >= pass.attempts.len()
}

fn finish(run: Running, result: &str, canary_up: bool) -> PassReport {
    drop(run.clients);
    let pass = run.pass;
    let output = std::fs::read_to_string(pass.output()).unwrap_or_default();
    let canary = if canary_up { ask_canary(&pass.name) } else { Err("the canary never started".to_owned()) };
    let elapsed = run.started.elapsed();
    let mut report = collect(pass, &output, result, canary, elapsed, run.failures);
    if !report.failures.is_empty() {
        // What the probe said on stderr, for whoever reads the failure.
        let journal =
            systemd::output(&["journalctl", "-o", "cat", "--no-pager", "-n", "8", "-u", &pass.instances()]);
        report
            .failures
            .push(format!("its journal: {}", journal.unwrap_or_else(|e| e).trim().replace('\n', " | ")));
    }
    log(&format!(
        "pass {} done in {:.1} s: {} verdicts{}",
        pass.name,
        elapsed.as_secs_f64(),
        report.verdicts.len(),
        if report.failures.is_empty() {
            String::new()
        } else {
            format!(", {} problems", report.failures.len())
        }
    ));
    report
}

/// Attempt id → evidence for what of run `run` reached the canary or left a
/// marker on the host (markers are removed once seen).
fn ask_canary(run: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let state = CanaryState::load(Path::new(CANARY_STATE))?;
    let mut report = canary::query(&state, false).map_err(|e| format!("ask the canary: {e}"))?;
    report.markers = canary::scan_markers(&state.host.content_dir, true, Some(run));
    report.summarize(Some(run));
    Ok(report.seen)
}

/// Turns what a pass left behind into its report: the probe's verdict
/// lines (`output`), systemd's `result`, the canary's answer. Every gap is
/// a failure: no output at all, an attempt without a verdict, a verdict
/// nobody asked for, an unreadable line, no canary.
///
/// Two instances of a template that made the same attempt side by side are
/// one attacker with two tries: the first escape counts, else the first
/// verdict. `res.memory` may end with the kernel's OOM killer taking the
/// probe too; then systemd's `Result=oom-kill` is the verdict.
pub fn collect(
    pass: &Pass,
    output: &str,
    result: &str,
    canary: Result<BTreeMap<String, Vec<String>>, String>,
    elapsed: Duration,
    mut failures: Vec<String>,
) -> PassReport {
    let mut verdicts: Vec<Verdict> = Vec::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Verdict>(line) {
            Ok(v) if !pass.attempts.contains(&v.id) => {
                failures.push(format!("a verdict nobody asked for: {}", v.id))
            }
            Ok(v) => match verdicts.iter_mut().find(|o| o.id == v.id) {
                Some(old) if old.verdict != VerdictKind::Escaped && v.verdict == VerdictKind::Escaped => {
                    *old = v
                }
                Some(_) => {}
                None => verdicts.push(v),
            },
            Err(e) => failures.push(format!("unreadable probe output ({e}): {line}")),
        }
    }
    if verdicts.is_empty() {
        failures.push(format!(
            "the probe never reported from {} (systemd's Result={})",
            pass.unit(),
            if result.is_empty() { "?" } else { result }
        ));
    }
    for id in &pass.attempts {
        if verdicts.iter().any(|v| &v.id == id) {
            continue;
        }
        match catalogue::find(id) {
            Some(a) if id == "res.memory" && result == "oom-kill" && !verdicts.is_empty() => {
                verdicts.push(Verdict {
                    id: id.clone(),
                    goal: a.goal.id().to_owned(),
                    directive: a.held_by.describe(),
                    verdict: VerdictKind::Killed,
                    outcome: Some("oom-kill".to_owned()),
                    accepted: a.accepted.iter().map(|s| (*s).to_owned()).collect(),
                    reason: None,
                    detail: "the kernel's OOM killer acted inside the unit (systemd: Result=oom-kill)"
                        .to_owned(),
                    elapsed_ms: 0,
                })
            }
            _ if verdicts.is_empty() => {}
            _ => failures.push(format!("no verdict for {id}")),
        }
    }
    let canary = match canary {
        Ok(seen) => Some(seen),
        Err(e) => {
            failures.push(format!("no canary report: {e}"));
            None
        }
    };
    PassReport {
        name: pass.name.clone(),
        verdicts,
        canary,
        result: result.to_owned(),
        elapsed_ms: elapsed.as_millis() as u64,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(attempts: &[&str]) -> Pass {
        Pass {
            name: "http".into(),
            attempts: attempts.iter().map(|a| (*a).to_owned()).collect(),
            deadline_s: 60,
            ..Pass::default()
        }
    }

    fn line(id: &str, verdict: &str) -> String {
        format!(
            r#"{{"id":"{id}","goal":"g","directive":"D=","verdict":"{verdict}","accepted":["EPERM"],"detail":"d","elapsed_ms":3}}"#
        )
    }

    fn canary() -> Result<BTreeMap<String, Vec<String>>, String> {
        Ok(BTreeMap::new())
    }

    #[test]
    fn a_complete_pass_has_no_failures() {
        let out = [line("fs.write-etc", "blocked"), line("net.dbus", "blocked")].join("\n");
        let r =
            collect(&pass(&["fs.write-etc", "net.dbus"]), &out, "success", canary(), Duration::ZERO, vec![]);
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.verdicts.len(), 2);
    }

    #[test]
    fn a_unit_whose_probe_never_started_is_a_failure_not_a_short_table() {
        let r = collect(&pass(&["fs.write-etc"]), "", "exit-code", canary(), Duration::ZERO, vec![]);
        assert_eq!(
            r.failures,
            ["the probe never reported from sk-http.service (systemd's Result=exit-code)"]
        );
    }

    #[test]
    fn a_missing_verdict_is_named() {
        let out = line("fs.write-etc", "blocked");
        let r =
            collect(&pass(&["fs.write-etc", "net.dbus"]), &out, "success", canary(), Duration::ZERO, vec![]);
        assert_eq!(r.failures, ["no verdict for net.dbus"]);
    }

    #[test]
    fn a_missing_canary_report_is_a_failure() {
        let out = line("fs.write-etc", "blocked");
        let r =
            collect(&pass(&["fs.write-etc"]), &out, "success", Err("refused".into()), Duration::ZERO, vec![]);
        assert_eq!(r.failures, ["no canary report: refused"]);
        assert_eq!(r.canary, None);
    }

    #[test]
    fn garbage_and_unasked_verdicts_are_failures() {
        let out =
            [line("fs.write-etc", "blocked"), "{not json".into(), line("net.dbus", "blocked")].join("\n");
        let r = collect(&pass(&["fs.write-etc"]), &out, "success", canary(), Duration::ZERO, vec![]);
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    }

    #[test]
    fn two_instances_count_the_first_escape() {
        let out = [line("proc.sibling", "blocked"), line("proc.sibling", "escaped")].join("\n");
        let r = collect(&pass(&["proc.sibling"]), &out, "", canary(), Duration::ZERO, vec![]);
        assert_eq!(r.verdicts.len(), 1);
        assert_eq!(r.verdicts[0].verdict, VerdictKind::Escaped);
    }

    #[test]
    fn an_oom_kill_of_the_memory_route_is_its_verdict() {
        let out = line("fs.write-etc", "blocked");
        let r = collect(
            &pass(&["fs.write-etc", "res.memory"]),
            &out,
            "oom-kill",
            canary(),
            Duration::ZERO,
            vec![],
        );
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.verdicts[1].verdict, VerdictKind::Killed);
    }
}
