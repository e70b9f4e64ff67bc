//! Shared helpers: temp dirs, a network namespace per test, the canary, a
//! private D-Bus, and running the probe binary with JSON output.
//!
//! Every test runs as root (CI does) inside a network namespace of its own
//! (the test thread unshares it), so all traffic stays on addresses the test
//! created: 127.0.0.1 and 192.0.2.1 of that namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sandkasten_probe::canary::Report;
use sandkasten_probe::verdict::{Unsupported, Verdict, VerdictKind};

/// The probe binary under test: cargo's, or where `SANDKASTEN_PROBE_BIN`
/// says. The VM harness runs these tests again in a guest, where the
/// build's paths do not exist (and a checkout under /tmp would be hidden by
/// the guest's own /tmp).
pub fn probe() -> PathBuf {
    std::env::var_os("SANDKASTEN_PROBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sandkasten-probe")))
}

/// A file of the repository, named from its root (`units/…`): below
/// cargo's checkout, or below `SANDKASTEN_PROBE_REPO` (the guest's copy).
pub fn repo_file(relative: &str) -> PathBuf {
    let root = std::env::var_os("SANDKASTEN_PROBE_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    root.join(relative)
}

/// Whether we run as root. The tests that compare a root control with
/// restrictions need it (scripts/test and CI run as root); elsewhere they
/// say "skipped" and return instead of failing on the machine.
pub fn root() -> bool {
    // SAFETY: geteuid takes no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: this test needs root (it compares a root control with restrictions)");
    }
    root
}

