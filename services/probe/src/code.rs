//! Goal: run code that was never shipped.
//!
//! An attacker who controls a server's instruction pointer (a return-oriented
//! chain, say) wants to load a real payload. Every route below ends the same
//! way: a few bytes of machine code (`mov eax, 42; ret`) that were never part
//! of any installed file are called, and return 42. The routes differ in how
//! those bytes get into memory the CPU will execute:
//!
//! - a file written to a writable place, mapped `PROT_EXEC` ([`file_mmap`]),
//!   executed ([`file_exec`]) or handed to the dynamic loader ([`ld_so`]);
//! - an anonymous file (`memfd_create`), mapped or executed ([`memfd_mmap`],
//!   [`memfd_exec`]);
//! - an executable page written through `/proc/self/mem`, which ignores page
//!   protections ([`proc_mem_write`], [`proc_mem_pwrite`]), or through
//!   `ptrace(POKETEXT)` into a child ([`ptrace_poke`]);
//! - one shared page mapped twice, executable here and writable there
//!   ([`shared_alias_fork`], [`shared_alias_mremap`]);
//! - a shipped interpreter given the code as text ([`interpreter`]).
//!
//! Each route runs the code in a forked child, so a crash is an observation
//! (the child's signal), not the end of the report.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::context::{scratch_candidates, Ctx};
use crate::sys::{self, map_page, unmap_page, ChildEnd, Errno, PAGE};
use crate::verdict::{Outcome, Unsupported};

/// `mov eax, 42; ret`, padded with `nop`s to one machine word (POKETEXT
/// writes words).
const CODE: [u8; 8] = [0xb8, 42, 0, 0, 0, 0xc3, 0x90, 0x90];

/// Calls `entry` in a forked child; Some(42) means the code ran.
fn call_in_child(entry: *const u8) -> Result<ChildEnd, Errno> {
    sys::fork_wait(Duration::from_secs(2), || {
        // SAFETY: `entry` points at CODE in an executable mapping (or the
        // child dies of SIGSEGV, which the caller reports); CODE follows the
        // C calling convention for `int f(void)`.
        let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(entry) };
        f()
    })
}

/// The outcome of calling the code: escaped on 42, else what stopped it.
fn judge_call(entry: *const u8, how: &str) -> Outcome {
    match call_in_child(entry) {
        Ok(ChildEnd::Exited(42)) => Outcome::escaped(format!("{how}: the written code ran and returned 42")),
        Ok(ChildEnd::Signaled(sig)) => Outcome::Killed {
            signal: sys::signal_name(sig),
            detail: format!("{how}: calling the code killed the child"),
        },
        Ok(end) => Outcome::failed(format!("{how}: the child ended with {end:?}")),
        Err(e) => Outcome::failed(format!("{how}: fork: {e}")),
    }
}

/// Maps the first page of file `fd` `PROT_READ|PROT_EXEC` and calls the code
/// in it; the errno when the mapping is refused.
fn map_and_call(fd: i32, how: &str) -> Result<Outcome, Errno> {
    let p = map_page(fd, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_PRIVATE)?;
    let o = judge_call(p, how);
    unmap_page(p);
    Ok(o)
}

/// A helper child's exit status that carries an errno (`_exit(100 + e)`),
/// so the parent can report what stopped the child.
fn errno_status(e: Errno) -> i32 {
    100 + (e.0 & 0x3f)
}

/// The errno a helper child reported with [`errno_status`], if it did.
fn status_errno(status: i32) -> Option<Errno> {
    (status >= 100).then(|| Errno(status - 100))
}

/// What one route found in one place.
enum Place {
    /// The route reached its end there.
    Ran(Outcome),
    /// The place refused a step; (errno, what).
    Refused(Errno, String),
}

