//! What the http fuzz target checks, kept out of the target so it reads as
//! plain code (and is compiled by `cargo clippy` in this crate).
//!
//! The tree (built once per process, under `$TMPDIR`) holds every way out of
//! the root we know of, and every file's content says what it is: `public:`
//! for what may be served, [`HIDDEN`] for hidden files and [`OUTSIDE`] for the
//! directory beside the root. A response that carries either marker (the
//! first only under the default policy) is a failure, whatever its status.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use http::{header, Method, Request, StatusCode, Uri};
use sandkasten_content::is_hidden;
use sandkasten_http::fuzzing::{self, Located};
use sandkasten_http::{Hidden, Site};

/// In every hidden file below the root.
pub const HIDDEN: &str = "HIDDEN-SECRET";
/// In every file outside the root.
pub const OUTSIDE: &str = "OUTSIDE-SECRET";

/// The tree, both policies over it, and a runtime for the handler.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The canonical content root.
    pub root: PathBuf,
    /// The default policy: hidden files refused.
    pub refuse: Arc<Site>,
    /// `--serve-hidden`.
    pub serve: Arc<Site>,
    runtime: tokio::runtime::Runtime,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn link(target: &str, root: &Path, rel: &str) {
    std::os::unix::fs::symlink(target, root.join(rel)).unwrap();
}

fn build() -> Fixture {
    let dir = tempfile::Builder::new().prefix("sandkasten-http-fuzz").tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("www");
    write(&base, "outside/secret.txt", OUTSIDE);
    write(&base, "outside/index.html", OUTSIDE);
    write(&base, "www-evil/secret.txt", OUTSIDE); // a sibling whose name extends the root's
    for rel in [
        "index.html",
        "hello.txt",
        "app.js",
        "app.js.gz",
        "app.js.br",
        "lib.js",
        "docs/a.txt",
        "docs/a b.txt",
        "docs/%41.txt",
        "docs/ünï.txt",
        "docs/sub/b.txt",
        "docs/weird/index.html/inner.txt",
        "site/index.html",
        "site/index.html.gz",
        ".well-known/security.txt",
        "well/known.txt",
    ] {
        write(&root, rel, &format!("public:{rel}"));
    }
    std::fs::write(root.join(OsStr::from_bytes(b"docs/\xff.txt")), "public:docs/%FF.txt").unwrap();
    // Larger than the handler's small-file shortcut: tower-http streams it.
    std::fs::write(root.join("big.txt"), "public:big.txt ".repeat(20_000)).unwrap();
    for rel in
        [".git/config", ".git/HEAD", ".env", ".well-known/.secret", "docs/.htpasswd", ".hidden/index.html"]
    {
        write(&root, rel, HIDDEN);
    }
    link("../outside/secret.txt", &root, "escape.txt");
    link("../outside", &root, "escape-dir");
    link("../www-evil", &root, "evil");
    link("/etc", &root, "etc");
    link("..", &root, "up");
    link(".", &root, "self");
    link(".git", &root, "public"); // a harmless name for a hidden directory
    link(".env", &root, "env.txt");
    link("hello.txt", &root, "alias.txt");
    link("hello.txt", &root, ".alias"); // a hidden name for a public file
    link("docs", &root, ".docs");
    link("loop", &root, "loop");
    link("nowhere", &root, "dangling");
    link("../outside/secret.txt", &root, "lib.js.gz"); // a sibling that escapes
    link("../.git/HEAD", &root, "docs/a.txt.br"); // a sibling that is hidden
    let fifo = std::process::Command::new("mkfifo").arg(root.join("fifo")).status().unwrap();
    assert!(fifo.success(), "mkfifo failed");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refuse = Arc::new(Site::open(&root, Hidden::Refuse).unwrap());
    let serve = Arc::new(Site::open(&root, Hidden::Serve).unwrap());
    Fixture { _dir: dir, root, refuse, serve, runtime }
}

/// One input: the bytes of a request target (what follows the method on
/// the request line).
pub fn check_target(data: &[u8]) {
    let fx = fixture();
    // hyper takes the target with `Uri::from_maybe_shared` after httparse;
    // what does not parse is a 400 before the handler.
    let Ok(uri) = Uri::try_from(data) else { return };
    let path = uri.path();
    let segments = match fuzzing::decode(path) {
        Ok(segments) => segments,
        Err(refused) => {
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path:?}: {refused:?}");
            for site in [&fx.refuse, &fx.serve] {
                let response = respond(fx, site, &uri);
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path:?}");
            }
            return;
        }
    };
    check_segments(path, &segments);
    check_location(&segments);
    for (site, hidden) in [(&fx.refuse, Hidden::Refuse), (&fx.serve, Hidden::Serve)] {
        check_site(fx, site, hidden, &uri, &segments);
    }
}

/// Decoding leaves nothing that could climb: no empty, `.` or `..`
/// segment, no `/` or NUL inside one.
fn check_segments(path: &str, segments: &[OsString]) {
    for segment in segments {
        let bytes = segment.as_bytes();
        assert!(
            !matches!(bytes, b"" | b"." | b"..") && !bytes.contains(&b'/') && !bytes.contains(&0),
            "{path:?} decoded to the segment {segment:?}"
        );
    }
}

