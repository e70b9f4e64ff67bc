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
    /// What holds it in the reference units, as `sandkasten-vm ablate`
    /// measures it (units/ablation/; a test keeps the two in step).
    pub held_by: Held,
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

/// What holds an attempt in a reference unit: the directives (as the
/// ablation map names them: `PrivateNetwork=`, `SystemCallFilter=
/// (allow-list)`, `NoExecPaths= + ExecPaths=`, `Mark= (socket)`) whose
/// removal lets it escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Removing any one of these alone lets it escape: each is
    /// load-bearing (several: they hold it only together).
    Alone(&'static [&'static str]),
    /// No single removal lets it escape; removing all of these does, and
    /// each of them holds it on its own: layers.
    Layers(&'static [&'static str]),
}

impl Held {
    /// The directives named.
    pub fn directives(&self) -> &'static [&'static str] {
        match self {
            Held::Alone(d) | Held::Layers(d) => d,
        }
    }

    /// In words, for the report: `PrivateNetwork=`, or
    /// `layers: A= + B=` (all must go before it escapes).
    pub fn describe(&self) -> String {
        match self {
            Held::Alone(d) => d.join(" and "),
            Held::Layers(d) => format!("layers: {}", d.join(" + ")),
        }
    }
}

impl Attempt {
    /// What holds it in `unit` (a reference unit's name): [`Attempt::held_by`],
    /// unless [`UNIT_DIFFERENCES`] says otherwise for that unit.
    pub fn held_in(&self, unit: &str) -> Held {
        UNIT_DIFFERENCES
            .iter()
            .find(|(id, u, _)| *id == self.id && *u == unit)
            .map_or(self.held_by, |(_, _, held)| *held)
    }
}

