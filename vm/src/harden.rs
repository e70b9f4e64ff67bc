//! `sandkasten-vm harden`, host side: the candidates it can know before
//! anything runs, the hardened units for the audit beside the original,
//! and the report.
//!
//! The candidates are the reference sandbox: the directives of
//! `units/sandkasten-http.service` that its ablation maps show to hold
//! something on some release, each with the comment the reference unit
//! gives it. Directives that need an argument only the program can give
//! (`ExecPaths=`, the system-call lists, `MemoryMax=`, `TasksMax=`) are
//! computed in the guest from what the program did
//! (`sandkasten_vm_guest`'s harden); sandkasten's own
//! `Environment=SANDKASTEN_LOCKDOWN=1` becomes the wrapper any program can
//! run under.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ablation::AblationMap;
use crate::audit::{shorten, AuditReport, Finding};
use crate::contract::harden::{
    exec_prefix, telling, Candidate, DropInLine, HardenReport, Variant, LOCKDOWN_WRAPPER,
};
use crate::contract::paths::BINARY_LIBRARIES;
use crate::passes::Reference;
use crate::variant::{directives, Line, UnitFile};

/// The reference unit whose sandbox harden starts from.
pub const REFERENCE: &str = "sandkasten-http.service";

/// Directives of the reference computed in the guest instead, or ours only.
const COMPUTED: [&str; 7] = [
    "NoExecPaths= + ExecPaths=",
    "SystemCallErrorNumber=",
    "SystemCallFilter= (allow-list)",
    "SystemCallFilter=~ (deny-list)",
    "TasksMax=",
    "MemoryMax=",
    "Environment=SANDKASTEN_LOCKDOWN=1",
];

/// Lists that several lines merge (a union): a candidate resets the
/// unit's own first, or a wider list of the unit's would stay in force.
pub const RESET_FIRST: [&str; 3] = ["RestrictAddressFamilies", "SystemCallFilter", "SystemCallArchitectures"];

/// Lines that only make sense beside another directive, carried with it:
/// `/run` hidden, but systemd's notify and journal sockets bound back in.
const COMPANIONS: [(&str, &str); 1] = [("TemporaryFileSystem=/run:ro", "BindReadOnlyPaths=")];

/// The reference sandbox as candidates: each directive of `reference`
/// that some map measured to hold an attempt, a multi-path
/// `TemporaryFileSystem=` split per path, and the reference's own comment.
/// Also the reference's system calls denied by name.
pub fn reference_candidates(reference: &Reference, maps: &[AblationMap]) -> (Vec<Candidate>, Vec<String>) {
    let unit = &reference.service;
    let measured = |label: &str| {
        maps.iter()
            .filter(|m| m.unit == reference.name)
            .flat_map(|m| &m.directives)
            .any(|d| d.directive == label && !d.no_measured_effect())
    };
    let mut candidates = Vec::new();
    for directive in directives(unit, None) {
        if COMPUTED.contains(&directive.label.as_str()) || !measured(&directive.label) {
            continue;
        }
        let (_, index) = directive.lines[0];
        let comment = comment_above(unit, index);
        let entries: Vec<(&str, &str)> = directive
            .lines
            .iter()
            .filter_map(|(_, i)| match &unit.lines[*i] {
                Line::Entry { key, value, .. } => Some((key.as_str(), value.as_str())),
                _ => None,
            })
            .collect();
        if let [("TemporaryFileSystem", value)] = entries.as_slice() {
            for path in value.split_whitespace() {
                let mut lines = vec![DropInLine::service(format!("TemporaryFileSystem={path}"))];
                let label = format!("TemporaryFileSystem={path}");
                for companion in COMPANIONS.iter().filter(|(of, _)| *of == label).map(|(_, c)| c) {
                    lines.extend(companion_lines(unit, companion));
                }
                candidates.push(Candidate { label, comment: comment.clone(), lines });
            }
            continue;
        }
        let mut lines: Vec<DropInLine> = Vec::new();
        for (key, value) in &entries {
            if RESET_FIRST.contains(key) {
                lines.push(DropInLine::service(format!("{key}=")));
            }
            lines.push(DropInLine::service(format!("{key}={value}")));
        }
        candidates.push(Candidate { label: directive.label.clone(), comment, lines });
    }
    let denied = unit
        .entries("Service")
        .filter(|(_, k, v)| *k == "SystemCallFilter" && v.starts_with('~'))
        .flat_map(|(_, _, v)| v.trim_start_matches('~').split_whitespace().map(str::to_owned))
        .collect();
    (candidates, denied)
}

