//! Resource attempts: scheduling priority, limits, and exhaustion.
//!
//! The exhaustion attempts are bounded so they are harmless where they
//! escape: `res.fork-bomb` stops at `--fork-limit` tasks (at most 2000) and
//! kills and reaps every one; `res.memory` stops at `--memory-mib` (at most
//! 512). Both run inside the attempt's own process group, which the runner
//! kills as a whole when the attempt ends or overruns.

use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::sys::{self, Errno};
use crate::verdict::Outcome;

/// `res.realtime`: SCHED_FIFO lets one process starve a CPU.
pub fn realtime(_ctx: &Ctx) -> Outcome {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: a live sched_param for this process.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } < 0 {
        return Outcome::errno(Errno::last(), "sched_setscheduler(SCHED_FIFO, 1)");
    }
    let back = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above; back to normal before doing anything else.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &back) };
    Outcome::escaped("sched_setscheduler(SCHED_FIFO, 1) succeeded (reverted)")
}

/// `res.nice`: a negative nice value outranks the rest of the system.
pub fn nice(_ctx: &Ctx) -> Outcome {
    // SAFETY: integers only; affects this throw-away process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) } < 0 {
        return Outcome::errno(Errno::last(), "setpriority(PRIO_PROCESS, self, -10)");
    }
    Outcome::escaped("setpriority(-10) succeeded")
}

/// `res.rlimit`: raise the hard RLIMIT_NOFILE. The limit is first lowered
/// by one (always allowed), then raised back, so the request stays below
/// fs.nr_open and only CAP_SYS_RESOURCE decides.
pub fn rlimit(_ctx: &Ctx) -> Outcome {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Outcome::failed(format!("getrlimit: {}", Errno::last()));
    }
    let hard = lim.rlim_max;
    if hard < 2 {
        return Outcome::failed(format!("hard RLIMIT_NOFILE is {hard}"));
    }
    let lower = libc::rlimit { rlim_cur: lim.rlim_cur.min(hard - 1), rlim_max: hard - 1 };
    // SAFETY: a live rlimit; lowering needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lower) } < 0 {
        return Outcome::failed(format!("lowering RLIMIT_NOFILE: {}", Errno::last()));
    }
    let raise = libc::rlimit { rlim_cur: lower.rlim_cur, rlim_max: hard };
    // SAFETY: a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raise) } < 0 {
        return Outcome::errno(
            Errno::last(),
            format!("raising the hard RLIMIT_NOFILE from {} to {hard}", hard - 1),
        );
    }
    Outcome::escaped(format!("raised the hard RLIMIT_NOFILE from {} to {hard}", hard - 1))
}

const STACK: usize = 32 * 1024;

/// Body of each fork-bomb task: die with the parent, then sleep until
/// killed. Only raw system calls: the task shares the parent's memory
/// (CLONE_VM), so it must not touch libc state.
extern "C" fn bomb_task(_arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: raw prctl/pause/exit system calls with integer arguments.
    unsafe {
        libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        loop {
            libc::syscall(libc::SYS_pause);
        }
    }
}

/// `res.fork-bomb`: create processes until the kernel refuses (EAGAIN from
/// TasksMax=, RLIMIT_NPROC or pid exhaustion) or `--fork-limit` is reached.
/// The tasks are clone(CLONE_VM) processes with 32 KiB stacks, so a
/// thousand of them cost a few MiB, not a thousand address-space copies.
pub fn fork_bomb(ctx: &Ctx) -> Outcome {
    let limit = ctx.opts.fork_limit.min(2000) as usize;
    let len = STACK * limit;
    // SAFETY: an anonymous private mapping for the tasks' stacks; it stays
    // mapped until every task is dead and reaped.
    let stacks = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stacks == libc::MAP_FAILED {
        return Outcome::failed(format!("mmap for stacks: {}", Errno::last()));
    }
    let mut pids: Vec<libc::pid_t> = Vec::with_capacity(limit);
    let mut failure = None;
    let start = Instant::now();
    for i in 0..limit {
        // SAFETY: each task gets the top of its own 32 KiB slot.
        let top = unsafe { (stacks as *mut u8).add(STACK * (i + 1)) };
        // SAFETY: bomb_task only makes raw system calls on its own stack.
        let pid = unsafe {
            libc::clone(bomb_task, top.cast(), libc::CLONE_VM | libc::SIGCHLD, std::ptr::null_mut())
        };
        if pid < 0 {
            failure = Some(Errno::last());
            break;
        }
        pids.push(pid);
        if start.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let made = pids.len();
    for &pid in &pids {
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &pids {
        let mut st = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
    // SAFETY: every task using the stacks is dead and reaped.
    unsafe { libc::munmap(stacks, len) };
    match failure {
        Some(e) => {
            Outcome::errno(e, format!("process creation failed after {made} tasks (all killed and reaped)"))
        }
        None if made == limit => {
            Outcome::escaped(format!("created {made} tasks without meeting a limit (all killed and reaped)"))
        }
        None => Outcome::failed(format!("stopped at {made} tasks after 15 s without an error")),
    }
}

/// `res.memory`: map and touch 16 MiB chunks up to `--memory-mib`. A
/// MemoryMax= cgroup limit ends this with the OOM killer's SIGKILL (only
/// this process: it is the largest in the unit).
pub fn memory(ctx: &Ctx) -> Outcome {
    const CHUNK: usize = 16 << 20;
    let want = ctx.opts.memory_mib.min(512) as usize;
    let chunks = want.div_ceil(16);
    let mut maps = Vec::new();
    let mut failure = None;
    for _ in 0..chunks {
        // SAFETY: an anonymous private mapping; unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            failure = Some(Errno::last());
            break;
        }
        maps.push(p);
        for off in (0..CHUNK).step_by(4096) {
            // SAFETY: within the chunk mapped above.
            unsafe { std::ptr::write_volatile((p as *mut u8).add(off), 1) };
        }
    }
    let touched = maps.len() * 16;
    for p in maps {
        // SAFETY: unmaps a chunk mapped above.
        unsafe { libc::munmap(p, CHUNK) };
    }
    let _ = sys::close;
    match failure {
        Some(e) => Outcome::errno(e, format!("mmap failed after {touched} MiB")),
        None => Outcome::escaped(format!("touched {touched} MiB without being stopped (released)")),
    }
}
