//! sandkasten-gopher against real gopher exchanges over loopback TCP, with
//! the listening socket passed as fd 3 the way systemd passes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use sandkasten_tests::{
    assert_silent_connection_closed, connect, tcp_listener, write_file, Launch, NotifySocket, Running,
};

use crate::GOPHER;

/// A content tree with one of everything, in a fresh temp dir.
fn content() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(root, "hello.txt", "Hello, gopher!\n.a line with a leading dot\n");
    write_file(root, "README", "no extension, but text\n");
    write_file(root, "data.bin", binary_payload());
    write_file(root, "pic.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    write_file(root, "photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\0");
    write_file(root, "page.html", "<html><body>hi</body></html>\n");
    write_file(root, ".secret", "top secret\n");
    write_file(root, "docs/guide.txt", "The guide.\n");
    write_file(root, "docs/deep/nested/Needle-Report.txt", "found me\n");
    write_file(root, "docs/.git/needle", "hidden needle\n");
    write_file(root, "map/local.txt", "next to the map\n");
    write_file(
        root,
        "map/gophermap",
        "Welcome to the map\n\
         0Guide\t../docs/guide.txt\n\
         0Local\tlocal.txt\n\
         1Elsewhere\t/docs\tother.example\t70\n\
         1Root\t/\t\t\n\
         *\n",
    );
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.txt")).unwrap();
    dir
}

/// 200 KiB covering every byte value, so a text conversion would show.
fn binary_payload() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// Starts the server on a fresh loopback listener passed as fd 3.
fn start(root: &Path, extra: &[&str]) -> (Running, SocketAddr) {
    let (listener, addr) = tcp_listener();
    let server = Launch::new(GOPHER)
        .args(["--root", root.to_str().unwrap()])
        .args(extra.iter().copied())
        .socket(listener, "gopher")
        .spawn();
    (server, addr)
}

/// Sends one request line and reads the answer to EOF.
fn fetch(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer to EOF");
    answer
}

fn fetch_text(server: &Running, addr: SocketAddr, request: &str) -> String {
    let answer = fetch(addr, request.as_bytes());
    String::from_utf8(answer)
        .unwrap_or_else(|e| panic!("answer to {request:?} is not UTF-8: {e}\n{}", server.report()))
}

/// The lines of a menu, after checking it ends with the `.` line.
fn menu_lines(server: &Running, menu: &str) -> Vec<String> {
    let body = menu
        .strip_suffix(".\r\n")
        .unwrap_or_else(|| panic!("menu does not end with .CRLF: {menu:?}\n{}", server.report()));
    body.split_terminator("\r\n").map(str::to_owned).collect()
}

fn assert_has_line(server: &Running, lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "no line {expected:?} in menu {lines:#?}\n{}",
        server.report()
    );
}

fn assert_error(server: &Running, answer: &[u8], what: &str) {
    let text = String::from_utf8_lossy(answer);
    assert!(
        text.starts_with('3') && text.ends_with("\t\terror.host\t1\r\n.\r\n") && text.lines().count() == 2,
        "{what}: expected one type 3 error item, got {text:?}\n{}",
        server.report()
    );
    for leak in ["root:", "top secret", "hidden needle"] {
        assert!(!text.contains(leak), "{what}: answer leaks {leak:?}: {text:?}\n{}", server.report());
    }
}

#[test]
fn root_menu_lists_files_with_types_and_the_local_address() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    let menu = fetch_text(&server, addr, "\r\n");
    let lines = menu_lines(&server, &menu);
    let at = format!("127.0.0.1\t{}", addr.port());
    for expected in [
        format!("1docs\t/docs\t{at}"),
        format!("1map\t/map\t{at}"),
        format!("0hello.txt\t/hello.txt\t{at}"),
        format!("0README\t/README\t{at}"),
        format!("9data.bin\t/data.bin\t{at}"),
        format!("gpic.gif\t/pic.gif\t{at}"),
        format!("Iphoto.png\t/photo.png\t{at}"),
        format!("hpage.html\t/page.html\t{at}"),
        format!("7Search file names\t/search\t{at}"),
    ] {
        assert_has_line(&server, &lines, &expected);
    }
    assert!(!menu.contains(".secret"), "hidden file listed: {menu}\n{}", server.report());
    // Symlinks that leave the root are not listed either.
    assert!(!menu.contains("etc-link") && !menu.contains("passwd.txt"), "{menu}\n{}", server.report());
    // "/" is the root too, and a bare LF ends a line as well as CRLF.
    assert_eq!(fetch_text(&server, addr, "/\n"), menu, "{}", server.report());
}

