//! Memory attempts: writable and executable memory at once, the ground for
//! injected code. MemoryDenyWriteExecute=yes filters such mmap/mprotect
//! calls with EPERM.

use crate::context::Ctx;
use crate::sys::{self, Errno, PAGE};
use crate::verdict::Outcome;

const ANONYMOUS: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;

/// `mem.wx-mmap`: one anonymous page mapped writable and executable.
pub fn wx_mmap(_ctx: &Ctx) -> Outcome {
    match sys::map_page(-1, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC, ANONYMOUS) {
        Ok(p) => {
            sys::unmap_page(p);
            Outcome::escaped("mmap(PROT_READ|PROT_WRITE|PROT_EXEC) succeeded")
        }
        Err(e) => Outcome::errno(e, "mmap(PROT_WRITE|PROT_EXEC)"),
    }
}

/// `mem.mprotect-exec`: write a page, then make it executable.
pub fn mprotect_exec(_ctx: &Ctx) -> Outcome {
    let p = match sys::map_page(-1, libc::PROT_READ | libc::PROT_WRITE, ANONYMOUS) {
        Ok(p) => p,
        Err(e) => return Outcome::failed(format!("mmap(PROT_READ|PROT_WRITE): {e}")),
    };
    // SAFETY: the page is mapped writable; 0xc3 is `ret` on x86.
    unsafe { *p = 0xc3 };
    // SAFETY: changes protection of the page mapped above.
    let r = unsafe { libc::mprotect(p.cast(), PAGE, libc::PROT_READ | libc::PROT_EXEC) };
    let out = if r < 0 {
        Outcome::errno(Errno::last(), "mprotect(PROT_READ|PROT_EXEC) of a written page")
    } else {
        Outcome::escaped("mprotect made a written page executable")
    };
    sys::unmap_page(p);
    out
}
