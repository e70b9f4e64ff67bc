//! `sandkasten-vm audit`: the whole catalogue inside a unit of one's own,
//! judged against the root control in the same guest.
//!
//! The unit runs as written, with three edits said in the report: the
//! probe takes `ExecStart=`'s place (and the pass's bookkeeping lines of
//! [`crate::variant::generate`]), its program and libraries join
//! `ExecPaths=` when the unit names `NoExecPaths=`, and its socket listens
//! on a port of the harness's choosing. Every other line is the user's.
//!
//! For each escape the report names what closes it in the reference
//! units, from the committed ablation maps (`units/ablation/`): a directive
//! that holds the attempt alone, or a set of layers each of which holds it
//! on its own. It never names a cause that was not measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ablation::AblationMap;
use crate::contract::harden::exec_prefix;
use crate::contract::paths::{self, LOCKDOWN_WRAPPER};
use crate::contract::{answer, Functional, GuestInfo, Plan, ProgramCheck, VerdictKind};
use crate::enforcement::EnforcementReport;
use crate::error::{Error, IoContext};
use crate::matrix::{self, CONTROL};
use crate::passes::{self, Reference, Role};
use crate::variant::UnitFile;

/// A unit to audit: its service and, when socket-activated, its socket.
#[derive(Debug, Clone)]
pub struct Audited {
    /// The service as `passes` runs it.
    pub reference: Reference,
    /// Where its files came from, for messages.
    pub files: Vec<PathBuf>,
}

/// Reads a service file and its socket. The socket is the one given, or
/// else the one the service `Requires=`, read from beside the service.
pub fn load(service: &Path, socket: Option<&Path>) -> Result<Audited, Error> {
    let name = file_name(service, ".service")?;
    let parsed = read_unit(service)?;
    if parsed.get("Service", "ExecStart").is_none() {
        return Err(Error::Config(format!("{}: no ExecStart= in [Service]", service.display())));
    }
    let mut files = vec![service.to_owned()];
    let socket_path = match socket {
        Some(path) => Some(path.to_owned()),
        None => parsed
            .get("Unit", "Requires")
            .and_then(|r| r.split_whitespace().find(|u| u.ends_with(".socket")))
            .map(|s| service.with_file_name(s)),
    };
    let socket = match socket_path {
        Some(path) => {
            let socket_name = file_name(&path, ".socket").map_err(|_| {
                Error::Config(format!("{}: the socket {name} needs is not there", path.display()))
            })?;
            let text = read_unit(&path)?;
            if !text.entries("Socket").any(|(_, k, _)| k.starts_with("Listen")) {
                return Err(Error::Config(format!("{}: no Listen*= in [Socket]", path.display())));
            }
            files.push(path);
            Some((socket_name, text))
        }
        None => None,
    };
    if name.ends_with("@.service") && socket.is_none() {
        return Err(Error::Config(format!(
            "{}: a template service needs its Accept=yes socket; give it as a second argument",
            service.display()
        )));
    }
    Ok(Audited { reference: Reference { name, service: parsed, socket }, files })
}

fn file_name(path: &Path, suffix: &str) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(suffix) && n.len() > suffix.len())
        .map(str::to_owned)
        .ok_or_else(|| Error::Config(format!("{}: expected a {suffix} file", path.display())))
}

fn read_unit(path: &Path) -> Result<UnitFile, Error> {
    let text = std::fs::read_to_string(path).ctx(|| format!("cannot read {}", path.display()))?;
    UnitFile::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The programs a unit runs (`ExecStart=` and friends), as absolute paths,
/// for `--binary` to find where a program goes.
pub fn programs(unit: &UnitFile) -> Vec<String> {
    unit.entries("Service")
        .filter(|(_, k, _)| k.starts_with("Exec") && !k.ends_with("Paths"))
        .filter_map(|(_, _, v)| {
            let program = exec_prefix(v).1.split_whitespace().next()?;
            program.starts_with('/').then(|| program.to_owned())
        })
        .collect()
}

/// What the audit adds to a unit so that the probe runs in it: when the
/// unit lets nothing but its `ExecPaths=` run, the probe and the C
/// libraries it links.
pub fn probe_exec_paths(unit: &UnitFile) -> Option<String> {
    unit.entries("Service").any(|(_, k, _)| k == "NoExecPaths").then(|| {
        let mut paths = vec![paths::PROBE.to_owned()];
        paths.extend(paths::BINARY_LIBRARIES.iter().map(|l| format!("-{l}")));
        paths.join(" ")
    })
}

/// The plan: the root control, then each audited unit, every attempt in
/// each; the guest scores each unit as installed.
pub fn stage(units: &[Audited], attempts: &[String], sysusers: &[String]) -> passes::Staged {
    let references: Vec<(Reference, Vec<(&str, String)>)> = units
        .iter()
        .map(|u| {
            let extra =
                probe_exec_paths(&u.reference.service).map(|p| ("ExecPaths", p)).into_iter().collect();
            (u.reference.clone(), extra)
        })
        .collect();
    let mut staged = passes::audit(&references, attempts);
    staged.plan.sysusers = sysusers.to_vec();
    staged.plan.scores =
        units.iter().filter(|u| !u.reference.template()).map(|u| u.reference.name.clone()).collect();
    staged
}

/// What an audit says of one attempt in the audited unit: the probe's
/// verdict, or that the root control could not make it either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// It got out.
    Escaped,
    /// Stopped the way the catalogue expects.
    Blocked,
    /// Killed by a signal the catalogue expects.
    Killed,
    /// Stopped, but another way than the catalogue expects (a kill by
    /// SIGSYS where the reference units return EPERM, another errno).
    Error,
    /// The probe could not try it here, though the control escaped.
    Unsupported,
    /// The root control could not do it either here.
    NotPossible,
}