/// The `Location:` of a redirect is a header value, an absolute path (never
/// `//host`), and names the same segments.
fn check_location(segments: &[OsString]) {
    let location = fuzzing::encode(segments);
    assert!(location.starts_with('/') && !location.starts_with("//"), "Location {location:?}");
    assert!(http::HeaderValue::from_str(&location).is_ok(), "Location {location:?}");
    let again = fuzzing::decode(&location).unwrap_or_else(|r| panic!("Location {location:?} refused: {r:?}"));
    assert_eq!(again, segments, "Location {location:?}");
}

/// Step 3 against one policy, then the whole response, and that they agree.
fn check_site(fx: &Fixture, site: &Arc<Site>, hidden: Hidden, uri: &Uri, segments: &[OsString]) {
    let path = uri.path();
    let refuse = hidden == Hidden::Refuse;
    let trailing = path.ends_with('/');
    let located = fuzzing::locate(site, segments, trailing, true, true);
    // Under the default policy, a request that names a hidden file (at any
    // depth, whatever it resolves to) is refused.
    if refuse && segments.iter().any(|s| is_hidden(s)) {
        assert!(located.is_err(), "{path:?} names a hidden file, yet {located:?}");
    }
    let expected = match &located {
        Ok(Located::File { path: file, .. }) => {
            check_served_path(fx, refuse, file, path);
            let content = std::fs::read(file).unwrap();
            check_body(refuse, path, &content);
            StatusCode::OK
        }
        Ok(Located::DirWithoutSlash) => {
            assert!(!trailing, "{path:?}: a redirect for a path with its slash");
            StatusCode::MOVED_PERMANENTLY
        }
        Ok(Located::Listing(entries)) => {
            for (name, _) in entries {
                assert!(!refuse || !is_hidden(name), "{path:?} lists {name:?}");
            }
            StatusCode::OK
        }
        Err(refused) => {
            // The tree is readable and every name in it ordinary: a 500 here
            // is a request the server mistook for its own failure.
            assert_ne!(refused.status, StatusCode::INTERNAL_SERVER_ERROR, "{path:?}: {refused:?}");
            refused.status
        }
    };
    let response = respond(fx, site, uri);
    assert_eq!(response.status(), expected, "{path:?} under {hidden:?}: {located:?}");
    check_body(refuse, path, response.body());
    match &located {
        Ok(Located::File { path: file, .. }) => {
            let served = match response.headers().get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
                None => file.clone(),
                Some(b"gzip") => sibling(file, ".gz"),
                Some(b"br") => sibling(file, ".br"),
                Some(other) => panic!("{path:?}: Content-Encoding {other:?}"),
            };
            let content = std::fs::read(&served).unwrap();
            assert_eq!(response.body().as_ref(), content, "{path:?}: the body is not {}", served.display());
        }
        Ok(Located::DirWithoutSlash) => {
            // The query is copied as hyper parsed it (it may hold bytes
            // that are not ASCII); the path is rebuilt from the segments.
            let location = response.headers().get(header::LOCATION).expect("a redirect has a Location");
            let location = location.as_bytes();
            let expect = fuzzing::encode(segments);
            assert!(
                location.starts_with(expect.as_bytes()) && !location.starts_with(b"//"),
                "{path:?} -> {location:?}"
            );
            let rest = &location[expect.len()..];
            assert!(rest.is_empty() || rest[0] == b'?', "{path:?} -> {location:?}");
        }
        Ok(Located::Listing(_)) => {
            let page = String::from_utf8_lossy(response.body());
            for href in page.split("href=\"").skip(1) {
                let href = href.split('"').next().unwrap();
                let name = href.trim_start_matches("./");
                assert!(
                    !refuse || href == "../" || !name.starts_with('.') || name.starts_with(".well-known"),
                    "{path:?} lists {href:?}"
                );
            }
        }
        Err(_) => {}
    }
}

/// A file the policy served: inside the root, a regular file, and under the
/// default policy with no hidden component.
fn check_served_path(fx: &Fixture, refuse: bool, file: &Path, path: &str) {
    let below =
        file.strip_prefix(&fx.root).unwrap_or_else(|_| panic!("{path:?} resolved to {}", file.display()));
    assert!(!refuse || !below.iter().any(is_hidden), "{path:?} resolved to the hidden {}", file.display());
    assert!(std::fs::metadata(file).unwrap().is_file(), "{path:?} resolved to {}", file.display());
}

fn check_body(refuse: bool, path: &str, body: &[u8]) {
    let has = |marker: &str| body.windows(marker.len()).any(|w| w == marker.as_bytes());
    assert!(!has(OUTSIDE) && !has("root:x:0:0"), "{path:?} served a file outside the root");
    assert!(!refuse || !has(HIDDEN), "{path:?} served a hidden file");
}

fn sibling(file: &Path, ext: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

/// The handler's response to a GET of `uri` that accepts gzip and brotli.
fn respond(fx: &Fixture, site: &Arc<Site>, uri: &Uri) -> http::Response<bytes::Bytes> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(())
        .unwrap();
    fx.runtime.block_on(fuzzing::respond(site, request)).expect("reading the response body")
}
