//! The content root: what a validated selector names on disk, and menus.
//!
//! What may be served is `sandkasten-content`'s policy, shared with http:
//! inside the canonical root (a symlink inside the tree can point anywhere,
//! so every path is checked where it leads), no hidden component below it
//! (a `public -> .secrets` link must not reveal `.secrets`; `.well-known`
//! excepted), only regular files and directories, listings capped. Entries
//! that fail it are left out of menus and answered as "not found", never as
//! "outside": a client learns nothing about the file system beyond the root.
//! gopher has no `--serve-hidden`: a gopherhole has no use for dotfiles.
//!
//! Everything here is blocking file-system work; the server calls it from
//! `spawn_blocking`.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sandkasten_content::{ContentRoot, Hidden};

use crate::gophermap;
use crate::menu::{Item, ItemType};
use crate::selector::{is_listable_name, MAX_SELECTOR};

/// Name of the file that replaces a directory's generated menu.
pub const GOPHERMAP: &str = "gophermap";

pub use sandkasten_content::{Refused as ResolveError, RootError, MAX_LISTING};

/// The largest gophermap we read.
pub const MAX_GOPHERMAP: u64 = 1024 * 1024;

/// How many bytes decide whether a file without a known extension is text.
const SNIFF_BYTES: usize = 512;

/// What a selector names.
#[derive(Debug)]
pub enum Target {
    /// A directory, by canonical path.
    Directory(PathBuf),
    /// A regular file, opened.
    File(File),
}

/// The directory we serve, canonicalized once at startup.
#[derive(Debug, Clone)]
pub struct Root {
    content: ContentRoot,
}

impl Root {
    /// Checks `path` and remembers its canonical form.
    pub fn open(path: &Path) -> Result<Root, RootError> {
        Ok(Root { content: ContentRoot::open(path, Hidden::Refuse)? })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        self.content.path()
    }

    /// Resolves validated selector components to a directory or an open
    /// file.
    pub fn resolve(&self, components: &[String]) -> Result<Target, ResolveError> {
        let mut path = self.path().to_owned();
        path.extend(components);
        let (canonical, meta) = self.contain(&path)?;
        if meta.is_dir() {
            return Ok(Target::Directory(canonical));
        }
        let file = File::open(&canonical).map_err(ResolveError::Missing)?;
        Ok(Target::File(file))
    }

    /// `path`'s canonical form and metadata, when the content root serves
    /// it (inside, not hidden, a regular file or a directory).
    pub fn contain(&self, path: &Path) -> Result<(PathBuf, Metadata), ResolveError> {
        self.content.contain(path)
    }

    /// The menu of directory `dir` (canonical), whose selector is `selector`
    /// (`""` for the root): its gophermap if it has one, else its listing.
    /// The flag says whether a gophermap was used.
    pub fn menu(&self, dir: &Path, selector: &str) -> io::Result<(Vec<Item>, bool)> {
        if let Some(map) = self.gophermap(dir)? {
            let map = gophermap::parse(&map, selector);
            let mut items = map.items;
            if map.include_listing {
                items.extend(self.listing(dir, selector)?);
            }
            return Ok((items, true));
        }
        Ok((self.listing(dir, selector)?, false))
    }

    /// Reads `dir/gophermap` if it is a regular file inside the root.
    fn gophermap(&self, dir: &Path) -> io::Result<Option<String>> {
        let path = dir.join(GOPHERMAP);
        let Ok((canonical, meta)) = self.contain(&path) else { return Ok(None) };
        if !meta.is_file() {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        File::open(canonical)?.take(MAX_GOPHERMAP).read_to_end(&mut bytes)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The generated listing: directories first, then files, each sorted by
    /// name; what the content root does not serve, `gophermap`, names that
    /// would break a menu line and those whose selector would be longer than
    /// [`MAX_SELECTOR`] (found by fuzzing: listed, then refused) are left
    /// out.
    pub fn listing(&self, dir: &Path, selector: &str) -> io::Result<Vec<Item>> {
        let listing = self.content.list(dir)?;
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for entry in listing.entries {
            let Ok(name) = entry.name.into_string() else { continue };
            let child = format!("{selector}/{name}");
            // A selector over MAX_SELECTOR is refused: no use listing it.
            if !is_listable_name(&name) || name == GOPHERMAP || child.len() > MAX_SELECTOR {
                continue;
            }
            let kind = item_type(&name, &entry.path, &entry.meta);
            let item = Item::local(kind, name.clone(), child);
            if entry.meta.is_dir() {
                dirs.push(item);
            } else {
                files.push(item);
            }
        }
        dirs.sort_by(|a, b| a.display.cmp(&b.display));
        files.sort_by(|a, b| a.display.cmp(&b.display));
        dirs.extend(files);
        if listing.truncated {
            dirs.push(Item::info(format!("(listing cut at {MAX_LISTING} entries)")));
        }
        Ok(dirs)
    }
}

/// The item type of a checked entry: `1` for directories, else by extension,
/// else by content.
pub fn item_type(name: &str, path: &Path, meta: &Metadata) -> ItemType {
    if meta.is_dir() {
        return ItemType::DIRECTORY;
    }
    ItemType::for_extension(name).unwrap_or_else(|| sniff(path))
}

/// Text (`0`) if the first bytes are UTF-8 without NUL, else binary (`9`).
/// An empty file is text.
fn sniff(path: &Path) -> ItemType {
    let mut buf = [0u8; SNIFF_BYTES];
    let Ok(mut file) = File::open(path) else { return ItemType::BINARY };
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return ItemType::BINARY,
        }
    }
    if looks_like_text(&buf[..len]) {
        ItemType::TEXT
    } else {
        ItemType::BINARY
    }
}

