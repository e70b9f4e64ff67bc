//! Network attempts: reach the canary, open raw sockets, talk to the bus.
//!
//! An attempt that reaches a canary counts as escaped only when the canary's
//! greeting (which carries the canary's nonce) comes back: something else
//! listening on the same port inside the sandbox's own namespace cannot pass
//! for the canary. The probe also sends its token, so the canary's report
//! confirms the escape from outside the sandbox.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::canary::{greeting, CanaryState};
use crate::context::Ctx;
use crate::sys::{self, Errno};
use crate::verdict::{Outcome, Unsupported};

pub(crate) const IO_TIMEOUT: Duration = Duration::from_millis(1500);

/// The errno behind an I/O error; std reports its own connect timeout
/// without one.
pub(crate) fn errno_of(e: &io::Error) -> Errno {
    match (e.raw_os_error(), e.kind()) {
        (Some(n), _) => Errno(n),
        (None, io::ErrorKind::TimedOut) | (None, io::ErrorKind::WouldBlock) => Errno(libc::ETIMEDOUT),
        (None, _) => Errno(libc::EIO),
    }
}

/// Reads one line (without the newline) with the stream's timeout.
fn read_line(stream: impl Read) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(stream).take(512).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// After connecting: check the canary's greeting, send our token, read the
/// acknowledgement. Returns the outcome for a stream that did connect.
pub(crate) fn talk_to_canary<S: Read + Write>(mut s: S, c: &CanaryState, token: &str, what: &str) -> Outcome {
    let line = match read_line(&mut s) {
        Ok(l) => l,
        Err(e) => {
            return Outcome::failed(format!("{what}: connected, but no greeting: {}", errno_of(&e)));
        }
    };
    if line != greeting(&c.nonce) {
        return Outcome::failed(format!(
            "{what}: connected to something that is not the canary (greeting {line:?})"
        ));
    }
    let ack = s.write_all(format!("{token}\n").as_bytes()).and_then(|_| read_line(&mut s));
    match ack {
        Ok(a) if a == format!("seen {token}") => {
            Outcome::escaped(format!("{what}: reached the canary, which acknowledged our token"))
        }
        Ok(a) => Outcome::escaped(format!("{what}: reached the canary (greeting matched; odd ack {a:?})")),
        Err(e) => Outcome::escaped(format!(
            "{what}: reached the canary (greeting matched; no ack: {})",
            errno_of(&e)
        )),
    }
}

fn tcp_to_canary(ctx: &Ctx, id: &str, pick: fn(&CanaryState) -> Option<SocketAddr>) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let Some(addr) = pick(c) else {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            "the canary found no address in 192.0.2.0/24 to listen on (the harness adds one on a dummy interface)",
        );
    };
    let what = format!("connect to tcp {addr}");
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            talk_to_canary(s, c, &ctx.token(id), &what)
        }
        Err(e) => Outcome::errno(errno_of(&e), what),
    }
}

/// `net.tcp-loopback`: TCP to the canary on the host's 127.0.0.1. Inside
/// `PrivateNetwork=yes` the loopback is the sandbox's own: ECONNREFUSED.
pub fn tcp_loopback(ctx: &Ctx) -> Outcome {
    tcp_to_canary(ctx, "net.tcp-loopback", |c| Some(c.tcp_loopback))
}

/// `net.tcp-lan`: TCP to the canary on the host's 192.0.2.x address. A
/// private network namespace has no route there: ENETUNREACH.
pub fn tcp_lan(ctx: &Ctx) -> Outcome {
    tcp_to_canary(ctx, "net.tcp-lan", |c| c.tcp_lan)
}

