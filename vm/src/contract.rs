//! The contract between the host and the guest side of a matrix or ablation
//! run, typed once and used on both sides.
//!
//! The host writes a [`Plan`] to `/payload/plan.json`: which probe passes
//! to run, each in which generated unit (see [`crate::variant`]), with which
//! attempts. The guest side (`sandkasten-vm inside`, [`crate::inside`])
//! carries it out and answers with one [`GuestEvent`] per line on the
//! results port. The host ([`crate::matrix`], [`crate::ablation`]) then
//! insists on a complete answer: a report for every pass, a verdict for
//! every attempt, a canary report for every pass, and the final `done`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use sandkasten_probe::verdict::{Verdict, VerdictKind};

use crate::matrix::{Functional, GuestInfo};

/// What the guest is asked to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Check every reference server through its socket first.
    pub functional: bool,
    /// How many passes run at once.
    pub parallel: usize,
    /// The probe passes, started in this order.
    pub passes: Vec<Pass>,
}

/// One probe run inside one generated unit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pass {
    /// The run id (marker files, canary tokens) and the generated unit's
    /// stem: `sk-NAME.service`, `sk-NAME@.service` for a template.
    pub name: String,
    /// Whether the unit is a template started per connection (`Accept=yes`).
    pub template: bool,
    /// The generated socket's TCP port: dialled once while the probe runs
    /// (a client for `net.handover-accepted` to accept), or once per
    /// instance of a template (`clients`).
    pub port: Option<u16>,
    /// Instances of a template started side by side (the sibling routes
    /// need two).
    pub clients: u32,
    /// The attempts the probe makes (it is started with `--only` these).
    pub attempts: Vec<String>,
    /// Seconds the pass may take, start to last verdict.
    pub deadline_s: u64,
}

impl Pass {
    /// The unit the guest starts (a template's instances are started by
    /// connections instead).
    pub fn unit(&self) -> String {
        if self.template {
            format!("sk-{}@.service", self.name)
        } else {
            format!("sk-{}.service", self.name)
        }
    }

    /// Where the generated unit writes the probe's verdicts
    /// (`StandardOutput=append:`), outside every sandbox.
    pub fn output(&self) -> String {
        format!("{OUTPUT_DIR}/{}.jsonl", self.name)
    }
}

/// The guest directory the probe passes' output files live in.
pub const OUTPUT_DIR: &str = "/run/sandkasten-matrix";

/// One line the guest writes to the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum GuestEvent {
    /// The release, systemd and kernel the plan runs on.
    Guest(GuestInfo),
    /// One functional check.
    Check(Functional),
    /// Everything one pass produced.
    Pass(PassReport),
    /// The plan ran to its end.
    Done,
}

/// What one pass produced, as the guest side collected it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PassReport {
    /// The pass's name (its run id).
    pub name: String,
    /// One verdict per attempt made (two instances of a template: the
    /// first escape, else the first verdict).
    pub verdicts: Vec<Verdict>,
    /// Attempt id → evidence, for every attempt of this run the canary saw
    /// arrive or whose marker it found; `None` when the canary could not be
    /// asked.
    pub canary: Option<BTreeMap<String, Vec<String>>>,
    /// systemd's `Result=` of the unit after the pass (`success`,
    /// `exit-code`, `oom-kill`, `timeout`, …).
    pub result: String,
    /// Wall time from start to the last verdict.
    pub elapsed_ms: u64,
    /// What went wrong while running it; the host fails the run on any.
    pub failures: Vec<String>,
}

impl PassReport {
    /// Whether the canary saw `attempt` of this pass arrive.
    pub fn canary_saw(&self, attempt: &str) -> bool {
        self.canary.as_ref().is_some_and(|seen| seen.contains_key(attempt))
    }
}

/// Parses the guest's output: one event per line. Lines that are not JSON
/// objects (a stray message) are skipped; a JSON object that is not an
/// event is an error the caller reports.
pub fn parse_events(output: &str) -> (Vec<GuestEvent>, Vec<String>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (number, line) in output.lines().enumerate().filter(|(_, l)| l.starts_with('{')) {
        match serde_json::from_str::<GuestEvent>(line) {
            Ok(event) => events.push(event),
            Err(err) => errors.push(format!("guest output line {}: {err}: {line}", number + 1)),
        }
    }
    (events, errors)
}

/// Checks that `events` answer every pass of `plan` and end with `done`.
/// Returns the pass reports by name, and a failure for each gap: a pass
/// that never reported (its unit never started, the guest died), a pass
/// reported twice, a plan that did not run to its end.
pub fn complete<'a>(
    plan: &Plan,
    events: &'a [GuestEvent],
) -> (BTreeMap<&'a str, &'a PassReport>, Vec<String>) {
    let mut reports = BTreeMap::new();
    let mut failures = Vec::new();
    for event in events {
        if let GuestEvent::Pass(report) = event {
            if reports.insert(report.name.as_str(), report).is_some() {
                failures.push(format!("pass {} reported twice", report.name));
            }
        }
    }
    for pass in &plan.passes {
        if !reports.contains_key(pass.name.as_str()) {
            failures.push(format!("pass {} ({}) never reported", pass.name, pass.unit()));
        }
    }
    if !events.iter().any(|e| matches!(e, GuestEvent::Done)) {
        failures.push("the guest plan did not run to its end".to_owned());
    }
    (reports, failures)
}
