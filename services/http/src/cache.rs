//! Small files and directory listings kept in memory, checked against the
//! file system on every request.
//!
//! A small file's answer costs the lookup's `lstat`, then `open`, `fstat`,
//! `read` and `close`: four of the seven system calls of a keep-alive
//! request for a 1 KiB file, and on two cores shared with the load
//! generator the difference between us and nginx (`scripts/bench`). A
//! listing costs an `lstat` per entry. [`SmallFiles`] keeps what the four
//! calls return, [`Listings`] what the `lstat`s made of a directory, and
//! each serves it only while the lookup's `lstat` (made for this request
//! anyway) still describes the same file or directory: device, inode, size,
//! modification and change time.
//!
//! # Why that check suffices
//! Every write to a file changes its modification and change time, every
//! entry created, removed or renamed in a directory changes the
//! directory's, and `rename` (how a deploy replaces a file) brings another
//! inode. Timestamps come from a coarse clock, though: two changes within
//! one tick (a few milliseconds) can leave the same times, and a version
//! read between them would pass the check. So nothing is kept that changed
//! within the last [`SETTLE`] (what git does for its "racily clean"
//! index entries): a later change then always brings a later timestamp.
//! A listing with a symlink is never kept: the link's target can change
//! without its directory changing.
//!
//! # Bounds
//! At most [`FILE_BYTES`] bytes of file content and [`LISTED_NAMES`] listed
//! names; when a new one does not fit, that cache starts over empty (what a
//! site serves most comes back first). Only files up to `SMALL_FILE`, which
//! the handler would read whole anyway.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::listing::Listing;

/// File content held at most, summed over the cached files.
pub(crate) const FILE_BYTES: usize = 2 * 1024 * 1024;
/// Listed names held at most, summed over the cached listings.
pub(crate) const LISTED_NAMES: usize = 20_000;
/// How long ago a file or directory must have changed last to be kept.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);

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
    /// The identity of what `meta` describes, if it changed no later than
    /// `settle` ago (see the module note).
    fn settled(meta: &Metadata, settle: Duration) -> Option<Identity> {
        let changed = |secs: i64, nanos: i64| {
            UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
        };
        let now = SystemTime::now();
        let long_ago = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age >= settle);
        (long_ago(changed(meta.mtime(), meta.mtime_nsec()))
            && long_ago(changed(meta.ctime(), meta.ctime_nsec())))
        .then(|| Identity::of(meta))
    }

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

/// Values by path, each with the identity it was made from, bounded by a
/// sum of sizes: the one shape of both caches.
#[derive(Debug)]
struct Bounded<T> {
    settle: Duration,
    capacity: usize,
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    held: usize,
    values: HashMap<PathBuf, (Identity, T, usize)>,
}

