//! IPC attempts: System V shared memory and POSIX message queues belong to
//! the IPC namespace, so `PrivateIPC=yes` leaves the canary's objects out
//! of reach (ENOENT). Both objects are mode 0666, so only the namespace can
//! stop the attempt, not permissions. Each attempt leaves its token in the
//! object, which the canary records.

use std::ffi::CString;

use crate::context::Ctx;
use crate::sys::Errno;
use crate::verdict::Outcome;

/// `ipc.sysv`: attach the canary's segment and write our token into it.
pub fn sysv(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let key = c.sysv_shm_key;
    // SAFETY: integers only; size 0 looks up an existing segment.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id < 0 {
        return Outcome::errno(Errno::last(), format!("shmget(key {key:#x})"));
    }
    // SAFETY: attaches the segment at an address the kernel picks.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if addr as isize == -1 {
        return Outcome::errno(Errno::last(), format!("shmat(key {key:#x})"));
    }
    let token = ctx.token("ipc.sysv");
    let bytes = token.as_bytes();
    let n = bytes.len().min(crate::canary::SHM_SIZE - 1);
    // SAFETY: the canary's segment is SHM_SIZE bytes; we write n + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, n);
        *(addr as *mut u8).add(n) = 0;
        libc::shmdt(addr);
    }
    Outcome::escaped(format!("attached the canary's segment (key {key:#x}) and left our token"))
}

/// `ipc.mqueue`: open the canary's queue and send our token.
pub fn mqueue(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let Ok(name) = CString::new(c.mqueue.clone()) else {
        return Outcome::failed("queue name contains NUL");
    };
    // SAFETY: a valid C name; no O_CREAT, so no mode/attr arguments.
    let q = unsafe { libc::mq_open(name.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if q < 0 {
        return Outcome::errno(Errno::last(), format!("mq_open({})", c.mqueue));
    }
    let token = ctx.token("ipc.mqueue");
    // SAFETY: sends from the live token buffer.
    let r = unsafe { libc::mq_send(q, token.as_ptr().cast(), token.len(), 0) };
    let sent = if r < 0 { format!("send failed: {}", Errno::last()) } else { "sent our token".to_owned() };
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::mq_close(q) };
    Outcome::escaped(format!("opened the canary's queue {} and {sent}", c.mqueue))
}
