//! Goal: reach the host's network through the sockets systemd hands over.
//!
//! A socket keeps the network namespace it was created in. The listeners
//! (and, with `Accept=yes`, the connection) that PID 1 passes to a service
//! live in the host's namespace, so `PrivateNetwork=`, `RestrictAddressFamilies=`
//! and the service's `IPAddressDeny=` do not apply to them. A compromised
//! server that turns one of them into a client reaches whatever the host
//! reaches. The routes:
//!
//! - [`accepted`]: disconnect an accepted connection (`connect(AF_UNSPEC)`)
//!   and connect it anew;
//! - [`udp`]: `sendto` from the handed-over datagram socket;
//! - [`listener_shutdown`], [`listener_unspec`]: put the listener back to
//!   CLOSE (`shutdown(SHUT_RD)` or `connect(AF_UNSPEC)`), then `connect()`;
//! - [`listener_fastopen`]: the same, but connect through
//!   `sendto(MSG_FASTOPEN)`, for a filter that refuses `connect`.
//!
//! The target is the canary on the host's 127.0.0.1. A route that got a
//! listener out of LISTEN puts it back (`listen()`) where it can, since the
//! same socket is PID 1's; the harness restarts the `.socket` units after a
//! probe run all the same.
//!
//! Some kernels refuse `connect()` (EINVAL) to every TCP socket that has
//! been a listener, root without a sandbox included (seen on a Linux 6.18.44
//! build; 6.1 and 6.12 allow it). There the three listener routes are closed
//! by the kernel, not by the sandbox: a route that meets EINVAL tries the same
//! steps on a fresh listener of its own ([`kernel_refuses_former_listeners`])
//! and says `unsupported: kernel-policy` only when that is refused too while a
//! socket that never listened connects. The accepted connection never
//! listened, so [`accepted`] still turns it into a client on such kernels
//! (tried there and refused as well: an autobound listener, `SO_REUSEPORT`,
//! `TCP_FASTOPEN_CONNECT`, an IPv6 listener to a mapped address, and root's
//! `TCP_REPAIR`).

use std::io;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, SocketAddrV6, TcpStream, UdpSocket};
use std::os::fd::{BorrowedFd, FromRawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::canary::CanaryState;
use crate::context::Ctx;
use crate::net::{ask_udp_canary, errno_of, talk_to_canary, IO_TIMEOUT};
use crate::sys::Errno;
use crate::verdict::{Outcome, Unsupported};

/// One inherited IP socket.
#[derive(Debug, Clone, Copy)]
struct Inherited {
    fd: i32,
    borrowed: BorrowedFd<'static>,
    domain: Domain,
    stream: bool,
    listening: bool,
    connected: bool,
}

impl Inherited {
    fn sock(&self) -> SockRef<'_> {
        SockRef::from(&self.borrowed)
    }
}

/// The IP sockets among the inherited fds (systemd passes them from fd 3).
fn inherited() -> Vec<Inherited> {
    let mut out = Vec::new();
    for fd in 3..64 {
        // SAFETY: F_GETFD only asks whether the fd is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            continue;
        }
        // SAFETY: the fd was inherited open; nothing in the attempt closes
        // it, so borrowing it for the process's life is sound.
        let b: BorrowedFd<'static> = unsafe { BorrowedFd::borrow_raw(fd) };
        let s = SockRef::from(&b);
        let (Ok(domain), Ok(ty)) = (s.domain(), s.r#type()) else { continue };
        if domain != Domain::IPV4 && domain != Domain::IPV6 {
            continue;
        }
        let stream = ty == Type::STREAM;
        out.push(Inherited {
            fd,
            borrowed: b,
            domain,
            stream,
            listening: stream && s.is_listener().unwrap_or(false),
            connected: s.peer_addr().is_ok(),
        });
    }
    out
}

/// The canary's loopback address in the socket's own family (an IPv6
/// socket, as `ListenStream=80` makes, reaches IPv4 through a mapped address).
fn target_for(domain: Domain, addr: SocketAddr) -> SocketAddr {
    match (domain, addr) {
        (d, SocketAddr::V4(v4)) if d == Domain::IPV6 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => addr,
    }
}

