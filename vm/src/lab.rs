//! The lab steps measured in escapes: each step of `units/lab/` audited
//! (`sandkasten-vm lab`), the result committed per release in
//! `units/lab/measured/RELEASE.json`, and the table in `units/lab/README.md`
//! rendered from those files (a test keeps it in step).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditReport, Finding};
use crate::contract::GuestInfo;
use crate::Release;

/// The lab's services, in order (their sockets are found through
/// `Requires=`).
pub const STEPS: [&str; 5] = [
    "sandkasten-lab0.service",
    "sandkasten-lab1.service",
    "sandkasten-lab2.service",
    "sandkasten-lab3.service",
    "sandkasten-lab4.service",
];

/// The user step 2 runs as.
pub const SYSUSERS: &str = "sandkasten-lab.sysusers";

/// The releases the lab table shows.
pub const RELEASES: [Release; 2] = [Release::Bookworm, Release::Trixie];

const TABLE_START: &str = "<!-- lab table: written by `sandkasten-vm lab`, do not edit -->";
const TABLE_END: &str = "<!-- end of lab table -->";

/// `units/lab/measured/RELEASE.json`.
pub fn measured_path(lab_dir: &Path, release: Release) -> PathBuf {
    lab_dir.join("measured").join(format!("{release}.json"))
}

/// The lab on one release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabReport {
    /// Where it was measured.
    pub guest: GuestInfo,
    /// One per step, in order.
    pub steps: Vec<LabStep>,
    /// Why the measurement is incomplete; empty when it is not.
    pub failures: Vec<String>,
}

/// One step's audit, in short.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabStep {
    /// `sandkasten-lab2.service`.
    pub unit: String,
    /// `systemd-analyze security`'s overall exposure.
    pub exposure: Option<f64>,
    /// How many attempts were made.
    pub attempts: usize,
    /// The attempts that escaped, in catalogue order.
    pub escaped: Vec<String>,
    /// How many were blocked (or killed).
    pub blocked: usize,
    /// Attempts stopped another way than the catalogue expects.
    pub unclear: Vec<String>,
}

impl LabReport {
    /// The short form of each step's audit.
    pub fn from_audits(audits: &[&AuditReport]) -> LabReport {
        let mut report = LabReport {
            guest: audits.first().map(|a| a.guest.clone()).unwrap_or_default(),
            ..LabReport::default()
        };
        report.guest.accel = String::new();
        for audit in audits {
            report.failures.extend(audit.failures.iter().map(|f| format!("{}: {f}", audit.unit)));
            let of = |findings: &[Finding]| -> Vec<String> {
                audit
                    .rows
                    .iter()
                    .filter(|r| findings.contains(&r.verdict))
                    .map(|r| r.attempt.clone())
                    .collect()
            };
            report.steps.push(LabStep {
                unit: audit.unit.clone(),
                exposure: audit.exposure,
                attempts: audit.rows.len(),
                escaped: of(&[Finding::Escaped]),
                blocked: of(&[Finding::Blocked, Finding::Killed]).len(),
                unclear: of(&[Finding::Error]),
            });
        }
        report
    }

    /// What differs from `measured` in what the table shows: the score
    /// and the escapes of each step.
    pub fn differences(&self, measured: &LabReport) -> Vec<String> {
        let mut out = Vec::new();
        for step in &self.steps {
            let Some(now) = measured.steps.iter().find(|s| s.unit == step.unit) else {
                out.push(format!("{}: not measured", step.unit));
                continue;
            };
            if step.exposure != now.exposure {
                out.push(format!(
                    "{}: exposure {:?} committed, {:?} measured",
                    step.unit, step.exposure, now.exposure
                ));
            }
            let (was, is): (BTreeSet<&String>, BTreeSet<&String>) =
                (step.escaped.iter().collect(), now.escaped.iter().collect());
            let newly: Vec<&&String> = is.difference(&was).collect();
            let no_longer: Vec<&&String> = was.difference(&is).collect();
            if !newly.is_empty() {
                out.push(format!("{}: now escapes: {newly:?}", step.unit));
            }
            if !no_longer.is_empty() {
                out.push(format!("{}: no longer escapes: {no_longer:?}", step.unit));
            }
        }
        out
    }

