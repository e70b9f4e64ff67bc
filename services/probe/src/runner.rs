//! Runs each attempt in a forked child with a deadline.
//!
//! The probe stands in for a compromised server, so the runner does what
//! the server does at start: it builds the [`Ctx`] once and installs the
//! servers' lockdown once (`SANDKASTEN_LOCKDOWN=1`, before any fork, and
//! it never starts a thread). Each attempt is then the attacker's code, run
//! in a child the runner forks, under everything the runner installed. The
//! child is not re-executed: an exec cost 100-200 ms per attempt under the
//! test VM's emulation (TCG), which with the whole catalogue in every
//! unit dominated the matrix's time. (`run-one`, which makes one attempt in a
//! process of its own, remains for debugging by hand.)
//!
//! Per attempt: a close-on-exec pipe, then `fork`. The child is
//! single-threaded (unshare(CLONE_NEWUSER) needs that), puts itself in a
//! process group of its own, dies if the runner dies (and gives up at once
//! if the runner is already gone), and gets the fds a re-executed child
//! had: /dev/null as stdin, the pipe's write end as stdout, the runner's
//! stderr, and whatever else the runner inherited (handed-over sockets).
//! It makes the attempt, writes the [`Outcome`] as one JSON line to the
//! pipe and `_exit`s: it never returns into the runner's code, runs no
//! destructor or exit handler, and never touches std's stdout, whose
//! buffer is the runner's. The runner waits for it without reaping
//! (`WNOWAIT`; between checks it sleeps in poll(2) on the pipe, which wakes
//! it when the report comes or the child's end closes), kills the whole
//! group (whatever the attempt left behind), then reaps, reads the pipe
//! without blocking and classifies: a report is matched against the
//! accepted outcomes, a death by signal is `killed` only when that signal
//! is accepted, an overrun is an `error`.
//!
//! What a fork changes for the attempt, next to a fresh exec (none of it is
//! what an attempt tests; the verdicts are the same):
//! - its command line is the runner's, so the canary, which reads the
//!   sender's command line for signals and tracers, finds the run id there
//!   (`--run-id`) and names the attempt by target (see
//!   `canary::ids::parse_cmdline`);
//! - it is in the runner's Landlock domain rather than one of its own, so
//!   the runner's /proc entries are open to it as a server's are to code
//!   running in the server (`proc.sibling` looks outside its own tree);
//! - the lockdown's `tgkill` rule names the runner's pid, as in a server it
//!   names the server's: the attempt may aim `tgkill` at the runner, not at
//!   itself, like code in a child that a compromised server forks
//!   (`priv.signal-sibling` skips both).
//!
//! The runner's own system calls beyond a server's allow-list: `pipe2`,
//! `setpgid` (in both processes), `waitid` and `kill`, `wait4` for the
//! clean-up child, and `getdents64` where a server's list lacks it
//! ([`remove_scratch`] lists directories; it runs in a child of its own, so
//! a filter that kills on unlink kills only that child).
//! Fork is `clone`; the child moves its stdio fds with `close`, `openat`
//! and `fcntl(F_DUPFD)`, not `dup2`.
//!
//! [`remove_scratch`]: crate::context::remove_scratch

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use sandkasten_runtime::notify;

use crate::catalogue::Attempt;
use crate::context::{Ctx, Options};
use crate::verdict::{classify, ChildResult, Outcome, Unsupported, Verdict};

/// Makes attempt `a` in this process (the forked child, or `run-one`).
/// Refuses attempts whose capability the host's root lacks: no control
/// run could show them escaping, so blocking them proves nothing.
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

/// Installs the servers' lockdown where the unit switches it on
/// (`SANDKASTEN_LOCKDOWN=1`), as the server does at start; the outcome to
/// report for every attempt when it cannot be installed: nothing runs
/// without a lockdown the unit asked for.
pub fn lock_down() -> Result<(), Outcome> {
    sandkasten_runtime::lockdown::from_env().map(drop).map_err(|e| Outcome::failed(format!("{e}")))
}

