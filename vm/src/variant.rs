//! Probe units generated from the reference units: the same sandbox with
//! `ExecStart=` swapped for the probe, and for an ablation with one
//! directive (or a named pair) taken out.
//!
//! Each pass gets a unit of its own (`sk-NAME.service` and `sk-NAME.socket`,
//! on a port of its own) instead of a drop-in on the reference unit: all of
//! them ship in the payload's overlay, so systemd loads them at boot with no
//! `daemon-reload`, and passes can run side by side. The edits are few and
//! textual, so what runs is the reference unit's own text:
//! - `ExecStart=` runs the probe; `Restart=no` (a probe that reports escapes
//!   exits non-zero, and a restart would run it again);
//!   `StandardOutput=append:` a file outside the sandbox (the verdicts);
//!   `OOMPolicy=continue` (res.memory fills `MemoryMax=`, and systemd would
//!   otherwise stop the probe with the attempt);
//! - the probe's own process calls (fork, wait, kill) join an allow-list,
//!   if one is left: no attempt tests them;
//! - the socket listens on the pass's port; its references follow the
//!   rename.

use std::fmt::Write as _;

use crate::contract::harden::{exec_prefix, LOCKDOWN_WRAPPER};
use crate::contract::Pass;

/// One line of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `[Section]`
    Section(String),
    /// `Key=value`, with the section it is in.
    Entry {
        /// The section (`Service`).
        section: String,
        /// The key (`PrivateNetwork`).
        key: String,
        /// The value, as written.
        value: String,
    },
    /// A comment or an empty line, kept as written.
    Other(String),
}

/// A parsed unit file: lines in order, comments kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The lines.
    pub lines: Vec<Line>,
}

impl UnitFile {
    /// Parses `text` (continuation lines are not used by our units and are
    /// refused, so that nothing is silently mangled).
    pub fn parse(text: &str) -> Result<UnitFile, String> {
        let mut lines = Vec::new();
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.ends_with('\\') && !line.starts_with('#') {
                return Err(format!("line {}: continuation lines are not supported", n + 1));
            }
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                lines.push(Line::Other(raw.to_owned()));
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                lines.push(Line::Section(section.clone()));
            } else if let Some((key, value)) = line.split_once('=') {
                lines.push(Line::Entry {
                    section: section.clone(),
                    key: key.trim().to_owned(),
                    value: value.trim().to_owned(),
                });
            } else {
                return Err(format!("line {}: neither a section, an entry nor a comment: {raw}", n + 1));
            }
        }
        Ok(UnitFile { lines })
    }

    /// The unit's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Section(name) => {
                    let _ = writeln!(out, "[{name}]");
                }
                Line::Entry { key, value, .. } => {
                    let _ = writeln!(out, "{key}={value}");
                }
                Line::Other(text) => {
                    let _ = writeln!(out, "{text}");
                }
            }
        }
        out
    }

    /// The entries of `section`, as (index, key, value).
    pub fn entries<'a>(&'a self, section: &'a str) -> impl Iterator<Item = (usize, &'a str, &'a str)> + 'a {
        self.lines.iter().enumerate().filter_map(move |(i, l)| match l {
            Line::Entry { section: s, key, value } if s == section => Some((i, key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// The value of the last `key` in `section`.
    pub fn get<'a>(&'a self, section: &'a str, key: &str) -> Option<&'a str> {
        self.entries(section).filter(|(_, k, _)| *k == key).map(|(_, _, v)| v).last()
    }

    /// Sets `key` in `section`: replaces its entries with one, or appends it
    /// at the section's end.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let at: Vec<usize> = self.entries(section).filter(|(_, k, _)| *k == key).map(|(i, _, _)| i).collect();
        if let Some(&first) = at.first() {
            for &i in at.iter().skip(1).rev() {
                self.lines.remove(i);
            }
            self.lines[first] =
                Line::Entry { section: section.to_owned(), key: key.to_owned(), value: value.to_owned() };
        } else {
            self.append(section, key, value);
        }
    }

    /// Appends `key=value` at the end of `section` (creating the section).
    pub fn append(&mut self, section: &str, key: &str, value: &str) {
        let entry = Line::Entry { section: section.to_owned(), key: key.to_owned(), value: value.to_owned() };
        let start = self.lines.iter().position(|l| matches!(l, Line::Section(s) if s == section));
        let Some(start) = start else {
            self.lines.push(Line::Section(section.to_owned()));
            self.lines.push(entry);
            return;
        };
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| matches!(l, Line::Section(_)))
            .map_or(self.lines.len(), |p| start + 1 + p);
        // After the section's last entry, before trailing comments.
        let last_entry = (start..end).rev().find(|&i| matches!(self.lines[i], Line::Entry { .. }));
        self.lines.insert(last_entry.map_or(start + 1, |i| i + 1), entry);
    }

    /// Removes the lines at `indices`.
    pub fn remove(&mut self, indices: &[usize]) {
        let mut sorted = indices.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for &i in sorted.iter().rev() {
            self.lines.remove(i);
        }
    }
}

/// Which file of a service/socket pair a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum In {
    /// The `.service`.
    Service,
    /// The `.socket`.
    Socket,
}

/// One thing an ablation removes: a directive's line(s), named as a reader
/// of the unit would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// `PrivateNetwork=`, `SystemCallFilter= (allow-list)`,
    /// `NoExecPaths= + ExecPaths=`, `Mark= (socket)`.
    pub label: String,
    /// The lines it removes: (file, line index).
    pub lines: Vec<(In, usize)>,
}

