//! Goal: read what belongs to others, from a sibling.
//!
//! Every instance of a template unit with `DynamicUser=yes` runs as the same
//! dynamic user: systemd names the user after the unit's prefix
//! (`sandkasten-echo-inetd`), not after the instance. With `Accept=yes` that
//! means one process per client, all under one uid (measured in the guest).
//! Without more, the kernel's same-uid rule would let a compromised instance
//! read the others' environment and memory: another client's connection,
//! mid-flight. What stops it (measured by removing each): `PrivateUsers=yes`,
//! which gives each instance a user namespace of its own, so the kernel's
//! ptrace access check fails between them (and `ProtectProc=invisible`,
//! which hides exactly what that check refuses, then hides them); and the
//! servers' lockdown, whose Landlock domain per instance refuses the same.
//!
//! [`sibling`] looks for a process of its own uid outside its own process
//! tree and reads its `/proc/PID/environ` and, through `/proc/PID/maps`, a
//! page of `/proc/PID/mem`. Unsandboxed (root) there is always one.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::sys::Errno;
use crate::verdict::{Outcome, Unsupported};

/// Set (to anything) by a harness that starts two instances side by side, so
/// that seeing no sibling means they are hidden, not absent.
pub const SIBLINGS_ENV: &str = "SANDKASTEN_PROBE_SIBLINGS";

/// Whether the harness started siblings beside this process: then a route
/// keeps looking for them for a while, and stays for them to find it.
fn siblings_expected() -> bool {
    std::env::var_os(SIBLINGS_ENV).is_some()
}

/// Stays alive until [`STAY`] after `start` when siblings are expected, so
/// that a sibling started a little later still finds this one.
fn stay_for_siblings(start: Instant) {
    if let Some(rest) = STAY.checked_sub(start.elapsed()).filter(|_| siblings_expected()) {
        std::thread::sleep(rest);
    }
}

/// How long to look for a sibling (the harness starts two instances at
/// once), and how long to stay alive so the other can find this one.
const LOOK: Duration = Duration::from_secs(3);
const STAY: Duration = Duration::from_secs(4);

/// The real uid and parent pid of `pid` (from /proc/PID/status).
fn uid_and_parent(pid: i32) -> Option<(u32, i32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let uid = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
    let ppid = field("PPid:")?.parse().ok()?;
    Some((uid, ppid))
}

/// Every process this one can see: pid → (uid, parent pid), read once.
fn process_table() -> BTreeMap<i32, (u32, i32)> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return BTreeMap::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter_map(|pid| uid_and_parent(pid).map(|entry| (pid, entry)))
        .collect()
}

/// Processes of `uid` that are not in the tree below `root`, in pid order.
fn strangers(uid: u32, root: i32) -> Vec<i32> {
    let table = process_table();
    // Whether `pid` descends from `root` (or is it); a parent we cannot see
    // ends the walk.
    let in_tree = |mut pid: i32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match table.get(&pid) {
                Some(&(_, ppid)) if ppid > 0 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    table.iter().filter(|(&pid, &(u, _))| u == uid && !in_tree(pid)).map(|(&pid, _)| pid).collect()
}

/// Reads a sibling's environment and one page of its memory; Ok(evidence)
/// or the errno of the first refusal.
fn read_sibling(pid: i32) -> Result<String, Errno> {
    let mut environ = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/environ"))
        .and_then(|mut f| f.read_to_end(&mut environ))
        .map_err(Errno::from)?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(Errno::from)?;
    let start = maps
        .lines()
        .find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.starts_with("rw")))
        .and_then(|l| l.split('-').next())
        .and_then(|a| u64::from_str_radix(a, 16).ok())
        .ok_or(Errno(libc::ENOENT))?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(Errno::from)?;
    let mut page = vec![0u8; 4096];
    let n = mem.read_at(&mut page, start).map_err(Errno::from)?;
    let vars = environ.split(|b| *b == 0).filter(|v| !v.is_empty()).count();
    Ok(format!("pid {pid}: {vars} environment variables and {n} bytes of memory at {start:#x}"))
}

