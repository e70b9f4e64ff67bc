//! sandkasten-http against a real HTTP/1.1 client over loopback, with the
//! listening socket passed as fd 3 the way systemd passes it.
//!
//! The client is a few lines of std TCP (see `Client`), so every byte on the
//! wire is the test's own: no client library normalizes `..` away or adds
//! headers behind our back.

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sandkasten_tests::{connect, tcp_listener, udp_socket, write_file, Launch, NotifySocket, Running};

use crate::HTTP;

const SECRET: &str = "TOP SECRET, outside the root";
const LONG: Duration = Duration::from_secs(10);

/// A content tree and a directory beside it that must never be served.
struct Tree {
    root: tempfile::TempDir,
    _outside: tempfile::TempDir,
}

fn tree() -> Tree {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = root.path();
    write_file(outside.path(), "secret.txt", SECRET);
    write_file(r, "hello.txt", "hello world\n");
    write_file(r, "page.html", "<p>page</p>\n");
    write_file(r, "style.css", "p { color: red }\n");
    write_file(r, "sub/index.html", "<h1>sub index</h1>\n");
    write_file(r, "list/<b>&\"x.txt", "escaped file\n");
    write_file(r, "list/plain.txt", "plain\n");
    std::fs::create_dir_all(r.join("list/dir")).unwrap();
    write_file(r, "digits.txt", "0123456789");
    write_file(r, "app.js", "console.log('plain');\n");
    write_file(r, "app.js.gz", "GZIP-BYTES");
    write_file(r, "lib.js", "lib\n");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), r.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), r.join("lib.js.gz")).unwrap();
    std::os::unix::fs::symlink(r.join("hello.txt"), r.join("inner-link.txt")).unwrap();
    Tree { root, _outside: outside }
}

/// Starts the server on a fresh loopback listener passed as fd 3.
fn start(root: &Path, extra: &[&str]) -> (Running, SocketAddr) {
    let (listener, addr) = tcp_listener();
    let mut args = vec!["--root".to_owned(), root.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Launch::new(HTTP).args(args).socket(listener, "http").spawn();
    (server, addr)
}

/// One parsed response.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "HTTP {}", self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        let body = self.text();
        write!(f, "\n{}", body.chars().take(500).collect::<String>())
    }
}

/// A raw HTTP/1.1 client on one connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { reader: BufReader::new(connect(addr)) }
    }

    fn send(&mut self, raw: &str) -> std::io::Result<()> {
        self.reader.get_mut().write_all(raw.as_bytes())
    }

    /// Sends `method path` with `headers` (plus Host) and reads the answer.
    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        self.send(&raw)?;
        self.read_response(method == "HEAD")
    }

    /// Reads one response: head, then a body by Content-Length (none for
    /// HEAD, 204 and 304; to EOF without a length).
    fn read_response(&mut self, head: bool) -> std::io::Result<Response> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidData, format!("bad status line {line:?}"))
        })?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').unwrap_or((trimmed, ""));
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: Vec::new() };
        if head || status == 204 || status == 304 {
            return Ok(response);
        }
        match response.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
            Some(len) => {
                response.body.resize(len, 0);
                self.reader.read_exact(&mut response.body)?;
            }
            None => {
                self.reader.read_to_end(&mut response.body)?;
            }
        }
        Ok(response)
    }

    /// Reads a response's head up to the empty line, leaving its body.
    fn skip_head(&mut self) {
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "connection closed in the head");
        }
    }

    /// Whether the server closed the connection (EOF or reset) within the
    /// socket's read timeout.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => err.kind() == ErrorKind::ConnectionReset,
        }
    }
}

/// One request on its own connection.
fn fetch(server: &Running, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    fetch_method(server, addr, "GET", path, headers)
}

fn fetch_method(
    server: &Running,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    Client::new(addr)
        .request(method, path, &all)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}\n{}", server.report()))
}

/// Asserts a status, printing the response and the server's stderr if not.
#[track_caller]
fn expect(server: &Running, response: &Response, status: u16) {
    assert_eq!(response.status, status, "{response:?}\n{}", server.report());
}