impl<T: Clone> Bounded<T> {
    fn new(capacity: usize, settle: Duration) -> Bounded<T> {
        Bounded { settle, capacity, inner: Mutex::new(Inner { held: 0, values: HashMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `path`, if `meta` (made for this request)
    /// describes what it was made from.
    fn get(&self, path: &Path, meta: &Metadata) -> Option<T> {
        let inner = self.lock();
        let (identity, value, _) = inner.values.get(path)?;
        (*identity == Identity::of(meta)).then(|| value.clone())
    }

    /// Keeps `value`, of `size`, made from what `meta` describes, unless
    /// that changed too lately or `value` alone exceeds the capacity.
    fn put(&self, path: &Path, meta: &Metadata, value: T, size: usize) {
        let Some(identity) = Identity::settled(meta, self.settle) else { return };
        if size > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, _, old)) = inner.values.remove(path) {
            inner.held -= old;
        }
        if inner.held + size > self.capacity {
            inner.values.clear();
            inner.held = 0;
        }
        inner.held += size;
        inner.values.insert(path.to_owned(), (identity, value, size));
    }
}

/// Small files by canonical path; one per site, shared by every
/// connection.
#[derive(Debug)]
pub(crate) struct SmallFiles(Bounded<Whole>);

impl Default for SmallFiles {
    fn default() -> SmallFiles {
        SmallFiles(Bounded::new(FILE_BYTES, SETTLE))
    }
}

impl SmallFiles {
    /// The cached content of `path`, if the lookup's `meta` (an `lstat` of
    /// the canonical path, made for this request) describes the version
    /// that was cached.
    pub(crate) fn get(&self, path: &Path, meta: &Metadata) -> Option<Whole> {
        self.0.get(path, meta)
    }

    /// Keeps `whole`, read from `path` through a handle whose metadata is
    /// `whole.meta`.
    pub(crate) fn put(&self, path: &Path, whole: Whole) {
        let size = whole.bytes.len();
        let meta = whole.meta.clone();
        self.0.put(path, &meta, whole, size);
    }
}

/// Listings by canonical directory; one per site.
#[derive(Debug)]
pub(crate) struct Listings(Bounded<Listing>);

impl Default for Listings {
    fn default() -> Listings {
        Listings(Bounded::new(LISTED_NAMES, SETTLE))
    }
}

impl Listings {
    /// The listing of `dir`, if the lookup's `meta` of it describes the
    /// directory as it was listed.
    pub(crate) fn get(&self, dir: &Path, meta: &Metadata) -> Option<Listing> {
        self.0.get(dir, meta)
    }

    /// Keeps `listing`, made of `dir` after `meta` was read, unless it has
    /// a symlink (`plain` false: see the module note).
    pub(crate) fn put(&self, dir: &Path, meta: &Metadata, listing: &Listing, plain: bool) {
        if plain {
            self.0.put(dir, meta, listing.clone(), listing.entries.len().max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(path: &Path) -> Whole {
        let bytes = std::fs::read(path).unwrap();
        Whole { bytes: Bytes::from(bytes), meta: std::fs::metadata(path).unwrap() }
    }

    fn lstat(path: &Path) -> Metadata {
        std::fs::symlink_metadata(path).unwrap()
    }

    #[test]
    fn a_cached_file_is_served_only_while_its_metadata_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "first").unwrap();
        let cache = Bounded::new(FILE_BYTES, Duration::ZERO);
        let first = whole(&path);
        cache.put(&path, &first.meta, first.clone(), 5);
        let got: Whole = cache.get(&path, &lstat(&path)).unwrap();
        assert_eq!(&got.bytes[..], b"first");
        // Another inode at the same path (a deploy's rename), same size.
        let new = dir.path().join("g");
        std::fs::write(&new, "other").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert!(cache.get(&path, &lstat(&path)).is_none());
    }

    #[test]
    fn what_changed_within_the_settle_time_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh");
        std::fs::write(&path, "just written").unwrap();
        let files = SmallFiles::default();
        files.put(&path, whole(&path));
        assert!(files.get(&path, &lstat(&path)).is_none(), "a file written just now was kept");
    }

    #[test]
    fn a_listing_with_a_symlink_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let listings = Listings(Bounded::new(LISTED_NAMES, Duration::ZERO));
        let meta = lstat(dir.path());
        listings.put(dir.path(), &meta, &Listing::default(), false);
        assert!(listings.get(dir.path(), &meta).is_none());
        listings.put(dir.path(), &meta, &Listing::default(), true);
        assert_eq!(listings.get(dir.path(), &meta), Some(Listing::default()));
        // Past the file-time clock's tick (what SETTLE guards in earnest).
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(dir.path().join("new"), "").unwrap();
        assert!(listings.get(dir.path(), &lstat(dir.path())).is_none(), "a new entry did not end it");
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Bounded::new(FILE_BYTES, Duration::ZERO);
        let chunk = FILE_BYTES / 3;
        for i in 0..4 {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, vec![b'x'; chunk]).unwrap();
            let w = whole(&path);
            cache.put(&path, &w.meta, w.clone(), chunk);
            let inner = cache.lock();
            assert!(inner.held <= FILE_BYTES && inner.held == inner.values.values().map(|v| v.2).sum());
        }
        // Three fit; the fourth did not fit beside them: the cache started over.
        assert_eq!(cache.lock().values.len(), 1);
    }
}
