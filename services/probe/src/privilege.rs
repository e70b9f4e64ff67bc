//! Privilege attempts: become root, keep or gain capabilities, act on
//! another process (the canary's target, a process outside the sandbox
//! that exists only to be signalled and traced).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::context::Ctx;
use crate::sys::{self, Errno};
use crate::verdict::{Outcome, Unsupported};

/// `priv.setuid-root`: setuid(0). Without CAP_SETUID (DynamicUser=yes, no
/// capabilities) a non-root uid gets EPERM. A process that is already root
/// succeeds trivially, which is reported as the escape it is.
pub fn setuid_root(_ctx: &Ctx) -> Outcome {
    // SAFETY: getuid/setuid take and return integers.
    let before = unsafe { libc::getuid() };
    // SAFETY: as above.
    if unsafe { libc::setuid(0) } < 0 {
        return Outcome::errno(Errno::last(), format!("setuid(0) as uid {before}"));
    }
    Outcome::escaped(format!("setuid(0) succeeded (uid was {before})"))
}

/// Set-user-id-root programs that wait on stdin when started without a
/// terminal, so their credentials can be read while they run.
const SUID_CANDIDATES: &[&str] = &["/usr/bin/su", "/bin/su", "/usr/bin/passwd", "/usr/bin/chsh"];

/// `priv.suid-binary`: start a setuid-root program and read its effective
/// uid from /proc while it waits for input. NoNewPrivileges=yes (or a
/// nosuid mount) keeps the caller's uid. We never write to its stdin; it is
/// killed after the read.
pub fn suid_binary(_ctx: &Ctx) -> Outcome {
    let found = SUID_CANDIDATES.iter().map(Path::new).find(|p| {
        std::fs::metadata(p).map(|m| m.uid() == 0 && m.mode() & libc::S_ISUID != 0).unwrap_or(false)
    });
    let Some(bin) = found else {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            "no setuid-root program (su, passwd, chsh) here",
        );
    };
    let spawned = Command::new(bin)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Outcome::errno(Errno::from(e), format!("exec {}", bin.display())),
    };
    // spawn returns once the exec has closed our CLOEXEC pipe, which the
    // kernel does (begin_new_exec) before it commits the new credentials:
    // a single read right away can still show the caller's euid. Read until
    // euid 0 shows, the child is a zombie (its credentials are final), or
    // it has run a while with the same ones.
    let euid = settled_euid(child.id());
    let _ = child.kill();
    drop(child.stdin.take());
    let _ = child.wait();
    let euid = match euid {
        Ok(euid) => euid,
        Err(e) => return Outcome::failed(e),
    };
    // SAFETY: geteuid takes no arguments.
    let caller = unsafe { libc::geteuid() };
    if euid == 0 {
        let note = if caller == 0 { " (the caller was already root)" } else { "" };
        Outcome::escaped(format!("{} ran with euid 0{note}", bin.display()))
    } else {
        Outcome::stopped("non-root-euid", format!("{} ran with euid {euid}, the caller's", bin.display()))
    }
}

/// How long a running child's credentials must stay non-root before they
/// count as settled.
const SETTLE: Duration = Duration::from_millis(300);

/// The effective uid of child `pid` once its exec is complete: 0 as soon as
/// it shows, else the last one read when the child became a zombie or
/// [`SETTLE`] passed.
fn settled_euid(pid: u32) -> Result<u32, String> {
    let started = std::time::Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
        let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        let euid = field("Uid:")
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or("no Uid line in the child's status")?;
        let zombie = field("State:").is_some_and(|s| s.starts_with('Z'));
        if euid == 0 || zombie || started.elapsed() >= SETTLE {
            return Ok(euid);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `priv.chmod-suid`: set the set-user-id bit on a file we own (a later
/// process of ours, or an attacker with our uid, runs it with our uid).
/// RestrictSUIDSGID=yes filters such chmods with EPERM.
pub fn chmod_suid(ctx: &Ctx) -> Outcome {
    let path = match ctx.scratch_file("priv.chmod-suid", "suid") {
        Ok(p) => p,
        Err(o) => return o,
    };
    if let Err(e) = std::fs::write(&path, b"#!/bin/sh\n") {
        return Outcome::failed(format!("write {}: {e}", path.display()));
    }
    let result = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4755));
    let mode = std::fs::metadata(&path).map(|m| m.mode()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) if mode & libc::S_ISUID != 0 => {
            Outcome::escaped(format!("chmod 4755 {} left mode {mode:o}", path.display()))
        }
        Ok(()) => Outcome::stopped("bit-dropped", format!("chmod 4755 succeeded but mode is {mode:o}")),
        Err(e) => Outcome::errno(Errno::from(e), format!("chmod 4755 {}", path.display())),
    }
}

