//! The enforcement report: which directives this systemd and kernel really
//! enforce, measured, never read from a version table.
//!
//! Each directive of the reference units gets one minimal positive test,
//! taken from the committed ablation maps of every release, made of two
//! passes of its reference unit that differ in that directive only:
//!
//! - **alone**: where a map shows the directive stopping attempts on its own
//!   (the ablation's round two), the unit with every other directive
//!   removed, against the unit with all of them removed;
//! - **removed**: where a map shows an attempt escaping only when the
//!   directive is removed (it needs the others' company: `ProtectProc=`
//!   hides nothing from root), the unit as shipped, against the unit
//!   without it.
//!
//! The pass without the directive shows which attempts can escape at all.
//! Then:
//!
//! - **enforced**: an attempt that escapes without it is stopped with it;
//! - **silently ignored**: the unit ran, and every such attempt escaped with
//!   it too;
//! - **refused at start**: the unit never ran the probe (systemd refused a
//!   line, or the kernel lacks what the line needs);
//! - **enforced differently**: stopped, but not the way the catalogue
//!   expects (another errno, a signal), with the observed outcome.
//!
//! Two more say that no test could be made: `no-positive-test` (no attempt
//! of the catalogue shows the directive's effect on any release; units/
//! README.md says why each is there), `not-testable` (none of its attempts
//! escapes even without it here).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ablation::{self, AblationMap};
use crate::contract::{answer, held, stopped_unlisted, Answer, GuestInfo, PassReport, Plan, VerdictKind};
use crate::passes::{Reference, Role, Staged};

/// One directive's positive test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    /// The directive's label (`PrivateNetwork=`).
    pub directive: String,
    /// The reference service whose lines the test keeps.
    pub unit: String,
    /// The attempts the maps show it stopping, in catalogue order; empty
    /// when there is none.
    pub attempts: Vec<String>,
    /// Alone in its unit (true), or removed from the unit as shipped.
    pub alone: bool,
}

/// The tests for every directive of `references` (each label once, taken
/// from the first unit whose maps show an effect), from the committed
/// `maps` of every release.
pub fn tests(references: &[Reference], maps: &[AblationMap], catalogue: &[String]) -> Vec<Test> {
    let mut labels: Vec<String> = Vec::new();
    for reference in references {
        for directive in reference.directives() {
            if !labels.contains(&directive.label) {
                labels.push(directive.label);
            }
        }
    }
    let in_order = |shown: &BTreeSet<&str>| -> Vec<String> {
        catalogue.iter().filter(|a| shown.contains(a.as_str())).cloned().collect()
    };
    labels
        .into_iter()
        .map(|label| {
            let having = references.iter().filter(|r| r.directives().iter().any(|d| d.label == label));
            let mut first = None;
            for reference in having {
                first.get_or_insert_with(|| reference.name.clone());
                let effects: Vec<_> = maps
                    .iter()
                    .filter(|m| m.unit == reference.name)
                    .flat_map(|m| m.directives.iter().filter(|d| d.directive == label))
                    .collect();
                let alone: BTreeSet<&str> =
                    effects.iter().flat_map(|d| &d.in_sets).map(String::as_str).collect();
                let removed: BTreeSet<&str> =
                    effects.iter().flat_map(|d| &d.holds_alone).map(String::as_str).collect();
                let unit = reference.name.clone();
                if !alone.is_empty() {
                    return Test { directive: label, unit, attempts: in_order(&alone), alone: true };
                }
                if !removed.is_empty() {
                    return Test { directive: label, unit, attempts: in_order(&removed), alone: false };
                }
            }
            Test { directive: label, unit: first.unwrap_or_default(), attempts: Vec::new(), alone: true }
        })
        .collect()
}

/// Each reference unit's directive labels, for [`evaluate`].
pub fn labels(references: &[Reference]) -> BTreeMap<String, Vec<String>> {
    references
        .iter()
        .map(|r| (r.name.clone(), r.directives().into_iter().map(|d| d.label).collect()))
        .collect()
}