impl From<VerdictKind> for Finding {
    fn from(verdict: VerdictKind) -> Finding {
        match verdict {
            VerdictKind::Escaped => Finding::Escaped,
            VerdictKind::Blocked => Finding::Blocked,
            VerdictKind::Killed => Finding::Killed,
            VerdictKind::Error => Finding::Error,
            VerdictKind::Unsupported => Finding::Unsupported,
        }
    }
}

impl Finding {
    /// The word the audit's text shows.
    fn label(self) -> &'static str {
        match self {
            Finding::Escaped => "ESCAPED",
            Finding::Blocked => "blocked",
            Finding::Killed => "killed",
            Finding::Error => "stopped",
            Finding::Unsupported => "unsupported",
            Finding::NotPossible => "n/a",
        }
    }
}

/// One attempt's result in an audited unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// The attempt (`fs.shadow`).
    pub attempt: String,
    /// Its goal (`read-secrets`).
    pub goal: String,
    /// What the audit found.
    pub verdict: Finding,
    /// What the probe saw.
    pub detail: String,
    /// For an escape: what closes it in the reference units, as measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

/// What closes an attempt, from an ablation map.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Fix {
    /// The reference unit whose map says so.
    pub unit: String,
    /// Directives that hold it alone there (removing one lets it escape).
    pub alone: Vec<String>,
    /// Directives each of which holds it on its own with every other
    /// directive removed: any one of them closes it.
    pub any_of: Vec<String>,
    /// The whole line in that unit behind a label that names it by its
    /// first word (`TemporaryFileSystem=/var:ro` is the line `/var:ro
    /// /srv:ro ... /dev/shm:ro`): the map removed the whole line, and
    /// advice must be what the reader writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

/// The audit of one unit on one release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditReport {
    /// The audited service.
    pub unit: String,
    /// The guest it ran in.
    pub guest: GuestInfo,
    /// `systemd-analyze security`'s overall exposure there.
    pub exposure: Option<f64>,
    /// Its rating, or why there is no score.
    pub rating: String,
    /// Directives of the unit this release's systemd accepts and does not
    /// enforce (measured: `units/enforcement/RELEASE.json`).
    pub not_enforced: Vec<String>,
    /// What the audit changed in the unit to run the probe in it.
    pub added: Vec<String>,
    /// One row per attempt, in catalogue order.
    pub rows: Vec<Row>,
    /// Why the audit is incomplete (the unit never started, a verdict is
    /// missing, the program failed its check); empty when it is not.
    pub failures: Vec<String>,
    /// The real program's check in the unit as written (`--check`): whether
    /// the sandbox still lets it serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Functional>,
}

impl AuditReport {
    /// The attempts that escaped.
    pub fn escaped(&self) -> Vec<&str> {
        self.rows.iter().filter(|r| r.verdict == Finding::Escaped).map(|r| r.attempt.as_str()).collect()
    }

    fn count(&self, findings: &[Finding]) -> usize {
        self.rows.iter().filter(|r| findings.contains(&r.verdict)).count()
    }

