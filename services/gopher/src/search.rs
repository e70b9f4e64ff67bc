//! The type 7 search: file names in the tree that contain the query.
//!
//! A search walks the content tree on every request, so a client could make
//! us read a huge tree again and again. The walk is therefore bounded in
//! results, in entries looked at, and in depth, and it never follows a
//! symlinked directory (that would allow loops, and directories outside the
//! root). A symlink is matched by its own name and listed only if its target
//! passes [`Root::contain`]. The walk is breadth-first, so shallow matches
//! are found before the budget runs out. Matching is a case-insensitive
//! substring test on the name (Unicode lowercase).

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::menu::Item;
use crate::root::{item_type, Root, GOPHERMAP};
use crate::selector::{is_listable_name, MAX_SELECTOR};

/// Bounds on one search.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Matches listed at most.
    pub max_results: usize,
    /// Directory entries looked at, at most.
    pub max_visited: usize,
    /// Directory levels below the root descended into, at most.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_results: 100, max_visited: 20_000, max_depth: 16 }
    }
}

/// What a search found.
#[derive(Debug)]
pub struct Found {
    /// Matching files and directories, in walk order.
    pub items: Vec<Item>,
    /// Whether a limit stopped the walk before it saw the whole tree.
    pub truncated: bool,
}

/// Searches the tree below `root` for names containing `query`.
pub fn search(root: &Root, query: &str, limits: Limits) -> Found {
    let needle = query.to_lowercase();
    let mut items = Vec::new();
    let mut visited = 0;
    // (canonical directory, its selector, its depth)
    let mut queue: VecDeque<(PathBuf, String, usize)> = VecDeque::new();
    queue.push_back((root.path().to_owned(), String::new(), 0));
    while let Some((dir, selector, depth)) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            visited += 1;
            if visited > limits.max_visited || items.len() >= limits.max_results {
                return Found { items, truncated: true };
            }
            let Ok(name) = entry.file_name().into_string() else { continue };
            if !is_listable_name(&name) || name == GOPHERMAP {
                continue;
            }
            let Ok(file_type) = entry.file_type() else { continue };
            let child = format!("{selector}/{name}");
            if child.len() > MAX_SELECTOR {
                // No client could ask for it, nor for anything below it.
                continue;
            }
            if file_type.is_dir() && depth < limits.max_depth {
                queue.push_back((entry.path(), child.clone(), depth + 1));
            }
            if !name.to_lowercase().contains(&needle) {
                continue;
            }
            let Ok((canonical, meta)) = root.contain(&entry.path()) else { continue };
            items.push(Item::local(item_type(&name, &canonical, &meta), child.clone(), child));
        }
    }
    Found { items, truncated: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("a/b/c/Needle.txt"), "x").unwrap();
        std::fs::write(root.join("needle-top.txt"), "x").unwrap();
        std::fs::write(root.join(".git/needle"), "x").unwrap();
        std::fs::write(dir.path().join("needle-outside.txt"), "x").unwrap();
        std::os::unix::fs::symlink("../needle-outside.txt", root.join("needle-link.txt")).unwrap();
        std::os::unix::fs::symlink("..", root.join("a/loop")).unwrap();
        (dir, Root::open(&root).unwrap())
    }

    fn selectors(found: &Found) -> Vec<&str> {
        found.items.iter().map(|i| i.selector.as_str()).collect()
    }

    #[test]
    fn finds_nested_files_case_insensitively_and_skips_hidden_and_outside() {
        let (_dir, root) = tree();
        let found = search(&root, "NEEDLE", Limits::default());
        assert_eq!(selectors(&found), ["/needle-top.txt", "/a/b/c/Needle.txt"]);
        assert!(!found.truncated);
    }

    #[test]
    fn names_whose_selector_would_be_too_long_are_left_out() {
        let (_dir, root) = tree();
        // "/a/<100 x>/<100 y>" is 204 bytes, "/needle-<44 z>" 52 more.
        let deep = format!("a/{}/{}", "x".repeat(100), "y".repeat(100));
        std::fs::create_dir_all(root.path().join(&deep)).unwrap();
        std::fs::write(root.path().join(&deep).join(format!("needle-{}", "z".repeat(44))), "x").unwrap();
        std::fs::write(root.path().join(&deep).join("needle-fits"), "x").unwrap();
        let found = search(&root, "needle", Limits::default());
        assert_eq!(
            selectors(&found),
            ["/needle-top.txt", "/a/b/c/Needle.txt", &format!("/{deep}/needle-fits")]
        );
        assert!(found.items.iter().all(|i| i.selector.len() <= MAX_SELECTOR));
    }

    #[test]
    fn limits_cut_the_walk() {
        let (_dir, root) = tree();
        let found = search(&root, "needle", Limits { max_results: 1, ..Limits::default() });
        assert_eq!(selectors(&found), ["/needle-top.txt"]);
        assert!(found.truncated);
        let found = search(&root, "needle", Limits { max_depth: 1, ..Limits::default() });
        assert_eq!(selectors(&found), ["/needle-top.txt"]);
        let found = search(&root, "needle", Limits { max_visited: 3, ..Limits::default() });
        assert!(found.truncated);
    }
}