/// Keys of `[Service]` that run the service rather than sandbox it.
const NOT_SANDBOXING: [&str; 6] =
    ["Type", "ExecStart", "Restart", "RestartSec", "WatchdogSec", "TimeoutStopSec"];

/// Keys removed together: one would make no sense (or no difference)
/// without the other. `ExecPaths=` only carves exceptions out of
/// `NoExecPaths=`.
const PAIRS: [(&str, &str); 1] = [("NoExecPaths", "ExecPaths")];

/// The directives an ablation can remove from a reference service (and
/// its socket's `Mark=`, which arms the egress guard), in file order.
pub fn directives(service: &UnitFile, socket: Option<&UnitFile>) -> Vec<Directive> {
    let mut out: Vec<Directive> = Vec::new();
    let entries: Vec<(usize, &str, &str)> =
        service.entries("Service").filter(|(_, k, _)| !NOT_SANDBOXING.contains(k)).collect();
    let count = |key: &str| entries.iter().filter(|(_, k, _)| *k == key).count();
    for &(i, key, value) in &entries {
        let label = if let Some((first, second)) = PAIRS.iter().find(|(a, b)| *a == key || *b == key) {
            format!("{first}= + {second}=")
        } else if key == "SystemCallFilter" {
            if value.starts_with('~') {
                "SystemCallFilter=~ (deny-list)".to_owned()
            } else {
                "SystemCallFilter= (allow-list)".to_owned()
            }
        } else if key == "Environment" || count(key) > 1 {
            // Which of several: the first word of the value.
            format!("{key}={}", value.split_whitespace().next().unwrap_or(""))
        } else {
            format!("{key}=")
        };
        match out.iter_mut().find(|d| d.label == label) {
            Some(d) => d.lines.push((In::Service, i)),
            None => out.push(Directive { label, lines: vec![(In::Service, i)] }),
        }
    }
    if let Some(socket) = socket {
        for (i, key, _) in socket.entries("Socket").filter(|(_, k, _)| *k == "Mark") {
            out.push(Directive { label: format!("{key}= (socket)"), lines: vec![(In::Socket, i)] });
        }
    }
    out
}

