//! File-system attempts: write where the system lives, read what is private,
//! reach kernel tunables through /proc, /sys and the cgroup tree.
//!
//! Every file an attempt creates is a marker named
//! `.sandkasten-probe.<run>.<attempt>` so the harness can look for it from
//! outside (`canary-report`); the probe removes it unless `--keep-markers`.
//! A write that succeeds counts as an escape only if the directory is the
//! host's own: the canary recorded each directory's (device, inode), and a
//! sandbox that gives the service a private copy (`PrivateTmp=yes`,
//! `TemporaryFileSystem=`) shows a different one.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::context::Ctx;
use crate::sys::Errno;
use crate::verdict::{Outcome, Unsupported};

/// Creates the marker for attempt `id` in `dir`; `key` names the directory
/// in the canary's host facts.
fn write_marker(ctx: &Ctx, id: &str, key: &str, dir: &Path) -> Outcome {
    let path = dir.join(ctx.marker_name(id));
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path);
    let mut f = match created {
        Ok(f) => f,
        Err(e) => return Outcome::errno(Errno::from(e), format!("create {}", path.display())),
    };
    let _ = writeln!(f, "sandkasten-probe marker run={} attempt={id}", ctx.run_id);
    drop(f);
    let visible = ctx.visible_on_host(key, dir);
    let fate = ctx.drop_marker(&path);
    match visible {
        Some(true) => Outcome::escaped(format!(
            "created {} ({fate}); it is the host's own {key}, so the file is visible outside",
            path.display()
        )),
        Some(false) => Outcome::stopped(
            "not-visible-outside",
            format!(
                "created {} ({fate}), but this {key} is not the host's: the host cannot see it",
                path.display()
            ),
        ),
        None => Outcome::escaped(format!(
            "created {} ({fate}); no canary view of {key} to tell whether the host sees it, so it counts",
            path.display()
        )),
    }
}

/// `fs.write-etc`: `ProtectSystem=strict` mounts /etc read-only: EROFS.
pub fn write_etc(ctx: &Ctx) -> Outcome {
    write_marker(ctx, "fs.write-etc", "/etc", Path::new("/etc"))
}

/// `fs.write-usr`: /usr/lib, read-only from `ProtectSystem=` on.
pub fn write_usr(ctx: &Ctx) -> Outcome {
    write_marker(ctx, "fs.write-usr", "/usr/lib", Path::new("/usr/lib"))
}

/// `fs.write-var`: /var/lib outside the unit's `StateDirectory=`.
pub fn write_var(ctx: &Ctx) -> Outcome {
    write_marker(ctx, "fs.write-var", "/var/lib", Path::new("/var/lib"))
}

/// `fs.write-content`: the directory the server serves. A server that can
/// rewrite its content can deface or plant files for every client.
pub fn write_content(ctx: &Ctx) -> Outcome {
    let dir = ctx.opts.content_dir.clone();
    let host_has = ctx.canary.as_ref().map(|c| c.host.dirs.contains_key("content"));
    let absent = match host_has {
        Some(has) => !has,
        None => !dir.is_dir(),
    };
    if absent {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            format!("no content directory {} on the host (pass --content-dir)", dir.display()),
        );
    }
    write_marker(ctx, "fs.write-content", "content", &dir)
}

/// Lists a directory: Ok(names) or the errno.
fn list(dir: &str) -> Result<Vec<String>, Errno> {
    let rd = std::fs::read_dir(dir).map_err(Errno::from)?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(Errno::from)?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Escaped if any of `dirs` lists entries; otherwise the first errno, or
/// `empty`. ProtectHome=yes replaces /home with an inaccessible (mode 0000)
/// directory, which gives EACCES to a non-root caller, so EACCES is
/// accepted beside the catalogue's ENOENT and empty.
fn list_any(dirs: &[&str]) -> Outcome {
    let mut first_err: Option<(Errno, &str)> = None;
    let mut notes = Vec::new();
    for d in dirs {
        match list(d) {
            Ok(names) if !names.is_empty() => {
                let shown: Vec<_> = names.iter().take(5).cloned().collect();
                return Outcome::escaped(format!("{d} lists {} entries: {}", names.len(), shown.join(", ")));
            }
            Ok(_) => notes.push(format!("{d} is empty")),
            Err(e) => {
                notes.push(format!("{d}: {e}"));
                first_err.get_or_insert((e, d));
            }
        }
    }
    match first_err {
        Some((e, _)) => Outcome::stopped(&e.name(), notes.join("; ")),
        None => Outcome::stopped("empty", notes.join("; ")),
    }
}

/// `fs.read-home`: users' home directories and root's.
pub fn read_home(ctx: &Ctx) -> Outcome {
    if let Some(c) = &ctx.canary {
        if c.host.home_entries == 0 {
            return Outcome::unsupported(
                Unsupported::NotApplicable,
                "/home and /root are empty on the host: nothing to find",
            );
        }
    }
    list_any(&["/home", "/root"])
}

/// `fs.read-shadow`: password hashes. Mode 0640 root:shadow, so any
/// non-root user without the shadow group gets EACCES.
pub fn read_shadow(_ctx: &Ctx) -> Outcome {
    let mut buf = [0u8; 64];
    match std::fs::File::open("/etc/shadow").and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => Outcome::escaped(format!("read {n} bytes of /etc/shadow")),
        Err(e) => Outcome::errno(Errno::from(e), "read /etc/shadow"),
    }
}

