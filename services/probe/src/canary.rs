//! The canary: the other side of every attempt that aims outside the
//! sandbox.
//!
//! Started by the harness in the root namespaces before the probe, it opens
//! the targets (TCP on 127.0.0.1 and on a 192.0.2.0/24 address, UDP, an
//! abstract unix socket, a SysV shared memory segment, a POSIX message
//! queue, a process to signal and trace), records the host facts the probe
//! needs to tell "blocked" from "unsupported", and writes both into the
//! state file. Then it records everything that reaches it. The harness asks
//! for that record over a control socket (`canary-report`), so an escape is
//! confirmed from outside, not only by the probe's own account.
//!
//! The canary is single-threaded: one poll loop, every socket non-blocking,
//! and before answering a report it drains everything already queued, so a
//! probe that has finished is fully accounted for.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::MARKER_PREFIX;
use crate::sys::{self, syscall6, ChildEnd, Errno};
use crate::syscalls::{try_abi, Abi};

/// Size of the canary's SysV shared memory segment.
pub const SHM_SIZE: usize = 4096;

/// The first line the canary sends on every stream, and the prefix of its
/// UDP answers. The nonce is random per canary, so a listener that is not
/// the canary cannot produce it by accident.
pub fn greeting(nonce: &str) -> String {
    format!("sandkasten-canary {nonce}")
}

/// What the canary found on the host before the probe ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// The canary's uid.
    pub uid: u32,
    /// Namespace inode numbers (`net`, `pid`, `ipc`, `uts`, `mnt`, `user`,
    /// `cgroup`): the probe compares its own to see what is private.
    pub namespaces: BTreeMap<String, u64>,
    /// (device, inode) of the directories the file-system attempts write to
    /// or list, keyed by path (`content` for the content directory). A
    /// missing key means the host has no such directory.
    pub dirs: BTreeMap<String, (u64, u64)>,
    /// The canary's capability bounding set: what any unsandboxed root
    /// process here can have at most.
    pub cap_bnd: u64,
    /// Kernel features: system calls that do not return ENOSYS, address
    /// families, ABIs (`x32`, `ia32`), devices (`dev_mem`, `dev_port`).
    pub features: BTreeMap<String, bool>,
    /// The served content directory the canary checked.
    pub content_dir: PathBuf,
    /// The D-Bus socket path the canary checked.
    pub dbus_socket: Option<PathBuf>,
    /// Whether that socket exists on the host.
    pub dbus_socket_exists: bool,
    /// Entries in /home plus entries in /root.
    pub home_entries: usize,
    /// Disk block devices (names under /sys/block).
    pub disks: Vec<String>,
}

/// The state file: targets for the probe, facts, and the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryState {
    /// Format version.
    pub version: u32,
    /// The canary's pid.
    pub pid: i32,
    /// Random per canary; proves a peer is this canary.
    pub nonce: String,
    /// TCP listener on 127.0.0.1.
    pub tcp_loopback: SocketAddr,
    /// TCP listener on a 192.0.2.0/24 address, when the host has one.
    pub tcp_lan: Option<SocketAddr>,
    /// UDP socket on 127.0.0.1; answers every datagram.
    pub udp: SocketAddr,
    /// Abstract unix socket name (without the leading NUL).
    pub abstract_unix: String,
    /// Port on 127.0.0.1 the canary keeps trying to connect to, for
    /// `net.listen-new`.
    pub listen_port: u16,
    /// A unix stream socket on the file system, outside /run (mode 0666).
    #[serde(default)]
    pub unix_stream: Option<PathBuf>,
    /// A unix datagram socket beside it (mode 0666).
    #[serde(default)]
    pub unix_dgram: Option<PathBuf>,
    /// Key of a mode-0666 SysV shared memory segment.
    pub sysv_shm_key: i32,
    /// Name of a mode-0666 POSIX message queue.
    pub mqueue: String,
    /// A process that records signals and tracers and otherwise sleeps.
    pub target_pid: i32,
    /// Its start time (see [`sys::proc_starttime`]).
    pub target_starttime: u64,
    /// Where `canary-report` asks (mode 0600).
    pub control_socket: PathBuf,
    /// What the canary learned about the host.
    pub host: HostFacts,
}

