//! A matrix split across machines, and joined again: [`Shard`] (kept with
//! the plans, in [`crate::passes`]) says which part a run makes
//! (`--shard I/N`), [`merge`] puts the parts' reports back into one per
//! release.
//!
//! A shard takes every N-th attempt of the catalogue, and runs each of them
//! in *every* unit, the root control and the plain user included: a verdict
//! counts only beside the control's in the same guest, so attempts are
//! split, never units. The functional checks run once, in shard 1.

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::{AttemptResult, Report, Summary, CONTROL, PLAIN_USER};
pub use crate::passes::Shard;

/// Why reports cannot be merged: the set of parts is not whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// No report at all.
    #[error("no report to merge")]
    Empty,
    /// A release has a whole run beside another report.
    #[error("{release}: a whole run (no --shard) and {others} more report(s): give one or the other")]
    WholeAndMore {
        /// The release.
        release: String,
        /// How many reports beside the whole one.
        others: usize,
    },
    /// Parts of different splits (1/2 beside 1/3).
    #[error("{release}: parts of different splits ({first} and {second})")]
    MixedSplits {
        /// The release.
        release: String,
        /// One part.
        first: Shard,
        /// A part of another split.
        second: Shard,
    },
    /// The same part twice.
    #[error("{release}: shard {shard} given twice")]
    Duplicate {
        /// The release.
        release: String,
        /// The part.
        shard: Shard,
    },
    /// A part missing.
    #[error("{release}: shard {missing} missing (have {have})")]
    Missing {
        /// The release.
        release: String,
        /// The first part not given.
        missing: Shard,
        /// The parts given, `1/3, 3/3`.
        have: String,
    },
    /// Parts measured on different guests.
    #[error("{release}: shard {shard} ran on {theirs}; shard 1 on {first}")]
    OtherGuest {
        /// The release.
        release: String,
        /// The part that differs.
        shard: Shard,
        /// Its guest: `systemd 252, kernel 6.1.0-...`.
        theirs: String,
        /// Shard 1's guest.
        first: String,
    },
    /// One attempt in one unit reported by two parts.
    #[error("{release}: {attempt} in {unit} is in two shards")]
    Overlap {
        /// The release.
        release: String,
        /// The unit.
        unit: String,
        /// The attempt.
        attempt: String,
    },
}

/// Joins the parts of sharded runs into one report per release, in the
/// order releases first appear; a release run whole passes through. Rows
/// come in the order one run gives them: units as shard 1 ran them (the
/// control and the plain user first), attempts in `catalogue` order.
/// Fails on a missing, duplicate or overlapping part, parts of different
/// splits, or parts measured on different guests.
pub fn merge(reports: Vec<Report>, catalogue: &[String]) -> Result<Vec<Report>, MergeError> {
    if reports.is_empty() {
        return Err(MergeError::Empty);
    }
    let mut releases: Vec<String> = Vec::new();
    let mut by_release: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    for report in reports {
        let release = report.guest.release.clone();
        if !releases.contains(&release) {
            releases.push(release.clone());
        }
        by_release.entry(release).or_default().push(report);
    }
    releases
        .into_iter()
        .map(|release| merge_release(&release, by_release.remove(&release).unwrap(), catalogue))
        .collect()
}