/// The enforcement report's plan: per test, its unit with the directive
/// and without it (a pass shared by every test that needs the same
/// variant), each making the attempts of every test that needs it.
pub fn staged(references: &[Reference], tests: &[Test]) -> Staged {
    let mut staged = Staged::default();
    staged.plan.parallel = 3;
    // (unit, removed labels) → attempts, in the order first needed.
    type Variant = (String, Vec<String>);
    let mut variants: Vec<(Variant, Vec<String>)> = Vec::new();
    let labels = labels(references);
    for test in tests.iter().filter(|t| !t.attempts.is_empty()) {
        let Some(labels) = labels.get(&test.unit) else { continue };
        let (with, without) = test.variants(labels);
        for removed in [with, without] {
            let key = (test.unit.clone(), removed);
            let at = variants.iter().position(|(k, _)| *k == key).unwrap_or_else(|| {
                variants.push((key, Vec::new()));
                variants.len() - 1
            });
            let attempts = &mut variants[at].1;
            for attempt in &test.attempts {
                if !attempts.contains(attempt) {
                    attempts.push(attempt.clone());
                }
            }
        }
    }
    for (i, ((unit, removed), attempts)) in variants.iter().enumerate() {
        let reference = references.iter().find(|r| r.name == *unit).expect("found above");
        let removing = reference.directives_labelled(removed);
        staged.add(
            format!("enf-{i}"),
            Role::Ablation { unit: unit.clone(), removed: removed.clone() },
            reference,
            22000 + i as u16,
            &removing.iter().collect::<Vec<_>>(),
            attempts,
            &[],
        );
    }
    staged
}

impl Test {
    /// The labels removed in the pass with the directive, and in the pass
    /// without it, out of the unit's `labels`.
    pub fn variants(&self, labels: &[String]) -> (Vec<String>, Vec<String>) {
        if self.alone {
            (ablation::all_but(labels, &self.directive), ablation::all_but(labels, ""))
        } else {
            (Vec::new(), vec![self.directive.clone()])
        }
    }
}

/// What a test showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// An attempt that escapes without it was stopped with it.
    Enforced,
    /// The unit ran; every attempt that escapes without it escaped with it.
    SilentlyIgnored,
    /// The unit never ran the probe.
    RefusedAtStart,
    /// Stopped, but not the way the catalogue expects.
    EnforcedDifferently,
    /// None of its attempts escapes even without it here.
    NotTestable,
    /// No attempt of the catalogue shows its effect on any release.
    NoPositiveTest,
}

impl Status {
    /// The words the tables use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enforced => "enforced",
            Status::SilentlyIgnored => "silently ignored",
            Status::RefusedAtStart => "refused at start",
            Status::EnforcedDifferently => "enforced differently",
            Status::NotTestable => "not testable here",
            Status::NoPositiveTest => "no positive test",
        }
    }

    /// Whether the directive is known not to work on this release.
    pub fn not_enforced(self) -> bool {
        matches!(self, Status::SilentlyIgnored | Status::RefusedAtStart)
    }
}

/// One directive on one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The directive's label.
    pub directive: String,
    /// The reference unit its lines came from.
    pub unit: String,
    /// What the test showed.
    pub status: Status,
    /// The attempt that decided it (the first one stopped, else the first
    /// that could escape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// What was seen: verdict and errno, or why the unit did not run.
    pub observed: String,
}

/// The enforcement report of one release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// The guest (or host) it was measured on.
    pub guest: GuestInfo,
    /// One row per directive, in the units' order.
    pub rows: Vec<Row>,
    /// Gaps in the measurement; empty when complete.
    pub failures: Vec<String>,
}

/// Reads the guest's answer to an enforcement plan; `labels` gives each
/// reference unit's directive labels.
pub fn evaluate(
    plan: &Plan,
    roles: &BTreeMap<String, Role>,
    tests: &[Test],
    labels: &BTreeMap<String, Vec<String>>,
    output: &str,
) -> EnforcementReport {
    let Answer { guest, reports, mut failures, .. } = answer(plan, output);
    let variant = |unit: &str, removed: &[String]| -> Option<&PassReport> {
        let pass = plan.passes.iter().find(|p| {
            matches!(roles.get(&p.name), Some(Role::Ablation { unit: u, removed: r }) if u == unit && r == removed)
        })?;
        reports.get(&pass.name)
    };
    let mut rows = Vec::new();
    for test in tests {
        if test.attempts.is_empty() {
            rows.push(Row {
                directive: test.directive.clone(),
                unit: test.unit.clone(),
                status: Status::NoPositiveTest,
                attempt: None,
                observed: "no attempt shows its effect (units/README.md says why it is there)".to_owned(),
            });
            continue;
        }
        let (with, without) = test.variants(labels.get(&test.unit).map(Vec::as_slice).unwrap_or_default());
        match (variant(&test.unit, &with), variant(&test.unit, &without)) {
            // Without its baseline a test proves nothing either way.
            (Some(_), Some(without)) if without.verdicts.is_empty() => failures.push(format!(
                "{}: the pass without it never ran the probe: {}",
                test.directive,
                without.failures.first().map_or("no verdicts", String::as_str)
            )),
            (Some(with), Some(without)) => rows.push(judge(test, with, without)),
            _ => failures.push(format!("{}: a pass of its test never reported", test.directive)),
        }
    }
    EnforcementReport { guest, rows, failures }
}

