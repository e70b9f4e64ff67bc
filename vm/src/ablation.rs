//! The ablation map: which directive of a reference unit holds which
//! attempt, measured by taking directives out one at a time.
//!
//! A verdict "blocked by X" counts only when removing X lets the attempt
//! escape in the same guest. Three rounds, each one boot, each pass the
//! whole catalogue:
//! 1. the unit as shipped (the baseline), the root control (what can escape
//!    at all), and once per directive with that directive removed: an
//!    attempt that escapes is held by that directive alone (load-bearing);
//! 2. for attempts that no single removal opens (held by several layers):
//!    every directive removed, and every directive but one removed, once
//!    per directive: which layers hold the attempt on their own;
//! 3. those layers removed together, per attempt: the set must open it.
//!    No member of such a set can be spared, since each holds it alone.
//!
//! An attempt no set opens is reported as such (`layers-unknown`), never
//! given a cause that was not measured.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::contract::{answer, held, stopped_unlisted, Answer, GuestInfo, PassReport, Plan, VerdictKind};
use crate::matrix::xml;
use crate::passes::Role;

/// The measured map of one unit on one release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AblationMap {
    /// The reference unit.
    pub unit: String,
    /// The guest it was measured in.
    pub guest: GuestInfo,
    /// Per attempt: what holds it.
    pub attempts: Vec<AttemptHolders>,
    /// Per directive: what only it holds.
    pub directives: Vec<DirectiveEffect>,
    /// Every (directive removed, attempt) observation of round one that
    /// differs from the unit as shipped.
    pub cells: Vec<Cell>,
    /// Why the measurement is incomplete; empty when it is not.
    pub failures: Vec<String>,
}

/// What holds one attempt in the unit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttemptHolders {
    /// The attempt.
    pub attempt: String,
    /// Its goal.
    pub goal: String,
    /// Its verdict in the unit as shipped.
    #[serde(with = "crate::contract::verdict_or_empty")]
    pub in_unit: Option<VerdictKind>,
    /// Its verdict in the root control.
    #[serde(with = "crate::contract::verdict_or_empty")]
    pub control: Option<VerdictKind>,
    /// The directives whose removal alone lets it escape (load-bearing).
    pub alone: Vec<String>,
    /// When no single removal opens it: the smallest set measured whose
    /// removal does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub together: Option<Vec<String>>,
    /// `held`, `layers` (held by `together`), `layers-unknown` (no set
    /// tried opened it), `not-applicable` (the control cannot escape
    /// either, or the unit has nothing for it to work on), `escapes`.
    pub status: String,
}

/// What one directive does in the unit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DirectiveEffect {
    /// The directive (`PrivateNetwork=`, `NoExecPaths= + ExecPaths=`).
    pub directive: String,
    /// Attempts that escape when only it is removed.
    pub holds_alone: Vec<String>,
    /// Attempts stopped differently (another errno) when it is removed: it
    /// is one of their layers.
    pub changes: Vec<String>,
    /// Attempts held by a measured set it belongs to.
    pub in_sets: Vec<String>,
}

impl DirectiveEffect {
    /// Whether removing it changed nothing the probe can see.
    pub fn no_measured_effect(&self) -> bool {
        self.holds_alone.is_empty() && self.changes.is_empty() && self.in_sets.is_empty()
    }
}

/// One attempt with one directive (or one set) removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// What was removed (labels joined with ` + ` for a set).
    pub removed: Vec<String>,
    /// The attempt.
    pub attempt: String,
    /// Its verdict, after the canary's word.
    pub verdict: VerdictKind,
    /// The errno or observation, if stopped.
    #[serde(default)]
    pub outcome: String,
    /// Whether verdict or outcome differ from the unit as shipped.
    pub changed: bool,
}

/// One attempt's observation in one pass.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    verdict: VerdictKind,
    outcome: String,
    goal: String,
    reason: String,
}

fn observations(report: &PassReport) -> BTreeMap<String, Seen> {
    report
        .verdicts
        .iter()
        .map(|v| {
            let seen = Seen {
                verdict: report.verdict_of(v),
                outcome: v.outcome.clone().unwrap_or_default(),
                goal: v.goal.clone(),
                reason: v.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            };
            (v.id.clone(), seen)
        })
        .collect()
}

impl Seen {
    /// Stopped at all: blocked, killed, or stopped another way.
    fn stopped(&self) -> bool {
        held(self.verdict) || stopped_unlisted(self.verdict, &self.outcome)
    }
}

/// A verdict as the table names it; `""` for none.
fn name(verdict: Option<VerdictKind>) -> &'static str {
    verdict.map_or("", VerdictKind::as_str)
}