/// A companion's lines, each path marked `-` (a program that does not
/// notify or log natively has no socket there to bind).
fn companion_lines(unit: &UnitFile, key_with_eq: &str) -> Vec<DropInLine> {
    let key = key_with_eq.trim_end_matches('=');
    unit.entries("Service")
        .filter(|(_, k, _)| *k == key)
        .map(|(_, k, v)| {
            let paths: Vec<String> =
                v.split_whitespace().map(|p| format!("-{}", p.trim_start_matches('-'))).collect();
            DropInLine::service(format!("{k}={}", paths.join(" ")))
        })
        .collect()
}

/// The comment block that belongs to the entry at `index`: the `#` lines
/// right above it, or above the entries grouped with it (`AmbientCapabilities=`
/// under `CapabilityBoundingSet=`'s comment); a section rule is not one.
fn comment_above(unit: &UnitFile, index: usize) -> String {
    let mut comment: Vec<&str> = Vec::new();
    for line in unit.lines[..index].iter().rev() {
        match line {
            Line::Entry { .. } if comment.is_empty() => {}
            Line::Other(text) if text.trim_start().starts_with('#') => {
                let text = text.trim_start().trim_start_matches('#').trim();
                if text.starts_with("---") {
                    break;
                }
                comment.push(text);
            }
            _ => break,
        }
    }
    comment.reverse();
    comment.join(" ")
}

/// Running the program under the lockdown wrapper: the two routes
/// `systemd.exec` has no directive for (code written through
/// `/proc/self/mem`, a shared page executable here and writable there) and
/// the sibling signal. None when `ExecStart=` cannot take a wrapper (an
/// `@` prefix names argv[0] apart, several commands).
pub fn lockdown_candidate(service: &UnitFile) -> Option<Candidate> {
    let starts: Vec<&str> =
        service.entries("Service").filter(|(_, k, _)| *k == "ExecStart").map(|(_, _, v)| v).collect();
    let [start] = starts.as_slice() else { return None };
    let (prefix, command) = exec_prefix(start);
    if prefix.contains(['@', '+']) || command.is_empty() {
        return None;
    }
    let libraries: Vec<String> = BINARY_LIBRARIES.iter().map(|l| format!("-{l}")).collect();
    Some(Candidate {
        label: "sandkasten-lockdown (ExecStart=)".into(),
        comment: format!(
            "The program runs under {LOCKDOWN_WRAPPER}: a Landlock ruleset (writes only beneath /tmp, \
             /var/tmp, /dev and the unit's own directories, so no code written through /proc/self/mem) \
             and a seccomp filter (no shared memory mapped executable, no tgkill of another process), \
             which systemd.exec has no directive for."
        ),
        lines: vec![
            DropInLine::service("ExecStart="),
            DropInLine::service(format!("ExecStart={prefix}{LOCKDOWN_WRAPPER} {command}")),
            DropInLine::service(format!("ExecPaths={LOCKDOWN_WRAPPER} {}", libraries.join(" "))),
        ],
    })
}

/// `unit` with `lines` applied as systemd applies a drop-in: an empty
/// value drops what came before it and stays (for a list it is a reset,
/// for `CapabilityBoundingSet=` the empty set), any other value is appended
/// (lists grow, the last of a single value wins).
pub fn apply(unit: &UnitFile, lines: &[&DropInLine]) -> UnitFile {
    let mut unit = unit.clone();
    for line in lines {
        let Some((key, value)) = line.entry.split_once('=') else { continue };
        if value.is_empty() {
            let at: Vec<usize> =
                unit.entries(&line.section).filter(|(_, k, _)| *k == key).map(|(i, _, _)| i).collect();
            unit.remove(&at);
        }
        unit.append(&line.section, key, value);
    }
    unit
}