/// Makes every attempt in `attempts`, in order, each in a forked child,
/// calling `each` as results come in.
///
/// Builds the context and installs the lockdown first, once (see the
/// module documentation). Must be called before any thread exists.
pub fn run_all(
    opts: &Options,
    run_id: &str,
    attempts: &[&Attempt],
    mut each: impl FnMut(&Verdict),
) -> Vec<Verdict> {
    let ctx = Ctx::new(opts.clone(), run_id.to_owned());
    // Orphans of an attempt (a grandchild whose parent was killed) are
    // re-parented to us and reaped between attempts, not to PID 1.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    // Before the first fork, with a single thread: the filter and the
    // Landlock domain then cover every attempt.
    let locked = lock_down();
    // Inside a Type=notify unit (the harness runs us in the servers' own
    // units), systemd waits for READY=1 and kills us without WATCHDOG=1.
    // The servers' own notify module: a no-op without NOTIFY_SOCKET.
    notify::ready(&format!("probing, {} attempts", attempts.len()));
    let mut out = Vec::new();
    for (done, a) in attempts.iter().enumerate() {
        let v = match &locked {
            Ok(()) => {
                let v = run_child(&ctx, a);
                // Before the bookkeeping below, which may take 5 s itself.
                notify::watchdog();
                v
            }
            // Fail closed, as each attempt's process did when it installed
            // the lockdown itself: the attempt is not made.
            Err(o) => verdict(a, ChildResult::Reported(o.clone()), Duration::ZERO),
        };
        // Under the lockdown too: the attempt ran in the runner's Landlock
        // domain, so whatever it could create, the runner may remove. In a
        // throw-away child of its own: unlink and rmdir are outside every
        // server's allow-list, and a unit without SystemCallErrorNumber=
        // (an ablation takes it out) kills whoever calls them. The runner
        // must outlive its bookkeeping.
        let _ = crate::sys::fork_wait(Duration::from_secs(5), || {
            crate::context::remove_scratch(opts, run_id, a.id);
            0
        });
        each(&v);
        out.push(v);
        reap_orphans();
        let status = format!("{} of {} attempts made", done + 1, attempts.len());
        notify::watchdog();
        notify::status(&status);
    }
    out
}

/// Reaps whatever children have exited (orphans re-parented to us).
fn reap_orphans() {
    loop {
        // SAFETY: a zeroed siginfo is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: reaps any exited child; we have no other children now.
        let r =
            unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::__WALL) };
        // SAFETY: si_pid is valid to read after waitid.
        if r < 0 || unsafe { info.si_pid() } == 0 {
            break;
        }
    }
}

/// A new pipe, close-on-exec, with both ends above the stdio fds (so that
/// the child, which replaces its stdin and stdout, cannot close one by
/// accident where the runner was started with a stdio fd closed).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the live two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new fds, each owned here exactly once.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on an fd we own returns a new fd (or -1).
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd, owned here only.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// How often the runner pings the watchdog while an attempt runs: well
/// under the shortest `WatchdogSec=` of the units it runs in.
const WATCHDOG_PING: Duration = Duration::from_secs(2);

fn run_child(ctx: &Ctx, a: &Attempt) -> Verdict {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let start = Instant::now();
    let deadline = Duration::from_millis(a.deadline_ms);
    // SAFETY: getpid takes no arguments.
    let runner = unsafe { libc::getpid() };
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            let why = format!("cannot start the attempt's process: pipe: {e}");
            return verdict(a, ChildResult::NoReport(why), start.elapsed());
        }
    };
    // SAFETY: the runner has a single thread (it starts none), so the child
    // may run any code; it never returns from `child` (see there).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child(ctx, a, runner, read_end.into_raw_fd(), write_end.into_raw_fd());
    }
    drop(write_end);
    if pid < 0 {
        let why = format!("cannot start the attempt's process: fork: {}", std::io::Error::last_os_error());
        return verdict(a, ChildResult::NoReport(why), start.elapsed());
    }
    // The child does the same; whichever comes first, the group exists
    // before the kill below.
    // SAFETY: integers only, on our own child.
    unsafe { libc::setpgid(pid, pid) };
    // Non-blocking from here on: anything that escaped the group and still
    // holds the pipe must not block us.
    set_nonblocking(read_end.as_raw_fd());
    let mut timed_out = false;
    let mut reported = false;
    let mut pinged = Instant::now();
    loop {
        // An attempt may outlast the unit's WatchdogSec= (priv.signal-
        // sibling may take 40 s; the servers' units allow 30 s between
        // pings): the runner is alive while it waits, so it says so.
        if pinged.elapsed() >= WATCHDOG_PING {
            notify::watchdog();
            pinged = Instant::now();
        }
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
        let Some(left) = deadline.checked_sub(start.elapsed()) else {
            timed_out = true;
            break;
        };
        if reported {
            // The report (or the end of the pipe) is there: the child is
            // in its last system calls.
            std::thread::sleep(left.min(Duration::from_micros(100)));
        } else {
            // Until the child writes its report or closes the pipe (as it
            // exits), without waking every few milliseconds for nothing;
            // but no longer than 3 ms, since a child killed while a
            // grandchild holds the pipe leaves it open.
            reported = readable(read_end.as_raw_fd(), left.min(Duration::from_millis(3)));
        }
    }
    // SAFETY: kills the attempt's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = reap(pid);
    let mut text = String::new();
    let _ = std::fs::File::from(read_end).read_to_string(&mut text);
    let result = if timed_out {
        ChildResult::TimedOut(a.deadline_ms)
    } else {
        match status {
            Err(e) => ChildResult::NoReport(format!("wait: {e}")),
            Ok(st) => match (st.signal(), text.lines().next().map(serde_json::from_str::<Outcome>)) {
                (Some(sig), _) => ChildResult::Signaled(sig),
                (None, Some(Ok(o))) => ChildResult::Reported(o),
                (None, Some(Err(e))) => ChildResult::NoReport(format!("unreadable report ({e}): {text:?}")),
                (None, None) => ChildResult::NoReport(format!("{st}, nothing on stdout")),
            },
        }
    };
    verdict(a, result, start.elapsed())
}