/// Directives that change how a block shows, not whether: round two keeps
/// them while it isolates the others, as the unit has them. Without
/// `SystemCallErrorNumber=` a call outside the allow-list kills the
/// process, the probe's runner included.
const KEPT_IN_ISOLATION: [&str; 1] = ["SystemCallErrorNumber="];

fn isolating(labels: &[String]) -> Vec<String> {
    labels.iter().filter(|l| !KEPT_IN_ISOLATION.contains(&l.as_str())).cloned().collect()
}

/// Every label but `keep` (and those kept in isolation): what a pass
/// removes to see what `keep` does on its own.
pub fn all_but(labels: &[String], keep: &str) -> Vec<String> {
    isolating(labels).into_iter().filter(|l| l != keep).collect()
}

/// The guest's answer to one ablation plan, by pass: (removed set, what
/// each attempt did), the control's and the baseline's observations.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// The guest.
    pub guest: GuestInfo,
    control: BTreeMap<String, Seen>,
    baseline: BTreeMap<String, Seen>,
    removals: Vec<(Vec<String>, BTreeMap<String, Seen>)>,
    /// Gaps in the answer.
    pub failures: Vec<String>,
}

/// Reads one ablation run's output (fail-closed, like the matrix).
pub fn read_round(plan: &Plan, roles: &BTreeMap<String, Role>, output: &str) -> Round {
    let Answer { guest, reports, mut failures, .. } = answer(plan, output);
    let mut round = Round { guest, ..Round::default() };
    for pass in &plan.passes {
        let Some(report) = reports.get(&pass.name) else { continue };
        failures.extend(report.failures.iter().map(|f| format!("pass {}: {f}", pass.name)));
        let seen = observations(report);
        match roles.get(&pass.name) {
            Some(Role::Control) => round.control = seen,
            Some(Role::Ablation { removed, .. }) if removed.is_empty() => round.baseline = seen,
            Some(Role::Ablation { removed, .. }) => round.removals.push((removed.clone(), seen)),
            _ => {}
        }
    }
    round.failures = failures;
    round
}

impl Round {
    /// Adds a later round's removals (same guest release).
    pub fn merge(&mut self, later: Round) {
        self.removals.extend(later.removals);
        self.failures.extend(later.failures);
    }

    /// Round two's sets: everything removed, and everything but one
    /// directive removed, for each directive: which layers hold an
    /// attempt on their own.
    pub fn isolation_sets(labels: &[String]) -> Vec<Vec<String>> {
        let removable = isolating(labels);
        let mut sets = vec![removable.clone()];
        sets.extend(removable.iter().map(|keep| all_but(labels, keep)));
        sets
    }

    /// Round three's sets: per attempt that no single removal opens, the
    /// directives each of which holds it on its own (round two), removed
    /// together.
    pub fn sets_to_verify(&self, attempts: &[String], labels: &[String]) -> Vec<Vec<String>> {
        let tried: BTreeSet<&Vec<String>> = self.removals.iter().map(|(r, _)| r).collect();
        let mut sets: BTreeSet<Vec<String>> = BTreeSet::new();
        for attempt in attempts {
            if self.openable(attempt) && self.opened_alone(attempt).is_empty() {
                let set = self.sufficient(attempt, labels);
                if set.len() >= 2 && !tried.contains(&set) {
                    sets.insert(set);
                }
            }
        }
        sets.into_iter().collect()
    }

    /// The directives that hold `attempt` with every other directive
    /// removed (round two), in the unit's order.
    fn sufficient(&self, attempt: &str, labels: &[String]) -> Vec<String> {
        let removable = isolating(labels);
        removable
            .iter()
            .filter(|keep| {
                let others: Vec<String> = removable.iter().filter(|l| l != keep).cloned().collect();
                self.removals
                    .iter()
                    .any(|(r, seen)| *r == others && seen.get(attempt).is_some_and(Seen::stopped))
            })
            .cloned()
            .collect()
    }

    /// Whether the attempt is held in the unit and escapes in the control.
    fn openable(&self, attempt: &str) -> bool {
        self.control.get(attempt).is_some_and(|s| s.verdict == VerdictKind::Escaped)
            && self.baseline.get(attempt).is_some_and(|s| held(s.verdict))
    }

    fn opened_alone(&self, attempt: &str) -> Vec<String> {
        self.removals
            .iter()
            .filter(|(r, seen)| {
                r.len() == 1 && seen.get(attempt).is_some_and(|s| s.verdict == VerdictKind::Escaped)
            })
            .map(|(r, _)| r[0].clone())
            .collect()
    }