/// The hardened unit of `variant` as one file named `name`, for the audit
/// beside the original; its socket (renamed `name`'s stem) when the variant
/// is socket-activated.
pub fn hardened(original: &Reference, variant: &Variant, name: &str) -> Result<Reference, String> {
    let stem = name.trim_end_matches(".service");
    let mut lines: Vec<DropInLine> = Vec::new();
    let socket = match &variant.socket {
        Some((_, text)) => {
            let renamed = format!("{stem}.socket");
            lines.extend(DropInLine::with_socket(&renamed));
            Some((renamed, UnitFile::parse(text)?))
        }
        None => None,
    };
    lines.extend(variant.kept().flat_map(|c| c.lines.iter().cloned()));
    let refs: Vec<&DropInLine> = lines.iter().collect();
    Ok(Reference { name: name.to_owned(), service: apply(&original.service, &refs), socket })
}

/// The guest's harden report and the audit of the original beside each
/// variant, on one release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HardenOutcome {
    /// The unit hardened.
    pub unit: String,
    /// What the guest found and kept.
    pub harden: HardenReport,
    /// The audit of the unit as given, then of each variant, in one guest.
    pub audits: Vec<AuditReport>,
}

/// Programs that run code given to them as text: in their unit, an
/// attacker's code needs no executable file.
const INTERPRETERS: [&str; 9] = ["python", "perl", "node", "ruby", "php", "bash", "sh", "lua", "java"];

impl HardenOutcome {
    /// Whether a hardened variant serves the check.
    pub fn serves(&self) -> bool {
        self.harden.variants.iter().any(|v| v.hardened.as_ref().is_some_and(|c| c.ok))
    }

    /// Whether the program runs an interpreter (the first file it executed).
    fn interpreter(&self) -> Option<String> {
        self.harden.observed.executable.iter().find_map(|path| {
            let name = path.rsplit('/').next()?;
            let stem: String = name.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            INTERPRETERS.contains(&stem.as_str()).then(|| name.to_owned())
        })
    }

    /// The report for a terminal: what the program did, each variant's
    /// kept and dropped candidates, escapes per goal before and after, and
    /// why each escape left stays.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let h = &self.harden;
        let g = &h.guest;
        let _ = writeln!(
            out,
            "harden {} on {} (systemd {}, kernel {}, {})",
            self.unit, g.release, g.systemd, g.kernel, g.accel
        );
        if let Some(check) = &h.as_given {
            let word = if check.ok { "serves" } else { "DOES NOT SERVE" };
            let _ = writeln!(out, "as given, the program {word}: {}: {}", check.check, check.detail);
        }
        let o = &h.observed;
        if !o.syscalls.is_empty() || !o.executable.is_empty() {
            let ports: Vec<String> = o.bound_ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "seen under the check: {} system calls; sockets {}; bound {}; wrote {}; {} files run or mapped executable; memory peak {}; tasks {}",
                o.syscalls.len(),
                if o.families.is_empty() { "none".to_owned() } else { o.families.join(" ") },
                if ports.is_empty() { "nothing".to_owned() } else { ports.join(" ") },
                if o.written.is_empty() { "nothing".to_owned() } else { o.written.join(" ") },
                o.executable.len(),
                o.memory_peak.map_or("unknown".to_owned(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
                o.tasks_peak.map_or("unknown".to_owned(), |t| t.to_string()),
            );
        }
        for note in &h.notes {
            let _ = writeln!(out, "{note}");
        }
        for variant in &h.variants {
            let kept = variant.kept().count();
            let serves = variant.hardened.as_ref().is_some_and(|c| c.ok);
            let _ = writeln!(
                out,
                "variant {}: kept {kept} of {} candidates ({} trials of the check, {:.0} s); the program {} under all of them",
                variant.name,
                variant.steps.len(),
                variant.trials,
                variant.seconds,
                if serves { "serves" } else { "DOES NOT SERVE" }
            );
            out += &dropped(variant, 200);
        }
        out.push_str(&self.before_after());
        for (audit, variant) in self.audits.iter().skip(1).zip(&h.variants) {
            let left: Vec<_> = audit.rows.iter().filter(|r| r.verdict == Finding::Escaped).collect();
            if left.is_empty() {
                let _ = writeln!(out, "{}: no escape left", variant.name);
                continue;
            }
            let _ = writeln!(out, "{}: {} escape(s) left, and why each stays:", variant.name, left.len());
            for row in left {
                let _ = writeln!(out, "  {} ({}): {}", row.attempt, row.goal, self.why_left(variant, row));
            }
        }
        for failure in h.failures.iter().chain(self.audits.iter().flat_map(|a| &a.failures)) {
            let _ = writeln!(out, "FAIL: {failure}");
        }
        out
    }