#[test]
fn get_serves_files_with_their_mime_type() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    for (path, mime, body) in [
        ("/hello.txt", "text/plain", "hello world\n"),
        ("/page.html", "text/html", "<p>page</p>\n"),
        ("/style.css", "text/css", "p { color: red }\n"),
        ("/inner-link.txt", "text/plain", "hello world\n"),
    ] {
        let response = fetch(&server, addr, path, &[]);
        expect(&server, &response, 200);
        assert_eq!(response.text(), body, "{path}\n{}", server.report());
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with(mime), "{path}: {response:?}");
        assert!(response.header("etag").is_some(), "{path}: {response:?}");
        assert!(response.header("last-modified").is_some(), "{path}: {response:?}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{response:?}");
    }
    expect(&server, &fetch(&server, addr, "/missing.txt", &[]), 404);
}

#[test]
fn head_sends_the_headers_of_get_without_a_body() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    let head = client.request("HEAD", "/hello.txt", &[]).unwrap();
    expect(&server, &head, 200);
    assert_eq!(head.header("content-length"), Some("12"), "{head:?}");
    // Had the server sent a body after the HEAD response, this next response
    // would start with it and fail to parse.
    let get = client.request("GET", "/hello.txt", &[]).unwrap();
    expect(&server, &get, 200);
    assert_eq!(get.text(), "hello world\n");
    assert_eq!(get.header("etag"), head.header("etag"));
}

#[test]
fn other_methods_get_405_with_allow() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let response = fetch_method(&server, addr, method, "/hello.txt", &[("Content-Length", "0")]);
        expect(&server, &response, 405);
        let allow = response.header("allow").unwrap_or_default();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{method}: {response:?}");
    }
}

#[test]
fn directories_serve_index_html_and_redirect_without_slash() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let index = fetch(&server, addr, "/sub/", &[]);
    expect(&server, &index, 200);
    assert_eq!(index.text(), "<h1>sub index</h1>\n");
    assert!(index.header("content-type").unwrap_or_default().starts_with("text/html"));

    let redirect = fetch(&server, addr, "/sub?x=1", &[]);
    expect(&server, &redirect, 301);
    assert_eq!(redirect.header("location"), Some("/sub/?x=1"), "{redirect:?}");
    // The Location is rebuilt from the decoded path: a leading `//` must not
    // turn into a redirect to another host.
    let redirect = fetch(&server, addr, "//sub", &[]);
    expect(&server, &redirect, 301);
    assert_eq!(redirect.header("location"), Some("/sub/"), "{redirect:?}");
}

#[test]
fn directory_listing_escapes_names_in_text_and_links() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let listing = fetch(&server, addr, "/list/", &[]);
    expect(&server, &listing, 200);
    let page = listing.text();
    assert!(listing.header("content-type").unwrap_or_default().starts_with("text/html"), "{listing:?}");
    assert!(page.contains(">&lt;b&gt;&amp;&quot;x.txt</a>"), "{page}");
    assert!(page.contains("href=\"./%3Cb%3E%26%22x.txt\""), "{page}");
    assert!(!page.contains("<b>"), "raw name in the page: {page}");
    assert!(page.contains("href=\"./dir/\""), "{page}");
    assert!(page.contains("href=\"./plain.txt\""), "{page}");
    assert!(page.contains("href=\"../\""), "{page}");
    // The link works.
    let file = fetch(&server, addr, "/list/%3Cb%3E%26%22x.txt", &[]);
    expect(&server, &file, 200);
    assert_eq!(file.text(), "escaped file\n");
}

#[test]
fn single_ranges_are_206_and_unsatisfiable_ones_416() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let partial = fetch(&server, addr, "/digits.txt", &[("Range", "bytes=2-5")]);
    expect(&server, &partial, 206);
    assert_eq!(partial.text(), "2345");
    assert_eq!(partial.header("content-range"), Some("bytes 2-5/10"), "{partial:?}");
    let suffix = fetch(&server, addr, "/digits.txt", &[("Range", "bytes=-3")]);
    expect(&server, &suffix, 206);
    assert_eq!(suffix.text(), "789");

    let beyond = fetch(&server, addr, "/digits.txt", &[("Range", "bytes=20-30")]);
    expect(&server, &beyond, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */10"), "{beyond:?}");
}

