//! Small files kept in memory, checked against the file on every request.
//!
//! A small file's answer costs the lookup's `lstat`, then `open`, `fstat`,
//! `read` and `close`: four of the seven system calls of a keep-alive
//! request for a 1 KiB file, and on two cores shared with the load
//! generator the difference between us and nginx (`scripts/bench`). This
//! cache keeps what those four return, keyed by the canonical path, and
//! serves it only while the lookup's `lstat` still describes the same file:
//! device, inode, size, modification and change time.
//!
//! # Why that check suffices
//! Every write changes the modification and change time, and `rename`
//! (how a deploy replaces a file) brings another inode. The one case it
//! misses is a file rewritten at the same size within one tick of the
//! kernel's file-time clock (a few milliseconds): then the `ETag` (built from
//! the same size and time) is unchanged too, so every client's cache is as
//! stale as ours; the cache adds no staleness the validators do not already
//! have. nginx's `open_file_cache` trusts a file for 60 s without looking.
//!
//! # Bounds
//! At most [`CAPACITY`] bytes of file content; when a new file does not fit,
//! the cache starts over empty (the files a site serves most come back
//! first). Only files up to `SMALL_FILE`, which the handler would read
//! whole anyway.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// File content held at most, summed over the cached files.
pub(crate) const CAPACITY: usize = 2 * 1024 * 1024;

/// What identifies one version of a file for the cache (see the module
/// note): equal identities, equal content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A file's whole body, read (small) or mapped (large), with the metadata
/// of the handle it was opened through (what the `ETag` and
/// `Last-Modified` must describe).
#[derive(Debug, Clone)]
pub(crate) struct Whole {
    pub(crate) bytes: Bytes,
    pub(crate) meta: Metadata,
}

/// The cache; one per site, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct SmallFiles {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    held: usize,
    files: HashMap<PathBuf, (Identity, Whole)>,
}

impl SmallFiles {
    /// The cached content of `path`, if the lookup's `meta` (an `lstat` of
    /// the canonical path, made for this request) describes the version
    /// that was cached.
    pub(crate) fn get(&self, path: &Path, meta: &Metadata) -> Option<Whole> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (identity, whole) = inner.files.get(path)?;
        (*identity == Identity::of(meta)).then(|| whole.clone())
    }

    /// Keeps `whole`, read from `path` through a handle whose metadata is
    /// `whole.meta`.
    pub(crate) fn put(&self, path: &Path, whole: Whole) {
        let len = whole.bytes.len();
        if len > CAPACITY {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, old)) = inner.files.remove(path) {
            inner.held -= old.bytes.len();
        }
        if inner.held + len > CAPACITY {
            inner.files.clear();
            inner.held = 0;
        }
        inner.held += len;
        inner.files.insert(path.to_owned(), (Identity::of(&whole.meta), whole));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(path: &Path) -> Whole {
        let bytes = std::fs::read(path).unwrap();
        Whole { bytes: Bytes::from(bytes), meta: std::fs::metadata(path).unwrap() }
    }

    #[test]
    fn a_cached_file_is_served_only_while_its_metadata_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "first").unwrap();
        let cache = SmallFiles::default();
        cache.put(&path, whole(&path));
        let got = cache.get(&path, &std::fs::symlink_metadata(&path).unwrap()).unwrap();
        assert_eq!(&got.bytes[..], b"first");
        // Another inode at the same path (a deploy's rename), same size.
        let new = dir.path().join("g");
        std::fs::write(&new, "other").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert!(cache.get(&path, &std::fs::symlink_metadata(&path).unwrap()).is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SmallFiles::default();
        let chunk = CAPACITY / 3;
        for i in 0..4 {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, vec![b'x'; chunk]).unwrap();
            cache.put(&path, whole(&path));
            let inner = cache.inner.lock().unwrap();
            assert!(
                inner.held <= CAPACITY
                    && inner.held == inner.files.values().map(|(_, w)| w.bytes.len()).sum()
            );
        }
        // Three fit; the fourth did not fit beside them: the cache started over.
        assert_eq!(cache.inner.lock().unwrap().files.len(), 1);
    }
}