    /// Escapes per goal: the unit as given, then each variant.
    pub fn before_after(&self) -> String {
        let Some(first) = self.audits.first() else { return String::new() };
        let mut goals: Vec<&str> = Vec::new();
        for row in &first.rows {
            if !goals.contains(&row.goal.as_str()) {
                goals.push(&row.goal);
            }
        }
        let width = goals.iter().map(|g| g.len()).max().unwrap_or(4).max("escapes per goal".len());
        let names: Vec<&str> =
            std::iter::once("as given").chain(self.harden.variants.iter().map(|v| v.name.as_str())).collect();
        let mut out = format!("{:width$}", "escapes per goal");
        for name in &names {
            let _ = write!(out, "  {name:>16}");
        }
        out.push('\n');
        let escaped = |audit: &AuditReport, goal: Option<&str>| {
            audit
                .rows
                .iter()
                .filter(|r| r.verdict == Finding::Escaped && goal.map_or(true, |g| r.goal == g))
                .count()
        };
        for goal in goals.iter().map(|g| Some(*g)).chain([None]) {
            let _ = write!(out, "{:width$}", goal.unwrap_or("all goals"));
            for audit in self.audits.iter().take(names.len()) {
                let _ = write!(out, "  {:>16}", escaped(audit, goal));
            }
            out.push('\n');
        }
        out
    }

    /// Why an attempt still escapes in `variant`: the directive that would
    /// close it and the check failure that made harden drop it; a directive
    /// kept that does not hold it in this program's unit; or no directive
    /// measured to close it, or an interpreter's nature.
    fn why_left(&self, variant: &Variant, row: &crate::audit::Row) -> String {
        let interpreter = self.interpreter();
        let Some(fix) = &row.fix else {
            return match interpreter {
                Some(name) if row.goal == "run-unshipped-code" => format!(
                    "by nature of the program: {name} runs code given to it as text, which no ExecPaths= can tell from a payload; what it may reach stays bounded by the rest of the sandbox"
                ),
                _ => "no directive closes it in any reference unit on this release (measured)".into(),
            };
        };
        let named: Vec<&String> = fix.alone.iter().chain(&fix.any_of).collect();
        for directive in &named {
            if let Some(step) =
                variant.steps.iter().find(|s| !s.kept && same_directive(&s.candidate.label, directive))
            {
                return format!(
                    "{directive} would close it; harden dropped it because the program stopped serving: {}",
                    shorten(&telling(&step.evidence), 200)
                );
            }
        }
        let (kept, other): (Vec<&&String>, Vec<&&String>) = named
            .iter()
            .partition(|d| variant.steps.iter().any(|s| s.kept && same_directive(&s.candidate.label, d)));
        if kept.is_empty() {
            return format!("{} (measured in {}): not among harden's candidates", fix.advice(), fix.unit);
        }
        let list = |ds: &[&&String]| ds.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let mut text = if fix.alone.is_empty() {
            format!("in {} any one of {} holds it", fix.unit, list(&named.iter().collect::<Vec<_>>()))
        } else {
            format!("in {} {} holds it", fix.unit, list(&named.iter().collect::<Vec<_>>()))
        };
        text += &format!(
            "; harden kept {}, narrowed to what this program does, and that does not hold it here",
            list(&kept)
        );
        if !other.is_empty() {
            text += &format!("; {} not among harden's candidates (sandkasten's own)", list(&other));
        }
        if let Some(name) = interpreter {
            if row.goal == "run-unshipped-code" {
                text += &format!(" ({name} runs code given to it as text)");
            }
        }
        text
    }
}