impl CanaryState {
    /// Reads a state file.
    pub fn load(path: &Path) -> Result<CanaryState, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))
    }
}

/// Something that reached the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Which target (`tcp-loopback`, `tcp-lan`, `udp`, `abstract-unix`,
    /// `listen-new`, `sysv-shm`, `mqueue`, `signal`, `ptrace`).
    pub target: String,
    /// Who: a socket address, or a pid/uid.
    pub peer: String,
    /// The probe's token, when one came with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Run id from the token (or from the sender's command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Attempt id from the token (or from the sender's command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Milliseconds since the canary started.
    pub at_ms: u64,
}

/// A marker file an attempt left where the host can see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Full path.
    pub path: PathBuf,
    /// Run id from the name.
    pub run_id: String,
    /// Attempt id from the name.
    pub attempt: String,
    /// Whether `--clean-markers` removed it.
    pub removed: bool,
}

/// The answer to `canary-report`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The canary's pid.
    pub canary_pid: i32,
    /// Everything that reached the canary, in order.
    pub events: Vec<Event>,
    /// Marker files found in the host's directories.
    #[serde(default)]
    pub markers: Vec<Marker>,
    /// Attempt id → run ids seen escaping (from events and markers).
    #[serde(default)]
    pub seen: BTreeMap<String, Vec<String>>,
}

impl Report {
    /// Fills `seen` from events and markers, optionally for one run only.
    pub fn summarize(&mut self, run_id: Option<&str>) {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let pairs = self
            .events
            .iter()
            .filter_map(|e| Some((e.attempt.clone()?, e.run_id.clone().unwrap_or_else(|| "?".into()))))
            .chain(self.markers.iter().map(|m| (m.attempt.clone(), m.run_id.clone())));
        for (attempt, run) in pairs {
            if run_id.is_some_and(|r| r != run) {
                continue;
            }
            let runs = seen.entry(attempt).or_default();
            if !runs.contains(&run) {
                runs.push(run);
            }
        }
        self.seen = seen;
    }
}

/// Parses "sandkasten-probe RUN ATTEMPT".
fn parse_token(t: &str) -> (Option<String>, Option<String>) {
    let mut parts = t.split_whitespace();
    if parts.next() != Some("sandkasten-probe") {
        return (None, None);
    }
    (parts.next().map(str::to_owned), parts.next().map(str::to_owned))
}

/// Reads run id and attempt from the command line of the process that
/// signalled or traced the target: all those two targets learn of the
/// sender is its pid (every other target receives a token naming both).
///
/// The runner forks each attempt without exec, so an attempt's process has
/// the runner's command line. The run id is its `--run-id` (the harness
/// and the tests always give one; a run with a random id goes unnamed
/// here, though its tokens name it). The attempt is `None` there, and the
/// caller names it by target: only `priv.signal` signals the target and
/// only `priv.ptrace` traces it. A `run-one ID` process (made by hand)
/// names its attempt too.
fn parse_cmdline(pid: i32) -> (Option<String>, Option<String>) {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    ids_from_args(&args)
}

/// Run id and attempt from a probe's arguments (see [`parse_cmdline`]).
fn ids_from_args(args: &[String]) -> (Option<String>, Option<String>) {
    let attempt = args.iter().position(|a| a == "run-one").and_then(|i| args.get(i + 1)).cloned();
    let run = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--run-id") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_owned),
        None => None,
    });
    (run, attempt)
}

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
        disks: crate::dev::disks_in_sysfs(),
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

