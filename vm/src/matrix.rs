//! The escape matrix: what the guest plan (`vm/plan/run`) reports, turned
//! into the report of DESIGN.md's schema, a table, JUnit, and a verdict.
//!
//! The guest prints one JSON object per line (see `vm/plan/run`). Each probe
//! verdict is taken as the probe gave it, except that the canary outside the
//! sandbox has the last word: an attempt the canary saw arrive (a token on a
//! socket, a signal, a marker file on the host) is `escaped`, whatever the
//! probe believed. The run passes only when the plan ran to the end, every
//! server answered through its socket, nothing escaped from a reference
//! unit, nothing ended in `error`, and the control escaped wherever the
//! machine allows it (else `unsupported`, with the reason).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The name the unsandboxed run carries in the report.
pub const CONTROL: &str = "control";

/// The whole report (`sandkasten-vm matrix --json FILE`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// What ran the matrix.
    pub guest: GuestInfo,
    /// One row per unit and attempt, the control included.
    pub results: Vec<AttemptResult>,
    /// Functional checks through each socket.
    pub functional: Vec<Functional>,
    /// Routes run with one fix removed: each fix shown to be what holds.
    #[serde(default)]
    pub ablations: Vec<Ablation>,
    /// Counts over `results`.
    pub summary: Summary,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
}

/// The guest the matrix ran in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GuestInfo {
    /// Debian codename.
    pub release: String,
    /// systemd's version.
    pub systemd: String,
    /// `uname -r` in the guest.
    pub kernel: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// systemd's compile-time features (`systemctl --version`, line 2).
    pub features: String,
}

impl GuestInfo {
    /// Whether this systemd enforces `SocketBindDeny=`,
    /// `RestrictNetworkInterfaces=` and `RestrictFileSystems=`.
    pub fn bpf_framework(&self) -> bool {
        self.features.split_whitespace().any(|f| f == "+BPF_FRAMEWORK")
    }
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
    pub verdict: String,
    /// What happened, in words.
    pub detail: String,
    /// Why an `unsupported` route could not be tried (`not-applicable`,
    /// `systemd-bpf`, `kernel`, `no-canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One route in a reference unit with one fix removed (`vm/plan/run`,
/// "each fix, removed on its own").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ablation {
    /// What was removed (`memfd_create allowed`).
    pub label: String,
    /// The unit it was removed from.
    pub unit: String,
    /// The route.
    pub attempt: String,
    /// `escaped` when the removed fix is what held the route, `blocked`
    /// when a second layer must still hold it.
    pub expect: String,
    /// What happened (after the canary's word).
    pub verdict: String,
    /// In words.
    pub detail: String,
}

impl Ablation {
    /// Whether the guest agreed with the expectation.
    pub fn agrees(&self) -> bool {
        match self.expect.as_str() {
            "escaped" => self.verdict == "escaped",
            _ => matches!(self.verdict.as_str(), "blocked" | "killed"),
        }
    }
}

/// One functional check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Functional {
    /// The socket or service it concerns.
    pub unit: String,
    /// What was checked.
    pub check: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    #[serde(default)]
    pub detail: String,
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

/// One line of the guest's output.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Guest(GuestLine),
    Check(Functional),
    Probe { unit: String, result: ProbeResult },
    Canary { unit: String, report: Option<CanaryReport> },
    Ablation { label: String, unit: String, expect: String, result: ProbeResult },
    Done,
}

#[derive(Debug, Deserialize)]
struct GuestLine {
    release: String,
    systemd: String,
    kernel: String,
    features: String,
}