/// The markers of the worked examples in the lab guides.
const EXAMPLES_START: &str = "<!-- harden examples: written by `sandkasten-vm lab --redraw` from units/lab/measured/harden-*.json, do not edit -->";
const EXAMPLES_END: &str = "<!-- end of harden examples -->";

/// Where the worked examples' outcomes are kept.
pub fn examples_dir(lab_dir: &std::path::Path) -> std::path::PathBuf {
    lab_dir.join("measured")
}

/// The committed outcomes of the worked examples (`harden-*.json`), by
/// file name.
pub fn committed_examples(lab_dir: &std::path::Path) -> Result<Vec<HardenOutcome>, String> {
    let dir = examples_dir(lab_dir);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("harden-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut outcomes = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let read: Vec<HardenOutcome> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        outcomes.extend(read);
    }
    Ok(outcomes)
}

/// The worked examples as code blocks, the same in every language.
pub fn examples_block(outcomes: &[HardenOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let g = &outcome.harden.guest;
        out += "```\n";
        let _ =
            writeln!(out, "harden {} on {} (systemd {}, {})", outcome.unit, g.release, g.systemd, g.accel);
        for variant in &outcome.harden.variants {
            let _ = writeln!(
                out,
                "{}: kept {} of {} candidates, {} trials of the check in {:.0} s",
                variant.name,
                variant.kept().count(),
                variant.steps.len(),
                variant.trials,
                variant.seconds
            );
            out += &dropped(variant, 140);
        }
        out += &outcome.before_after();
        out += "```\n";
    }
    out
}

/// One line per candidate `variant` dropped, with its evidence in at most
/// `width` characters.
fn dropped(variant: &Variant, width: usize) -> String {
    let mut out = String::new();
    for step in variant.steps.iter().filter(|s| !s.kept) {
        let _ =
            writeln!(out, "  dropped {}: {}", step.candidate.label, shorten(&telling(&step.evidence), width));
    }
    out
}

/// The lab guide `text` with its worked examples replaced by `block`.
pub fn with_examples(text: &str, block: &str) -> Result<String, String> {
    let start = text.find(EXAMPLES_START).ok_or("no harden examples marker")?;
    let end = text.find(EXAMPLES_END).ok_or("no end of harden examples marker")?;
    Ok(format!("{}{EXAMPLES_START}\n{block}{}", &text[..start], &text[end..]))
}

/// Rewrites the worked examples in both lab guides from the committed outcomes.
pub fn write_examples(lab_dir: &std::path::Path) -> anyhow::Result<()> {
    let block = examples_block(&committed_examples(lab_dir).map_err(anyhow::Error::msg)?);
    for guide in ["README.md", "README.de.md"] {
        let path = lab_dir.join(guide);
        let text = std::fs::read_to_string(&path)?;
        let written = with_examples(&text, &block).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        std::fs::write(&path, written)?;
    }
    Ok(())
}