/// UTF-8 without NUL; a multi-byte character cut at the end of the sample
/// does not count against it.
fn looks_like_text(sample: &[u8]) -> bool {
    if sample.contains(&0) {
        return false;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::create_dir_all(root.join(".secret")).unwrap();
        std::fs::write(root.join("readme"), "plain text\n").unwrap();
        std::fs::write(root.join("blob"), [0u8, 1, 2, 255]).unwrap();
        std::fs::write(root.join("pic.png"), [137u8, 80, 78, 71]).unwrap();
        std::fs::write(root.join(".hidden"), "no").unwrap();
        std::fs::write(root.join(".secret/key"), "no").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
        std::os::unix::fs::symlink("../outside.txt", root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(".secret", root.join("public")).unwrap();
        std::os::unix::fs::symlink("readme", root.join("alias.txt")).unwrap();
        let root = Root::open(&root).unwrap();
        (dir, root)
    }

    fn names(items: &[Item]) -> Vec<(char, &str, &str)> {
        items.iter().map(|i| (i.kind.as_char(), i.display.as_str(), i.selector.as_str())).collect()
    }

    #[test]
    fn listing_types_order_and_filters() {
        let (_dir, root) = tree();
        let items = root.listing(root.path(), "").unwrap();
        assert_eq!(
            names(&items),
            [
                ('1', "sub", "/sub"),
                ('0', "alias.txt", "/alias.txt"),
                ('9', "blob", "/blob"),
                ('I', "pic.png", "/pic.png"),
                ('0', "readme", "/readme"),
            ]
        );
    }

    #[test]
    fn names_whose_selector_would_be_too_long_are_not_listed() {
        let (_dir, root) = tree();
        let dir = root.path().join("sub/deep");
        std::fs::write(dir.join("x".repeat(245)), "fits").unwrap();
        std::fs::write(dir.join("y".repeat(246)), "too long").unwrap();
        // "/sub/deep/" is 10 bytes: 245 more make 255, MAX_SELECTOR.
        let items = root.listing(&dir, "/sub/deep").unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].selector.len(), MAX_SELECTOR);
    }

    #[test]
    fn symlinks_out_of_the_root_or_to_hidden_files_are_refused() {
        let (_dir, root) = tree();
        let resolve = |parts: &[&str]| root.resolve(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(matches!(resolve(&["escape.txt"]), Err(ResolveError::Outside(_))));
        assert!(matches!(resolve(&["public", "key"]), Err(ResolveError::Hidden)));
        assert!(matches!(resolve(&["missing"]), Err(ResolveError::Missing(_))));
        assert!(matches!(resolve(&["alias.txt"]), Ok(Target::File(_))));
        assert!(matches!(resolve(&["sub", "deep"]), Ok(Target::Directory(_))));
    }

    #[test]
    fn a_gophermap_replaces_the_listing() {
        let (_dir, root) = tree();
        let sub = root.path().join("sub");
        std::fs::write(sub.join(GOPHERMAP), "Hello\n0Readme\t../readme\n*\n").unwrap();
        let (items, from_map) = root.menu(&sub, "/sub").unwrap();
        assert!(from_map);
        assert_eq!(
            names(&items),
            [('i', "Hello", "fake"), ('0', "Readme", "/readme"), ('1', "deep", "/sub/deep")]
        );
    }

    #[test]
    fn bad_roots_name_the_path() {
        let err = Root::open(Path::new("/nonexistent/gopher")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/gopher"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Root::open(file.path()).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn sniffing() {
        assert!(looks_like_text(b""));
        assert!(looks_like_text("grüße".as_bytes()));
        assert!(looks_like_text(&"ü".as_bytes()[..1]));
        assert!(!looks_like_text(b"a\0b"));
        assert!(!looks_like_text(b"\xff\xfe"));
    }
}
