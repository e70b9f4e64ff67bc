//! The canary process: it opens the targets, writes the state file, then
//! polls every target in one loop, records what reaches it, and answers
//! the control socket until it is told to stop.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::host_facts::host_facts;
use super::ids::{parse_cmdline, parse_token};
use super::state::{greeting, CanaryState, Event, HostFacts, Report, SHM_SIZE};
use crate::sys::{self, Errno};

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