#[test]
fn if_range_with_a_stale_validator_sends_the_whole_file() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let full = fetch(&server, addr, "/digits.txt", &[]);
    let etag = full.header("etag").expect("etag").to_owned();
    let fresh = fetch(&server, addr, "/digits.txt", &[("Range", "bytes=0-1"), ("If-Range", &etag)]);
    expect(&server, &fresh, 206);
    assert_eq!(fresh.text(), "01");
    let stale = fetch(&server, addr, "/digits.txt", &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")]);
    expect(&server, &stale, 200);
    assert_eq!(stale.text(), "0123456789");
}

#[test]
fn if_none_match_gives_304() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let first = fetch(&server, addr, "/hello.txt", &[]);
    let etag = first.header("etag").expect("etag").to_owned();
    let last_modified = first.header("last-modified").expect("last-modified").to_owned();

    let cached = fetch(&server, addr, "/hello.txt", &[("If-None-Match", &etag)]);
    expect(&server, &cached, 304);
    assert_eq!(cached.header("etag"), Some(etag.as_str()), "{cached:?}");
    let weak = format!("\"other\", W/{etag}");
    expect(&server, &fetch(&server, addr, "/hello.txt", &[("If-None-Match", &weak)]), 304);
    expect(&server, &fetch(&server, addr, "/hello.txt", &[("If-None-Match", "*")]), 304);
    // A tag that does not match wins over a date that would (RFC 9110 13.1.3).
    let both = [("If-None-Match", "\"other\""), ("If-Modified-Since", last_modified.as_str())];
    let changed = fetch(&server, addr, "/hello.txt", &both);
    expect(&server, &changed, 200);
    assert_eq!(changed.text(), "hello world\n");
}

#[test]
fn if_modified_since_gives_304() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let first = fetch(&server, addr, "/hello.txt", &[]);
    let last_modified = first.header("last-modified").expect("last-modified").to_owned();
    let cached = fetch(&server, addr, "/hello.txt", &[("If-Modified-Since", &last_modified)]);
    expect(&server, &cached, 304);
    assert!(cached.body.is_empty());
    let old = fetch(&server, addr, "/hello.txt", &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
    expect(&server, &old, 200);
}

#[test]
fn precompressed_gzip_is_served_only_when_accepted() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let gzip = fetch(&server, addr, "/app.js", &[("Accept-Encoding", "br, gzip")]);
    expect(&server, &gzip, 200);
    assert_eq!(gzip.header("content-encoding"), Some("gzip"), "{gzip:?}");
    assert_eq!(gzip.text(), "GZIP-BYTES");
    assert!(gzip.header("content-type").unwrap_or_default().contains("javascript"), "{gzip:?}");
    assert_eq!(gzip.header("vary").map(str::to_ascii_lowercase).as_deref(), Some("accept-encoding"));

    for accept in [None, Some("identity"), Some("gzip;q=0")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept-Encoding", *a)).collect();
        let plain = fetch(&server, addr, "/app.js", &headers);
        expect(&server, &plain, 200);
        assert_eq!(plain.header("content-encoding"), None, "{accept:?}: {plain:?}");
        assert_eq!(plain.text(), "console.log('plain');\n");
        assert_ne!(plain.header("etag"), gzip.header("etag"), "representations share an ETag");
    }
}

#[test]
fn traversal_attempts_never_leave_the_root() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let attempts = [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/a%00b",
        "/hello.txt%00.html",
        "/escape.txt",
        "/escape-dir/secret.txt",
        "/escape-dir/",
    ];
    for path in attempts {
        let response = fetch(&server, addr, path, &[]);
        assert!(
            matches!(response.status, 400 | 403 | 404),
            "{path} answered {response:?}\n{}",
            server.report()
        );
        let body = response.text();
        assert!(!body.contains(SECRET) && !body.contains("root:"), "{path} leaked: {body}");
        server.wait_for_log(&format!("path=\"{path}\""), LONG);
    }
    // A precompressed sibling that links outside is refused too.
    let response = fetch(&server, addr, "/lib.js", &[("Accept-Encoding", "gzip")]);
    expect(&server, &response, 403);
    assert!(!response.text().contains(SECRET));
    assert!(server.stderr().contains("refused request path"), "{}", server.report());
    // Plain requests still work after all that.
    expect(&server, &fetch(&server, addr, "/lib.js", &[]), 200);
}

