//! Restrictions that need no systemd: namespaces and read-only mounts (as
//! `unshare` makes them), a non-root uid without capabilities (`setpriv`,
//! `prlimit`), and a seccomp filter this test installs. Each test lists the
//! attempts its restriction covers and the exact accepted outcome of each;
//! the other attempts may do anything but break the probe.

use std::collections::BTreeMap;
use std::process::Command;

use sandkasten_probe::verdict::VerdictKind::{Blocked, Error, Escaped, Killed, Unsupported};

use crate::util::{self, Canary, Expect, TempDir};

/// The network attempts in a fresh network namespace with lo up (what
/// PrivateNetwork=yes builds).
fn network_blocked() -> BTreeMap<&'static str, Expect> {
    BTreeMap::from([
        ("net.tcp-loopback", (Blocked, Some("ECONNREFUSED"))),
        ("net.tcp-lan", (Blocked, Some("ENETUNREACH"))),
        ("net.udp-send", (Blocked, Some("ECONNREFUSED"))),
        ("net.listen-new", (Blocked, Some("unreachable"))),
        ("net.abstract-unix", (Blocked, Some("ECONNREFUSED"))),
    ])
}

#[test]
fn fresh_network_namespace_is_blocked_and_the_canary_sees_nothing() {
    if !util::root() {
        return;
    }
    let dir = TempDir::new("netns");
    util::in_netns(|| {
        let canary = Canary::start(&dir);

        // Unsandboxed: the canary sees the loopback connection.
        let control = util::run_id("loop-control");
        let mut args = util::probe_args(&dir, &control);
        args.extend(["--only".into(), "net.tcp-loopback".into()]);
        let got = util::verdicts(Command::new(&args[0]).args(&args[1..]));
        assert_eq!(got["net.tcp-loopback"].verdict, sandkasten_probe::verdict::VerdictKind::Escaped);
        let report = canary.report(&control);
        assert!(
            report
                .events
                .iter()
                .any(|e| e.target == "tcp-loopback" && e.run_id.as_deref() == Some(control.as_str())),
            "the canary did not see the unsandboxed loopback connection: {report:#?}"
        );

        // In a fresh network namespace: blocked, and the canary sees nothing.
        let sandboxed = util::run_id("loop-netns");
        let mut args = util::probe_args(&dir, &sandboxed);
        // Every network route but the unix sockets on the file system: a
        // network namespace does not cover those (the units hide their
        // directories instead).
        args.push("--only".into());
        args.extend(
            sandkasten_probe::catalogue::ATTEMPTS
                .iter()
                .filter(|a| a.id.starts_with("net.") && !matches!(a.id, "net.unix-path" | "net.unix-dgram"))
                .map(|a| a.id.to_owned()),
        );
        let script = "ip link set lo up && exec \"$@\"";
        let got =
            util::verdicts(Command::new("unshare").args(["--net", "sh", "-c", script, "sh"]).args(&args));
        util::assert_expected(&got, &network_blocked());
        util::assert_no_probe_failures(&got);
        let report = canary.report(&sandboxed);
        let from_sandbox: Vec<_> =
            report.events.iter().filter(|e| e.run_id.as_deref() == Some(sandboxed.as_str())).collect();
        assert!(from_sandbox.is_empty(), "the canary saw the sandboxed probe: {from_sandbox:#?}");
        assert!(report.seen.is_empty(), "{report:#?}");
    });
}

