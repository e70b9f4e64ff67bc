//! The catalogue against the measured ablation maps in `units/ablation/`
//! (written by `sandkasten-vm ablate`): every attempt names exactly what
//! the maps measured holding it, and every directive that showed no effect
//! says in units/README.md why it is there. No guest: the maps are data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandkasten_probe::catalogue::{Held, ATTEMPTS};
use sandkasten_vm::ablation::AblationMap;
use sandkasten_vm::enforcement::{self, EnforcementReport};
use sandkasten_vm::passes::{load_reference, short_name, REFERENCE_UNITS};
use sandkasten_vm::Release;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn maps() -> Vec<(String, AblationMap)> {
    let dir = workspace().join("units/ablation");
    let mut maps = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let map: AblationMap =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            maps.push((path.file_name().unwrap().to_string_lossy().into_owned(), map));
        }
    }
    maps.sort_by(|a, b| a.0.cmp(&b.0));
    maps
}

/// Directives that need systemd's BPF framework, which Debian 12's lacks:
/// they hold nothing there, so a map from there cannot name them.
const NEED_BPF_FRAMEWORK: [&str; 3] =
    ["SocketBindDeny=", "RestrictFileSystems=", "RestrictNetworkInterfaces="];

#[test]
fn every_reference_unit_has_a_complete_map_on_every_release() {
    let maps = maps();
    for unit in REFERENCE_UNITS {
        for release in Release::ALL.map(Release::codename) {
            let file = format!("{}-{release}.json", short_name(unit));
            let (_, map) = maps
                .iter()
                .find(|(f, _)| *f == file)
                .unwrap_or_else(|| panic!("units/ablation/{file} is missing: run `sandkasten-vm ablate`"));
            assert_eq!(map.unit, unit);
            assert_eq!(map.guest.release, release);
            assert!(map.failures.is_empty(), "{file}: the measurement was incomplete: {:?}", map.failures);
            assert_eq!(map.attempts.len(), ATTEMPTS.len(), "{file}: measured with another catalogue");
        }
    }
}

#[test]
fn the_catalogue_names_what_every_map_measured() {
    let mut disagreements = Vec::new();
    for (file, map) in maps() {
        let bpf = map.guest.features.split_whitespace().any(|f| f == "+BPF_FRAMEWORK");
        for row in &map.attempts {
            let Some(attempt) = ATTEMPTS.iter().find(|a| a.id == row.attempt) else {
                disagreements.push(format!("{file}: {} is not in the catalogue", row.attempt));
                continue;
            };
            let measured: Vec<&str> = match row.status.as_str() {
                "held" => row.alone.iter().map(String::as_str).collect(),
                "layers" => row.together.iter().flatten().map(String::as_str).collect(),
                "not-applicable" => continue,
                other => {
                    disagreements.push(format!("{file}: {} is {other}", row.attempt));
                    continue;
                }
            };
            let claimed = attempt.held_in(&map.unit);
            let kind_agrees = matches!(
                (claimed, row.status.as_str()),
                (Held::Alone(_), "held") | (Held::Layers(_), "layers")
            );
            let named: Vec<&str> = claimed
                .directives()
                .iter()
                .copied()
                .filter(|d| bpf || !NEED_BPF_FRAMEWORK.contains(d))
                .collect();
            if !kind_agrees || named != measured {
                disagreements.push(format!(
                    "{file}: {} is held by {:?} in the catalogue, measured: {} {measured:?}",
                    row.attempt, claimed, row.status
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
}

#[test]
fn every_directive_without_a_measured_effect_says_why() {
    let readme = std::fs::read_to_string(workspace().join("units/README.md")).unwrap();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, map) in maps() {
        for d in map.directives.iter().filter(|d| d.no_measured_effect()) {
            if !readme.contains(&format!("| `{}` |", d.directive)) {
                missing.entry(d.directive.clone()).or_default().push(file.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "directives with no measured effect and no reason in units/README.md (\"Directives the map shows no \
         effect for\"): {missing:?}"
    );
}

fn enforcement_reports() -> Vec<EnforcementReport> {
    Release::ALL
        .iter()
        .map(|release| {
            let path = workspace().join(format!("units/enforcement/{release}.json"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e}: run `sandkasten-vm enforce --release {release}`", path.display())
            });
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// The committed reports test what the units and maps say today: one row
/// per directive, each decided by one of the attempts its test makes.
#[test]
fn every_release_has_an_enforcement_report_of_todays_tests() {
    let units = workspace().join("units");
    let references: Vec<_> = REFERENCE_UNITS.iter().map(|u| load_reference(&units, u).unwrap()).collect();
    let maps: Vec<AblationMap> = maps().into_iter().map(|(_, m)| m).collect();
    let catalogue: Vec<String> = ATTEMPTS.iter().map(|a| a.id.to_owned()).collect();
    let tests = enforcement::tests(&references, &maps, &catalogue);
    for (release, report) in Release::ALL.iter().zip(enforcement_reports()) {
        assert_eq!(report.guest.release, release.codename());
        assert!(report.failures.is_empty(), "{release}: incomplete: {:?}", report.failures);
        let directives: Vec<&str> = report.rows.iter().map(|r| r.directive.as_str()).collect();
        let tested: Vec<&str> = tests.iter().map(|t| t.directive.as_str()).collect();
        assert_eq!(directives, tested, "{release}: stale, run `sandkasten-vm enforce --release all`");
        for (row, test) in report.rows.iter().zip(&tests) {
            if let Some(attempt) = &row.attempt {
                assert!(
                    test.attempts.contains(attempt),
                    "{release}: {} was decided by {attempt}, which its test no longer makes",
                    row.directive
                );
            }
        }
    }
}

#[test]
fn units_readme_shows_the_committed_enforcement_reports() {
    let table = enforcement::markdown(&enforcement_reports());
    let text = std::fs::read_to_string(workspace().join("units/README.md")).unwrap();
    assert!(
        text.contains(&table),
        "units/README.md: the enforcement table is not the committed reports': run `sandkasten-vm enforce \
         --release all` (or fix it by hand from units/enforcement/)"
    );
}