/// The probe's command line, and what it needs beyond a server's sandbox.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Everything before `--run-id`: the binary and its fixed options.
    pub command: String,
    /// System calls the probe's runner makes (fork, wait, kill) that a
    /// server's allow-list lacks; no attempt tests any of them.
    pub infra_calls: String,
}

/// One generated probe unit (and socket).
#[derive(Debug, Clone)]
pub struct Generated {
    /// `sk-NAME.service` or `sk-NAME@.service`.
    pub service_name: String,
    /// Its text.
    pub service: String,
    /// `sk-NAME.socket`, if the reference has a socket.
    pub socket_name: Option<String>,
    /// Its text.
    pub socket: Option<String>,
}

/// Builds `pass`'s unit (and socket) from a reference service and its
/// socket: the probe in place of the server, making the pass's attempts,
/// listening on `port`, with `removed` taken out and `extra` `[Service]`
/// lines added (`Environment=…`).
pub fn generate(
    pass: &Pass,
    reference_socket: Option<(&str, &UnitFile)>,
    service: &UnitFile,
    port: u16,
    removed: &[&Directive],
    probe: &Probe,
    extra: &[(&str, &str)],
) -> Generated {
    let name = &pass.name;
    let socket_name = pass.socket();
    let mut unit = service.clone();
    let mut socket = reference_socket.map(|(_, s)| s.clone());
    let lines = |file: In| -> Vec<usize> {
        removed.iter().flat_map(|d| &d.lines).filter(|(f, _)| *f == file).map(|(_, i)| *i).collect()
    };
    unit.remove(&lines(In::Service));
    if !removed.is_empty() {
        tolerate_missing_paths(&mut unit);
    }
    if let Some(socket) = &mut socket {
        socket.remove(&lines(In::Socket));
    }
    if let Some((reference_socket, _)) = reference_socket {
        rename_references(&mut unit, reference_socket, &socket_name);
        // A service that leaves its socket to systemd's name matching
        // (web.socket starts web.service) is started here directly: the
        // socket must come up with it to hand its descriptors over.
        if !pass.template
            && !unit.get("Unit", "Requires").is_some_and(|r| r.split_whitespace().any(|u| u == socket_name))
        {
            unit.append("Unit", "Requires", &socket_name);
            unit.append("Unit", "After", &socket_name);
        }
    }
    // A program run under the lockdown wrapper: the probe runs under it too,
    // with what it installs, as the program would.
    let wrapper = unit
        .get("Service", "ExecStart")
        .map(|start| exec_prefix(start).1)
        .filter(|command| command.split_whitespace().next() == Some(LOCKDOWN_WRAPPER))
        .map_or(String::new(), |_| format!("{LOCKDOWN_WRAPPER} "));
    unit.set(
        "Service",
        "ExecStart",
        &format!("{wrapper}{} --run-id {name} --only {}", probe.command, pass.attempts.join(",")),
    );
    unit.set("Service", "Restart", "no");
    unit.set("Service", "StandardOutput", &format!("append:{}", pass.output()));
    // The probe's own complaints go to the journal, not into the verdicts.
    unit.set("Service", "StandardError", "journal");
    unit.set("Service", "OOMPolicy", "continue");
    if unit
        .entries("Service")
        .any(|(_, k, v)| k == "SystemCallFilter" && !v.is_empty() && !v.starts_with('~'))
    {
        unit.append("Service", "SystemCallFilter", &probe.infra_calls);
    }
    for (key, value) in extra {
        unit.append("Service", key, value);
    }
    let socket = socket.map(|mut s| {
        listen_on(&mut s, port);
        s.render()
    });
    Generated {
        service_name: pass.unit(),
        service: unit.render(),
        socket_name: socket.as_ref().map(|_| socket_name),
        socket,
    }
}

/// Path lists whose paths may be gone once other directives are removed
/// (`/var/tmp` exists in an empty `/var` only by `PrivateTmp=`).
const PATH_LISTS: [&str; 4] = ["NoExecPaths", "ExecPaths", "ReadOnlyPaths", "InaccessiblePaths"];