/// Whether a candidate's label and a map's directive label name the same
/// directive (`RestrictAddressFamilies= (traced)` is `RestrictAddressFamilies=`;
/// the wrapper stands for `Environment=SANDKASTEN_LOCKDOWN=1`).
fn same_directive(candidate: &str, map_label: &str) -> bool {
    if map_label == "Environment=SANDKASTEN_LOCKDOWN=1" {
        return candidate.starts_with("sandkasten-lockdown");
    }
    let key = |label: &str| label.split(['=', ' ']).next().unwrap_or("").to_owned();
    candidate == map_label || (key(candidate) == key(map_label) && !map_label.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ablation::DirectiveEffect;

    fn unit(text: &str) -> UnitFile {
        UnitFile::parse(text).unwrap()
    }

    const REFERENCE_TEXT: &str = "[Service]\nExecStart=/x\n\n# --- identity ---\n# Nobody.\nDynamicUser=yes\n# No caps.\nCapabilityBoundingSet=\nAmbientCapabilities=\n\n# Hide /run.\nTemporaryFileSystem=/run:ro\nBindReadOnlyPaths=/run/systemd/notify -/run/systemd/journal/socket\n\n# Empty /var and /srv.\nTemporaryFileSystem=/var:ro /srv:ro\nNoExecPaths=/\nExecPaths=/x\nSystemCallFilter=read\nSystemCallFilter=~connect shutdown\nEnvironment=SANDKASTEN_LOCKDOWN=1\n";

    fn map(effective: &[&str]) -> AblationMap {
        AblationMap {
            unit: REFERENCE.into(),
            directives: effective
                .iter()
                .map(|d| DirectiveEffect {
                    directive: (*d).into(),
                    holds_alone: vec!["a.b".into()],
                    ..DirectiveEffect::default()
                })
                .collect(),
            ..AblationMap::default()
        }
    }

    #[test]
    fn candidates_are_the_reference_directives_measured_to_hold_something() {
        let reference = Reference { name: REFERENCE.into(), service: unit(REFERENCE_TEXT), socket: None };
        let maps = [map(&[
            "DynamicUser=",
            "CapabilityBoundingSet=",
            "TemporaryFileSystem=/run:ro",
            "TemporaryFileSystem=/var:ro",
            "NoExecPaths= + ExecPaths=",
        ])];
        let (candidates, denied) = reference_candidates(&reference, &maps);
        let labels: Vec<&str> = candidates.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "DynamicUser=",
                "CapabilityBoundingSet=",
                "TemporaryFileSystem=/run:ro",
                "TemporaryFileSystem=/var:ro",
                "TemporaryFileSystem=/srv:ro"
            ],
            "AmbientCapabilities= held nothing; ExecPaths= is computed; /srv is tried apart from /var"
        );
        assert_eq!(candidates[0].comment, "Nobody.", "the section rule is not a comment");
        assert_eq!(candidates[1].comment, "No caps.", "only its own group's comment");
        let run: Vec<&str> = candidates[2].lines.iter().map(|l| l.entry.as_str()).collect();
        assert_eq!(
            run,
            [
                "TemporaryFileSystem=/run:ro",
                "BindReadOnlyPaths=-/run/systemd/notify -/run/systemd/journal/socket"
            ]
        );
        assert_eq!(denied, ["connect", "shutdown"]);
    }

    #[test]
    fn the_wrapper_goes_in_front_of_the_program_behind_its_prefix() {
        let c = lockdown_candidate(&unit("[Service]\nExecStart=-/usr/bin/python3 -m http.server\n")).unwrap();
        assert_eq!(
            c.lines[1].entry,
            format!("ExecStart=-{LOCKDOWN_WRAPPER} /usr/bin/python3 -m http.server")
        );
        assert!(c.lines[2].entry.starts_with(&format!("ExecPaths={LOCKDOWN_WRAPPER} -/usr/lib/")));
        assert_eq!(lockdown_candidate(&unit("[Service]\nExecStart=@/bin/a b\n")), None);
        assert_eq!(lockdown_candidate(&unit("[Service]\nExecStart=/a\nExecStart=/b\n")), None);
    }

    #[test]
    fn a_drop_in_is_applied_as_systemd_applies_it() {
        let original = unit("[Service]\nExecStart=/a\nSystemCallFilter=read\nUser=web\n");
        let lines = [
            DropInLine::service("ExecStart="),
            DropInLine::service("ExecStart=/w /a"),
            DropInLine::service("SystemCallFilter=write"),
            DropInLine { section: "Unit".into(), entry: "After=x.socket".into() },
        ];
        let refs: Vec<&DropInLine> = lines.iter().collect();
        let merged = apply(&original, &refs);
        assert_eq!(merged.get("Service", "ExecStart"), Some("/w /a"));
        let starts = merged.entries("Service").filter(|(_, k, _)| *k == "ExecStart").count();
        assert_eq!(starts, 2, "the reset stays, the original is gone");
        let filters: Vec<&str> = merged
            .entries("Service")
            .filter(|(_, k, _)| *k == "SystemCallFilter")
            .map(|(_, _, v)| v)
            .collect();
        assert_eq!(filters, ["read", "write"]);
        assert_eq!(merged.get("Unit", "After"), Some("x.socket"));
    }

    #[test]
    fn labels_match_the_maps_directives() {
        assert!(same_directive("RestrictAddressFamilies= (traced)", "RestrictAddressFamilies="));
        assert!(same_directive("sandkasten-lockdown (ExecStart=)", "Environment=SANDKASTEN_LOCKDOWN=1"));
        assert!(same_directive("TemporaryFileSystem=/var:ro", "TemporaryFileSystem=/var:ro"));
        assert!(!same_directive("TemporaryFileSystem=/srv:ro", "TemporaryFileSystem=/var:ro"));
        assert!(!same_directive("PrivateTmp=", "PrivateNetwork="));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// What the lab guides say of the Python examples: on both releases each
    /// serves under its drop-in and leaves at most the interpreter's route,
    /// and on Debian 12 (whose systemd cannot enforce `SocketBindAllow=`) a
    /// new listening socket.
    #[test]
    fn the_python_examples_leave_at_most_the_interpreter_and_on_12_a_listener() {
        let lab = crate::payload::workspace_root().join("units/lab");
        let outcomes = committed_examples(&lab).unwrap();
        let python: Vec<_> = outcomes.iter().filter(|o| o.unit.starts_with("python-http")).collect();
        for release in ["bookworm", "trixie"] {
            let units: Vec<&str> = python
                .iter()
                .filter(|o| o.harden.guest.release == release)
                .map(|o| o.unit.as_str())
                .collect();
            assert_eq!(units.len(), 3, "the three examples measured on {release}: {units:?}");
        }
        for outcome in python {
            let after = &outcome.audits[1];
            assert!(after.checks.iter().all(|c| c.ok) && !after.checks.is_empty(), "{}", outcome.unit);
            let allowed: &[&str] = match outcome.harden.guest.release.as_str() {
                "bookworm" => &["code.interpreter", "net.listen-new"],
                _ => &["code.interpreter"],
            };
            for row in after.rows.iter().filter(|r| r.verdict == Finding::Escaped) {
                assert!(
                    allowed.contains(&row.attempt.as_str()),
                    "{} on {}: {} escapes",
                    outcome.unit,
                    outcome.harden.guest.release,
                    row.attempt
                );
            }
        }
    }

    #[test]
    fn the_worked_examples_in_the_lab_guides_are_the_committed_outcomes() {
        let lab = crate::payload::workspace_root().join("units/lab");
        let outcomes = committed_examples(&lab).unwrap();
        assert!(!outcomes.is_empty(), "no units/lab/measured/harden-*.json");
        let block = examples_block(&outcomes);
        for guide in ["README.md", "README.de.md"] {
            let text = std::fs::read_to_string(lab.join(guide)).unwrap();
            assert_eq!(
                text,
                with_examples(&text, &block).unwrap(),
                "units/lab/{guide}'s harden examples are stale: run `sandkasten-vm lab --redraw`"
            );
        }
    }
}

