//! The escape matrix: what the guest side ([`crate::inside`]) answered,
//! turned into the report of ARCHITECTURE.md's schema, a table, JUnit, and a
//! verdict.
//!
//! Each probe verdict is taken as the probe gave it, except that the canary
//! outside the sandbox has the last word: an attempt the canary saw arrive (a
//! token on a socket, a signal, a marker file on the host) is `escaped`,
//! whatever the probe believed. The run passes only when every pass of the
//! plan reported with a verdict for every attempt and a canary report, the
//! guest side ran to its end, every server answered through its socket,
//! nothing escaped from a reference unit, nothing ended in `error`, and the
//! root control escaped wherever the machine allows it (else `unsupported`,
//! with the reason). The plain user's verdicts are shown, never judged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::contract::{answer, held, Answer, Functional, GuestInfo, PassReport, Plan, Verdict, VerdictKind};
use crate::passes::{short_name, Role};

/// The name the unsandboxed run carries in the report.
pub const CONTROL: &str = "control";
/// The name the plain-user control carries in the report.
pub const PLAIN_USER: &str = "plain-user";

/// The whole report (`sandkasten-vm matrix --json FILE`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// What ran the matrix.
    pub guest: GuestInfo,
    /// One row per unit and attempt, the control included.
    pub results: Vec<AttemptResult>,
    /// Functional checks through each socket.
    pub functional: Vec<Functional>,
    /// Counts over `results`.
    pub summary: Summary,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
    /// The part of a split run this is (`--shard I/N`), written `"I/N"`;
    /// absent for a whole run ([`crate::shard::merge`] joins the parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::passes::Shard>,
    /// The table's columns: every unit the plan ran, in its order, whether
    /// it reported or not (not written: a report read back from JSON takes
    /// its columns from its rows).
    #[serde(skip)]
    pub columns: Vec<String>,
}

/// One attempt in one unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptResult {
    /// The unit whose sandbox the probe ran in, or `control`.
    pub unit: String,
    /// The catalogue id of the route.
    pub attempt: String,
    /// The goal the route leads to (`run-unshipped-code`).
    #[serde(default)]
    pub goal: String,
    /// The directive that should stop it.
    pub directive: String,
    /// blocked, killed, escaped, unsupported or error.
    pub verdict: VerdictKind,
    /// What happened, in words.
    pub detail: String,
    /// Why an `unsupported` route could not be tried (`not-applicable`,
    /// `systemd-bpf`, `kernel`, `no-canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same attempt's verdict for a plain unprivileged user with no
    /// sandbox: `blocked` there means "not root" already stops it.
    #[serde(default, with = "crate::contract::verdict_or_empty")]
    pub plain_user: Option<VerdictKind>,
}

/// Counts over the results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Distinct attempts.
    pub attempts: usize,
    /// Distinct units, the control included.
    pub units: usize,
    /// Verdicts `blocked` or `killed`.
    pub blocked: usize,
    /// Verdicts `escaped`.
    pub escaped: usize,
    /// Verdicts `error`.
    pub errors: usize,
}

/// Builds the report from the guest's output for the passes of `plan`
/// (their roles in `roles`) and decides pass or fail.
///
/// Fail-closed: a pass that never reported, an attempt without a verdict,
/// a pass the canary was not asked about, a plan that did not reach its
/// end are failures, never a shorter table. The canary outside the sandbox
/// has the last word: an attempt it saw arrive (a token on a socket, a
/// signal, a marker file on the host) is `escaped`, whatever the probe
/// believed.
pub fn evaluate(plan: &Plan, roles: &BTreeMap<String, Role>, output: &str, accel: &str) -> Report {
    from_answer(plan, roles, &answer(plan, output), accel)
}

