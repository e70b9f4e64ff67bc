//! Recorded guest answers read again by the host, every output compared
//! byte for byte with what the same answers gave when they were recorded.
//!
//! Each directory under `vm/tests/replay/` holds what one guest side wrote
//! (`answer*.txt`, the results port of a real run) and what the host made of
//! it then: the table, the JSON report, the JUnit file. A change to how the
//! host reads an answer, judges it or prints it that alters a single byte
//! fails here, without a guest. To record a new answer on purpose (a new
//! route, a new column), run the test with `SANDKASTEN_REPLAY_WRITE=1` and
//! review the diff of the expected files like any other change.
//!
//! `kind` says which job's reading it is:
//! - `matrix`: `answer.txt` of a matrix run on `release`;
//! - `enforce`: `answer.txt` of an enforcement run on `release`, against the
//!   committed ablation maps (the tests are chosen from them);
//! - `ablate UNIT`: `answer-1.txt` ... of the rounds of an ablation of UNIT;
//! - `lab`: `answer.txt` of the lab steps' audits on `release`, against the
//!   committed maps and enforcement report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sandkasten_vm::{ablation, audit, enforcement, lab, matrix, passes, payload};

fn replay_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay")
}

fn units() -> PathBuf {
    payload::workspace_root().join("units")
}

fn references() -> Vec<passes::Reference> {
    passes::REFERENCE_UNITS.iter().map(|u| passes::load_reference(&units(), u).unwrap()).collect()
}