/// Tries `route` in every place a sandboxed process might find writable (the
/// probe's scratch candidates: the unit's own directories, $TMPDIR, /tmp,
/// /var/tmp, /dev/shm). Escaped if any place lets the code
/// run; else `stopped` with the errno of the last step reached (the one that
/// decides: a place that is merely read-only says less than one that let us
/// write and then refused exec), all places named in the detail.
fn in_every_place(ctx: &Ctx, id: &str, route: impl Fn(&Path) -> Place) -> Outcome {
    let mut notes = Vec::new();
    let mut decisive: Option<Errno> = None;
    let mut killed: Option<Outcome> = None;
    for dir in scratch_candidates(&ctx.opts) {
        let file = dir.join(format!("{}.{}", ctx.marker_name(id), std::process::id()));
        let result = route(&file);
        let _ = std::fs::remove_file(&file);
        match result {
            Place::Ran(o @ Outcome::Escaped { .. }) => return o,
            Place::Ran(o @ Outcome::Killed { .. }) => {
                notes.push(format!("{}: killed", dir.display()));
                killed.get_or_insert(o);
            }
            Place::Ran(o) => notes.push(format!("{}: {o:?}", dir.display())),
            Place::Refused(e, what) => {
                notes.push(format!("{}: {what}: {e}", dir.display()));
                // EPERM/EACCES from an exec or mmap step outrank a read-only
                // or missing directory.
                let rank = |e: Errno| matches!(e.0, libc::EPERM | libc::EACCES) as u8;
                if decisive.map_or(true, |d| rank(e) > rank(d)) {
                    decisive = Some(e);
                }
            }
        }
    }
    if let Some(o) = killed {
        return o;
    }
    match decisive {
        Some(e) => Outcome::stopped(&e.name(), notes.join("; ")),
        None => Outcome::failed(notes.join("; ")),
    }
}

/// Creates `path` with `bytes`, executable by its owner (no chmod needed).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Errno> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(path)
        .map_err(Errno::from)?;
    f.write_all(bytes).map_err(Errno::from)
}

/// `code.file-mmap`: write the code to a file in each writable place, map it
/// `PROT_READ|PROT_EXEC` and call it. A `noexec` mount refuses the mapping
/// (EPERM); `MemoryDenyWriteExecute=` does not look at file mappings.
pub fn file_mmap(ctx: &Ctx) -> Outcome {
    in_every_place(ctx, "code.file-mmap", |path| {
        if let Err(e) = write_file(path, &CODE) {
            return Place::Refused(e, "create".into());
        }
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return Place::Refused(Errno::from(e), "open".into()),
        };
        match map_and_call(f.as_raw_fd(), &format!("mmap(PROT_EXEC) of {}", path.display())) {
            Ok(o) => Place::Ran(o),
            Err(e) => Place::Refused(e, "mmap(PROT_READ|PROT_EXEC)".into()),
        }
    })
}

/// `code.file-exec`: write a tiny static ELF (exit status 42) to each
/// writable place, created with its x bit (mode 0700, so no chmod is
/// needed), and execve it. `noexec` refuses with EACCES.
pub fn file_exec(ctx: &Ctx) -> Outcome {
    in_every_place(ctx, "code.file-exec", |path| {
        if let Err(e) = write_file(path, &crate::fs::tiny_elf()) {
            return Place::Refused(e, "create".into());
        }
        match exec_status(path, &[]) {
            Ok(42) => {
                Place::Ran(Outcome::escaped(format!("wrote and executed {} (status 42)", path.display())))
            }
            Ok(n) => Place::Ran(Outcome::failed(format!("{} ran but exited {n}", path.display()))),
            Err(e) => Place::Refused(e, "execve".into()),
        }
    })
}

/// The dynamic loader, where Debian keeps it.
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// `code.ld-so`: copy a shipped program (`/usr/bin/false`, status 1) to each
/// writable place and run it through the dynamic loader, which is itself
/// allowed to execute: the loader maps the copy with `PROT_EXEC`, which a
/// `noexec` mount refuses ("failed to map segment", status 127).
pub fn ld_so(ctx: &Ctx) -> Outcome {
    let Ok(program) = std::fs::read("/usr/bin/false") else {
        return Outcome::unsupported(crate::verdict::Unsupported::NotApplicable, "no /usr/bin/false to copy");
    };
    in_every_place(ctx, "code.ld-so", |path| {
        if let Err(e) = write_file(path, &program) {
            return Place::Refused(e, "create".into());
        }
        let arg = path.to_string_lossy().into_owned();
        match exec_status(Path::new(LD_SO), &[&arg]) {
            Ok(1) => Place::Ran(Outcome::escaped(format!("{LD_SO} {arg} ran the copy (status 1)"))),
            // The loader's own refusal: it could not map the copy.
            Ok(127) => {
                Place::Refused(Errno(libc::EPERM), format!("{LD_SO} could not map the copy (status 127)"))
            }
            Ok(n) => Place::Ran(Outcome::failed(format!("{LD_SO} {arg} exited {n}"))),
            Err(e) => Place::Refused(e, format!("execve {LD_SO}")),
        }
    })
}

