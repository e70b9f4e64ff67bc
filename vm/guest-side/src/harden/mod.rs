//! `sandkasten-vm harden`, guest side: the user's unit and its real
//! program, made as tight as its check allows.
//!
//! 1. The unit as given must serve its check; while it does, what its
//!    processes map executable, their memory and their tasks are read.
//! 2. It runs once more under `strace -f` (the unit's own sandbox, with
//!    only what stops a tracer taken out), for the calls, address families,
//!    ports and writes.
//! 3. Each variant (the program's own port; socket-activated in a private
//!    network, when the program takes a socket) tries the candidates as a
//!    drop-in, all at once first and halves of a failing set after, so a
//!    candidate is kept only while the check passes with everything kept
//!    before it, and dropped with the check's own failure as evidence.

mod computed;
mod trace;

use std::path::Path;
use std::time::{Duration, Instant};

use sandkasten_vm_contract::harden::{
    exec_prefix, render_drop_in, Candidate, DropInLine, HardenJob, HardenReport, Observed, Step, Variant,
    DROP_IN, LOCKDOWN_WRAPPER,
};
use sandkasten_vm_contract::{Functional, ProgramCheck};

use crate::program_check::run_with;
use crate::systemd::output;
use crate::unit_processes;

/// The harness's files in the guest: the trace, the socket of the
/// socket-activated variant.
const WORK: &str = "/run/sandkasten-harden";
/// How long the unit as given may take to serve its check.
const FIRST_LIMIT: Duration = Duration::from_secs(60);
/// The drop-in of the trace run (after harden's own, so that it wins).
const TRACE_DROP_IN: &str = "90-sandkasten-trace.conf";

/// Does `job`, prints its [`HardenReport`] as one JSON line; 0 unless the
/// report could not be written.
pub fn run(job: &HardenJob) -> i32 {
    let report = harden(job);
    match serde_json::to_string(&report) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("sandkasten-vm guest: harden's report: {e}");
            1
        }
    }
}

fn log(what: &str) {
    eprintln!("harden: {what}");
}

fn harden(job: &HardenJob) -> HardenReport {
    let mut report = HardenReport { guest: crate::guest_info(), ..HardenReport::default() };
    if let Err(e) = std::fs::create_dir_all(WORK) {
        report.failures.push(format!("cannot create {WORK}: {e}"));
        return report;
    }
    // Users from --sysusers files (the overlay put them in /usr/lib/sysusers.d).
    let _ = output(&["systemd-sysusers"]);
    let service = job.check.service.clone();

    log(&format!("{service} as given, against its check"));
    let started = Instant::now();
    let mut observed = Observed::default();
    let mut port = job.check.port;
    let as_given = run_with(&job.check, FIRST_LIMIT, FIRST_LIMIT, &mut |ran| {
        port = ran.port;
        observed.executable = unit_processes::executable_files(&service).into_iter().collect();
        observed.memory_peak = unit_processes::cgroup_number(&service, "memory.peak")
            .or_else(|| unit_processes::cgroup_number(&service, "memory.current"));
        observed.tasks_peak = unit_processes::cgroup_number(&service, "pids.current");
    });
    let served_after = started.elapsed();
    let ok = as_given.ok;
    report.as_given = Some(as_given);
    report.port = port;
    if !ok {
        report.failures.push(format!(
            "the program does not serve its check in {service} as given: fix the unit (or the check) first"
        ));
        return report;
    }
    let check = ProgramCheck { port, ..job.check.clone() };
    // A trial gets three times what the unit as given needed to serve, and
    // never less than 10 s: a candidate that breaks the program fails fast.
    let trial_limit = (served_after * 3).max(Duration::from_secs(10));

    log("the program under strace -f, against its check");
    match traced(&check, &job.exec_start) {
        Ok(seen) => record(&mut observed, seen),
        Err(why) => report.failures.push(format!("the trace failed, nothing computed from it: {why}")),
    }
    let wrapper_calls = wrapper_calls().unwrap_or_else(|why| {
        report.failures.push(format!("the lockdown wrapper's own calls could not be traced: {why}"));
        Vec::new()
    });
    report.observed = observed.clone();

    let own_port = check.socket.is_none();
    let mut own = job.candidates.clone();
    own.extend(computed::candidates(&observed, &wrapper_calls, &job.denied_by_name, own_port));
    let name = if own_port { "own-port" } else { "hardened" };
    let mut own = variant(name, &check, &[], None, &own, trial_limit);
    own.observed = Some(observed.clone());
    report.variants.push(own);

    if job.try_socket && own_port {
        if let Some(&port) = observed.bound_ports.first().or(port.as_ref()) {
            let candidates_for = |seen: &Observed| {
                let mut candidates = job.candidates.clone();
                candidates.extend(computed::candidates(seen, &wrapper_calls, &job.denied_by_name, false));
                candidates
            };
            match socket_activated(&check, &job.exec_start, port, &observed, &candidates_for, trial_limit) {
                Ok(variant) => report.variants.push(variant),
                Err(why) => {
                    log(&format!("no socket-activated variant: {why}"));
                    report.notes.push(format!("no socket-activated variant: {why}"));
                }
            }
        }
    }
    remove_drop_in(&service, DROP_IN);
    report
}