/// One line of `sandkasten-probe --json`.
#[derive(Debug, Deserialize)]
struct ProbeResult {
    id: String,
    #[serde(default)]
    goal: String,
    directive: String,
    verdict: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The part of `sandkasten-probe canary-report` the matrix needs: which
/// attempts (of this run) reached the canary or left a marker.
#[derive(Debug, Default, Deserialize)]
struct CanaryReport {
    #[serde(default)]
    seen: BTreeMap<String, Vec<String>>,
}

/// Builds the report from the guest's output and decides pass or fail.
///
/// `catalogue` is every attempt id the probe knows (`sandkasten-probe list`),
/// so a unit whose probe run stopped half-way is a failure, not a shorter
/// table.
pub fn evaluate(output: &str, accel: &str, catalogue: &[String]) -> Report {
    let mut guest = GuestInfo { accel: accel.to_owned(), ..GuestInfo::default() };
    let mut results: Vec<AttemptResult> = Vec::new();
    let mut functional = Vec::new();
    let mut ablations: Vec<Ablation> = Vec::new();
    let mut seen_by_canary: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut done = false;
    for (number, line) in output.lines().enumerate().filter(|(_, l)| l.starts_with('{')) {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Guest(g)) => {
                guest = GuestInfo {
                    release: g.release,
                    systemd: g.systemd,
                    kernel: g.kernel,
                    features: g.features,
                    accel: accel.to_owned(),
                }
            }
            Ok(Line::Check(check)) => functional.push(check),
            Ok(Line::Probe { unit, result }) => results.push(AttemptResult {
                unit,
                attempt: result.id,
                goal: result.goal,
                directive: result.directive,
                verdict: result.verdict,
                detail: match &result.reason {
                    Some(reason) if !reason.is_empty() => {
                        format!("{} ({reason})", result.detail).trim().to_owned()
                    }
                    _ => result.detail,
                },
                reason: result.reason.filter(|r| !r.is_empty()),
            }),
            Ok(Line::Canary { unit, report }) => {
                let seen = seen_by_canary.entry(unit).or_default();
                seen.extend(report.unwrap_or_default().seen.into_keys());
            }
            Ok(Line::Ablation { label, unit, expect, result }) => ablations.push(Ablation {
                label,
                unit,
                attempt: result.id,
                expect,
                verdict: result.verdict,
                detail: result.detail,
            }),
            Ok(Line::Done) => done = true,
            Err(err) => failures.push(format!("guest output line {}: {err}: {line}", number + 1)),
        }
    }

    // The canary's word beats the probe's, for the main runs (keyed by unit)
    // and for the ablation passes alike.
    let seen = |run: &str, attempt: &str| seen_by_canary.get(run).is_some_and(|s| s.contains(attempt));
    for r in &mut results {
        if seen(&r.unit, &r.attempt) {
            canary_overrules(&mut r.verdict, &mut r.detail);
        }
    }
    for a in &mut ablations {
        if seen(&format!("ablation:{} in {}", a.label, a.unit), &a.attempt) {
            canary_overrules(&mut a.verdict, &mut a.detail);
        }
    }
    for a in ablations.iter().filter(|a| !a.agrees()) {
        failures.push(if a.expect == "escaped" {
            format!(
                "{}: {} stayed {} with {}: the fix it names is not what holds it ({})",
                a.unit, a.attempt, a.verdict, a.label, a.detail
            )
        } else {
            format!(
                "{}: {} was expected to stay blocked with {} (a second layer), but it {}: {}",
                a.unit, a.attempt, a.label, a.verdict, a.detail
            )
        });
    }

    if !done {
        failures.push("the guest plan did not run to the end".to_owned());
    }
    for check in functional.iter().filter(|c| !c.ok) {
        failures.push(format!("{}: {} failed: {}", check.unit, check.check, check.detail));
    }
    let units: BTreeSet<&str> = results.iter().map(|r| r.unit.as_str()).collect();
    if !units.contains(CONTROL) {
        failures.push("no control run".to_owned());
    }
    for unit in &units {
        let attempts: BTreeSet<&str> =
            results.iter().filter(|r| r.unit == *unit).map(|r| r.attempt.as_str()).collect();
        let missing: Vec<&str> =
            catalogue.iter().map(String::as_str).filter(|a| !attempts.contains(a)).collect();
        if !missing.is_empty() {
            failures.push(format!("{unit}: no verdict for {}", missing.join(", ")));
        }
    }
    let mut verdicts = BTreeSet::new();
    for r in &results {
        if !verdicts.insert((r.unit.as_str(), r.attempt.as_str())) {
            failures.push(format!("{}: {} has more than one verdict", r.unit, r.attempt));
        }
    }
    for r in &results {
        let in_control = r.unit == CONTROL;
        match r.verdict.as_str() {
            "escaped" if !in_control => {
                failures.push(format!("{}: {} ESCAPED: {}", r.unit, r.attempt, r.detail))
            }
            "blocked" | "killed" if in_control => failures.push(format!(
                "control: {} did not escape, so its blocks prove nothing: {}",
                r.attempt, r.detail
            )),
            "error" => failures.push(format!("{}: {} error: {}", r.unit, r.attempt, r.detail)),
            _ => {}
        }
    }

    let summary = Summary {
        attempts: results.iter().map(|r| r.attempt.as_str()).collect::<BTreeSet<_>>().len(),
        units: units.len(),
        blocked: results.iter().filter(|r| matches!(r.verdict.as_str(), "blocked" | "killed")).count(),
        escaped: results.iter().filter(|r| r.verdict == "escaped").count(),
        errors: results.iter().filter(|r| r.verdict == "error").count(),
    };
    Report { guest, results, functional, ablations, summary, failures }
}

