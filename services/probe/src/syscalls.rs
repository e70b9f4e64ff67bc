//! System-call attempts: the calls `SystemCallFilter=` groups exist for.
//!
//! Several of these calls are dangerous when they succeed, so each is made
//! in a form that passes the kernel's permission check and then fails or
//! changes nothing. The kernel checks the capability (or the seccomp filter
//! runs) before it looks at the arguments, so "failed after the check" is
//! proof the call was allowed:
//! - `sys.reboot`: an invalid magic number: EPERM before, EINVAL after.
//! - `sys.kexec`: unknown flag bits: EPERM before, EINVAL after. (Valid
//!   flags with no segments would unload a loaded crash kernel.)
//! - `sys.module`: a memfd holding text, not a module: ENOEXEC after.
//! - `sys.swapon`: a file of zeros, no swap signature: EINVAL after.
//! - `sys.clock`: adjtimex(ADJ_TICK) with the current tick value.
//!   clock_settime "to the current time" would still step the clock by the
//!   time between read and write and wake every clock-was-set waiter.
//! - `sys.hostname`: the current hostname.
//! - `sys.mount`: a tmpfs on a fresh directory, unmounted at once.
//!
//! ENOSYS is `unsupported` when the canary saw the same ENOSYS on the host.

use std::path::{Path, PathBuf};

use crate::context::Ctx;
use crate::host::{try_abi, Abi};
use crate::sys::{self, syscall6, ChildEnd, Errno};
use crate::verdict::{Outcome, Unsupported};

/// `sys.mount`: mount(2) a tmpfs on a fresh directory in the current
/// namespace and unmount it right away. Where mkdir itself is refused (a
/// system-call allow-list without it), the target is the empty `/mnt`
/// instead: the question is mount(2), not mkdir(2).
pub fn mount(ctx: &Ctx) -> Outcome {
    let scratch = match ctx.scratch_file("sys.mount", "mnt") {
        Ok(p) => p,
        Err(o) => return o,
    };
    let (dir, created) = match std::fs::create_dir(&scratch) {
        Ok(()) => (scratch, true),
        Err(_) if Path::new("/mnt").is_dir() => (PathBuf::from("/mnt"), false),
        Err(e) => return Outcome::failed(format!("mkdir {}: {e}", scratch.display())),
    };
    let target = sys::cpath(&dir);
    let out = if let Err(e) = sys::mount_tmpfs(&target) {
        Outcome::errno(e, format!("mount tmpfs on {}", dir.display()))
    } else {
        // SAFETY: unmounts what we just mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        Outcome::escaped(format!("mounted a tmpfs on {} (unmounted)", dir.display()))
    };
    if created {
        let _ = std::fs::remove_dir(&dir);
    }
    out
}

