//! What the gopher fuzz targets check, kept out of the targets so it reads
//! as plain code (and is compiled by `cargo clippy` in this crate).
//!
//! The tree (built once per process, under `$TMPDIR`) holds every way out of
//! the root we know of, and every file's content says what it is: `public:`
//! for what may be served, [`HIDDEN`] for hidden files and [`OUTSIDE`] for the
//! directory beside the root. A file, menu or error that carries either
//! marker is a failure.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sandkasten_content::is_hidden;
use sandkasten_gopher::gophermap;
use sandkasten_gopher::menu::{self, Item, ItemType, Origin};
use sandkasten_gopher::selector::{
    self, Request, SelectorError, MAX_LINE, MAX_QUERY, MAX_SELECTOR, SEARCH_SELECTOR,
};
use sandkasten_gopher::{respond, Config, RequestError, Response};

/// In every hidden file below the root.
pub const HIDDEN: &str = "HIDDEN-SECRET";
/// In every file outside the root.
pub const OUTSIDE: &str = "OUTSIDE-SECRET";

/// The sample gophermap shipped with the server.
const SAMPLE: &str = include_str!("../../sample/gophermap");

/// The tree and the server's configuration over it.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The canonical content root.
    pub root: PathBuf,
    /// As the server is configured for it.
    pub config: Config,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