    /// The report for a terminal: attempts grouped by goal, escapes first
    /// in each group with what closes them.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let g = &self.guest;
        let _ = writeln!(
            out,
            "audit of {} on {} (systemd {}, kernel {}, {})",
            self.unit, g.release, g.systemd, g.kernel, g.accel
        );
        match self.exposure {
            Some(e) => {
                let _ = writeln!(out, "static score (systemd-analyze security): {e:.1} {}", self.rating);
            }
            None => {
                let _ = writeln!(out, "static score: none ({})", self.rating);
            }
        }
        if self.not_enforced.is_empty() {
            let _ = writeln!(out, "not enforced here: none of the unit's directives (as measured)");
        }
        for directive in &self.not_enforced {
            let _ = writeln!(
                out,
                "NOT ENFORCED here: {directive} (systemd {} accepts it and does nothing)",
                g.systemd
            );
        }
        for check in &self.checks {
            if check.ok {
                let _ =
                    writeln!(out, "the program serves in this sandbox: {}: {}", check.check, check.detail);
            } else {
                let _ = writeln!(
                    out,
                    "THE PROGRAM DOES NOT SERVE IN THIS SANDBOX: {}: {}\n  (the escapes below are those of a unit that does not run its program)",
                    check.check, check.detail
                );
            }
        }
        for line in &self.added {
            let _ = writeln!(out, "the audit added: {line}");
        }
        let goals = self.goals();
        let width = self.rows.iter().map(|r| r.attempt.len()).max().unwrap_or(0);
        for goal in goals {
            let _ = writeln!(out, "{goal}:");
            let mut rows: Vec<&Row> = self.rows.iter().filter(|r| r.goal == goal).collect();
            rows.sort_by_key(|r| r.verdict != Finding::Escaped);
            for row in rows {
                let label = row.verdict.label();
                let _ = writeln!(out, "  {label:<8} {:width$}  {}", row.attempt, shorten(&row.detail, 90));
                if let Some(fix) = &row.fix {
                    let _ = writeln!(out, "  {:8} {:width$}  closed by {}", "", "", fix.advice());
                } else if row.verdict == Finding::Escaped {
                    let _ = writeln!(out, "  {:8} {:width$}  no reference unit holds it (measured)", "", "");
                }
            }
        }
        out.push_str(&self.by_goal());
        let _ = writeln!(
            out,
            "{} of {} attempts escaped; {} blocked, {} stopped another way than the catalogue expects (a kill by SIGSYS, another errno: not an escape either), {} n/a (the root control could not make them either, or the unit gives them nothing to work on: no socket handed over, say)",
            self.count(&[Finding::Escaped]),
            self.rows.len(),
            self.count(&[Finding::Blocked, Finding::Killed]),
            self.count(&[Finding::Error]),
            self.count(&[Finding::NotPossible]),
        );
        if !self.failures.is_empty() {
            let _ = writeln!(out, "THE AUDIT IS INCOMPLETE; what went wrong:");
        }
        for failure in &self.failures {
            let _ = writeln!(out, "  {failure}");
        }
        out
    }
}

impl AuditReport {
    /// The goals, in catalogue order.
    fn goals(&self) -> Vec<&str> {
        let mut goals: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !goals.contains(&row.goal.as_str()) {
                goals.push(&row.goal);
            }
        }
        goals
    }

    /// Per goal: how many attempts escaped, were blocked, were stopped
    /// another way than the catalogue expects, or were not possible here.
    pub fn by_goal(&self) -> String {
        let goals = self.goals();
        let width = goals.iter().map(|g| g.len()).max().unwrap_or(4).max(4);
        let mut out = format!("{:width$}  escaped  blocked  stopped  n/a\n", "goal");
        for goal in goals {
            let count = |findings: &[Finding]| {
                self.rows.iter().filter(|r| r.goal == goal && findings.contains(&r.verdict)).count()
            };
            let _ = writeln!(
                out,
                "{goal:width$}  {:>7}  {:>7}  {:>7}  {:>3}",
                count(&[Finding::Escaped]),
                count(&[Finding::Blocked, Finding::Killed]),
                count(&[Finding::Error]),
                count(&[Finding::NotPossible])
            );
        }
        out
    }
}

impl Fix {
    /// `NoExecPaths= + ExecPaths= (alone, in sandkasten-http.service)`.
    pub fn advice(&self) -> String {
        let mut parts = Vec::new();
        if !self.alone.is_empty() {
            parts.push(self.alone.join(", "));
        }
        if !self.any_of.is_empty() {
            parts.push(format!("any one of {}", self.any_of.join(", ")));
        }
        let mut advice = match self.lines.as_slice() {
            [] => format!("{} (measured in {})", parts.join("; or "), self.unit),
            lines => format!(
                "{} (measured in {}, where that is the line {})",
                parts.join("; or "),
                self.unit,
                lines.join(", and the line ")
            ),
        };
        if self.alone.iter().chain(&self.any_of).any(|d| d == LOCKDOWN) {
            advice += &format!("; {LOCKDOWN} works in sandkasten's servers only, any other program gets it as ExecStart={LOCKDOWN_WRAPPER} PROGRAM ARGS...");
        }
        advice
    }
}

