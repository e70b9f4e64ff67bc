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
/// The drop-in of the trace run (after harden's own, so that it wins).
pub const TRACE_DROP_IN: &str = "90-sandkasten-trace.conf";
/// Where harden's drop-ins and the socket of its socket-activated variant
/// go: runtime units, gone at the next boot.
pub const RUNTIME_UNITS: &str = "/run/systemd/system";
/// The harness's own files where harden runs: the trace, the wrapper's.
pub const WORK: &str = "/run/sandkasten-harden";

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
    /// The unit's `ExecStartPre=` lines as written: traced too (a
    /// configuration test before the start runs under the same filter).
    #[serde(default)]
    pub exec_start_pre: Vec<String>,
    /// Every program the unit's `Exec*=` lines name (`ExecStartPre=`'s
    /// check, `ExecStop=`'s helper): `ExecPaths=` must let each run.
    #[serde(default)]
    pub programs: Vec<String>,
    /// The job runs on the admin's own machine (`harden --host`), not in
    /// a guest: the users are the host's (no `systemd-sysusers`).
    #[serde(default)]
    pub on_host: bool,
}

/// The capabilities systemd 252 and later know (`capability.h` of Linux 5.9
/// on), in the kernel's order: when a program breaks without any, harden
/// asks which of these it needs.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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

/// The telling part of a trial's evidence (`WHY; UNIT: STATE; its
/// journal: LINE | LINE`), in a line: how the check failed, and the
/// program's own word in the journal rather than systemd's about it (the
/// last line that names an error, not only a failure: nginx's
/// `open() "/run/nginx.pid" failed (30: Read-only file system)` rather
/// than its `configuration file test failed` after it; else its last line).
/// The report keeps it all.
pub fn telling(evidence: &str) -> String {
    let (why, rest) = evidence.split_once("; ").unwrap_or((evidence, ""));
    // A check that timed out is named by its whole command line: say only that.
    let why = match why.find(": no answer in ") {
        Some(at) => &why[at + 2..],
        None if why.starts_with("systemctl start") => "it did not start",
        None => why.split(" | ").next().unwrap_or(why).trim_start_matches("the check exited with "),
    };
    let why = why.trim_end_matches([':', ' ']);
    let journal = rest.split_once("its journal: ").map_or("", |(_, j)| j);
    let programs: Vec<&str> =
        journal.split(" | ").filter(|l| !l.trim().is_empty() && !is_systemds(l)).collect();
    let names_error = |line: &&&str| {
        let line = line.to_lowercase();
        ["error", "denied", "not permitted", "no such", "read-only", "not supported", "invalid", "not found"]
            .iter()
            .any(|e| line.contains(e))
    };
    match programs.iter().rev().find(names_error).or(programs.last()) {
        Some(said) => format!("{why} (journal: {said})"),
        None => why.to_owned(),
    }
}

/// Whether a journal line is systemd's about the unit, not the program's.
fn is_systemds(line: &str) -> bool {
    let about_unit =
        line.split_whitespace().next().is_some_and(|w| w.ends_with(".service:") || w.ends_with(".socket:"));
    about_unit
        || [
            "Started ",
            "Stopped ",
            "Stopping ",
            "Starting ",
            "Deactivated",
            "Scheduled restart",
            "Failed ",
            "Found pre-existing ",
        ]
        .iter()
        .any(|p| line.starts_with(p))
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

    #[test]
    fn evidence_is_the_check_and_the_programs_own_word() {
        let evidence = "the check exited with exit status: 1: ; web.service: Result=success; its journal: Started web.service - Web. | 127.0.0.1 - - code 404, message File not found | web.service: Deactivated successfully.";
        assert_eq!(
            telling(evidence),
            "exit status: 1 (journal: 127.0.0.1 - - code 404, message File not found)"
        );
        let silent = "bash -c exec 3<>/dev/tcp/127.0.0.1/$PORT | grep x: no answer in 10 s; web.service: Result=success";
        assert_eq!(telling(silent), "no answer in 10 s");
        let refused = "the check exited with exit status: 1: bash: connect: Connection refused | bash: line 1: x; web.service: Result=success; its journal: Started web.service - Web.";
        assert_eq!(telling(refused), "exit status: 1: bash: connect: Connection refused");
        let start = "systemctl start nginx.service failed: Job for nginx.service failed because the control \
                     process exited with error code.\nSee \"systemctl status nginx.service\" for details.; \
                     nginx.service: Result=exit-code ActiveState=failed; its journal: Starting nginx.service - \
                     A web server... | [emerg] 709#709: open() \"/run/nginx.pid\" failed (30: Read-only file \
                     system) | nginx: configuration file /etc/nginx/nginx.conf test failed | nginx.service: Control \
                     process exited, code=exited";
        assert_eq!(
            telling(start),
            "it did not start (journal: [emerg] 709#709: open() \"/run/nginx.pid\" failed (30: Read-only file system))"
        );
    }
}
