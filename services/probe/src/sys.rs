//! Thin, named wrappers around the raw system calls the attempts make.
//!
//! The attempts must see the kernel's own answer (an errno, a signal), so they
//! talk to it through `libc` directly instead of through a library that might
//! retry, fall back or translate errors. Everything `unsafe` that is not
//! specific to one attempt lives here, each block with the reason it is sound.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An errno value as the kernel returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno the last failed libc call left behind.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name (`EPERM`), which is what the catalogue's accepted
    /// outcomes are written in.
    pub fn name(self) -> String {
        errno_name(self.0).map(str::to_owned).unwrap_or_else(|| format!("errno{}", self.0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), io::Error::from_raw_os_error(self.0))
    }
}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        // An io::Error without an OS code comes from std itself (e.g. a
        // short write); EIO is the closest honest errno for it.
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Turns a libc-style return value (negative on failure, errno set) into a
/// `Result`.
pub fn cvt<T: Into<i64> + Copy>(ret: T) -> Result<T, Errno> {
    if ret.into() < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Names of the errno values the attempts can meet. Values follow the
/// generic Linux numbering (x86_64, aarch64, riscv64 share it).
pub fn errno_name(e: i32) -> Option<&'static str> {
    Some(match e {
        libc::EPERM => "EPERM",
        libc::EISCONN => "EISCONN",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOMSG => "ENOMSG",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EBADMSG => "EBADMSG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EDQUOT => "EDQUOT",
        libc::ESTALE => "ESTALE",
        _ => return None,
    })
}

/// The name of a signal number (`SIGSYS`), as accepted outcomes spell it.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal{sig}"),
    };
    name.to_owned()
}

/// mount(2) a small tmpfs (nosuid, nodev, noexec, 64 KiB) on `target`: the
/// mount the `sys.mount` and `ns.mount` attempts try.
pub fn mount_tmpfs(target: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: valid C strings for source, target, type and data.
    let r = unsafe {
        libc::mount(
            c"sandkasten-probe".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=64k".as_ptr().cast(),
        )
    };
    cvt(r).map(drop)
}

/// An anonymous file (memfd) holding `content`, for calls that need a file
/// but must not get a real one; its fd, or the errno of `memfd_create`.
/// `flags` as for memfd_create(2): `MFD_CLOEXEC`, or 0 for a file that a
/// child may execute through `/proc/self/fd/N`.
pub fn memfd_with(content: &[u8], flags: libc::c_uint) -> Result<i32, Errno> {
    // SAFETY: a valid C string name and flags.
    let fd = cvt(unsafe { libc::memfd_create(c"sandkasten-probe".as_ptr(), flags) })?;
    // SAFETY: writes from the live slice.
    let n = unsafe { libc::write(fd, content.as_ptr().cast(), content.len()) };
    if n < 0 {
        let e = Errno::last();
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// The size of the pages the memory attempts map.
pub const PAGE: usize = 4096;

/// Maps one page of `fd` (-1 with `MAP_ANONYMOUS`) with `prot` and `flags`,
/// at an address the kernel picks.
pub fn map_page(fd: i32, prot: i32, flags: i32) -> Result<*mut u8, Errno> {
    // SAFETY: a new mapping at an address the kernel picks.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), PAGE, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(p.cast())
    }
}

/// Unmaps a page [`map_page`] mapped.
pub fn unmap_page(p: *mut u8) {
    // SAFETY: unmaps one page the caller mapped and no longer uses.
    unsafe { libc::munmap(p.cast(), PAGE) };
}

/// A path as a C string for libc. Paths built by the probe never contain NUL.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::from(c"/nonexistent"))
}