fn attempts() -> Vec<String> {
    sandkasten_probe::catalogue::ATTEMPTS.iter().map(|a| a.id.to_owned()).collect()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

/// What the host makes of the recorded answers in `dir`: file name → text.
fn render(dir: &Path) -> Vec<(&'static str, String)> {
    let kind = read(dir, "kind");
    let release = read(dir, "release").trim().to_owned();
    let words: Vec<&str> = kind.split_whitespace().collect();
    match words.as_slice() {
        ["matrix"] => {
            let staged = passes::matrix(&references(), &attempts());
            let mut report = matrix::evaluate(&staged.plan, &staged.roles, &read(dir, "answer.txt"), "tcg");
            report.guest.release = release;
            vec![("table.txt", report.table()), ("report.json", json(&report)), ("junit.xml", report.junit())]
        }
        ["enforce"] => {
            let references = references();
            let maps = ablation_maps();
            let tests = enforcement::tests(&references, &maps, &attempts());
            let staged = enforcement::staged(&references, &tests);
            let labels = enforcement::labels(&references);
            let mut report =
                enforcement::evaluate(&staged.plan, &staged.roles, &tests, &labels, &read(dir, "answer.txt"));
            report.guest.release = release;
            report.guest.accel = "tcg".to_owned();
            vec![("table.txt", report.table()), ("report.json", json(&report))]
        }
        ["ablate", unit] => {
            let references = references();
            let reference = references.iter().find(|r| r.short() == *unit).expect("a reference unit");
            let labels: Vec<String> = reference.directives().into_iter().map(|d| d.label).collect();
            let attempts = attempts();
            let removals = |sets: &[Vec<String>]| -> Vec<Vec<sandkasten_vm::variant::Directive>> {
                sets.iter().map(|set| reference.directives_labelled(set)).collect()
            };
            let round = |n: usize, sets: &[Vec<String>], first: bool| {
                let staged = passes::ablation(reference, &removals(sets), &attempts, first);
                ablation::read_round(&staged.plan, &staged.roles, &read(dir, &format!("answer-{n}.txt")))
            };
            let singles: Vec<Vec<String>> = labels.iter().map(|l| vec![l.clone()]).collect();
            let mut rounds = round(1, &singles, true);
            rounds.merge(round(2, &ablation::Round::isolation_sets(&labels), false));
            let sets = rounds.sets_to_verify(&attempts, &labels);
            if !sets.is_empty() {
                rounds.merge(round(3, &sets, false));
            }
            let mut map = rounds.map(&reference.name, &labels, &attempts);
            map.guest.accel = "tcg".to_owned();
            map.guest.release = release;
            vec![("table.txt", map.table()), ("map.json", json(&map)), ("map.svg", map.svg())]
        }
        ["lab"] => {
            let steps_dir = units().join("lab");
            let steps: Vec<audit::Audited> =
                lab::STEPS.iter().map(|step| audit::load(&steps_dir.join(step), None).unwrap()).collect();
            let sysusers = vec!["/usr/lib/sysusers.d/sandkasten-lab.conf".to_owned()];
            let staged = audit::stage(&steps, &attempts(), &sysusers);
            let committed = units().join("enforcement").join(format!("{release}.json"));
            let enforcement: enforcement::EnforcementReport =
                serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
            let maps = ablation_maps();
            let references: Vec<passes::Reference> = passes::REFERENCE_UNITS
                .iter()
                .map(|name| passes::load_reference(&units(), name).unwrap())
                .collect();
            let committed =
                audit::Committed { maps: &maps, enforcement: &[enforcement], references: &references };
            let audits =
                audit::evaluate(&staged, &steps, &read(dir, "answer.txt"), (&release, "tcg"), committed);
            let texts: String = audits.iter().map(|a| a.text() + "\n").collect();
            let measured = lab::LabReport::from_audits(&audits.iter().collect::<Vec<_>>());
            vec![("audits.txt", texts), ("lab.txt", measured.text()), ("lab.json", json(&measured))]
        }
        other => panic!("{}: unknown kind {other:?}", dir.display()),
    }
}

fn ablation_maps() -> Vec<ablation::AblationMap> {
    let dir = units().join("ablation");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

#[test]
fn recorded_answers_render_as_they_did() {
    let write = std::env::var_os("SANDKASTEN_REPLAY_WRITE").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(replay_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(!cases.is_empty(), "no recorded answer in {}", replay_dir().display());
    let mut differ = Vec::new();
    for dir in &cases {
        for (name, text) in render(dir) {
            let path = dir.join(name);
            if write {
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let expected = read(dir, name);
            if expected != text {
                let at = expected.bytes().zip(text.bytes()).position(|(a, b)| a != b).unwrap_or(0);
                let line = expected[..at].matches('\n').count() + 1;
                differ.push(format!(
                    "{}: differs from line {line}:\n  expected: {}\n  now:      {}",
                    path.display(),
                    expected.lines().nth(line - 1).unwrap_or(""),
                    text.lines().nth(line - 1).unwrap_or("")
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A report ARCHITECTURE.md gives a schema for, and a real one: its
/// section's heading, the file (from the workspace) and the path to one
/// report in it (array indices and object keys).
const SCHEMAS: [(&str, &str, &[&str]); 6] = [
    ("The matrix report's schema", "vm/tests/replay/matrix-bookworm/report.json", &[]),
    ("The ablation map's schema", "units/ablation/http-bookworm.json", &[]),
    ("The enforcement report's schema", "units/enforcement/bookworm.json", &[]),
    ("The lab report's schema", "units/lab/measured/bookworm.json", &[]),
    (
        "The audit report's schema",
        "units/lab/measured/harden-python-http-bookworm.json",
        &["0", "audits", "0"],
    ),
    ("The harden report's schema", "units/lab/measured/harden-python-http-bookworm.json", &["0"]),
];

/// ARCHITECTURE.md's schema of each report names every field a real
/// report has (recorded runs and committed measurements), and each field
/// inside them: a field added to a report without a word in its schema
/// fails here.
#[test]
fn each_reports_schema_names_every_field_of_a_real_report() {
    let workspace = payload::workspace_root();
    let doc = std::fs::read_to_string(workspace.join("ARCHITECTURE.md")).unwrap();
    for (heading, file, path) in SCHEMAS {
        let schema = doc
            .split(&format!("## {heading}"))
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section '{heading}'"));
        // Each table row: the field, then what its meaning names in backticks.
        let rows: Vec<(String, String)> = schema
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let field = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((field.to_owned(), cells.get(3)?.to_string()))
            })
            .collect();
        let text = std::fs::read_to_string(workspace.join(file)).unwrap();
        let mut report: serde_json::Value = serde_json::from_str(&text).unwrap();
        for step in path {
            report = match step.parse::<usize>() {
                Ok(i) => report[i].take(),
                Err(_) => report[*step].take(),
            };
        }
        let object = report.as_object().unwrap_or_else(|| panic!("{file} {path:?} is no report"));
        let documented: BTreeSet<&str> = rows.iter().map(|(f, _)| f.as_str()).collect();
        let real: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let undocumented: Vec<&&str> = real.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{heading}: {file} has fields the schema does not name: {undocumented:?}"
        );
        // A documented field the example lacks must say when it is absent.
        for (field, meaning) in rows.iter().filter(|(f, _)| !real.contains(f.as_str())) {
            assert!(
                meaning.contains("absent"),
                "{heading}: `{field}` is not in {file}, and the schema does not say when it is absent"
            );
        }
        for (field, meaning) in rows.iter().filter(|(f, _)| real.contains(f.as_str())) {
            // An object's keys, or those of every object in an array.
            let inner: Vec<&serde_json::Map<String, serde_json::Value>> = match &object[field] {
                serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_object()).collect(),
                value => value.as_object().into_iter().collect(),
            };
            for key in inner.iter().flat_map(|o| o.keys()) {
                assert!(meaning.contains(&format!("`{key}`")), "{heading}: `{field}` does not name `{key}`");
            }
        }
    }
}