/// Runs `program args…` with nothing on stdin/stdout/stderr; its exit
/// status, or the errno of the exec.
fn exec_status(program: &Path, args: &[&str]) -> Result<i32, Errno> {
    let st = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(Errno::from)?;
    match (st.code(), std::os::unix::process::ExitStatusExt::signal(&st)) {
        (Some(n), _) => Ok(n),
        (None, Some(sig)) => Ok(128 + sig),
        _ => Ok(-1),
    }
}

/// An anonymous file holding `bytes`, without close-on-exec so that a child
/// can execute it through /proc/self/fd (unless vm.memfd_noexec forbids).
fn memfd_with(bytes: &[u8]) -> Result<std::fs::File, Errno> {
    let fd = sys::memfd_with(bytes, 0)?;
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_with returned a new fd we own.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// `code.memfd-mmap`: the code in a memfd, mapped `PROT_READ|PROT_EXEC`.
/// Nothing on the file system is involved, so `noexec` mounts do not
/// apply; only refusing `memfd_create` closes it.
pub fn memfd_mmap(_ctx: &Ctx) -> Outcome {
    let f = match memfd_with(&CODE) {
        Ok(f) => f,
        Err(e) => return Outcome::errno(e, "memfd_create"),
    };
    map_and_call(f.as_raw_fd(), "mmap(PROT_EXEC) of a memfd")
        .unwrap_or_else(|e| Outcome::errno(e, "mmap(PROT_READ|PROT_EXEC) of a memfd"))
}

/// `code.memfd-exec`: a tiny static ELF in a memfd, executed through
/// `/proc/self/fd/N` (what `fexecve` does). `NoExecPaths=` cannot see it;
/// `vm.memfd_noexec=2` (kernel 6.3+) or refusing `memfd_create` can.
pub fn memfd_exec(_ctx: &Ctx) -> Outcome {
    let f = match memfd_with(&crate::fs::tiny_elf()) {
        Ok(f) => f,
        Err(e) => return Outcome::errno(e, "memfd_create"),
    };
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    // The child inherits the fd (memfd_create without MFD_CLOEXEC).
    match exec_status(Path::new(&path), &[]) {
        Ok(42) => Outcome::escaped(format!("executed an ELF from a memfd through {path} (status 42)")),
        Ok(n) => Outcome::failed(format!("{path} ran but exited {n}")),
        Err(e) => Outcome::errno(e, format!("execve {path}")),
    }
}

/// An anonymous private page mapped `PROT_READ|PROT_EXEC` (zeros): the
/// target that `/proc/self/mem` writes into. `MemoryDenyWriteExecute=`
/// allows it, since the page is never writable.
fn exec_page() -> Result<*mut u8, Outcome> {
    map_page(-1, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS)
        .map_err(|e| Outcome::failed(format!("mmap(PROT_READ|PROT_EXEC) of an anonymous page: {e}")))
}

/// Opens `/proc/self/mem` for writing.
fn open_proc_mem() -> Result<i32, Errno> {
    // SAFETY: a constant path.
    let fd = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        Ok(fd)
    }
}

/// Writes CODE into an r-x page through /proc/self/mem with `write` (after
/// `lseek`) or `pwrite64`, then calls it.
fn proc_mem(positioned: bool) -> Outcome {
    let page = match exec_page() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let how = if positioned { "pwrite64" } else { "lseek+write" };
    let out = match open_proc_mem() {
        Err(e) => Outcome::errno(e, "open /proc/self/mem O_RDWR"),
        Ok(fd) => {
            let at = page as libc::off_t;
            // SAFETY: CODE is a live buffer; the fd is ours.
            let n = unsafe {
                if positioned {
                    libc::pwrite(fd, CODE.as_ptr().cast(), CODE.len(), at)
                } else if libc::lseek(fd, at, libc::SEEK_SET) != at {
                    -1
                } else {
                    libc::write(fd, CODE.as_ptr().cast(), CODE.len())
                }
            };
            let e = Errno::last();
            sys::close(fd);
            if n == CODE.len() as isize {
                judge_call(page, &format!("/proc/self/mem ({how}) into an r-x page"))
            } else if n < 0 && e.0 == libc::EIO {
                // fs/proc/base.c mem_rw(): without FOLL_FORCE the write to a
                // page that is not writable copies nothing, which is EIO.
                // Kernels built with PROC_MEM_FORCE_PTRACE or NO_FORCE (Debian
                // sid's 7.x), or booted with proc_mem.force_override=ptrace|never,
                // force only for a tracer: the route is closed for everyone.
                Outcome::unsupported(
                    Unsupported::KernelPolicy,
                    format!("{how} to /proc/self/mem: EIO: this kernel does not force writes through /proc/self/mem (proc_mem.force_override)"),
                )
            } else {
                Outcome::errno(e, format!("{how} to /proc/self/mem"))
            }
        }
    };
    unmap_page(page);
    out
}