/// The lockdown's directive in the ablation maps: an environment variable
/// only sandkasten's servers (and the probe in their place) read.
const LOCKDOWN: &str = "Environment=SANDKASTEN_LOCKDOWN=1";

/// `text` on one line, cut to `max` characters with an ellipsis.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// What the repository knows of the reference units, which an audit
/// compares a unit with: their ablation maps and enforcement reports (any
/// release; each report takes its own release's), and the units
/// themselves, whose lines an escape's fix spells out.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// `units/ablation/*.json`.
    pub maps: &'a [AblationMap],
    /// `units/enforcement/*.json`.
    pub enforcement: &'a [EnforcementReport],
    /// The reference units the maps measured.
    pub references: &'a [Reference],
}

/// The reports of every audited unit from the guest's output for `staged`.
pub fn evaluate(
    staged: &passes::Staged,
    units: &[Audited],
    output: &str,
    (release, accel): (&str, &str),
    committed: Committed,
) -> Vec<AuditReport> {
    let Committed { maps, enforcement, references } = committed;
    let plan: &Plan = &staged.plan;
    let answered = answer(plan, output);
    let report = matrix::from_answer(plan, &staged.roles, &answered, accel);
    let mut guest = report.guest.clone();
    guest.release = release.to_owned();
    let control: BTreeMap<&str, VerdictKind> = report
        .results
        .iter()
        .filter(|r| r.unit == CONTROL)
        .map(|r| (r.attempt.as_str(), r.verdict))
        .collect();
    let maps: Vec<&AblationMap> = maps.iter().filter(|m| m.guest.release == release).collect();
    let ignored = enforcement
        .iter()
        .filter(|e| e.guest.release == release)
        .flat_map(|e| &e.rows)
        .filter(|r| r.status == crate::enforcement::Status::SilentlyIgnored)
        .map(|r| r.directive.clone())
        .collect::<Vec<_>>();
    let mut reports = Vec::new();
    for unit in units {
        let name = &unit.reference.name;
        let pass = staged.roles.iter().find(|(_, role)| **role == Role::Unit(name.clone())).map(|(p, _)| p);
        let mut failures: Vec<String> = answered.failures.clone();
        if let Some(report) = pass.and_then(|p| answered.reports.get(p)) {
            failures.extend(report.failures.iter().cloned());
        }
        if let Some(hint) = start_failure_hint(&failures) {
            failures.push(hint.to_owned());
        }
        let checks: Vec<Functional> = answered.checks.iter().filter(|c| c.unit == *name).cloned().collect();
        if staged.plan.program_checks.iter().any(|c| c.service == *name) && checks.is_empty() {
            failures.push("the program's check never answered".to_owned());
        }
        failures.extend(
            checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("the program does not serve: {}: {}", c.check, c.detail)),
        );
        let rows = report
            .results
            .iter()
            .filter(|r| r.unit == *name)
            .map(|r| {
                let escaped_in_control = control.get(r.attempt.as_str()) == Some(&VerdictKind::Escaped);
                let not_applicable = r.reason.as_deref() == Some("not-applicable");
                let verdict = if not_applicable || (r.verdict != VerdictKind::Escaped && !escaped_in_control)
                {
                    Finding::NotPossible
                } else {
                    Finding::from(r.verdict)
                };
                let fix =
                    (verdict == Finding::Escaped).then(|| fix_for(&maps, references, &r.attempt)).flatten();
                Row {
                    attempt: r.attempt.clone(),
                    goal: r.goal.clone(),
                    verdict,
                    detail: r.detail.clone(),
                    fix,
                }
            })
            .collect();
        let score = answered.scores.get(name);
        let mut added =
            vec![format!("ExecStart={} (the probe, in place of the program)", crate::contract::paths::PROBE)];
        if let Some(paths) = probe_exec_paths(&unit.reference.service) {
            added.push(format!("ExecPaths={paths} (the unit lets nothing else run)"));
        }
        if let Some((socket, _)) = &unit.reference.socket {
            added.push(format!("{socket} listens on a port of the harness's choosing"));
        }
        reports.push(AuditReport {
            unit: name.clone(),
            guest: guest.clone(),
            exposure: score.and_then(|s| s.exposure),
            rating: score.map(|s| s.rating.clone()).unwrap_or_else(|| "not scored (a template)".to_owned()),
            not_enforced: not_enforced(&unit.reference, &ignored),
            added,
            rows,
            failures,
            checks,
        });
    }
    reports
}

