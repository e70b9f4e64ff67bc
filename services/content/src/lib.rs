//! One content-root policy for the servers that serve files (http and
//! gopher): what a path below the root may name, and what a listing shows.
//!
//! - **Containment.** A path is served only when its canonical form lies
//!   below the canonical root: a symlink inside the tree that points at
//!   `/etc` is refused. Without a symlink on the way (the common case) an
//!   `lstat` per component below the root proves that more cheaply than
//!   `realpath`.
//! - **Hidden files are refused by default**: a name that starts with `.`,
//!   anywhere below the root, also when a symlink leads there (a
//!   `public -> .git` link must not reveal `.git`), and when a hidden name
//!   links to a file that is not hidden (`.alias -> index.html`). An admin
//!   who copies a site directory with its `.git`, `.env` or `.htpasswd`
//!   leaks nothing.
//!   The one exception is `.well-known` (RFC 8615), which exists to be
//!   served (ACME challenges, `security.txt`). [`Hidden::Serve`] (the
//!   servers' `--serve-hidden`) serves them all.
//! - **Only regular files and directories**: opening a FIFO would block a
//!   worker forever, a device is no content.
//! - **Listings are capped** at [`MAX_LISTING`] entries, and leave out what
//!   the rules above would refuse: a client learns nothing about the file
//!   system beyond what it may fetch.
//!
//! Compared with others' defaults: static-web-server (since 2.41.0) and
//! gophernicus refuse dotfiles too, but make no `.well-known` exception;
//! nginx serves dotfiles unless a `location` denies them; fastify-static and
//! serve-static refuse them by default, as here. We take the refusing side,
//! since the reference deployment is meant to be copied as it is, and keep
//! one flag to opt out. See README.md for how this policy compares with
//! static-web-server's and gophernicus's, point by point, with sources.
//!
//! SECURITY: the check and the later open are two system calls, so a process
//! that can write into the root could swap a checked path for a symlink in
//! between. The root is meant to be read-only content (`ProtectSystem=strict`,
//! `/usr/share/sandkasten`), which closes that window; `openat2` with
//! `RESOLVE_BENEATH` would close it in the kernel, but tower-http opens by
//! path.
//!
//! Everything here is blocking file-system work: call it from
//! `spawn_blocking`.
#![deny(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The most entries a listing shows; the rest are cut (and the listing says
/// so).
pub const MAX_LISTING: usize = 10_000;

/// The hidden directory that is served anyway (RFC 8615, well-known URIs).
pub const WELL_KNOWN: &str = ".well-known";

/// Whether hidden files are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hidden {
    /// Refused, except [`WELL_KNOWN`] (the default).
    #[default]
    Refuse,
    /// Served like any other file.
    Serve,
}

/// Whether `name` (one path component) is hidden under [`Hidden::Refuse`].
pub fn is_hidden(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.starts_with(b".") && bytes != WELL_KNOWN.as_bytes()
}