/// `net.udp-send`: a datagram to the UDP canary, which answers every
/// datagram. No answer means the canary saw nothing (the harness confirms
/// with `canary-report`); ECONNREFUSED is the ICMP "port unreachable" of a
/// loopback that has no canary.
pub fn udp_send(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let what = format!("udp to {}", c.udp);
    let sock = match UdpSocket::bind(("0.0.0.0", 0)) {
        Ok(s) => s,
        Err(e) => return Outcome::errno(errno_of(&e), "udp socket"),
    };
    if let Err(e) = sock.connect(c.udp) {
        return Outcome::errno(errno_of(&e), what);
    }
    ask_udp_canary(&sock, c.udp, c, &ctx.token("net.udp-send"), &what)
}

/// Sends `token` to the UDP canary at `to` from `sock`, up to three times,
/// each time waiting 400 ms for the canary's answer (and passing over
/// anything else that arrives). Escaped when the answer comes; `no-reply`
/// when it never does.
pub(crate) fn ask_udp_canary(
    sock: &UdpSocket,
    to: SocketAddr,
    c: &CanaryState,
    token: &str,
    what: &str,
) -> Outcome {
    let wait = Duration::from_millis(400);
    let expect = format!("{} seen {token}", greeting(&c.nonce));
    let _ = sock.set_read_timeout(Some(wait));
    for _ in 0..3 {
        if let Err(e) = sock.send_to(token.as_bytes(), to) {
            return Outcome::errno(errno_of(&e), format!("{what}: send"));
        }
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            match sock.recv(&mut buf) {
                Ok(n) if buf[..n] == *expect.as_bytes() => {
                    return Outcome::escaped(format!("{what}: the canary answered our datagram"));
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Outcome::errno(errno_of(&e), format!("{what}: recv")),
            }
        }
    }
    Outcome::stopped("no-reply", format!("{what}: sent 3 datagrams, the canary never answered"))
}

/// `net.listen-new`: listen on the port the canary probes every 100 ms from
/// the root namespace. Escaped when the canary's connection arrives (and
/// greets with its nonce); `unreachable` when it never does.
pub fn listen_new(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], c.listen_port));
    // Every probe run listens on the canary's one port: when a run in
    // another unit holds it (the harness runs several at once), EADDRINUSE
    // says nothing about this sandbox. Wait for it to let go.
    let started = Instant::now();
    let listener = loop {
        match TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && started.elapsed() < Duration::from_secs(4) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Outcome::errno(errno_of(&e), format!("bind+listen {addr}")),
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        return Outcome::failed(format!("set_nonblocking: {e}"));
    }
    let start = Instant::now();
    let window = Duration::from_millis(3000);
    while start.elapsed() < window {
        match listener.accept() {
            Ok((mut s, peer)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                if read_line(&mut s).ok().as_deref() == Some(greeting(&c.nonce).as_str()) {
                    let _ = s.write_all(format!("{}\n", ctx.token("net.listen-new")).as_bytes());
                    return Outcome::escaped(format!(
                        "the canary connected to our new listener on {addr} from {peer}"
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Outcome::errno(errno_of(&e), "accept"),
        }
    }
    Outcome::stopped(
        "unreachable",
        format!("listened on {addr} for {} ms; the canary never got through", window.as_millis()),
    )
}

/// Creates a socket and closes it; success is the escape.
fn socket_only(domain: i32, ty: i32, proto: i32, what: &str) -> Result<(), Outcome> {
    // SAFETY: socket(2) takes integers only.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(Outcome::errno(Errno::last(), what));
    }
    sys::close(fd);
    Ok(())
}

/// `net.packet`: an AF_PACKET raw socket (sees and forges every frame on
/// the namespace's interfaces). Needs CAP_NET_RAW and the address family.
pub fn packet(ctx: &Ctx) -> Outcome {
    let proto = i32::from((libc::ETH_P_ALL as u16).to_be());
    match socket_only(libc::AF_PACKET, libc::SOCK_RAW, proto, "socket(AF_PACKET, SOCK_RAW)") {
        Ok(()) => Outcome::escaped("socket(AF_PACKET, SOCK_RAW) succeeded"),
        Err(o) => {
            if ctx.host_feature("af_packet") == Some(false) {
                return Outcome::unsupported(Unsupported::Kernel, "the host kernel has no AF_PACKET");
            }
            o
        }
    }
}

/// `net.netlink-route`: RTM_NEWADDR over rtnetlink. The request names an
/// interface index that does not exist, so nothing changes even as root: the
/// kernel checks CAP_NET_ADMIN first (EPERM) and only then looks the
/// interface up (ENODEV). ENODEV or EINVAL therefore mean the permission
/// check passed, which is the escape.
pub fn netlink_route(_ctx: &Ctx) -> Outcome {
    // SAFETY: socket(2) takes integers only.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Outcome::errno(Errno::last(), "socket(AF_NETLINK, NETLINK_ROUTE)");
    }
    let out = netlink_newaddr(fd);
    sys::close(fd);
    out
}

fn netlink_newaddr(fd: i32) -> Outcome {
    const RTM_NEWADDR: u16 = 20;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut msg: Vec<u8> = Vec::new();
    msg.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    msg.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                                // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    msg.extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0]);
    msg.extend_from_slice(&0x7fff_fff0u32.to_ne_bytes()); // no such interface
    for ty in [IFA_LOCAL, IFA_ADDRESS] {
        msg.extend_from_slice(&8u16.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&[127, 0, 0, 2]);
    }
    let len = msg.len() as u32;
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: the buffer and address live for the call.
    let sent = unsafe {
        libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Outcome::errno(Errno::last(), "sendto(rtnetlink, RTM_NEWADDR)");
    }
    let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
    // SAFETY: passes a live timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let mut buf = [0u8; 4096];
    // SAFETY: receives into the live buffer of the given size.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Outcome::failed(format!("no rtnetlink answer: {}", Errno::last()));
    }
    let n = n as usize;
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != libc::NLMSG_ERROR as u16 {
        return Outcome::failed("rtnetlink answered something other than NLMSG_ERROR");
    }
    let err = -i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    match err {
        0 => Outcome::escaped("RTM_NEWADDR was accepted (unexpected: the interface index does not exist)"),
        libc::ENODEV | libc::EINVAL => Outcome::escaped(format!(
            "RTM_NEWADDR passed the CAP_NET_ADMIN check and failed only on the missing interface ({})",
            Errno(err).name()
        )),
        e => Outcome::errno(Errno(e), "RTM_NEWADDR"),
    }
}