/// One test's row from its passes with and without the directive.
fn judge(test: &Test, with: &PassReport, without: &PassReport) -> Row {
    let row = |status, attempt: Option<&String>, observed: String| Row {
        directive: test.directive.clone(),
        unit: test.unit.clone(),
        status,
        attempt: attempt.cloned(),
        observed,
    };
    if with.verdicts.is_empty() {
        let why = with.failures.first().cloned().unwrap_or_else(|| "no verdicts".to_owned());
        return row(Status::RefusedAtStart, None, why);
    }
    let escapes_without = |attempt: &str| {
        without.verdicts.iter().any(|v| v.id == attempt && without.verdict_of(v) == VerdictKind::Escaped)
    };
    let testable: Vec<&String> = test.attempts.iter().filter(|a| escapes_without(a)).collect();
    if testable.is_empty() {
        let tried = test.attempts.join(", ");
        let closed_by_kernel: Vec<&str> = without
            .verdicts
            .iter()
            .filter(|v| test.attempts.contains(&v.id))
            .filter(|v| v.reason == Some(sandkasten_probe::verdict::Unsupported::KernelPolicy))
            .map(|v| v.id.as_str())
            .collect();
        let why = if closed_by_kernel.is_empty() {
            String::new()
        } else {
            format!(" (kernel policy: this kernel closes {} to everyone)", closed_by_kernel.join(", "))
        };
        return row(Status::NotTestable, None, format!("without it, {tried} cannot escape here either{why}"));
    }
    let seen = |attempt: &str| with.verdicts.iter().find(|v| v.id == attempt);
    let observed = |attempt: &str| match seen(attempt) {
        Some(v) => {
            let verdict = with.verdict_of(v);
            match &v.outcome {
                Some(outcome) if verdict != VerdictKind::Escaped => {
                    format!("{} ({outcome})", verdict.as_str())
                }
                _ => verdict.as_str().to_owned(),
            }
        }
        None => "no verdict".to_owned(),
    };
    if let Some(attempt) = testable.iter().find(|a| seen(a).is_some_and(|v| held(with.verdict_of(v)))) {
        return row(Status::Enforced, Some(attempt), observed(attempt));
    }
    let differently = testable.iter().find(|a| {
        seen(a)
            .is_some_and(|v| stopped_unlisted(with.verdict_of(v), v.outcome.as_deref().unwrap_or_default()))
    });
    if let Some(attempt) = differently {
        let detail = seen(attempt).map(|v| v.detail.clone()).unwrap_or_default();
        return row(Status::EnforcedDifferently, Some(attempt), format!("{}: {detail}", observed(attempt)));
    }
    let first = testable[0];
    row(Status::SilentlyIgnored, Some(first), observed(first))
}

impl EnforcementReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "enforcement: {} (systemd {}, kernel {})\n",
            self.guest.release, self.guest.systemd, self.guest.kernel
        );
        if !self.guest.features.is_empty() {
            let _ = writeln!(out, "systemd features: {}", self.guest.features);
        }
        let width = self.rows.iter().map(|r| r.directive.len()).max().unwrap_or(9).max(9);
        let _ = writeln!(out, "  {:width$}  {:20}  {:24}  observed", "directive", "status", "attempt");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "  {:width$}  {:20}  {:24}  {}",
                r.directive,
                r.status.as_str(),
                r.attempt.as_deref().unwrap_or("-"),
                r.observed
            );
        }
        for failure in &self.failures {
            let _ = writeln!(out, "FAIL: {failure}");
        }
        out
    }

    /// The status of `directive`, if tested.
    pub fn status_of(&self, directive: &str) -> Option<Status> {
        self.rows.iter().find(|r| r.directive == directive).map(|r| r.status)
    }
}

