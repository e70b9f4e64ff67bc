//! The escape-attempt catalogue (`shared/escape-catalogue.md`) as data.
//!
//! One row per attempt: its id, the directive that should stop it, the
//! outcomes that count as "stopped by that directive", a deadline, and the
//! function that makes it. The order is the catalogue's.
//!
//! Where an accepted outcome goes beyond the catalogue's column, the reason
//! is the directive's own documented behaviour (noted at the attempt's
//! function). Where an attempt is made in a harmless form (reboot with a bad
//! magic, kexec with bad flags, RTM_NEWADDR to a missing interface), the form
//! still passes the kernel's permission check before it fails, so success of
//! that check is what is classified.

use crate::context::Ctx;
use crate::verdict::Outcome;
use crate::{dev, fs, ipc, memory, namespaces, net, privilege, resources, syscalls};

/// One catalogue row.
#[derive(Debug)]
pub struct Attempt {
    /// Stable id, as in the catalogue (`family.name`).
    pub id: &'static str,
    /// What the attempt does, in words.
    pub what: &'static str,
    /// The directive(s) that should stop it.
    pub directive: &'static str,
    /// Errno names, signal names or named observations that count as
    /// blocked. Anything else that is not an escape is an `error`.
    pub accepted: &'static [&'static str],
    /// How long the attempt's child may run before it is killed.
    pub deadline_ms: u64,
    /// A capability the host's root must have for any control run to show
    /// this attempt escaping. If the canary's bounding set lacks it, the
    /// attempt is `unsupported` here: no sandbox could be credited for it.
    pub host_cap: Option<u32>,
    /// Makes the attempt (in a fresh `run-one` child).
    pub run: fn(&Ctx) -> Outcome,
}

/// Capability numbers used in `host_cap` (linux/capability.h).
pub mod caps {
    /// Change file ownership.
    pub const CAP_CHOWN: u32 = 0;
    /// Open by handle, bypass read/search checks.
    pub const CAP_DAC_READ_SEARCH: u32 = 2;
    /// Raw and packet sockets.
    pub const CAP_NET_RAW: u32 = 13;
    /// Network administration.
    pub const CAP_NET_ADMIN: u32 = 12;
    /// Load kernel modules.
    pub const CAP_SYS_MODULE: u32 = 16;
    /// Mounts, namespaces, sethostname, swapon.
    pub const CAP_SYS_ADMIN: u32 = 21;
    /// reboot, kexec.
    pub const CAP_SYS_BOOT: u32 = 22;
    /// Nice values and realtime scheduling.
    pub const CAP_SYS_NICE: u32 = 23;
    /// Raising hard resource limits.
    pub const CAP_SYS_RESOURCE: u32 = 24;
    /// Setting the clock.
    pub const CAP_SYS_TIME: u32 = 25;
    /// Creating device nodes.
    pub const CAP_MKNOD: u32 = 27;
    /// Reading the kernel log.
    pub const CAP_SYSLOG: u32 = 34;

    /// The name of a capability used above.
    pub fn name(cap: u32) -> String {
        let n = match cap {
            CAP_CHOWN => "CAP_CHOWN",
            CAP_DAC_READ_SEARCH => "CAP_DAC_READ_SEARCH",
            CAP_NET_RAW => "CAP_NET_RAW",
            CAP_NET_ADMIN => "CAP_NET_ADMIN",
            CAP_SYS_MODULE => "CAP_SYS_MODULE",
            CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
            CAP_SYS_BOOT => "CAP_SYS_BOOT",
            CAP_SYS_NICE => "CAP_SYS_NICE",
            CAP_SYS_RESOURCE => "CAP_SYS_RESOURCE",
            CAP_SYS_TIME => "CAP_SYS_TIME",
            CAP_MKNOD => "CAP_MKNOD",
            CAP_SYSLOG => "CAP_SYSLOG",
            _ => return format!("capability {cap}"),
        };
        n.to_owned()
    }
}

/// Looks an attempt up by id.
pub fn find(id: &str) -> Option<&'static Attempt> {
    ATTEMPTS.iter().find(|a| a.id == id)
}

