//! Namespace attempts. A new user namespace hands an unprivileged process a
//! full capability set inside it (the start of most kernel exploits); new
//! network and mount namespaces need CAP_SYS_ADMIN and let a process rebuild
//! its view of the system. RestrictNamespaces=yes filters unshare/clone
//! flags with EPERM.
//!
//! Each attempt runs in a child the runner forks for it, so the new
//! namespace dies with that child and the runner keeps its own.

use std::ffi::CString;

use crate::context::Ctx;
use crate::sys::Errno;
use crate::verdict::Outcome;

fn unshare(flag: libc::c_int, name: &str) -> Result<(), Outcome> {
    // SAFETY: unshare takes an integer; the attempt's forked child is
    // single-threaded as CLONE_NEWUSER requires.
    if unsafe { libc::unshare(flag) } < 0 {
        return Err(Outcome::errno(Errno::last(), format!("unshare({name})")));
    }
    Ok(())
}

/// `ns.user`: unshare(CLONE_NEWUSER).
pub fn user(_ctx: &Ctx) -> Outcome {
    match unshare(libc::CLONE_NEWUSER, "CLONE_NEWUSER") {
        Ok(()) => Outcome::escaped("unshare(CLONE_NEWUSER) succeeded"),
        Err(o) => o,
    }
}

/// `ns.net`: unshare(CLONE_NEWNET).
pub fn net(_ctx: &Ctx) -> Outcome {
    match unshare(libc::CLONE_NEWNET, "CLONE_NEWNET") {
        Ok(()) => Outcome::escaped("unshare(CLONE_NEWNET) succeeded"),
        Err(o) => o,
    }
}

/// `ns.mount`: a new mount namespace and a tmpfs in it. Propagation is
/// made private first, so the tmpfs can never show up in the host's mount
/// table even where / is a shared mount.
pub fn mount(_ctx: &Ctx) -> Outcome {
    if let Err(o) = unshare(libc::CLONE_NEWNS, "CLONE_NEWNS") {
        return o;
    }
    let root = CString::from(c"/");
    // SAFETY: valid C strings; null source/type/data are allowed for a
    // propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Outcome::errno(Errno::last(), "unshared, but mount(MS_REC|MS_PRIVATE) on /");
    }
    let target = if std::path::Path::new("/tmp").is_dir() { c"/tmp" } else { c"/" };
    if let Err(e) = crate::sys::mount_tmpfs(target) {
        return Outcome::errno(e, format!("unshared, but mount tmpfs on {target:?}"));
    }
    Outcome::escaped(format!("unshare(CLONE_NEWNS) and a tmpfs on {target:?} in the new namespace"))
}