#[test]
fn a_silent_connection_is_closed_after_the_read_timeout() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &["--read-timeout", "1"]);
    let mut client = Client::new(addr);
    let started = Instant::now();
    assert!(client.closed(), "connection still open after {:?}\n{}", started.elapsed(), server.report());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}, expected about 1 s\n{}",
        server.report()
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_read_timeout() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &["--read-timeout", "1"]);
    let mut client = Client::new(addr);
    expect(&server, &client.request("GET", "/hello.txt", &[]).unwrap(), 200);
    let started = Instant::now();
    assert!(client.closed(), "idle connection still open\n{}", server.report());
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[test]
fn an_oversized_header_is_refused() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    let big = "a".repeat(20 * 1024);
    // The server may close before it has read everything: a failed write is
    // a refusal too.
    let sent = client.send(&format!("GET /hello.txt HTTP/1.1\r\nHost: test\r\nX-Big: {big}\r\n\r\n"));
    match client.read_response(false) {
        Ok(response) => expect(&server, &response, 431),
        Err(err) => assert!(
            matches!(err.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) || sent.is_err(),
            "unexpected error {err}\n{}",
            server.report()
        ),
    }
    // The server itself is fine.
    expect(&server, &fetch(&server, addr, "/hello.txt", &[]), 200);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let tree = tree();
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    let first = client.request("GET", "/hello.txt", &[]).unwrap();
    expect(&server, &first, 200);
    let second = client.request("GET", "/digits.txt", &[]).unwrap();
    expect(&server, &second, 200);
    assert_eq!(second.text(), "0123456789");
    let last = client.request("GET", "/hello.txt", &[("Connection", "close")]).unwrap();
    expect(&server, &last, 200);
    assert!(client.closed(), "Connection: close was not honoured\n{}", server.report());
}