#[cfg(test)]
mod why_tests {
    use super::*;
    use crate::audit::{Fix, Row};
    use crate::contract::harden::{Observed, Step};

    fn step(label: &str, kept: bool, evidence: &str) -> Step {
        Step {
            candidate: Candidate { label: label.into(), ..Candidate::default() },
            kept,
            evidence: evidence.into(),
        }
    }

    fn row(attempt: &str, goal: &str, fix: Option<Fix>) -> Row {
        Row {
            attempt: attempt.into(),
            goal: goal.into(),
            verdict: Finding::Escaped,
            detail: String::new(),
            fix,
        }
    }

    /// Each escape left names its cause from what was measured: the
    /// directive harden had to drop and the failure that made it, a kept
    /// directive that does not hold it in this program's unit, or the
    /// interpreter's nature where no directive is known to hold it.
    #[test]
    fn every_escape_left_gets_the_reason_that_was_measured() {
        let outcome = HardenOutcome {
            harden: HardenReport {
                observed: Observed { executable: vec!["/usr/bin/python3.11".into()], ..Observed::default() },
                ..HardenReport::default()
            },
            ..HardenOutcome::default()
        };
        let variant = Variant {
            steps: vec![
                step("PrivateNetwork=", false, "Connection refused"),
                step("SystemCallFilter= (allow-list)", true, ""),
            ],
            ..Variant::default()
        };
        let fix = |alone: &[&str], any: &[&str]| Fix {
            unit: "sandkasten-http.service".into(),
            alone: alone.iter().map(|s| (*s).to_owned()).collect(),
            any_of: any.iter().map(|s| (*s).to_owned()).collect(),
            lines: Vec::new(),
        };
        let dropped = outcome.why_left(
            &variant,
            &row("net.tcp-lan", "reach-host-network", Some(fix(&["PrivateNetwork="], &[]))),
        );
        assert!(dropped.starts_with("PrivateNetwork= would close it; harden dropped it"), "{dropped}");
        assert!(dropped.ends_with("Connection refused"), "{dropped}");
        let layered = outcome.why_left(
            &variant,
            &row(
                "net.handover-fastopen",
                "reach-host-network",
                Some(fix(&[], &["SystemCallFilter= (allow-list)", "Mark= (socket)"])),
            ),
        );
        assert!(
            layered.contains("any one of SystemCallFilter= (allow-list), Mark= (socket) holds it"),
            "{layered}"
        );
        assert!(layered.contains("Mark= (socket) not among harden's candidates"), "{layered}");
        let interpreted = outcome.why_left(&variant, &row("code.interpreter", "run-unshipped-code", None));
        assert!(interpreted.starts_with("by nature of the program: python3.11 runs code"), "{interpreted}");
        let unknown = outcome.why_left(&variant, &row("res.disk", "exhaust-resources", None));
        assert!(unknown.starts_with("no directive closes it"), "{unknown}");
    }
}

