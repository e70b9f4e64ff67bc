//! SECURITY: from a request path to a file inside the root, or a refusal.
//!
//! Two steps, both required:
//!
//! 1. [`decode`] splits the raw path on `/` *before* percent-decoding each
//!    segment, so `%2f` cannot smuggle a separator in, and refuses any segment
//!    that decodes to `..`, contains `/` or a NUL byte. `.` and empty segments
//!    are dropped. Nothing that could climb out of the root survives.
//! 2. [`locate`] joins the segments to the root and asks the shared content
//!    root (`sandkasten-content`) whether it serves the result: inside the
//!    canonical root (a symlink inside the tree pointing at `/etc` fails),
//!    not hidden (`.git`, `.env`; unless `--serve-hidden`), a regular file
//!    or directory (opening a FIFO would block a worker forever).
//!
//! The precompressed siblings (`.gz`, `.br`) that tower-http may open instead
//! of the file pass the same check; a bad sibling refuses the request.
//!
//! The check and tower-http's `open` are two system calls; the content
//! root's documentation says why that is acceptable for a read-only root.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use sandkasten_content::{ContentRoot, Refused};

use crate::cache::Listings;

/// Why a request path was not served. [`Refusal::status`] maps each to a
/// status code, [`Refusal::is_suspicious`] says whether it deserves a warning.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// A segment decoded to `..`.
    #[error("path climbs with ..")]
    DotDot,
    /// A segment decoded to something containing `/` (`%2f`).
    #[error("encoded / in a path segment")]
    EncodedSlash,
    /// A segment contained a NUL byte (`%00`).
    #[error("NUL byte in path")]
    Nul,
    /// The path resolves (through a symlink) to somewhere outside the root.
    #[error("resolves outside the root to {}", .0.display())]
    Outside(PathBuf),
    /// The path is, or resolves to, a hidden file (answered as not found).
    #[error("hidden file")]
    Hidden,
    /// The path is a FIFO, socket or device.
    #[error("not a regular file or directory: {}", .0.display())]
    NotRegular(PathBuf),
    /// Nothing there (or a path component is not a directory).
    #[error("not found")]
    NotFound,
    /// The file system said no.
    #[error("permission denied")]
    Forbidden,
    /// Any other I/O error.
    #[error("{0}")]
    Io(io::Error),
}

impl Refusal {
    /// The status code to answer with.
    pub(crate) fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Refusal::DotDot | Refusal::EncodedSlash | Refusal::Nul => StatusCode::BAD_REQUEST,
            Refusal::Outside(_) | Refusal::NotRegular(_) | Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::NotFound | Refusal::Hidden => StatusCode::NOT_FOUND,
            Refusal::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this looks like an attempt to leave the root (or a tree that
    /// allows one), worth a warning rather than a debug line.
    pub(crate) fn is_suspicious(&self) -> bool {
        matches!(
            self,
            Refusal::DotDot
                | Refusal::EncodedSlash
                | Refusal::Nul
                | Refusal::Outside(_)
                | Refusal::NotRegular(_)
        )
    }

    fn from_content(refused: Refused) -> Refusal {
        match refused {
            Refused::Missing(err) => Refusal::from_io(err),
            Refused::Outside(path) => Refusal::Outside(path),
            Refused::Hidden => Refusal::Hidden,
            Refused::Special(path) => Refusal::NotRegular(path),
        }
    }

    fn from_io(err: io::Error) -> Refusal {
        // ENOTDIR: `/file.txt/x`; ELOOP: a symlink cycle; ENAMETOOLONG: a
        // segment over 255 bytes or a path over PATH_MAX, which the client
        // chose (found by fuzzing: it was a 500 and an error in the log).
        // None names a file.
        const ENOTDIR: i32 = 20;
        const ENAMETOOLONG: i32 = 36;
        const ELOOP: i32 = 40;
        match err.kind() {
            io::ErrorKind::NotFound => Refusal::NotFound,
            io::ErrorKind::PermissionDenied => Refusal::Forbidden,
            _ if matches!(err.raw_os_error(), Some(ENOTDIR | ENAMETOOLONG | ELOOP)) => Refusal::NotFound,
            _ => Refusal::Io(err),
        }
    }
}

/// Splits and percent-decodes a request path into safe segments.
///
/// Segments are bytes, not UTF-8: file names on Linux are bytes, and a
/// listing links to every name it shows.
pub(crate) fn decode(raw: &str) -> Result<Vec<OsString>, Refusal> {
    let mut segments = Vec::new();
    for segment in raw.split('/') {
        let bytes: Vec<u8> = percent_decode_str(segment).collect();
        match bytes.as_slice() {
            b"" | b"." => continue,
            b".." => return Err(Refusal::DotDot),
            _ if bytes.contains(&0) => return Err(Refusal::Nul),
            _ if bytes.contains(&b'/') => return Err(Refusal::EncodedSlash),
            _ => segments.push(OsString::from_vec(bytes)),
        }
    }
    Ok(segments)
}

/// A regular file inside the root, ready to be served.
#[derive(Debug)]
pub(crate) struct File {
    /// Canonical path: tower-http opens exactly this.
    pub(crate) path: PathBuf,
    /// Its metadata, for the `ETag`.
    pub(crate) meta: Metadata,
    /// Metadata of `path.gz`, if it exists (and was looked for).
    pub(crate) gzip: Option<Metadata>,
    /// Metadata of `path.br`, if it exists (and was looked for).
    pub(crate) br: Option<Metadata>,
}

/// What a request path names.
#[derive(Debug)]
pub(crate) enum Located {
    /// A file (possibly a directory's `index.html`).
    File(Box<File>),
    /// A directory whose request path lacks the trailing `/`: redirect, so
    /// relative links in its page resolve against the directory.
    DirWithoutSlash,
    /// A directory without `index.html`: its entries, for a listing.
    Listing(crate::listing::Listing),
}

/// What [`locate`] should look at besides the path itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The request path ends with `/`, so a directory is served (index or
    /// listing) rather than redirected.
    pub(crate) trailing_slash: bool,
    /// The client may accept gzip: check `file.gz`.
    pub(crate) gzip: bool,
    /// The client may accept brotli: check `file.br`.
    pub(crate) br: bool,
}