/// `fs.tmp-shared`: a file in /tmp is visible to the host exactly when this
/// /tmp is the host's directory, which only the canary can tell.
pub fn tmp_shared(ctx: &Ctx) -> Outcome {
    if let Err(o) = ctx.need_canary() {
        return o;
    }
    write_marker(ctx, "fs.tmp-shared", "/tmp", Path::new("/tmp"))
}

/// `fs.shm-shared`: /dev/shm. `PrivateDevices=yes` builds a private /dev
/// but binds the host's /dev/shm into it, so a file written there is seen
/// by every other service and user; `PrivateTmp=` does not cover it.
pub fn shm_shared(ctx: &Ctx) -> Outcome {
    if let Err(o) = ctx.need_canary() {
        return o;
    }
    write_marker(ctx, "fs.shm-shared", "/dev/shm", Path::new("/dev/shm"))
}

/// A minimal static x86-64 ELF executable that calls `exit_group(42)`: no
/// interpreter, no libraries, so only the exec permission decides.
pub(crate) fn tiny_elf() -> Vec<u8> {
    let base: u64 = 0x40_0000;
    let code: [u8; 12] = [0xbf, 42, 0, 0, 0, 0xb8, 231, 0, 0, 0, 0x0f, 0x05];
    let total = (64 + 56 + code.len()) as u64;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 0, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, base, base, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&code);
    e
}

/// `fs.proc-pid1`: the host init's environment and command line. In
/// another pid namespace /proc/1 is not the host's init; that is reported
/// as `other-pid-namespace` (accepted: the host's pid 1 is out of reach).
pub fn proc_pid1(ctx: &Ctx) -> Outcome {
    if ctx.same_ns_as_host("pid") == Some(false) {
        return Outcome::stopped(
            "other-pid-namespace",
            "/proc/1 here is not the host's init (own pid namespace)",
        );
    }
    let mut first_err = None;
    let mut notes = Vec::new();
    for f in ["/proc/1/environ", "/proc/1/cmdline"] {
        match std::fs::read(f) {
            Ok(b) if !b.is_empty() => {
                let shown: String =
                    String::from_utf8_lossy(&b[..b.len().min(40)]).replace('\0', " ").trim().to_owned();
                return Outcome::escaped(format!("read {} bytes of {f}: {shown:?}", b.len()));
            }
            Ok(_) => notes.push(format!("{f} is empty")),
            Err(e) => {
                let e = Errno::from(e);
                notes.push(format!("{f}: {e}"));
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Outcome::stopped(&e.name(), notes.join("; ")),
        None => Outcome::stopped("empty", notes.join("; ")),
    }
}

/// Writes `value` into an existing file (no create, no truncate beyond
/// what the kernel's sysctl handler does).
fn write_existing(path: &str, value: &[u8]) -> Result<(), Errno> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(Errno::from)?;
    f.write_all(value).map_err(Errno::from)
}

/// `fs.proc-sys`: kernel tunables. The hostname is written back unchanged
/// and sysrq gets `h` (print help to the kernel log), so success changes
/// nothing. A hostname write inside a private UTS namespace does not reach
/// the host and does not count.
pub fn proc_sys(ctx: &Ctx) -> Outcome {
    let host = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname = write_existing("/proc/sys/kernel/hostname", &host);
    let sysrq = write_existing("/proc/sysrq-trigger", b"h");
    let own_uts = ctx.same_ns_as_host("uts") == Some(false);
    if sysrq.is_ok() {
        return Outcome::escaped("wrote 'h' to /proc/sysrq-trigger (help printed to the kernel log)");
    }
    match hostname {
        Ok(()) if !own_uts => Outcome::escaped(format!(
            "wrote /proc/sys/kernel/hostname (its own value {:?})",
            String::from_utf8_lossy(&host).trim()
        )),
        Ok(()) => match sysrq {
            Err(e) => Outcome::errno(
                e,
                "write /proc/sysrq-trigger (hostname write stayed in a private UTS namespace)",
            ),
            Ok(()) => unreachable!("handled above"),
        },
        Err(e) => {
            let mut detail = format!("write /proc/sys/kernel/hostname: {e}");
            if let Err(s) = sysrq {
                detail.push_str(&format!("; write /proc/sysrq-trigger: {s}"));
            }
            Outcome::stopped(&e.name(), detail)
        }
    }
}

/// `fs.core-pattern`: a core pattern starting with `|` runs a program as
/// root on the next crash. Written back unchanged.
pub fn core_pattern(_ctx: &Ctx) -> Outcome {
    let current = match std::fs::read("/proc/sys/kernel/core_pattern") {
        Ok(c) => c,
        Err(e) => return Outcome::errno(Errno::from(e), "read /proc/sys/kernel/core_pattern"),
    };
    match write_existing("/proc/sys/kernel/core_pattern", &current) {
        Ok(()) => Outcome::escaped(format!(
            "wrote /proc/sys/kernel/core_pattern (its own value {:?})",
            String::from_utf8_lossy(&current).trim()
        )),
        Err(e) => Outcome::errno(e, "write /proc/sys/kernel/core_pattern"),
    }
}

/// Cgroup mounts from /proc/self/mountinfo: (mount point, fstype, options).
fn cgroup_mounts() -> Vec<(PathBuf, String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let mount_point = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let super_opts = post.nth(1).unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            out.push((
                PathBuf::from(mount_point.replace("\\040", " ")),
                fstype.to_owned(),
                super_opts.to_owned(),
            ));
        }
    }
    out
}

