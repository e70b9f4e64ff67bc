//! The release diff: every verdict that differs between releases, with its
//! cause, from measured evidence only.
//!
//! A difference is explained when:
//! - **the default changed**: the probe saw the kernel's configuration close
//!   the route to everyone (`unsupported: kernel-policy`), or an
//!   unsandboxed control (root, plain user) differs, so the baseline moved;
//! - **a kernel feature is missing**: the probe saw the kernel lack what the
//!   route needs (`unsupported: kernel`);
//! - **the directive is not enforced**: a directive that holds the attempt
//!   where it is held (the ablation map of that unit and release) is
//!   silently ignored or refused where it is not (the enforcement report),
//!   or systemd says it lacks the BPF framework (`unsupported:
//!   systemd-bpf`).
//!
//! Anything else is a failure: a difference nobody can explain is a
//! regression until shown otherwise.

use std::collections::BTreeMap;

use crate::ablation::AblationMap;
use crate::contract::{held, VerdictKind};
use crate::enforcement::EnforcementReport;
use crate::matrix::{AttemptResult, Report, CONTROL, PLAIN_USER};

/// Why a verdict differs between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The kernel's configuration or an unsandboxed baseline changed.
    DefaultChanged,
    /// The kernel lacks a feature the route needs.
    KernelFeatureMissing,
    /// A directive that holds it is not enforced on a release.
    NotEnforced,
}

impl Cause {
    /// The words the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::DefaultChanged => "the default changed",
            Cause::KernelFeatureMissing => "a kernel feature is missing",
            Cause::NotEnforced => "the directive is not enforced",
        }
    }
}

/// One attempt in one unit whose verdict differs between releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The unit (or `control`, `plain-user`).
    pub unit: String,
    /// The attempt.
    pub attempt: String,
    /// Release → verdict, in the order the releases ran.
    pub verdicts: Vec<(String, VerdictKind)>,
    /// The cause, when the evidence gives one.
    pub cause: Option<(Cause, String)>,
}

impl Difference {
    /// One line for the report.
    pub fn line(&self) -> String {
        let verdicts: Vec<String> =
            self.verdicts.iter().map(|(r, v)| format!("{} on {r}", v.as_str())).collect();
        let cause = match &self.cause {
            Some((cause, why)) => format!("{}: {why}", cause.as_str()),
            None => "UNEXPLAINED".to_owned(),
        };
        format!("{}: {}: {} ({cause})", self.unit, self.attempt, verdicts.join(", "))
    }
}

/// Every difference between `reports` (one per release), explained from
/// the probe's reasons, the controls, the ablation `maps` and the
/// `enforcement` reports; and the failures: each unexplained difference, and
/// each attempt `unsupported` in a unit on every release (blocked nowhere).
pub fn explain(
    reports: &[Report],
    maps: &[AblationMap],
    enforcement: &[EnforcementReport],
) -> (Vec<Difference>, Vec<String>) {
    let mut rows: BTreeMap<(&str, &str), Vec<(&str, &AttemptResult)>> = BTreeMap::new();
    for report in reports {
        for r in &report.results {
            rows.entry((&r.unit, &r.attempt)).or_default().push((&report.guest.release, r));
        }
    }
    let mut differences = Vec::new();
    let mut failures = Vec::new();
    for (&(unit, attempt), seen) in &rows {
        let reference = unit != CONTROL && unit != PLAIN_USER;
        if reports.len() > 1
            && reference
            && seen.iter().all(|(_, r)| {
                r.verdict == VerdictKind::Unsupported
                    && !matches!(r.reason.as_deref(), Some("not-applicable" | "kernel-policy"))
            })
        {
            failures.push(format!("{unit}: {attempt} is unsupported on every release and blocked on none"));
        }
        let first = &seen[0].1.verdict;
        if seen.iter().all(|(_, r)| &r.verdict == first) {
            continue;
        }
        let cause = by_reason(seen)
            .or_else(|| {
                (!reference).then(|| {
                    (Cause::DefaultChanged, format!("{unit} runs without a sandbox; {}", details(seen)))
                })
            })
            .or_else(|| controls_moved(&rows, attempt))
            .or_else(|| not_enforced(unit, attempt, seen, maps, enforcement));
        let difference = Difference {
            unit: unit.to_owned(),
            attempt: attempt.to_owned(),
            verdicts: seen.iter().map(|(release, r)| (release.to_string(), r.verdict)).collect(),
            cause,
        };
        if difference.cause.is_none() {
            failures.push(format!("a release difference nobody explains: {}", difference.line()));
        }
        differences.push(difference);
    }
    (differences, failures)
}

/// What the probe itself said about the route on a release.
fn by_reason(seen: &[(&str, &AttemptResult)]) -> Option<(Cause, String)> {
    let with = |reason: &str| seen.iter().find(|(_, r)| r.reason.as_deref() == Some(reason));
    if let Some((release, r)) = with("kernel-policy") {
        return Some((
            Cause::DefaultChanged,
            format!("kernel policy: {release}'s kernel closes it to everyone: {}", r.detail),
        ));
    }
    if let Some((release, r)) = with("kernel") {
        return Some((Cause::KernelFeatureMissing, format!("{release}: {}", r.detail)));
    }
    if let Some((release, r)) = with("systemd-bpf") {
        return Some((Cause::NotEnforced, format!("{release}'s systemd has no BPF framework: {}", r.detail)));
    }
    None
}