/// `code.proc-mem-write`: `/proc/self/mem` writes ignore page protections
/// (the kernel's FOLL_FORCE), so `open`+`lseek`+`write` put code into a page
/// that was never writable. `MemoryDenyWriteExecute=` cannot see it; the
/// servers' lockdown (Landlock: no writes outside the writable places)
/// refuses the open (EACCES), as a read-only /proc would (EROFS).
pub fn proc_mem_write(_ctx: &Ctx) -> Outcome {
    proc_mem(false)
}

/// `code.proc-mem-pwrite`: the same through `pwrite64`, for a filter that
/// refuses `lseek`.
pub fn proc_mem_pwrite(_ctx: &Ctx) -> Outcome {
    proc_mem(true)
}

/// `code.ptrace-poke`: a forked child asks to be traced and stops; the
/// parent writes the code into the child's r-x page with
/// `PTRACE_POKETEXT` (which ignores page protections) and lets it run.
pub fn ptrace_poke(_ctx: &Ctx) -> Outcome {
    let page = match exec_page() {
        Ok(p) => p,
        Err(o) => return o,
    };
    // SAFETY: fork; the child only makes raw calls and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        unmap_page(page);
        return Outcome::failed(format!("fork: {}", Errno::last()));
    }
    if pid == 0 {
        // SAFETY: the child: TRACEME, stop, then call the (poked) page.
        unsafe {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                libc::_exit(errno_status(Errno::last()));
            }
            libc::raise(libc::SIGSTOP);
            let f: extern "C" fn() -> i32 = std::mem::transmute(page);
            libc::_exit(f());
        }
    }
    let out = poke_child(pid, page);
    // SAFETY: our own child, killed if still there.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = sys::wait_deadline(pid, Duration::from_millis(500));
    unmap_page(page);
    out
}

fn poke_child(pid: libc::pid_t, page: *mut u8) -> Outcome {
    let mut st = 0;
    // SAFETY: waits for our own child.
    if unsafe { libc::waitpid(pid, &mut st, 0) } != pid {
        return Outcome::failed(format!("waitpid: {}", Errno::last()));
    }
    if libc::WIFEXITED(st) {
        let code = libc::WEXITSTATUS(st);
        return match status_errno(code) {
            Some(e) => Outcome::errno(e, "ptrace(PTRACE_TRACEME) in the child"),
            None => Outcome::failed(format!("the child exited {code} before stopping")),
        };
    }
    if libc::WIFSIGNALED(st) {
        return Outcome::Killed {
            signal: sys::signal_name(libc::WTERMSIG(st)),
            detail: "ptrace(PTRACE_TRACEME) in the child".into(),
        };
    }
    let word = i64::from_ne_bytes(CODE);
    // SAFETY: pokes one word into our stopped tracee.
    if unsafe { libc::ptrace(libc::PTRACE_POKETEXT, pid, page, word) } < 0 {
        return Outcome::errno(Errno::last(), "ptrace(PTRACE_POKETEXT) into the child's r-x page");
    }
    // SAFETY: detaches from our tracee, letting it run on.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    match sys::wait_deadline(pid, Duration::from_secs(2)) {
        Ok(ChildEnd::Exited(42)) => {
            Outcome::escaped("poked code into a child's r-x page; it ran and returned 42")
        }
        Ok(end) => Outcome::failed(format!("the poked child ended with {end:?}")),
        Err(e) => Outcome::failed(format!("wait: {e}")),
    }
}