/// Options of `sandkasten-probe canary`.
#[derive(Debug, Clone)]
pub struct CanaryConfig {
    /// Where to write the state file (the control socket is `FILE.sock`).
    pub state: PathBuf,
    /// The 192.0.2.0/24 address to listen on (else the first one found).
    pub lan_addr: Option<Ipv4Addr>,
    /// Content directory to record for `fs.write-content`.
    pub content_dir: PathBuf,
    /// D-Bus socket to record for `net.dbus`.
    pub dbus_socket: PathBuf,
    /// Exit after this long even if nobody stops the canary.
    pub lifetime: Duration,
    /// Where the unix sockets on the file system go (else beside `state`).
    pub unix_dir: Option<PathBuf>,
}

/// The first local IPv4 address in 192.0.2.0/24.
fn find_lan_addr() -> Option<Ipv4Addr> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } < 0 {
        return None;
    }
    let mut found = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur is an element of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of its family.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if ip.octets()[..3] == [192, 0, 2] {
                    found = Some(ip);
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    found
}

/// Forks the target process: it records SIGTERM senders on `pipe` and
/// otherwise sleeps; it dies with the canary.
fn spawn_target() -> io::Result<(i32, std::fs::File)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two-element array.
    sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })
        .map_err(|e| io::Error::from_raw_os_error(e.0))?;
    // SAFETY: the canary is single-threaded here.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: the child only blocks signals, waits and writes to its pipe.
        unsafe {
            libc::close(fds[0]);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::prctl(libc::PR_SET_NAME, c"sk-canary-tgt".as_ptr());
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            loop {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                if libc::sigwaitinfo(&set, &mut info) == libc::SIGTERM {
                    let line = format!("{} {}\n", info.si_pid(), info.si_uid());
                    libc::write(fds[1], line.as_ptr().cast(), line.len());
                }
            }
        }
    }
    sys::close(fds[1]);
    // SAFETY: fds[0] is the read end we own from here on.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    set_nonblocking(fds[0]);
    Ok((pid, file))
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

struct Canary {
    start: Instant,
    state: CanaryState,
    tcp: TcpListener,
    lan: Option<TcpListener>,
    udp: UdpSocket,
    unix: UnixListener,
    unix_path: UnixListener,
    unix_dgram: UnixDatagram,
    control: UnixListener,
    shm_id: i32,
    shm: *mut u8,
    mq: libc::mqd_t,
    mq_name: CString,
    target_pipe: std::fs::File,
    target_buf: String,
    last_tracer: i32,
    last_listen_try: Instant,
    events: Vec<Event>,
}

/// Runs the canary until `stop` on the control socket, SIGTERM/SIGINT, or
/// the end of its lifetime. Writes the state file once every target is open.
pub fn run(cfg: &CanaryConfig) -> io::Result<()> {
    let (target_pid, target_pipe) = spawn_target()?;
    let host = host_facts(&cfg.content_dir, &cfg.dbus_socket);
    let mut c = match open_targets(cfg, target_pid, target_pipe, host) {
        Ok(c) => c,
        Err(e) => {
            // SAFETY: kills our own child.
            unsafe { libc::kill(target_pid, libc::SIGKILL) };
            return Err(e);
        }
    };
    let sigfd = block_term_signals()?;
    let result = write_state(&cfg.state, &c.state).and_then(|()| c.serve(sigfd, cfg.lifetime));
    c.cleanup(&cfg.state);
    sys::close(sigfd);
    result
}

