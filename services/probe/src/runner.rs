//! Runs each attempt in a fresh process with a deadline.
//!
//! The runner re-executes the probe (`/proc/self/exe run-one ID …`) for
//! every attempt rather than forking itself: the child starts clean and
//! single-threaded (unshare(CLONE_NEWUSER) needs that), in its own process
//! group, and dies if the runner dies. It reports one JSON line on stdout.
//! The runner waits for it without reaping (`WNOWAIT`), kills the whole
//! group (whatever the attempt left behind), then reaps and classifies:
//! a report is matched against the accepted outcomes, a death by signal is
//! `killed` only when that signal is accepted, an overrun is an `error`.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandkasten_runtime::notify;

use crate::catalogue::Attempt;
use crate::context::{Ctx, Options};
use crate::verdict::{classify, ChildResult, Outcome, Unsupported, Verdict};

/// Makes attempt `a` in this process (the `run-one` side). Refuses attempts
/// whose capability the host's root lacks: no control run could show them
/// escaping, so blocking them proves nothing.
pub fn run_here(ctx: &Ctx, a: &Attempt) -> Outcome {
    if let (Some(cap), Some(c)) = (a.host_cap, &ctx.canary) {
        if c.host.cap_bnd & (1u64 << cap) == 0 {
            return Outcome::unsupported(
                Unsupported::NotApplicable,
                format!(
                    "the host's root lacks {} in its bounding set (per the canary), so no control run can show \
                     this attempt escaping",
                    crate::catalogue::caps::name(cap)
                ),
            );
        }
    }
    (a.run)(ctx)
}

/// The arguments that give a `run-one` child the same options.
fn forward(opts: &Options, run_id: &str) -> Vec<String> {
    let mut v = vec!["--run-id".to_owned(), run_id.to_owned()];
    if let Some(c) = &opts.canary {
        v.extend(["--canary".to_owned(), c.display().to_string()]);
    }
    if opts.keep_markers {
        v.push("--keep-markers".to_owned());
    }
    v.extend(["--content-dir".to_owned(), opts.content_dir.display().to_string()]);
    v.extend(["--dbus-socket".to_owned(), opts.dbus_socket.display().to_string()]);
    if let Some(d) = &opts.scratch_dir {
        v.extend(["--scratch-dir".to_owned(), d.display().to_string()]);
    }
    v.extend(["--fork-limit".to_owned(), opts.fork_limit.to_string()]);
    v.extend(["--memory-mib".to_owned(), opts.memory_mib.to_string()]);
    v
}

/// Makes every attempt in `attempts`, in order, calling `each` as results
/// come in.
pub fn run_all(
    opts: &Options,
    run_id: &str,
    attempts: &[&Attempt],
    mut each: impl FnMut(&Verdict),
) -> Vec<Verdict> {
    // Orphans of an attempt (a grandchild whose parent was killed) are
    // re-parented to us and reaped between attempts, not to PID 1.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let args = forward(opts, run_id);
    // Inside a Type=notify unit (the harness runs us in the servers' own
    // units), systemd waits for READY=1 and kills us without WATCHDOG=1.
    // The servers' own notify module: a no-op without NOTIFY_SOCKET.
    notify::ready(&format!("probing, {} attempts", attempts.len()));
    let mut out = Vec::new();
    for (done, a) in attempts.iter().enumerate() {
        let v = run_child(a, &args);
        crate::context::remove_scratch(opts, run_id, a.id);
        each(&v);
        out.push(v);
        reap_orphans();
        let status = format!("{} of {} attempts made", done + 1, attempts.len());
        notify::watchdog();
        notify::status(&status);
    }
    out
}

fn reap_orphans() {
    loop {
        let mut st = 0;
        // SAFETY: reaps any exited child; we have no other children now.
        if unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) } <= 0 {
            break;
        }
    }
}

fn exe() -> std::path::PathBuf {
    // /proc/self/exe survives the binary being replaced on disk mid-run.
    let p = std::path::PathBuf::from("/proc/self/exe");
    if p.exists() {
        p
    } else {
        std::env::current_exe().unwrap_or(p)
    }
}

fn run_child(a: &Attempt, args: &[String]) -> Verdict {
    let start = Instant::now();
    let deadline = Duration::from_millis(a.deadline_ms);
    let spawned = Command::new(exe())
        .arg("run-one")
        .arg(a.id)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn();
    let result = match spawned {
        Err(e) => ChildResult::NoReport(format!("cannot start the attempt's process: {e}")),
        Ok(mut child) => {
            let pid = child.id() as i32;
            let mut timed_out = false;
            loop {
                // SAFETY: a zeroed siginfo is valid for waitid to fill.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: WNOWAIT leaves the child unreaped, so its pid (and
                // process group id) cannot be reused before the kill below.
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                    )
                };
                // SAFETY: si_pid is valid to read after waitid.
                if r < 0 || unsafe { info.si_pid() } != 0 {
                    break;
                }
                if start.elapsed() > deadline {
                    timed_out = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            // SAFETY: kills the attempt's own process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let status = child.wait();
            let mut text = String::new();
            if let Some(mut out) = child.stdout.take() {
                // The group is dead; anything that escaped the group and
                // still holds the pipe must not block us.
                set_nonblocking(&out);
                let _ = out.read_to_string(&mut text);
            }
            if timed_out {
                ChildResult::TimedOut(a.deadline_ms)
            } else {
                match status {
                    Err(e) => ChildResult::NoReport(format!("wait: {e}")),
                    Ok(st) => match (st.signal(), text.lines().next().map(serde_json::from_str::<Outcome>)) {
                        (Some(sig), _) => ChildResult::Signaled(sig),
                        (None, Some(Ok(o))) => ChildResult::Reported(o),
                        (None, Some(Err(e))) => {
                            ChildResult::NoReport(format!("unreadable report ({e}): {text:?}"))
                        }
                        (None, None) => ChildResult::NoReport(format!("{st}, nothing on stdout")),
                    },
                }
            }
        }
    };
    let (verdict, outcome, reason, detail) = classify(a.accepted, result);
    Verdict {
        id: a.id.to_owned(),
        goal: a.goal.id().to_owned(),
        directive: a.directive.to_owned(),
        verdict,
        outcome,
        accepted: a.accepted.iter().map(|s| (*s).to_owned()).collect(),
        reason,
        detail,
        elapsed_ms: start.elapsed().as_millis() as u64,
    }
}

fn set_nonblocking(f: &impl std::os::fd::AsRawFd) {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}