/// Where `--check` finds a measurement that does not match the committed
/// report: a directive whose status changed, or that is missing on either
/// side. The deciding attempt is shown, not compared: when several attempts
/// show a directive's effect, which one decides first can vary with timing
/// (seen: `Mark= (socket)` decided by `net.handover-accepted` in one run and
/// by `net.handover-unspec` in the next, both blocked by the egress guard).
pub fn differences(committed: &EnforcementReport, measured: &EnforcementReport) -> Vec<String> {
    let key = |r: &Row| r.status;
    let committed_rows: BTreeMap<&str, &Row> =
        committed.rows.iter().map(|r| (r.directive.as_str(), r)).collect();
    let measured_rows: BTreeMap<&str, &Row> =
        measured.rows.iter().map(|r| (r.directive.as_str(), r)).collect();
    let mut out = Vec::new();
    for (directive, row) in &measured_rows {
        match committed_rows.get(directive) {
            None => out.push(format!("{directive} is not in the committed report")),
            Some(c) if key(c) != key(row) => out.push(format!(
                "{directive}: committed {} ({}), measured {} ({}): {}",
                c.status.as_str(),
                c.attempt.as_deref().unwrap_or("-"),
                row.status.as_str(),
                row.attempt.as_deref().unwrap_or("-"),
                row.observed
            )),
            Some(_) => {}
        }
    }
    for directive in committed_rows.keys().filter(|d| !measured_rows.contains_key(*d)) {
        out.push(format!("{directive} was not measured"));
    }
    out
}

/// The first line of the generated table in units/README.md.
pub const TABLE_BEGIN: &str =
    "<!-- enforcement table: generated by `sandkasten-vm enforce --release all`; do not edit -->";
/// Its last line.
pub const TABLE_END: &str = "<!-- end of enforcement table -->";