#[cfg(test)]
mod wrapper_tests {
    use super::*;
    use crate::contract::harden::Step;

    /// The audit of a variant kept with the wrapper measures the probe
    /// under the wrapper, and an emptied bounding set stays empty.
    #[test]
    fn the_audited_variant_keeps_the_wrapper_and_the_empty_bounding_set() {
        let service = UnitFile::parse("[Service]\nExecStart=/usr/bin/python3 -m http.server 8000\n").unwrap();
        let original = Reference { name: "py.service".into(), service: service.clone(), socket: None };
        let lockdown = lockdown_candidate(&service).unwrap();
        let caps = Candidate {
            label: "CapabilityBoundingSet=".into(),
            comment: String::new(),
            lines: vec![DropInLine::service("CapabilityBoundingSet=")],
        };
        let variant = Variant {
            name: "own-port".into(),
            steps: [lockdown, caps]
                .into_iter()
                .map(|candidate| Step { candidate, kept: true, evidence: String::new() })
                .collect(),
            ..Variant::default()
        };
        let hardened = hardened(&original, &variant, "py-own-port.service").unwrap();
        assert_eq!(hardened.service.get("Service", "CapabilityBoundingSet"), Some(""));
        let staged = crate::passes::audit(&[(hardened, Vec::new())], &["a.b".to_owned()]);
        let unit = &staged.units.iter().find(|u| u.service_name.contains("audit-0")).unwrap().service;
        assert!(
            unit.contains(&format!("ExecStart={LOCKDOWN_WRAPPER} /usr/libexec/sandkasten/sandkasten-probe")),
            "{unit}"
        );
    }
}