    /// The map, with `directives` (the unit's, in file order) and the
    /// catalogue's `attempts` in order.
    pub fn map(&self, unit: &str, directives: &[String], attempts: &[String]) -> AblationMap {
        let mut map = AblationMap {
            unit: unit.to_owned(),
            guest: self.guest.clone(),
            failures: self.failures.clone(),
            ..AblationMap::default()
        };
        // Round one's observations that differ from the unit as shipped:
        // what the picture draws. Rounds two and three are summed up in
        // each attempt's `together`.
        for (removed, seen) in self.removals.iter().filter(|(r, _)| r.len() == 1) {
            for attempt in attempts {
                let (Some(s), Some(base)) = (seen.get(attempt), self.baseline.get(attempt)) else { continue };
                if s != base {
                    map.cells.push(Cell {
                        removed: removed.clone(),
                        attempt: attempt.clone(),
                        verdict: s.verdict,
                        outcome: s.outcome.clone(),
                        changed: true,
                    });
                }
            }
        }
        for attempt in attempts {
            let base = self.baseline.get(attempt);
            let control = self.control.get(attempt);
            let mut row = AttemptHolders {
                attempt: attempt.clone(),
                goal: base.or(control).map(|s| s.goal.clone()).unwrap_or_default(),
                in_unit: base.map(|s| s.verdict),
                control: control.map(|s| s.verdict),
                ..AttemptHolders::default()
            };
            row.status = if base.is_some_and(|s| s.verdict == VerdictKind::Escaped) {
                map.failures.push(format!("{attempt} escapes from {unit} as shipped"));
                "escapes".to_owned()
            } else if !self.openable(attempt) || base.is_some_and(|s| s.reason == "not-applicable") {
                "not-applicable".to_owned()
            } else {
                row.alone = self.opened_alone(attempt);
                if row.alone.is_empty() {
                    row.together = self.smallest_set(attempt, directives);
                    if row.together.is_some() {
                        "layers".to_owned()
                    } else {
                        map.failures.push(format!(
                            "{attempt}: no single removal and no measured set of layers opens it"
                        ));
                        "layers-unknown".to_owned()
                    }
                } else {
                    "held".to_owned()
                }
            };
            map.attempts.push(row);
        }
        for directive in directives {
            let mut effect = DirectiveEffect { directive: directive.clone(), ..DirectiveEffect::default() };
            for row in &map.attempts {
                if row.alone.contains(directive) {
                    effect.holds_alone.push(row.attempt.clone());
                }
                if row.together.as_ref().is_some_and(|t| t.contains(directive)) {
                    effect.in_sets.push(row.attempt.clone());
                }
            }
            for cell in &map.cells {
                if cell.removed == [directive.clone()] && cell.changed && held(cell.verdict) {
                    effect.changes.push(cell.attempt.clone());
                }
            }
            map.directives.push(effect);
        }
        map
    }

    /// The set whose removal opens `attempt` when no single removal does:
    /// the directives each of which holds it alone (round two), measured
    /// to open it when removed together (round three). No member can be
    /// spared: each holds it on its own.
    fn smallest_set(&self, attempt: &str, labels: &[String]) -> Option<Vec<String>> {
        let set = self.sufficient(attempt, labels);
        let opens = self.removals.iter().any(|(r, seen)| {
            *r == set && seen.get(attempt).is_some_and(|s| s.verdict == VerdictKind::Escaped)
        });
        (set.len() >= 2 && opens).then_some(set)
    }
}

impl AblationMap {
    /// The map as a terminal table: per attempt, then per directive.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let g = &self.guest;
        let _ = writeln!(
            out,
            "ablation map: {} on {} (systemd {}, kernel {})",
            self.unit, g.release, g.systemd, g.kernel
        );
        let width = self.attempts.iter().map(|a| a.attempt.len()).max().unwrap_or(8) + 2;
        let _ = writeln!(out, "per attempt (what holds it):");
        let mut goal = "";
        for a in &self.attempts {
            if a.goal != goal {
                goal = &a.goal;
                let _ = writeln!(out, "{goal}:");
            }
            let holders = match a.status.as_str() {
                "held" => a.alone.join(" and "),
                "layers" => format!(
                    "layers: only removing {} together",
                    a.together.as_deref().unwrap_or(&[]).join(" + ")
                ),
                "layers-unknown" => "layers: no measured set opens it".to_owned(),
                "escapes" => "ESCAPES as shipped".to_owned(),
                _ => format!("n/a (control: {}, unit: {})", name(a.control), name(a.in_unit)),
            };
            let _ = writeln!(out, "  {:width$}{holders}", a.attempt);
        }
        let _ = writeln!(out, "per directive (what only it holds):");
        let dwidth = self.directives.iter().map(|d| d.directive.len()).max().unwrap_or(8) + 2;
        for d in &self.directives {
            let what = if !d.holds_alone.is_empty() {
                d.holds_alone.join(", ")
            } else if !d.in_sets.is_empty() {
                format!("(a layer of) {}", d.in_sets.join(", "))
            } else if !d.changes.is_empty() {
                format!("no escape; stops differently: {}", d.changes.join(", "))
            } else {
                "no measured effect".to_owned()
            };
            let _ = writeln!(out, "  {:dwidth$}{what}", d.directive);
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAIL: {f}");
        }
        out
    }
}