/// A shared anonymous page mapped `PROT_READ|PROT_EXEC`: allowed by both
/// flavours of `MemoryDenyWriteExecute=` (it is not writable).
fn shared_exec_page() -> Result<*mut u8, Outcome> {
    map_page(-1, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED | libc::MAP_ANONYMOUS)
        .map_err(|e| Outcome::errno(e, "mmap(PROT_READ|PROT_EXEC, MAP_SHARED|MAP_ANONYMOUS)"))
}

/// Makes `alias` (the same shared page as the executable one) writable
/// and copies CODE in. Adding `PROT_WRITE` to a mapping that is not
/// executable is what W^X permits.
fn write_through_alias(alias: *mut u8) -> Result<(), Errno> {
    // SAFETY: the alias is a mapping this module made.
    if unsafe { libc::mprotect(alias.cast(), PAGE, libc::PROT_READ | libc::PROT_WRITE) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the alias is writable now and one page long.
    unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), alias, CODE.len()) };
    Ok(())
}

/// `code.shared-alias-fork`: a shared page, executable in this process; a
/// forked child, whose mapping of the same page is its own, makes its copy
/// of the mapping writable and writes the code; this process calls it.
/// Neither W^X check sees a page that is writable and executable at once.
pub fn shared_alias_fork(_ctx: &Ctx) -> Outcome {
    let page = match shared_exec_page() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let wrote = sys::fork_wait(Duration::from_secs(2), || match write_through_alias(page) {
        Ok(()) => 0,
        Err(e) => errno_status(e),
    });
    let out = match wrote {
        Ok(ChildEnd::Exited(0)) => judge_call(page, "a shared page written by a forked child"),
        Ok(ChildEnd::Exited(n)) => match status_errno(n) {
            Some(e) => Outcome::errno(e, "mprotect(PROT_READ|PROT_WRITE) of the child's mapping"),
            None => Outcome::failed(format!("the writing child exited {n}")),
        },
        Ok(end) => Outcome::failed(format!("the writing child ended with {end:?}")),
        Err(e) => Outcome::failed(format!("fork: {e}")),
    };
    unmap_page(page);
    out
}

/// `code.shared-alias-mremap`: a shared page, executable; `mremap` with an
/// old size of 0 maps the same page a second time; the second mapping is
/// made writable and the code written there is called through the first.
pub fn shared_alias_mremap(_ctx: &Ctx) -> Outcome {
    let page = match shared_exec_page() {
        Ok(p) => p,
        Err(o) => return o,
    };
    // SAFETY: duplicates a shared mapping this module made.
    let alias = unsafe { libc::mremap(page.cast(), 0, PAGE, libc::MREMAP_MAYMOVE) };
    let out = if alias == libc::MAP_FAILED {
        Outcome::errno(Errno::last(), "mremap(old_size 0) of a shared executable page")
    } else {
        let o = match write_through_alias(alias.cast()) {
            Ok(()) => judge_call(page, "a shared page written through its mremap alias"),
            Err(e) => Outcome::errno(e, "mprotect(PROT_READ|PROT_WRITE) of the alias"),
        };
        unmap_page(alias.cast());
        o
    };
    unmap_page(page);
    out
}

/// `code.interpreter`: hand code as text to an interpreter that ships with
/// the system (perl, python3, a shell): `exit 42`. Executable is whatever
/// `ExecPaths=` allows; the server needs none of these.
pub fn interpreter(_ctx: &Ctx) -> Outcome {
    let tries: [(&str, &[&str]); 4] = [
        ("/usr/bin/perl", &["-e", "exit 42"]),
        ("/usr/bin/python3", &["-c", "raise SystemExit(42)"]),
        ("/bin/sh", &["-c", "exit 42"]),
        ("/usr/bin/bash", &["-c", "exit 42"]),
    ];
    let mut notes = Vec::new();
    let mut first: Option<Errno> = None;
    for (program, args) in tries {
        if !Path::new(program).exists() {
            notes.push(format!("{program}: not installed"));
            continue;
        }
        match exec_status(Path::new(program), args) {
            Ok(42) => return Outcome::escaped(format!("{program} {} ran (status 42)", args.join(" "))),
            Ok(n) => notes.push(format!("{program}: exited {n}")),
            Err(e) => {
                notes.push(format!("{program}: {e}"));
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Outcome::stopped(&e.name(), notes.join("; ")),
        None => Outcome::failed(notes.join("; ")),
    }
}