/// Why the root given at startup is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// It does not exist or cannot be resolved.
    #[error("content root {}: {source}", path.display())]
    Resolve {
        /// The path as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// It is not a directory.
    #[error("content root {} is not a directory", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// It cannot be listed.
    #[error("content root {} cannot be read: {source}", path.display())]
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Why a path below the root is not served.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// It does not exist, cannot be resolved (a dangling symlink, a cycle),
    /// or the file system refused to look.
    #[error("{0}")]
    Missing(#[source] io::Error),
    /// It resolves (through a symlink) to somewhere outside the root.
    #[error("resolves outside the root to {}", .0.display())]
    Outside(PathBuf),
    /// It is, or resolves to, a hidden file.
    #[error("names a hidden file")]
    Hidden,
    /// Neither a regular file nor a directory (FIFO, socket, device).
    #[error("not a regular file or directory: {}", .0.display())]
    Special(PathBuf),
}

/// One entry of a listing, checked.
#[derive(Debug)]
pub struct Entry {
    /// Its name in the directory.
    pub name: OsString,
    /// What it resolves to, canonical.
    pub path: PathBuf,
    /// Its metadata (of the target, for a symlink).
    pub meta: Metadata,
}

/// A directory's entries that may be served, unsorted.
#[derive(Debug)]
pub struct Listing {
    /// The entries (at most [`MAX_LISTING`]).
    pub entries: Vec<Entry>,
    /// Whether entries were left out to keep the cap.
    pub truncated: bool,
}

/// The directory we serve, canonicalized once at startup, with its policy.
#[derive(Debug, Clone)]
pub struct ContentRoot {
    path: PathBuf,
    hidden: Hidden,
}

impl ContentRoot {
    /// Checks `path` (it must be a readable directory) and remembers its
    /// canonical form.
    pub fn open(path: &Path, hidden: Hidden) -> Result<ContentRoot, RootError> {
        let canonical = std::fs::canonicalize(path)
            .map_err(|source| RootError::Resolve { path: path.to_owned(), source })?;
        if !canonical.is_dir() {
            return Err(RootError::NotADirectory { path: path.to_owned() });
        }
        std::fs::read_dir(&canonical)
            .map_err(|source| RootError::Unreadable { path: path.to_owned(), source })?;
        Ok(ContentRoot { path: canonical, hidden })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `name` may be served or listed by name alone.
    pub fn admits(&self, name: &OsStr) -> bool {
        self.hidden == Hidden::Serve || !is_hidden(name)
    }

    /// `path`'s canonical form and metadata, when the policy serves it.
    pub fn contain(&self, path: &Path) -> Result<(PathBuf, Metadata), Refused> {
        // The names asked for count, not only where they lead: a hidden
        // `.alias -> index.html` is refused like any hidden name (gopher's
        // selector check always did so; http served it until fuzzing found
        // it).
        if let Ok(below) = path.strip_prefix(&self.path) {
            if below.iter().any(|name| !self.admits(name)) {
                return Err(Refused::Hidden);
            }
        }
        let (canonical, meta) = match self.without_symlinks(path)? {
            Some(found) => found,
            None => {
                let canonical = std::fs::canonicalize(path).map_err(Refused::Missing)?;
                let meta = std::fs::metadata(&canonical).map_err(Refused::Missing)?;
                (canonical, meta)
            }
        };
        let below = canonical.strip_prefix(&self.path).map_err(|_| Refused::Outside(canonical.clone()))?;
        if below.iter().any(|name| !self.admits(name)) {
            return Err(Refused::Hidden);
        }
        if !meta.is_dir() && !meta.is_file() {
            return Err(Refused::Special(canonical));
        }
        Ok((canonical, meta))
    }

    /// The common case of [`ContentRoot::contain`], cheaper: when no
    /// component of `path` below the root is a symlink (and none is `..`),
    /// `path` is canonical already. One `lstat` per component below the
    /// root, where `realpath` costs a `readlink` for every component from
    /// `/`, then a `stat`. `None` when a symlink is on the way or `path` is
    /// not plainly below the root: `canonicalize` then decides.
    fn without_symlinks(&self, path: &Path) -> Result<Option<(PathBuf, Metadata)>, Refused> {
        let Ok(below) = path.strip_prefix(&self.path) else { return Ok(None) };
        let mut walked = self.path.clone();
        let mut last = None;
        for component in below.components() {
            let Component::Normal(name) = component else { return Ok(None) };
            walked.push(name);
            let meta = std::fs::symlink_metadata(&walked).map_err(Refused::Missing)?;
            if meta.file_type().is_symlink() {
                return Ok(None);
            }
            last = Some(meta);
        }
        Ok(last.map(|meta| (walked, meta)))
    }

    /// The entries of directory `dir` that the policy serves: hidden names
    /// and entries that resolve outside the root, to a hidden file or to
    /// something special are left out; at most [`MAX_LISTING`].
    pub fn list(&self, dir: &Path) -> io::Result<Listing> {
        // When `dir` is itself canonical and served, an entry that is no
        // symlink lies at `dir/name`, inside the root, and is checked with
        // its own `lstat`; a symlink (or a `dir` that is not canonical)
        // takes `contain`'s whole walk. Per entry one system call instead of
        // one per component below the root.
        let plain_dir =
            matches!(self.contain(dir), Ok((canonical, meta)) if canonical == dir && meta.is_dir());
        let mut entries = Vec::new();
        let mut truncated = false;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !self.admits(&name) {
                continue;
            }
            let found = match plain_dir.then(|| entry.metadata()) {
                Some(Ok(meta)) if meta.is_file() || meta.is_dir() => Some((entry.path(), meta)),
                // Gone meanwhile, or a FIFO, socket or device: not served.
                Some(Err(_)) => continue,
                Some(Ok(meta)) if !meta.file_type().is_symlink() => continue,
                _ => self.contain(&entry.path()).ok(),
            };
            let Some((path, meta)) = found else { continue };
            if entries.len() >= MAX_LISTING {
                truncated = true;
                break;
            }
            entries.push(Entry { name, path, meta });
        }
        Ok(Listing { entries, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A site as an admin might copy it: content, a `.git`, a `.env`, a
    /// `.well-known`, links in and out, a FIFO.
    fn site() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join(".well-known/acme-challenge")).unwrap();
        std::fs::write(root.join("index.html"), "hi").unwrap();
        std::fs::write(root.join(".git/config"), "[remote] url = secret").unwrap();
        std::fs::write(root.join(".env"), "TOKEN=1").unwrap();
        std::fs::write(root.join(".well-known/acme-challenge/t"), "token").unwrap();
        std::fs::write(root.join(".well-known/.secret"), "no").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
        symlink("../outside.txt", root.join("escape.txt")).unwrap();
        symlink(".git", root.join("public")).unwrap();
        symlink("index.html", root.join("alias.html")).unwrap();
        symlink("index.html", root.join(".alias.html")).unwrap();
        symlink("docs", root.join(".docs")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(root.join("pipe")).status().unwrap().success());
        (dir, root)
    }

    fn served(root: &ContentRoot, rel: &str) -> Result<PathBuf, Refused> {
        root.contain(&root.path().join(rel)).map(|(path, _)| path)
    }

    #[test]
    fn hidden_files_are_refused_by_default_and_well_known_is_served() {
        let (_dir, www) = site();
        let root = ContentRoot::open(&www, Hidden::default()).unwrap();
        assert!(matches!(served(&root, ".git/config"), Err(Refused::Hidden)));
        assert!(matches!(served(&root, ".env"), Err(Refused::Hidden)));
        // Through a link with a harmless name, too.
        assert!(matches!(served(&root, "public/config"), Err(Refused::Hidden)));
        // A hidden name is refused whatever it leads to.
        assert!(matches!(served(&root, ".alias.html"), Err(Refused::Hidden)));
        assert!(matches!(served(&root, ".docs"), Err(Refused::Hidden)));
        assert!(matches!(served(&root, ".missing"), Err(Refused::Hidden)));
        assert!(served(&root, ".well-known/acme-challenge/t").is_ok());
        assert!(matches!(served(&root, ".well-known/.secret"), Err(Refused::Hidden)));
        assert!(served(&root, "index.html").is_ok());
        assert!(served(&root, "docs").is_ok());

        let open = ContentRoot::open(&www, Hidden::Serve).unwrap();
        assert!(served(&open, ".git/config").is_ok());
        assert!(served(&open, "public/config").is_ok());
        assert_eq!(served(&open, ".alias.html").unwrap(), open.path().join("index.html"));
    }

    #[test]
    fn links_out_of_the_root_special_files_and_missing_ones_are_refused() {
        let (_dir, www) = site();
        let root = ContentRoot::open(&www, Hidden::Serve).unwrap();
        assert!(matches!(served(&root, "escape.txt"), Err(Refused::Outside(_))));
        assert!(matches!(served(&root, "pipe"), Err(Refused::Special(_))));
        assert!(matches!(served(&root, "missing"), Err(Refused::Missing(_))));
        assert!(matches!(served(&root, "index.html/x"), Err(Refused::Missing(_))));
        // A link inside the root resolves to its target.
        assert_eq!(served(&root, "alias.html").unwrap(), root.path().join("index.html"));
        // `..` is no way out either.
        assert!(matches!(served(&root, "docs/../../outside.txt"), Err(Refused::Outside(_))));
    }

    #[test]
    fn listings_show_only_what_may_be_fetched() {
        let (_dir, www) = site();
        let root = ContentRoot::open(&www, Hidden::default()).unwrap();
        let listing = root.list(root.path()).unwrap();
        let mut names: Vec<_> =
            listing.entries.iter().map(|e| e.name.to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, [".well-known", "alias.html", "docs", "index.html"]);
        assert!(!listing.truncated);
    }

    #[test]
    fn listings_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..=MAX_LISTING {
            std::fs::write(dir.path().join(format!("f{i}")), "").unwrap();
        }
        let root = ContentRoot::open(dir.path(), Hidden::default()).unwrap();
        let listing = root.list(root.path()).unwrap();
        assert_eq!(listing.entries.len(), MAX_LISTING);
        assert!(listing.truncated);
    }

    #[test]
    fn bad_roots_name_the_path() {
        let err = ContentRoot::open(Path::new("/nonexistent/www"), Hidden::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/www"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = ContentRoot::open(file.path(), Hidden::default()).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