/// Makes a raw system call and maps `-1` to the errno.
///
/// # Safety
/// The caller passes arguments that are valid for `nr`: pointers must point
/// at live memory of the size the call expects.
pub unsafe fn syscall6(nr: libc::c_long, a: [libc::c_long; 6]) -> Result<libc::c_long, Errno> {
    // SAFETY: forwarded from the caller's contract.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Closes a file descriptor the caller owns, ignoring errors (nothing can be
/// done about a failing close of a probe's own fd).
pub fn close(fd: i32) {
    if fd >= 0 {
        // SAFETY: closing an fd the caller owns and will not use again.
        unsafe { libc::close(fd) };
    }
}

/// Identity of a namespace of the calling process (`net`, `pid`, `ipc`,
/// `uts`, `mnt`, `user`, `cgroup`): the inode number of its nsfs file.
/// Two processes share a namespace exactly when these are equal.
pub fn ns_inode(kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{kind}")).ok().map(|m| m.ino())
}

/// The (device, inode) pair of a directory: equal pairs mean the same
/// directory object, so a file created in one is visible in the other.
pub fn dir_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The capability bounding set as a bit mask, read with `PR_CAPBSET_READ`
/// (which needs no /proc and no privilege).
pub fn cap_bounding_set() -> u64 {
    let mut mask = 0u64;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ takes an integer and touches no memory.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 {
            break;
        }
        if r == 1 {
            mask |= 1 << cap;
        }
    }
    mask
}

/// The ambient capability set as a bit mask.
pub fn cap_ambient_set() -> u64 {
    let mut mask = 0u64;
    for cap in 0..64 {
        // SAFETY: PR_CAP_AMBIENT_IS_SET takes integers and touches no memory.
        let r = unsafe {
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong, cap, 0, 0)
        };
        if r < 0 {
            break;
        }
        if r == 1 {
            mask |= 1 << cap;
        }
    }
    mask
}

/// Effective, permitted and inheritable capability sets via `capget(2)`.
pub fn capget() -> Result<(u64, u64, u64), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
    let mut data = [Data::default(); 2];
    // SAFETY: header and a two-element data array, as version 3 requires.
    unsafe {
        syscall6(
            libc::SYS_capget,
            [&mut hdr as *mut Header as libc::c_long, data.as_mut_ptr() as libc::c_long, 0, 0, 0, 0],
        )?;
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Random bytes as lowercase hex, for run ids, canary names and nonces.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        // SAFETY: writes at most `bytes - filled` bytes into the live buffer.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), bytes - filled, 0) };
        if n <= 0 {
            // getrandom can be filtered; fall back to time and pid, which is
            // unique enough for names (these are not secrets).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let seed = t ^ (u128::from(std::process::id()) << 64);
            for (i, b) in buf.iter_mut().enumerate().skip(filled) {
                *b = (seed >> ((i % 16) * 8)) as u8;
            }
            break;
        }
        filled += n as usize;
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a forked helper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited with this status code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Did not end within the deadline and was killed.
    TimedOut,
}

/// Runs `f` in a forked child and waits (bounded) for it.
///
/// Used inside an attempt's process (forked by the runner, or `run-one`),
/// which is single-threaded, so `fork` is safe there; the child only runs
/// `f` and `_exit`s with its return value.
pub fn fork_wait(deadline: Duration, f: impl FnOnce() -> i32) -> Result<ChildEnd, Errno> {
    // SAFETY: the attempt's process has a single thread; the child calls
    // only `f` (async-signal-safe work by contract) and `_exit`.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    wait_deadline(pid, deadline)
}

/// Waits for child `pid` until `deadline`, killing it if it overruns.
pub fn wait_deadline(pid: libc::pid_t, deadline: Duration) -> Result<ChildEnd, Errno> {
    let start = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a live int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r < 0 {
            return Err(Errno::last());
        }
        if r == pid {
            if libc::WIFEXITED(status) {
                return Ok(ChildEnd::Exited(libc::WEXITSTATUS(status)));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(ChildEnd::Signaled(libc::WTERMSIG(status)));
            }
        }
        if start.elapsed() > deadline {
            // SAFETY: signals and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, libc::__WALL);
            }
            return Ok(ChildEnd::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The process start time (field 22 of `/proc/PID/stat`, clock ticks since
/// boot). Together with the pid it names one process for its whole life, so
/// a reused pid is never mistaken for the canary's.
pub fn proc_starttime(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Waits (bounded) until traced process `pid` reports a stop; true if it
/// did. Used right after PTRACE_ATTACH.
pub fn wait_deadline_stop(pid: libc::pid_t, deadline: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < deadline {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a live int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == pid && libc::WIFSTOPPED(status) {
            return true;
        }
        if r < 0 {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}
