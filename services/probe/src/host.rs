//! Two questions about the machine that the canary and the attempt families
//! both ask: which disk block devices exist, and whether the secondary
//! system-call ABIs answer.
//!
//! The canary asks them in the root namespaces for its host facts; `dev.disk`
//! and `sys.x32-abi` ask them again from inside the sandbox (the disks when
//! there is no canary, the ABIs as the attempt itself). They live here, next
//! to [`crate::sys`] and below both sides, so that the canary does not
//! depend on the attempt families.

use std::time::Duration;

use crate::sys::{self, ChildEnd, Errno};

/// Disk-like block devices from /sys/block (not loop, ram, zram, dm).
pub fn disks_in_sysfs() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.retain(|n| ["sd", "vd", "xvd", "nvme", "hd", "mmcblk"].iter().any(|p| n.starts_with(p)));
    out.sort();
    out
}

/// A secondary system-call ABI of x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// The x32 ABI (syscall numbers with bit 30 set).
    X32,
    /// The i386 ABI through `int 0x80`.
    I386,
}

impl Abi {
    /// Name used in host facts and details.
    pub fn name(self) -> &'static str {
        match self {
            Abi::X32 => "x32",
            Abi::I386 => "ia32",
        }
    }
}

/// Calls getpid through `abi` in a forked helper. Exit 0: the call returned
/// our pid; 1: ENOSYS; 2: something else. SIGSYS: a seccomp filter killed
/// it; SIGSEGV (i386): the kernel has no int 0x80 gate.
pub fn try_abi(abi: Abi) -> Result<ChildEnd, Errno> {
    sys::fork_wait(Duration::from_secs(2), move || {
        // SAFETY: getpid through the other ABI takes no arguments and
        // touches no memory; this runs in a throw-away child.
        let ret = unsafe { raw_getpid(abi) };
        // SAFETY: getpid takes no arguments.
        let pid = i64::from(unsafe { libc::getpid() });
        if ret == pid {
            0
        } else if ret == -i64::from(libc::ENOSYS) {
            1
        } else {
            2
        }
    })
}

#[cfg(target_arch = "x86_64")]
unsafe fn raw_getpid(abi: Abi) -> i64 {
    let mut ret: i64;
    match abi {
        Abi::X32 => {
            // SAFETY: a bare system call; rcx and r11 are clobbered by
            // `syscall`, declared below.
            unsafe {
                std::arch::asm!("syscall", inlateout("rax") 0x4000_0000i64 + 39 => ret,
                    lateout("rcx") _, lateout("r11") _, options(nostack));
            }
        }
        Abi::I386 => {
            // SAFETY: i386 getpid (20) via int 0x80; the kernel may clear
            // r8-r11 on this path, declared below.
            unsafe {
                std::arch::asm!("int 0x80", inlateout("rax") 20i64 => ret,
                    lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, options(nostack));
            }
            ret = i64::from(ret as i32);
        }
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_getpid(_abi: Abi) -> i64 {
    -i64::from(libc::ENOSYS)
}