/// The parts of one release, checked whole, joined.
fn merge_release(release: &str, mut parts: Vec<Report>, catalogue: &[String]) -> Result<Report, MergeError> {
    let release = release.to_owned();
    if parts.iter().any(|p| p.shard.is_none()) {
        return match parts.len() {
            1 => Ok(parts.remove(0)),
            n => Err(MergeError::WholeAndMore { release, others: n - 1 }),
        };
    }
    parts.sort_by_key(|p| p.shard);
    let shards: Vec<Shard> = parts.iter().filter_map(|p| p.shard).collect();
    let count = shards[0].count;
    if let Some(other) = shards.iter().find(|s| s.count != count) {
        return Err(MergeError::MixedSplits { release, first: shards[0], second: *other });
    }
    if let Some(pair) = shards.windows(2).find(|w| w[0] == w[1]) {
        return Err(MergeError::Duplicate { release, shard: pair[0] });
    }
    if let Some(missing) = (1..=count).map(|index| Shard { index, count }).find(|s| !shards.contains(s)) {
        let have = shards.iter().map(Shard::to_string).collect::<Vec<_>>().join(", ");
        return Err(MergeError::Missing { release, missing, have });
    }
    let first = parts[0].guest.clone();
    // The same systemd and kernel, and, where the image is named, the same
    // builds of what a sandbox goes through (two machines may build sid on
    // different days).
    let described = |g: &crate::contract::GuestInfo| {
        let mut text = format!("systemd {}, kernel {}", g.systemd, g.kernel);
        if let Some(image) = &g.image {
            text += &format!(" ({})", image.packages.join(" "));
        }
        text
    };
    for part in &parts[1..] {
        if described(&part.guest) != described(&first) {
            return Err(MergeError::OtherGuest {
                release,
                shard: part.shard.expect("sharded"),
                theirs: described(&part.guest),
                first: described(&first),
            });
        }
    }
    let mut units: Vec<String> = vec![CONTROL.to_owned(), PLAIN_USER.to_owned()];
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut merged = Report { guest: first, ..Report::default() };
    for part in parts {
        let shard = part.shard.expect("sharded");
        for unit in part.columns.iter().chain(part.results.iter().map(|r| &r.unit)) {
            if !units.contains(unit) {
                units.push(unit.clone());
            }
        }
        for row in &part.results {
            if !seen.insert((row.unit.clone(), row.attempt.clone())) {
                return Err(MergeError::Overlap {
                    release,
                    unit: row.unit.clone(),
                    attempt: row.attempt.clone(),
                });
            }
        }
        merged.results.extend(part.results);
        merged.functional.extend(part.functional);
        merged.failures.extend(part.failures.into_iter().map(|f| format!("shard {shard}: {f}")));
    }
    let rank = |list: &[String], item: &str| list.iter().position(|x| x == item).unwrap_or(list.len());
    merged.results.sort_by(|a: &AttemptResult, b: &AttemptResult| {
        (rank(&units, &a.unit), rank(catalogue, &a.attempt), &a.attempt).cmp(&(
            rank(&units, &b.unit),
            rank(catalogue, &b.attempt),
            &b.attempt,
        ))
    });
    merged.summary = Summary::of(&merged.results);
    merged.columns = units;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run (the recorded bookworm matrix) and the catalogue's order.
    fn recorded() -> (Report, Vec<String>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay/matrix-bookworm/report.json");
        let report: Report = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let catalogue = sandkasten_probe::catalogue::ATTEMPTS.iter().map(|a| a.id.to_owned()).collect();
        (report, catalogue)
    }

    /// What part `shard` of the same run would have reported: its
    /// attempts in every unit, the functional checks in part 1.
    fn part(whole: &Report, catalogue: &[String], shard: Shard) -> Report {
        let mine = shard.take(catalogue);
        let results: Vec<AttemptResult> =
            whole.results.iter().filter(|r| mine.contains(&r.attempt)).cloned().collect();
        Report {
            guest: whole.guest.clone(),
            summary: Summary::of(&results),
            results,
            functional: if shard.is_first() { whole.functional.clone() } else { Vec::new() },
            failures: Vec::new(),
            shard: Some(shard),
            columns: Vec::new(),
        }
    }

    fn shard(index: u32, count: u32) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn the_parts_of_a_run_merge_into_the_run() {
        let (whole, catalogue) = recorded();
        for count in [1, 2, 3] {
            // Given in any order.
            let parts = (1..=count).rev().map(|i| part(&whole, &catalogue, shard(i, count))).collect();
            let merged = merge(parts, &catalogue).unwrap();
            assert_eq!(merged.len(), 1);
            assert_eq!(
                serde_json::to_value(&merged[0]).unwrap(),
                serde_json::to_value(&whole).unwrap(),
                "{count} parts"
            );
            assert_eq!(merged[0].table(), whole.table());
        }
    }

    #[test]
    fn a_part_that_failed_fails_the_merged_run_and_says_which() {
        let (whole, catalogue) = recorded();
        let mut second = part(&whole, &catalogue, shard(2, 2));
        second.failures.push("the guest side exited with status 1".into());
        let merged = merge(vec![part(&whole, &catalogue, shard(1, 2)), second], &catalogue).unwrap();
        assert_eq!(merged[0].failures, ["shard 2/2: the guest side exited with status 1"]);
        assert!(!merged[0].passed());
    }

    #[test]
    fn a_set_of_parts_that_is_not_whole_is_refused() {
        let (whole, catalogue) = recorded();
        let p = |index, count| part(&whole, &catalogue, shard(index, count));
        let refused = |parts: Vec<Report>| merge(parts, &catalogue).unwrap_err().to_string();
        assert_eq!(refused(vec![p(1, 3), p(3, 3)]), "bookworm: shard 2/3 missing (have 1/3, 3/3)");
        assert_eq!(refused(vec![p(1, 2), p(1, 2), p(2, 2)]), "bookworm: shard 1/2 given twice");
        assert_eq!(refused(vec![p(1, 2), p(2, 3)]), "bookworm: parts of different splits (1/2 and 2/3)");
        assert!(refused(vec![whole.clone(), p(1, 2)])
            .starts_with("bookworm: a whole run (no --shard) and 1 more"));
        assert_eq!(refused(Vec::new()), "no report to merge");
        let mut other = p(2, 2);
        other.guest.kernel = "6.12.0".into();
        assert!(refused(vec![p(1, 2), other]).contains("shard 2/2 ran on systemd 252, kernel 6.12.0"));
        let image = |systemd: &str| crate::contract::ImageInfo {
            packages: vec![format!("systemd={systemd}")],
            ..Default::default()
        };
        let (mut first, mut second) = (p(1, 2), p(2, 2));
        first.guest.image = Some(image("262.1-1"));
        second.guest.image = Some(image("262.2-1"));
        assert!(refused(vec![first.clone(), second.clone()])
            .contains("(systemd=262.2-1); shard 1 on systemd 252"));
        second.guest.image =
            Some(crate::contract::ImageInfo { built: "another day".into(), ..image("262.1-1") });
        assert!(merge(vec![first, second], &catalogue).is_ok(), "the same packages, built on another day");
        // The same attempt from two parts: a part of another catalogue.
        let mut overlapping = p(2, 2);
        overlapping.results.push(p(1, 2).results[0].clone());
        assert!(refused(vec![p(1, 2), overlapping]).contains("is in two shards"));
    }

    #[test]
    fn releases_merge_apart_and_a_whole_run_passes_through() {
        let (whole, catalogue) = recorded();
        let mut trixie = whole.clone();
        trixie.guest.release = "trixie".into();
        let parts = vec![
            part(&whole, &catalogue, shard(2, 2)),
            trixie.clone(),
            part(&whole, &catalogue, shard(1, 2)),
        ];
        let merged = merge(parts, &catalogue).unwrap();
        let releases: Vec<&str> = merged.iter().map(|r| r.guest.release.as_str()).collect();
        assert_eq!(releases, ["bookworm", "trixie"]);
        assert_eq!(merged[1], trixie);
    }
}
