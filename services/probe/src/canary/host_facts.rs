//! The host facts: what the canary finds on the host before the probe runs
//! (namespaces, directory identities, capabilities, kernel features,
//! devices), so the probe can tell "blocked" from "unsupported" by facts
//! gathered outside the sandbox under test.

use std::path::Path;

use super::markers::MARKER_DIRS;
use super::state::HostFacts;
use crate::host::{disks_in_sysfs, try_abi, Abi};
use crate::sys::{self, syscall6, ChildEnd, Errno};

/// Gathers the host facts. Runs before any thread exists (it forks to try
/// the secondary ABIs).
pub fn host_facts(content_dir: &Path, dbus_socket: &Path) -> HostFacts {
    let mut f = HostFacts {
        // SAFETY: getuid takes no arguments.
        uid: unsafe { libc::getuid() },
        cap_bnd: sys::cap_bounding_set(),
        content_dir: content_dir.to_owned(),
        dbus_socket: Some(dbus_socket.to_owned()),
        dbus_socket_exists: dbus_socket.exists(),
        disks: disks_in_sysfs(),
        ..HostFacts::default()
    };
    for ns in ["net", "pid", "ipc", "uts", "mnt", "user", "cgroup"] {
        if let Some(ino) = sys::ns_inode(ns) {
            f.namespaces.insert(ns.to_owned(), ino);
        }
    }
    for &d in MARKER_DIRS.iter().chain(&["/usr/lib/modules"]) {
        if let Some(id) = sys::dir_identity(Path::new(d)) {
            f.dirs.insert(d.to_owned(), id);
        }
    }
    if let Some(id) = sys::dir_identity(content_dir) {
        f.dirs.insert("content".to_owned(), id);
    }
    f.home_entries =
        ["/home", "/root"].iter().map(|d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0)).sum();
    // Each call below fails fast on bad arguments; only ENOSYS matters.
    let nul = c"".as_ptr() as libc::c_long;
    let calls: [(&str, libc::c_long, [libc::c_long; 6]); 9] = [
        ("finit_module", libc::SYS_finit_module, [-1, nul, 0, 0, 0, 0]),
        ("kexec_load", libc::SYS_kexec_load, [0, 0, 0, 0x100, 0, 0]),
        ("swapon", libc::SYS_swapon, [0, 0, 0, 0, 0, 0]),
        ("bpf", libc::SYS_bpf, [0x7fff_ffff, 0, 0, 0, 0, 0]),
        ("perf_event_open", libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]),
        ("io_uring_setup", libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]),
        ("userfaultfd", libc::SYS_userfaultfd, [0x7fff_0000, 0, 0, 0, 0, 0]),
        ("add_key", libc::SYS_add_key, [0, 0, 0, 0, 0, 0]),
        ("open_by_handle_at", libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]),
    ];
    for (name, nr, args) in calls {
        // SAFETY: every argument set above is rejected by the kernel before
        // it acts (invalid fd, null pointer, unknown command or flags).
        let r = unsafe { syscall6(nr, args) };
        f.features.insert(name.to_owned(), r != Err(Errno(libc::ENOSYS)));
    }
    // SAFETY: SYSLOG_ACTION_SIZE_BUFFER reads no memory.
    let r = unsafe { libc::klogctl(10, std::ptr::null_mut(), 0) };
    f.features.insert("syslog".into(), !(r < 0 && Errno::last().0 == libc::ENOSYS));
    for (name, domain, ty) in
        [("af_vsock", libc::AF_VSOCK, libc::SOCK_STREAM), ("af_packet", libc::AF_PACKET, libc::SOCK_DGRAM)]
    {
        // SAFETY: socket takes integers.
        let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
        let present = fd >= 0 || Errno::last().0 != libc::EAFNOSUPPORT;
        sys::close(fd);
        f.features.insert(name.to_owned(), present);
    }
    for abi in [Abi::X32, Abi::I386] {
        let ok = matches!(try_abi(abi), Ok(ChildEnd::Exited(0)));
        f.features.insert(abi.name().to_owned(), ok);
    }
    // Opening a disk read-only is harmless; an LSM or device policy may
    // forbid it even to the host's root, and then no sandbox earns credit.
    let disk_ok = f.disks.first().map(|d| std::fs::File::open(format!("/dev/{d}")).is_ok());
    f.features.insert("disk_readable".into(), disk_ok.unwrap_or(false));
    for dev in ["mem", "port"] {
        f.features.insert(format!("dev_{dev}"), Path::new(&format!("/sys/class/mem/{dev}")).exists());
    }
    f
}