fn rand_hex() -> String {
    let mut b = [0u8; 6];
    // SAFETY: fills the live buffer.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A unique run id for one probe run.
pub fn run_id(prefix: &str) -> String {
    format!("{prefix}-{}", rand_hex())
}

/// A directory under /var/tmp (not /tmp, which some tests replace), mode
/// 0755 so a non-root probe can read the canary state; removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let p = PathBuf::from(format!("/var/tmp/sandkasten-probe-test-{name}-{}", rand_hex()));
        std::fs::create_dir_all(p.join("content")).expect("create temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn content(&self) -> PathBuf {
        self.0.join("content")
    }
    pub fn state(&self) -> PathBuf {
        self.0.join("canary.json")
    }
    /// A copy of the probe binary in this directory. Restricted runs hide
    /// /tmp, /home and /root (where a checkout may live) or run as nobody
    /// (who cannot enter /root): the copy in /var/tmp is reachable from all.
    ///
    /// The copy is written by `cp`, not by this process: a file this
    /// process held open for writing would be inherited by whatever another
    /// test thread forks meanwhile, until that child's exec, and exec'ing
    /// the copy then could fail with ETXTBSY.
    pub fn probe(&self) -> PathBuf {
        let copy = self.0.join("sandkasten-probe");
        if !copy.exists() {
            run_ok(Command::new("cp").arg(probe()).arg(&copy));
        }
        copy
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command to completion and panics with everything about it if it
/// fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "command failed: {cmd:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `f` on a thread that has unshared its network namespace, with lo up
/// and 192.0.2.1/24 on a dummy interface (or a veth pair where the kernel
/// has no dummy driver). Every process the closure starts inherits it.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) affects only this thread.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            run_ok(Command::new("ip").args(["link", "set", "lo", "up"]));
            let dummy = Command::new("ip")
                .args(["link", "add", "sk-lan", "type", "dummy"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !dummy {
                run_ok(
                    Command::new("ip")
                        .args(["link", "add", "sk-lan", "type", "veth", "peer", "name", "sk-peer"]),
                );
                run_ok(Command::new("ip").args(["link", "set", "sk-peer", "up"]));
            }
            run_ok(Command::new("ip").args(["addr", "add", "192.0.2.1/24", "dev", "sk-lan"]));
            run_ok(Command::new("ip").args(["link", "set", "sk-lan", "up"]));
            f()
        });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A running canary; stopped and reaped on drop.
pub struct Canary {
    child: Child,
    pub state: PathBuf,
}

impl Canary {
    pub fn start(dir: &TempDir) -> Canary {
        let state = dir.state();
        let mut child = Command::new(probe())
            .args(["canary", "--lifetime", "300", "--state"])
            .arg(&state)
            .arg("--content-dir")
            .arg(dir.content())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the canary");
        let start = Instant::now();
        while !state.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("the canary exited before it was ready: {st}");
            }
            assert!(start.elapsed() < Duration::from_secs(15), "the canary was not ready within 15 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Canary { child, state }
    }

    /// What reached the canary, summarized for `run`; removes markers.
    pub fn report(&self, run: &str) -> Report {
        let out = run_ok(
            Command::new(probe())
                .args(["canary-report", "--clean-markers", "--run-id", run, "--state"])
                .arg(&self.state),
        );
        serde_json::from_slice(&out.stdout).expect("canary-report prints a report")
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A private D-Bus daemon on a socket in `dir` (stands in for the system
/// bus, which this machine does not run).
pub struct Bus {
    child: Child,
    pub socket: PathBuf,
}

impl Bus {
    pub fn start(dir: &TempDir) -> Bus {
        let socket = dir.path().join("bus");
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (apt-get install dbus-daemon)");
        let start = Instant::now();
        while !socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(10), "dbus-daemon did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Bus { child, socket }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The probe's standard arguments for a run against `canary`.
pub fn probe_args(dir: &TempDir, run: &str) -> Vec<String> {
    vec![
        dir.probe().display().to_string(),
        "--json".into(),
        "--run-id".into(),
        run.into(),
        "--canary".into(),
        dir.state().display().to_string(),
        "--content-dir".into(),
        dir.content().display().to_string(),
    ]
}

/// Runs a probe command (with `--json` among its arguments) and parses its
/// verdicts.
pub fn verdicts(cmd: &mut Command) -> BTreeMap<String, Verdict> {
    let out = run_ok(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let v: Verdict = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        map.insert(v.id.clone(), v);
    }
    map
}

/// What a test expects of one attempt: the verdict, and for blocked or
/// killed the exact outcome.
pub type Expect = (VerdictKind, Option<&'static str>);

/// Compares `got` with `want` for every id in `want`, and fails with the
/// whole table of differences.
pub fn assert_expected(got: &BTreeMap<String, Verdict>, want: &BTreeMap<&str, Expect>) {
    let mut bad = Vec::new();
    for (id, (kind, outcome)) in want {
        match got.get(*id) {
            None => bad.push(format!("{id}: missing from the probe's output")),
            Some(v) => {
                let outcome_ok = outcome.is_none() || v.outcome.as_deref() == *outcome;
                if v.verdict != *kind || !outcome_ok {
                    bad.push(format!(
                        "{id}: expected {} {}, got {} {} ({})",
                        kind.as_str(),
                        outcome.unwrap_or(""),
                        v.verdict.as_str(),
                        v.outcome.as_deref().unwrap_or(""),
                        v.detail
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} attempt(s) differ from the expected set:\n{}", bad.len(), bad.join("\n"));
}

/// Each of `ids` is `unsupported` because the kernel refuses it to
/// everyone (`kernel-policy`), not for another reason.
pub fn assert_kernel_policy(got: &BTreeMap<String, Verdict>, ids: &[&str]) {
    for id in ids {
        let v = got.get(*id).unwrap_or_else(|| panic!("{id}: missing from the probe's output"));
        assert_eq!(v.reason, Some(Unsupported::KernelPolicy), "{id}: {} ({})", v.verdict.as_str(), v.detail);
    }
}

/// No attempt may fail because the probe itself broke, whatever stopped it.
pub fn assert_no_probe_failures(got: &BTreeMap<String, Verdict>) {
    let broken: Vec<String> = got
        .values()
        .filter(|v| {
            v.verdict == VerdictKind::Error
                && (v.detail.starts_with("probe failure")
                    || v.detail.starts_with("no report")
                    || v.detail.contains("deadline"))
        })
        .map(|v| format!("{}: {}", v.id, v.detail))
        .collect();
    assert!(broken.is_empty(), "the probe itself failed:\n{}", broken.join("\n"));
}

/// A sysctl value, if readable.
pub fn sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Sockets handed to a probe the way systemd hands them over: a TCP
/// listener as fd 3 and a UDP socket as fd 4 (`LISTEN_FDS=2`), with one
/// client already waiting in the listener's backlog for
/// `net.handover-accepted`. Created in the calling thread's network
/// namespace.
pub struct HandedOver {
    pub listener: std::net::TcpListener,
    pub udp: std::net::UdpSocket,
    _client: std::net::TcpStream,
}

impl HandedOver {
    pub fn new() -> HandedOver {
        HandedOver::marked(None)
    }

    /// As [`HandedOver::new`], with `SO_MARK` set on both sockets before the
    /// client dials (what `Mark=` in a `.socket` unit does; needs root).
    pub fn marked(mark: Option<u32>) -> HandedOver {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        if let Some(mark) = mark {
            for fd in [listener.as_raw_fd(), udp.as_raw_fd()] {
                // SAFETY: setsockopt with a live int and its size.
                let r = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_MARK,
                        (&mark as *const u32).cast(),
                        std::mem::size_of::<u32>() as libc::socklen_t,
                    )
                };
                assert_eq!(r, 0, "SO_MARK: {}", std::io::Error::last_os_error());
            }
        }
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("dial the listener");
        HandedOver { listener, udp, _client: client }
    }

    /// Makes `cmd` start with the sockets as fds 3 and 4.
    pub fn pass_to(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fds = [self.listener.as_raw_fd(), self.udp.as_raw_fd()];
        cmd.env("LISTEN_FDS", "2").env("LISTEN_FDNAMES", "tcp:udp");
        // SAFETY: only fcntl and dup2 between fork and exec (both
        // async-signal-safe). The sockets are first copied above fd 100, so
        // that placing one at 3 cannot clobber the other, and dup2 to a new
        // number clears FD_CLOEXEC (dup2 onto itself would not).
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [0; 2];
                for (i, fd) in fds.iter().enumerate() {
                    high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                    if high[i] < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, fd) in high.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// The routes that turn a handed-over *listener* into a client. Some
/// kernels refuse `connect()` to every TCP socket that has been a
/// listener (EINVAL, root included): there these are closed for everyone.
pub const LISTENER_ROUTES: [&str; 3] =
    ["net.handover-unspec", "net.handover-shutdown", "net.handover-fastopen"];

/// Whether this kernel lets a TCP socket that has been a listener connect
/// after `shutdown(SHUT_RD)`, asked of the kernel directly (std and libc,
/// none of the probe's code) in the calling thread's network namespace.
/// Panics when a socket that never listened cannot connect either: then
/// the machine, not the kernel's policy, is the problem.
pub fn former_listener_connects() -> bool {
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};
    let target = TcpListener::bind("127.0.0.1:0").expect("bind the oracle's target");
    let to = target.local_addr().unwrap();
    let former = TcpListener::bind("127.0.0.1:0").expect("bind the oracle's listener");
    // SAFETY: a TcpStream over the listener's fd only to call shutdown(2);
    // ManuallyDrop keeps the fd owned by `former`.
    let as_stream = std::mem::ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(former.as_raw_fd()) });
    as_stream.shutdown(Shutdown::Read).expect("shutdown(SHUT_RD) on a listener");
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: a sockaddr_in passed with its size; the fd is open.
    let r = unsafe {
        libc::connect(
            former.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let e = std::io::Error::last_os_error();
    TcpStream::connect(to).expect("a socket that never listened connects to the oracle's target");
    r == 0 || e.raw_os_error() != Some(libc::EINVAL)
}