#[test]
fn private_namespaces_and_read_only_mounts_block_what_they_cover() {
    if !util::root() {
        return;
    }
    let dir = TempDir::new("mounts");
    let run = util::run_id("mounts");
    util::in_netns(|| {
        let canary = Canary::start(&dir);
        // What PrivateNetwork=, PrivateIPC=, ProtectHostname=, a private pid
        // namespace, PrivateTmp=, ProtectSystem=strict, ProtectHome=,
        // ProtectKernelTunables=, ProtectControlGroups= and NoExecPaths= (a
        // noexec /tmp, the probe's scratch directory) build, by hand.
        let script = r#"
            set -e
            ip link set lo up
            mount -t tmpfs -o noexec tmpfs /tmp
            for d in /etc /usr /var/lib "$CONTENT" /proc/sys /proc/sysrq-trigger; do
                [ -e "$d" ] || continue  # no sysrq-trigger without CONFIG_MAGIC_SYSRQ
                mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"
            done
            mount -t tmpfs -o ro tmpfs /home
            mount -t tmpfs -o ro tmpfs /root
            for m in $(findmnt -rn -o TARGET -t cgroup,cgroup2); do mount -o remount,bind,ro "$m"; done
            exec "$@"
        "#;
        let args = util::probe_args(&dir, &run);
        let got = util::verdicts(
            Command::new("unshare")
                .args([
                    "--net",
                    "--ipc",
                    "--uts",
                    "--pid",
                    "--fork",
                    "--mount",
                    "--mount-proc",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .args(&args)
                .env("CONTENT", dir.content()),
        );
        let mut want = network_blocked();
        want.extend([
            ("fs.write-etc", (Blocked, Some("EROFS"))),
            ("fs.write-usr", (Blocked, Some("EROFS"))),
            ("fs.write-var", (Blocked, Some("EROFS"))),
            ("fs.write-content", (Blocked, Some("EROFS"))),
            ("fs.read-home", (Blocked, Some("empty"))),
            ("fs.tmp-shared", (Blocked, Some("not-visible-outside"))),
            ("fs.proc-pid1", (Blocked, Some("other-pid-namespace"))),
            ("fs.proc-sys", (Blocked, Some("EROFS"))),
            ("fs.core-pattern", (Blocked, Some("EROFS"))),
            ("fs.cgroup", (Blocked, Some("EROFS"))),
            ("priv.ptrace", (Blocked, Some("ESRCH"))),
            ("priv.signal", (Blocked, Some("ESRCH"))),
            ("sys.hostname", (Blocked, Some("private-uts-namespace"))),
            ("ipc.sysv", (Blocked, Some("ENOENT"))),
            ("ipc.mqueue", (Blocked, Some("ENOENT"))),
        ]);
        util::assert_expected(&got, &want);
        util::assert_no_probe_failures(&got);
        // What this world does not confine: unix sockets on the file system
        // (no directory is hidden here) and the host's /dev/shm.
        let uncovered = ["net.unix-path", "net.unix-dgram", "fs.shm-shared"];
        let report = canary.report(&run);
        let seen: Vec<&String> = report.seen.keys().filter(|k| !uncovered.contains(&k.as_str())).collect();
        assert!(seen.is_empty(), "the canary saw the confined probe: {report:#?}");
    });
}

#[test]
fn non_root_without_capabilities_is_blocked() {
    if !util::root() {
        return;
    }
    let dir = TempDir::new("nonroot");
    let run = util::run_id("nonroot");
    util::in_netns(|| {
        let _canary = Canary::start(&dir);
        let mut cmd = Command::new("prlimit");
        // RLIMIT_NPROC stands in for TasksMax=, RLIMIT_AS for MemoryMax=.
        cmd.args(["--nproc=64", "--as=268435456", "--", "setpriv", "--reuid=65534", "--regid=65534"])
            .args(["--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"])
            .args(util::probe_args(&dir, &run));
        let got = util::verdicts(&mut cmd);
        let mut want: BTreeMap<&str, Expect> = BTreeMap::from([
            ("fs.read-shadow", (Blocked, Some("EACCES"))),
            ("priv.setuid-root", (Blocked, Some("EPERM"))),
            ("priv.suid-binary", (Blocked, Some("non-root-euid"))),
            ("priv.capabilities", (Blocked, Some("all-zero"))),
            ("priv.chown", (Blocked, Some("EPERM"))),
            ("priv.ptrace", (Blocked, Some("EPERM"))),
            ("priv.signal", (Blocked, Some("EPERM"))),
            ("dev.mknod", (Blocked, Some("EPERM"))),
            ("net.packet", (Blocked, Some("EPERM"))),
            ("net.netlink-route", (Blocked, Some("EPERM"))),
            ("ns.net", (Blocked, Some("EPERM"))),
            ("ns.mount", (Blocked, Some("EPERM"))),
            ("sys.mount", (Blocked, Some("EPERM"))),
            ("sys.swapon", (Blocked, Some("EPERM"))),
            ("sys.reboot", (Blocked, Some("EPERM"))),
            ("sys.open-by-handle", (Blocked, Some("EPERM"))),
            ("sys.clock", (Blocked, Some("EPERM"))),
            ("sys.hostname", (Blocked, Some("EPERM"))),
            ("res.realtime", (Blocked, Some("EPERM"))),
            ("res.nice", (Blocked, Some("EACCES"))),
            ("res.fork-bomb", (Blocked, Some("EAGAIN"))),
            ("res.memory", (Blocked, Some("ENOMEM"))),
        ]);
        // Covered only where the machine's sysctls deny unprivileged use.
        if util::sysctl("/proc/sys/kernel/dmesg_restrict") == Some(1) {
            want.insert("dev.kmsg", (Blocked, Some("EPERM")));
            want.insert("sys.syslog", (Blocked, Some("EPERM")));
        }
        if util::sysctl("/proc/sys/kernel/unprivileged_bpf_disabled").is_some_and(|v| v != 0) {
            want.insert("sys.bpf", (Blocked, Some("EPERM")));
        }
        if util::sysctl("/proc/sys/vm/unprivileged_userfaultfd") == Some(0) {
            want.insert("sys.userfaultfd", (Blocked, Some("EPERM")));
        }
        util::assert_expected(&got, &want);
        util::assert_no_probe_failures(&got);
    });
}

/// A classic BPF seccomp program, built by hand (no libseccomp).
#[cfg(target_arch = "x86_64")]
mod filter {
    use libc::sock_filter;

    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const ALLOW: u32 = 0x7fff_0000;
    const KILL_PROCESS: u32 = 0x8000_0000;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    fn errno(e: i32) -> u32 {
        0x0005_0000 | e as u32
    }

    fn arg_off(i: u32) -> u32 {
        16 + 8 * i // low 32 bits of args[i] on little-endian
    }

    /// The filter of `seccomp_filter_blocks_filtered_calls`: what
    /// SystemCallArchitectures=native, RestrictAddressFamilies=,
    /// MemoryDenyWriteExecute=, RestrictSUIDSGID=, LockPersonality=,
    /// RestrictRealtime=, RestrictNamespaces= and SystemCallFilter= do,
    /// reduced to the calls the probe makes.
    pub fn program() -> Vec<sock_filter> {
        let mut p = vec![
            // Foreign architecture (int 0x80): kill, as systemd does.
            ins(LD_W_ABS, 0, 0, OFF_ARCH),
            ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            ins(RET_K, 0, 0, KILL_PROCESS),
            // x32 system call numbers: ENOSYS.
            ins(LD_W_ABS, 0, 0, OFF_NR),
            ins(JGE_K, 0, 1, 0x4000_0000),
            ins(RET_K, 0, 0, errno(libc::ENOSYS)),
        ];
        let deny = |p: &mut Vec<sock_filter>, nr: libc::c_long, action: u32| {
            p.extend([ins(LD_W_ABS, 0, 0, OFF_NR), ins(JEQ_K, 0, 1, nr as u32), ins(RET_K, 0, 0, action)]);
        };
        // Deny `nr` when (args[arg] & mask) == value.
        let deny_arg =
            |p: &mut Vec<sock_filter>, nr: libc::c_long, arg: u32, mask: u32, value: u32, action: u32| {
                p.extend([
                    ins(LD_W_ABS, 0, 0, OFF_NR),
                    ins(JEQ_K, 0, 4, nr as u32),
                    ins(LD_W_ABS, 0, 0, arg_off(arg)),
                    ins(AND_K, 0, 0, mask),
                    ins(JEQ_K, 0, 1, value),
                    ins(RET_K, 0, 0, action),
                ]);
            };
        // Deny `nr` when any bit of mask is set in args[arg].
        let deny_any = |p: &mut Vec<sock_filter>, nr: libc::c_long, arg: u32, mask: u32| {
            p.extend([
                ins(LD_W_ABS, 0, 0, OFF_NR),
                ins(JEQ_K, 0, 3, nr as u32),
                ins(LD_W_ABS, 0, 0, arg_off(arg)),
                ins(JSET_K, 0, 1, mask),
                ins(RET_K, 0, 0, errno(libc::EPERM)),
            ]);
        };
        let eperm = errno(libc::EPERM);
        deny(&mut p, libc::SYS_mount, KILL_PROCESS);
        for nr in [
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_swapon,
            libc::SYS_reboot,
            libc::SYS_kexec_load,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_open_by_handle_at,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_add_key,
            libc::SYS_keyctl,
            libc::SYS_syslog,
            libc::SYS_adjtimex,
            libc::SYS_clock_adjtime,
            libc::SYS_clock_settime,
            libc::SYS_settimeofday,
            libc::SYS_sethostname,
            libc::SYS_personality,
            libc::SYS_ptrace,
            libc::SYS_finit_module,
            libc::SYS_init_module,
            // Left out of the units' allow-lists: re-aiming handed-over
            // sockets, anonymous files and second mappings for written code.
            libc::SYS_connect,
            libc::SYS_shutdown,
            libc::SYS_memfd_create,
            libc::SYS_mremap,
        ] {
            deny(&mut p, nr, eperm);
        }
        let afnosupport = errno(libc::EAFNOSUPPORT);
        for family in [libc::AF_PACKET, libc::AF_NETLINK, libc::AF_VSOCK] {
            deny_arg(&mut p, libc::SYS_socket, 0, u32::MAX, family as u32, afnosupport);
        }
        let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u32;
        deny_arg(&mut p, libc::SYS_mmap, 2, wx, wx, eperm);
        deny_any(&mut p, libc::SYS_mprotect, 2, libc::PROT_EXEC as u32);
        deny_any(&mut p, libc::SYS_pkey_mprotect, 2, libc::PROT_EXEC as u32);
        deny_any(&mut p, libc::SYS_chmod, 1, 0o6000);
        deny_any(&mut p, libc::SYS_fchmod, 1, 0o6000);
        deny_any(&mut p, libc::SYS_fchmodat, 2, 0o6000);
        deny_any(&mut p, 452, 2, 0o6000); // fchmodat2
        for policy in [libc::SCHED_FIFO, libc::SCHED_RR] {
            deny_arg(&mut p, libc::SYS_sched_setscheduler, 1, u32::MAX, policy as u32, eperm);
        }
        p.push(ins(RET_K, 0, 0, ALLOW));
        p
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_filter_blocks_filtered_calls() {
    use std::os::unix::process::CommandExt;

    if !util::root() {
        return;
    }
    let dir = TempDir::new("seccomp");
    let run = util::run_id("seccomp");
    let mut prog = filter::program();
    util::in_netns(|| {
        let _canary = Canary::start(&dir);
        let args = util::probe_args(&dir, &run);
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        let sockets = util::HandedOver::new();
        sockets.pass_to(&mut cmd);
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
        let fprog_addr = &fprog as *const libc::sock_fprog as usize;
        // SAFETY: the closure only makes one prctl call with a pointer to a
        // program that outlives the spawn (no allocation after fork).
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, fprog_addr);
                if r != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let got = util::verdicts(&mut cmd);
        let e = |o: &'static str| (Blocked, Some(o));
        let want: BTreeMap<&str, Expect> = BTreeMap::from([
            ("net.packet", e("EAFNOSUPPORT")),
            ("net.netlink-route", e("EAFNOSUPPORT")),
            ("net.vsock", e("EAFNOSUPPORT")),
            ("priv.chmod-suid", e("EPERM")),
            ("priv.ptrace", e("EPERM")),
            ("ns.user", e("EPERM")),
            ("ns.net", e("EPERM")),
            ("ns.mount", e("EPERM")),
            ("sys.mount", (Killed, Some("SIGSYS"))),
            ("sys.reboot", e("EPERM")),
            ("sys.swapon", e("EPERM")),
            ("sys.bpf", e("EPERM")),
            ("sys.perf", e("EPERM")),
            ("sys.open-by-handle", e("EPERM")),
            ("sys.userfaultfd", e("EPERM")),
            ("sys.io-uring", e("EPERM")),
            ("sys.keyctl", e("EPERM")),
            ("sys.syslog", e("EPERM")),
            ("sys.clock", e("EPERM")),
            ("sys.hostname", e("EPERM")),
            ("sys.personality", e("EPERM")),
            ("sys.x32-abi", (Killed, Some("SIGSYS"))),
            ("mem.wx-mmap", e("EPERM")),
            ("mem.mprotect-exec", e("EPERM")),
            ("res.realtime", e("EPERM")),
            // Without connect and shutdown a handed-over socket cannot be
            // re-aimed; Fast Open refuses a socket that still listens.
            ("net.handover-accepted", e("EPERM")),
            ("net.handover-unspec", e("EPERM")),
            ("net.handover-shutdown", e("EPERM")),
            ("net.handover-fastopen", e("EISCONN")),
            ("net.unix-path", e("EPERM")),
            ("code.memfd-mmap", e("EPERM")),
            ("code.memfd-exec", e("EPERM")),
            ("code.shared-alias-mremap", e("EPERM")),
        ]);
        util::assert_expected(&got, &want);
        util::assert_no_probe_failures(&got);
    });
}

/// The servers' lockdown (`SANDKASTEN_LOCKDOWN=1`), here on its own, as
/// root with nothing else in the way: no shared page is mapped executable,
/// and files are written only beneath /tmp, /var/tmp and /dev (Landlock),
/// so /proc/self/mem and /etc are out of reach while /tmp is not; and
/// processes outside our Landlock domain cannot be read through /proc.
#[test]
fn the_lockdown_refuses_shared_exec_mappings_and_writes_outside_the_writable_places() {
    if !util::root() {
        return;
    }
    let dir = TempDir::new("lockdown");
    let run = util::run_id("lockdown");
    util::in_netns(|| {
        let _canary = Canary::start(&dir);
        let args = util::probe_args(&dir, &run);
        let routes = [
            "code.shared-alias-fork",
            "code.shared-alias-mremap",
            "code.proc-mem-write",
            "code.proc-mem-pwrite",
            "fs.write-etc",
            "code.file-mmap",
            "proc.sibling",
            "priv.signal-sibling",
        ];
        let locked = util::verdicts(
            Command::new(&args[0])
                .args(&args[1..])
                .arg("--only")
                .args(routes)
                .env("SANDKASTEN_LOCKDOWN", "1"),
        );
        let e = |o: &'static str| (Blocked, Some(o));
        let want: BTreeMap<&str, Expect> = BTreeMap::from([
            ("code.shared-alias-fork", e("EPERM")),
            ("code.shared-alias-mremap", e("EPERM")),
            ("code.proc-mem-write", e("EACCES")),
            ("code.proc-mem-pwrite", e("EACCES")),
            ("fs.write-etc", e("EACCES")),
            // Every other process of the same uid is outside our Landlock
            // domain: its /proc entries are refused.
            ("proc.sibling", e("EACCES")),
            // tgkill may aim at this process only.
            ("priv.signal-sibling", e("EPERM")),
            // /tmp is a writable place: the lockdown leaves it to noexec.
            ("code.file-mmap", (Escaped, None)),
        ]);
        util::assert_expected(&locked, &want);
        // The same routes without the lockdown: each escapes.
        let open = util::verdicts(Command::new(&args[0]).args(&args[1..]).arg("--only").args(routes));
        let escaped: BTreeMap<&str, Expect> = routes.iter().map(|r| (*r, (Escaped, None))).collect();
        util::assert_expected(&open, &escaped);
    });
}

/// A lockdown the unit asks for but the probe cannot install: no attempt
/// is made (the runner installs it once, before the first fork), and each
/// is an `error` that says why.
#[test]
fn a_lockdown_that_cannot_be_installed_makes_no_attempt() {
    let got =
        util::verdicts(
            Command::new(util::probe())
                .env_remove("SANDKASTEN_CANARY")
                .env("SANDKASTEN_LOCKDOWN", "yes")
                .args(["--json", "--only", "ns.user", "fs.write-etc"]),
        );
    assert_eq!(got.len(), 2);
    for v in got.values() {
        assert_eq!(v.verdict, Error, "{}: {}", v.id, v.detail);
        assert!(v.detail.contains("SANDKASTEN_LOCKDOWN must be 0 or 1"), "{}: {}", v.id, v.detail);
    }
}

/// The egress guard (units/sandkasten-egress.nft) on this kernel: sockets
/// that carry its mark may answer, never start a flow, whatever calls the
/// process inside may make; unmarked sockets are untouched.
#[test]
fn the_egress_guard_refuses_new_flows_from_marked_sockets() {
    if !util::root() {
        return;
    }
    let nft_file = util::repo_file("units/sandkasten-egress.nft");
    let dir = TempDir::new("egress");
    let run = util::run_id("egress");
    util::in_netns(|| {
        let _canary = Canary::start(&dir);
        let loaded = Command::new("nft").arg("-f").arg(&nft_file).status();
        assert!(
            loaded.is_ok_and(|s| s.success()),
            "nft -f {} failed (install Debian's nftables)",
            nft_file.display()
        );
        let args = util::probe_args(&dir, &run);
        let routes = [
            "net.handover-accepted",
            "net.handover-unspec",
            "net.handover-shutdown",
            "net.handover-fastopen",
            "net.handover-udp",
        ];
        let probe = |mark: Option<u32>| {
            let sockets = util::HandedOver::marked(mark);
            let mut cmd = Command::new(&args[0]);
            cmd.args(&args[1..]).arg("--only").args(routes);
            sockets.pass_to(&mut cmd);
            util::verdicts(&mut cmd)
        };
        let e = |o: &'static str| (Blocked, Some(o));
        let mut want: BTreeMap<&str, Expect> = BTreeMap::from([
            ("net.handover-accepted", e("ECONNREFUSED")),
            ("net.handover-unspec", e("ECONNREFUSED")),
            // shutdown(2) leaves ECONNABORTED pending on the old listener.
            ("net.handover-shutdown", e("ECONNABORTED")),
            ("net.handover-fastopen", e("ECONNREFUSED")),
            ("net.handover-udp", e("EPERM")),
        ]);
        let mut escaped: BTreeMap<&str, Expect> = routes.iter().map(|r| (*r, (Escaped, None))).collect();
        // A kernel that refuses connect() to every former listener closes
        // the listener routes before the guard is asked, marked or not.
        let kernel_refuses = !util::former_listener_connects();
        if kernel_refuses {
            for id in util::LISTENER_ROUTES {
                want.insert(id, (Unsupported, None));
                escaped.insert(id, (Unsupported, None));
            }
        }
        for (mark, want) in [(Some(29547), want), (None, escaped)] {
            let got = probe(mark);
            util::assert_expected(&got, &want);
            if kernel_refuses {
                util::assert_kernel_policy(&got, &util::LISTENER_ROUTES);
            }
        }
    });
}