fn block_term_signals() -> io::Result<i32> {
    // SAFETY: builds a signal set and opens a signalfd for it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

fn write_state(path: &Path, state: &CanaryState) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(state).map_err(io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

fn open_targets(
    cfg: &CanaryConfig,
    target_pid: i32,
    target_pipe: std::fs::File,
    host: HostFacts,
) -> io::Result<Canary> {
    let nonce = sys::random_hex(16);
    let tcp = TcpListener::bind(("127.0.0.1", 0))?;
    let lan_ip = cfg.lan_addr.or_else(find_lan_addr);
    let lan = match lan_ip {
        Some(ip) => Some(TcpListener::bind((ip, 0))?),
        None => None,
    };
    let udp = UdpSocket::bind(("127.0.0.1", 0))?;
    let abstract_name = format!("sandkasten-canary-{}", sys::random_hex(8));
    let unix = UnixListener::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(
        abstract_name.as_bytes(),
    )?)?;
    let listen_port = {
        let l = TcpListener::bind(("127.0.0.1", 0))?;
        l.local_addr()?.port()
    };
    // Unix sockets on the file system, outside /run, where many services
    // keep theirs (/var/lib/<service>/…), open to everyone (mode 0666).
    let unix_base = match &cfg.unix_dir {
        Some(dir) => dir.join("canary"),
        None => cfg.state.clone(),
    };
    let unix_stream_path = PathBuf::from(format!("{}.stream.sock", unix_base.display()));
    let unix_dgram_path = PathBuf::from(format!("{}.dgram.sock", unix_base.display()));
    let _ = std::fs::remove_file(&unix_stream_path);
    let _ = std::fs::remove_file(&unix_dgram_path);
    let unix_path = UnixListener::bind(&unix_stream_path)?;
    let unix_dgram = UnixDatagram::bind(&unix_dgram_path)?;
    for p in [&unix_stream_path, &unix_dgram_path] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666))?;
    }
    let control_path = PathBuf::from(format!("{}.sock", cfg.state.display()));
    let _ = std::fs::remove_file(&control_path);
    let control = UnixListener::bind(&control_path)?;
    std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600))?;
    for fd in [
        tcp.as_raw_fd(),
        udp.as_raw_fd(),
        unix.as_raw_fd(),
        unix_path.as_raw_fd(),
        unix_dgram.as_raw_fd(),
        control.as_raw_fd(),
    ] {
        set_nonblocking(fd);
    }
    if let Some(l) = &lan {
        set_nonblocking(l.as_raw_fd());
    }

    let (shm_key, shm_id) = loop {
        let key = (u32::from_str_radix(&sys::random_hex(4), 16).unwrap_or(0x5a4b_0001) & 0x7fff_ffff) as i32;
        if key == 0 {
            continue;
        }
        // SAFETY: integers only.
        let id = unsafe { libc::shmget(key, SHM_SIZE, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
        if id >= 0 {
            break (key, id);
        }
        if Errno::last().0 != libc::EEXIST {
            return Err(io::Error::last_os_error());
        }
    };
    // SAFETY: attaches our own segment.
    let shm = unsafe { libc::shmat(shm_id, std::ptr::null(), 0) };
    if shm as isize == -1 {
        return Err(io::Error::last_os_error());
    }

    let mq_name = format!("/sandkasten-canary-{}", sys::random_hex(8));
    let mq_c = CString::new(mq_name.clone()).map_err(io::Error::other)?;
    // SAFETY: a zeroed mq_attr with the sizes we want.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_maxmsg = 8;
    attr.mq_msgsize = 256;
    // SAFETY: the mode must not be narrowed by our umask; restored at once.
    let mq = unsafe {
        let old = libc::umask(0);
        let q = libc::mq_open(
            mq_c.as_ptr(),
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NONBLOCK | libc::O_CLOEXEC,
            0o666 as libc::mode_t,
            &attr as *const libc::mq_attr,
        );
        libc::umask(old);
        q
    };
    if mq < 0 {
        return Err(io::Error::last_os_error());
    }

    let state = CanaryState {
        version: 1,
        pid: std::process::id() as i32,
        nonce,
        tcp_loopback: tcp.local_addr()?,
        tcp_lan: match &lan {
            Some(l) => Some(l.local_addr()?),
            None => None,
        },
        udp: udp.local_addr()?,
        abstract_unix: abstract_name,
        unix_stream: Some(unix_stream_path),
        unix_dgram: Some(unix_dgram_path),
        listen_port,
        sysv_shm_key: shm_key,
        mqueue: mq_name,
        target_pid,
        target_starttime: sys::proc_starttime(target_pid).unwrap_or(0),
        control_socket: control_path,
        host,
    };
    Ok(Canary {
        start: Instant::now(),
        state,
        tcp,
        lan,
        udp,
        unix,
        unix_path,
        unix_dgram,
        control,
        shm_id,
        shm: shm.cast(),
        mq,
        mq_name: mq_c,
        target_pipe,
        target_buf: String::new(),
        last_tracer: 0,
        last_listen_try: Instant::now(),
        events: Vec::new(),
    })
}

impl Canary {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn record(
        &mut self,
        target: &str,
        peer: String,
        token: Option<String>,
        ids: (Option<String>, Option<String>),
    ) {
        let at_ms = self.ms();
        self.events.push(Event { target: target.into(), peer, token, run_id: ids.0, attempt: ids.1, at_ms });
    }

    fn serve(&mut self, sigfd: i32, lifetime: Duration) -> io::Result<()> {
        let mut fds: Vec<i32> = vec![
            self.tcp.as_raw_fd(),
            self.udp.as_raw_fd(),
            self.unix.as_raw_fd(),
            self.unix_path.as_raw_fd(),
            self.unix_dgram.as_raw_fd(),
            self.control.as_raw_fd(),
            self.mq,
            self.target_pipe.as_raw_fd(),
            sigfd,
        ];
        if let Some(l) = &self.lan {
            fds.push(l.as_raw_fd());
        }
        loop {
            let mut pfds: Vec<libc::pollfd> =
                fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
            // SAFETY: polls the live array.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
            self.drain();
            if self.serve_control()? {
                return Ok(());
            }
            let mut si = [0u8; 128];
            // SAFETY: reads one signalfd_siginfo (128 bytes) if pending.
            if unsafe { libc::read(sigfd, si.as_mut_ptr().cast(), si.len()) } > 0 {
                return Ok(());
            }
            if self.start.elapsed() > lifetime {
                return Ok(());
            }
        }
    }

    /// Takes in everything already queued at every target.
    fn drain(&mut self) {
        self.drain_streams();
        self.drain_udp();
        self.drain_mqueue();
        self.check_shm();
        self.check_target();
        if self.last_listen_try.elapsed() >= Duration::from_millis(100) {
            self.last_listen_try = Instant::now();
            self.try_listen_new();
        }
    }

    fn greet_stream<S: Read + Write>(&mut self, mut s: S, target: &str, peer: String) {
        let _ = s.write_all(format!("{}\n", greeting(&self.state.nonce)).as_bytes());
        let mut line = String::new();
        let _ = BufReader::new(&mut s).take(512).read_line(&mut line);
        let token = line.trim_end().to_owned();
        if token.starts_with("sandkasten-probe ") {
            let _ = s.write_all(format!("seen {token}\n").as_bytes());
            let ids = parse_token(&token);
            self.record(target, peer, Some(token), ids);
        } else {
            self.record(target, peer, None, (None, None));
        }
    }

    fn drain_streams(&mut self) {
        while let Ok((s, peer)) = self.tcp.accept() {
            self.greet_stream(blocking_with_deadlines(s), "tcp-loopback", peer.to_string());
        }
        while let Some(Ok((s, peer))) = self.lan.as_ref().map(|l| l.accept()) {
            self.greet_stream(blocking_with_deadlines(s), "tcp-lan", peer.to_string());
        }
        while let Ok((s, _)) = self.unix.accept() {
            let peer = peer_cred(s.as_raw_fd());
            self.greet_stream(blocking_with_deadlines(s), "abstract-unix", peer);
        }
        while let Ok((s, _)) = self.unix_path.accept() {
            let peer = peer_cred(s.as_raw_fd());
            self.greet_stream(blocking_with_deadlines(s), "unix-path", peer);
        }
        let mut buf = [0u8; 512];
        while let Ok(n) = self.unix_dgram.recv(&mut buf) {
            let token = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
            let ids = parse_token(&token);
            self.record("unix-dgram", "unix datagram".into(), Some(token), ids);
        }
    }

    fn drain_udp(&mut self) {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = self.udp.recv_from(&mut buf) {
            let token = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
            let reply = format!("{} seen {token}", greeting(&self.state.nonce));
            let _ = self.udp.send_to(reply.as_bytes(), peer);
            let ids = parse_token(&token);
            self.record("udp", peer.to_string(), Some(token), ids);
        }
    }

    fn drain_mqueue(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: receives into the live 256-byte buffer (= mq_msgsize).
            let n = unsafe {
                libc::mq_receive(self.mq, buf.as_mut_ptr().cast(), buf.len(), std::ptr::null_mut())
            };
            if n < 0 {
                break;
            }
            let token = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            let ids = parse_token(&token);
            self.record("mqueue", "(message queue)".into(), Some(token), ids);
        }
    }

    fn check_shm(&mut self) {
        // SAFETY: the segment is SHM_SIZE bytes and stays attached.
        let seg = unsafe { std::slice::from_raw_parts_mut(self.shm, SHM_SIZE) };
        if seg[0] == 0 {
            return;
        }
        let end = seg.iter().position(|&b| b == 0).unwrap_or(SHM_SIZE);
        let token = String::from_utf8_lossy(&seg[..end]).into_owned();
        seg.fill(0);
        let ids = parse_token(&token);
        self.record("sysv-shm", "(shared memory)".into(), Some(token), ids);
    }

    fn check_target(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = self.target_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.target_buf.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        while let Some(i) = self.target_buf.find('\n') {
            let line: String = self.target_buf.drain(..=i).collect();
            let mut it = line.split_whitespace();
            let pid: i32 = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let uid = it.next().unwrap_or("?").to_owned();
            let (run, attempt) = parse_cmdline(pid);
            let attempt = attempt.or(Some("priv.signal".into()));
            self.record("signal", format!("SIGTERM from pid {pid} uid {uid}"), None, (run, attempt));
        }
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.state.target_pid)).unwrap_or_default();
        let tracer: i32 = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if tracer != 0 && tracer != self.last_tracer {
            let (run, attempt) = parse_cmdline(tracer);
            let attempt = attempt.or(Some("priv.ptrace".into()));
            self.record("ptrace", format!("traced by pid {tracer}"), None, (run, attempt));
        }
        self.last_tracer = tracer;
    }

    fn try_listen_new(&mut self) {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.state.listen_port);
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return };
        let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
        let _ = s.write_all(format!("{}\n", greeting(&self.state.nonce)).as_bytes());
        let mut line = String::new();
        let _ = BufReader::new(&mut s).take(512).read_line(&mut line);
        let token = line.trim_end().to_owned();
        let ids = parse_token(&token);
        let token = (!token.is_empty()).then_some(token);
        self.record("listen-new", addr.to_string(), token, ids);
    }

    /// Answers control connections; true when asked to stop.
    fn serve_control(&mut self) -> io::Result<bool> {
        let mut stop = false;
        while let Ok((mut s, _)) = self.control.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
            let mut line = String::new();
            let _ = BufReader::new(&mut s).take(64).read_line(&mut line);
            let cmd = line.trim();
            if cmd != "report" && cmd != "stop" {
                let _ = s.write_all(b"{\"error\":\"unknown command\"}\n");
                continue;
            }
            // Everything a finished probe sent is queued by now: take it in
            // before answering.
            self.drain();
            let report = Report {
                canary_pid: self.state.pid,
                events: self.events.clone(),
                markers: Vec::new(),
                seen: BTreeMap::new(),
            };
            let text = serde_json::to_string(&report).map_err(io::Error::other)?;
            let _ = s.write_all(text.as_bytes());
            let _ = s.write_all(b"\n");
            stop |= cmd == "stop";
        }
        Ok(stop)
    }

    fn cleanup(&mut self, state_path: &Path) {
        // SAFETY: detaches and removes our own segment and queue, kills and
        // reaps our own child.
        unsafe {
            libc::shmdt(self.shm.cast());
            libc::shmctl(self.shm_id, libc::IPC_RMID, std::ptr::null_mut());
            libc::mq_close(self.mq);
            libc::mq_unlink(self.mq_name.as_ptr());
            libc::kill(self.state.target_pid, libc::SIGKILL);
            let mut st = 0;
            libc::waitpid(self.state.target_pid, &mut st, 0);
        }
        let _ = std::fs::remove_file(&self.state.control_socket);
        for p in [&self.state.unix_stream, &self.state.unix_dgram].into_iter().flatten() {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(state_path);
    }
}