/// `fs.cgroup`: create (then remove) a cgroup below our own, and write a
/// cgroup-v1 `release_agent` (its own value). A writable cgroup tree lets a
/// service escape its limits or, with release_agent, run code as root.
pub fn cgroup(ctx: &Ctx) -> Outcome {
    let mounts = cgroup_mounts();
    if mounts.is_empty() {
        return Outcome::unsupported(Unsupported::NotApplicable, "no cgroup file system is mounted here");
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v2_path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").to_owned();
    let (base, fstype) = match mounts.iter().find(|m| m.1 == "cgroup2") {
        Some(m) => (m.0.clone(), "cgroup2"),
        None => (mounts[0].0.clone(), "cgroup"),
    };
    let mut parent = base.join(v2_path.trim_start_matches('/'));
    if fstype != "cgroup2" || !parent.is_dir() {
        parent = base.clone();
    }
    let dir = parent.join(ctx.marker_name("fs.cgroup"));
    let mkdir = std::fs::create_dir(&dir).map_err(Errno::from);
    if mkdir.is_ok() {
        let _ = std::fs::remove_dir(&dir);
    }
    // release_agent exists only at the root of a v1 hierarchy.
    let agent =
        mounts.iter().filter(|m| m.1 == "cgroup").map(|m| m.0.join("release_agent")).find(|p| p.exists());
    let agent_result = agent.as_ref().map(|p| {
        let current = std::fs::read(p).unwrap_or_default();
        let value = if current.is_empty() { b"\n".to_vec() } else { current };
        write_existing(&p.to_string_lossy(), &value)
    });
    let agent_name = agent.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    match (mkdir, agent_result) {
        (Ok(()), _) => Outcome::escaped(format!("created and removed the cgroup {}", dir.display())),
        (Err(_), Some(Ok(()))) => Outcome::escaped(format!("wrote {agent_name} (its own value)")),
        (Err(e), agent_result) => {
            let mut detail = format!("mkdir {}: {e}", dir.display());
            if let Some(Err(a)) = agent_result {
                detail.push_str(&format!("; write {agent_name}: {a}"));
            }
            Outcome::stopped(&e.name(), detail)
        }
    }
}

/// `fs.modules-dir`: the kernel modules an attacker would load or inspect.
/// ProtectKernelModules=yes makes the directory inaccessible (empty, or
/// EACCES for non-root).
pub fn modules_dir(ctx: &Ctx) -> Outcome {
    if let Some(c) = &ctx.canary {
        if !c.host.dirs.contains_key("/usr/lib/modules") {
            return Outcome::unsupported(
                Unsupported::NotApplicable,
                "the host has no /usr/lib/modules (kernel without loadable modules)",
            );
        }
    }
    list_any(&["/usr/lib/modules"])
}
