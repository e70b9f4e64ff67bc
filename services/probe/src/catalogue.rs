//! The escape-attempt catalogue as data: goals, and every route to each.
//!
//! An attacker who already runs code inside a server wants something (a
//! [`Goal`]: reach the host's network, run code that was never shipped, …)
//! and takes the weakest way there. So each goal is tried by every route we
//! know, and a goal holds only when every one of its routes is blocked.
//! One row per route: its id, its goal, the directive that should stop it,
//! the outcomes that count as "stopped by that directive", a deadline, and
//! the function that makes it. The order is the catalogue's.
//!
//! Where an accepted outcome goes beyond the catalogue's column, the reason
//! is the directive's own documented behaviour (noted at the attempt's
//! function). Where an attempt is made in a harmless form (reboot with a bad
//! magic, kexec with bad flags, RTM_NEWADDR to a missing interface), the form
//! still passes the kernel's permission check before it fails, so success of
//! that check is what is classified.

use crate::context::Ctx;
use crate::verdict::Outcome;
use crate::{
    code, dev, fs, handover, ipc, memory, namespaces, net, privilege, resources, siblings, syscalls,
};

/// What an attacker inside the sandbox wants. A goal is reached when any
/// one of its routes escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Goal {
    /// Reach a service on the host's network (or beyond) that the sandbox
    /// should not reach: new sockets, handed-over sockets, unix sockets.
    HostNetwork,
    /// See, forge or reconfigure the host's traffic.
    NetworkControl,
    /// Command the service manager or the system bus.
    SystemManager,
    /// Run code that was never shipped: written files, memory made
    /// executable, code put into executable memory, interpreters.
    UnshippedCode,
    /// Change the system for everyone: files, tunables, mounts, the clock.
    ChangeSystem,
    /// Read what belongs to others: secrets, kernel logs, disks, memory.
    ReadSecrets,
    /// Leave data where another service can pick it up, or pick theirs up.
    ShareData,
    /// Become more than an unprivileged user: root, capabilities, new
    /// namespaces, the kernel interfaces exploits start from.
    GainPrivilege,
    /// Trace or signal processes outside the sandbox.
    OtherProcesses,
    /// Starve the machine: CPU, tasks, memory.
    Exhaust,
}

impl Goal {
    /// Every goal, in report order.
    pub const ALL: [Goal; 10] = [
        Goal::HostNetwork,
        Goal::NetworkControl,
        Goal::SystemManager,
        Goal::UnshippedCode,
        Goal::ChangeSystem,
        Goal::ReadSecrets,
        Goal::ShareData,
        Goal::GainPrivilege,
        Goal::OtherProcesses,
        Goal::Exhaust,
    ];

    /// The stable id used in JSON and tables.
    pub fn id(self) -> &'static str {
        match self {
            Goal::HostNetwork => "reach-host-network",
            Goal::NetworkControl => "control-network",
            Goal::SystemManager => "command-system-manager",
            Goal::UnshippedCode => "run-unshipped-code",
            Goal::ChangeSystem => "change-the-system",
            Goal::ReadSecrets => "read-secrets",
            Goal::ShareData => "share-data",
            Goal::GainPrivilege => "gain-privileges",
            Goal::OtherProcesses => "touch-other-processes",
            Goal::Exhaust => "exhaust-resources",
        }
    }

    /// The goal in words, as the attacker would say it.
    pub fn what(self) -> &'static str {
        match self {
            Goal::HostNetwork => "reach a service on the host's network",
            Goal::NetworkControl => "see, forge or reconfigure the host's traffic",
            Goal::SystemManager => "command the service manager or the system bus",
            Goal::UnshippedCode => "run code that was never shipped",
            Goal::ChangeSystem => "change the system for everyone",
            Goal::ReadSecrets => "read what belongs to others",
            Goal::ShareData => "leave or pick up data where another service can",
            Goal::GainPrivilege => "gain privileges",
            Goal::OtherProcesses => "trace or signal processes outside the sandbox",
            Goal::Exhaust => "starve the machine",
        }
    }
}

