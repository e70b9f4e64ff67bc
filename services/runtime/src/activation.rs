//! Sockets from systemd (socket activation), or from `--listen`.
//!
//! systemd passes sockets as file descriptors 3, 4, … and describes them in
//! `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` (sd_listen_fds(3)). We read
//! those with `sd-notify`, which checks that `LISTEN_PID` is ours and pairs
//! each fd with its `FileDescriptorName=`. Development reloaders such as
//! `systemfd --no-pid` set `LISTEN_FDS` without `LISTEN_PID`; `listenfd` is
//! the crate made for that protocol, so we fall back to it there.
//!
//! Then each fd is classified with `socket2` by what the kernel says it is
//! (`SO_TYPE`, `SO_ACCEPTCONN`), never by its name: a TCP listener
//! (`Accept=no`), a UDP socket, or one already connected stream (`Accept=yes`,
//! where systemd accepts and starts one instance per connection). Two traps
//! this avoids: `listenfd` hands a connected socket out as a "listener", and
//! `libsystemd` returns nothing when `LISTEN_FDNAMES` is unset.

// Taking ownership of inherited fds is the one unsafe thing this crate does:
// only the environment says they are ours.
#![allow(unsafe_code)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, SockRef, Type};

use crate::Error;

/// A socket as the kernel describes it, before it is handed to tokio.
#[derive(Debug)]
pub enum InheritedKind {
    /// A listening TCP socket: accept connections on it.
    TcpListener(TcpListener),
    /// A UDP socket: receive datagrams and answer each sender.
    Udp(UdpSocket),
    /// One connected TCP stream (`Accept=yes`): serve it, then exit.
    Stream(TcpStream),
}

/// One socket we got from systemd or bound for `--listen`.
#[derive(Debug)]
pub struct InheritedSocket {
    /// `FileDescriptorName=` from the socket unit (`LISTEN_FDNAMES`), the
    /// unit's name when none was set, `unknown` without `LISTEN_FDNAMES`, or
    /// `listen` for a socket bound from `--listen`.
    pub name: String,
    /// What it is.
    pub kind: InheritedKind,
}

/// A socket registered with tokio, as a server's serve function gets it.
#[derive(Debug)]
pub enum Socket {
    /// A listening TCP socket.
    TcpListener {
        /// See [`InheritedSocket::name`].
        name: String,
        /// The listener.
        listener: tokio::net::TcpListener,
    },
    /// A UDP socket.
    Udp {
        /// See [`InheritedSocket::name`].
        name: String,
        /// The socket.
        socket: tokio::net::UdpSocket,
    },
    /// One connected TCP stream (`Accept=yes`).
    Stream {
        /// See [`InheritedSocket::name`].
        name: String,
        /// The stream.
        stream: tokio::net::TcpStream,
    },
}

impl Socket {
    /// The socket's name (see [`InheritedSocket::name`]).
    pub fn name(&self) -> &str {
        match self {
            Socket::TcpListener { name, .. } | Socket::Udp { name, .. } | Socket::Stream { name, .. } => name,
        }
    }
}

/// Takes the sockets systemd passed, or binds `listen` when it passed none.
///
/// Fails with [`Error::NoSockets`] when there are neither. Clears
/// `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`, so children never believe
/// the sockets are theirs.
///
/// Call this first thing in `main`: it changes the environment, which is only
/// sound while the process has a single thread (before the tokio runtime
/// starts).
pub fn take(listen: &[String]) -> Result<Vec<InheritedSocket>, Error> {
    let passed = take_passed()?;
    if !passed.is_empty() {
        return Ok(passed);
    }
    if listen.is_empty() {
        return Err(Error::NoSockets);
    }
    listen.iter().map(|spec| bind(spec)).collect()
}

/// Refuses UDP sockets, for servers that speak a stream protocol only.
///
/// Call it before [`crate::run`], so that a wrong `.socket` unit fails at
/// start with a message naming the socket.
pub fn require_streams(sockets: &[InheritedSocket]) -> Result<(), Error> {
    match sockets.iter().find(|s| matches!(s.kind, InheritedKind::Udp(_))) {
        Some(udp) => Err(Error::Datagram { name: udp.name.clone() }),
        None => Ok(()),
    }
}

/// The fds from `LISTEN_FDS`, paired with their names, with the environment
/// cleared.
fn take_passed() -> Result<Vec<InheritedSocket>, Error> {
    let had_listen_pid = std::env::var_os("LISTEN_PID").is_some();
    // SAFETY: `take` documents that it must run before any other thread
    // exists, which is what `remove_var` requires.
    let fds: Vec<(RawFd, String)> =
        unsafe { sd_notify::listen_fds_with_names_and_unset_env() }.map_err(Error::Environment)?.collect();
    let fds = if fds.is_empty() && !had_listen_pid {
        // `systemfd --no-pid` style: LISTEN_FDS alone. listenfd reads and
        // clears it (and LISTEN_FDS_FIRST_FD, which systemfd may set).
        let mut manager = listenfd::ListenFd::from_env();
        (0..manager.len())
            .filter_map(|idx| manager.take_raw_fd(idx).ok().flatten())
            .map(|fd| (fd, "unknown".to_owned()))
            .collect()
    } else {
        fds
    };
    fds.into_iter().map(|(fd, name)| classify(fd, name)).collect()
}