/// What a trace adds to what was seen of the running unit.
fn record(observed: &mut Observed, seen: trace::Trace) {
    observed.syscalls = seen.syscalls.into_iter().collect();
    observed.families = seen.families.into_iter().collect();
    observed.bound_ports = seen.bound_ports.into_iter().collect();
    observed.written = seen.written.into_iter().collect();
    for program in seen.executed {
        if !observed.executable.contains(&program) {
            observed.executable.push(program);
        }
    }
    observed.executable.sort();
}

/// The variant socket-activated on `port`: a socket unit of the service's
/// name (systemd starts the service of the same name), the service in a
/// private network, traced again there (a program that takes its socket
/// makes other calls than one that binds it), its candidates computed from
/// that trace. Err when the program does not take the socket.
fn socket_activated(
    check: &ProgramCheck,
    exec_start: &str,
    port: u16,
    observed: &Observed,
    candidates_for: &dyn Fn(&Observed) -> Vec<Candidate>,
    limit: Duration,
) -> Result<Variant, String> {
    let stem = check.service.trim_end_matches(".service");
    let name = format!("{stem}.socket");
    let text = format!(
        "[Unit]\nDescription=Socket of {service} (sandkasten-vm harden)\n\n[Socket]\nListenStream={port}\n\n\
         [Install]\nWantedBy=sockets.target\n",
        service = check.service
    );
    let path = Path::new("/run/systemd/system").join(&name);
    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let check = ProgramCheck { socket: Some(name.clone()), port: Some(port), ..check.clone() };
    let base = DropInLine::with_socket(&name);
    let private = Candidate {
        label: "PrivateNetwork=".into(),
        comment: String::new(),
        lines: vec![DropInLine::service("PrivateNetwork=yes")],
    };
    log(&format!("does the program take a socket from {name}?"));
    let takes = trial(&check, &base, &[&private], limit);
    // The socket is the harness's until the variant is written: gone after.
    let forget_socket = || {
        let _ = std::fs::remove_file(&path);
        let _ = output(&["systemctl", "daemon-reload"]);
    };
    if !takes.ok {
        forget_socket();
        return Err(format!("in a private network with {name} it does not serve: {}", takes.detail));
    }
    // The drop-in of that trial (socket, private network) stays under the trace's.
    log("the program under strace -f, socket-activated, against its check");
    let mut seen = observed.clone();
    let traced = traced(&check, exec_start);
    if let Ok(trace) = traced.clone() {
        record(&mut seen, trace);
    }
    let candidates = candidates_for(&seen);
    let mut variant = variant("socket-activated", &check, &base, Some((name, text)), &candidates, limit);
    forget_socket();
    if let Err(why) = traced {
        variant.notes.push(format!("the socket-activated trace failed, the own-port trace was used: {why}"));
    }
    variant.observed = Some(seen);
    Ok(variant)
}

/// Tries `candidates` on top of `base`: each kept only while the check
/// passes with it and everything kept so far; the check under all kept.
fn variant(
    name: &str,
    check: &ProgramCheck,
    base: &[DropInLine],
    socket: Option<(String, String)>,
    candidates: &[Candidate],
    limit: Duration,
) -> Variant {
    log(&format!("variant {name}: {} candidates", candidates.len()));
    let started = Instant::now();
    let mut trials = Trials { check, base, limit, count: 0 };
    let mut kept: Vec<Candidate> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    trials.try_set(candidates, &mut kept, &mut steps);
    // Report in the order tried.
    steps.sort_by_key(|s| candidates.iter().position(|c| *c == s.candidate));
    let all: Vec<&Candidate> = kept.iter().collect();
    let hardened = trials.run(&all);
    log(&format!(
        "variant {name}: kept {} of {} in {} trials, {:.0} s; the check under all kept: {}",
        kept.len(),
        candidates.len(),
        trials.count,
        started.elapsed().as_secs_f64(),
        if hardened.ok { "passes" } else { "FAILS" }
    ));
    Variant {
        name: name.to_owned(),
        socket,
        steps,
        hardened: Some(hardened),
        trials: trials.count,
        seconds: started.elapsed().as_secs_f64(),
        observed: None,
        notes: Vec::new(),
    }
}

/// The check against one unit, counted.
struct Trials<'a> {
    check: &'a ProgramCheck,
    base: &'a [DropInLine],
    limit: Duration,
    count: usize,
}