/// The controls' verdicts for `attempt` differ between releases: the
/// baseline moved under every unit.
fn controls_moved(
    rows: &BTreeMap<(&str, &str), Vec<(&str, &AttemptResult)>>,
    attempt: &str,
) -> Option<(Cause, String)> {
    [CONTROL, PLAIN_USER].into_iter().find_map(|control| {
        let seen = rows.get(&(control, attempt))?;
        let first = &seen[0].1.verdict;
        seen.iter()
            .any(|(_, r)| &r.verdict != first)
            .then(|| (Cause::DefaultChanged, format!("the {control} differs too: {}", details(seen))))
    })
}

/// A directive that holds the attempt where it is held, not enforced where
/// it is not.
fn not_enforced(
    unit: &str,
    attempt: &str,
    seen: &[(&str, &AttemptResult)],
    maps: &[AblationMap],
    enforcement: &[EnforcementReport],
) -> Option<(Cause, String)> {
    let holders: Vec<&String> = seen
        .iter()
        .filter(|(_, r)| held(r.verdict))
        .filter_map(|(release, _)| maps.iter().find(|m| m.unit == unit && m.guest.release == *release))
        .filter_map(|m| m.attempts.iter().find(|a| a.attempt == attempt))
        .flat_map(|a| a.alone.iter().chain(a.together.iter().flatten()))
        .collect();
    seen.iter().filter(|(_, r)| !held(r.verdict)).find_map(|(release, _)| {
        let report = enforcement.iter().find(|e| e.guest.release == *release)?;
        holders.iter().find_map(|directive| {
            let status = report.status_of(directive)?;
            status.not_enforced().then(|| {
                (
                    Cause::NotEnforced,
                    format!("{directive} holds it elsewhere and is {} on {release}", status.as_str()),
                )
            })
        })
    })
}

fn details(seen: &[(&str, &AttemptResult)]) -> String {
    let parts: Vec<String> =
        seen.iter().map(|(release, r)| format!("{release}: {} ({})", r.verdict.as_str(), r.detail)).collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ablation::AttemptHolders;
    use crate::contract::GuestInfo;
    use crate::enforcement::{Row, Status};

    fn result(unit: &str, attempt: &str, verdict: &str, reason: Option<&str>) -> AttemptResult {
        AttemptResult {
            unit: unit.into(),
            attempt: attempt.into(),
            goal: String::new(),
            directive: String::new(),
            verdict: serde_json::from_value(serde_json::json!(verdict)).unwrap(),
            reason: reason.map(Into::into),
            detail: "d".into(),
            plain_user: None,
        }
    }

    fn report(release: &str, results: Vec<AttemptResult>) -> Report {
        Report {
            guest: GuestInfo { release: release.into(), ..GuestInfo::default() },
            results,
            ..Report::default()
        }
    }

    #[test]
    fn each_cause_comes_from_its_evidence() {
        let bookworm = report(
            "bookworm",
            vec![
                result(CONTROL, "code.proc-mem-write", "escaped", None),
                result("u", "code.proc-mem-write", "blocked", None),
                result(CONTROL, "net.bind", "escaped", None),
                result("u", "net.bind", "escaped", None),
                result(CONTROL, "sys.new", "escaped", None),
                result("u", "sys.new", "unsupported", Some("kernel")),
            ],
        );
        let trixie = report(
            "trixie",
            vec![
                result(CONTROL, "code.proc-mem-write", "unsupported", Some("kernel-policy")),
                result("u", "code.proc-mem-write", "blocked", None),
                result(CONTROL, "net.bind", "escaped", None),
                result("u", "net.bind", "blocked", None),
                result(CONTROL, "sys.new", "escaped", None),
                result("u", "sys.new", "blocked", None),
            ],
        );
        let map = AblationMap {
            unit: "u".into(),
            guest: GuestInfo { release: "trixie".into(), ..GuestInfo::default() },
            attempts: vec![AttemptHolders {
                attempt: "net.bind".into(),
                alone: vec!["SocketBindDeny=".into()],
                ..AttemptHolders::default()
            }],
            ..AblationMap::default()
        };
        let ignored = EnforcementReport {
            guest: GuestInfo { release: "bookworm".into(), ..GuestInfo::default() },
            rows: vec![Row {
                directive: "SocketBindDeny=".into(),
                unit: "u".into(),
                status: Status::SilentlyIgnored,
                attempt: None,
                observed: String::new(),
            }],
            failures: vec![],
        };
        let (differences, failures) = explain(&[bookworm, trixie], &[map], &[ignored]);
        assert!(failures.is_empty(), "{failures:?}");
        let causes: Vec<(&str, &str, Cause)> = differences
            .iter()
            .map(|d| (d.unit.as_str(), d.attempt.as_str(), d.cause.as_ref().unwrap().0))
            .collect();
        assert_eq!(
            causes,
            [
                (CONTROL, "code.proc-mem-write", Cause::DefaultChanged),
                ("u", "net.bind", Cause::NotEnforced),
                ("u", "sys.new", Cause::KernelFeatureMissing),
            ]
        );
        assert!(differences[1]
            .line()
            .contains("SocketBindDeny= holds it elsewhere and is silently ignored on bookworm"));
    }

    #[test]
    fn a_difference_without_evidence_fails_and_so_does_unsupported_everywhere() {
        let a = report(
            "bookworm",
            vec![result("u", "x", "blocked", None), result("u", "y", "unsupported", Some("systemd-bpf"))],
        );
        let b = report(
            "trixie",
            vec![result("u", "x", "escaped", None), result("u", "y", "unsupported", Some("systemd-bpf"))],
        );
        let (differences, failures) = explain(&[a, b], &[], &[]);
        assert_eq!(differences.len(), 1);
        assert!(differences[0].cause.is_none());
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures.iter().any(|f| f.contains("UNEXPLAINED")), "{failures:?}");
        assert!(failures.iter().any(|f| f.contains("u: y is unsupported on every release")), "{failures:?}");
    }
}
