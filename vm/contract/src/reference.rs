//! The reference deployment of `units/`, stated once: each server's units
//! and where its socket listens. The matrix runs the services in this
//! order, the guest's functional checks go through these sockets and ports,
//! the package's lifecycle test enables them, and the unit tests check
//! that `units/` holds exactly these.

/// One server of the reference deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// The binary its service runs (`/usr/libexec/sandkasten/NAME`).
    pub binary: &'static str,
    /// Its service; a template (`@.service`) for an `Accept=yes` socket.
    pub service: &'static str,
    /// The socket that hands it its listeners or connections.
    pub socket: &'static str,
    /// The TCP port the socket listens on (`ListenStream=`).
    pub tcp: u16,
    /// The UDP port, where the socket has one (`ListenDatagram=`).
    pub udp: Option<u16>,
}

/// `sandkasten-http`: static files.
pub const HTTP: Server = Server {
    binary: "sandkasten-http",
    service: "sandkasten-http.service",
    socket: "sandkasten-http.socket",
    tcp: 80,
    udp: None,
};

/// `sandkasten-gopher`: RFC 1436 menus.
pub const GOPHER: Server = Server {
    binary: "sandkasten-gopher",
    service: "sandkasten-gopher.service",
    socket: "sandkasten-gopher.socket",
    tcp: 70,
    udp: None,
};

/// `sandkasten-echo` behind listeners, TCP and UDP.
pub const ECHO: Server = Server {
    binary: "sandkasten-echo",
    service: "sandkasten-echo.service",
    socket: "sandkasten-echo.socket",
    tcp: 7,
    udp: Some(7),
};

/// `sandkasten-echo` inetd-style: one instance per connection (`Accept=yes`).
pub const ECHO_INETD: Server = Server {
    binary: "sandkasten-echo",
    service: "sandkasten-echo-inetd@.service",
    socket: "sandkasten-echo-inetd.socket",
    tcp: 7007,
    udp: None,
};

/// Every server, in the order the matrix runs them.
pub const SERVERS: [Server; 4] = [HTTP, GOPHER, ECHO, ECHO_INETD];

/// Their services, in that order.
pub const SERVICES: [&str; 4] =
    [SERVERS[0].service, SERVERS[1].service, SERVERS[2].service, SERVERS[3].service];

/// Their sockets, in that order.
pub const SOCKETS: [&str; 4] = [SERVERS[0].socket, SERVERS[1].socket, SERVERS[2].socket, SERVERS[3].socket];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each socket's ports as its unit file states them.
    #[test]
    fn the_ports_are_the_units_own() {
        let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units");
        for server in SERVERS {
            let text = std::fs::read_to_string(units.join(server.socket)).unwrap();
            let value = |key: &str| {
                text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().parse::<u16>().unwrap())
            };
            assert_eq!(value("ListenStream="), Some(server.tcp), "{}", server.socket);
            assert_eq!(value("ListenDatagram="), server.udp, "{}", server.socket);
            let service = std::fs::read_to_string(units.join(server.service)).unwrap();
            assert!(
                service.contains(&format!("/usr/libexec/sandkasten/{}", server.binary)),
                "{}",
                server.service
            );
        }
    }
}