/// Where menus say this server is.
pub fn origin() -> Origin {
    Origin { host: "gopher.example".into(), port: 7070 }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn link(target: &str, root: &Path, rel: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// A directory path whose files' selectors are longer than a selector may
/// be, though the directory itself can be asked for.
pub const DEEP: &str = "deep/0123456789012345678901234567890123456789012345678901234567890123456789\
                        /0123456789012345678901234567890123456789012345678901234567890123456789\
                        /0123456789012345678901234567890123456789012345678901234567890123456789";

fn build() -> Fixture {
    let dir = tempfile::Builder::new().prefix("sandkasten-gopher-fuzz").tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("root");
    write(&base, "outside/secret.txt", OUTSIDE);
    write(&base, "outside/gophermap", &format!("{OUTSIDE}\n0x\t/x\n"));
    write(&base, "root-evil/secret.txt", OUTSIDE); // a sibling whose name extends the root's
    for rel in [
        "hello.txt",
        "README",
        "page.html",
        "pic.gif",
        "a..b",
        "ünï cödé.txt",
        "docs/guide.txt",
        "docs/deep/nested/Needle-Report.txt",
        "map/local.txt",
        "sample/docs/why-socket-activation.txt",
        ".well-known/security.txt",
        "search/shadowed.txt",
        "caps.txt",
    ] {
        write(&root, rel, &format!("public:{rel}\n"));
    }
    write(&root, &format!("{DEEP}/a-file-name-that-takes-the-selector-past-255-bytes.txt"), "public:deep\n");
    std::fs::write(root.join("data.bin"), [0u8, 1, 2, 255, 254]).unwrap();
    write(&root, "sample/gophermap", SAMPLE);
    write(
        &root,
        "map/gophermap",
        "Welcome to the map\n0Guide\t../docs/guide.txt\n0Local\tlocal.txt\n0Up and out\t../../../../etc/passwd\n\
         1Elsewhere\t/docs\tother.example\t70\n1Root\t/\t\t\nhWeb\tURL:https://example.org/\n*\nafter the star\n",
    );
    std::fs::create_dir_all(root.join("mapdir/gophermap")).unwrap(); // a directory called gophermap
    for name in ["tab\tname.txt", "cr\rname.txt", "new\nline.txt", "del\x7f.txt"] {
        write(&root, &format!("controls/{name}"), "public:controls\n");
    }
    for rel in
        [".secret", ".git/config", ".git/gophermap", "docs/.env", "docs/.git/needle", ".well-known/.key"]
    {
        write(&root, rel, HIDDEN);
    }
    link("../outside/secret.txt", &root, "escape.txt");
    link("../outside", &root, "escape-dir");
    link("../root-evil", &root, "evil");
    link("/etc", &root, "etc");
    link("/etc/passwd", &root, "passwd.txt");
    link("..", &root, "up");
    link(".", &root, "self");
    link(".git", &root, "public"); // a harmless name for a hidden directory
    link(".secret", &root, "secret.txt");
    link("hello.txt", &root, "alias.txt");
    link("hello.txt", &root, ".alias");
    link("loop", &root, "loop");
    link("nowhere", &root, "dangling");
    link("../../outside/gophermap", &root, "escmap/gophermap"); // a map that links out
    link("../.git/gophermap", &root, "hiddenmap/gophermap"); // a map that is hidden
    std::fs::create_dir_all(root.join("fifomap")).unwrap();
    for fifo in ["fifo", "fifomap/gophermap"] {
        let made = std::process::Command::new("mkfifo").arg(root.join(fifo)).status().unwrap();
        assert!(made.success(), "mkfifo {fifo} failed");
    }
    let config = Config::new(&root, Some("gopher.example".into()), Some(7070)).unwrap();
    Fixture { _dir: dir, root, config }
}

/// What a client sent, cut as the server cuts its request line: up to the
/// first LF within [`MAX_LINE`] bytes, or all of it at EOF.
enum Line<'a> {
    Complete(&'a [u8]),
    Empty,
    TooLong,
}

fn request_line(data: &[u8]) -> Line<'_> {
    let window = &data[..data.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(at) => Line::Complete(selector::strip_terminator(&data[..=at])),
        None if data.len() >= MAX_LINE => Line::TooLong,
        None if data.is_empty() => Line::Empty,
        None => Line::Complete(data),
    }
}

/// One input of `gopher_selector`: the bytes a client sent.
pub fn check_request(data: &[u8]) {
    let fx = fixture();
    let line = match request_line(data) {
        Line::Complete(line) => line,
        Line::Empty => return,
        Line::TooLong => {
            check_error(&RequestError::Selector(SelectorError::LineTooLong), data);
            return;
        }
    };
    let request = match selector::parse(line) {
        Ok(request) => request,
        Err(err) => {
            check_error(&RequestError::Selector(err), line);
            return;
        }
    };
    check_parsed(line, &request);
    match respond(&fx.config, &request) {
        Ok(Response::File(mut file)) => {
            let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
            check_served_path(fx, &path, line);
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            check_no_secret(&content, line);
        }
        Ok(Response::Menu(items)) => {
            let text = menu::render(&items, &origin());
            check_menu(&text, items.len());
            check_no_secret(text.as_bytes(), line);
            for item in items.iter().filter(|i| i.host.is_none() && i.kind != ItemType::INFO) {
                check_local_selector(item, line);
            }
        }
        Ok(Response::Text(text)) => assert_eq!(request, Request::Caps, "{line:?} -> {text:?}"),
        Err(err) => {
            // The tree is readable: an I/O error here is a request the
            // server mistook for its own failure.
            assert!(matches!(err, RequestError::Resolve(_)), "{line:?}: {err:?}");
            check_error(&err, line);
        }
    }
}

/// A parsed request keeps every rule of `selector`'s.
fn check_parsed(line: &[u8], request: &Request) {
    assert!(!line.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)), "{line:?} -> {request:?}");
    match request {
        Request::Path(components) => {
            for c in components {
                assert!(!matches!(c.as_str(), "" | "." | ".."), "{line:?} -> {request:?}");
                assert!(!c.contains(['/', '\t']) && !is_hidden(c.as_ref()), "{line:?} -> {request:?}");
            }
            assert!(Request::path_selector(components).len() <= MAX_SELECTOR, "{line:?} -> {request:?}");
            // No `..` and no hidden name anywhere in what was asked, also
            // where normalising would have dropped it.
            let asked = String::from_utf8_lossy(line);
            assert!(!asked.split('/').any(|c| c == ".."), "{line:?} -> {request:?}");
        }
        Request::Search { query } => {
            assert!(!query.is_empty() && query.trim() == query, "{line:?} -> {request:?}");
            assert!(query.len() <= MAX_QUERY && !query.contains('\t'), "{line:?} -> {request:?}");
        }
        Request::Caps => {}
    }
}

/// A file the server opened: inside the root, no hidden component, regular.
fn check_served_path(fx: &Fixture, path: &Path, line: &[u8]) {
    let below = path.strip_prefix(&fx.root).unwrap_or_else(|_| panic!("{line:?} opened {}", path.display()));
    assert!(!below.iter().any(is_hidden), "{line:?} opened the hidden {}", path.display());
    assert!(std::fs::metadata(path).unwrap().is_file(), "{line:?} opened {}", path.display());
}