/// The attempt's side of the fork. Never returns: it ends with `_exit`, so
/// nothing of the runner's (destructors, exit handlers, std's stdout
/// buffer) runs or is flushed twice.
fn child(ctx: &Ctx, a: &Attempt, runner: libc::pid_t, read_end: RawFd, write_end: RawFd) -> ! {
    // SAFETY: integer and C-string arguments only; every fd named is this
    // process's own (the pipe's ends, ours after the fork; stdin and
    // stdout, which we replace).
    unsafe {
        libc::setpgid(0, 0);
        // The runner may die; this process must not outlive it. If it died
        // before the prctl, we are an orphan already.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != runner {
            libc::_exit(1);
        }
        libc::close(read_end);
        // stdin: /dev/null (the lowest free fd, so 0).
        libc::close(0);
        libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        // stdout: the pipe (the lowest free fd from 1, so 1), without
        // close-on-exec, as a re-executed child had it. Not dup2, which the
        // servers' allow-lists leave out.
        libc::close(1);
        if libc::fcntl(write_end, libc::F_DUPFD, 1) != 1 {
            libc::_exit(1);
        }
        libc::close(write_end);
    }
    // A panic is reported as a re-executed child's was: its message on
    // stderr (the panic hook), exit status 101, no report.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_here(ctx, a)));
    let code = match outcome.map(|o| serde_json::to_string(&o)) {
        Ok(Ok(mut line)) => {
            line.push('\n');
            if write_all(1, line.as_bytes()) {
                0
            } else {
                1
            }
        }
        Ok(Err(_)) => 1,
        Err(_) => 101,
    };
    // SAFETY: ends this process without running anything of the runner's.
    unsafe { libc::_exit(code) }
}

/// Writes all of `buf` to `fd` with write(2) (not through std's stdout);
/// false on an error.
fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writes from the live buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Reaps child `pid` (after the kill, so without a deadline); its status as
/// `wait` would report it.
fn reap(pid: libc::pid_t) -> std::io::Result<ExitStatus> {
    loop {
        // SAFETY: a zeroed siginfo is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: reaps our own child.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: si_status is valid to read after waitid reported a child.
        let status = unsafe { info.si_status() };
        // The wait(2) status word: an exit code in the second byte, or the
        // signal (with 0x80 where it dumped core).
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        return Ok(ExitStatus::from_raw(raw));
    }
}

fn verdict(a: &Attempt, result: ChildResult, elapsed: Duration) -> Verdict {
    let (verdict, outcome, reason, detail) = classify(a.accepted, result);
    Verdict {
        id: a.id.to_owned(),
        goal: a.goal.id().to_owned(),
        directive: a.held_by.describe(),
        verdict,
        outcome,
        accepted: a.accepted.iter().map(|s| (*s).to_owned()).collect(),
        reason,
        detail,
        elapsed_ms: elapsed.as_millis() as u64,
    }
}

/// Waits up to `timeout` for `fd` to have data or its end; true if so.
fn readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // Rounded up: a remainder under a millisecond still waits.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: polls one live pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}