/// `audit --check COMMAND` for `unit`: its real program in the unit as
/// written, checked against the port its socket names (`$PORT`).
pub fn program_check(unit: &Audited, command: &str) -> ProgramCheck {
    let socket = unit.reference.socket.as_ref();
    let port = socket.and_then(|(_, text)| {
        text.entries("Socket")
            .filter(|(_, k, _)| *k == "ListenStream")
            .find_map(|(_, _, v)| v.rsplit(':').next().and_then(|p| p.trim().parse().ok()))
    });
    ProgramCheck {
        service: unit.reference.name.clone(),
        socket: socket.map(|(name, _)| name.clone()),
        command: command.to_owned(),
        port,
    }
}

/// What to do about a unit that systemd could not start, from the exit
/// status its journal names (systemd.exec(5), "Process exit codes").
fn start_failure_hint(failures: &[String]) -> Option<&'static str> {
    let said = |status: &str| failures.iter().any(|f| f.contains(status));
    if said("217/USER") || said("216/GROUP") {
        Some("hint: the unit's User= or Group= does not exist in the guest; give its sysusers.d file with --sysusers FILE")
    } else if said("226/NAMESPACE") || said("200/CHDIR") {
        Some("hint: a path the unit names (ReadWritePaths=, BindPaths=, WorkingDirectory=, …) is missing in the guest; bring it with --files DIR:DEST")
    } else if said("203/EXEC") {
        Some("hint: the probe could not be executed in this unit (its ExecPaths=, RootDirectory= or a mount hides it)")
    } else {
        None
    }
}

/// What closes `attempt`: the first map (in the reference units' order)
/// in which it is held, alone or by layers, with the whole lines behind
/// its labels from `references`.
fn fix_for(maps: &[&AblationMap], references: &[Reference], attempt: &str) -> Option<Fix> {
    let mut ordered: Vec<&&AblationMap> = maps.iter().collect();
    ordered.sort_by_key(|m| passes::REFERENCE_UNITS.iter().position(|u| *u == m.unit).unwrap_or(usize::MAX));
    let mut fix = ordered.iter().find_map(|map| {
        let row = map.attempts.iter().find(|a| a.attempt == attempt)?;
        let (alone, any_of) = match row.status.as_str() {
            "held" => (row.alone.clone(), Vec::new()),
            "layers" => (Vec::new(), row.together.clone().unwrap_or_default()),
            _ => return None,
        };
        Some(Fix { unit: map.unit.clone(), alone, any_of, lines: Vec::new() })
    })?;
    if let Some(reference) = references.iter().find(|r| r.name == fix.unit) {
        let labels: Vec<String> = fix.alone.iter().chain(&fix.any_of).cloned().collect();
        fix.lines = whole_lines(reference, &labels);
    }
    Some(fix)
}

/// The lines of `reference` that `labels` name by their first word (a key
/// with several lines: `TemporaryFileSystem=/var:ro`), written out whole.
fn whole_lines(reference: &Reference, labels: &[String]) -> Vec<String> {
    let entries: Vec<(usize, &str, &str)> = reference.service.entries("Service").collect();
    reference
        .directives_labelled(labels)
        .iter()
        .flat_map(|directive| directive.lines.iter().map(move |line| (directive, line)))
        .filter(|(_, (file, _))| *file == crate::variant::In::Service)
        .filter_map(|(directive, (_, index))| {
            let (_, key, value) = entries.iter().find(|(i, _, _)| i == index)?;
            let first = value.split_whitespace().next()?;
            let abbreviated =
                directive.label == format!("{key}={first}") && value.split_whitespace().nth(1).is_some();
            abbreviated.then(|| format!("{key}={value}"))
        })
        .collect()
}