/// `proc.sibling`: read the environment and memory of another process of
/// the same user outside our own tree. Another instance of the same
/// template, in a unit; any process of the same user, unsandboxed.
pub fn sibling(_ctx: &Ctx) -> Outcome {
    let start = Instant::now();
    // SAFETY: getuid and getppid take no arguments.
    let (uid, runner) = unsafe { (libc::getuid(), libc::getppid()) };
    let outcome = loop {
        let mut refused: Option<(i32, Errno)> = None;
        let mut readable = None;
        for pid in strangers(uid, runner) {
            match read_sibling(pid) {
                Ok(evidence) => {
                    readable = Some(evidence);
                    break;
                }
                // A kernel thread has no memory map of its own: no target.
                Err(Errno(libc::ENOENT)) => {}
                Err(e) => {
                    refused.get_or_insert((pid, e));
                }
            }
        }
        if let Some(evidence) = readable {
            break Outcome::escaped(format!("read another process of uid {uid}: {evidence}"));
        }
        if let Some((pid, e)) = refused {
            break Outcome::errno(
                e,
                format!("reading /proc/{pid}/environ, maps and mem (another process of uid {uid})"),
            );
        }
        if siblings_expected() && start.elapsed() > LOOK {
            // The harness started siblings side by side: not seeing any is
            // the sandbox's doing (hidepid), not their absence.
            break Outcome::stopped(
                "invisible",
                format!(
                    "siblings were started beside this process, but no other process of uid {uid} is visible"
                ),
            );
        }
        if !siblings_expected() {
            break Outcome::unsupported(
                Unsupported::NotApplicable,
                format!(
                    "no other process of uid {uid} outside this one's tree (an Accept=yes template has them \
                     when two clients are connected)"
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stay_for_siblings(start);
    outcome
}

/// The highest pid to try: the kernel's limit where /proc/sys shows it
/// (`ProcSubset=pid` hides it), else the default for small machines, and
/// at least a margin above our own pid.
fn pid_ceiling() -> i32 {
    // SAFETY: getpid takes no arguments.
    let own = unsafe { libc::getpid() };
    let max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    max.min(1 << 22).max(own + 4096)
}

/// `priv.signal-sibling`: find a process outside our own tree that accepts
/// our signals, without /proc (hidepid may hide it): `tgkill(pid, pid, 0)`
/// makes the kernel's permission check and delivers nothing. Every instance
/// of a template runs as the same user, and the kernel lets a user signal
/// its own processes across user namespaces, so one compromised instance
/// could kill the others (other clients' sessions). `tgkill` stays in the
/// allow-lists (glibc's `abort()` needs it); the lockdown lets it aim at
/// this process only.
pub fn signal_sibling(_ctx: &Ctx) -> Outcome {
    let start = Instant::now();
    // SAFETY: getpid and getppid take no arguments.
    let (own, runner) = unsafe { (libc::getpid(), libc::getppid()) };
    let ceiling = pid_ceiling();
    let outcome = loop {
        let mut refused = None;
        let mut accepted = None;
        for pid in 1..=ceiling {
            if pid == own || pid == runner {
                continue;
            }
            // SAFETY: signal 0 only checks existence and permission.
            let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, 0) };
            if r == 0 {
                accepted = Some(pid);
                break;
            }
            let e = Errno::last();
            if e.0 != libc::ESRCH {
                refused.get_or_insert(e);
            }
        }
        if let Some(pid) = accepted {
            break Outcome::escaped(format!(
                "pid {pid}, outside this process's tree, accepts its signals (tgkill with signal 0)"
            ));
        }
        if !siblings_expected() || start.elapsed() > LOOK {
            break match refused {
                Some(e) => {
                    Outcome::errno(e, format!("tgkill(pid, pid, 0) to every other pid up to {ceiling}"))
                }
                // A pid namespace of its own: nothing else exists to signal.
                None => Outcome::stopped("alone", format!("no other process exists up to pid {ceiling}")),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stay_for_siblings(start);
    outcome
}