impl Trials<'_> {
    /// The check with `candidates` as harden's drop-in.
    fn run(&mut self, candidates: &[&Candidate]) -> Functional {
        self.count += 1;
        trial(self.check, self.base, candidates, self.limit)
    }

    /// Whether the check passes with `set` added to what is kept: if so all
    /// of it is kept; if not, a single candidate is dropped with the failure
    /// as evidence and a larger set is tried in halves.
    fn try_set(&mut self, set: &[Candidate], kept: &mut Vec<Candidate>, steps: &mut Vec<Step>) {
        if set.is_empty() {
            return;
        }
        let with: Vec<&Candidate> = kept.iter().chain(set).collect();
        let result = self.run(&with);
        if result.ok {
            for candidate in set {
                steps.push(Step { candidate: candidate.clone(), kept: true, evidence: String::new() });
            }
            kept.extend(set.iter().cloned());
        } else if let [candidate] = set {
            log(&format!("dropped {}: {}", candidate.label, first_line(&result.detail)));
            steps.push(Step { candidate: candidate.clone(), kept: false, evidence: result.detail });
        } else {
            let (left, right) = set.split_at(set.len() / 2);
            self.try_set(left, kept, steps);
            self.try_set(right, kept, steps);
        }
    }
}

fn first_line(text: &str) -> &str {
    text.split(" | ").next().unwrap_or(text)
}

/// The check with `candidates` as harden's drop-in.
fn trial(
    check: &ProgramCheck,
    base: &[DropInLine],
    candidates: &[&Candidate],
    limit: Duration,
) -> Functional {
    let text = render_drop_in(base, candidates, false);
    if let Err(e) = write_drop_in(&check.service, DROP_IN, &text) {
        return Functional {
            unit: check.service.clone(),
            check: check.command.clone(),
            ok: false,
            detail: e,
        };
    }
    run_with(check, limit, limit, &mut |_| {})
}

fn write_drop_in(service: &str, name: &str, text: &str) -> Result<(), String> {
    let dir = Path::new("/run/systemd/system").join(format!("{service}.d"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write the drop-in: {e}"))?;
    output(&["systemctl", "daemon-reload"]).map(drop)
}

fn remove_drop_in(service: &str, name: &str) {
    let _ = std::fs::remove_file(Path::new("/run/systemd/system").join(format!("{service}.d")).join(name));
    let _ = output(&["systemctl", "daemon-reload"]);
}

/// The unit once more with its program under `strace -f`, its trace read
/// after the check. The unit's sandbox stays but for what stops a tracer:
/// its system-call filter (ptrace), its `ExecPaths=` (strace itself) and
/// the watchdog (a traced program is slow). `-D` keeps the program the
/// unit's main process (strace traces from a grandchild): `LISTEN_PID` is
/// the main process's, and a program that checks it takes its socket only
/// then.
fn traced(check: &ProgramCheck, exec_start: &str) -> Result<trace::Trace, String> {
    let file = format!("{WORK}/trace.txt");
    let drop_in = format!(
        "[Unit]\nStartLimitIntervalSec=0\n\n[Service]\nExecStart=\nExecStart={}\n\
         StandardError=truncate:{file}\nSystemCallFilter=\nNoExecPaths=\nExecPaths=\nWatchdogSec=0\nNotifyAccess=all\n",
        under_strace(exec_start)?
    );
    write_drop_in(&check.service, TRACE_DROP_IN, &drop_in)?;
    let result = run_with(check, FIRST_LIMIT, FIRST_LIMIT, &mut |_| {});
    remove_drop_in(&check.service, TRACE_DROP_IN);
    if !result.ok {
        return Err(format!("the program did not serve under strace: {}", result.detail));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let seen = trace::parse(&text);
    if seen.syscalls.is_empty() {
        return Err(format!("strace saw no call ({} bytes of output)", text.len()));
    }
    Ok(seen)
}

/// `ExecStart=` as written, with strace in front of the command and behind
/// its prefixes (`-`, `:`, `+`, `!`), its words and quoting untouched. An `@`
/// prefix (argv[0] named apart) cannot take a program in front.
fn under_strace(exec_start: &str) -> Result<String, String> {
    let (prefix, command) = exec_prefix(exec_start);
    if prefix.contains('@') || command.trim().is_empty() {
        return Err(format!("ExecStart={exec_start} cannot run under strace (an @ prefix, or no command)"));
    }
    Ok(format!("{prefix}/usr/bin/strace -D -f -qq -s 256 -e signal=none {command}"))
}

/// The lockdown wrapper's own system calls (it runs before the program,
/// inside the same filter): traced on `/bin/true`.
fn wrapper_calls() -> Result<Vec<String>, String> {
    let file = format!("{WORK}/wrapper.txt");
    crate::systemd::command(
        "strace",
        &["-f", "-qq", "-o", &file, LOCKDOWN_WRAPPER, "/bin/true"],
        crate::systemd::QUERY_TIMEOUT,
    )?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
    Ok(trace::parse(&text).syscalls.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_goes_in_front_of_the_command_behind_its_prefixes() {
        assert_eq!(
            under_strace("-/usr/sbin/nginx -g 'daemon on; master_process on;'").unwrap(),
            "-/usr/bin/strace -D -f -qq -s 256 -e signal=none /usr/sbin/nginx -g 'daemon on; master_process on;'"
        );
        assert!(under_strace("@/bin/a b").unwrap_err().contains("an @ prefix"));
    }
}
