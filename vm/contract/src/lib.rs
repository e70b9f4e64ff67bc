//! The contract between sandkasten-vm's host and guest sides, typed once
//! and used by both; it depends on neither.
//!
//! The host writes a [`GuestJob`] to `/payload/job.json`. For a [`Plan`]:
//! which probe passes to run, each in which generated unit, with which
//! attempts. The guest side (`sandkasten-vm guest`) carries it out and answers with one
//! [`GuestEvent`] per line on the results port. The host ([`answer`], then
//! its matrix, ablation and enforcement readings) insists on a complete
//! answer: a report for every pass, a verdict for every attempt, a canary
//! report for every pass, and the final `done`. The bench and reliability
//! guest sides answer with one JSON report each ([`bench`],
//! [`reliability`]). ARCHITECTURE.md draws where each side lives.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use sandkasten_probe::verdict::{Verdict, VerdictKind};

pub mod bench;
mod guest;
pub mod harden;
pub mod job;
pub mod paths;
pub mod reference;
pub mod reliability;

pub use guest::{Functional, GuestInfo, ImageInfo, SystemdBuild};
pub use job::GuestJob;
pub use paths::OUTPUT_DIR;

/// What the guest is asked to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Check every reference server through its socket first.
    pub functional: bool,
    /// How many passes run at once.
    pub parallel: usize,
    /// The probe passes, started in this order.
    pub passes: Vec<Pass>,
    /// sysusers.d files (guest paths) applied before any pass: the users
    /// an audited unit names with `User=`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysusers: Vec<String>,
    /// Units whose `systemd-analyze security` exposure the guest reports
    /// (as installed, before any pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<String>,
    /// The real programs to check in their units as written, before any
    /// pass (`audit --check`); each answers with one [`GuestEvent::Check`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub program_checks: Vec<ProgramCheck>,
}

/// Does the program a unit runs still serve in that unit's sandbox? The
/// guest starts the unit as written (through its socket, when it has one),
/// runs `command` against it, and stops it again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgramCheck {
    /// The service (`web.service`).
    pub service: String,
    /// Its socket, started in its place, when the unit is socket-activated.
    pub socket: Option<String>,
    /// Run by bash as root outside the sandbox, with `$ADDR` and `$PORT`
    /// set where the socket names a port; it passes when it exits 0.
    pub command: String,
    /// The TCP port the socket listens on, when it names one.
    pub port: Option<u16>,
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

    /// The unit systemd reports on: the unit, or for a template the glob
    /// of its instances.
    pub fn instances(&self) -> String {
        if self.template {
            format!("sk-{}@*.service", self.name)
        } else {
            self.unit()
        }
    }

    /// The generated socket.
    pub fn socket(&self) -> String {
        format!("sk-{}.socket", self.name)
    }

    /// Where the generated unit writes the probe's verdicts
    /// (`StandardOutput=append:`), outside every sandbox.
    pub fn output(&self) -> String {
        format!("{OUTPUT_DIR}/{}.jsonl", self.name)
    }
}

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
    /// One unit's static exposure score.
    Score(Score),
    /// The plan ran to its end.
    Done,
}

/// What `systemd-analyze security` says of one unit, in the guest's systemd.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Score {
    /// The unit (`sandkasten-lab1.service`).
    pub unit: String,
    /// The overall exposure (0.0 safest to 10.0), when it could be read.
    pub exposure: Option<f64>,
    /// The rating beside it (`OK`, `MEDIUM`, `UNSAFE`), or why there is no
    /// score.
    pub rating: String,
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

    /// `v`'s verdict after the canary's word: an attempt the canary saw
    /// arrive escaped, whatever the probe believed.
    pub fn verdict_of(&self, v: &Verdict) -> VerdictKind {
        if self.canary_saw(&v.id) {
            VerdictKind::Escaped
        } else {
            v.verdict
        }
    }
}

/// The guest's whole answer to a plan, read and checked for completeness.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The release, systemd and kernel (`accel` is the host's to fill).
    pub guest: GuestInfo,
    /// The functional checks, in the order they came.
    pub checks: Vec<Functional>,
    /// Each pass's report, by pass name.
    pub reports: BTreeMap<String, PassReport>,
    /// The static scores, by unit.
    pub scores: BTreeMap<String, Score>,
    /// Every gap: an unreadable line, a pass that never reported (its unit
    /// never started, the guest died), a pass reported twice, a plan that
    /// did not run to its end.
    pub failures: Vec<String>,
}

/// Reads the guest's output for `plan`: one event per line. Lines that are
/// not JSON objects (a stray message) are skipped; a JSON object that is
/// not an event is a failure.
pub fn answer(plan: &Plan, output: &str) -> Answer {
    let mut answer = Answer::default();
    let mut done = false;
    for (number, line) in output.lines().enumerate().filter(|(_, l)| l.starts_with('{')) {
        match serde_json::from_str::<GuestEvent>(line) {
            Ok(GuestEvent::Guest(guest)) => answer.guest = guest,
            Ok(GuestEvent::Check(check)) => answer.checks.push(check),
            Ok(GuestEvent::Pass(report)) => {
                if let Some(twice) = answer.reports.insert(report.name.clone(), report) {
                    answer.failures.push(format!("pass {} reported twice", twice.name));
                }
            }
            Ok(GuestEvent::Score(score)) => {
                answer.scores.insert(score.unit.clone(), score);
            }
            Ok(GuestEvent::Done) => done = true,
            Err(err) => answer.failures.push(format!("guest output line {}: {err}: {line}", number + 1)),
        }
    }
    for pass in &plan.passes {
        if !answer.reports.contains_key(&pass.name) {
            answer.failures.push(format!("pass {} ({}) never reported", pass.name, pass.unit()));
        }
    }
    for unit in &plan.scores {
        if !answer.scores.contains_key(unit) {
            answer.failures.push(format!("no exposure score for {unit}"));
        }
    }
    if !done {
        answer.failures.push("the guest plan did not run to its end".to_owned());
    }
    answer
}

/// Whether `verdict` means the attempt was stopped the way the catalogue
/// accepts (blocked, or killed by an accepted signal).
pub fn held(verdict: VerdictKind) -> bool {
    matches!(verdict, VerdictKind::Blocked | VerdictKind::Killed)
}

/// Whether an `error` verdict was a stop all the same: an errno or signal
/// (`outcome`) the catalogue does not list. A directive on its own may stop
/// an attempt another way than the whole unit does.
pub fn stopped_unlisted(verdict: VerdictKind, outcome: &str) -> bool {
    verdict == VerdictKind::Error && !outcome.is_empty()
}

/// A verdict that may be missing, written as reports always wrote it: its
/// name, or `""` for none (`#[serde(with = "verdict_or_empty")]`).
pub mod verdict_or_empty {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::VerdictKind;

    /// `None` as `""`.
    pub fn serialize<S: Serializer>(verdict: &Option<VerdictKind>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(verdict.map_or("", VerdictKind::as_str))
    }

    /// `""` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<VerdictKind>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        VerdictKind::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text)).map(Some)
    }
}
