//! `sandkasten-vm harden`: the user's unit, its real program, and the
//! tightest drop-in under which that program still serves, found by trial
//! in the guest.
//!
//! The host sends the candidates it can know without running anything
//! (the reference sandbox's directives, each with the comment that says
//! what it stops); the guest side runs the unit as given, traces it
//! (`strace -f`) under the check, adds the directives that need what the
//! program really does (its system calls, the files it maps executable,
//! what it writes, the address families it opens, what it used), and
//! keeps each candidate only while the check still passes.

use serde::{Deserialize, Serialize};

use crate::{Functional, GuestInfo, ProgramCheck};

pub use crate::paths::LOCKDOWN_WRAPPER;

/// The file name of the drop-in harden writes (`UNIT.d/NAME`).
pub const DROP_IN: &str = "50-sandkasten-harden.conf";

/// What the guest side hardens, and with what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HardenJob {
    /// The unit as installed, and the check its program must pass. A
    /// `port` of `None` is found in the guest: the TCP port the unit's
    /// processes listen on.
    pub check: ProgramCheck,
    /// The candidates known before anything runs, in the order tried.
    pub candidates: Vec<Candidate>,
    /// The reference units' system calls denied by name; the ones the
    /// program was seen to make are left out.
    pub denied_by_name: Vec<String>,
    /// Also try the program socket-activated in a private network, on the
    /// port it binds itself (`NAME.socket`).
    pub try_socket: bool,
    /// The unit's `ExecStart=` as written (prefixes and quoting kept), for
    /// the trace to run under strace.
    #[serde(default)]
    pub exec_start: String,
}

/// One directive (or a few lines that only work together) to try.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// What the report calls it (`PrivateNetwork=`, `TemporaryFileSystem=/srv:ro`).
    pub label: String,
    /// What it stops, as the drop-in's comment says it.
    pub comment: String,
    /// The drop-in's lines, `Section` and `Key=value`.
    pub lines: Vec<DropInLine>,
}

/// One line of a drop-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropInLine {
    /// `Service`, `Unit`.
    pub section: String,
    /// `Key=value` (an empty value resets a list).
    pub entry: String,
}

impl DropInLine {
    /// A `[Service]` line.
    pub fn service(entry: impl Into<String>) -> DropInLine {
        DropInLine { section: "Service".into(), entry: entry.into() }
    }

    /// The `[Unit]` lines that start `socket` with the service and before it.
    pub fn with_socket(socket: &str) -> Vec<DropInLine> {
        ["Requires", "After"]
            .iter()
            .map(|key| DropInLine { section: "Unit".into(), entry: format!("{key}={socket}") })
            .collect()
    }
}

/// An `ExecStart=` value split into its special executable prefixes
/// (`@`, `-`, `:`, `+`, `!`: systemd.service(5)) and the command line.
pub fn exec_prefix(start: &str) -> (&str, &str) {
    let command = start.trim_start_matches(['@', '-', ':', '+', '!']);
    (&start[..start.len() - command.len()], command)
}

/// What the program did under its check, traced in the guest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The system calls it made, by name, sorted.
    pub syscalls: Vec<String>,
    /// The address families of the sockets it opened (`AF_INET`).
    pub families: Vec<String>,
    /// TCP and UDP ports it bound.
    pub bound_ports: Vec<u16>,
    /// Files it created, wrote or removed (absolute paths).
    pub written: Vec<String>,
    /// Files mapped executable or executed by its processes.
    pub executable: Vec<String>,
    /// The peak memory of its cgroup while it served (bytes).
    pub memory_peak: Option<u64>,
    /// The most tasks its cgroup held while it served.
    pub tasks_peak: Option<u64>,
}

/// One candidate tried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The candidate.
    pub candidate: Candidate,
    /// Whether the check still passed with it (kept in the drop-in).
    pub kept: bool,
    /// Why it was dropped: the check's failure, systemd's state, the
    /// journal's lines; empty when kept.
    pub evidence: String,
}

/// One way of running the program hardened: with its own port, or
/// socket-activated in a private network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// `own-port` or `socket-activated`.
    pub name: String,
    /// The socket unit this variant adds (its name and text), if any.
    pub socket: Option<(String, String)>,
    /// Each candidate, in the order tried.
    pub steps: Vec<Step>,
    /// The program's check under every kept candidate.
    pub hardened: Option<Functional>,
    /// How many times the check ran to find it, and in how many seconds.
    #[serde(default)]
    pub trials: usize,
    /// Seconds the trials took.
    #[serde(default)]
    pub seconds: f64,
    /// What the program did under its check in this variant (traced in
    /// it: a program that takes its socket makes other calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// What this variant could not do as planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Variant {
    /// The candidates kept, in order.
    pub fn kept(&self) -> impl Iterator<Item = &Candidate> {
        self.steps.iter().filter(|s| s.kept).map(|s| &s.candidate)
    }
}