/// Finds what `segments` name under `root`, by its policy. Blocking, on
/// the file system (the handler's module note says why it runs inline).
///
/// `listings`, when given, keeps listings of unchanged directories
/// (`cache`).
pub(crate) fn locate(
    root: &ContentRoot,
    listings: Option<&Listings>,
    segments: &[OsString],
    wanted: Wanted,
) -> Result<Located, Refusal> {
    let mut path = root.path().to_path_buf();
    path.extend(segments);
    let (path, meta) = contained(root, &path)?;
    if meta.is_file() {
        return file(root, path, meta, wanted).map(|f| Located::File(Box::new(f)));
    }
    if !wanted.trailing_slash {
        return Ok(Located::DirWithoutSlash);
    }
    match contained(root, &path.join("index.html")) {
        Ok((index, meta)) if meta.is_file() => {
            return file(root, index, meta, wanted).map(|f| Located::File(Box::new(f)))
        }
        // A directory named index.html, or none at all: list instead.
        Ok(_) | Err(Refusal::NotFound) => {}
        Err(refusal) => return Err(refusal),
    }
    if let Some(listing) = listings.and_then(|cache| cache.get(&path, &meta)) {
        return Ok(Located::Listing(listing));
    }
    let listed = root.list(&path).map_err(Refusal::from_io)?;
    // No symlink among the entries: each is at its own name in `path`.
    let plain = listed.entries.iter().all(|entry| entry.path == path.join(&entry.name));
    let listing = crate::listing::Listing::from(listed);
    if let Some(cache) = listings {
        cache.put(&path, &meta, &listing, plain);
    }
    Ok(Located::Listing(listing))
}

/// `path`'s canonical form and metadata, if the content root serves it (a
/// regular file or a directory).
fn contained(root: &ContentRoot, path: &Path) -> Result<(PathBuf, Metadata), Refusal> {
    root.contain(path).map_err(Refusal::from_content)
}

fn file(root: &ContentRoot, path: PathBuf, meta: Metadata, wanted: Wanted) -> Result<File, Refusal> {
    let gzip = if wanted.gzip { sibling(root, &path, ".gz")? } else { None };
    let br = if wanted.br { sibling(root, &path, ".br")? } else { None };
    Ok(File { path, meta, gzip, br })
}

/// Checks the precompressed sibling `path` + `ext` that tower-http would
/// open: absent is fine, present must be a regular file the root serves.
fn sibling(root: &ContentRoot, path: &Path, ext: &str) -> Result<Option<Metadata>, Refusal> {
    let mut name = path.as_os_str().to_owned();
    name.push(ext);
    let sibling = PathBuf::from(name);
    match std::fs::symlink_metadata(&sibling) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Refusal::from_io(err)),
        Ok(_) => {}
    }
    let (canonical, meta) = contained(root, &sibling)?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular(canonical));
    }
    Ok(Some(meta))
}