    /// The measurement for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "lab steps on {} (systemd {}):", self.guest.release, self.guest.systemd);
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  {:26} exposure {:>4}  {:>2} of {} escape: {}",
                step.unit,
                step.exposure.map_or("?".to_owned(), |e| format!("{e:.1}")),
                step.escaped.len(),
                step.attempts,
                step.escaped.join(" ")
            );
        }
        for failure in &self.failures {
            let _ = writeln!(out, "  INCOMPLETE: {failure}");
        }
        out
    }
}

/// Marks an attempt stopped another way than the catalogue expects.
const OTHERWISE: &str = " (stopped otherwise)";

/// The attempts that escape in `before` and not in `after`; one stopped
/// another way than the catalogue expects is marked so.
fn closed(before: &LabStep, after: &LabStep) -> Vec<String> {
    before
        .escaped
        .iter()
        .filter(|a| !after.escaped.contains(a))
        .map(|a| if after.unclear.contains(a) { format!("{a}{OTHERWISE}") } else { a.clone() })
        .collect()
}

/// The README's table, from the reports of [`RELEASES`] (in that order).
pub fn table(reports: &[LabReport]) -> String {
    let mut out = String::new();
    let systemds: Vec<String> =
        reports.iter().map(|r| format!("{} ({})", r.guest.release, r.guest.systemd)).collect();
    let _ = writeln!(out, "| step | exposure: {} | attempts that escape: {} | what the step closes (escaped before, blocked now) |", systemds.join(" / "), systemds.join(" / "));
    out.push_str("|---|---|---|---|\n");
    let Some(first) = reports.first() else { return out };
    for (i, step) in first.steps.iter().enumerate() {
        let of = |r: &LabReport| r.steps.get(i).cloned().unwrap_or_default();
        let exposures: Vec<String> =
            reports.iter().map(|r| of(r).exposure.map_or("?".to_owned(), |e| format!("{e:.1}"))).collect();
        let escapes: Vec<String> =
            reports.iter().map(|r| format!("{} of {}", of(r).escaped.len(), of(r).attempts)).collect();
        let closes = if i == 0 {
            "(the starting point)".to_owned()
        } else {
            let per_release: Vec<Vec<String>> =
                reports.iter().map(|r| closed(&r.steps[i - 1], &of(r))).collect();
            let opened: Vec<Vec<String>> = reports.iter().map(|r| closed(&of(r), &r.steps[i - 1])).collect();
            let mut text = describe(reports, &per_release).unwrap_or_else(|| "nothing".to_owned());
            if let Some(new) = describe(reports, &opened) {
                let _ = write!(text, "; **new routes with this step:** {new}");
            }
            text
        };
        let _ = writeln!(
            out,
            "| {i} `{}` | {} | {} | {} |",
            step.unit.trim_end_matches(".service"),
            exposures.join(" / "),
            escapes.join(" / "),
            closes
        );
    }
    out
}

/// The attempts in `per_release` on every release, then those on one
/// only; `None` when there are none.
fn describe(reports: &[LabReport], per_release: &[Vec<String>]) -> Option<String> {
    let everywhere: Vec<&String> =
        per_release[0].iter().filter(|a| per_release.iter().all(|c| c.contains(a))).collect();
    let mut parts = vec![codes(everywhere.iter().copied())];
    for (report, attempts) in reports.iter().zip(per_release) {
        let only = codes(attempts.iter().filter(|a| !everywhere.contains(a)));
        if !only.is_empty() {
            parts.push(format!("only on {}: {only}", report.guest.release));
        }
    }
    let text = parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("; ");
    (!text.is_empty()).then_some(text)
}

/// `` `a` `b`, stopped otherwise: `c` ``: the attempts as code, those
/// marked by [`closed`] apart.
fn codes<'a>(attempts: impl Iterator<Item = &'a String>) -> String {
    let (otherwise, plain): (Vec<&String>, Vec<&String>) = attempts.partition(|a| a.ends_with(OTHERWISE));
    let list = |ids: Vec<&String>| {
        ids.iter().map(|a| format!("`{}`", a.trim_end_matches(OTHERWISE))).collect::<Vec<_>>().join(" ")
    };
    match (plain.is_empty(), otherwise.is_empty()) {
        (_, true) => list(plain),
        (true, false) => format!("stopped otherwise: {}", list(otherwise)),
        (false, false) => format!("{}, stopped otherwise: {}", list(plain), list(otherwise)),
    }
}