#[test]
fn host_and_port_flags_override_the_local_address() {
    let dir = content();
    let (server, addr) = start(dir.path(), &["--host", "gopher.example.org", "--port", "7070"]);
    let lines = menu_lines(&server, &fetch_text(&server, addr, "/docs\r\n"));
    assert_has_line(&server, &lines, "0guide.txt\t/docs/guide.txt\tgopher.example.org\t7070");
    // The same through the environment twins.
    let (listener, addr) = tcp_listener();
    let server = Launch::new(GOPHER)
        .args(["--root", dir.path().to_str().unwrap()])
        .env("SANDKASTEN_HOST", "env.example.org")
        .env("SANDKASTEN_PORT", "7071")
        .socket(listener, "gopher")
        .spawn();
    let lines = menu_lines(&server, &fetch_text(&server, addr, "/docs\r\n"));
    assert_has_line(&server, &lines, "0guide.txt\t/docs/guide.txt\tenv.example.org\t7071");
}

#[test]
fn text_and_binary_files_are_sent_byte_exact() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    assert_eq!(
        fetch_text(&server, addr, "/hello.txt\r\n"),
        "Hello, gopher!\n.a line with a leading dot\n",
        "{}",
        server.report()
    );
    let binary = fetch(addr, b"/data.bin\r\n");
    assert!(binary == binary_payload(), "binary differs ({} bytes)\n{}", binary.len(), server.report());
    // Without the leading slash too.
    assert_eq!(fetch_text(&server, addr, "docs/guide.txt\r\n"), "The guide.\n", "{}", server.report());
}

#[test]
fn subdirectory_menu() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    let lines = menu_lines(&server, &fetch_text(&server, addr, "/docs\r\n"));
    let at = format!("127.0.0.1\t{}", addr.port());
    assert_eq!(
        lines,
        [format!("1deep\t/docs/deep\t{at}"), format!("0guide.txt\t/docs/guide.txt\t{at}")],
        "{}",
        server.report()
    );
    let lines = menu_lines(&server, &fetch_text(&server, addr, "/docs/deep/\r\n"));
    assert_eq!(lines, [format!("1nested\t/docs/deep/nested\t{at}")], "{}", server.report());
}

#[test]
fn gophermap_info_lines_relative_selectors_and_default_host() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    let lines = menu_lines(&server, &fetch_text(&server, addr, "/map\r\n"));
    let at = format!("127.0.0.1\t{}", addr.port());
    assert_eq!(
        lines,
        [
            "iWelcome to the map\tfake\t(NULL)\t0".to_owned(),
            format!("0Guide\t/docs/guide.txt\t{at}"),
            format!("0Local\t/map/local.txt\t{at}"),
            "1Elsewhere\t/docs\tother.example\t70".to_owned(),
            format!("1Root\t/\t{at}"),
            // `*` appended the listing, without the gophermap itself.
            format!("0local.txt\t/map/local.txt\t{at}"),
        ],
        "{}",
        server.report()
    );
    // The relative selector works when followed.
    assert_eq!(fetch_text(&server, addr, "/map/local.txt\r\n"), "next to the map\n", "{}", server.report());
}

#[test]
fn search_finds_nested_files_and_accepts_a_tab() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    let menu = fetch_text(&server, addr, "/search\tneedle\r\n");
    let lines = menu_lines(&server, &menu);
    let selector = "/docs/deep/nested/Needle-Report.txt";
    assert_has_line(&server, &lines, &format!("0{selector}\t{selector}\t127.0.0.1\t{}", addr.port()));
    assert!(!menu.contains(".git"), "search shows hidden files: {menu}\n{}", server.report());
    assert_eq!(fetch_text(&server, addr, &format!("{selector}\r\n")), "found me\n", "{}", server.report());
    let menu = fetch_text(&server, addr, "/search\tno-such-name-anywhere\r\n");
    assert_eq!(
        menu_lines(&server, &menu).len(),
        1,
        "expected only the count line: {menu}\n{}",
        server.report()
    );
}