/// A route the canary saw arrive escaped, whatever the probe believed.
fn canary_overrules(verdict: &mut String, detail: &mut String) {
    if verdict != "escaped" {
        *detail = format!("the canary saw it arrive, though the probe said {verdict}: {detail}");
        *verdict = "escaped".to_owned();
    }
}

impl Report {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Units in display order: reference units as they ran, the control last.
    fn units(&self) -> Vec<&str> {
        let mut units: Vec<&str> = Vec::new();
        for r in &self.results {
            if r.unit != CONTROL && !units.contains(&r.unit.as_str()) {
                units.push(&r.unit);
            }
        }
        units.push(CONTROL);
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
            goals.iter().flat_map(|(_, routes)| routes).map(|a| a.len() + 2).max().unwrap_or(7).max(7);
        let width = short.iter().map(String::len).max().unwrap_or(0).max(9);
        let mut out = String::new();
        let g = &self.guest;
        let _ = writeln!(
            out,
            "escape matrix: {} (systemd {}, kernel {}, {})",
            g.release, g.systemd, g.kernel, g.accel
        );
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
                let route = format!("  {attempt}");
                let _ = write!(out, "{route:id_width$}");
                for unit in &units {
                    let verdict = self
                        .results
                        .iter()
                        .find(|r| r.unit == *unit && r.attempt == *attempt)
                        .map(|r| cell(&r.verdict, *unit == CONTROL))
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
        if !self.ablations.is_empty() {
            let _ = writeln!(out, "each fix removed on its own (route: expected, got):");
            let mut pass = ("", "");
            for a in &self.ablations {
                if (a.label.as_str(), a.unit.as_str()) != pass {
                    let _ = writeln!(out, "  {} ({}):", a.label, short_name(&a.unit));
                    pass = (&a.label, &a.unit);
                }
                let mark = if a.agrees() { "ok  " } else { "FAIL" };
                let _ = writeln!(
                    out,
                    "    {mark} {:width$} {} -> {}",
                    a.attempt,
                    a.expect,
                    a.verdict,
                    width = id_width
                );
            }
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
            let bad = match r.verdict.as_str() {
                "error" => true,
                "escaped" => r.unit != CONTROL,
                "blocked" | "killed" => r.unit == CONTROL,
                _ => false,
            };
            failed += usize::from(bad);
            let _ = write!(cases, r#"<testcase classname="{}" name="{}">"#, xml(&r.unit), xml(&r.attempt));
            if bad {
                let _ =
                    write!(cases, r#"<failure message="{}">{}</failure>"#, xml(&r.verdict), xml(&r.detail));
            } else if r.verdict == "unsupported" {
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

/// A unit's name as a column heading.
fn short_name(unit: &str) -> String {
    unit.trim_start_matches("sandkasten-").trim_end_matches(".service").replace("@probe", "@").to_owned()
}

/// A verdict as a table cell: failures shout.
fn cell(verdict: &str, control: bool) -> &'static str {
    match (verdict, control) {
        ("blocked", false) => "blocked",
        ("killed", false) => "killed",
        ("escaped", true) => "escaped",
        ("escaped", false) => "ESCAPED",
        ("blocked" | "killed", true) => "HELD",
        ("unsupported", _) => "n/a",
        _ => "ERROR",
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Checks across releases (`--release all`): an attempt that is `unsupported`
/// in a unit on one release must be blocked in that unit on another, so that
/// "not enforced here" never hides a hole everywhere. A route that has
/// nothing to work on in a unit (`not-applicable`: a UDP route where the
/// unit is handed no UDP socket) is no hole.
pub fn cross_release(reports: &[Report]) -> Vec<String> {
    let mut failures = Vec::new();
    for report in reports {
        let unsupported = report.results.iter().filter(|r| {
            r.unit != CONTROL && r.verdict == "unsupported" && r.reason.as_deref() != Some("not-applicable")
        });
        for r in unsupported {
            let blocked_elsewhere = reports.iter().any(|other| {
                other.guest.release != report.guest.release
                    && other.results.iter().any(|o| {
                        o.unit == r.unit
                            && o.attempt == r.attempt
                            && matches!(o.verdict.as_str(), "blocked" | "killed")
                    })
            });
            if !blocked_elsewhere {
                failures.push(format!(
                    "{}: {} is unsupported on {} and blocked on no other release",
                    r.unit, r.attempt, report.guest.release
                ));
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(lines: &[&str]) -> String {
        lines.join("\n")
    }

    const GUEST: &str = r#"{"kind":"guest","release":"bookworm","systemd":"252.39","kernel":"6.1.0","features":"+PAM -BPF_FRAMEWORK"}"#;

    fn probe(unit: &str, id: &str, verdict: &str) -> String {
        format!(
            r#"{{"kind":"probe","unit":"{unit}","result":{{"id":"{id}","directive":"X=yes","verdict":"{verdict}","detail":"d"}}}}"#
        )
    }

    fn catalogue() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn blocked_in_units_and_escaped_in_the_control_passes() {
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "blocked"),
            probe("u.service", "b", "killed"),
            probe("control", "a", "escaped"),
            probe("control", "b", "unsupported"),
            r#"{"kind":"check","unit":"u.socket","check":"GET /","ok":true,"detail":"200"}"#.to_owned(),
            r#"{"kind":"done"}"#.to_owned(),
        ];
        let report =
            evaluate(&output(&lines.iter().map(String::as_str).collect::<Vec<_>>()), "tcg", &catalogue());
        assert!(report.passed(), "{:?}", report.failures);
        assert_eq!(report.summary, Summary { attempts: 2, units: 2, blocked: 2, escaped: 1, errors: 0 });
        assert!(!report.guest.bpf_framework());
        assert!(report.table().contains("PASS"));
    }

    #[test]
    fn an_escape_a_held_control_an_error_a_gap_and_a_failed_check_all_fail() {
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "escaped"),
            probe("v.service", "a", "error"),
            probe("control", "a", "blocked"),
            probe("control", "b", "escaped"),
            probe("control", "b", "escaped"),
            r#"{"kind":"check","unit":"u.socket","check":"GET /","ok":false,"detail":"refused"}"#.to_owned(),
        ];
        let report =
            evaluate(&output(&lines.iter().map(String::as_str).collect::<Vec<_>>()), "tcg", &catalogue());
        let text = report.failures.join("\n");
        for needle in [
            "u.service: a ESCAPED",
            "v.service: a error",
            "control: a did not escape",
            "u.service: no verdict for b",
            "GET / failed",
            "did not run to the end",
            "control: b has more than one verdict",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(report.table().contains("ESCAPED") && report.table().contains("HELD"));
        assert!(report.junit().contains(r#"failures="4""#), "{}", report.junit());
    }

    #[test]
    fn the_canary_overrules_a_probe_that_believes_it_was_blocked() {
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "blocked"),
            r#"{"kind":"canary","unit":"u.service","report":{"seen":{"a":["u"]}}}"#.to_owned(),
            r#"{"kind":"done"}"#.to_owned(),
        ];
        let report =
            evaluate(&output(&lines.iter().map(String::as_str).collect::<Vec<_>>()), "tcg", &["a".into()]);
        let a = &report.results[0];
        assert_eq!(a.verdict, "escaped");
        assert!(a.detail.contains("canary saw it"), "{}", a.detail);
        assert!(!report.passed());
    }

    #[test]
    fn unsupported_on_one_release_must_be_blocked_on_another() {
        let mk = |release: &str, verdict: &str| {
            let guest = format!(
                r#"{{"kind":"guest","release":"{release}","systemd":"1","kernel":"k","features":""}}"#
            );
            let lines = [guest, probe("u.service", "a", verdict), r#"{"kind":"done"}"#.to_owned()];
            evaluate(&output(&lines.iter().map(String::as_str).collect::<Vec<_>>()), "tcg", &["a".into()])
        };
        assert!(cross_release(&[mk("bookworm", "unsupported"), mk("trixie", "blocked")]).is_empty());
        let gaps = cross_release(&[mk("bookworm", "unsupported"), mk("trixie", "unsupported")]);
        assert_eq!(gaps.len(), 2, "{gaps:?}");
    }

    #[test]
    fn a_route_with_nothing_to_work_on_is_no_cross_release_gap() {
        let mk = |release: &str| {
            let guest = format!(
                r#"{{"kind":"guest","release":"{release}","systemd":"1","kernel":"k","features":""}}"#
            );
            let na = r#"{"kind":"probe","unit":"u.service","result":{"id":"a","goal":"g","directive":"X=","verdict":"unsupported","detail":"no UDP socket","reason":"not-applicable"}}"#;
            let lines = [guest.as_str(), na, r#"{"kind":"done"}"#];
            evaluate(&output(&lines), "tcg", &["a".into()])
        };
        assert!(cross_release(&[mk("bookworm"), mk("trixie")]).is_empty());
    }

    fn ablation(label: &str, id: &str, expect: &str, verdict: &str) -> String {
        format!(
            r#"{{"kind":"ablation","label":"{label}","unit":"u.service","expect":"{expect}","result":{{"id":"{id}","directive":"X=","verdict":"{verdict}","detail":"d"}}}}"#
        )
    }

    #[test]
    fn each_fix_must_be_what_holds_its_route() {
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "blocked"),
            probe("control", "a", "escaped"),
            // Removing the fix lets the route escape: the fix is what holds it.
            ablation("fix a removed", "a", "escaped", "escaped"),
            // A second layer must still hold this one.
            ablation("layer one removed", "a", "blocked", "blocked"),
            r#"{"kind":"done"}"#.to_owned(),
        ];
        let text = lines.iter().map(String::as_str).collect::<Vec<_>>();
        let report = evaluate(&output(&text), "tcg", &["a".into()]);
        assert!(report.passed(), "{:?}", report.failures);
        assert!(report.table().contains("fix a removed (u):"), "{}", report.table());

        // The fix removed, the route still blocked: the catalogue names the
        // wrong cause. A layer that should hold alone but does not: also a
        // failure. Neither may pass.
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "blocked"),
            probe("control", "a", "escaped"),
            ablation("fix a removed", "a", "escaped", "blocked"),
            ablation("layer one removed", "a", "blocked", "escaped"),
            ablation("fix b removed", "a", "escaped", "unsupported"),
            r#"{"kind":"done"}"#.to_owned(),
        ];
        let text = lines.iter().map(String::as_str).collect::<Vec<_>>();
        let report = evaluate(&output(&text), "tcg", &["a".into()]);
        let failures = report.failures.join("\n");
        assert!(
            failures.contains("stayed blocked with fix a removed: the fix it names is not what holds it"),
            "{failures}"
        );
        assert!(failures.contains("expected to stay blocked with layer one removed"), "{failures}");
        assert!(failures.contains("stayed unsupported with fix b removed"), "{failures}");
    }

    #[test]
    fn the_canary_has_the_last_word_on_an_ablation_too() {
        let lines = [
            GUEST.to_owned(),
            probe("u.service", "a", "blocked"),
            probe("control", "a", "escaped"),
            ablation("fix a removed", "a", "escaped", "blocked"),
            r#"{"kind":"canary","unit":"ablation:fix a removed in u.service","report":{"seen":{"a":["x"]}}}"#
                .to_owned(),
            r#"{"kind":"done"}"#.to_owned(),
        ];
        let text = lines.iter().map(String::as_str).collect::<Vec<_>>();
        let report = evaluate(&output(&text), "tcg", &["a".into()]);
        assert!(report.passed(), "{:?}", report.failures);
        assert_eq!(report.ablations[0].verdict, "escaped");
    }
}
