//! The README's layout section is the map a newcomer reads first: every
//! directory it names exists, and every top-level directory and every crate
//! under services/ is on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The directories the layout block names, as paths from the workspace
/// root: `services/` followed by indented `http/` is `services/http`.
fn layout_dirs(readme: &str) -> BTreeSet<String> {
    let block = readme.split("## Layout").nth(1).expect("README has a Layout section");
    let block = block.split("```").nth(1).expect("the Layout section holds a code block");
    let mut parent = String::new();
    let mut dirs = BTreeSet::new();
    for line in block.lines() {
        let indented = line.starts_with("  ");
        let Some(name) = line.split_whitespace().next().filter(|w| w.ends_with('/') && w.len() > 1) else {
            continue;
        };
        // A continuation line of a description starts deeper than any entry.
        if line.starts_with("    ") {
            continue;
        }
        let name = name.trim_end_matches('/');
        if indented {
            dirs.insert(format!("{parent}/{name}"));
        } else {
            parent = name.to_owned();
            dirs.insert(parent.clone());
        }
    }
    dirs
}

fn subdirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.') && n != "target")
        .collect()
}

#[test]
fn the_readme_layout_matches_the_tree() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed = layout_dirs(&readme);
    for dir in &listed {
        assert!(root.join(dir).is_dir(), "README's layout names {dir}/, which does not exist");
    }
    for top in subdirs(&root) {
        assert!(listed.contains(&top), "{top}/ is missing from README's layout");
    }
    for service in subdirs(&root.join("services")) {
        let dir = format!("services/{service}");
        assert!(listed.contains(&dir), "{dir}/ is missing from README's layout");
    }
}

#[test]
fn layout_parsing_follows_indentation() {
    let readme = "## Layout\n\n```\nCargo.toml  x\nservices/   y\n  http/     z\n            more/ words\nunits/      u\n```\n";
    let dirs: Vec<String> = layout_dirs(readme).into_iter().collect();
    assert_eq!(dirs, ["services", "services/http", "units"]);
}