/// Every attempt, in catalogue order.
pub static ATTEMPTS: &[Attempt] = &[
    Attempt {
        id: "net.tcp-loopback",
        what: "connect to the canary on the guest's 127.0.0.1",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT) before PrivateNetwork= is reached.
        accepted: &["ECONNREFUSED", "EAFNOSUPPORT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::tcp_loopback,
    },
    Attempt {
        id: "net.tcp-lan",
        what: "connect to the canary on 192.0.2.1",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        accepted: &["ENETUNREACH", "EAFNOSUPPORT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::tcp_lan,
    },
    Attempt {
        id: "net.udp-send",
        what: "sendto the UDP canary and wait for its acknowledgement",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        accepted: &["ENETUNREACH", "ECONNREFUSED", "no-reply", "EAFNOSUPPORT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::udp_send,
    },
    Attempt {
        id: "net.listen-new",
        what: "bind+listen a new TCP port; the canary tries to reach it from the root netns",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        accepted: &["unreachable", "EAFNOSUPPORT"],
        deadline_ms: 5000,
        host_cap: None,
        run: net::listen_new,
    },
    Attempt {
        id: "net.packet",
        what: "socket(AF_PACKET, SOCK_RAW)",
        directive: "RestrictAddressFamilies=, no CAP_NET_RAW",
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_RAW),
        run: net::packet,
    },
    Attempt {
        id: "net.netlink-route",
        what: "socket(AF_NETLINK) and RTM_NEWADDR (to a non-existent interface, so nothing changes)",
        directive: "RestrictAddressFamilies=, no CAP_NET_ADMIN",
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_ADMIN),
        run: net::netlink_route,
    },
    Attempt {
        id: "net.abstract-unix",
        what: "connect to the canary's abstract unix socket",
        directive: "PrivateNetwork=yes",
        accepted: &["ECONNREFUSED"],
        deadline_ms: 3000,
        host_cap: None,
        run: net::abstract_unix,
    },
    Attempt {
        id: "net.dbus",
        what: "connect to the system bus, authenticate, Hello and ListUnits",
        directive: "RestrictAddressFamilies= / InaccessiblePaths=",
        accepted: &["EAFNOSUPPORT", "ENOENT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::dbus,
    },
    Attempt {
        id: "net.vsock",
        what: "socket(AF_VSOCK)",
        directive: "RestrictAddressFamilies=",
        accepted: &["EAFNOSUPPORT"],
        deadline_ms: 3000,
        host_cap: None,
        run: net::vsock,
    },
    Attempt {
        id: "fs.write-etc",
        what: "create a file in /etc",
        directive: "ProtectSystem=strict",
        // a non-root user meets the file mode (EACCES) before the read-only mount (EROFS).
        accepted: &["EROFS", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::write_etc,
    },
    Attempt {
        id: "fs.write-usr",
        what: "create a file in /usr/lib",
        directive: "ProtectSystem=strict",
        // a non-root user meets the file mode (EACCES) before the read-only mount (EROFS).
        accepted: &["EROFS", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::write_usr,
    },
    Attempt {
        id: "fs.write-var",
        what: "create a file in /var/lib (outside StateDirectory)",
        directive: "ProtectSystem=strict",
        // a non-root user meets the file mode (EACCES) before the read-only mount (EROFS).
        accepted: &["EROFS", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::write_var,
    },
    Attempt {
        id: "fs.write-content",
        what: "create a file in the served content directory",
        directive: "ProtectSystem=strict / ReadOnlyPaths=",
        // a non-root user meets the file mode (EACCES) before the read-only mount (EROFS).
        accepted: &["EROFS", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::write_content,
    },
    Attempt {
        id: "fs.read-home",
        what: "list /home and /root",
        directive: "ProtectHome=yes",
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_home,
    },
    Attempt {
        id: "fs.read-shadow",
        what: "read /etc/shadow",
        directive: "DynamicUser=yes (not root)",
        accepted: &["EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_shadow,
    },
    Attempt {
        id: "fs.tmp-shared",
        what: "write /tmp/<marker>; the host's /tmp must not show it",
        directive: "PrivateTmp=yes",
        accepted: &["not-visible-outside"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::tmp_shared,
    },
    Attempt {
        id: "fs.exec-written",
        what: "write an executable into a writable directory and exec it",
        directive: "NoExecPaths= / ExecPaths=",
        accepted: &["EACCES"],
        deadline_ms: 4000,
        host_cap: None,
        run: fs::exec_written,
    },
    Attempt {
        id: "fs.proc-pid1",
        what: "read /proc/1/environ and /proc/1/cmdline",
        directive: "ProtectProc=invisible, ProcSubset=pid",
        accepted: &["ENOENT", "other-pid-namespace"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::proc_pid1,
    },
    Attempt {
        id: "fs.proc-sys",
        what: "write /proc/sys/kernel/hostname (its own value) and 'h' (help) to /proc/sysrq-trigger",
        directive: "ProtectKernelTunables=yes",
        // ProcSubset=pid hides /proc/sys and /proc/sysrq-trigger altogether (ENOENT).
        accepted: &["EROFS", "ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::proc_sys,
    },
    Attempt {
        id: "fs.core-pattern",
        what: "write /proc/sys/kernel/core_pattern (its own value)",
        directive: "ProtectKernelTunables=yes",
        // ProcSubset=pid hides /proc/sys altogether (ENOENT).
        accepted: &["EROFS", "ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::core_pattern,
    },
    Attempt {
        id: "fs.cgroup",
        what: "mkdir (then rmdir) in the cgroup tree, write release_agent (its own value)",
        directive: "ProtectControlGroups=yes",
        // a system-call allow-list without mkdir (EPERM), or a non-root user (EACCES), stops it before the read-only mount.
        accepted: &["EROFS", "EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::cgroup,
    },
    Attempt {
        id: "fs.modules-dir",
        what: "list /usr/lib/modules",
        directive: "ProtectKernelModules=yes",
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::modules_dir,
    },
    Attempt {
        id: "dev.disk",
        what: "open a disk block device for reading",
        directive: "PrivateDevices=yes",
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::disk,
    },
    Attempt {
        id: "dev.mem",
        what: "open /dev/mem and /dev/port for reading",
        directive: "PrivateDevices=yes",
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::mem,
    },
    Attempt {
        id: "dev.kmsg",
        what: "read /dev/kmsg",
        directive: "ProtectKernelLogs=yes / PrivateDevices=yes",
        accepted: &["ENOENT", "EACCES", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::kmsg,
    },
    Attempt {
        id: "dev.mknod",
        what: "mknod a block device in a writable directory",
        directive: "PrivateDevices=yes, no CAP_MKNOD",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_MKNOD),
        run: dev::mknod,
    },
    Attempt {
        id: "priv.setuid-root",
        what: "setuid(0)",
        directive: "DynamicUser=yes, no capabilities",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::setuid_root,
    },
    Attempt {
        id: "priv.suid-binary",
        what: "exec a setuid-root binary and read its euid",
        directive: "NoNewPrivileges=yes",
        accepted: &["non-root-euid"],
        deadline_ms: 5000,
        host_cap: None,
        run: privilege::suid_binary,
    },
    Attempt {
        id: "priv.chmod-suid",
        what: "chmod 4755 on an own file",
        directive: "RestrictSUIDSGID=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::chmod_suid,
    },
    Attempt {
        id: "priv.capabilities",
        what: "read the effective, permitted, bounding and ambient capability sets",
        directive: "CapabilityBoundingSet=",
        accepted: &["all-zero"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::capabilities,
    },
    Attempt {
        id: "priv.chown",
        what: "chown an own file to another uid (root, or nobody when already root)",
        directive: "CapabilityBoundingSet=",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_CHOWN),
        run: privilege::chown,
    },
    Attempt {
        id: "priv.ptrace",
        what: "ptrace(PTRACE_ATTACH) to the canary's target process",
        directive: "no CAP_SYS_PTRACE, SystemCallFilter=",
        accepted: &["EPERM", "ESRCH"],
        deadline_ms: 4000,
        host_cap: None,
        run: privilege::ptrace,
    },
    Attempt {
        id: "priv.signal",
        what: "kill(canary target, SIGTERM)",
        directive: "ProtectProc=invisible, other uid",
        accepted: &["ESRCH", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::signal,
    },
    Attempt {
        id: "ns.user",
        what: "unshare(CLONE_NEWUSER)",
        directive: "RestrictNamespaces=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: namespaces::user,
    },
    Attempt {
        id: "ns.net",
        what: "unshare(CLONE_NEWNET)",
        directive: "RestrictNamespaces=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::net,
    },
    Attempt {
        id: "ns.mount",
        what: "unshare(CLONE_NEWNS), make it private, mount a tmpfs",
        directive: "RestrictNamespaces=yes, SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::mount,
    },
    Attempt {
        id: "sys.mount",
        what: "mount(2) a tmpfs on a fresh directory (then unmount it)",
        directive: "SystemCallFilter=~@mount",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::mount,
    },
    Attempt {
        id: "sys.module",
        what: "finit_module on a file that is not a module",
        directive: "ProtectKernelModules=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_MODULE),
        run: syscalls::module,
    },
    Attempt {
        id: "sys.kexec",
        what: "kexec_load with invalid flags (fails after the permission check)",
        directive: "SystemCallFilter= (@reboot)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::kexec,
    },
    Attempt {
        id: "sys.reboot",
        what: "reboot(2) with an invalid magic (fails after the permission check)",
        directive: "SystemCallFilter= (@reboot)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::reboot,
    },
    Attempt {
        id: "sys.swapon",
        what: "swapon a file without a swap signature",
        directive: "SystemCallFilter= (@swap)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::swapon,
    },
    Attempt {
        id: "sys.bpf",
        what: "bpf(BPF_PROG_LOAD) of a two-instruction socket filter",
        directive: "SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::bpf,
    },
    Attempt {
        id: "sys.perf",
        what: "perf_event_open of a CPU clock event including kernel samples",
        directive: "SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::perf,
    },
    Attempt {
        id: "sys.open-by-handle",
        what: "open_by_handle_at (the \"shocker\" escape)",
        directive: "SystemCallFilter=, no CAP_DAC_READ_SEARCH",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_DAC_READ_SEARCH),
        run: syscalls::open_by_handle,
    },
    Attempt {
        id: "sys.userfaultfd",
        what: "userfaultfd() without UFFD_USER_MODE_ONLY",
        directive: "explicit SystemCallFilter=~userfaultfd",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::userfaultfd,
    },
    Attempt {
        id: "sys.io-uring",
        what: "io_uring_setup",
        directive: "explicit deny",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::io_uring,
    },
    Attempt {
        id: "sys.keyctl",
        what: "add_key to the user keyring",
        directive: "KeyringMode=private / explicit deny",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::keyctl,
    },
    Attempt {
        id: "sys.syslog",
        what: "syslog(SYSLOG_ACTION_READ_ALL)",
        directive: "ProtectKernelLogs=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYSLOG),
        run: syscalls::syslog,
    },
    Attempt {
        id: "sys.clock",
        what: "adjtimex(ADJ_TICK) to the current tick (a write that changes nothing)",
        directive: "ProtectClock=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_TIME),
        run: syscalls::clock,
    },
    Attempt {
        id: "sys.hostname",
        what: "sethostname to the current hostname",
        directive: "ProtectHostname=yes",
        accepted: &["EPERM", "private-uts-namespace"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::hostname,
    },
    Attempt {
        id: "sys.personality",
        what: "personality(READ_IMPLIES_EXEC)",
        directive: "LockPersonality=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::personality,
    },
    Attempt {
        id: "sys.x32-abi",
        what: "getpid through the x32 and the i386 system call ABI",
        directive: "SystemCallArchitectures=native",
        accepted: &["SIGSYS", "ENOSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::x32_abi,
    },
    Attempt {
        id: "mem.wx-mmap",
        what: "mmap PROT_WRITE|PROT_EXEC",
        directive: "MemoryDenyWriteExecute=yes",
        // systemd >= 254 on Linux >= 6.3 uses the kernel's own PR_SET_MDWE, which
        // refuses with EACCES where the older seccomp filter says EPERM.
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: memory::wx_mmap,
    },
    Attempt {
        id: "mem.mprotect-exec",
        what: "mprotect a writable page to PROT_EXEC",
        directive: "MemoryDenyWriteExecute=yes",
        // systemd >= 254 on Linux >= 6.3 uses the kernel's own PR_SET_MDWE, which
        // refuses with EACCES where the older seccomp filter says EPERM.
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: memory::mprotect_exec,
    },
    Attempt {
        id: "res.realtime",
        what: "sched_setscheduler(SCHED_FIFO)",
        directive: "RestrictRealtime=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::realtime,
    },
    Attempt {
        id: "res.nice",
        what: "setpriority to -10",
        directive: "no CAP_SYS_NICE",
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::nice,
    },
    Attempt {
        id: "res.rlimit",
        what: "raise the hard RLIMIT_NOFILE (after lowering it by one)",
        directive: "no CAP_SYS_RESOURCE",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_RESOURCE),
        run: resources::rlimit,
    },
    Attempt {
        id: "res.fork-bomb",
        what: "create processes until failure (bounded by --fork-limit, all reaped)",
        directive: "TasksMax=",
        accepted: &["EAGAIN"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::fork_bomb,
    },
    Attempt {
        id: "res.memory",
        what: "allocate and touch memory until stopped (bounded by --memory-mib)",
        directive: "MemoryMax=",
        accepted: &["SIGKILL", "ENOMEM"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::memory,
    },
    Attempt {
        id: "ipc.sysv",
        what: "attach the canary's SysV shared memory key and write a token",
        directive: "PrivateIPC=yes",
        // A system-call allow-list without the IPC calls refuses them outright (EPERM).
        accepted: &["ENOENT", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: ipc::sysv,
    },
    Attempt {
        id: "ipc.mqueue",
        what: "open the canary's POSIX message queue and send a token",
        directive: "PrivateIPC=yes",
        // A system-call allow-list without the IPC calls refuses them outright (EPERM).
        accepted: &["ENOENT", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: ipc::mqueue,
    },
];