/// [`evaluate`] of an answer already read (an audit reads its scores too).
pub fn from_answer(plan: &Plan, roles: &BTreeMap<String, Role>, answer: &Answer, accel: &str) -> Report {
    let (reports, functional) = (&answer.reports, answer.checks.clone());
    let (mut guest, mut failures) = (answer.guest.clone(), answer.failures.clone());
    guest.accel = accel.to_owned();
    let mut results: Vec<AttemptResult> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let control_policy = kernel_policy_in_control(plan, roles, answer);
    for pass in &plan.passes {
        let unit = match roles.get(&pass.name) {
            Some(Role::Unit(unit)) => unit.clone(),
            Some(Role::Control) => CONTROL.to_owned(),
            Some(Role::PlainUser) => PLAIN_USER.to_owned(),
            _ => continue,
        };
        columns.push(unit.clone());
        let Some(report) = reports.get(&pass.name) else { continue };
        if report.verdicts.is_empty() && !pass.attempts.is_empty() {
            failures.push(format!("{unit}: no results: its pass reported no verdict"));
        }
        failures.extend(report.failures.iter().map(|f| format!("{unit}: {f}")));
        results.extend(report.verdicts.iter().map(|v| {
            let policy = control_policy.get(&v.id).filter(|_| unit != CONTROL);
            AttemptResult::from_verdict(&unit, &refused_by_kernel(v, policy), report)
        }));
    }
    if plan.functional && functional.is_empty() {
        failures.push("no functional check reported".to_owned());
    }
    // Every row carries the plain user's verdict: a route a plain user
    // cannot take either is stopped by "not root", not by the sandbox.
    let plain: BTreeMap<String, VerdictKind> =
        results.iter().filter(|r| r.unit == PLAIN_USER).map(|r| (r.attempt.clone(), r.verdict)).collect();
    for r in &mut results {
        r.plain_user = plain.get(&r.attempt).copied();
    }
    for check in functional.iter().filter(|c| !c.ok) {
        failures.push(format!("{}: {} failed: {}", check.unit, check.check, check.detail));
    }
    let control_escaped: BTreeSet<&str> = results
        .iter()
        .filter(|r| r.unit == CONTROL && r.verdict == VerdictKind::Escaped)
        .map(|r| r.attempt.as_str())
        .collect();
    for r in &results {
        let in_control = r.unit == CONTROL;
        if r.reason.as_deref() == Some(KERNEL_POLICY) && control_escaped.contains(r.attempt.as_str()) {
            failures.push(format!(
                "{}: {} is said to be closed by the kernel to everyone, but the root control escaped on the same kernel: {}",
                r.unit, r.attempt, r.detail
            ));
        }
        match r.verdict {
            VerdictKind::Escaped if !in_control && r.unit != PLAIN_USER => {
                failures.push(format!("{}: {} ESCAPED: {}", r.unit, r.attempt, r.detail))
            }
            VerdictKind::Blocked | VerdictKind::Killed if in_control => failures.push(format!(
                "control: {} did not escape, so its blocks prove nothing: {}",
                r.attempt, r.detail
            )),
            VerdictKind::Error => failures.push(format!("{}: {} error: {}", r.unit, r.attempt, r.detail)),
            _ => {}
        }
    }
    let summary = Summary::of(&results);
    Report { guest, results, functional, summary, failures, shard: None, columns }
}

impl Summary {
    /// The counts over `results`.
    pub fn of(results: &[AttemptResult]) -> Summary {
        Summary {
            attempts: results.iter().map(|r| r.attempt.as_str()).collect::<BTreeSet<_>>().len(),
            units: results.iter().map(|r| r.unit.as_str()).collect::<BTreeSet<_>>().len(),
            blocked: results.iter().filter(|r| held(r.verdict)).count(),
            escaped: results.iter().filter(|r| r.verdict == VerdictKind::Escaped).count(),
            errors: results.iter().filter(|r| r.verdict == VerdictKind::Error).count(),
        }
    }
}

/// The reason a route closed to everyone by the kernel carries.
const KERNEL_POLICY: &str = "kernel-policy";

/// The attempts the root control found closed by the kernel's policy,
/// with its evidence: the same kernel refuses them to every sandbox too.
fn kernel_policy_in_control(
    plan: &Plan,
    roles: &BTreeMap<String, Role>,
    answer: &Answer,
) -> BTreeMap<String, String> {
    plan.passes
        .iter()
        .filter(|p| matches!(roles.get(&p.name), Some(Role::Control)))
        .filter_map(|p| answer.reports.get(&p.name))
        .flat_map(|report| &report.verdicts)
        .filter(|v| v.reason == Some(sandkasten_probe::verdict::Unsupported::KernelPolicy))
        .map(|v| (v.id.clone(), v.detail.clone()))
        .collect()
}

