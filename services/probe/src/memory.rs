//! Memory attempts: writable and executable memory at once, the ground for
//! injected code. MemoryDenyWriteExecute=yes filters such mmap/mprotect
//! calls with EPERM.

use crate::context::Ctx;
use crate::sys::Errno;
use crate::verdict::Outcome;

const PAGE: usize = 4096;

/// `mem.wx-mmap`: one anonymous page mapped writable and executable.
pub fn wx_mmap(_ctx: &Ctx) -> Outcome {
    let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    // SAFETY: an anonymous private mapping at an address the kernel picks.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), PAGE, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED {
        return Outcome::errno(Errno::last(), "mmap(PROT_WRITE|PROT_EXEC)");
    }
    // SAFETY: unmaps the page mapped above.
    unsafe { libc::munmap(p, PAGE) };
    Outcome::escaped("mmap(PROT_READ|PROT_WRITE|PROT_EXEC) succeeded")
}

/// `mem.mprotect-exec`: write a page, then make it executable.
pub fn mprotect_exec(_ctx: &Ctx) -> Outcome {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: an anonymous private mapping at an address the kernel picks.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), PAGE, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        return Outcome::failed(format!("mmap(PROT_READ|PROT_WRITE): {}", Errno::last()));
    }
    // SAFETY: the page is mapped writable; 0xc3 is `ret` on x86.
    unsafe { *(p as *mut u8) = 0xc3 };
    // SAFETY: changes protection of the page mapped above.
    let r = unsafe { libc::mprotect(p, PAGE, libc::PROT_READ | libc::PROT_EXEC) };
    let out = if r < 0 {
        Outcome::errno(Errno::last(), "mprotect(PROT_READ|PROT_EXEC) of a written page")
    } else {
        Outcome::escaped("mprotect made a written page executable")
    };
    // SAFETY: unmaps the page mapped above.
    unsafe { libc::munmap(p, PAGE) };
    out
}