/// The Markdown table of several releases side by side, between the
/// markers.
pub fn markdown(reports: &[EnforcementReport]) -> String {
    let mut out = format!("{TABLE_BEGIN}\n\n| directive |");
    for r in reports {
        let _ =
            write!(out, " {} (systemd {}, kernel {}) |", r.guest.release, r.guest.systemd, r.guest.kernel);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    let directives: Vec<&str> =
        reports.first().map(|r| r.rows.iter().map(|r| r.directive.as_str()).collect()).unwrap_or_default();
    for directive in directives {
        let _ = write!(out, "| `{directive}` |");
        for report in reports {
            let cell = match report.rows.iter().find(|r| r.directive == directive) {
                None => "not measured".to_owned(),
                Some(r) => {
                    let status = match r.status {
                        Status::Enforced | Status::NoPositiveTest => r.status.as_str().to_owned(),
                        _ => format!("**{}**", r.status.as_str()),
                    };
                    match (&r.attempt, r.status) {
                        (Some(a), Status::Enforced) => format!("{status}: `{a}` {}", r.observed),
                        (Some(a), _) => format!("{status}: `{a}` {}", r.observed),
                        (None, Status::RefusedAtStart) => format!("{status}: {}", r.observed),
                        (None, _) => status,
                    }
                }
            };
            let _ = write!(out, " {} |", cell.replace('|', "\\|").replace('\n', " "));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(TABLE_END);
    out
}

/// `text` with the block between the markers replaced by `table` (the
/// markers included); `None` when the markers are missing.
pub fn splice(text: &str, table: &str) -> Option<String> {
    let begin = text.find(TABLE_BEGIN)?;
    let end = text[begin..].find(TABLE_END)? + begin + TABLE_END.len();
    Some(format!("{}{table}{}", &text[..begin], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{GuestEvent, Pass, Verdict, VerdictKind};

    fn verdict(id: &str, kind: VerdictKind, outcome: Option<&str>) -> Verdict {
        Verdict {
            id: id.into(),
            goal: "g".into(),
            directive: String::new(),
            verdict: kind,
            outcome: outcome.map(Into::into),
            accepted: vec![],
            reason: None,
            detail: "d".into(),
            elapsed_ms: 1,
        }
    }

    fn pass_report(name: &str, verdicts: Vec<Verdict>, failures: &[&str]) -> GuestEvent {
        GuestEvent::Pass(PassReport {
            name: name.into(),
            verdicts,
            canary: Some(BTreeMap::new()),
            result: "success".into(),
            elapsed_ms: 1,
            failures: failures.iter().map(|f| f.to_string()).collect(),
        })
    }

    const LABELS: [&str; 3] = ["A=", "B=", "C="];

    fn test(directive: &str, attempts: &[&str], alone: bool) -> Test {
        Test {
            directive: directive.into(),
            unit: "u".into(),
            attempts: attempts.iter().map(|s| s.to_string()).collect(),
            alone,
        }
    }

    /// One pass per (removed set) named in `passes`, with its verdicts.
    fn run(tests: &[Test], passes: Vec<(Vec<&str>, Vec<Verdict>, &[&str])>) -> EnforcementReport {
        let mut plan = Plan { functional: false, parallel: 1, ..Plan::default() };
        let mut roles = BTreeMap::new();
        let mut output = String::from(
            r#"{"kind":"guest","release":"sid","systemd":"262","kernel":"7.2","features":"","accel":""}"#,
        );
        output.push('\n');
        for (i, (removed, verdicts, failures)) in passes.into_iter().enumerate() {
            let name = format!("enf-{i}");
            let attempts = verdicts.iter().map(|v| v.id.clone()).collect();
            plan.passes.push(Pass { name: name.clone(), attempts, ..Pass::default() });
            let removed = removed.iter().map(|s| s.to_string()).collect();
            roles.insert(name.clone(), Role::Ablation { unit: "u".into(), removed });
            output.push_str(&serde_json::to_string(&pass_report(&name, verdicts, failures)).unwrap());
            output.push('\n');
        }
        output.push_str("{\"kind\":\"done\"}\n");
        let labels = BTreeMap::from([("u".to_owned(), LABELS.iter().map(|s| s.to_string()).collect())]);
        evaluate(&plan, &roles, tests, &labels, &output)
    }

    use VerdictKind::{Blocked, Error, Escaped};

    #[test]
    fn alone_compares_the_directive_alone_with_all_removed() {
        let tests = [test("A=", &["x", "y"], true), test("B=", &["x"], true), test("C=", &["y"], true)];
        let report = run(
            &tests,
            vec![
                // Everything removed: x escapes, y does not (it proves nothing).
                (
                    vec!["A=", "B=", "C="],
                    vec![verdict("x", Escaped, None), verdict("y", Blocked, Some("EPERM"))],
                    &[],
                ),
                // A= alone stops x.
                (
                    vec!["B=", "C="],
                    vec![verdict("x", Blocked, Some("EACCES")), verdict("y", Blocked, Some("EPERM"))],
                    &[],
                ),
                // B= alone: x escapes as without it.
                (vec!["A=", "C="], vec![verdict("x", Escaped, None)], &[]),
                // C= alone: y only, which escapes nowhere.
                (vec!["A=", "B="], vec![verdict("y", Blocked, Some("EPERM"))], &[]),
            ],
        );
        let got: Vec<(Status, Option<&str>)> =
            report.rows.iter().map(|r| (r.status, r.attempt.as_deref())).collect();
        assert_eq!(
            got,
            [
                (Status::Enforced, Some("x")),
                (Status::SilentlyIgnored, Some("x")),
                (Status::NotTestable, None)
            ]
        );
        assert_eq!(report.rows[0].observed, "blocked (EACCES)");
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }

    #[test]
    fn removed_compares_the_unit_as_shipped_with_the_unit_without_it() {
        let tests = [test("A=", &["x"], false), test("B=", &["x"], false), test("C=", &[], false)];
        let report = run(
            &tests,
            vec![
                (vec![], vec![verdict("x", Error, Some("EIO"))], &[]),
                (vec!["A="], vec![verdict("x", Escaped, None)], &[]),
                (vec!["B="], vec![verdict("x", Blocked, Some("EPERM"))], &[]),
            ],
        );
        let got: Vec<Status> = report.rows.iter().map(|r| r.status).collect();
        // With A= the attempt stopped at an errno the catalogue does not
        // list; without B= it does not escape, so B= cannot be told here.
        assert_eq!(got, [Status::EnforcedDifferently, Status::NotTestable, Status::NoPositiveTest]);
        assert!(report.rows[0].observed.starts_with("error (EIO)"), "{}", report.rows[0].observed);
    }

    /// A directive whose only attempts the kernel closes to everyone cannot
    /// be tested on that kernel, and the report says it is the kernel's
    /// policy (a newer kernel refuses connect() to former listeners).
    #[test]
    fn a_route_the_kernel_closes_to_everyone_is_named_as_kernel_policy() {
        let tests = [test("A=", &["x"], false)];
        let mut closed = verdict("x", VerdictKind::Unsupported, None);
        closed.reason = Some(sandkasten_probe::verdict::Unsupported::KernelPolicy);
        let report = run(
            &tests,
            vec![(vec![], vec![verdict("x", Blocked, Some("EPERM"))], &[]), (vec!["A="], vec![closed], &[])],
        );
        assert_eq!(report.rows[0].status, Status::NotTestable);
        assert_eq!(
            report.rows[0].observed,
            "without it, x cannot escape here either (kernel policy: this kernel closes x to everyone)"
        );
    }

    #[test]
    fn a_unit_that_never_ran_the_probe_is_refused_at_start() {
        let tests = [test("A=", &["x"], true)];
        let report = run(
            &tests,
            vec![
                (vec!["A=", "B=", "C="], vec![verdict("x", Escaped, None)], &[]),
                (
                    vec!["B=", "C="],
                    vec![],
                    &["the probe never reported from sk-enf-1.service (systemd's Result=exit-code)"],
                ),
            ],
        );
        assert_eq!(report.rows[0].status, Status::RefusedAtStart);
        assert!(report.rows[0].observed.contains("never reported"), "{}", report.rows[0].observed);
    }

    #[test]
    fn a_baseline_that_never_ran_is_a_failure_not_a_verdict() {
        let tests = [test("A=", &["x"], true)];
        let report = run(
            &tests,
            vec![
                (vec!["A=", "B=", "C="], vec![], &["the probe never reported from sk-enf-0.service"]),
                (vec!["B=", "C="], vec![verdict("x", Blocked, Some("EPERM"))], &[]),
            ],
        );
        assert!(report.rows.is_empty(), "{:?}", report.rows);
        assert!(report.failures.iter().any(|f| f.contains("without it never ran")), "{:?}", report.failures);
    }

    #[test]
    fn a_test_whose_pass_never_reported_is_a_failure_not_a_row() {
        let tests = [test("A=", &["x"], true)];
        let report = run(&tests, vec![(vec!["A=", "B=", "C="], vec![verdict("x", Escaped, None)], &[])]);
        assert!(report.rows.is_empty());
        assert!(report.failures.iter().any(|f| f.starts_with("A=")), "{:?}", report.failures);
    }

    #[test]
    fn check_names_a_changed_status_and_a_missing_directive() {
        let row = |d: &str, s| Row {
            directive: d.into(),
            unit: "u".into(),
            status: s,
            attempt: None,
            observed: String::new(),
        };
        let committed = EnforcementReport {
            rows: vec![row("A=", Status::Enforced), row("B=", Status::Enforced)],
            ..Default::default()
        };
        let measured =
            EnforcementReport { rows: vec![row("A=", Status::SilentlyIgnored)], ..Default::default() };
        let diff = differences(&committed, &measured);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("A=: committed enforced"), "{diff:?}");
        assert_eq!(diff[1], "B= was not measured");
        assert!(differences(&committed, &committed).is_empty());
        // Another deciding attempt with the same status is no difference.
        let mut other = committed.clone();
        other.rows[0].attempt = Some("net.handover-unspec".into());
        assert!(differences(&committed, &other).is_empty());
    }

    #[test]
    fn the_table_is_spliced_between_its_markers_only() {
        let text = format!("before\n{TABLE_BEGIN}\nold\n{TABLE_END}\nafter\n");
        let spliced = splice(&text, &format!("{TABLE_BEGIN}\nnew\n{TABLE_END}")).unwrap();
        assert_eq!(spliced, format!("before\n{TABLE_BEGIN}\nnew\n{TABLE_END}\nafter\n"));
        assert!(splice("no markers", "x").is_none());
    }
}
