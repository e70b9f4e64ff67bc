//! Test support shared by the servers' integration tests (each crate under
//! services/ runs its own binary from `CARGO_BIN_EXE_*`, with this crate as a
//! dev-dependency) and by the workspace tests beside this file: start a real
//! server binary the way systemd does, watch what it tells systemd, and
//! check the reference units ([`units`]).
//!
//! [`Launch`] passes sockets as fds 3, 4, … with `LISTEN_FDS`,
//! `LISTEN_FDNAMES` and a `LISTEN_PID` that is the server's own pid (set by a
//! `sh -c 'LISTEN_PID=$$ exec …'` shim, as there is no other safe way to know
//! the child's pid before it runs). [`NotifySocket`] is a fake `NOTIFY_SOCKET`
//! that collects `READY=1`, `WATCHDOG=1`, `STOPPING=1`, … A failing test
//! prints the command, exit status and the server's stderr.

pub mod units;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

/// A loopback TCP listener on a free port, as a `.socket` unit would bind it.
pub fn tcp_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A loopback UDP socket on a free port.
pub fn udp_socket() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A fake `NOTIFY_SOCKET`: a unix datagram socket in a temp directory.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Every message received so far, in order.
    pub messages: Vec<String>,
}

impl NotifySocket {
    /// Binds a fresh notify socket.
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path, _dir: dir, messages: Vec::new() }
    }

    /// Waits until a received message contains `needle` (as one of its
    /// `KEY=VALUE` lines or a substring), returning that message.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        if let Some(found) = self.messages.iter().find(|m| m.contains(needle)) {
            return Ok(found.clone());
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no notify message with {needle:?} within {timeout:?}; got {:?}",
                    self.messages
                ));
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.messages.push(message.clone());
                    if message.contains(needle) {
                        return Ok(message);
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("notify socket recv: {e}"),
            }
        }
    }

    /// Waits until `n` received messages contain `needle`.
    pub fn wait_count(&mut self, needle: &str, n: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        while self.count(needle) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} of {n} messages with {needle:?} within {timeout:?}",
                    self.count(needle)
                ));
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(len) => self.messages.push(String::from_utf8_lossy(&buf[..len]).into_owned()),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("notify socket recv: {e}"),
            }
        }
        Ok(())
    }

    /// Counts messages containing `needle` seen so far.
    pub fn count(&self, needle: &str) -> usize {
        self.messages.iter().filter(|m| m.contains(needle)).count()
    }
}

impl Default for NotifySocket {
    fn default() -> Self {
        NotifySocket::new()
    }
}

/// How to start a server.
pub struct Launch {
    bin: PathBuf,
    args: Vec<String>,
    sockets: Vec<(OwnedFd, String)>,
    env: Vec<(String, String)>,
    notify: Option<PathBuf>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    journal_stream: bool,
}

impl Launch {
    /// A launch of the binary at `bin`: in a crate's integration tests,
    /// `env!("CARGO_BIN_EXE_<name>")`, which cargo builds before the tests.
    pub fn new(bin: impl AsRef<Path>) -> Launch {
        Launch {
            bin: bin.as_ref().to_owned(),
            args: Vec::new(),
            sockets: Vec::new(),
            env: Vec::new(),
            notify: None,
            stdin: None,
            stdout: None,
            journal_stream: false,
        }
    }

    /// Sets `JOURNAL_STREAM` to the server's stderr, as systemd does when
    /// stderr goes to the journal, so the server believes it may log there.
    pub fn journal_stream(mut self) -> Launch {
        self.journal_stream = true;
        self
    }

    /// Adds command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Passes a socket as the next fd from 3 on, named `name`.
    pub fn socket(mut self, socket: impl Into<OwnedFd>, name: &str) -> Launch {
        self.sockets.push((socket.into(), name.to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Points `NOTIFY_SOCKET` at `notify`.
    pub fn notify(mut self, notify: &NotifySocket) -> Launch {
        self.notify = Some(notify.path.clone());
        self
    }

    /// Connects the server's stdin and stdout (default: null).
    pub fn stdio(mut self, stdin: Stdio, stdout: Stdio) -> Launch {
        self.stdin = Some(stdin);
        self.stdout = Some(stdout);
        self
    }

    /// Starts the server.
    pub fn spawn(self) -> Running {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("sh");
        // $$ is the shell's pid, and exec keeps it: exactly what LISTEN_PID
        // must hold.
        cmd.arg("-c").arg(r#"[ -n "$LISTEN_FDS" ] && export LISTEN_PID=$$; exec "$0" "$@""#);
        cmd.arg(&self.bin).args(&self.args);
        cmd.env_remove("LISTEN_PID").env_remove("LISTEN_FDS").env_remove("LISTEN_FDNAMES");
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("JOURNAL_STREAM");
        if !self.sockets.is_empty() {
            let names: Vec<&str> = self.sockets.iter().map(|(_, n)| n.as_str()).collect();
            cmd.env("LISTEN_FDS", self.sockets.len().to_string());
            cmd.env("LISTEN_FDNAMES", names.join(":"));
        }
        if let Some(path) = &self.notify {
            cmd.env("NOTIFY_SOCKET", path);
        }
        if self.journal_stream {
            let stat = rustix::fs::stat(log.path()).unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino));
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mappings = self
            .sockets
            .into_iter()
            .enumerate()
            .map(|(i, (fd, _))| FdMapping { parent_fd: fd, child_fd: 3 + i as i32 })
            .collect();
        cmd.fd_mappings(mappings).expect("fd mappings collide");
        cmd.stdin(self.stdin.unwrap_or_else(Stdio::null));
        cmd.stdout(self.stdout.unwrap_or_else(Stdio::null));
        cmd.stderr(log.reopen().unwrap());
        let description = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("failed to start {description}: {e}"));
        Running { child, log, description, status: None }
    }
}

/// A started server; killed on drop if still running.
pub struct Running {
    /// The process.
    pub child: Child,
    log: tempfile::NamedTempFile,
    description: String,
    status: Option<ExitStatus>,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as `systemctl stop` does.
    pub fn sigterm(&self) {
        self.signal(rustix::process::Signal::TERM);
    }

    /// Sends a signal.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid is positive");
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits for exit, failing the test after `timeout` with the stderr.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait(timeout) {
            Some(status) => status,
            None => panic!("server did not exit within {timeout:?}\n{}", self.report()),
        }
    }

    /// Waits for exit up to `timeout`; `None` if it is still running.
    pub fn try_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whatever the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The command, status and stderr, for assertion messages.
    pub fn report(&self) -> String {
        format!("command: {}\nstatus: {:?}\nstderr:\n{}", self.description, self.status, self.stderr())
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Connects to `addr` with 5 s read and write timeouts, so a broken server
/// fails a test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Waits for the server to close a connection on which the client sends
/// nothing, and checks it did so after a 1 s `--read-timeout` (between 0.9 s
/// and 4 s: a server that never times out fails, and so does one that
/// closes at once).
pub fn assert_silent_connection_closed(addr: SocketAddr, server: &Running) {
    let mut stream = connect(addr);
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut stream, &mut buf);
    let waited = started.elapsed();
    assert!(matches!(read, Ok(0)), "expected EOF, got {read:?} after {waited:?}\n{}", server.report());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}, expected about 1 s\n{}",
        server.report()
    );
}

/// A file in a fresh temp dir, for content trees.
pub fn write_file(root: &Path, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}