/// The committed reports of [`RELEASES`].
pub fn committed(lab_dir: &Path) -> Result<Vec<LabReport>, String> {
    RELEASES
        .iter()
        .map(|release| {
            let path = measured_path(lab_dir, *release);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// The README with its table replaced by `table`.
pub fn with_table(readme: &str, table: &str) -> Result<String, String> {
    let start = readme.find(TABLE_START).ok_or("the README has no lab table marker")?;
    let end = readme.find(TABLE_END).ok_or("the README has no end of lab table marker")?;
    Ok(format!("{}{TABLE_START}\n{table}{}", &readme[..start], &readme[end..]))
}

/// Rewrites the table in `lab_dir/README.md` from the committed reports.
pub fn write_readme_table(lab_dir: &Path) -> anyhow::Result<()> {
    let path = lab_dir.join("README.md");
    let readme = std::fs::read_to_string(&path)?;
    let reports = committed(lab_dir).map_err(anyhow::Error::msg)?;
    std::fs::write(&path, with_table(&readme, &table(&reports)).map_err(anyhow::Error::msg)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(unit: &str, escaped: &[&str]) -> LabStep {
        LabStep {
            unit: unit.into(),
            exposure: Some(9.6),
            attempts: 3,
            escaped: escaped.iter().map(|s| (*s).to_owned()).collect(),
            ..LabStep::default()
        }
    }

    #[test]
    fn the_lab_table_in_the_readme_is_the_committed_measurement() {
        let dir = crate::payload::workspace_root().join("units/lab");
        let reports = committed(&dir).expect("run sandkasten-vm lab to measure the lab steps");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert_eq!(
            readme,
            with_table(&readme, &table(&reports)).unwrap(),
            "units/lab/README.md's table is stale: run `sandkasten-vm lab --release bookworm,trixie` (or just write_readme_table)"
        );
        for report in &reports {
            assert!(
                report.failures.is_empty(),
                "{}: an incomplete measurement: {:?}",
                report.guest.release,
                report.failures
            );
            let units: Vec<&str> = report.steps.iter().map(|s| s.unit.as_str()).collect();
            assert_eq!(units, STEPS, "every step, in order");
        }
    }

    #[test]
    fn a_step_closes_what_escaped_before_it_and_says_where_releases_differ() {
        let report = |release: &str, second: &[&str]| LabReport {
            guest: GuestInfo { release: release.into(), systemd: "1".into(), ..GuestInfo::default() },
            steps: vec![step("l0.service", &["a", "b", "c"]), step("l1.service", second)],
            failures: vec![],
        };
        let t = table(&[report("bookworm", &["c"]), report("trixie", &[])]);
        assert!(t.contains("| 1 `l1` | 9.6 / 9.6 | 1 of 3 / 0 of 3 | `a` `b`; only on trixie: `c` |"), "{t}");
        let same = table(&[report("bookworm", &["a", "b", "c"])]);
        assert!(same.contains("| nothing |"), "{same}");
        let mut stopped = report("bookworm", &["c"]);
        stopped.steps[1].unclear = vec!["b".into()];
        let t = table(&[stopped]);
        assert!(t.contains("| `a`, stopped otherwise: `b` |"), "{t}");
        let opens = table(&[report("bookworm", &["c", "d"])]);
        assert!(opens.contains("| `a` `b`; **new routes with this step:** `d` |"), "{opens}");
    }

    #[test]
    fn differences_name_new_and_closed_escapes_and_scores() {
        let committed = LabReport { steps: vec![step("l0.service", &["a", "b"])], ..LabReport::default() };
        let mut measured = committed.clone();
        measured.steps[0].escaped = vec!["b".into(), "c".into()];
        measured.steps[0].exposure = Some(9.5);
        let d = committed.differences(&measured);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|l| l.contains("now escapes") && l.contains("\"c\"")), "{d:?}");
        assert!(d.iter().any(|l| l.contains("no longer escapes") && l.contains("\"a\"")), "{d:?}");
        assert!(committed.differences(&committed).is_empty());
    }
}
