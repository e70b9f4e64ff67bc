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
    exec_prefix, render_drop_in, telling, Candidate, DropInLine, HardenJob, HardenReport, Observed, Step,
    Variant, CAPABILITIES, DROP_IN, LOCKDOWN_WRAPPER, RUNTIME_UNITS, TRACE_DROP_IN, WORK,
};
use sandkasten_vm_contract::{Functional, ProgramCheck};

use crate::program_check::run_with;
use crate::systemd::output;
use crate::unit_processes;

/// How long the unit as given may take to serve its check.
const FIRST_LIMIT: Duration = Duration::from_secs(60);

/// Does `job`, prints its [`HardenReport`] as one JSON line; 0 unless the
/// report could not be written.
pub fn run(job: &HardenJob) -> i32 {
    let report = report(job);
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

/// Does `job` on this machine (in the guest, or on the admin's host):
/// what it found.
fn report(job: &HardenJob) -> HardenReport {
    let mut report = HardenReport { guest: crate::guest_info(), ..HardenReport::default() };
    if let Err(e) = std::fs::create_dir_all(WORK) {
        report.failures.push(format!("cannot create {WORK}: {e}"));
        return report;
    }
    // Users from --sysusers files (the overlay put them in /usr/lib/sysusers.d).
    if !job.on_host {
        let _ = output(&["systemd-sysusers"]);
    }
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
    match traced(&check, job) {
        Ok(seen) => record(&mut observed, seen, &job.programs),
        Err(why) => report.failures.push(format!("the trace failed, nothing computed from it: {why}")),
    }
    let wrapper_calls = wrapper_calls().unwrap_or_else(|why| {
        report.failures.push(format!("the lockdown wrapper's own calls could not be traced: {why}"));
        Vec::new()
    });
    report.observed = observed.clone();

    let own_port = check.socket.is_none();
    let own = ordered(
        &job.candidates,
        computed::candidates(&observed, &wrapper_calls, &job.denied_by_name, own_port),
    );
    let name = if own_port { "own-port" } else { "hardened" };
    let mut own = variant(name, &check, &[], None, &own, trial_limit);
    own.observed = Some(observed.clone());
    report.variants.push(own);

    if job.try_socket && own_port {
        if let Some(&port) = observed.bound_ports.first().or(port.as_ref()) {
            let candidates_for = |seen: &Observed| {
                ordered(
                    &job.candidates,
                    computed::candidates(seen, &wrapper_calls, &job.denied_by_name, false),
                )
            };
            match socket_activated(&check, job, port, &observed, &candidates_for, trial_limit) {
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

/// The candidates in the order tried: where the program writes first,
/// since `ProtectSystem=strict` and the empty `/var` hold only beside it
/// (a set tried in halves keeps one only with what was kept before it).
fn ordered(reference: &[Candidate], computed: Vec<Candidate>) -> Vec<Candidate> {
    let (writable, rest): (Vec<Candidate>, Vec<Candidate>) =
        computed.into_iter().partition(|c| c.label == computed::WRITABLE);
    writable.into_iter().chain(reference.iter().cloned()).chain(rest).collect()
}

/// What a trace adds to what was seen of the running unit. `programs`:
/// what the unit's `Exec*=` lines run, traced or not (a stop helper).
fn record(observed: &mut Observed, seen: trace::Trace, programs: &[String]) {
    observed.syscalls = seen.syscalls.into_iter().collect();
    observed.families = seen.families.into_iter().collect();
    observed.bound_ports = seen.bound_ports.into_iter().collect();
    observed.written = seen.written.into_iter().collect();
    let ran = seen.executed.into_iter().chain(programs.iter().cloned());
    // A script runs only when its interpreter may run too.
    let ran: Vec<String> = ran.flat_map(|p| std::iter::once(p.clone()).chain(interpreter(&p))).collect();
    for program in ran {
        if !observed.executable.contains(&program) {
            observed.executable.push(program);
        }
    }
    observed.executable.sort();
}

/// The interpreter a script names on its `#!` line.
fn interpreter(path: &str) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    let line = std::str::from_utf8(head[..n].strip_prefix(b"#!")?).ok()?.lines().next()?;
    line.split_whitespace().next().filter(|p| p.starts_with('/')).map(str::to_owned)
}

/// The variant socket-activated on `port`: a socket unit of the service's
/// name (systemd starts the service of the same name), the service in a
/// private network, traced again there (a program that takes its socket
/// makes other calls than one that binds it), its candidates computed from
/// that trace. Err when the program does not take the socket.
fn socket_activated(
    check: &ProgramCheck,
    job: &HardenJob,
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
    let path = Path::new(RUNTIME_UNITS).join(&name);
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
    let traced = traced(&check, job);
    if let Ok(trace) = traced.clone() {
        record(&mut seen, trace, &job.programs);
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
    trials.try_set(candidates, &[], &mut kept, &mut steps);
    // Report in the order tried.
    steps.sort_by_key(|s| candidates.iter().position(|c| *c == s.candidate));
    if steps.iter().any(|s| !s.kept && s.candidate.lines == [DropInLine::service(NO_CAPABILITIES)]) {
        capabilities_needed(&mut trials, &mut kept, &mut steps);
    }
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

/// The reference's line that takes every capability.
const NO_CAPABILITIES: &str = "CapabilityBoundingSet=";

/// A program that breaks without any capability (a root daemon that binds
/// port 80, changes its user, chowns its files) still loses every one it
/// does not need: each is tried on its own (in halves, as above), the
/// ones that break the check are the program's needs, and the rest leave
/// the bounding set in one `~` line (several `~` lines narrow it together,
/// and narrow the unit's own list too).
fn capabilities_needed(trials: &mut Trials, kept: &mut Vec<Candidate>, steps: &mut Vec<Step>) {
    log("the program needs capabilities: which?");
    let each: Vec<Candidate> = CAPABILITIES
        .iter()
        .map(|cap| Candidate {
            label: format!("CapabilityBoundingSet=~{cap}"),
            comment: String::new(),
            lines: vec![DropInLine::service(format!("CapabilityBoundingSet=~{cap}"))],
        })
        .collect();
    let mut each_kept = Vec::new();
    let mut each_steps = Vec::new();
    trials.try_set(&each, kept, &mut each_kept, &mut each_steps);
    let cap = |c: &Candidate| c.label.strip_prefix("CapabilityBoundingSet=~").map(str::to_owned);
    let needed: Vec<String> =
        each_steps.iter().filter(|s| !s.kept).filter_map(|s| cap(&s.candidate)).collect();
    let taken: Vec<String> = each_kept.iter().filter_map(cap).collect();
    log(&format!("it needs {}", if needed.is_empty() { "none alone".to_owned() } else { needed.join(" ") }));
    steps.extend(each_steps.into_iter().filter(|s| !s.kept));
    if taken.is_empty() {
        return;
    }
    let bounded = Candidate {
        label: "CapabilityBoundingSet=~ (all it does not need)".into(),
        comment: format!(
            "Every capability but the {} the program needs under the check (each tried on its own: \
             the check fails without it) is gone from the bounding set, for good.",
            if needed.is_empty() { "none".to_owned() } else { needed.join(" ") }
        ),
        lines: vec![DropInLine::service(format!("CapabilityBoundingSet=~{}", taken.join(" ")))],
    };
    steps.push(Step { candidate: bounded.clone(), kept: true, evidence: String::new() });
    kept.push(bounded);
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

    /// Whether the check passes with `set` added to `base` and what is
    /// kept: if so all of it is kept; if not, a single candidate is dropped
    /// with the failure as evidence and a larger set is tried in halves.
    /// `base`: kept before, and not repeated in `kept`.
    fn try_set(
        &mut self,
        set: &[Candidate],
        base: &[Candidate],
        kept: &mut Vec<Candidate>,
        steps: &mut Vec<Step>,
    ) {
        if set.is_empty() {
            return;
        }
        let with: Vec<&Candidate> = base.iter().chain(kept.iter()).chain(set).collect();
        let result = self.run(&with);
        if result.ok {
            for candidate in set {
                steps.push(Step { candidate: candidate.clone(), kept: true, evidence: String::new() });
            }
            kept.extend(set.iter().cloned());
        } else if let [candidate] = set {
            log(&format!("dropped {}: {}", candidate.label, telling(&result.detail)));
            steps.push(Step { candidate: candidate.clone(), kept: false, evidence: result.detail });
        } else {
            let (left, right) = set.split_at(set.len() / 2);
            self.try_set(left, base, kept, steps);
            self.try_set(right, base, kept, steps);
        }
    }
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
    let dir = Path::new(RUNTIME_UNITS).join(format!("{service}.d"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write the drop-in: {e}"))?;
    output(&["systemctl", "daemon-reload"]).map(drop)
}

fn remove_drop_in(service: &str, name: &str) {
    let _ = std::fs::remove_file(Path::new(RUNTIME_UNITS).join(format!("{service}.d")).join(name));
    let _ = output(&["systemctl", "daemon-reload"]);
}

/// The unit once more with its program under `strace -f`, its trace read
/// after the check. The unit's sandbox stays but for what stops a tracer:
/// its system-call filter (ptrace), its `ExecPaths=` (strace itself) and
/// the watchdog (a traced program is slow). `-D` keeps the program the
/// unit's main process (strace traces from a grandchild): `LISTEN_PID` is
/// the main process's, and a program that checks it takes its socket only
/// then.
fn traced(check: &ProgramCheck, job: &HardenJob) -> Result<trace::Trace, String> {
    let file = format!("{WORK}/trace.txt");
    let _ = std::fs::remove_file(&file);
    let mut pre = String::new();
    if !job.exec_start_pre.is_empty() {
        pre.push_str("ExecStartPre=\n");
        for line in &job.exec_start_pre {
            pre.push_str(&format!("ExecStartPre={}\n", under_strace(line)?));
        }
    }
    // append: each process systemd starts (ExecStartPre=, ExecStop=) opens
    // the file anew, and truncate: would wipe what came before.
    let drop_in = format!(
        "[Unit]\nStartLimitIntervalSec=0\n\n[Service]\n{pre}ExecStart=\nExecStart={}\n\
         StandardError=append:{file}\nSystemCallFilter=\nNoExecPaths=\nExecPaths=\nWatchdogSec=0\nNotifyAccess=all\n",
        under_strace(&job.exec_start)?
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
    Ok(format!("{prefix}/usr/bin/strace -D -f -qq -y -s 256 -e signal=none {command}"))
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
            "-/usr/bin/strace -D -f -qq -y -s 256 -e signal=none /usr/sbin/nginx -g 'daemon on; master_process on;'"
        );
        assert!(under_strace("@/bin/a b").unwrap_err().contains("an @ prefix"));
    }
}