fn check_no_secret(bytes: &[u8], line: &[u8]) {
    // A search menu repeats the query: a marker the client typed is no leak.
    let within =
        |haystack: &[u8], marker: &str| haystack.windows(marker.len()).any(|w| w == marker.as_bytes());
    let has = |marker: &str| within(bytes, marker) && !within(line, marker);
    assert!(!has(OUTSIDE) && !has("root:x:0:0"), "{line:?} sent something from outside the root");
    assert!(!has(HIDDEN), "{line:?} sent something hidden");
}

/// A local item in a menu names something the server would serve: a
/// selector it accepts. (The fixture's gophermaps name nothing else.)
fn check_local_selector(item: &Item, line: &[u8]) {
    // `URL:` links leave gopher; a directory called `search` in the root is
    // shadowed by the search selector (documented at SEARCH_SELECTOR).
    if item.selector.starts_with("URL:")
        || (item.selector == SEARCH_SELECTOR && item.kind != ItemType::SEARCH)
    {
        return;
    }
    // A search item's selector takes the query after a TAB.
    let mut asked = item.selector.clone().into_bytes();
    if item.kind == ItemType::SEARCH {
        asked.extend(b"\twords");
    }
    let parsed = selector::parse(&asked);
    assert!(parsed.is_ok(), "{line:?}: the menu offers {:?}, which is refused: {parsed:?}", item.selector);
}

/// The type 3 error for `err` is a well-formed menu and gives nothing away.
fn check_error(err: &RequestError, line: &[u8]) {
    let message = err.client_message();
    let text = menu::error(&message);
    check_menu(&text, 1);
    assert!(text.starts_with('3'), "{line:?} -> {text:?}");
    check_no_secret(text.as_bytes(), line);
}

/// One input of `gophermap`: any bytes as a gophermap file.
pub fn check_gophermap(data: &[u8]) {
    // As `Root::menu` reads it.
    let text = String::from_utf8_lossy(data);
    for dir in ["", "/sub/dir"] {
        let map = gophermap::parse(&text, dir);
        assert!(map.items.len() <= text.lines().count(), "more items than lines");
        for item in &map.items {
            if item.host.is_none() && !item.selector.starts_with("URL:") && item.kind != ItemType::INFO {
                // Relative selectors were joined onto the map's directory;
                // written ones start with `/`.
                assert!(item.selector.starts_with('/'), "local selector {:?}", item.selector);
            }
        }
        check_menu(&menu::render(&map.items, &origin()), map.items.len());
    }
}

/// `text` is a complete RFC 1436 menu of `items` lines: each line ends with
/// CRLF (no bare CR or LF anywhere), holds exactly four TAB-separated
/// fields (type and display, selector, host, port), starts with a printable
/// type character, names a host and a decimal port; then the `.` line.
pub fn check_menu(text: &str, items: usize) {
    let body = text.strip_suffix(".\r\n").unwrap_or_else(|| panic!("no final . line: {text:?}"));
    let lines: Vec<&str> = body.split_terminator("\r\n").collect();
    assert!(body.is_empty() || body.ends_with("\r\n"), "unterminated line: {text:?}");
    assert_eq!(lines.len(), items, "{text:?}");
    for line in lines {
        assert!(!line.contains(['\r', '\n']), "bare CR or LF in {line:?}");
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "not four fields: {line:?}");
        let kind = fields[0].chars().next().unwrap_or_else(|| panic!("no type in {line:?}"));
        assert!(kind.is_ascii_graphic(), "type {kind:?} in {line:?}");
        assert!(!fields[2].is_empty(), "no host in {line:?}");
        let port = fields[3];
        assert!(
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
            "port {port:?} in {line:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_check_catches_broken_lines() {
        let item = Item::local(ItemType::TEXT, "a\tb\nc", "/s");
        check_menu(&menu::render(&[item], &origin()), 1);
        for broken in [
            "0a\t/s\th\t70\n.\r\n",
            "0a\t/s\th\r\n.\r\n",
            "0a\t/s\th\tx\r\n.\r\n",
            "0a\t/s\t\t70\r\n.\r\n",
            " a\t/s\th\t70\r\n.\r\n",
            "0a\t/s\th\t70\r\n",
        ] {
            assert!(std::panic::catch_unwind(|| check_menu(broken, 1)).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn request_lines_are_cut_as_the_server_cuts_them() {
        assert!(matches!(request_line(b"/a\r\nrest"), Line::Complete(b"/a")));
        assert!(matches!(request_line(b"/a\r"), Line::Complete(b"/a\r")));
        assert!(matches!(request_line(b""), Line::Empty));
        assert!(matches!(request_line(&[b'a'; MAX_LINE]), Line::TooLong));
    }
}
