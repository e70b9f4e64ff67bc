//! Device attempts: raw disks, physical memory, the kernel log, new device
//! nodes. `PrivateDevices=yes` gives the service a /dev with only the
//! pseudo devices (null, zero, random, …), so these paths vanish (ENOENT),
//! and drops CAP_MKNOD.
//!
//! Which devices exist is read from sysfs by the canary (outside), so a
//! device that is missing only inside the sandbox counts as blocked while a
//! device the kernel does not have at all is `unsupported`.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::context::Ctx;
use crate::host::disks_in_sysfs;
use crate::sys::{self, Errno};
use crate::verdict::{Outcome, Unsupported};

/// `dev.disk`: open a disk for reading (never writing): whoever reads the
/// disk reads every file on it, permissions aside.
pub fn disk(ctx: &Ctx) -> Outcome {
    let disks = match &ctx.canary {
        Some(c) => c.host.disks.clone(),
        None => disks_in_sysfs(),
    };
    let Some(name) = disks.first() else {
        return Outcome::unsupported(Unsupported::NotApplicable, "no disk block device on this machine");
    };
    let path = format!("/dev/{name}");
    if ctx.host_feature("disk_readable") == Some(false) {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            format!(
                "the host's root cannot open {path} for reading either (per the canary): nothing to stop"
            ),
        );
    }
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOCTTY).open(&path);
    match opened {
        Ok(mut f) => {
            let mut buf = [0u8; 512];
            let n = f.read(&mut buf).unwrap_or(0);
            Outcome::escaped(format!("opened {path} for reading and read {n} bytes"))
        }
        Err(e) => Outcome::errno(Errno::from(e), format!("open {path} read-only")),
    }
}

/// `dev.mem`: /dev/mem and /dev/port (physical memory and I/O ports). Only
/// opened, never read.
pub fn mem(ctx: &Ctx) -> Outcome {
    let has = |name: &str| match ctx.host_feature(&format!("dev_{name}")) {
        Some(v) => v,
        None => std::path::Path::new(&format!("/sys/class/mem/{name}")).exists(),
    };
    let present: Vec<&str> = ["mem", "port"].into_iter().filter(|n| has(n)).collect();
    if present.is_empty() {
        return Outcome::unsupported(Unsupported::Kernel, "the kernel has neither /dev/mem nor /dev/port");
    }
    let mut first_err = None;
    let mut notes = Vec::new();
    for n in present {
        let path = format!("/dev/{n}");
        match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(_) => return Outcome::escaped(format!("opened {path} for reading")),
            Err(e) => {
                let e = Errno::from(e);
                notes.push(format!("{path}: {e}"));
                first_err.get_or_insert(e);
            }
        }
    }
    let e = first_err.unwrap_or(Errno(libc::ENOENT));
    Outcome::stopped(&e.name(), notes.join("; "))
}

/// `dev.kmsg`: the kernel log (addresses, other services' messages).
/// Opening is the permission check (dmesg_restrict applies at open), so a
/// successful open is the escape. ProtectKernelLogs=yes drops CAP_SYSLOG,
/// which makes the open fail with EPERM when dmesg_restrict=1, so EPERM is
/// accepted beside the catalogue's ENOENT and EACCES.
pub fn kmsg(_ctx: &Ctx) -> Outcome {
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg");
    match opened {
        Ok(mut f) => {
            let mut buf = [0u8; 1024];
            let n = f.read(&mut buf).unwrap_or(0);
            Outcome::escaped(format!("opened /dev/kmsg and read a {n}-byte record"))
        }
        Err(e) => Outcome::errno(Errno::from(e), "open /dev/kmsg"),
    }
}

/// `dev.mknod`: a block device node in a writable directory (here loop
/// device 7:250, unlikely to exist; the node is removed at once).
pub fn mknod(ctx: &Ctx) -> Outcome {
    let path = match ctx.scratch_file("dev.mknod", "blk") {
        Ok(p) => p,
        Err(o) => return o,
    };
    let c = sys::cpath(&path);
    // SAFETY: a valid C path; mknod takes integers otherwise.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 250)) };
    if r < 0 {
        return Outcome::errno(Errno::last(), format!("mknod {} (block 7:250)", path.display()));
    }
    let _ = std::fs::remove_file(&path);
    Outcome::escaped(format!("created the block device node {} (removed)", path.display()))
}