/// `connect(AF_UNSPEC)`: dissolves a connection, or stops a listener.
fn connect_unspec(s: &SockRef<'_>) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, passed with its size.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: the socket is open; sa lives for the call.
    let r = unsafe {
        libc::connect(s.as_raw_fd(), &sa, std::mem::size_of::<libc::sockaddr>() as libc::socklen_t)
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Talks to the canary over `fd` (which is connected now) without taking
/// ownership of it.
fn talk(fd: i32, c: &CanaryState, token: &str, what: &str) -> Outcome {
    // SAFETY: the fd is open; ManuallyDrop keeps it from being closed here.
    let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    talk_to_canary(&*stream, c, token, what)
}

/// Connects `s` to the canary with `connect()`, or, when that is refused,
/// with `sendto(MSG_FASTOPEN)`; Ok once connected.
fn reconnect(s: &SockRef<'_>, to: &SockAddr, token: &str) -> Result<&'static str, Errno> {
    match s.connect_timeout(to, IO_TIMEOUT) {
        Ok(()) => Ok("connect()"),
        Err(e) => {
            let first = errno_of(&e);
            match fastopen(s, to, token) {
                Ok(()) => Ok("sendto(MSG_FASTOPEN)"),
                // The first refusal names what stopped the ordinary route.
                Err(_) => Err(first),
            }
        }
    }
}

/// `sendto(MSG_FASTOPEN)` on a closed TCP socket: connects and sends in one
/// call (the SYN carries data when the peer's cookie is cached).
fn fastopen(s: &SockRef<'_>, to: &SockAddr, token: &str) -> Result<(), Errno> {
    s.set_nonblocking(true).map_err(|e| errno_of(&e))?;
    let line = format!("{token}\n");
    let sent = s.send_to_with_flags(line.as_bytes(), to, libc::MSG_FASTOPEN);
    let result = match sent {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => wait_connected(s),
        Err(e) => Err(errno_of(&e)),
    };
    let _ = s.set_nonblocking(false);
    result
}

/// Waits (bounded) until a non-blocking connect finished.
fn wait_connected(s: &SockRef<'_>) -> Result<(), Errno> {
    let start = Instant::now();
    while start.elapsed() < IO_TIMEOUT {
        if s.peer_addr().is_ok() {
            return Ok(());
        }
        if let Ok(Some(e)) = s.take_error() {
            return Err(errno_of(&e));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Errno(libc::ETIMEDOUT))
}

/// Puts a listener that a route took out of LISTEN back (it is PID 1's
/// socket too). Best effort: `listen` may be filtered.
fn restore_listener(s: &SockRef<'_>) {
    if s.is_listener().unwrap_or(false) {
        return;
    }
    if s.peer_addr().is_ok() {
        let _ = connect_unspec(s);
    }
    let _ = s.listen(128);
}

/// The inherited TCP listener a listener route works on: one that listens,
/// or one an earlier route left closed (not connected).
fn pick_listener() -> Result<Inherited, Outcome> {
    let all = inherited();
    all.iter()
        .find(|i| i.listening)
        .or_else(|| all.iter().find(|i| i.stream && !i.connected))
        .copied()
        .ok_or_else(|| {
            Outcome::unsupported(
                Unsupported::NotApplicable,
                "this process was handed no TCP listener (socket activation passes them from fd 3)",
            )
        })
}

/// The canary and the listener a listener route works on.
fn canary_and_listener(ctx: &Ctx) -> Result<(&CanaryState, Inherited), Outcome> {
    Ok((ctx.need_canary()?, pick_listener()?))
}

/// The common tail of the listener routes: take the listener out of LISTEN
/// with `disconnect`, connect it to the canary, talk, put it back.
fn listener_route(
    ctx: &Ctx,
    id: &str,
    how: &str,
    disconnect: fn(&SockRef<'_>) -> Result<(), Errno>,
) -> Outcome {
    let (c, l) = match canary_and_listener(ctx) {
        Ok(found) => found,
        Err(o) => return o,
    };
    let s = l.sock();
    if l.listening {
        if let Err(e) = disconnect(&s) {
            return Outcome::errno(e, format!("{how} on the handed-over listener (fd {})", l.fd));
        }
    }
    let to = SockAddr::from(target_for(l.domain, c.tcp_loopback));
    let out = match s.connect_timeout(&to, IO_TIMEOUT) {
        Ok(()) => talk(
            l.fd,
            c,
            &ctx.token(id),
            &format!(
                "{how}, then connect() from the handed-over listener (fd {}) to {}",
                l.fd, c.tcp_loopback
            ),
        ),
        Err(e) => {
            let what = format!("connect() after {how} (fd {})", l.fd);
            refused(errno_of(&e), what, || {
                kernel_refuses_former_listeners(disconnect, |s, to| {
                    s.connect_timeout(to, IO_TIMEOUT).map_err(|e| errno_of(&e))
                })
            })
        }
    };
    restore_listener(&s);
    out
}

/// The outcome of a listener route refused with `e`: where that is EINVAL
/// and `check` shows this kernel refusing the same to a listener of the
/// probe's own, `unsupported: kernel-policy`; else the errno, with what the
/// check found.
fn refused(e: Errno, what: String, check: impl FnOnce() -> Result<bool, String>) -> Outcome {
    if e.0 != libc::EINVAL {
        return Outcome::errno(e, what);
    }
    match check() {
        Ok(true) => Outcome::unsupported(
            Unsupported::KernelPolicy,
            format!(
                "{what}: EINVAL: this kernel refuses it to every socket that has been a TCP listener \
                 (a fresh listener of the probe's own, in its own network namespace, was refused the same \
                 way, while a fresh socket that never listened connected)"
            ),
        ),
        Ok(false) => Outcome::errno(
            e,
            format!("{what} (a fresh listener of the probe's own connects after the same steps: not the kernel's policy)"),
        ),
        Err(why) => Outcome::errno(e, format!("{what} (whether the kernel refuses it to everyone: {why})")),
    }
}

/// Whether this kernel refuses to turn a TCP socket that has been a
/// listener into a client, decided by trying it rather than by a version:
/// a fresh listener of this process's own, on 127.0.0.1 of its own network
/// namespace, is taken out of LISTEN with `disconnect` and aimed with `aim`
/// at a second fresh listener. `Ok(true)` when that gets EINVAL while a
/// fresh socket that never listened connects to the same target; `Err`
/// with the reason when the check cannot be made here (a sandbox that
/// refuses IP sockets or the calls: the route's own errno then stands).
fn kernel_refuses_former_listeners(
    disconnect: impl Fn(&SockRef<'_>) -> Result<(), Errno>,
    aim: impl Fn(&SockRef<'_>, &SockAddr) -> Result<(), Errno>,
) -> Result<bool, String> {
    fn io(what: &'static str) -> impl Fn(io::Error) -> String {
        move |e| format!("the check's {what}: {}", errno_of(&e))
    }
    let loopback = SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0)));
    let fresh = |what: &'static str| -> Result<Socket, String> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io(what))?;
        s.bind(&loopback).map_err(io(what))?;
        Ok(s)
    };
    let target = fresh("target")?;
    target.listen(4).map_err(io("target's listen"))?;
    let to = target.local_addr().map_err(io("target's address"))?;
    let former = fresh("listener")?;
    former.listen(1).map_err(io("listener's listen"))?;
    let former_ref = SockRef::from(&former);
    disconnect(&former_ref).map_err(|e| format!("the check's own listener could not leave LISTEN: {e}"))?;
    match aim(&former_ref, &to) {
        Ok(()) => return Ok(false),
        Err(e) if e.0 == libc::EINVAL => {}
        Err(e) => return Err(format!("the check's own former listener got {e}, not EINVAL")),
    }
    let never_listened = fresh("client")?;
    match never_listened.connect_timeout(&to, IO_TIMEOUT) {
        Ok(()) => Ok(true),
        Err(e) => Err(format!("a fresh socket could not connect either: {}", errno_of(&e))),
    }
}

fn by_shutdown(s: &SockRef<'_>) -> Result<(), Errno> {
    s.shutdown(Shutdown::Read).map_err(|e| errno_of(&e))
}

/// Out of LISTEN by whichever call is allowed: `shutdown(SHUT_RD)`, else
/// `connect(AF_UNSPEC)`.
fn by_any_call(s: &SockRef<'_>) -> Result<(), Errno> {
    by_shutdown(s).or_else(|_| connect_unspec(s))
}

/// `net.handover-shutdown`: `shutdown(SHUT_RD)` returns a listener to CLOSE
/// (still bound to its port), and `connect()` then makes it a client in the
/// host's network namespace.
pub fn listener_shutdown(ctx: &Ctx) -> Outcome {
    listener_route(ctx, "net.handover-shutdown", "shutdown(SHUT_RD)", by_shutdown)
}

/// `net.handover-unspec`: `connect(AF_UNSPEC)` returns a listener to CLOSE;
/// then `connect()`.
pub fn listener_unspec(ctx: &Ctx) -> Outcome {
    listener_route(ctx, "net.handover-unspec", "connect(AF_UNSPEC)", connect_unspec)
}

/// `net.handover-fastopen`: the listener is closed by whichever call is
/// allowed, then connected by `sendto(MSG_FASTOPEN)`, which needs no
/// `connect()` (TCP Fast Open's client side, on by default).
pub fn listener_fastopen(ctx: &Ctx) -> Outcome {
    let (c, l) = match canary_and_listener(ctx) {
        Ok(found) => found,
        Err(o) => return o,
    };
    let s = l.sock();
    let token = ctx.token("net.handover-fastopen");
    let closed = if l.listening { by_any_call(&s).map(|_| "closed") } else { Ok("found closed") };
    let to = SockAddr::from(target_for(l.domain, c.tcp_loopback));
    let out = match fastopen(&s, &to, &token) {
        Ok(()) => talk(
            l.fd,
            c,
            &token,
            &format!("sendto(MSG_FASTOPEN) from the handed-over listener (fd {})", l.fd),
        ),
        Err(e) => {
            let what = format!(
                "sendto(MSG_FASTOPEN) to {} from the handed-over listener (fd {}; {})",
                c.tcp_loopback,
                l.fd,
                match closed {
                    Ok(how) => format!("listener {how}"),
                    Err(e) => format!("it could not be closed: {e}, so it still listens"),
                }
            );
            refused(e, what, || {
                kernel_refuses_former_listeners(by_any_call, |s, to| fastopen(s, to, "kernel-check"))
            })
        }
    };
    restore_listener(&s);
    out
}

/// How long [`accepted`] waits for the harness's client on a listener.
const CLIENT_WAIT: Duration = Duration::from_secs(4);

/// `net.handover-accepted`: a connection accepted from the handed-over
/// listener (or handed over itself, with `Accept=yes`) is dissolved with
/// `connect(AF_UNSPEC)` and connected anew to the canary (`connect()`, else
/// `sendto(MSG_FASTOPEN)`). The harness dials each unit's port while the
/// probe runs, so there is a client to accept.
pub fn accepted(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let all = inherited();
    let conn: socket2::Socket;
    let (fd, domain, origin) = if let Some(i) = all.iter().find(|i| i.stream && i.connected) {
        (i.fd, i.domain, "the handed-over connection")
    } else if let Some(l) = all.iter().find(|i| i.listening) {
        match accept_within(&l.sock(), CLIENT_WAIT) {
            Ok(s) => {
                conn = s;
                use std::os::fd::AsRawFd;
                (conn.as_raw_fd(), l.domain, "a connection accepted from the handed-over listener")
            }
            Err(o) => return o,
        }
    } else {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            "this process was handed no TCP listener or connection (socket activation passes them from fd 3)",
        );
    };
    // SAFETY: fd is open for the rest of this function.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let s = SockRef::from(&b);
    if let Err(e) = connect_unspec(&s) {
        return Outcome::errno(e, format!("connect(AF_UNSPEC) on {origin}"));
    }
    let token = ctx.token("net.handover-accepted");
    match reconnect(&s, &SockAddr::from(target_for(domain, c.tcp_loopback)), &token) {
        Ok(how) => talk(fd, c, &token, &format!("{origin}, dissolved and connected anew with {how}")),
        Err(e) => {
            Outcome::errno(e, format!("connect() of {origin} to {} after connect(AF_UNSPEC)", c.tcp_loopback))
        }
    }
}

/// Accepts one connection within `wait`, or the outcome to report.
fn accept_within(l: &SockRef<'_>, wait: Duration) -> Result<socket2::Socket, Outcome> {
    let _ = l.set_nonblocking(true);
    let start = Instant::now();
    let result = loop {
        match l.accept() {
            Ok((s, _)) => break Ok(s),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                break Err(Outcome::failed(format!(
                    "no client connected to the handed-over listener within {} s (the harness dials each \
                     unit's port while the probe runs)",
                    wait.as_secs()
                )))
            }
            Err(e) => break Err(Outcome::errno(errno_of(&e), "accept on the handed-over listener")),
        }
    };
    let _ = l.set_nonblocking(false);
    result
}

/// `net.handover-udp`: a datagram from the handed-over UDP socket to the
/// UDP canary, which answers to the sender: the answer arrives at the same
/// socket. The echo server must `sendto` any address (its clients'), so no
/// system-call filter can take this away.
pub fn udp(ctx: &Ctx) -> Outcome {
    let c = match ctx.need_canary() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let Some(u) = inherited().into_iter().find(|i| !i.stream) else {
        return Outcome::unsupported(
            Unsupported::NotApplicable,
            "this process was handed no UDP socket (socket activation passes them from fd 3)",
        );
    };
    // SAFETY: the fd is open; ManuallyDrop keeps it from being closed here.
    let sock = ManuallyDrop::new(unsafe { UdpSocket::from_raw_fd(u.fd) });
    let what = format!("sendto {} from the handed-over UDP socket (fd {})", c.udp, u.fd);
    let out = ask_udp_canary(&sock, target_for(u.domain, c.udp), c, &ctx.token("net.handover-udp"), &what);
    // The socket is PID 1's too: leave it as it was handed over.
    let _ = sock.set_read_timeout(None);
    out
}