/// Takes ownership of `fd` and decides what it is.
fn classify(fd: RawFd, name: String) -> Result<InheritedSocket, Error> {
    // SAFETY: systemd (or the reloader) handed this fd to us for our own use
    // and nothing else in the process refers to it; LISTEN_FDS is cleared, so
    // nobody can take it twice.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let inspect = |source| Error::Inspect { fd, source };
    let sock = SockRef::from(&owned);
    let domain = match sock.domain() {
        Ok(domain) => domain,
        // ENOTSOCK: a plain file or pipe.
        Err(_) => return Err(unsupported(fd, name, "not a socket")),
    };
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err(unsupported(fd, name, &format!("a socket of domain {domain:?}")));
    }
    let ty = sock.r#type().map_err(inspect)?;
    let kind = if ty == Type::STREAM {
        if sock.is_listener().map_err(inspect)? {
            InheritedKind::TcpListener(TcpListener::from(owned))
        } else {
            InheritedKind::Stream(TcpStream::from(owned))
        }
    } else if ty == Type::DGRAM {
        InheritedKind::Udp(UdpSocket::from(owned))
    } else {
        return Err(unsupported(fd, name, &format!("a socket of type {ty:?}")));
    };
    Ok(InheritedSocket { name, kind })
}

fn unsupported(fd: RawFd, name: String, what: &str) -> Error {
    Error::Unsupported { fd, name, what: what.to_owned() }
}

/// Binds one `--listen` spec: `ADDR` (TCP) or `udp:ADDR`.
fn bind(spec: &str) -> Result<InheritedSocket, Error> {
    let (udp, addr) = match spec.strip_prefix("udp:") {
        Some(addr) => (true, addr),
        None => (false, spec.strip_prefix("tcp:").unwrap_or(spec)),
    };
    let fail = |source| Error::Bind { addr: spec.to_owned(), source };
    let addr: SocketAddr = addr.parse().map_err(|err| {
        fail(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not an IP:PORT address ({err})")))
    })?;
    let kind = if udp {
        InheritedKind::Udp(UdpSocket::bind(addr).map_err(fail)?)
    } else {
        // socket2 rather than std, to set SO_REUSEADDR (restart without
        // waiting out TIME_WAIT) and a backlog like systemd's default.
        let socket = socket2::Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
        socket.set_reuse_address(true).map_err(fail)?;
        socket.bind(&addr.into()).map_err(fail)?;
        socket.listen(4096).map_err(fail)?;
        InheritedKind::TcpListener(socket.into())
    };
    Ok(InheritedSocket { name: "listen".to_owned(), kind })
}

impl InheritedSocket {
    /// Registers the socket with the current tokio runtime.
    pub(crate) fn into_tokio(self) -> std::io::Result<Socket> {
        let name = self.name;
        Ok(match self.kind {
            InheritedKind::TcpListener(listener) => {
                listener.set_nonblocking(true)?;
                Socket::TcpListener { name, listener: tokio::net::TcpListener::from_std(listener)? }
            }
            InheritedKind::Udp(socket) => {
                socket.set_nonblocking(true)?;
                Socket::Udp { name, socket: tokio::net::UdpSocket::from_std(socket)? }
            }
            InheritedKind::Stream(stream) => {
                stream.set_nonblocking(true)?;
                Socket::Stream { name, stream: tokio::net::TcpStream::from_std(stream)? }
            }
        })
    }

    /// A short description for logs: kind and local address.
    pub fn describe(&self) -> String {
        let (what, addr) = match &self.kind {
            InheritedKind::TcpListener(l) => ("tcp listener", l.local_addr()),
            InheritedKind::Udp(s) => ("udp socket", s.local_addr()),
            InheritedKind::Stream(s) => ("connected stream", s.local_addr()),
        };
        match addr {
            Ok(addr) => format!("{what} {addr} ({})", self.name),
            Err(_) => format!("{what} ({})", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn classify_std(fd: OwnedFd) -> InheritedKind {
        classify(fd.into_raw_fd(), "t".into()).expect("classify").kind
    }

    #[test]
    fn listener_udp_and_connected_stream_are_told_apart() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();

        assert!(matches!(classify_std(client.into()), InheritedKind::Stream(_)));
        assert!(matches!(classify_std(udp.into()), InheritedKind::Udp(_)));
        assert!(matches!(classify_std(listener.into()), InheritedKind::TcpListener(_)));
    }

    #[test]
    fn files_and_unix_sockets_are_refused_by_name() {
        let file = tempfile::tempfile().unwrap();
        let err = classify(file.into_raw_fd(), "web".into()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert!(err.to_string().contains("\"web\""), "{err}");

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = classify(a.into_raw_fd(), "web".into()).unwrap_err();
        assert!(err.to_string().contains("UNIX"), "{err}");
    }

    #[test]
    fn listen_specs_bind_tcp_and_udp_and_reject_garbage() {
        let tcp = bind("127.0.0.1:0").unwrap();
        assert!(matches!(tcp.kind, InheritedKind::TcpListener(_)));
        let udp = bind("udp:127.0.0.1:0").unwrap();
        assert!(matches!(udp.kind, InheritedKind::Udp(_)));
        let err = bind("localhost").unwrap_err();
        assert!(err.to_string().contains("failed to bind localhost"), "{err}");
    }
}