#[test]
fn caps_txt_is_generated() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    for selector in ["caps.txt\r\n", "/caps.txt\r\n"] {
        let caps = fetch_text(&server, addr, selector);
        assert!(caps.starts_with("CAPS\r\n"), "{caps:?}\n{}", server.report());
        assert!(caps.contains("\r\nPathDelimeter=/\r\n"), "{caps:?}\n{}", server.report());
        assert!(caps.contains("\r\nServerSoftware=sandkasten-gopher\r\n"), "{caps:?}\n{}", server.report());
    }
}

#[test]
fn bad_selectors_get_a_type_3_error_and_a_log_line() {
    let dir = content();
    let (server, addr) = start(dir.path(), &[]);
    let long = format!("/{}\r\n", "a".repeat(255));
    let cases: [(&str, &[u8]); 10] = [
        ("256 bytes", long.as_bytes()),
        ("tab outside search", b"/docs\tquery\r\n"),
        ("CR", b"/hello.txt\rx\r\n"),
        ("NUL", b"/hello.txt\0\r\n"),
        ("dot-dot", b"../etc/passwd\r\n"),
        ("nested dot-dot", b"/docs/../../../../etc/passwd\r\n"),
        ("symlink to /etc", b"/etc-link/passwd\r\n"),
        ("symlink to /etc/passwd", b"/passwd.txt\r\n"),
        ("hidden file", b"/.secret\r\n"),
        ("missing file", b"/no/such/file\r\n"),
    ];
    for (what, request) in cases {
        assert_error(&server, &fetch(addr, request), what);
    }
    // A request line far over the cap is refused too, not cut and served.
    assert_error(&server, &fetch(addr, format!("/{}\r\n", "a".repeat(5000)).as_bytes()), "5000 bytes");
    server.wait_for_log("selector=\"/etc-link/passwd\"", Duration::from_secs(5));
    let log = server.stderr();
    let line = log.lines().find(|l| l.contains("/etc-link/passwd")).unwrap_or_default();
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "log line {line:?}\n{}",
        server.report()
    );
}

#[test]
fn a_silent_client_is_disconnected_after_the_read_timeout() {
    let dir = content();
    let (server, addr) = start(dir.path(), &["--read-timeout", "1"]);
    // Make sure the server runs before timing it.
    assert!(fetch_text(&server, addr, "/hello.txt\r\n").starts_with("Hello"), "{}", server.report());
    assert_silent_connection_closed(addr, &server);
}

#[test]
fn an_accept_yes_connection_is_served_then_the_process_exits_0() {
    let dir = content();
    let (listener, addr) = tcp_listener();
    let mut client = connect(addr);
    let (accepted, _) = listener.accept().unwrap();
    drop(listener);
    client.write_all(b"/hello.txt\r\n").unwrap();
    let mut server =
        Launch::new(GOPHER).args(["--root", dir.path().to_str().unwrap()]).socket(accepted, "gopher").spawn();
    let mut answer = String::new();
    let read = client.read_to_string(&mut answer);
    assert!(read.is_ok(), "{read:?}\n{}", server.report());
    assert_eq!(answer, "Hello, gopher!\n.a line with a leading dot\n", "{}", server.report());
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{}", server.report());
}

#[test]
fn sigterm_exits_0() {
    let dir = content();
    let (listener, addr) = tcp_listener();
    let mut notify = NotifySocket::new();
    let mut server = Launch::new(GOPHER)
        .args(["--root", dir.path().to_str().unwrap()])
        .socket(listener, "gopher")
        .notify(&notify)
        .spawn();
    let ready = notify.wait_for("READY=1", Duration::from_secs(10));
    assert!(ready.is_ok(), "{ready:?}\n{}", server.report());
    assert!(fetch_text(&server, addr, "/hello.txt\r\n").starts_with("Hello"), "{}", server.report());
    server.sigterm();
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}\n{}", server.report());
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(1));
    assert!(stopping.is_ok(), "{stopping:?}\n{}", server.report());
}

#[test]
fn startup_errors_name_the_problem_and_exit_2() {
    let dir = content();
    let (listener, _) = tcp_listener();
    let mut server =
        Launch::new(GOPHER).args(["--root", "/nonexistent/gopher-root"]).socket(listener, "gopher").spawn();
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", server.report());
    assert!(
        server.stderr().contains("sandkasten-gopher: error: content root /nonexistent/gopher-root"),
        "{}",
        server.report()
    );

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut server =
        Launch::new(GOPHER).args(["--root", dir.path().to_str().unwrap()]).socket(udp, "gopher-udp").spawn();
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", server.report());
    assert!(server.stderr().contains("UDP"), "{}", server.report());
}