/// The normalized path of `segments`, percent-encoded, for `Location:`
/// headers. Rebuilt from the decoded segments, never copied from the
/// request, so `//evil.example` cannot become a protocol-relative redirect.
pub(crate) fn encode(segments: &[OsString]) -> String {
    let mut out = String::from("/");
    for segment in segments {
        out.extend(percent_encoding::percent_encode(segment.as_bytes(), crate::listing::SEGMENT));
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandkasten_content::Hidden;

    fn names(raw: &str) -> Vec<String> {
        decode(raw).unwrap().iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn decode_keeps_normal_segments_and_drops_dots() {
        assert_eq!(names("/a/./b//c%20d"), ["a", "b", "c d"]);
        assert!(names("/").is_empty());
    }

    #[test]
    fn decode_refuses_every_way_up() {
        for raw in ["/..", "/a/../b", "/%2e%2e/x", "/%2E%2e", "/.%2e/"] {
            assert!(matches!(decode(raw), Err(Refusal::DotDot)), "{raw}");
        }
        assert!(matches!(decode("/..%2fetc"), Err(Refusal::EncodedSlash)));
        assert!(matches!(decode("/a%2fb"), Err(Refusal::EncodedSlash)));
        assert!(matches!(decode("/a%00b"), Err(Refusal::Nul)));
    }

    #[test]
    fn locate_refuses_symlinks_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
        std::fs::write(root.path().join("ok"), "y").unwrap();
        let root = ContentRoot::open(root.path(), Hidden::Refuse).unwrap();
        let wanted = Wanted { trailing_slash: false, gzip: true, br: true };
        let got = locate(&root, None, &["link".into()], wanted);
        assert!(matches!(got, Err(Refusal::Outside(_))), "{got:?}");
        // A sibling .gz that escapes refuses the file too.
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("ok.gz")).unwrap();
        let got = locate(&root, None, &["ok".into()], wanted);
        assert!(matches!(got, Err(Refusal::Outside(_))), "{got:?}");
        let wanted = Wanted { gzip: false, ..wanted };
        assert!(matches!(locate(&root, None, &["ok".into()], wanted), Ok(Located::File(_))));
    }

    #[test]
    fn locate_gives_the_canonical_path_with_or_without_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/f"), "z").unwrap();
        std::os::unix::fs::symlink(path.join("sub"), path.join("alias")).unwrap();
        let root = ContentRoot::open(&path, Hidden::Refuse).unwrap();
        let wanted = Wanted { trailing_slash: false, gzip: false, br: false };
        for via in ["sub", "alias"] {
            let Ok(Located::File(file)) = locate(&root, None, &[via.into(), "f".into()], wanted) else {
                panic!("{via}/f not found");
            };
            assert_eq!(file.path, path.join("sub/f"), "via {via}");
        }
        // A file used as a directory is not found, on either path.
        let got = locate(&root, None, &["sub".into(), "f".into(), "x".into()], wanted);
        assert!(matches!(got, Err(Refusal::NotFound)), "{got:?}");
    }

    #[test]
    fn locate_refuses_hidden_files_unless_asked_and_serves_well_known() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::create_dir_all(dir.path().join(".well-known")).unwrap();
        std::fs::write(dir.path().join(".git/config"), "secret").unwrap();
        std::fs::write(dir.path().join(".well-known/security.txt"), "Contact: x").unwrap();
        let wanted = Wanted { trailing_slash: false, gzip: false, br: false };
        let root = ContentRoot::open(dir.path(), Hidden::Refuse).unwrap();
        let got = locate(&root, None, &[".git".into(), "config".into()], wanted);
        assert!(matches!(got, Err(Refusal::Hidden)), "{got:?}");
        assert_eq!(Refusal::Hidden.status(), http::StatusCode::NOT_FOUND);
        let got = locate(&root, None, &[".well-known".into(), "security.txt".into()], wanted);
        assert!(matches!(got, Ok(Located::File(_))), "{got:?}");
        let root = ContentRoot::open(dir.path(), Hidden::Serve).unwrap();
        let got = locate(&root, None, &[".git".into(), "config".into()], wanted);
        assert!(matches!(got, Ok(Located::File(_))), "{got:?}");
    }

    #[test]
    fn locate_answers_names_too_long_for_the_file_system_as_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("s")).unwrap();
        let root = ContentRoot::open(dir.path(), Hidden::Refuse).unwrap();
        let wanted = Wanted { trailing_slash: false, gzip: true, br: true };
        // One segment over NAME_MAX (255 bytes), and a path over PATH_MAX
        // (4096) of short segments that all exist (`s -> .`): ENAMETOOLONG,
        // the client's doing.
        let long_name = vec!["a".repeat(256).into()];
        let long_path = vec![OsString::from("s"); 2100];
        for segments in [long_name, long_path] {
            let got = locate(&root, None, &segments, wanted);
            assert!(matches!(got, Err(Refusal::NotFound)), "{got:?}");
        }
        assert_eq!(Refusal::NotFound.status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn encode_rebuilds_a_safe_location() {
        assert_eq!(encode(&["a b".into(), "evil.example".into()]), "/a%20b/evil.example/");
        assert_eq!(encode(&[]), "/");
    }
}