/// The guest side's answer to a [`HardenJob`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HardenReport {
    /// The guest it ran in.
    pub guest: GuestInfo,
    /// The program's check in the unit as given.
    pub as_given: Option<Functional>,
    /// The port the check used.
    pub port: Option<u16>,
    /// What the program did under its check.
    pub observed: Observed,
    /// The hardened variants: own port first, then socket-activated when
    /// the program took a socket.
    pub variants: Vec<Variant>,
    /// What harden tried and left out, and why (no socket-activated
    /// variant: the program does not take a socket).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Why harden could not finish; empty when it did.
    pub failures: Vec<String>,
}

/// A drop-in of `base` lines (the harness's own, no comment) and the
/// candidates' lines, `[Unit]` before `[Service]`; with `comments`, each
/// candidate's lines follow its comment, as the reference units say what
/// each directive stops.
pub fn render_drop_in(base: &[DropInLine], candidates: &[&Candidate], comments: bool) -> String {
    let mut out = String::new();
    for section in ["Unit", "Service"] {
        let mut body = String::new();
        for line in base.iter().filter(|l| l.section == section) {
            body += &format!("{}\n", line.entry);
        }
        let mut said = "";
        for candidate in candidates {
            let lines: Vec<&DropInLine> = candidate.lines.iter().filter(|l| l.section == section).collect();
            if lines.is_empty() {
                continue;
            }
            // Candidates split from one line (`TemporaryFileSystem=`) share
            // their comment: said once.
            if comments && !candidate.comment.is_empty() && candidate.comment != said {
                body += &comment(&candidate.comment);
                said = &candidate.comment;
            }
            for line in lines {
                body += &format!("{}\n", line.entry);
            }
        }
        if !body.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out += &format!("[{section}]\n{body}");
        }
    }
    out
}

/// `text` as `# ` lines of at most 78 characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 78 && line.len() > 1 {
            out += &format!("{line}\n");
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out + &line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_keeps_the_candidates_whose_check_passed_in_order() {
        let candidate = |label: &str| Candidate { label: label.into(), ..Candidate::default() };
        let variant = Variant {
            steps: vec![
                Step { candidate: candidate("A="), kept: true, evidence: String::new() },
                Step { candidate: candidate("B="), kept: false, evidence: "404".into() },
                Step { candidate: candidate("C="), kept: true, evidence: String::new() },
            ],
            ..Variant::default()
        };
        let kept: Vec<&str> = variant.kept().map(|c| c.label.as_str()).collect();
        assert_eq!(kept, ["A=", "C="]);
    }

    #[test]
    fn prefixes_are_split_from_the_command() {
        assert_eq!(exec_prefix("-!/usr/bin/a -x"), ("-!", "/usr/bin/a -x"));
        assert_eq!(exec_prefix("/usr/bin/a"), ("", "/usr/bin/a"));
        let lines = DropInLine::with_socket("web.socket");
        let entries: Vec<&str> = lines.iter().map(|l| l.entry.as_str()).collect();
        assert_eq!(entries, ["Requires=web.socket", "After=web.socket"]);
        assert!(lines.iter().all(|l| l.section == "Unit"));
    }

    #[test]
    fn a_drop_in_says_what_each_line_stops_and_puts_units_lines_first() {
        let private = Candidate {
            label: "PrivateNetwork=".into(),
            comment: "Only lo inside.".into(),
            lines: vec![DropInLine::service("PrivateNetwork=yes")],
        };
        let base = [DropInLine { section: "Unit".into(), entry: "Requires=web.socket".into() }];
        assert_eq!(
            render_drop_in(&base, &[&private], true),
            "[Unit]\nRequires=web.socket\n\n[Service]\n# Only lo inside.\nPrivateNetwork=yes\n"
        );
        assert_eq!(render_drop_in(&[], &[&private], false), "[Service]\nPrivateNetwork=yes\n");
        let long = comment(&"word ".repeat(30));
        assert!(long.lines().all(|l| l.len() <= 78 && l.starts_with("# ")), "{long}");
    }
}