/// The unit's directives among those measured as silently ignored, by key
/// (`SocketBindDeny=`).
fn not_enforced(reference: &Reference, ignored: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let files = std::iter::once(&reference.service).chain(reference.socket.as_ref().map(|(_, s)| s));
    for file in files {
        for section in ["Service", "Socket"] {
            for (_, key, _) in file.entries(section) {
                let key = format!("{key}=");
                if ignored.iter().any(|label| label.starts_with(&key)) && !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No maps, reports or reference units.
    const NOTHING_COMMITTED: Committed = Committed { maps: &[], enforcement: &[], references: &[] };

    fn unit(text: &str) -> UnitFile {
        UnitFile::parse(text).unwrap()
    }

    /// Advice a reader can apply to their own program: the lockdown's
    /// variable means nothing outside sandkasten's servers, so the wrapper
    /// that does the same for any program is named beside it.
    #[test]
    fn advice_naming_the_lockdown_names_the_wrapper_for_other_programs() {
        let fix = Fix {
            unit: "u.service".into(),
            alone: vec![],
            any_of: vec!["ProtectSystem=".into(), LOCKDOWN.into()],
            lines: vec![],
        };
        assert!(fix.advice().ends_with(
            "any other program gets it as ExecStart=/usr/libexec/sandkasten/sandkasten-lockdown PROGRAM ARGS..."
        ));
        let fix = Fix {
            unit: "u.service".into(),
            alone: vec!["PrivateNetwork=".into()],
            any_of: vec![],
            lines: vec![],
        };
        assert_eq!(fix.advice(), "PrivateNetwork= (measured in u.service)");
    }

    #[test]
    fn programs_are_found_behind_their_prefixes() {
        let u = unit("[Service]\nExecStartPre=-/usr/bin/mkdir /x\nExecStart=!/usr/local/bin/server --port 1\nExecPaths=/usr\nExecReload=kill -HUP $MAINPID\n");
        assert_eq!(programs(&u), ["/usr/bin/mkdir", "/usr/local/bin/server"]);
    }

    #[test]
    fn the_probe_joins_exec_paths_only_where_the_unit_restricts_them() {
        assert_eq!(probe_exec_paths(&unit("[Service]\nExecStart=/x\n")), None);
        let paths =
            probe_exec_paths(&unit("[Service]\nExecStart=/x\nNoExecPaths=/\nExecPaths=/x\n")).unwrap();
        assert!(paths.starts_with("/usr/libexec/sandkasten/sandkasten-probe -/usr/lib/"), "{paths}");
    }

    #[test]
    fn a_fix_comes_from_the_first_map_that_holds_the_attempt() {
        use crate::ablation::AttemptHolders;
        let map = |unit: &str, status: &str, alone: &[&str], together: Option<&[&str]>| AblationMap {
            unit: unit.into(),
            attempts: vec![AttemptHolders {
                attempt: "a.b".into(),
                status: status.into(),
                alone: alone.iter().map(|s| (*s).to_owned()).collect(),
                together: together.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
                ..AttemptHolders::default()
            }],
            ..AblationMap::default()
        };
        let echo = map("sandkasten-echo.service", "held", &["PrivateNetwork="], None);
        let http = map("sandkasten-http.service", "layers", &[], Some(&["A=", "B="]));
        let fix = fix_for(&[&echo, &http], &[], "a.b").unwrap();
        assert_eq!(fix.unit, "sandkasten-http.service", "http's map comes first");
        assert_eq!(fix.any_of, ["A=", "B="]);
        assert_eq!(fix.advice(), "any one of A=, B= (measured in sandkasten-http.service)");
        let na = map("sandkasten-http.service", "not-applicable", &[], None);
        assert_eq!(fix_for(&[&na, &echo], &[], "a.b").unwrap().alone, ["PrivateNetwork="]);
        assert_eq!(fix_for(&[&na], &[], "a.b"), None);
    }

    /// A label that names one line of several by its first word is advice
    /// only with the whole line: the map removed `/var:ro` and `/dev/shm:ro`
    /// together, and `/var:ro` alone would leave /dev/shm shared.
    #[test]
    fn a_fix_spells_out_a_line_its_label_names_by_the_first_word() {
        use crate::ablation::AttemptHolders;
        let reference = Reference {
            name: "u.service".into(),
            service: unit("[Service]\nExecStart=/x\nTemporaryFileSystem=/run:ro\nTemporaryFileSystem=/var:ro /dev/shm:ro\nPrivateNetwork=yes\nSystemCallFilter=read write\n"),
            socket: None,
        };
        let held_by = |alone: &[&str]| AblationMap {
            unit: "u.service".into(),
            attempts: vec![AttemptHolders {
                attempt: "fs.shm-shared".into(),
                status: "held".into(),
                alone: alone.iter().map(|s| (*s).to_owned()).collect(),
                ..AttemptHolders::default()
            }],
            ..AblationMap::default()
        };
        let map = held_by(&["TemporaryFileSystem=/var:ro"]);
        let fix = fix_for(&[&map], std::slice::from_ref(&reference), "fs.shm-shared").unwrap();
        assert_eq!(fix.lines, ["TemporaryFileSystem=/var:ro /dev/shm:ro"]);
        assert_eq!(
            fix.advice(),
            "TemporaryFileSystem=/var:ro (measured in u.service, where that is the line TemporaryFileSystem=/var:ro /dev/shm:ro)"
        );
        // A label that is its whole line, or names no line by a word of it, stays as it is.
        for label in ["TemporaryFileSystem=/run:ro", "PrivateNetwork=", "SystemCallFilter= (allow-list)"] {
            let map = held_by(&[label]);
            let fix = fix_for(&[&map], std::slice::from_ref(&reference), "fs.shm-shared").unwrap();
            assert!(fix.lines.is_empty(), "{label}: {:?}", fix.lines);
        }
    }

    #[test]
    fn directives_ignored_by_the_release_are_named_by_key() {
        let reference = Reference {
            name: "x.service".into(),
            service: unit("[Service]\nExecStart=/x\nSocketBindDeny=any\nPrivateNetwork=yes\n"),
            socket: None,
        };
        let ignored = vec!["SocketBindDeny=".to_owned(), "RestrictNetworkInterfaces=".to_owned()];
        assert_eq!(not_enforced(&reference, &ignored), ["SocketBindDeny="]);
    }

    #[test]
    fn loading_finds_the_socket_the_service_requires_and_refuses_what_is_not_a_unit() {
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("web.service");
        std::fs::write(&service, "[Unit]\nRequires=web.socket\n[Service]\nExecStart=/usr/bin/web\n").unwrap();
        let err = load(&service, None).unwrap_err().to_string();
        assert!(err.contains("web.socket"), "{err}");
        std::fs::write(dir.path().join("web.socket"), "[Socket]\nListenStream=8080\n").unwrap();
        let audited = load(&service, None).unwrap();
        assert_eq!(audited.reference.socket.as_ref().unwrap().0, "web.socket");
        let err = load(&dir.path().join("web.socket"), None).unwrap_err().to_string();
        assert!(err.contains("expected a .service file"), "{err}");
        std::fs::write(&service, "[Service]\nType=simple\n").unwrap();
        assert!(load(&service, None).unwrap_err().to_string().contains("no ExecStart="));
    }

    /// `--check`: the port comes from the socket; a program that does not
    /// serve fails the audit and the text says so in capitals; a check that
    /// never answered is a gap.
    #[test]
    fn a_program_that_does_not_serve_fails_the_audit_and_says_so() {
        use crate::contract::{GuestEvent, PassReport, Score};
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("web.service");
        std::fs::write(&service, "[Unit]\nRequires=web.socket\n[Service]\nExecStart=/usr/bin/web\n").unwrap();
        std::fs::write(dir.path().join("web.socket"), "[Socket]\nListenStream=127.0.0.1:8080\n").unwrap();
        let units = vec![load(&service, None).unwrap()];
        let check = program_check(&units[0], "exec 3<>/dev/tcp/127.0.0.1/$PORT");
        assert_eq!((check.socket.as_deref(), check.port), (Some("web.socket"), Some(8080)));
        let attempts = vec!["a.net".to_owned()];
        let mut staged = stage(&units, &attempts, &[]);
        staged.plan.program_checks = vec![check];
        let pass = |name: &str| {
            let verdict: crate::contract::Verdict = serde_json::from_value(serde_json::json!({
                "id": "a.net", "goal": "g", "directive": "X=", "verdict": "blocked", "outcome": "EPERM",
                "accepted": ["EPERM"], "detail": "d", "elapsed_ms": 1
            }))
            .unwrap();
            let report = PassReport {
                name: name.into(),
                verdicts: vec![verdict],
                canary: Some(Default::default()),
                ..PassReport::default()
            };
            serde_json::to_string(&GuestEvent::Pass(report)).unwrap()
        };
        let score = Score { unit: "web.service".into(), exposure: Some(1.0), rating: "OK".into() };
        let lines = |check: Option<bool>| {
            let mut lines = vec![serde_json::to_string(&GuestEvent::Score(score.clone())).unwrap()];
            if let Some(ok) = check {
                let functional = Functional {
                    unit: "web.service".into(),
                    check: "the program serves its check (exec 3<>/dev/tcp/127.0.0.1/$PORT)".into(),
                    ok,
                    detail: "web.service: failed exit-code 203".into(),
                };
                lines.push(serde_json::to_string(&GuestEvent::Check(functional)).unwrap());
            }
            lines.extend([
                pass("control"),
                pass("audit-0"),
                serde_json::to_string(&GuestEvent::Done).unwrap(),
            ]);
            lines.join("\n")
        };
        let broken =
            &evaluate(&staged, &units, &lines(Some(false)), ("bookworm", "tcg"), NOTHING_COMMITTED)[0];
        assert!(
            broken.failures.iter().any(|f| f.starts_with("the program does not serve")),
            "{:?}",
            broken.failures
        );
        assert!(broken.text().contains("THE PROGRAM DOES NOT SERVE IN THIS SANDBOX"), "{}", broken.text());
        let serving =
            &evaluate(&staged, &units, &lines(Some(true)), ("bookworm", "tcg"), NOTHING_COMMITTED)[0];
        assert!(serving.failures.is_empty(), "{:?}", serving.failures);
        assert!(serving.text().contains("the program serves in this sandbox"));
        let silent = &evaluate(&staged, &units, &lines(None), ("bookworm", "tcg"), NOTHING_COMMITTED)[0];
        assert!(
            silent.failures.contains(&"the program's check never answered".to_owned()),
            "{:?}",
            silent.failures
        );
    }

    #[test]
    fn evaluation_judges_against_the_control_and_the_canary_and_fails_on_gaps() {
        use crate::contract::{GuestEvent, PassReport, Score};
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("web.service");
        std::fs::write(&service, "[Service]\nExecStart=/usr/bin/web\nSocketBindDeny=any\n").unwrap();
        let units = vec![load(&service, None).unwrap()];
        let attempts: Vec<String> =
            ["a.net", "b.fs", "c.none", "d.sys"].iter().map(|s| (*s).to_owned()).collect();
        let staged = stage(&units, &attempts, &[]);
        assert_eq!(staged.plan.scores, ["web.service"]);
        let verdict = |id: &str, verdict: &str| -> crate::contract::Verdict {
            serde_json::from_value(serde_json::json!({
                "id": id, "goal": "g", "directive": "X=", "verdict": verdict, "outcome": "EPERM",
                "accepted": ["EPERM"], "detail": "d", "elapsed_ms": 1
            }))
            .unwrap()
        };
        let pass = |name: &str, verdicts: &[(&str, &str)], seen: &[&str]| {
            let report = PassReport {
                name: name.into(),
                verdicts: verdicts.iter().map(|(id, v)| verdict(id, v)).collect(),
                canary: Some(seen.iter().map(|a| ((*a).to_owned(), vec!["token".to_owned()])).collect()),
                result: "success".into(),
                ..PassReport::default()
            };
            serde_json::to_string(&GuestEvent::Pass(report)).unwrap()
        };
        let all = [("a.net", "escaped"), ("b.fs", "escaped"), ("c.none", "blocked"), ("d.sys", "escaped")];
        let score = Score { unit: "web.service".into(), exposure: Some(9.6), rating: "UNSAFE".into() };
        let output = [
            serde_json::to_string(&GuestEvent::Score(score)).unwrap(),
            pass("control", &all, &[]),
            // b.fs: the probe says blocked, but the canary saw it arrive.
            pass(
                "audit-0",
                &[("a.net", "escaped"), ("b.fs", "blocked"), ("c.none", "blocked"), ("d.sys", "blocked")],
                &["b.fs"],
            ),
            serde_json::to_string(&GuestEvent::Done).unwrap(),
        ]
        .join("\n");
        let map = AblationMap {
            unit: "sandkasten-http.service".into(),
            guest: GuestInfo { release: "bookworm".into(), ..GuestInfo::default() },
            attempts: vec![crate::ablation::AttemptHolders {
                attempt: "a.net".into(),
                status: "held".into(),
                alone: vec!["PrivateNetwork=".into()],
                ..Default::default()
            }],
            ..AblationMap::default()
        };
        let committed = Committed { maps: &[map], ..NOTHING_COMMITTED };
        let reports = evaluate(&staged, &units, &output, ("bookworm", "tcg"), committed);
        let r = &reports[0];
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.exposure, Some(9.6));
        assert_eq!(r.escaped(), ["a.net", "b.fs"], "the canary's word counts");
        let verdicts: Vec<Finding> = r.rows.iter().map(|row| row.verdict).collect();
        assert_eq!(
            verdicts,
            [Finding::Escaped, Finding::Escaped, Finding::NotPossible, Finding::Blocked],
            "c.none: not even the control"
        );
        assert_eq!(r.rows[0].fix.as_ref().unwrap().alone, ["PrivateNetwork="]);
        assert!(r.rows[1].fix.is_none(), "no map holds b.fs: no cause is made up");
        assert!(r.text().contains("no reference unit holds it (measured)"));
        // A unit that never reported is incomplete, not clean.
        let gap =
            evaluate(&staged, &units, &pass("control", &all, &[]), ("bookworm", "tcg"), NOTHING_COMMITTED);
        assert!(gap[0].failures.iter().any(|f| f.contains("never reported")), "{:?}", gap[0].failures);
        assert!(gap[0].failures.iter().any(|f| f.contains("no exposure score")), "{:?}", gap[0].failures);
        assert!(gap[0].text().contains("THE AUDIT IS INCOMPLETE"));
        let journal = ["its journal: Main process exited, code=exited, status=217/USER".to_owned()];
        assert!(start_failure_hint(&journal).unwrap().contains("--sysusers"));
        assert_eq!(start_failure_hint(&["pass never reported".to_owned()]), None);
    }
}