/// `sys.module`: finit_module of a memfd holding plain text (or, where
/// `memfd_create` is filtered, of /etc/os-release: any non-module file does).
pub fn module(ctx: &Ctx) -> Outcome {
    let fd = match sys::memfd_with(b"sandkasten-probe: this is not a kernel module\n", libc::MFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(_) => {
            // SAFETY: a constant path, opened read-only.
            let fd = unsafe { libc::open(c"/etc/os-release".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Outcome::failed(format!("neither a memfd nor /etc/os-release: {}", Errno::last()));
            }
            fd
        }
    };
    // SAFETY: fd is ours, the parameter string is a valid empty C string.
    let r = unsafe {
        syscall6(libc::SYS_finit_module, [fd as libc::c_long, c"".as_ptr() as libc::c_long, 0, 0, 0, 0])
    };
    sys::close(fd);
    match r {
        Ok(_) => {
            Outcome::escaped("finit_module accepted a text file (unexpected, but permission clearly passed)")
        }
        Err(e) if e.0 == libc::ENOSYS => ctx.enosys("finit_module", "finit_module"),
        Err(e)
            if [
                libc::ENOEXEC,
                libc::EINVAL,
                libc::ENOKEY,
                libc::EKEYREJECTED,
                libc::EBADMSG,
                libc::EFBIG,
                libc::ENOMEM,
            ]
            .contains(&e.0) =>
        {
            Outcome::escaped(format!(
                "finit_module passed the CAP_SYS_MODULE check and rejected the file ({})",
                e.name()
            ))
        }
        Err(e) => Outcome::errno(e, "finit_module"),
    }
}

/// `sys.kexec`: kexec_load with an unknown flag bit (0x100).
pub fn kexec(ctx: &Ctx) -> Outcome {
    // SAFETY: no segments and a null segment pointer; the kernel rejects
    // the flags before it would read anything.
    let r = unsafe { syscall6(libc::SYS_kexec_load, [0, 0, 0, 0x100, 0, 0]) };
    match r {
        Ok(_) => Outcome::escaped("kexec_load returned success (permission passed)"),
        Err(e) if e.0 == libc::ENOSYS => ctx.enosys("kexec_load", "kexec_load"),
        Err(e) if e.0 == libc::EINVAL => {
            Outcome::escaped("kexec_load passed the CAP_SYS_BOOT check and rejected the flags (EINVAL)")
        }
        Err(e) => Outcome::errno(e, "kexec_load"),
    }
}

/// `sys.reboot`: reboot(2) with magic1 = 0, which is never valid.
pub fn reboot(_ctx: &Ctx) -> Outcome {
    // SAFETY: integers only; the invalid magic makes the call a no-op.
    let r = unsafe {
        syscall6(libc::SYS_reboot, [0, 0, libc::LINUX_REBOOT_CMD_CAD_OFF as libc::c_long, 0, 0, 0])
    };
    match r {
        Ok(_) => Outcome::escaped("reboot(2) returned success with an invalid magic (permission passed)"),
        Err(e) if e.0 == libc::EINVAL => Outcome::escaped(
            "reboot(2) passed the CAP_SYS_BOOT check and rejected the invalid magic (EINVAL)",
        ),
        Err(e) => Outcome::errno(e, "reboot(2) with an invalid magic"),
    }
}

/// `sys.swapon`: swapon of a file of zeros (no swap signature).
pub fn swapon(ctx: &Ctx) -> Outcome {
    let (path, memfd) = match ctx.scratch_file("sys.swapon", "swap") {
        Ok(p) => {
            if let Err(e) = std::fs::write(&p, vec![0u8; 8192]) {
                return Outcome::failed(format!("write {}: {e}", p.display()));
            }
            (p, None)
        }
        Err(_) => match sys::memfd_with(&[0u8; 8192], libc::MFD_CLOEXEC) {
            Ok(fd) => (std::path::PathBuf::from(format!("/proc/self/fd/{fd}")), Some(fd)),
            Err(e) => return Outcome::failed(format!("no file to swapon: {e}")),
        },
    };
    let c = sys::cpath(&path);
    // SAFETY: a valid C path and flags 0.
    let r = unsafe { syscall6(libc::SYS_swapon, [c.as_ptr() as libc::c_long, 0, 0, 0, 0, 0]) };
    let out = match r {
        Ok(_) => {
            // SAFETY: undo the swapon that (unexpectedly) worked.
            unsafe { libc::syscall(libc::SYS_swapoff, c.as_ptr()) };
            Outcome::escaped(format!("swapon {} succeeded (swapped off again)", path.display()))
        }
        Err(e) if e.0 == libc::ENOSYS => ctx.enosys("swapon", "swapon"),
        Err(e) if e.0 == libc::EINVAL || e.0 == libc::EBUSY => Outcome::escaped(format!(
            "swapon passed the CAP_SYS_ADMIN check and rejected the file ({})",
            e.name()
        )),
        Err(e) => Outcome::errno(e, format!("swapon {}", path.display())),
    };
    match memfd {
        Some(fd) => sys::close(fd),
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
    out
}

/// Turns the result of a call that returns a new fd into an outcome.
fn fd_result(ctx: &Ctx, r: Result<libc::c_long, Errno>, feature: &str, what: &str) -> Outcome {
    match r {
        Ok(fd) => {
            sys::close(fd as i32);
            Outcome::escaped(format!("{what} returned a file descriptor"))
        }
        Err(e) if e.0 == libc::ENOSYS => ctx.enosys(feature, what),
        Err(e) => Outcome::errno(e, what),
    }
}

/// `sys.bpf`: load the smallest socket filter (r0 = 0; exit).
pub fn bpf(ctx: &Ctx) -> Outcome {
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns,
    // license; the rest zero.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // BPF_PROG_TYPE_SOCKET_FILTER
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: attr points at 128 live bytes that reference live buffers.
    let r = unsafe {
        syscall6(libc::SYS_bpf, [5, attr.as_ptr() as libc::c_long, attr.len() as libc::c_long, 0, 0, 0])
    };
    fd_result(ctx, r, "bpf", "bpf(BPF_PROG_LOAD)")
}

/// `sys.perf`: a CPU-clock event on CPU 0 that includes kernel samples,
/// which needs CAP_PERFMON (or root) at any perf_event_paranoid >= 2.
/// CPU-wide, not bound to this task: a task-bound event switches on a
/// static key in the scheduler (`perf_sched_events`), and the kernel
/// patching its own text while the other vCPU runs it crashed a TCG guest
/// (int3 in `__schedule`, kernel 6.12). The open is the escape either way.
pub fn perf(ctx: &Ctx) -> Outcome {
    // struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): type, size,
    // config, …, flags (bit 0 = disabled).
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&0u64.to_ne_bytes()); // PERF_COUNT_SW_CPU_CLOCK
    attr[40..48].copy_from_slice(&1u64.to_ne_bytes()); // disabled
                                                       // SAFETY: attr is 64 live bytes, as its size field says.
    let r = unsafe { syscall6(libc::SYS_perf_event_open, [attr.as_ptr() as libc::c_long, -1, 0, -1, 8, 0]) };
    fd_result(ctx, r, "perf_event_open", "perf_event_open(cpu-clock on CPU 0, kernel included)")
}

/// `sys.open-by-handle`: name_to_handle_at on /, then open_by_handle_at,
/// which needs CAP_DAC_READ_SEARCH (the "shocker" container escape opened
/// host files by guessed handles).
pub fn open_by_handle(ctx: &Ctx) -> Outcome {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        data: [u8; 128],
    }
    let mut h = Handle { bytes: 128, kind: 0, data: [0; 128] };
    let mut mount_id: i32 = 0;
    // SAFETY: valid path, handle buffer of the advertised size, live int.
    let r = unsafe {
        syscall6(
            libc::SYS_name_to_handle_at,
            [
                libc::AT_FDCWD as libc::c_long,
                c"/".as_ptr() as libc::c_long,
                &mut h as *mut Handle as libc::c_long,
                &mut mount_id as *mut i32 as libc::c_long,
                0,
                0,
            ],
        )
    };
    match r {
        Err(e) if e.0 == libc::EOPNOTSUPP => {
            return Outcome::unsupported(
                Unsupported::NotApplicable,
                "the file system at / gives out no handles",
            )
        }
        Err(e) if e.0 == libc::ENOSYS => return ctx.enosys("open_by_handle_at", "name_to_handle_at"),
        Err(e) => return Outcome::errno(e, "name_to_handle_at(/)"),
        Ok(_) => {}
    }
    // SAFETY: a valid C path.
    let mount_fd = unsafe { libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if mount_fd < 0 {
        return Outcome::failed(format!("open /: {}", Errno::last()));
    }
    // SAFETY: the handle filled in above, a live mount fd.
    let r = unsafe {
        syscall6(
            libc::SYS_open_by_handle_at,
            [
                mount_fd as libc::c_long,
                &mut h as *mut Handle as libc::c_long,
                libc::O_RDONLY as libc::c_long,
                0,
                0,
                0,
            ],
        )
    };
    sys::close(mount_fd);
    fd_result(ctx, r, "open_by_handle_at", "open_by_handle_at(handle of /)")
}

/// `sys.userfaultfd`: a userfaultfd that may also handle kernel-mode faults
/// (no UFFD_USER_MODE_ONLY): the classic way to stall the kernel mid-copy
/// and win races.
pub fn userfaultfd(ctx: &Ctx) -> Outcome {
    // SAFETY: flags only.
    let r = unsafe {
        syscall6(libc::SYS_userfaultfd, [(libc::O_CLOEXEC | libc::O_NONBLOCK) as libc::c_long, 0, 0, 0, 0, 0])
    };
    fd_result(ctx, r, "userfaultfd", "userfaultfd()")
}

/// `sys.io-uring`: an io_uring instance (its operations bypass seccomp).
pub fn io_uring(ctx: &Ctx) -> Outcome {
    let mut params = [0u8; 120]; // struct io_uring_params, zeroed
                                 // SAFETY: params is 120 live bytes, the size of io_uring_params.
    let r =
        unsafe { syscall6(libc::SYS_io_uring_setup, [1, params.as_mut_ptr() as libc::c_long, 0, 0, 0, 0]) };
    fd_result(ctx, r, "io_uring_setup", "io_uring_setup(1)")
}

/// `sys.keyctl`: a key in the per-uid user keyring, shared by every process
/// of that uid. Whether the uid is shared with anything else cannot be seen
/// from inside, so success counts as an escape (the fix is an explicit
/// deny). The key is invalidated right away.
pub fn keyctl(ctx: &Ctx) -> Outcome {
    let desc = std::ffi::CString::new(format!("sandkasten-probe.{}", ctx.run_id)).unwrap_or_default();
    let payload = b"x";
    // SAFETY: valid C strings and a live payload of the given length.
    let r = unsafe {
        syscall6(
            libc::SYS_add_key,
            [
                c"user".as_ptr() as libc::c_long,
                desc.as_ptr() as libc::c_long,
                payload.as_ptr() as libc::c_long,
                1,
                libc::KEY_SPEC_USER_KEYRING as libc::c_long,
                0,
            ],
        )
    };
    match r {
        Ok(serial) => {
            // SAFETY: KEYCTL_INVALIDATE (21) on the key we just made.
            unsafe { libc::syscall(libc::SYS_keyctl, 21, serial) };
            Outcome::escaped(format!("added key {serial} to the user keyring (invalidated)"))
        }
        Err(e) if e.0 == libc::ENOSYS => ctx.enosys("add_key", "add_key"),
        Err(e) => Outcome::errno(e, "add_key(user keyring)"),
    }
}

/// `sys.syslog`: read the whole kernel log buffer.
pub fn syslog(ctx: &Ctx) -> Outcome {
    let mut buf = vec![0u8; 4096];
    // SAFETY: reads at most buf.len() bytes into the live buffer.
    let n = unsafe { libc::klogctl(3, buf.as_mut_ptr().cast(), buf.len() as i32) };
    if n < 0 {
        let e = Errno::last();
        if e.0 == libc::ENOSYS {
            return ctx.enosys("syslog", "syslog(2)");
        }
        return Outcome::errno(e, "syslog(SYSLOG_ACTION_READ_ALL)");
    }
    Outcome::escaped(format!("syslog(SYSLOG_ACTION_READ_ALL) returned {n} bytes of the kernel log"))
}

/// `sys.clock`: adjtimex with ADJ_TICK set to the current tick.
pub fn clock(_ctx: &Ctx) -> Outcome {
    const ADJ_TICK: u32 = 0x4000;
    // SAFETY: zeroed timex is a valid read request (modes 0).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: tx is a live timex.
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        // A filter for @clock denies the whole call, reading included.
        return Outcome::errno(Errno::last(), "adjtimex (read, modes 0)");
    }
    let tick = tx.tick;
    // SAFETY: as above.
    let mut set: libc::timex = unsafe { std::mem::zeroed() };
    set.modes = ADJ_TICK;
    set.tick = tick;
    // SAFETY: set is a live timex.
    if unsafe { libc::adjtimex(&mut set) } < 0 {
        return Outcome::errno(Errno::last(), "adjtimex(ADJ_TICK, current tick)");
    }
    Outcome::escaped(format!("adjtimex(ADJ_TICK) set the tick to its current value {tick}"))
}