impl AblationMap {
    /// The map as a picture: directives down, attempts across. A red
    /// square: removing that directive alone lets the attempt escape; a
    /// red ring: the directive is one of a set that must all go before it
    /// escapes; amber: it is stopped differently (the next layer shows).
    pub fn svg(&self) -> String {
        const CELL: usize = 11;
        let attempts: Vec<&AttemptHolders> =
            self.attempts.iter().filter(|a| a.status != "not-applicable").collect();
        let left = 8 + 7 * self.directives.iter().map(|d| d.directive.len()).max().unwrap_or(10);
        let top = 8 + 6 * attempts.iter().map(|a| a.attempt.len()).max().unwrap_or(10);
        let width = left + CELL * attempts.len() + 16;
        let height = top + CELL * self.directives.len() + 40;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="10">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        for (x, a) in attempts.iter().enumerate() {
            let cx = left + x * CELL + CELL / 2 + 3;
            let _ = writeln!(
                out,
                r#"<text transform="translate({cx},{}) rotate(-90)">{}</text>"#,
                top - 4,
                xml(&a.attempt)
            );
        }
        // The grid once, as a pattern; only the cells that say something
        // are drawn on it.
        let _ = writeln!(
            out,
            r##"<defs><pattern id="grid" width="{CELL}" height="{CELL}" patternUnits="userSpaceOnUse"><rect width="{}" height="{}" fill="#eeeeee"/></pattern></defs>"##,
            CELL - 1,
            CELL - 1
        );
        let _ = writeln!(
            out,
            r#"<rect x="{left}" y="{top}" width="{}" height="{}" fill="url(#grid)"/>"#,
            CELL * attempts.len(),
            CELL * self.directives.len()
        );
        for (y, d) in self.directives.iter().enumerate() {
            let cy = top + y * CELL;
            let _ = writeln!(out, r#"<text x="4" y="{}">{}</text>"#, cy + CELL - 2, xml(&d.directive));
            for (x, a) in attempts.iter().enumerate() {
                let cx = left + x * CELL;
                let alone = a.alone.contains(&d.directive);
                let in_set = a.together.as_ref().is_some_and(|t| t.contains(&d.directive));
                let changed = d.changes.contains(&a.attempt);
                let fill = if alone {
                    "#d62728"
                } else if changed {
                    "#ffbf47"
                } else {
                    ""
                };
                if !fill.is_empty() {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{cx}" y="{cy}" width="{}" height="{}" fill="{fill}"><title>{} without {}</title></rect>"#,
                        CELL - 1,
                        CELL - 1,
                        xml(&a.attempt),
                        xml(&d.directive)
                    );
                }
                if in_set {
                    let _ = writeln!(
                        out,
                        r##"<circle cx="{}" cy="{}" r="3.5" fill="none" stroke="#d62728" stroke-width="2"/>"##,
                        cx + CELL / 2,
                        cy + CELL / 2
                    );
                }
            }
        }
        let ly = top + CELL * self.directives.len() + 20;
        let _ = writeln!(
            out,
            r#"<text x="4" y="{ly}">{} on {} (systemd {}): red = escapes when this directive alone is removed; ring = one of a set that must all go; amber = stopped differently</text>"#,
            xml(&self.unit),
            xml(&self.guest.release),
            xml(&self.guest.systemd)
        );
        out.push_str("</svg>\n");
        out
    }
}

/// Where a fresh map disagrees with a committed one on what holds an
/// attempt (holders, sets, status); outcomes and timings may vary.
pub fn differences(committed: &AblationMap, fresh: &AblationMap) -> Vec<String> {
    let mut out = Vec::new();
    for new in &fresh.attempts {
        match committed.attempts.iter().find(|a| a.attempt == new.attempt) {
            None => out.push(format!("{} is not in the committed map", new.attempt)),
            Some(old)
                if (&old.status, &old.alone, &old.together) != (&new.status, &new.alone, &new.together) =>
            {
                out.push(format!(
                    "{}: committed {} {:?} {:?}, measured {} {:?} {:?}",
                    new.attempt, old.status, old.alone, old.together, new.status, new.alone, new.together
                ))
            }
            Some(_) => {}
        }
    }
    out
}