/// `net.abstract-unix`: the canary's abstract socket. Abstract names belong
/// to the network namespace, so a private one has no such name.
pub fn abstract_unix(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let what = format!("connect to abstract unix @{}", c.abstract_unix);
    let addr = match std::os::unix::net::SocketAddr::from_abstract_name(c.abstract_unix.as_bytes()) {
        Ok(a) => a,
        Err(e) => return Outcome::failed(format!("bad abstract name: {e}")),
    };
    match UnixStream::connect_addr(&addr) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            talk_to_canary(s, c, &ctx.token("net.abstract-unix"), &what)
        }
        Err(e) => Outcome::errno(errno_of(&e), what),
    }
}

/// `net.dbus`: get onto the system bus and ask systemd for its units.
/// Being admitted (AUTH EXTERNAL, then a `Hello` answered) is the escape: a
/// service on the bus can reach every bus-activated daemon. `ListUnits`'s
/// answer is added as evidence.
pub fn dbus(ctx: &Ctx) -> Outcome {
    let path = &ctx.opts.dbus_socket;
    if let Some(c) = &ctx.canary {
        if c.host.dbus_socket.as_deref() == Some(path.as_path()) && !c.host.dbus_socket_exists {
            return Outcome::unsupported(
                Unsupported::NotApplicable,
                format!("no D-Bus socket at {} on the host", path.display()),
            );
        }
    } else if !path.exists() {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            format!("no D-Bus socket at {} (and no canary to tell whether the host has one)", path.display()),
        );
    }
    let what = format!("connect to {}", path.display());
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => return Outcome::errno(errno_of(&e), what),
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    match dbus_session(&mut s) {
        Ok(evidence) => Outcome::escaped(format!("admitted to the bus at {}: {evidence}", path.display())),
        Err(DbusStop::Refused(why)) => Outcome::stopped("bus-refused", why),
        Err(DbusStop::Io(e)) => Outcome::errno(errno_of(&e), format!("{what}: talking to the bus")),
    }
}