/// `priv.capabilities`: every capability set must be empty; a non-empty
/// bounding set lets a setuid program or file capability hand them back.
pub fn capabilities(_ctx: &Ctx) -> Outcome {
    // /proc/self/status rather than capget(2): a system-call allow-list may
    // not include capget, and the kernel's own account is the one that counts.
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Outcome::failed(format!("read /proc/self/status: {e}")),
    };
    let mut line = String::new();
    let mut any = 0u64;
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        let Some(value) = value else {
            return Outcome::failed(format!("no {key} line in /proc/self/status"));
        };
        any |= value;
        line.push_str(&format!("{key}={value:016x} "));
    }
    let line = line.trim_end().to_owned();
    if any == 0 {
        Outcome::stopped("all-zero", line)
    } else {
        Outcome::escaped(line)
    }
}

/// `priv.chown`: give a file away. Without CAP_CHOWN only a no-op chown is
/// allowed, so the target uid is one that differs from the owner: root for a
/// non-root caller, nobody (65534) for root.
pub fn chown(ctx: &Ctx) -> Outcome {
    let path = match ctx.scratch_file("priv.chown", "chown") {
        Ok(p) => p,
        Err(o) => return o,
    };
    if let Err(e) = std::fs::write(&path, b"") {
        return Outcome::failed(format!("write {}: {e}", path.display()));
    }
    // SAFETY: geteuid takes no arguments.
    let to = if unsafe { libc::geteuid() } == 0 { 65534 } else { 0 };
    let result = std::os::unix::fs::chown(&path, Some(to), None);
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => Outcome::escaped(format!("chown {} to uid {to} succeeded", path.display())),
        Err(e) => Outcome::errno(Errno::from(e), format!("chown {} to uid {to}", path.display())),
    }
}

/// The canary's target pid, checked to name the canary's target here.
/// Another pid namespace cannot address it (ESRCH without acting); a pid
/// whose start time differs is a reused pid (ESRCH, and we must not touch
/// that process).
fn canary_target(ctx: &Ctx) -> Result<i32, Outcome> {
    let c = ctx.need_canary()?;
    if ctx.same_ns_as_host("pid") == Some(false) {
        return Err(Outcome::errno(
            Errno(libc::ESRCH),
            format!("the canary target (host pid {}) is in another pid namespace", c.target_pid),
        ));
    }
    match sys::proc_starttime(c.target_pid) {
        Some(t) if t != c.target_starttime => Err(Outcome::errno(
            Errno(libc::ESRCH),
            format!("pid {} here is not the canary target (start time differs)", c.target_pid),
        )),
        _ => Ok(c.target_pid),
    }
}

/// `priv.ptrace`: attach to the canary's target, read a register, hold the
/// attachment for 300 ms (so the canary sees `TracerPid`) and detach.
pub fn ptrace(ctx: &Ctx) -> Outcome {
    let pid = match canary_target(ctx) {
        Ok(p) => p,
        Err(o) => return o,
    };
    // The target takes one tracer at a time: when a probe in another unit
    // (the harness runs several at once) holds it, EPERM says nothing
    // about this sandbox. Wait for it to let go, when /proc shows that.
    // The other tracer can also let go between our EPERM and our look at
    // /proc (the ablation saw that once): an EPERM with no tracer in
    // sight is tried once more before it counts.
    let started = std::time::Instant::now();
    let mut untraced_refusals = 0;
    loop {
        // SAFETY: PTRACE_ATTACH takes a pid and null pointers.
        if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) } == 0 {
            break;
        }
        let e = Errno::last();
        let busy = e.0 == libc::EPERM && traced_by_another(pid);
        if e.0 == libc::EPERM && !busy {
            untraced_refusals += 1;
        }
        if e.0 != libc::EPERM || untraced_refusals > 1 || started.elapsed() > Duration::from_secs(3) {
            return Outcome::errno(e, format!("PTRACE_ATTACH to the canary target {pid}"));
        }
        if busy {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let stopped = sys::wait_deadline_stop(pid, Duration::from_secs(1));
    // SAFETY: PEEKUSER at offset 0 reads one word of the tracee's registers.
    let word = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, pid, 0usize, 0usize) };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: detach with no signal to deliver.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    Outcome::escaped(format!(
        "attached to the canary target {pid} (stopped: {stopped}, first register word {word:#x}), then detached"
    ))
}

/// Whether /proc shows `pid` traced by someone (`TracerPid:` not 0).
fn traced_by_another(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("TracerPid:")).map(|t| t.trim() != "0"))
        .unwrap_or(false)
}

/// `priv.signal`: SIGTERM to the canary's target, which records the sender
/// and keeps running.
pub fn signal(ctx: &Ctx) -> Outcome {
    let pid = match canary_target(ctx) {
        Ok(p) => p,
        Err(o) => return o,
    };
    // SAFETY: kill takes integers.
    if unsafe { libc::kill(pid, libc::SIGTERM) } < 0 {
        return Outcome::errno(Errno::last(), format!("kill({pid}, SIGTERM)"));
    }
    // Stay alive briefly so the canary can read who we are from /proc.
    std::thread::sleep(Duration::from_millis(300));
    Outcome::escaped(format!("delivered SIGTERM to the canary target {pid}"))
}