/// Marks every path of [`PATH_LISTS`] `-` (ignored when missing), so that
/// an ablation measures the directives that remain instead of failing to
/// start. Nothing that exists is treated differently.
fn tolerate_missing_paths(unit: &mut UnitFile) {
    for line in &mut unit.lines {
        if let Line::Entry { section, key, value } = line {
            if section == "Service" && PATH_LISTS.contains(&key.as_str()) {
                *value = value
                    .split_whitespace()
                    .map(|p| if p.starts_with('-') { p.to_owned() } else { format!("-{p}") })
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
    }
}

/// Points `Requires=`, `After=` and friends at the generated socket.
fn rename_references(unit: &mut UnitFile, from: &str, to: &str) {
    for line in &mut unit.lines {
        if let Line::Entry { section, value, .. } = line {
            if section == "Unit" {
                *value = value
                    .split_whitespace()
                    .map(|w| if w == from { to } else { w })
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
    }
}

/// Moves every `Listen*=` of a socket to `port` (same address form).
fn listen_on(socket: &mut UnitFile, port: u16) {
    for line in &mut socket.lines {
        if let Line::Entry { section, key, value } = line {
            if section == "Socket" && matches!(key.as_str(), "ListenStream" | "ListenDatagram") {
                *value = match value.rsplit_once(':') {
                    Some((addr, _)) => format!("{addr}:{port}"),
                    None => port.to_string(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "# top\n[Unit]\nRequires=sandkasten-x.socket\nAfter=sandkasten-x.socket\n\n[Service]\nType=notify\nExecStart=/usr/libexec/sandkasten/x --flag\nRestart=on-failure\n# why\nDynamicUser=yes\nPrivateNetwork=yes\nTemporaryFileSystem=/run:ro\nTemporaryFileSystem=/var:ro /srv:ro\nNoExecPaths=/ /tmp\nExecPaths=/usr/libexec/sandkasten\nEnvironment=SANDKASTEN_LOCKDOWN=1\nSystemCallFilter=read write\nSystemCallFilter=~connect\n# trailing\n";
    const SOCKET: &str = "[Unit]\nRequires=sandkasten-egress.service\n[Socket]\nMark=29547\nListenStream=80\nListenDatagram=127.0.0.1:7\n";

    fn pass(name: &str, attempts: &[&str]) -> Pass {
        Pass {
            name: name.into(),
            attempts: attempts.iter().map(|a| (*a).to_owned()).collect(),
            ..Pass::default()
        }
    }

    fn probe() -> Probe {
        Probe { command: "/p --json".into(), infra_calls: "wait4 kill".into() }
    }

    #[test]
    fn parse_and_render_keep_the_text() {
        let unit = UnitFile::parse(SERVICE).unwrap();
        assert_eq!(unit.render(), SERVICE);
        assert!(UnitFile::parse("[Service]\nExecStart=a \\\n b\n").is_err());
        assert!(UnitFile::parse("[Service]\nnonsense\n").is_err());
    }

    #[test]
    fn directives_name_what_a_reader_sees_and_pair_exec_paths() {
        let service = UnitFile::parse(SERVICE).unwrap();
        let socket = UnitFile::parse(SOCKET).unwrap();
        let labels: Vec<String> = directives(&service, Some(&socket)).into_iter().map(|d| d.label).collect();
        assert_eq!(
            labels,
            [
                "DynamicUser=",
                "PrivateNetwork=",
                "TemporaryFileSystem=/run:ro",
                "TemporaryFileSystem=/var:ro",
                "NoExecPaths= + ExecPaths=",
                "Environment=SANDKASTEN_LOCKDOWN=1",
                "SystemCallFilter= (allow-list)",
                "SystemCallFilter=~ (deny-list)",
                "Mark= (socket)",
            ]
        );
    }

    #[test]
    fn a_generated_unit_is_the_reference_with_the_probe_and_the_removals() {
        let service = UnitFile::parse(SERVICE).unwrap();
        let socket = UnitFile::parse(SOCKET).unwrap();
        let all = directives(&service, Some(&socket));
        let exec = all.iter().find(|d| d.label.starts_with("NoExecPaths")).unwrap();
        let mark = all.iter().find(|d| d.label.starts_with("Mark")).unwrap();
        let g = generate(
            &pass("abl-1", &["a.b", "c.d"]),
            Some(("sandkasten-x.socket", &socket)),
            &service,
            20001,
            &[exec, mark],
            &probe(),
            &[("Environment", "SANDKASTEN_PROBE_SIBLINGS=2")],
        );
        assert_eq!(g.service_name, "sk-abl-1.service");
        assert_eq!(g.socket_name.as_deref(), Some("sk-abl-1.socket"));
        let s = &g.service;
        assert!(s.contains("Requires=sk-abl-1.socket\nAfter=sk-abl-1.socket\n"), "{s}");
        assert!(s.contains("ExecStart=/p --json --run-id abl-1 --only a.b,c.d\n"), "{s}");
        assert!(s.contains("Restart=no\n") && !s.contains("on-failure"), "{s}");
        assert!(!s.contains("NoExecPaths") && !s.contains("ExecPaths=/usr"), "{s}");
        assert!(
            s.contains(
                "SystemCallFilter=~connect\nStandardOutput=append:/run/sandkasten-matrix/abl-1.jsonl\n"
            ),
            "{s}"
        );
        assert!(s.contains("OOMPolicy=continue\nSystemCallFilter=wait4 kill\n"), "{s}");
        assert!(s.contains("SANDKASTEN_PROBE_SIBLINGS=2\n# trailing"), "{s}");
        assert!(s.contains("DynamicUser=yes\nPrivateNetwork=yes\n"), "the rest is untouched: {s}");
        let sock = g.socket.unwrap();
        assert!(!sock.contains("Mark="), "{sock}");
        assert!(sock.contains("ListenStream=20001\nListenDatagram=127.0.0.1:20001\n"), "{sock}");
    }

    /// harden's drop-in runs a program under the lockdown wrapper; the audit
    /// measures the probe under the same wrapper, not a bare probe.
    #[test]
    fn a_program_under_the_lockdown_wrapper_gets_a_probe_under_it() {
        let wrapped = SERVICE.replace("ExecStart=", &format!("ExecStart=-{LOCKDOWN_WRAPPER} "));
        let service = UnitFile::parse(&wrapped).unwrap();
        let g = generate(&pass("audit-1", &["a.b"]), None, &service, 20001, &[], &probe(), &[]);
        assert!(
            g.service.contains(&format!("ExecStart={LOCKDOWN_WRAPPER} /p --json --run-id audit-1")),
            "{}",
            g.service
        );
        let plain = generate(
            &pass("audit-0", &["a.b"]),
            None,
            &UnitFile::parse(SERVICE).unwrap(),
            1,
            &[],
            &probe(),
            &[],
        );
        assert!(plain.service.contains("ExecStart=/p --json"), "{}", plain.service);
    }

    #[test]
    fn without_an_allow_list_the_probe_adds_none() {
        let service = UnitFile::parse(SERVICE).unwrap();
        let all = directives(&service, None);
        let allow = all.iter().find(|d| d.label == "SystemCallFilter= (allow-list)").unwrap();
        let g = generate(&pass("a", &[]), None, &service, 1, &[allow], &probe(), &[]);
        assert!(
            !g.service.contains("wait4"),
            "an allow-list of the probe's calls alone would block everything"
        );
        assert!(g.service.contains("SystemCallFilter=~connect"));
        assert!(g.socket.is_none());
    }
}