#[test]
fn sigterm_during_a_large_download_completes_it_and_exits_0() {
    const SIZE: u64 = 50 << 20;
    let tree = tree();
    // Sparse: 50 MiB of zeros that take no disk.
    std::fs::File::create(tree.root.path().join("big.bin")).unwrap().set_len(SIZE).unwrap();
    let (mut server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    client.send("GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    // Read the head and the first MiB, so the response is surely in flight.
    client.skip_head();
    let mut chunk = vec![0u8; 1 << 20];
    client.reader.read_exact(&mut chunk).unwrap();
    server.sigterm();
    server.wait_for_log("stopping", LONG);
    let rest = std::io::copy(&mut client.reader, &mut std::io::sink())
        .unwrap_or_else(|err| panic!("download broke off: {err}\n{}", server.report()));
    assert_eq!(chunk.len() as u64 + rest, SIZE, "incomplete download\n{}", server.report());
    let status = server.wait(LONG);
    assert!(status.success(), "exit status {status:?}\n{}", server.report());
}

/// Bytes that differ at every offset mod 251 (a prime): a body sent from the
/// wrong offset, or with a piece twice, does not compare equal.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A file above the in-memory limit takes the `sendfile` path: it must
/// arrive whole and in order, twice on one keep-alive connection, with the
/// same validators as any file, and leave that connection usable.
#[test]
fn large_files_arrive_byte_for_byte_on_a_keep_alive_connection() {
    let tree = tree();
    let content = pattern(3 << 20);
    std::fs::write(tree.root.path().join("large.bin"), &content).unwrap();
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    for round in 0..2 {
        let response = client.request("GET", "/large.bin", &[]).unwrap();
        expect(&server, &response, 200);
        assert!(
            response.body == content,
            "round {round}: the body differs from the file\n{}",
            server.report()
        );
        assert!(
            response.header("etag").is_some() && response.header("last-modified").is_some(),
            "{response:?}"
        );
    }
    let etag = fetch(&server, addr, "/large.bin", &[]).header("etag").unwrap().to_owned();
    let cached = client.request("GET", "/large.bin", &[("If-None-Match", &etag)]).unwrap();
    expect(&server, &cached, 304);
    let ranged = client.request("GET", "/large.bin", &[("Range", "bytes=1000000-1000009")]).unwrap();
    expect(&server, &ranged, 206);
    assert_eq!(ranged.body, content[1_000_000..1_000_010]);
    expect(&server, &client.request("GET", "/hello.txt", &[]).unwrap(), 200);
}

/// Small files and listings are kept in memory (`cache`) once they have
/// not changed for a second: an edit in place (at once, at the same size),
/// a replacement by rename and a new file in a listed directory must show
/// on the very next request.
#[test]
fn changes_on_disk_show_at_once_despite_the_cache() {
    let tree = tree();
    let path = tree.root.path().join("list/news.txt");
    std::fs::write(&path, "version 1\n").unwrap();
    // Old enough to be kept (cache::SETTLE).
    std::thread::sleep(Duration::from_millis(1100));
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    let mut get = |path: &str| {
        let response = client.request("GET", path, &[]).unwrap();
        expect(&server, &response, 200);
        response.text()
    };
    for _ in 0..2 {
        assert_eq!(get("/list/news.txt"), "version 1\n");
        assert!(!get("/list/").contains("later.txt"));
    }
    std::fs::write(&path, "version 2\n").unwrap();
    std::fs::write(tree.root.path().join("list/later.txt"), "later\n").unwrap();
    assert_eq!(get("/list/news.txt"), "version 2\n");
    assert!(get("/list/").contains("later.txt"), "the listing missed a new file");
    let staged = tree.root.path().join("news.txt.new");
    std::fs::write(&staged, "version 3\n").unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert_eq!(get("/list/news.txt"), "version 3\n");
}

/// A large file cut short while it is being sent: the response ends short
/// and its connection closes (as nginx's does), and the server, which never
/// touches the file's pages itself, goes on serving.
#[test]
fn a_large_file_truncated_while_sent_ends_that_response_only() {
    const SIZE: usize = 64 << 20;
    let tree = tree();
    let path = tree.root.path().join("shrinking.bin");
    std::fs::write(&path, pattern(SIZE)).unwrap();
    let (server, addr) = start(tree.root.path(), &[]);
    let mut client = Client::new(addr);
    client.send("GET /shrinking.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    client.skip_head();
    let mut first = vec![0u8; 1 << 20];
    client.reader.read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(2 << 20).unwrap();
    let mut rest = Vec::new();
    let _ = client.reader.read_to_end(&mut rest);
    let received = first.len() + rest.len();
    assert!(received < SIZE, "all {SIZE} bytes arrived although the file shrank\n{}", server.report());
    assert!(
        first.iter().chain(&rest).zip(pattern(received)).all(|(a, b)| *a == b),
        "wrong bytes before the cut"
    );
    expect(&server, &fetch(&server, addr, "/hello.txt", &[]), 200);
}

/// `systemctl restart` under load: a connection the server accepted just
/// before SIGTERM, whose request it had not read yet, is still answered.
/// (hyper counts such a connection as idle and closes it on a graceful
/// shutdown; the client then sees a reset.)
#[test]
fn a_connection_accepted_before_sigterm_is_answered_after_it() {
    let tree = tree();
    let (mut server, addr) = start(tree.root.path(), &[]);
    expect(&server, &fetch(&server, addr, "/hello.txt", &[]), 200);
    let mut client = Client::new(addr);
    // Long enough for the server to accept it; the request is not sent yet.
    std::thread::sleep(Duration::from_millis(500));
    server.sigterm();
    server.wait_for_log("stopping", LONG);
    client.send("GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut status_line = String::new();
    client.reader.read_line(&mut status_line).unwrap_or_else(|err| panic!("{err}\n{}", server.report()));
    assert!(status_line.starts_with("HTTP/1.1 200"), "answered {status_line:?}\n{}", server.report());
    let status = server.wait(LONG);
    assert!(status.success(), "exit status {status:?}\n{}", server.report());
}

#[test]
fn ready_and_stopping_reach_the_notify_socket() {
    let tree = tree();
    let mut notify = NotifySocket::new();
    let (listener, addr) = tcp_listener();
    let mut server = Launch::new(HTTP)
        .args(["--root".to_owned(), tree.root.path().display().to_string()])
        .socket(listener, "http")
        .notify(&notify)
        .spawn();
    notify.wait_for("READY=1", LONG).unwrap_or_else(|err| panic!("{err}\n{}", server.report()));
    expect(&server, &fetch(&server, addr, "/hello.txt", &[]), 200);
    server.sigterm();
    notify.wait_for("STOPPING=1", LONG).unwrap_or_else(|err| panic!("{err}\n{}", server.report()));
    let status = server.wait(LONG);
    assert!(status.success(), "exit status {status:?}\n{}", server.report());
}

#[test]
fn an_accepted_stream_is_served_then_the_process_exits_0() {
    let tree = tree();
    let (listener, addr) = tcp_listener();
    let client = connect(addr);
    let (accepted, _) = listener.accept().unwrap();
    drop(listener);
    let mut server = Launch::new(HTTP)
        .args(["--root".to_owned(), tree.root.path().display().to_string()])
        .socket(accepted, "http")
        .spawn();
    let mut client = Client { reader: BufReader::new(client) };
    let response = client
        .request("GET", "/hello.txt", &[("Connection", "close")])
        .unwrap_or_else(|err| panic!("{err}\n{}", server.report()));
    expect(&server, &response, 200);
    assert_eq!(response.text(), "hello world\n");
    assert!(client.closed(), "connection still open\n{}", server.report());
    let status = server.wait(LONG);
    assert!(status.success(), "exit status {status:?}\n{}", server.report());
}

#[test]
fn a_bad_root_fails_startup_naming_the_path() {
    let tree = tree();
    let missing = tree.root.path().join("no-such-dir");
    let file = tree.root.path().join("hello.txt");
    for (root, why) in [(&missing, "No such file"), (&file, "not a directory")] {
        let (mut server, _) = start(root, &[]);
        let status = server.wait(LONG);
        assert_eq!(status.code(), Some(2), "{}", server.report());
        let stderr = server.stderr();
        assert!(stderr.contains(&root.display().to_string()) && stderr.contains(why), "{}", server.report());
    }
}

#[test]
fn a_udp_socket_is_refused_with_a_clear_error() {
    let tree = tree();
    let (socket, _) = udp_socket();
    let mut server = Launch::new(HTTP)
        .args(["--root".to_owned(), tree.root.path().display().to_string()])
        .socket(socket, "http-udp")
        .spawn();
    let status = server.wait(LONG);
    assert!(!status.success(), "{}", server.report());
    assert!(server.stderr().contains("UDP socket"), "{}", server.report());
}

/// A site copied with its `.git` and `.env` leaks neither: hidden files are
/// 404 and left out of listings (`.well-known` excepted, RFC 8615), unless
/// `--serve-hidden`. The policy is `sandkasten-content`'s, shared with gopher.
#[test]
fn hidden_files_are_not_served_unless_asked() {
    let tree = tree();
    let r = tree.root.path();
    write_file(r, ".git/config", "[remote \"origin\"] url = git@internal:secret.git\n");
    write_file(r, ".env", "TOKEN=hunter2\n");
    write_file(r, ".well-known/security.txt", "Contact: mailto:security@example.org\n");
    std::os::unix::fs::symlink(r.join(".git"), r.join("public")).unwrap();
    // A hidden name for a public file (found by fuzzing: it was served).
    std::os::unix::fs::symlink(r.join("hello.txt"), r.join(".alias")).unwrap();

    let (server, addr) = start(r, &[]);
    for path in ["/.git/config", "/.env", "/%2egit/config", "/public/config", "/.git/", "/.alias"] {
        let response = fetch(&server, addr, path, &[]);
        expect(&server, &response, 404);
        let body = response.text();
        assert!(!body.contains("secret.git") && !body.contains("hunter2"), "{path} leaked: {body}");
    }
    expect(&server, &fetch(&server, addr, "/.well-known/security.txt", &[]), 200);
    let page = fetch(&server, addr, "/", &[]).text();
    assert!(!page.contains(".git") && !page.contains(".env") && !page.contains("public"), "{page}");
    assert!(page.contains(".well-known"), "{page}");
    drop(server);

    let (server, addr) = start(r, &["--serve-hidden"]);
    let response = fetch(&server, addr, "/.git/config", &[]);
    expect(&server, &response, 200);
    assert!(response.text().contains("secret.git"));
    assert!(fetch(&server, addr, "/", &[]).text().contains(".env"));
    expect(&server, &fetch(&server, addr, "/.alias", &[]), 200);
}