/// `sys.hostname`: sethostname to the current name. Inside a private UTS
/// namespace (what ProtectHostname=yes creates) it changes nothing outside,
/// reported as `private-uts-namespace`.
pub fn hostname(ctx: &Ctx) -> Outcome {
    let mut buf = [0u8; 256];
    // SAFETY: writes at most buf.len() bytes.
    let len = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        buf.iter().position(|&b| b == 0).unwrap_or(buf.len())
    } else {
        // uname(2) refused (a system-call allow-list): the configured name
        // in /etc/hostname is the one systemd set at boot.
        let configured = match std::fs::read_to_string("/etc/hostname") {
            Ok(name) => name.trim().to_owned(),
            Err(e) => return Outcome::failed(format!("gethostname: {}; /etc/hostname: {e}", Errno::last())),
        };
        let len = configured.len().min(buf.len());
        buf[..len].copy_from_slice(&configured.as_bytes()[..len]);
        len
    };
    // SAFETY: sets the name from the live buffer.
    if unsafe { libc::sethostname(buf.as_ptr().cast(), len) } < 0 {
        return Outcome::errno(Errno::last(), "sethostname(current name)");
    }
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    if ctx.same_ns_as_host("uts") == Some(false) {
        return Outcome::stopped(
            "private-uts-namespace",
            format!("sethostname({name:?}) worked, but in a UTS namespace of our own"),
        );
    }
    Outcome::escaped(format!("sethostname({name:?}) succeeded"))
}

