//! sandkasten-echo against real clients, with sockets passed as systemd
//! passes them: TCP and UDP listeners (Accept=no), one connected stream
//! (Accept=yes), and stdin/stdout (--inetd).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use rand::RngCore;
use sandkasten_tests::{assert_silent_connection_closed, connect, tcp_listener, udp_socket, Launch};

use crate::ECHO;

const MIB: usize = 1024 * 1024;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Writes `data` from a second thread while reading the echo, as a real
/// client must (the kernel buffers are far smaller than 1 MiB).
fn round_trip(stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let outgoing = data.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&outgoing).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::with_capacity(data.len());
    let mut reader = stream;
    reader.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    echoed
}

#[test]
fn tcp_listener_echoes_a_mebibyte_of_random_bytes() {
    let (listener, addr) = tcp_listener();
    let server = Launch::new(ECHO).socket(listener, "echo").spawn();
    let data = random_bytes(MIB);
    let echoed = round_trip(connect(addr), &data);
    assert!(echoed == data, "echo differs ({} of {} bytes)\n{}", echoed.len(), data.len(), server.report());
}

#[test]
fn udp_socket_echoes_each_datagram_to_its_sender() {
    let (socket, addr) = udp_socket();
    let server = Launch::new(ECHO).socket(socket, "echo-udp").spawn();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.connect(addr).unwrap();
    let data = random_bytes(MIB);
    let mut buf = vec![0u8; 65_536];
    // The largest datagram first, then the rest of the mebibyte.
    for chunk in data.chunks(65_507) {
        client.send(chunk).unwrap();
        let n = client.recv(&mut buf).unwrap_or_else(|e| panic!("no echo: {e}\n{}", server.report()));
        assert_eq!(&buf[..n], chunk, "datagram differs\n{}", server.report());
    }
}

#[test]
fn tcp_and_udp_sockets_are_served_by_one_process() {
    let (listener, tcp_addr) = tcp_listener();
    let (socket, udp_addr) = udp_socket();
    let server = Launch::new(ECHO).socket(listener, "echo").socket(socket, "echo-udp").spawn();

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.send_to(b"over udp", udp_addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) =
        client.recv_from(&mut buf).unwrap_or_else(|e| panic!("no udp echo: {e}\n{}", server.report()));
    assert_eq!((&buf[..n], from), (&b"over udp"[..], udp_addr));

    assert_eq!(round_trip(connect(tcp_addr), b"over tcp"), b"over tcp", "{}", server.report());
}

#[test]
fn accept_yes_connection_is_echoed_then_the_instance_exits() {
    // systemd accepts for an Accept=yes socket and passes the connection.
    let (listener, addr) = tcp_listener();
    let client = connect(addr);
    let (accepted, _) = listener.accept().unwrap();
    let mut server = Launch::new(ECHO).socket(accepted, "connection").spawn();

    let data = random_bytes(MIB);
    let echoed = round_trip(client, &data);
    assert!(echoed == data, "echo differs ({} of {} bytes)\n{}", echoed.len(), data.len(), server.report());
    let status = server.wait(Duration::from_secs(5));
    assert!(status.success(), "{}", server.report());
}

#[test]
fn inetd_mode_echoes_stdin_to_stdout() {
    let mut server = Launch::new(ECHO).args(["--inetd"]).stdio(Stdio::piped(), Stdio::piped()).spawn();
    let mut stdin = server.child.stdin.take().unwrap();
    let mut stdout = server.child.stdout.take().unwrap();
    let data = random_bytes(MIB);
    let outgoing = data.clone();
    let sender = std::thread::spawn(move || stdin.write_all(&outgoing).unwrap());
    let mut echoed = Vec::new();
    stdout.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    assert!(echoed == data, "echo differs ({} of {} bytes)\n{}", echoed.len(), data.len(), server.report());
    assert!(server.wait(Duration::from_secs(5)).success(), "{}", server.report());
}

#[test]
fn silent_connection_is_closed_after_the_read_timeout() {
    let (listener, addr) = tcp_listener();
    let server = Launch::new(ECHO).args(["--read-timeout", "1"]).socket(listener, "echo").spawn();
    assert_silent_connection_closed(addr, &server);
}

#[test]
fn connections_beyond_the_cap_wait_in_the_backlog() {
    let (listener, addr) = tcp_listener();
    let server = Launch::new(ECHO).args(["--max-connections", "1"]).socket(listener, "echo").spawn();

    let mut first = connect(addr);
    first.write_all(b"1").unwrap();
    let mut buf = [0u8; 1];
    first.read_exact(&mut buf).unwrap();

    // The kernel completes the handshake, but the server does not accept
    // while its one slot is taken: no echo.
    let mut second = connect(addr);
    second.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    second.write_all(b"2").unwrap();
    assert!(
        second.read(&mut buf).is_err(),
        "second connection was served beyond the cap\n{}",
        server.report()
    );

    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    second
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("not served after the slot freed: {e}\n{}", server.report()));
    assert_eq!(&buf, b"2");
}