/// An accepted stream (TCP or unix) made blocking, with a 1 s deadline on
/// each read and write, so that a silent peer cannot hold the canary up.
fn blocking_with_deadlines<S: std::os::fd::AsFd>(s: S) -> S {
    let sock = socket2::SockRef::from(&s);
    let deadline = Some(Duration::from_millis(1000));
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(deadline);
    let _ = sock.set_write_timeout(deadline);
    s
}

/// "pid N uid N" of a unix socket peer.
fn peer_cred(fd: i32) -> String {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a live ucred of the given size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return "(unknown peer)".into();
    }
    format!("pid {} uid {}", cred.pid, cred.uid)
}

/// Asks the canary named by a state file for its report (`stop` also ends
/// it). The canary answers after taking in everything queued.
pub fn query(state: &CanaryState, stop: bool) -> io::Result<Report> {
    let mut s = UnixStream::connect(&state.control_socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(if stop { b"stop\n" } else { b"report\n" })?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    serde_json::from_str(text.trim()).map_err(io::Error::other)
}

/// The host directories the file-system attempts leave markers in (besides
/// the content directory); the canary records each one's identity, so the
/// probe can tell the host's directory from a sandbox's private copy.
const MARKER_DIRS: [&str; 5] = ["/tmp", "/dev/shm", "/etc", "/usr/lib", "/var/lib"];

/// Finds marker files in the host's directories; removes them if `clean`
/// (only those of `run_id`, when given).
pub fn scan_markers(content_dir: &Path, clean: bool, run_id: Option<&str>) -> Vec<Marker> {
    let mut out = Vec::new();
    let dirs = MARKER_DIRS.iter().map(Path::new).chain([content_dir]);
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(MARKER_PREFIX) else { continue };
            let Some((run, attempt)) = rest.split_once('.') else { continue };
            // Scratch files of other attempts carry a suffix after the id;
            // only the file-system attempts' markers end with the id.
            if !attempt.starts_with("fs.") || attempt.matches('.').count() != 1 {
                continue;
            }
            let path = e.path();
            // Only this run's markers: runs side by side must not clean up
            // each other's evidence before it is reported.
            let ours = run_id.map_or(true, |r| r == run);
            let removed = clean && ours && std::fs::remove_file(&path).is_ok();
            out.push(Marker { path, run_id: run.into(), attempt: attempt.into(), removed });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cmdline: &str) -> (Option<String>, Option<String>) {
        let args: Vec<String> = cmdline.split(' ').map(str::to_owned).collect();
        ids_from_args(&args)
    }

    /// A forked attempt has the runner's command line: the run id, in
    /// either spelling, and no attempt (the caller names it by target).
    #[test]
    fn a_runner_command_line_names_the_run() {
        let run = Some("unit-x".to_owned());
        assert_eq!(
            ids("/usr/libexec/sandkasten/sandkasten-probe --json --run-id unit-x --only priv"),
            (run.clone(), None)
        );
        assert_eq!(ids("sandkasten-probe --run-id=unit-x --json"), (run, None));
        assert_eq!(ids("sandkasten-probe --json"), (None, None));
    }

    #[test]
    fn a_run_one_command_line_names_the_run_and_the_attempt() {
        assert_eq!(
            ids("sandkasten-probe run-one priv.signal --run-id r1 --canary /etc/c.json"),
            (Some("r1".to_owned()), Some("priv.signal".to_owned()))
        );
    }
}