enum DbusStop {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for DbusStop {
    fn from(e: io::Error) -> DbusStop {
        DbusStop::Io(e)
    }
}

fn dbus_session(s: &mut UnixStream) -> Result<String, DbusStop> {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
    let line = read_crlf(s)?;
    if !line.starts_with("OK ") {
        return Err(DbusStop::Refused(format!("authentication refused: {line:?}")));
    }
    s.write_all(b"BEGIN\r\n")?;
    s.write_all(&dbus_call(
        1,
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "Hello",
        "org.freedesktop.DBus",
    ))?;
    let hello = dbus_wait_reply(s, 1)?;
    if hello.0 != 2 {
        return Err(DbusStop::Refused(format!("Hello refused: {}", hello.1)));
    }
    s.write_all(&dbus_call(
        2,
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "ListUnits",
        "org.freedesktop.systemd1",
    ))?;
    let list = match dbus_wait_reply(s, 2) {
        Ok((2, _)) => "ListUnits answered with a unit list".to_owned(),
        Ok((_, err)) => format!("ListUnits answered with error {err}"),
        Err(e) => format!("ListUnits got no answer ({e})"),
    };
    Ok(format!("Hello answered; {list}"))
}

fn read_crlf(s: &mut UnixStream) -> io::Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while out.len() < 512 {
        s.read_exact(&mut b)?;
        if b[0] == b'\n' {
            break;
        }
        out.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
}

/// A METHOD_CALL message without a body (little-endian D-Bus wire format).
fn dbus_call(serial: u32, path: &str, iface: &str, member: &str, dest: &str) -> Vec<u8> {
    let mut m = vec![b'l', 1, 0, 1];
    m.extend_from_slice(&0u32.to_le_bytes()); // body length
    m.extend_from_slice(&serial.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes()); // header field array length, patched
    for (code, sig, val) in [(1u8, b'o', path), (2, b's', iface), (3, b's', member), (6, b's', dest)] {
        while m.len() % 8 != 0 {
            m.push(0);
        }
        m.extend_from_slice(&[code, 1, sig, 0]);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m.extend_from_slice(&(val.len() as u32).to_le_bytes());
        m.extend_from_slice(val.as_bytes());
        m.push(0);
    }
    let fields = (m.len() - 16) as u32;
    m[12..16].copy_from_slice(&fields.to_le_bytes());
    while m.len() % 8 != 0 {
        m.push(0);
    }
    m
}

/// Reads messages until the reply to `serial`; returns its type (2 method
/// return, 3 error) and the error name for errors.
fn dbus_wait_reply(s: &mut UnixStream, serial: u32) -> io::Result<(u8, String)> {
    for _ in 0..32 {
        let mut head = [0u8; 16];
        s.read_exact(&mut head)?;
        let le = head[0] == b'l';
        let u32_at = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let body_len = u32_at(&head[4..8]) as usize;
        let fields_len = u32_at(&head[12..16]) as usize;
        if fields_len + body_len > 1 << 24 {
            return Err(io::Error::other("oversized D-Bus message"));
        }
        let padded = fields_len.div_ceil(8) * 8;
        let mut rest = vec![0u8; padded + body_len];
        s.read_exact(&mut rest)?;
        let (mut reply_serial, mut err_name) = (None, String::new());
        let f = &rest[..fields_len];
        let mut i = 0;
        while i + 4 <= f.len() {
            i = i.div_ceil(8) * 8;
            if i + 4 > f.len() {
                break;
            }
            let code = f[i];
            let sig_len = f[i + 1] as usize;
            let sig = f.get(i + 2).copied().unwrap_or(0);
            i += 2 + sig_len + 1;
            match sig {
                b'u' => {
                    i = i.div_ceil(4) * 4;
                    if i + 4 > f.len() {
                        break;
                    }
                    if code == 5 {
                        reply_serial = Some(u32_at(&f[i..i + 4]));
                    }
                    i += 4;
                }
                b's' | b'o' => {
                    i = i.div_ceil(4) * 4;
                    if i + 4 > f.len() {
                        break;
                    }
                    let n = u32_at(&f[i..i + 4]) as usize;
                    let v = f.get(i + 4..i + 4 + n).unwrap_or_default();
                    if code == 4 {
                        err_name = String::from_utf8_lossy(v).into_owned();
                    }
                    i += 4 + n + 1;
                }
                b'g' => {
                    let n = f.get(i).copied().unwrap_or(0) as usize;
                    i += 1 + n + 1;
                }
                _ => break,
            }
        }
        if reply_serial == Some(serial) {
            return Ok((head[1], err_name));
        }
    }
    Err(io::Error::other("no reply among 32 messages"))
}

/// `net.vsock`: an AF_VSOCK socket (talks to the hypervisor and other VMs).
pub fn vsock(ctx: &Ctx) -> Outcome {
    match socket_only(libc::AF_VSOCK, libc::SOCK_STREAM, 0, "socket(AF_VSOCK, SOCK_STREAM)") {
        Ok(()) => Outcome::escaped("socket(AF_VSOCK, SOCK_STREAM) succeeded"),
        Err(o) => {
            if ctx.host_feature("af_vsock") == Some(false) {
                return Outcome::unsupported(
                    Unsupported::Kernel,
                    "the host kernel has no AF_VSOCK (EAFNOSUPPORT in the root namespaces too)",
                );
            }
            o
        }
    }
}

/// The canary and one of its unix sockets on the file system.
fn canary_unix_path(
    ctx: &Ctx,
    pick: fn(&CanaryState) -> Option<&std::path::PathBuf>,
) -> Result<(&CanaryState, std::path::PathBuf), Outcome> {
    let c = ctx.need_canary()?;
    match pick(c) {
        Some(p) => Ok((c, p.clone())),
        None => Err(Outcome::unsupported(
            Unsupported::NotApplicable,
            "this canary has no unix socket on the file system",
        )),
    }
}

/// `net.unix-path`: connect to the canary's unix stream socket at a path
/// outside /run (where services such as databases keep theirs, open to
/// all). A read-only mount does not stop a unix `connect()`; hiding the
/// path does (ENOENT), and so does a filter without `connect` (EPERM).
pub fn unix_path(ctx: &Ctx) -> Outcome {
    let (c, path) = match canary_unix_path(ctx, |c| c.unix_stream.as_ref()) {
        Ok(found) => found,
        Err(o) => return o,
    };
    let what = format!("connect to unix {}", path.display());
    match UnixStream::connect(&path) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            talk_to_canary(s, c, &ctx.token("net.unix-path"), &what)
        }
        Err(e) => Outcome::errno(errno_of(&e), what),
    }
}

/// `net.unix-dgram`: a datagram to the canary's unix datagram socket at a
/// path outside /run. `sendto` needs no `connect()`, and a service that
/// logs to the journal keeps both `socket(AF_UNIX)` and `sendto`: only
/// hiding the path stops it. The canary's report confirms arrival.
pub fn unix_dgram(ctx: &Ctx) -> Outcome {
    let (_, path) = match canary_unix_path(ctx, |c| c.unix_dgram.as_ref()) {
        Ok(found) => found,
        Err(o) => return o,
    };
    let what = format!("sendto unix {}", path.display());
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return Outcome::errno(errno_of(&e), "socket(AF_UNIX, SOCK_DGRAM)"),
    };
    match sock.send_to(ctx.token("net.unix-dgram").as_bytes(), &path) {
        Ok(_) => Outcome::escaped(format!("{what}: delivered (the canary's report names the token)")),
        Err(e) => Outcome::errno(errno_of(&e), what),
    }
}