/// A sandboxed verdict in the light of the root control on the same kernel:
/// a stop the catalogue does not list (an `error` with an errno, such as
/// EINVAL where the probe inside could not check the kernel itself) of a
/// route the control found closed by the kernel's `policy` is that policy,
/// not a failure of the sandbox or the probe. Every other verdict stands:
/// an accepted stop came before the kernel was asked.
fn refused_by_kernel(v: &Verdict, policy: Option<&String>) -> Verdict {
    match policy {
        Some(evidence) if v.verdict == VerdictKind::Error && v.outcome.is_some() => Verdict {
            verdict: VerdictKind::Unsupported,
            reason: Some(sandkasten_probe::verdict::Unsupported::KernelPolicy),
            detail: format!("{}; the root control on this kernel: {evidence}", v.detail),
            ..v.clone()
        },
        _ => v.clone(),
    }
}

impl AttemptResult {
    /// A row from a probe verdict, after the canary's word.
    pub fn from_verdict(unit: &str, v: &Verdict, pass: &PassReport) -> AttemptResult {
        let reason = v.reason.map(|r| r.as_str().to_owned());
        let mut verdict = v.verdict;
        let mut detail = match &reason {
            Some(reason) => format!("{} ({reason})", v.detail).trim().to_owned(),
            None => v.detail.clone(),
        };
        // The catalogue accepts the errnos a sandbox gives; a plain user is
        // stopped by others (EACCES from the mode bits): stopped all the same.
        if unit == PLAIN_USER && v.verdict == VerdictKind::Error && v.outcome.is_some() {
            verdict = VerdictKind::Blocked;
            detail = format!("not root: {detail}");
        }
        if pass.canary_saw(&v.id) {
            canary_overrules(&mut verdict, &mut detail);
        }
        AttemptResult {
            unit: unit.to_owned(),
            attempt: v.id.clone(),
            goal: v.goal.clone(),
            directive: v.directive.clone(),
            verdict,
            detail,
            reason,
            plain_user: None,
        }
    }
}

/// A route the canary saw arrive escaped, whatever the probe believed.
fn canary_overrules(verdict: &mut VerdictKind, detail: &mut String) {
    if *verdict != VerdictKind::Escaped {
        *detail = format!("the canary saw it arrive, though the probe said {}: {detail}", verdict.as_str());
        *verdict = VerdictKind::Escaped;
    }
}

impl Report {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Units in display order: the root control, the plain user, then the
    /// reference units as the plan ran them (a unit without results keeps
    /// its column, with a `-` in each cell).
    fn units(&self) -> Vec<&str> {
        let mut units: Vec<&str> = vec![CONTROL, PLAIN_USER];
        for unit in &self.columns {
            if !units.contains(&unit.as_str()) {
                units.push(unit);
            }
        }
        for r in &self.results {
            if !units.contains(&r.unit.as_str()) {
                units.push(&r.unit);
            }
        }
        units
    }

