//! The README's layout section is the map a newcomer reads first: every
//! directory it names exists, and every top-level directory and every crate
//! under services/ is on it. The lab guide exists in English and German with
//! the same steps and commands.

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

/// A guide's skeleton: its headings' levels in order, and its fenced code
/// blocks (commands and outputs) verbatim but for the shell comments in
/// `sh` blocks (each guide speaks its reader's language there), with the
/// generated lab table.
fn skeleton(guide: &str) -> (Vec<usize>, Vec<String>) {
    let mut levels = Vec::new();
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in guide.lines() {
        if line.starts_with("```") {
            match block.take() {
                Some(mut text) => {
                    text.push_str(line);
                    blocks.push(text);
                }
                None => block = Some(format!("{line}\n")),
            }
        } else if let Some(text) = &mut block {
            let line = if text.starts_with("```sh") { without_comment(line) } else { line };
            if !line.is_empty() {
                text.push_str(line);
                text.push('\n');
            }
        } else if line.starts_with('#') {
            levels.push(line.chars().take_while(|c| *c == '#').count());
        }
    }
    let table = guide
        .split("<!-- lab table")
        .nth(1)
        .and_then(|rest| rest.split("<!-- end of lab table -->").next())
        .unwrap_or_default();
    blocks.push(table.to_owned());
    (levels, blocks)
}

#[test]
fn the_german_lab_guide_has_the_same_steps_and_commands_as_the_english() {
    let lab = workspace().join("units/lab");
    let english = std::fs::read_to_string(lab.join("README.md")).unwrap();
    let german = std::fs::read_to_string(lab.join("README.de.md")).unwrap();
    let (en_levels, en_blocks) = skeleton(&english);
    let (de_levels, de_blocks) = skeleton(&german);
    assert_eq!(en_levels, de_levels, "README.de.md must have the same sections, in order, as README.md");
    assert_eq!(en_blocks.len(), de_blocks.len(), "README.de.md must have as many code blocks as README.md");
    for (en, de) in en_blocks.iter().zip(&de_blocks) {
        assert_eq!(
            en, de,
            "README.de.md's commands, outputs and lab table must be README.md's, byte for byte"
        );
    }
    assert!(
        en_blocks.iter().any(|b| b.contains("sandkasten-vm exec --unit")),
        "the guide has its hand attempts"
    );
}

/// A shell line without its comment: from a `#` that starts a word outside
/// quotes to the end, and the blanks before it.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return line[..at].trim_end(),
            _ => {}
        }
        previous = c;
    }
    line
}

#[test]
fn a_comment_is_cut_off_only_where_the_shell_would() {
    assert_eq!(without_comment("scripts/audit x   # one step"), "scripts/audit x");
    assert_eq!(without_comment("# a whole line"), "");
    assert_eq!(without_comment("grep -q '^VALUE # k' <&3 # why"), "grep -q '^VALUE # k' <&3");
    assert_eq!(without_comment("echo a#b"), "echo a#b");
}

#[test]
fn a_guide_skeleton_sees_headings_blocks_and_the_table_only() {
    let guide = "# T\ntext\n## A\n```sh\n# not a heading\nrun x  # says why\n```\n```\n# output\n```\n<!-- lab table: x -->\n| a |\n<!-- end of lab table -->\n### B\n";
    let (levels, blocks) = skeleton(guide);
    assert_eq!(levels, [1, 2, 3]);
    assert_eq!(blocks, ["```sh\nrun x\n```", "```\n# output\n```", ": x -->\n| a |\n"]);
}

/// The Markdown files git knows, as paths from the workspace root.
fn markdown_files() -> Vec<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "*.md"])
        .current_dir(workspace())
        .output()
        .expect("git ls-files");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| workspace().join(l))
        .filter(|p| p.is_file())
        .collect()
}

/// Every relative link of a Markdown file (`[text](path)` and
/// `[text](path#anchor)`) names a file or directory that exists: a reader
/// who follows one never lands on nothing.
#[test]
fn every_relative_link_in_the_markdown_files_exists() {
    let files = markdown_files();
    assert!(files.len() > 5, "git ls-files found too few Markdown files: {files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("](") {
            let target: String =
                text[at + 2..].chars().take_while(|c| *c != ')' && !c.is_whitespace()).collect();
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            if !file.parent().unwrap().join(path).exists() {
                let line = text[..at].matches('\n').count() + 1;
                broken
                    .push(format!("{}:{line}: {target}", file.strip_prefix(workspace()).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing:\n{}", broken.join("\n"));
}