/// `sys.personality`: READ_IMPLIES_EXEC makes every readable mapping
/// executable, undoing W^X. LockPersonality=yes filters it with EPERM.
pub fn personality(_ctx: &Ctx) -> Outcome {
    const READ_IMPLIES_EXEC: libc::c_ulong = 0x040_0000;
    // SAFETY: 0xffffffff queries without changing.
    let cur = unsafe { libc::personality(0xffff_ffff) };
    // SAFETY: sets a persona flag on this (throw-away) process.
    if unsafe { libc::personality(cur as libc::c_ulong | READ_IMPLIES_EXEC) } < 0 {
        return Outcome::errno(Errno::last(), "personality(READ_IMPLIES_EXEC)");
    }
    // SAFETY: query again.
    let now = unsafe { libc::personality(0xffff_ffff) } as libc::c_ulong;
    if now & READ_IMPLIES_EXEC != 0 {
        Outcome::escaped(format!("personality is now {now:#x} (READ_IMPLIES_EXEC set)"))
    } else {
        Outcome::stopped("flag-ignored", format!("personality() returned success but reads {now:#x}"))
    }
}

/// `sys.x32-abi`: getpid through the x32 and the i386 ABI. A filter that
/// allows only the native architecture kills (SIGSYS) or fails (ENOSYS)
/// such calls. An ABI the host kernel lacks (per the canary) is skipped.
pub fn x32_abi(ctx: &Ctx) -> Outcome {
    if !cfg!(target_arch = "x86_64") {
        return Outcome::unsupported(Unsupported::NotApplicable, "secondary ABIs are probed on x86-64 only");
    }
    let mut stops: Vec<(String, String)> = Vec::new();
    let mut tried = 0;
    for abi in [Abi::X32, Abi::I386] {
        if ctx.host_feature(abi.name()) == Some(false) {
            continue;
        }
        tried += 1;
        match try_abi(abi) {
            Ok(ChildEnd::Exited(0)) => {
                return Outcome::escaped(format!("getpid through the {} ABI returned our pid", abi.name()))
            }
            Ok(ChildEnd::Exited(1)) => stops.push(("ENOSYS".into(), format!("{}: ENOSYS", abi.name()))),
            Ok(ChildEnd::Signaled(s)) if s == libc::SIGSYS => {
                stops.push(("SIGSYS".into(), format!("{}: killed by SIGSYS", abi.name())))
            }
            Ok(ChildEnd::Signaled(s)) if s == libc::SIGSEGV && abi == Abi::I386 && ctx.canary.is_none() => {
                tried -= 1; // no int 0x80 gate: the kernel lacks the ABI
            }
            Ok(end) => stops.push(("unexpected".into(), format!("{}: {end:?}", abi.name()))),
            Err(e) => return Outcome::failed(format!("fork: {e}")),
        }
    }
    if tried == 0 {
        return Outcome::unsupported(Unsupported::Kernel, "the kernel has neither the x32 nor the i386 ABI");
    }
    let detail = stops.iter().map(|s| s.1.clone()).collect::<Vec<_>>().join("; ");
    // Without a canary, ENOSYS from x32 alone may just be a kernel without
    // x32; it counts only together with the i386 result.
    let first =
        stops.iter().find(|s| s.0 == "SIGSYS").or(stops.first()).map(|s| s.0.clone()).unwrap_or_default();
    if first == "SIGSYS" {
        Outcome::Killed { signal: first, detail }
    } else {
        Outcome::stopped(&first, detail)
    }
}
