//! The host crate's modules import each other in one direction only
//! (ARCHITECTURE.md, "Layers"): no module imports one from a layer above
//! it, and none reaches, through any chain of imports, back to itself.
//! Cargo keeps the three crates apart (the contract imports neither side,
//! the guest side not the host); this test keeps the modules inside
//! `vm/src` from growing a circle again, which once tied nine of them
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `guest/mod.rs` → `guest`, `jobs/matrix.rs` → `jobs/matrix`.
fn module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let name = relative.to_str().unwrap().to_owned();
    name.strip_suffix("/mod").map(str::to_owned).unwrap_or(name)
}

/// What each module imports of the others: `crate::a`, `crate::a::b`,
/// `crate::{a, b}` and `super::x`, outside comments and test modules.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(src);
    let modules: BTreeSet<String> = files.iter().map(|f| module(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let me = module(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let parent = me.rsplit_once('/').map(|(p, _)| p.to_owned());
        let mut add = |path: &str| {
            let parts: Vec<&str> = path.split("::").take(2).collect();
            let nested = parts.join("/");
            let target = if modules.contains(&nested) { nested } else { parts[0].to_owned() };
            if modules.contains(&target) && target != me && !me.starts_with(&format!("{target}/")) {
                graph.entry(me.clone()).or_default().insert(target);
            }
        };
        for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            for (prefix, relative) in [("crate::", None), ("super::", parent.as_deref())] {
                for (at, _) in line.match_indices(prefix) {
                    let rest = &line[at + prefix.len()..];
                    let group = rest.strip_prefix('{').map(|g| g.split('}').next().unwrap_or_default());
                    let paths: Vec<String> = match group {
                        Some(items) => items.split(',').map(|i| i.trim().to_owned()).collect(),
                        None => vec![rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                            .collect()],
                    };
                    for path in paths {
                        match (prefix, relative) {
                            ("super::", Some(parent)) => add(&format!("{parent}::{path}")),
                            ("super::", None) => {}
                            _ => add(&path),
                        }
                    }
                }
            }
        }
    }
    graph
}

/// The modules `from` reaches through its imports, itself excluded unless
/// a chain leads back to it.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph.get(from).into_iter().flatten().map(String::as_str).collect();
    while let Some(next) = todo.pop() {
        if seen.insert(next.to_owned()) {
            todo.extend(graph.get(next).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

/// ARCHITECTURE.md's layers, lowest first. A module in none fails the
/// test: a new module is placed on purpose.
const LAYERS: [&[&str]; 5] = [
    &["error", "process", "release", "machine"],
    &["initrd", "image", "qemu", "accel", "progress", "guest"],
    &["variant", "passes", "payload", "systemd_build"],
    &[
        "matrix",
        "shard",
        "ablation",
        "enforcement",
        "release_diff",
        "audit",
        "harden",
        "lab",
        "bench",
        "reliability",
        "host_mode",
    ],
    &["jobs", "lib", "main"],
];

/// The layer of `module` (`guest/ports` is in `guest`'s).
fn layer(module: &str) -> Option<usize> {
    let top = module.split('/').next().unwrap_or(module);
    LAYERS.iter().position(|layer| layer.contains(&top))
}

#[test]
fn no_module_of_the_host_imports_one_from_a_layer_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    let mut wrong = Vec::new();
    for file in sources(&src) {
        let m = module(&src, &file);
        if layer(&m).is_none() {
            wrong.push(format!("{m} is in no layer of ARCHITECTURE.md (and LAYERS here)"));
        }
    }
    for (from, targets) in &graph {
        for to in targets {
            if let (Some(a), Some(b)) = (layer(from), layer(to)) {
                if b > a {
                    wrong.push(format!("{from} (layer {}) imports {to} (layer {})", a + 1, b + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_module_of_the_host_imports_itself_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(
        graph.values().map(BTreeSet::len).sum::<usize>() > 50,
        "the import reader found too little: {graph:?}"
    );
    let circles: Vec<String> = graph
        .keys()
        .filter(|m| reachable(&graph, m).contains(*m))
        .map(|m| {
            let back: Vec<&String> =
                graph[m].iter().filter(|next| reachable(&graph, next).contains(m) || *next == m).collect();
            format!("{m} -> {back:?} -> ... -> {m}")
        })
        .collect();
    assert!(circles.is_empty(), "import circles in vm/src:\n{}", circles.join("\n"));
}

/// The reader sees a circle where there is one: the test above could not
/// pass by reading nothing.
#[test]
fn the_import_reader_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::{b, c};\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::jobs::run;\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "// use crate::a;\n").unwrap();
    std::fs::write(dir.path().join("jobs/mod.rs"), "mod run;\n").unwrap();
    std::fs::write(dir.path().join("jobs/run.rs"), "fn f() { super::super::x(); crate::a::f(); }\n").unwrap();
    let graph = imports(dir.path());
    assert!(reachable(&graph, "a").contains("a"), "{graph:?}");
    assert!(!reachable(&graph, "c").contains("c"), "{graph:?}");
}