/// Where a reference unit's measured holders differ from `held_by` (which
/// is what holds the attempt in sandkasten-http.service, or in the first
/// unit where it applies): (attempt, unit, what holds it there). Each unit
/// has its own allow-list and limits, so a layer one unit has may be
/// missing in another.
pub const UNIT_DIFFERENCES: &[(&str, &str, Held)] = &[
    // Instances of a template share one dynamic user: DynamicUser= keeps
    // other services' processes out of reach, not another instance.
    (
        "priv.signal-sibling",
        "sandkasten-echo-inetd@.service",
        Held::Alone(&["Environment=SANDKASTEN_LOCKDOWN=1"]),
    ),
];

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
        held_by: Held::Layers(&["PrivateNetwork=", "RestrictAddressFamilies=", "IPAddressDeny=", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
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
        held_by: Held::Layers(&["PrivateNetwork=", "RestrictAddressFamilies=", "IPAddressDeny=", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
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
        held_by: Held::Layers(&["PrivateNetwork=", "RestrictAddressFamilies=", "IPAddressDeny=", "SocketBindDeny=", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
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
        held_by: Held::Layers(&["PrivateNetwork=", "RestrictAddressFamilies=", "IPAddressDeny=", "SocketBindDeny=", "SystemCallFilter= (allow-list)"]),
        // RestrictAddressFamilies= refuses the IP socket itself (EAFNOSUPPORT).
        accepted: &["unreachable", "EAFNOSUPPORT"],
        deadline_ms: 9000,
        host_cap: None,
        run: net::listen_new,
    },
    Attempt {
        id: "net.handover-accepted",
        goal: Goal::HostNetwork,
        what: "dissolve an accepted (or Accept=yes) connection with connect(AF_UNSPEC), connect it to the canary on the host's 127.0.0.1",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)", "Mark= (socket)"]),
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
        held_by: Held::Alone(&["Mark= (socket)"]),
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
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)", "Mark= (socket)"]),
        accepted: &["EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::listener_unspec,
    },
    Attempt {
        id: "net.handover-shutdown",
        goal: Goal::HostNetwork,
        what: "shutdown(SHUT_RD) takes the handed-over listener out of LISTEN; connect() it to the canary",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)", "Mark= (socket)"]),
        accepted: &["EPERM", "ECONNREFUSED", "ECONNABORTED"],
        deadline_ms: 6000,
        host_cap: None,
        run: handover::listener_shutdown,
    },
    Attempt {
        id: "net.handover-fastopen",
        goal: Goal::HostNetwork,
        what: "close the handed-over listener by any allowed call, connect it with sendto(MSG_FASTOPEN), which needs no connect()",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)", "Mark= (socket)"]),
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
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "RestrictAddressFamilies="]),
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_RAW),
        run: net::packet,
    },
    Attempt {
        id: "net.netlink-route",
        goal: Goal::NetworkControl,
        what: "socket(AF_NETLINK) and RTM_NEWADDR (to a non-existent interface, so nothing changes)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "RestrictAddressFamilies="]),
        accepted: &["EAFNOSUPPORT", "EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_NET_ADMIN),
        run: net::netlink_route,
    },
    Attempt {
        id: "net.abstract-unix",
        goal: Goal::HostNetwork,
        what: "connect to the canary's abstract unix socket",
        held_by: Held::Layers(&["PrivateNetwork=", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
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
        held_by: Held::Layers(&["TemporaryFileSystem=/var:ro", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM", "ENOENT"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::unix_path,
    },
    Attempt {
        id: "net.unix-dgram",
        goal: Goal::HostNetwork,
        what: "sendto the canary's unix datagram socket at a path outside /run (mode 0666)",
        held_by: Held::Alone(&["TemporaryFileSystem=/var:ro"]),
        accepted: &["ENOENT", "EACCES"],
        deadline_ms: 4000,
        host_cap: None,
        run: net::unix_dgram,
    },
    Attempt {
        id: "net.dbus",
        goal: Goal::SystemManager,
        what: "connect to the system bus, authenticate, Hello and ListUnits",
        held_by: Held::Layers(&["DynamicUser=", "TemporaryFileSystem=/run:ro", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
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
        held_by: Held::Alone(&["RestrictAddressFamilies="]),
        accepted: &["EAFNOSUPPORT"],
        deadline_ms: 3000,
        host_cap: None,
        run: net::vsock,
    },
    Attempt {
        id: "fs.write-etc",
        goal: Goal::ChangeSystem,
        what: "create a file in /etc",
        held_by: Held::Layers(&["DynamicUser=", "ProtectSystem=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProtectSystem=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProtectSystem=", "TemporaryFileSystem=/var:ro", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProtectSystem=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProtectHome="]),
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_home,
    },
    Attempt {
        id: "fs.read-shadow",
        goal: Goal::ReadSecrets,
        what: "read /etc/shadow",
        held_by: Held::Alone(&["DynamicUser="]),
        accepted: &["EACCES"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::read_shadow,
    },
    Attempt {
        id: "fs.tmp-shared",
        goal: Goal::ShareData,
        what: "write /tmp/<marker>; the host's /tmp must not show it",
        held_by: Held::Layers(&["DynamicUser=", "ProtectSystem=", "PrivateTmp="]),
        accepted: &["not-visible-outside"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::tmp_shared,
    },
    Attempt {
        id: "fs.shm-shared",
        goal: Goal::ShareData,
        what: "write /dev/shm/x; the canary knows whether it is the host's /dev/shm",
        held_by: Held::Alone(&["TemporaryFileSystem=/var:ro"]),
        accepted: &["not-visible-outside", "EROFS", "EACCES", "ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::shm_shared,
    },
    Attempt {
        id: "fs.proc-pid1",
        goal: Goal::ReadSecrets,
        what: "read /proc/1/environ and /proc/1/cmdline",
        held_by: Held::Alone(&["DynamicUser=", "ProtectProc="]),
        accepted: &["ENOENT", "other-pid-namespace"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::proc_pid1,
    },
    Attempt {
        id: "fs.proc-sys",
        goal: Goal::ChangeSystem,
        what: "write /proc/sys/kernel/hostname (its own value) and 'h' (help) to /proc/sysrq-trigger",
        held_by: Held::Layers(&["DynamicUser=", "ProcSubset=", "ProtectKernelTunables=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProcSubset=", "ProtectKernelTunables=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "ProtectControlGroups=", "Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)"]),
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
        held_by: Held::Alone(&["ProtectKernelModules="]),
        accepted: &["ENOENT", "EACCES", "empty"],
        deadline_ms: 3000,
        host_cap: None,
        run: fs::modules_dir,
    },
    Attempt {
        id: "proc.sibling",
        goal: Goal::ReadSecrets,
        what: "read the environment and a page of memory of another process of the same uid (another instance of the same template)",
        held_by: Held::Layers(&["PrivateUsers=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
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
        held_by: Held::Layers(&["DynamicUser=", "PrivateDevices=", "DevicePolicy="]),
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::disk,
    },
    Attempt {
        id: "dev.mem",
        goal: Goal::ReadSecrets,
        what: "open /dev/mem and /dev/port for reading",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "PrivateDevices=", "DevicePolicy="]),
        accepted: &["ENOENT"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::mem,
    },
    Attempt {
        id: "dev.kmsg",
        goal: Goal::ReadSecrets,
        what: "read /dev/kmsg",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "PrivateDevices=", "DevicePolicy=", "ProtectKernelLogs="]),
        accepted: &["ENOENT", "EACCES", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: dev::kmsg,
    },
    Attempt {
        id: "dev.mknod",
        goal: Goal::ChangeSystem,
        what: "mknod a block device in a writable directory",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "PrivateDevices=", "DevicePolicy=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_MKNOD),
        run: dev::mknod,
    },
    Attempt {
        id: "priv.setuid-root",
        goal: Goal::GainPrivilege,
        what: "setuid(0)",
        held_by: Held::Layers(&["DynamicUser=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::setuid_root,
    },
    Attempt {
        id: "priv.suid-binary",
        goal: Goal::GainPrivilege,
        what: "exec a setuid-root binary and read its euid",
        held_by: Held::Layers(&["DynamicUser=", "NoExecPaths= + ExecPaths="]),
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
        held_by: Held::Layers(&["DynamicUser=", "RestrictSUIDSGID=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::chmod_suid,
    },
    Attempt {
        id: "priv.capabilities",
        goal: Goal::GainPrivilege,
        what: "read the effective, permitted, bounding and ambient capability sets",
        held_by: Held::Alone(&["CapabilityBoundingSet="]),
        accepted: &["all-zero"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::capabilities,
    },
    Attempt {
        id: "priv.chown",
        goal: Goal::GainPrivilege,
        what: "chown an own file to another uid (root, or nobody when already root)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_CHOWN),
        run: privilege::chown,
    },
    Attempt {
        id: "priv.ptrace",
        goal: Goal::OtherProcesses,
        what: "ptrace(PTRACE_ATTACH) to the canary's target process",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "ESRCH"],
        deadline_ms: 5000,
        host_cap: None,
        run: privilege::ptrace,
    },
    Attempt {
        id: "priv.signal",
        goal: Goal::OtherProcesses,
        what: "kill(canary target, SIGTERM)",
        held_by: Held::Alone(&["DynamicUser="]),
        accepted: &["ESRCH", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: privilege::signal,
    },
    Attempt {
        id: "ns.user",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWUSER)",
        held_by: Held::Layers(&["RestrictNamespaces=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: namespaces::user,
    },
    Attempt {
        id: "ns.net",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWNET)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "RestrictNamespaces=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::net,
    },
    Attempt {
        id: "ns.mount",
        goal: Goal::GainPrivilege,
        what: "unshare(CLONE_NEWNS), make it private, mount a tmpfs",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "RestrictNamespaces=", "Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: namespaces::mount,
    },
    Attempt {
        id: "sys.mount",
        goal: Goal::ChangeSystem,
        what: "mount(2) a tmpfs on a fresh directory (then unmount it)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::mount,
    },
    Attempt {
        id: "sys.module",
        goal: Goal::ChangeSystem,
        what: "finit_module on a file that is not a module",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "ProtectKernelModules=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_MODULE),
        run: syscalls::module,
    },
    Attempt {
        id: "sys.kexec",
        goal: Goal::ChangeSystem,
        what: "kexec_load with invalid flags (fails after the permission check)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::kexec,
    },
    Attempt {
        id: "sys.reboot",
        goal: Goal::ChangeSystem,
        what: "reboot(2) with an invalid magic (fails after the permission check)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_BOOT),
        run: syscalls::reboot,
    },
    Attempt {
        id: "sys.swapon",
        goal: Goal::ChangeSystem,
        what: "swapon a file without a swap signature",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::swapon,
    },
    Attempt {
        id: "sys.bpf",
        goal: Goal::GainPrivilege,
        what: "bpf(BPF_PROG_LOAD) of a two-instruction socket filter",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::bpf,
    },
    Attempt {
        id: "sys.perf",
        goal: Goal::GainPrivilege,
        what: "perf_event_open of a CPU clock event including kernel samples",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::perf,
    },
    Attempt {
        id: "sys.open-by-handle",
        goal: Goal::GainPrivilege,
        what: "open_by_handle_at (the \"shocker\" escape)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_DAC_READ_SEARCH),
        run: syscalls::open_by_handle,
    },
    Attempt {
        id: "sys.userfaultfd",
        goal: Goal::GainPrivilege,
        what: "userfaultfd() without UFFD_USER_MODE_ONLY",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::userfaultfd,
    },
    Attempt {
        id: "sys.io-uring",
        goal: Goal::GainPrivilege,
        what: "io_uring_setup",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM", "SIGSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::io_uring,
    },
    Attempt {
        id: "sys.keyctl",
        goal: Goal::ShareData,
        what: "add_key to the user keyring",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::keyctl,
    },
    Attempt {
        id: "sys.syslog",
        goal: Goal::ReadSecrets,
        what: "syslog(SYSLOG_ACTION_READ_ALL)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "ProtectKernelLogs=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYSLOG),
        run: syscalls::syslog,
    },
    Attempt {
        id: "sys.clock",
        goal: Goal::ChangeSystem,
        what: "adjtimex(ADJ_TICK) to the current tick (a write that changes nothing)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "ProtectClock=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_TIME),
        run: syscalls::clock,
    },
    Attempt {
        id: "sys.hostname",
        goal: Goal::ChangeSystem,
        what: "sethostname to the current hostname",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "ProtectHostname=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "private-uts-namespace"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_ADMIN),
        run: syscalls::hostname,
    },
    Attempt {
        id: "priv.signal-sibling",
        goal: Goal::OtherProcesses,
        what: "find a process outside our own tree that accepts our signals (tgkill with signal 0 over every pid; another instance of the same template)",
        held_by: Held::Layers(&["DynamicUser=", "Environment=SANDKASTEN_LOCKDOWN=1"]),
        // EPERM: the kernel (another user) or the lockdown's filter (a sibling) refuses the signal;
        // alone: a pid namespace of its own holds no other process.
        accepted: &["EPERM", "alone"],
        // One tgkill per pid up to pid_max (4194304 where systemd raises it):
        // about 10 s under TCG, twice that on a busy host. Measured: 12 s
        // ran out for the plain user on all three releases while another
        // guest ran beside it.
        deadline_ms: 40000,
        host_cap: None,
        run: siblings::signal_sibling,
    },
    Attempt {
        id: "sys.personality",
        goal: Goal::UnshippedCode,
        what: "personality(READ_IMPLIES_EXEC)",
        held_by: Held::Layers(&["LockPersonality=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::personality,
    },
    Attempt {
        id: "sys.x32-abi",
        goal: Goal::GainPrivilege,
        what: "getpid through the x32 and the i386 system call ABI",
        held_by: Held::Layers(&["Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallArchitectures="]),
        accepted: &["SIGSYS", "ENOSYS"],
        deadline_ms: 3000,
        host_cap: None,
        run: syscalls::x32_abi,
    },
    Attempt {
        id: "code.file-mmap",
        goal: Goal::UnshippedCode,
        what: "write code to a file in /tmp, /var/tmp, /dev/shm or a unit directory, mmap it PROT_EXEC, call it",
        held_by: Held::Alone(&["TemporaryFileSystem=/var:ro", "NoExecPaths= + ExecPaths="]),
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
        held_by: Held::Alone(&["TemporaryFileSystem=/var:ro", "NoExecPaths= + ExecPaths="]),
        accepted: &["EACCES", "EROFS", "ENOENT", "EPERM"],
        deadline_ms: 6000,
        host_cap: None,
        run: code::file_exec,
    },
    Attempt {
        id: "code.ld-so",
        goal: Goal::UnshippedCode,
        what: "copy a program to each writable place and run it through the dynamic loader",
        held_by: Held::Alone(&["TemporaryFileSystem=/var:ro", "NoExecPaths= + ExecPaths="]),
        accepted: &["EPERM", "EACCES", "EROFS", "ENOENT"],
        deadline_ms: 8000,
        host_cap: None,
        run: code::ld_so,
    },
    Attempt {
        id: "code.memfd-mmap",
        goal: Goal::UnshippedCode,
        what: "write code to a memfd, mmap it PROT_EXEC, call it",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::memfd_mmap,
    },
    Attempt {
        id: "code.memfd-exec",
        goal: Goal::UnshippedCode,
        what: "write a static ELF to a memfd and execve /proc/self/fd/N",
        held_by: Held::Layers(&["SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::memfd_exec,
    },
    Attempt {
        id: "code.proc-mem-write",
        goal: Goal::UnshippedCode,
        what: "open /proc/self/mem read-write, lseek+write code into an r-x page, call it",
        held_by: Held::Alone(&["Environment=SANDKASTEN_LOCKDOWN=1"]),
        accepted: &["EROFS", "EACCES", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::proc_mem_write,
    },
    Attempt {
        id: "code.proc-mem-pwrite",
        goal: Goal::UnshippedCode,
        what: "the same with pwrite64 (no lseek)",
        held_by: Held::Layers(&["Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)"]),
        accepted: &["EROFS", "EACCES", "EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::proc_mem_pwrite,
    },
    Attempt {
        id: "code.ptrace-poke",
        goal: Goal::UnshippedCode,
        what: "PTRACE_POKETEXT code into a traced child's r-x page and let it run",
        held_by: Held::Alone(&["SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::ptrace_poke,
    },
    Attempt {
        id: "code.shared-alias-fork",
        goal: Goal::UnshippedCode,
        what: "a MAP_SHARED page executable here, made writable in a forked child, written there, called here",
        held_by: Held::Alone(&["Environment=SANDKASTEN_LOCKDOWN=1"]),
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::shared_alias_fork,
    },
    Attempt {
        id: "code.shared-alias-mremap",
        goal: Goal::UnshippedCode,
        what: "a MAP_SHARED executable page mapped again with mremap(old_size 0), the alias made writable, written, called",
        held_by: Held::Layers(&["Environment=SANDKASTEN_LOCKDOWN=1", "SystemCallFilter= (allow-list)", "SystemCallFilter=~ (deny-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 4000,
        host_cap: None,
        run: code::shared_alias_mremap,
    },
    Attempt {
        id: "code.interpreter",
        goal: Goal::UnshippedCode,
        what: "run code given as text to a shipped interpreter (perl -e, python3 -c, sh -c)",
        held_by: Held::Alone(&["NoExecPaths= + ExecPaths="]),
        accepted: &["EACCES"],
        deadline_ms: 6000,
        host_cap: None,
        run: code::interpreter,
    },
    Attempt {
        id: "mem.wx-mmap",
        goal: Goal::UnshippedCode,
        what: "mmap PROT_WRITE|PROT_EXEC",
        held_by: Held::Alone(&["MemoryDenyWriteExecute="]),
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
        held_by: Held::Alone(&["MemoryDenyWriteExecute="]),
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
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "RestrictRealtime=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::realtime,
    },
    Attempt {
        id: "res.nice",
        goal: Goal::Exhaust,
        what: "setpriority to -10",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers=", "SystemCallFilter= (allow-list)"]),
        accepted: &["EPERM", "EACCES"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_NICE),
        run: resources::nice,
    },
    Attempt {
        id: "res.rlimit",
        goal: Goal::Exhaust,
        what: "raise the hard RLIMIT_NOFILE (after lowering it by one)",
        held_by: Held::Layers(&["DynamicUser=", "CapabilityBoundingSet=", "PrivateUsers="]),
        accepted: &["EPERM"],
        deadline_ms: 3000,
        host_cap: Some(caps::CAP_SYS_RESOURCE),
        run: resources::rlimit,
    },
    Attempt {
        id: "res.fork-bomb",
        goal: Goal::Exhaust,
        what: "create processes until failure (bounded by --fork-limit, all reaped)",
        held_by: Held::Alone(&["TasksMax="]),
        accepted: &["EAGAIN"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::fork_bomb,
    },
    Attempt {
        id: "res.memory",
        goal: Goal::Exhaust,
        what: "allocate and touch memory until stopped (bounded by --memory-mib)",
        held_by: Held::Alone(&["MemoryMax="]),
        accepted: &["SIGKILL", "ENOMEM"],
        deadline_ms: 30000,
        host_cap: None,
        run: resources::memory,
    },
    Attempt {
        id: "ipc.sysv",
        goal: Goal::ShareData,
        what: "attach the canary's SysV shared memory key and write a token",
        held_by: Held::Layers(&["PrivateIPC=", "SystemCallFilter= (allow-list)"]),
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
        held_by: Held::Layers(&["Environment=SANDKASTEN_LOCKDOWN=1", "PrivateIPC=", "SystemCallFilter= (allow-list)"]),
        // A system-call allow-list without the IPC calls refuses them outright (EPERM).
        accepted: &["ENOENT", "EPERM"],
        deadline_ms: 3000,
        host_cap: None,
        run: ipc::mqueue,
    },
];