/// One catalogue row: one route to a goal.
#[derive(Debug)]
pub struct Attempt {
    /// Stable id (`family.name`).
    pub id: &'static str,
    /// What the route is a way to.
    pub goal: Goal,
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
    /// Makes the attempt (in a child the runner forks for it, or in a
    /// `run-one` process).
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
        goal: Goal::HostNetwork,
        what: "connect to the canary on the guest's 127.0.0.1",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT) before PrivateNetwork= is reached.
        // EPERM: a filter without connect refuses the call itself.
        accepted: &["ECONNREFUSED", "EAFNOSUPPORT", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::tcp_loopback,
    },
    Attempt {
        id: "net.tcp-lan",
        goal: Goal::HostNetwork,
        what: "connect to the canary on 192.0.2.1",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        // EPERM: a filter without connect refuses the call itself.
        accepted: &["ENETUNREACH", "EAFNOSUPPORT", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::tcp_lan,
    },
    Attempt {
        id: "net.udp-send",
        goal: Goal::HostNetwork,
        what: "sendto the UDP canary and wait for its acknowledgement",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        // EPERM: a filter without connect refuses the call itself.
        accepted: &["ENETUNREACH", "ECONNREFUSED", "no-reply", "EAFNOSUPPORT", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::udp_send,
    },
    Attempt {
        id: "net.listen-new",
        goal: Goal::HostNetwork,
        what: "bind+listen a new TCP port; the canary tries to reach it from the root netns",
        directive: "PrivateNetwork=yes",
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        accepted: &["unreachable", "EAFNOSUPPORT"],
        deadline_ms: 5000,
        host_cap: None,
        run: net::listen_new,
    },
    Attempt {
        id: "net.handover-accepted",
        goal: Goal::HostNetwork,
        what: "dissolve an accepted (or Accept=yes) connection with connect(AF_UNSPEC), connect it to the canary on the host's 127.0.0.1",
        directive: "SystemCallFilter= without connect/shutdown; egress guard (.socket Mark= + sandkasten-egress.nft)",
        // EPERM: the filter refuses connect(); ECONNREFUSED: the egress guard answers the SYN with a reset
        // (ECONNABORTED where the socket was a listener before: shutdown(2) leaves that error pending).
        accepted: &["EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 10000,
        host_cap: None,
        run: handover::accepted,
    },
    Attempt {
        id: "net.handover-udp",
        goal: Goal::HostNetwork,
        what: "sendto the UDP canary from the handed-over UDP socket and wait for its answer",
        directive: "egress guard (.socket Mark= + sandkasten-egress.nft)",
        // EPERM: netfilter refused the datagram on its way out.
        accepted: &["EPERM", "no-reply"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::udp,
    },
    Attempt {
        id: "net.handover-unspec",
        goal: Goal::HostNetwork,
        what: "connect(AF_UNSPEC) takes the handed-over listener out of LISTEN; connect() it to the canary",
        directive: "SystemCallFilter= without connect/shutdown; egress guard (.socket Mark= + sandkasten-egress.nft)",
        accepted: &["EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::listener_unspec,
    },
    Attempt {
        id: "net.handover-shutdown",
        goal: Goal::HostNetwork,
        what: "shutdown(SHUT_RD) takes the handed-over listener out of LISTEN; connect() it to the canary",
        directive: "SystemCallFilter= without connect/shutdown; egress guard (.socket Mark= + sandkasten-egress.nft)",
        accepted: &["EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::listener_shutdown,
    },
    Attempt {
        id: "net.handover-fastopen",
        goal: Goal::HostNetwork,
        what: "close the handed-over listener by any allowed call, connect it with sendto(MSG_FASTOPEN), which needs no connect()",
        directive: "SystemCallFilter= without connect/shutdown; egress guard (.socket Mark= + sandkasten-egress.nft)",
        // EISCONN: the listener could not be closed, and Fast Open refuses a socket that listens.
        accepted: &["EISCONN", "EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::listener_fastopen,
    },
    Attempt {
        id: "net.packet",
        goal: Goal::NetworkControl,
        what: "socket(AF_PACKET, SOCK_RAW)",
        directive: "RestrictAddressFamilies=, no CAP_NET_RAW",
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_RAW),
        run: net::packet,
    },
    Attempt {
        id: "net.netlink-route",
        goal: Goal::NetworkControl,
        what: "socket(AF_NETLINK) and RTM_NEWADDR (to a non-existent interface, so nothing changes)",
        directive: "RestrictAddressFamilies=, no CAP_NET_ADMIN",
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_ADMIN),
        run: net::netlink_route,
    },
    Attempt {
        id: "net.abstract-unix",
        goal: Goal::HostNetwork,
        what: "connect to the canary's abstract unix socket",
        directive: "PrivateNetwork=yes (abstract names are per network namespace); SystemCallFilter= without connect",
        // A system-call allow-list without connect refuses the call itself (EPERM).
        accepted: &["ECONNREFUSED", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: net::abstract_unix,
    },
    Attempt {
        id: "net.unix-path",
        goal: Goal::HostNetwork,
        what: "connect to the canary's unix stream socket at a path outside /run (mode 0666)",
        directive: "TemporaryFileSystem=/var; SystemCallFilter= without connect",
        accepted: &["EPERM", "ENOENT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::unix_path,
    },
    Attempt {
        id: "net.unix-dgram",
        goal: Goal::HostNetwork,
        what: "sendto the canary's unix datagram socket at a path outside /run (mode 0666)",
        directive: "TemporaryFileSystem=/var",
        accepted: &["ENOENT", "EACCES"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::unix_dgram,
    },
    Attempt {
        id: "net.dbus",
        goal: Goal::SystemManager,
        what: "connect to the system bus, authenticate, Hello and ListUnits",
        directive: "TemporaryFileSystem=/run / SystemCallFilter= without connect",
        // A system-call allow-list without connect refuses the call itself (EPERM).
        accepted: &["EAFNOSUPPORT", "ENOENT", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::dbus,
    },
    Attempt {
        id: "net.vsock",
        goal: Goal::HostNetwork,
        what: "socket(AF_VSOCK)",
        directive: "RestrictAddressFamilies=",
        accepted: &["EAFNOSUPPORT"],
        deadline_ms: 3000,
        host_cap: None,
        run: net::vsock,
    },
    Attempt {
        id: "fs.write-etc",
        goal: Goal::ChangeSystem,
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
        goal: Goal::ChangeSystem,
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
        goal: Goal::ChangeSystem,
        what: "create a file in /var/lib (outside StateDirectory)",
        directive: "ProtectSystem=strict / TemporaryFileSystem=/var",
        // a non-root user meets the file mode (EACCES) before the read-only mount (EROFS).
        // TemporaryFileSystem=/var leaves no /var/lib to write in (ENOENT).
        accepted: &["EROFS", "EACCES", "ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::write_var,
    },
    Attempt {
        id: "fs.write-content",
        goal: Goal::ChangeSystem,
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
        goal: Goal::ReadSecrets,
        what: "list /home and /root",
        directive: "ProtectHome=yes",
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_home,
    },
    Attempt {
        id: "fs.read-shadow",
        goal: Goal::ReadSecrets,
        what: "read /etc/shadow",
        directive: "DynamicUser=yes (not root)",
        accepted: &["EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_shadow,
    },
    Attempt {
        id: "fs.tmp-shared",
        goal: Goal::ShareData,
        what: "write /tmp/<marker>; the host's /tmp must not show it",
        directive: "PrivateTmp=yes",
        accepted: &["not-visible-outside"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::tmp_shared,
    },
    Attempt {
        id: "fs.shm-shared",
        goal: Goal::ShareData,
        what: "write /dev/shm/x; the canary knows whether it is the host's /dev/shm",
        directive: "TemporaryFileSystem=/dev/shm:ro",
        accepted: &["not-visible-outside", "EROFS", "EACCES", "ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::shm_shared,
    },
    Attempt {
        id: "fs.proc-pid1",
        goal: Goal::ReadSecrets,
        what: "read /proc/1/environ and /proc/1/cmdline",
        directive: "ProtectProc=invisible, ProcSubset=pid",
        accepted: &["ENOENT", "other-pid-namespace"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::proc_pid1,
    },
    Attempt {
        id: "fs.proc-sys",
        goal: Goal::ChangeSystem,
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
        goal: Goal::ChangeSystem,
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
        goal: Goal::ChangeSystem,
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
        goal: Goal::ReadSecrets,
        what: "list /usr/lib/modules",
        directive: "ProtectKernelModules=yes",
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::modules_dir,
    },
    Attempt {
        id: "proc.sibling",
        goal: Goal::ReadSecrets,
        what: "read the environment and a page of memory of another process of the same uid (another instance of the same template)",
        directive: "PrivateUsers=yes (a user namespace per instance); SANDKASTEN_LOCKDOWN=1 (a Landlock domain per instance)",
        // EACCES/EPERM: the kernel's ptrace access check refuses /proc/PID/environ, maps or mem;
        // invisible: hidepid (ProtectProc=invisible) hides siblings the harness started beside it.
        accepted: &["EACCES", "EPERM", "invisible"],
        deadline_ms: 8000,
        host_cap: None,
        run: siblings::sibling,
    },
    Attempt {
        id: "dev.disk",
        goal: Goal::ReadSecrets,
        what: "open a disk block device for reading",
        directive: "PrivateDevices=yes",
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::disk,
    },
    Attempt {
        id: "dev.mem",
        goal: Goal::ReadSecrets,
        what: "open /dev/mem and /dev/port for reading",
        directive: "PrivateDevices=yes",
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::mem,
    },
    Attempt {
        id: "dev.kmsg",
        goal: Goal::ReadSecrets,
        what: "read /dev/kmsg",
        directive: "ProtectKernelLogs=yes / PrivateDevices=yes",
        accepted: &["ENOENT", "EACCES", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::kmsg,
    },
    Attempt {
        id: "dev.mknod",
        goal: Goal::ChangeSystem,
        what: "mknod a block device in a writable directory",
        directive: "PrivateDevices=yes, no CAP_MKNOD",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_MKNOD),
        run: dev::mknod,
    },
    Attempt {
        id: "priv.setuid-root",
        goal: Goal::GainPrivilege,
        what: "setuid(0)",
        directive: "DynamicUser=yes, no capabilities",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::setuid_root,
    },
    Attempt {
        id: "priv.suid-binary",
        goal: Goal::GainPrivilege,
        what: "exec a setuid-root binary and read its euid",
        directive: "NoNewPrivileges=yes / ExecPaths=",
        // ExecPaths= (only the servers' binaries may run) refuses the exec itself (EACCES).
        accepted: &["non-root-euid", "EACCES"],
        deadline_ms: 5000,
        host_cap: None,
        run: privilege::suid_binary,
    },
    Attempt {
        id: "priv.chmod-suid",
        goal: Goal::GainPrivilege,
        what: "chmod 4755 on an own file",
        directive: "RestrictSUIDSGID=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::chmod_suid,
    },
    Attempt {
        id: "priv.capabilities",
        goal: Goal::GainPrivilege,
        what: "read the effective, permitted, bounding and ambient capability sets",
        directive: "CapabilityBoundingSet=",
        accepted: &["all-zero"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::capabilities,
    },
    Attempt {
        id: "priv.chown",
        goal: Goal::GainPrivilege,
        what: "chown an own file to another uid (root, or nobody when already root)",
        directive: "CapabilityBoundingSet=",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_CHOWN),
        run: privilege::chown,
    },
    Attempt {
        id: "priv.ptrace",
        goal: Goal::OtherProcesses,
        what: "ptrace(PTRACE_ATTACH) to the canary's target process",
        directive: "no CAP_SYS_PTRACE, SystemCallFilter=",
        accepted: &["EPERM", "ESRCH"],
        deadline_ms: 4000,
        host_cap: None,
        run: privilege::ptrace,
    },
    Attempt {
        id: "priv.signal",
        goal: Goal::OtherProcesses,
        what: "kill(canary target, SIGTERM)",
        directive: "ProtectProc=invisible, other uid",
        accepted: &["ESRCH", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::signal,
    },
    Attempt {
        id: "ns.user",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWUSER)",
        directive: "RestrictNamespaces=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: namespaces::user,
    },
    Attempt {
        id: "ns.net",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWNET)",
        directive: "RestrictNamespaces=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::net,
    },
    Attempt {
        id: "ns.mount",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWNS), make it private, mount a tmpfs",
        directive: "RestrictNamespaces=yes, SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::mount,
    },
    Attempt {
        id: "sys.mount",
        goal: Goal::ChangeSystem,
        what: "mount(2) a tmpfs on a fresh directory (then unmount it)",
        directive: "SystemCallFilter=~@mount",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::mount,
    },
    Attempt {
        id: "sys.module",
        goal: Goal::ChangeSystem,
        what: "finit_module on a file that is not a module",
        directive: "ProtectKernelModules=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_MODULE),
        run: syscalls::module,
    },
    Attempt {
        id: "sys.kexec",
        goal: Goal::ChangeSystem,
        what: "kexec_load with invalid flags (fails after the permission check)",
        directive: "SystemCallFilter= (@reboot)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::kexec,
    },
    Attempt {
        id: "sys.reboot",
        goal: Goal::ChangeSystem,
        what: "reboot(2) with an invalid magic (fails after the permission check)",
        directive: "SystemCallFilter= (@reboot)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::reboot,
    },
    Attempt {
        id: "sys.swapon",
        goal: Goal::ChangeSystem,
        what: "swapon a file without a swap signature",
        directive: "SystemCallFilter= (@swap)",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::swapon,
    },
    Attempt {
        id: "sys.bpf",
        goal: Goal::GainPrivilege,
        what: "bpf(BPF_PROG_LOAD) of a two-instruction socket filter",
        directive: "SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::bpf,
    },
    Attempt {
        id: "sys.perf",
        goal: Goal::GainPrivilege,
        what: "perf_event_open of a CPU clock event including kernel samples",
        directive: "SystemCallFilter=",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::perf,
    },
    Attempt {
        id: "sys.open-by-handle",
        goal: Goal::GainPrivilege,
        what: "open_by_handle_at (the \"shocker\" escape)",
        directive: "SystemCallFilter=, no CAP_DAC_READ_SEARCH",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_DAC_READ_SEARCH),
        run: syscalls::open_by_handle,
    },
    Attempt {
        id: "sys.userfaultfd",
        goal: Goal::GainPrivilege,
        what: "userfaultfd() without UFFD_USER_MODE_ONLY",
        directive: "explicit SystemCallFilter=~userfaultfd",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::userfaultfd,
    },
    Attempt {
        id: "sys.io-uring",
        goal: Goal::GainPrivilege,
        what: "io_uring_setup",
        directive: "explicit deny",
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::io_uring,
    },
    Attempt {
        id: "sys.keyctl",
        goal: Goal::ShareData,
        what: "add_key to the user keyring",
        directive: "KeyringMode=private / explicit deny",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::keyctl,
    },
    Attempt {
        id: "sys.syslog",
        goal: Goal::ReadSecrets,
        what: "syslog(SYSLOG_ACTION_READ_ALL)",
        directive: "ProtectKernelLogs=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYSLOG),
        run: syscalls::syslog,
    },
    Attempt {
        id: "sys.clock",
        goal: Goal::ChangeSystem,
        what: "adjtimex(ADJ_TICK) to the current tick (a write that changes nothing)",
        directive: "ProtectClock=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_TIME),
        run: syscalls::clock,
    },
    Attempt {
        id: "sys.hostname",
        goal: Goal::ChangeSystem,
        what: "sethostname to the current hostname",
        directive: "ProtectHostname=yes",
        accepted: &["EPERM", "private-uts-namespace"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::hostname,
    },
    Attempt {
        id: "priv.signal-sibling",
        goal: Goal::OtherProcesses,
        what: "find a process outside our own tree that accepts our signals (tgkill with signal 0 over every pid; another instance of the same template)",
        directive: "SANDKASTEN_LOCKDOWN=1 (tgkill aimed at this process only); DynamicUser=yes for other units",
        // EPERM: the kernel (another user) or the lockdown's filter (a sibling) refuses the signal;
        // alone: a pid namespace of its own holds no other process.
        accepted: &["EPERM", "alone"],
        deadline_ms: 12000,
        host_cap: None,
        run: siblings::signal_sibling,
    },
    Attempt {
        id: "sys.personality",
        goal: Goal::UnshippedCode,
        what: "personality(READ_IMPLIES_EXEC)",
        directive: "LockPersonality=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::personality,
    },
    Attempt {
        id: "sys.x32-abi",
        goal: Goal::GainPrivilege,
        what: "getpid through the x32 and the i386 system call ABI",
        directive: "SystemCallArchitectures=native",
        accepted: &["SIGSYS", "ENOSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::x32_abi,
    },
    Attempt {
        id: "code.file-mmap",
        goal: Goal::UnshippedCode,
        what: "write code to a file in /tmp, /var/tmp, /dev/shm or a unit directory, mmap it PROT_EXEC, call it",
        directive: "NoExecPaths=/tmp /var/tmp",
        // EPERM: mmap(PROT_EXEC) of a file on a noexec mount; EROFS/EACCES/ENOENT: no writable place at all.
        accepted: &["EPERM", "EACCES", "EROFS", "ENOENT"],
        deadline_ms: 6000,
        host_cap: None,
        run: code::file_mmap,
    },
    Attempt {
        id: "code.file-exec",
        goal: Goal::UnshippedCode,
        what: "write a static ELF (mode 0700, no chmod needed) to each writable place and execve it",
        directive: "NoExecPaths=/tmp /var/tmp",
        accepted: &["EACCES", "EROFS", "ENOENT", "EPERM"],
        deadline_ms: 6000,
        host_cap: None,
        run: code::file_exec,
    },
    Attempt {
        id: "code.ld-so",
        goal: Goal::UnshippedCode,
        what: "copy a program to each writable place and run it through the dynamic loader",
        directive: "NoExecPaths=/tmp /var/tmp",
        accepted: &["EPERM", "EACCES", "EROFS", "ENOENT"],
        deadline_ms: 8000,
        host_cap: None,
        run: code::ld_so,
    },
    Attempt {
        id: "code.memfd-mmap",
        goal: Goal::UnshippedCode,
        what: "write code to a memfd, mmap it PROT_EXEC, call it",
        directive: "SystemCallFilter= without memfd_create",
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::memfd_mmap,
    },
    Attempt {
        id: "code.memfd-exec",
        goal: Goal::UnshippedCode,
        what: "write a static ELF to a memfd and execve /proc/self/fd/N",
        directive: "SystemCallFilter= without memfd_create",
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::memfd_exec,
    },
    Attempt {
        id: "code.proc-mem-write",
        goal: Goal::UnshippedCode,
        what: "open /proc/self/mem read-write, lseek+write code into an r-x page, call it",
        directive: "SANDKASTEN_LOCKDOWN=1 (Landlock: writes only in /tmp, /var/tmp, /dev)",
        accepted: &["EROFS", "EACCES", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::proc_mem_write,
    },
    Attempt {
        id: "code.proc-mem-pwrite",
        goal: Goal::UnshippedCode,
        what: "the same with pwrite64 (no lseek)",
        directive: "SystemCallFilter= without pwrite64; SANDKASTEN_LOCKDOWN=1 (Landlock)",
        accepted: &["EROFS", "EACCES", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::proc_mem_pwrite,
    },
    Attempt {
        id: "code.ptrace-poke",
        goal: Goal::UnshippedCode,
        what: "PTRACE_POKETEXT code into a traced child's r-x page and let it run",
        directive: "SystemCallFilter= without ptrace",
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::ptrace_poke,
    },
    Attempt {
        id: "code.shared-alias-fork",
        goal: Goal::UnshippedCode,
        what: "a MAP_SHARED page executable here, made writable in a forked child, written there, called here",
        directive: "SANDKASTEN_LOCKDOWN=1 (no mmap(PROT_EXEC, MAP_SHARED))",
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::shared_alias_fork,
    },
    Attempt {
        id: "code.shared-alias-mremap",
        goal: Goal::UnshippedCode,
        what: "a MAP_SHARED executable page mapped again with mremap(old_size 0), the alias made writable, written, called",
        directive: "SANDKASTEN_LOCKDOWN=1; SystemCallFilter= without mremap",
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::shared_alias_mremap,
    },
    Attempt {
        id: "code.interpreter",
        goal: Goal::UnshippedCode,
        what: "run code given as text to a shipped interpreter (perl -e, python3 -c, sh -c)",
        directive: "ExecPaths= (our binaries and their libraries only)",
        accepted: &["EACCES"],
        deadline_ms: 6000,
        host_cap: None,
        run: code::interpreter,
    },
    Attempt {
        id: "mem.wx-mmap",
        goal: Goal::UnshippedCode,
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
        goal: Goal::UnshippedCode,
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
        goal: Goal::Exhaust,
        what: "sched_setscheduler(SCHED_FIFO)",
        directive: "RestrictRealtime=yes",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::realtime,
    },
    Attempt {
        id: "res.nice",
        goal: Goal::Exhaust,
        what: "setpriority to -10",
        directive: "no CAP_SYS_NICE",
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::nice,
    },
    Attempt {
        id: "res.rlimit",
        goal: Goal::Exhaust,
        what: "raise the hard RLIMIT_NOFILE (after lowering it by one)",
        directive: "no CAP_SYS_RESOURCE",
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_RESOURCE),
        run: resources::rlimit,
    },
    Attempt {
        id: "res.fork-bomb",
        goal: Goal::Exhaust,
        what: "create processes until failure (bounded by --fork-limit, all reaped)",
        directive: "TasksMax=",
        accepted: &["EAGAIN"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::fork_bomb,
    },
    Attempt {
        id: "res.memory",
        goal: Goal::Exhaust,
        what: "allocate and touch memory until stopped (bounded by --memory-mib)",
        directive: "MemoryMax=",
        accepted: &["SIGKILL", "ENOMEM"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::memory,
    },
    Attempt {
        id: "ipc.sysv",
        goal: Goal::ShareData,
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
        goal: Goal::ShareData,
        what: "open the canary's POSIX message queue and send a token",
        directive: "PrivateIPC=yes",
        // A system-call allow-list without the IPC calls refuses them outright (EPERM).
        accepted: &["ENOENT", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: ipc::mqueue,
    },
];