    /// The matrix as a terminal table: attempts down, units across.
    pub fn table(&self) -> String {
        let units = self.units();
        let short: Vec<String> = units.iter().map(|u| short_name(u)).collect();
        // Routes grouped under their goal, goals in order of first appearance.
        let mut goals: Vec<(&str, Vec<&str>)> = Vec::new();
        for r in &self.results {
            let at = match goals.iter().position(|(g, _)| *g == r.goal) {
                Some(at) => at,
                None => {
                    goals.push((&r.goal, Vec::new()));
                    goals.len() - 1
                }
            };
            if !goals[at].1.contains(&r.attempt.as_str()) {
                goals[at].1.push(&r.attempt);
            }
        }
        let id_width =
            goals.iter().flat_map(|(_, routes)| routes).map(|a| a.len() + 13).max().unwrap_or(7).max(7);
        let width = short.iter().map(String::len).max().unwrap_or(0).max(9);
        let mut out = String::new();
        let g = &self.guest;
        let _ = writeln!(
            out,
            "escape matrix: {} (systemd {}, kernel {}, {})",
            g.release, g.systemd, g.kernel, g.accel
        );
        if !g.features.is_empty() {
            let _ = writeln!(out, "systemd features: {}", g.features);
        }
        let _ = write!(out, "{:id_width$}", "attempt");
        for s in &short {
            let _ = write!(out, "  {s:>width$}");
        }
        out.push('\n');
        for (goal, routes) in &goals {
            if !goal.is_empty() {
                let _ = writeln!(out, "{goal}:");
            }
            for attempt in routes {
                // A route the plain user cannot take either: "not root" stops it.
                let not_root =
                    self.results.iter().any(|r| r.attempt == *attempt && r.plain_user.is_some_and(held));
                let route = format!("  {attempt}{}", if not_root { " (not root)" } else { "" });
                let _ = write!(out, "{route:id_width$}");
                for unit in &units {
                    let verdict = self
                        .results
                        .iter()
                        .find(|r| r.unit == *unit && r.attempt == *attempt)
                        .map(|r| cell(r.verdict, unit))
                        .unwrap_or("-");
                    let _ = write!(out, "  {verdict:>width$}");
                }
                out.push('\n');
            }
        }
        for check in &self.functional {
            let _ =
                writeln!(out, "{} {}: {}", if check.ok { "ok  " } else { "FAIL" }, check.unit, check.check);
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} attempts x {} units: {} blocked, {} escaped (control included), {} errors",
            s.attempts, s.units, s.blocked, s.escaped, s.errors
        );
        if self.passed() {
            let _ = writeln!(out, "PASS: every attempt blocked in every reference unit, and escaped in the control where the machine allows it");
        } else {
            for failure in &self.failures {
                let _ = writeln!(out, "FAIL: {failure}");
            }
        }
        out
    }

    /// JUnit XML: one test case per unit and attempt, and per functional check.
    pub fn junit(&self) -> String {
        let mut cases = String::new();
        let mut failed = 0;
        for r in &self.results {
            let bad = match r.verdict {
                VerdictKind::Error => true,
                VerdictKind::Escaped => r.unit != CONTROL && r.unit != PLAIN_USER,
                VerdictKind::Blocked | VerdictKind::Killed => r.unit == CONTROL,
                VerdictKind::Unsupported => false,
            };
            failed += usize::from(bad);
            let _ = write!(cases, r#"<testcase classname="{}" name="{}">"#, xml(&r.unit), xml(&r.attempt));
            if bad {
                let _ = write!(
                    cases,
                    r#"<failure message="{}">{}</failure>"#,
                    xml(r.verdict.as_str()),
                    xml(&r.detail)
                );
            } else if r.verdict == VerdictKind::Unsupported {
                let _ = write!(cases, r#"<skipped message="{}"/>"#, xml(&r.detail));
            }
            cases.push_str("</testcase>\n");
        }
        for c in &self.functional {
            failed += usize::from(!c.ok);
            let _ = write!(cases, r#"<testcase classname="{}" name="{}">"#, xml(&c.unit), xml(&c.check));
            if !c.ok {
                let _ = write!(cases, r#"<failure message="failed">{}</failure>"#, xml(&c.detail));
            }
            cases.push_str("</testcase>\n");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"sandkasten-vm matrix {}\" tests=\"{}\" failures=\"{}\">\n{cases}</testsuite>\n",
            xml(&self.guest.release),
            self.results.len() + self.functional.len(),
            failed
        )
    }
}

/// A verdict as a table cell: failures shout. The plain user is neither
/// expected to escape nor to hold.
fn cell(verdict: VerdictKind, unit: &str) -> &'static str {
    use VerdictKind::{Blocked, Error, Escaped, Killed, Unsupported};
    match (verdict, unit) {
        (Escaped, CONTROL | PLAIN_USER) => "escaped",
        (Blocked | Killed, CONTROL) => "HELD",
        (Blocked, _) => "blocked",
        (Killed, _) => "killed",
        (Escaped, _) => "ESCAPED",
        (Unsupported, _) => "n/a",
        (Error, _) => "ERROR",
    }
}

/// `text` escaped for XML (JUnit, the ablation map's SVG).
pub(crate) fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{GuestEvent, Pass, PassReport};
    use std::collections::BTreeMap;

    fn plan_and_roles() -> (Plan, BTreeMap<String, Role>) {
        let pass = |name: &str| Pass {
            name: name.into(),
            attempts: vec!["a".into(), "b".into()],
            deadline_s: 60,
            ..Pass::default()
        };
        let plan =
            Plan { parallel: 2, passes: vec![pass("control"), pass("plain"), pass("u")], ..Plan::default() };
        let roles = BTreeMap::from([
            ("control".to_owned(), Role::Control),
            ("plain".to_owned(), Role::PlainUser),
            ("u".to_owned(), Role::Unit("u.service".into())),
        ]);
        (plan, roles)
    }

    fn verdict(id: &str, verdict: &str, outcome: Option<&str>) -> Verdict {
        serde_json::from_value(serde_json::json!({
            "id": id, "goal": "g", "directive": "X=", "verdict": verdict, "outcome": outcome,
            "accepted": ["EPERM"], "detail": "d", "elapsed_ms": 1
        }))
        .unwrap()
    }

    fn pass(name: &str, verdicts: &[(&str, &str)], canary: Option<&[&str]>) -> String {
        let report = PassReport {
            name: name.into(),
            verdicts: verdicts.iter().map(|(id, v)| verdict(id, v, Some("EPERM"))).collect(),
            canary: canary
                .map(|seen| seen.iter().map(|a| ((*a).to_owned(), vec![name.to_owned()])).collect()),
            result: "success".into(),
            elapsed_ms: 1,
            failures: if canary.is_none() { vec!["no canary report: refused".into()] } else { vec![] },
        };
        serde_json::to_string(&GuestEvent::Pass(report)).unwrap()
    }

    const GUEST: &str = r#"{"kind":"guest","release":"bookworm","systemd":"252","kernel":"6.1","features":"-BPF_FRAMEWORK","accel":""}"#;
    const DONE: &str = r#"{"kind":"done"}"#;

    fn good() -> Vec<String> {
        vec![
            GUEST.to_owned(),
            pass("control", &[("a", "escaped"), ("b", "escaped")], Some(&[])),
            pass("plain", &[("a", "blocked"), ("b", "escaped")], Some(&[])),
            pass("u", &[("a", "blocked"), ("b", "killed")], Some(&[])),
            DONE.to_owned(),
        ]
    }

    fn evaluate_lines(lines: &[String]) -> Report {
        let (plan, roles) = plan_and_roles();
        evaluate(&plan, &roles, &lines.join("\n"), "tcg")
    }

    #[test]
    fn blocked_in_the_unit_and_escaped_in_the_control_passes_with_the_plain_user_beside() {
        let report = evaluate_lines(&good());
        assert!(report.passed(), "{:?}", report.failures);
        let row = report.results.iter().find(|r| r.unit == "u.service" && r.attempt == "a").unwrap();
        assert_eq!(row.plain_user, Some(VerdictKind::Blocked), "every row carries the plain user's verdict");
        let table = report.table();
        assert!(table.contains("  a (not root)"), "{table}");
        assert!(table.contains("control  plain-user"), "{table}");
    }

    #[test]
    fn a_unit_that_never_reported_fails() {
        let mut lines = good();
        lines.remove(3);
        let report = evaluate_lines(&lines);
        assert_eq!(report.failures, ["pass u (sk-u.service) never reported"]);
        // Its column stays, empty, instead of vanishing from the table.
        let header = report.table().lines().nth(2).unwrap_or_default().to_owned();
        assert!(header.ends_with(" u"), "{header}");
    }

    #[test]
    fn a_unit_whose_pass_reported_no_verdict_fails_by_name() {
        let mut lines = good();
        lines[3] = pass("u", &[], Some(&[]));
        let failures = evaluate_lines(&lines).failures;
        assert!(
            failures.contains(&"u.service: no results: its pass reported no verdict".to_owned()),
            "{failures:?}"
        );
    }

    #[test]
    fn a_missing_verdict_fails() {
        // The guest side names the gap; the host passes it on.
        let mut lines = good();
        let mut report: PassReport = match serde_json::from_str(&lines[3]).unwrap() {
            GuestEvent::Pass(r) => r,
            _ => unreachable!(),
        };
        report.verdicts.pop();
        report.failures.push("no verdict for b".into());
        lines[3] = serde_json::to_string(&GuestEvent::Pass(report)).unwrap();
        assert_eq!(evaluate_lines(&lines).failures, ["u.service: no verdict for b"]);
    }

    #[test]
    fn a_missing_canary_report_fails() {
        let mut lines = good();
        lines[3] = pass("u", &[("a", "blocked"), ("b", "killed")], None);
        assert_eq!(evaluate_lines(&lines).failures, ["u.service: no canary report: refused"]);
    }

    #[test]
    fn a_plan_that_did_not_end_fails() {
        let mut lines = good();
        lines.pop();
        assert_eq!(evaluate_lines(&lines).failures, ["the guest plan did not run to its end"]);
    }

    #[test]
    fn an_escape_a_held_control_and_an_error_fail() {
        let mut lines = good();
        lines[1] = pass("control", &[("a", "blocked"), ("b", "escaped")], Some(&[]));
        lines[3] = pass("u", &[("a", "escaped"), ("b", "error")], Some(&[]));
        let failures = evaluate_lines(&lines).failures.join("\n");
        for needle in ["u.service: a ESCAPED", "u.service: b error", "control: a did not escape"] {
            assert!(failures.contains(needle), "{needle}: {failures}");
        }
    }

    /// A pass line whose attempt `a` was refused by the kernel (EINVAL),
    /// as the probe says it: `kernel-policy` where it could check, else an
    /// unlisted stop; `b` got `b`.
    fn refused_by_the_kernel(name: &str, checked: bool, b: &str) -> String {
        let mut a = verdict("a", if checked { "unsupported" } else { "error" }, Some("EINVAL"));
        if checked {
            a.outcome = None;
            a.reason = Some(sandkasten_probe::verdict::Unsupported::KernelPolicy);
            a.detail = "refused to every former listener".into();
        }
        let report = PassReport {
            name: name.into(),
            verdicts: vec![a, verdict("b", b, Some("EPERM"))],
            canary: Some(BTreeMap::new()),
            result: "success".into(),
            elapsed_ms: 1,
            failures: vec![],
        };
        serde_json::to_string(&GuestEvent::Pass(report)).unwrap()
    }

    #[test]
    fn a_route_the_kernel_refuses_the_root_control_is_its_policy_in_every_unit() {
        let mut lines = good();
        lines[1] = refused_by_the_kernel("control", true, "escaped");
        // Inside the unit the probe could not check the kernel: EINVAL,
        // which the catalogue does not list.
        lines[3] = refused_by_the_kernel("u", false, "blocked");
        let report = evaluate_lines(&lines);
        assert!(report.passed(), "{:?}", report.failures);
        let a = report.results.iter().find(|r| r.unit == "u.service" && r.attempt == "a").unwrap();
        assert_eq!((a.verdict, a.reason.as_deref()), (VerdictKind::Unsupported, Some("kernel-policy")));
        assert!(a.detail.contains("the root control on this kernel: refused"), "{}", a.detail);
        // Without that evidence the same EINVAL is an error.
        lines[1] = good()[1].clone();
        let failures = evaluate_lines(&lines).failures.join("\n");
        assert!(failures.contains("u.service: a error"), "{failures}");
    }

    #[test]
    fn kernel_policy_claimed_where_the_root_control_escaped_fails() {
        let mut lines = good();
        lines[3] = refused_by_the_kernel("u", true, "blocked");
        let failures = evaluate_lines(&lines).failures.join("\n");
        assert!(
            failures.contains(
                "u.service: a is said to be closed by the kernel to everyone, but the root control escaped"
            ),
            "{failures}"
        );
    }

    #[test]
    fn the_canary_overrules_a_probe_that_believes_it_was_blocked() {
        let mut lines = good();
        lines[3] = pass("u", &[("a", "blocked"), ("b", "killed")], Some(&["a"]));
        let report = evaluate_lines(&lines);
        let a = report.results.iter().find(|r| r.unit == "u.service" && r.attempt == "a").unwrap();
        assert_eq!(a.verdict, VerdictKind::Escaped);
        assert!(a.detail.contains("canary saw it"), "{}", a.detail);
        assert!(!report.passed());
    }
}
