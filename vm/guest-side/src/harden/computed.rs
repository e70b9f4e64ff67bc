//! The directives that need what the program really does, computed from
//! what it did under its check instead of guessed: each one's comment says
//! what it stops and where its value came from.

use sandkasten_vm_contract::harden::{Candidate, DropInLine, Observed};

/// Places every service may write without a directive: private or
/// virtual, never the host's disk.
const ALWAYS_WRITABLE: [&str; 5] = ["/tmp/", "/var/tmp/", "/dev/", "/proc/", "/sys/"];

/// The label of the candidate that lets the program write where it did.
pub const WRITABLE: &str = "where it writes";

/// How much above the measured peak `MemoryMax=` and `TasksMax=` sit, and
/// their floors: a check is one client, a real load is more.
const MEMORY_MARGIN: u64 = 4;
const MEMORY_FLOOR: u64 = 64 << 20;
const TASKS_MARGIN: u64 = 4;
const TASKS_FLOOR: u64 = 16;

/// Calls glibc falls back to when the sandbox answers ENOSYS where the
/// trace saw the first succeed: systemd's `RestrictNamespaces=` makes
/// `clone3` ENOSYS (its flags cannot be inspected), so threads come from
/// `clone`; a trace of the unit as given never shows it.
const FALLBACKS: [(&str, &str); 2] = [("clone3", "clone"), ("faccessat2", "faccessat")];

/// The computed candidates, in the order tried. `own_port`: the program
/// binds its own port (its address families and ports are bounded);
/// `wrapper_calls`: the lockdown wrapper's own system calls, which an
/// allow-list must let through when the wrapper runs first.
pub fn candidates(
    observed: &Observed,
    wrapper_calls: &[String],
    denied_by_name: &[String],
    own_port: bool,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    out.extend(writable(&observed.written));
    if !observed.executable.is_empty() {
        out.push(Candidate {
            label: "NoExecPaths= + ExecPaths=".into(),
            comment: "Nothing may be executed or mapped executable but the files the program mapped \
                      under the check (its program, interpreter, libraries, modules): no written-then-run \
                      payload, no other program of the host."
                .into(),
            lines: vec![
                DropInLine::service("NoExecPaths=/ /tmp /var/tmp"),
                DropInLine::service(format!("ExecPaths={}", observed.executable.join(" "))),
            ],
        });
    }
    if own_port {
        let families =
            if observed.families.is_empty() { "none".to_owned() } else { observed.families.join(" ") };
        out.push(Candidate {
            label: "RestrictAddressFamilies= (traced)".into(),
            comment: "socket(2) only for the address families the program opened under the check.".into(),
            // The unit's own list first reset: several lines are a union.
            lines: vec![
                DropInLine::service("RestrictAddressFamilies="),
                DropInLine::service(format!("RestrictAddressFamilies={families}")),
            ],
        });
        if !observed.bound_ports.is_empty() {
            let ports: Vec<String> = observed.bound_ports.iter().map(u16::to_string).collect();
            out.push(Candidate {
                label: "SocketBindAllow= + SocketBindDeny=".into(),
                comment: "bind(2) only to the port(s) the program bound under the check (needs systemd \
                          with the BPF framework)."
                    .into(),
                lines: vec![
                    DropInLine::service(format!("SocketBindAllow={}", ports.join(" "))),
                    DropInLine::service("SocketBindDeny=any"),
                ],
            });
        }
    }
    if !observed.syscalls.is_empty() {
        let mut calls: Vec<String> = observed.syscalls.iter().chain(wrapper_calls).cloned().collect();
        calls.extend(
            FALLBACKS
                .iter()
                .filter(|(call, _)| observed.syscalls.contains(&(*call).to_owned()))
                .map(|(_, f)| (*f).to_owned()),
        );
        calls.sort();
        calls.dedup();
        out.push(Candidate {
            label: "SystemCallFilter= (allow-list)".into(),
            comment: format!(
                "Only the {} system calls the program made under the check (strace -f, this release), \
                 and the lockdown wrapper's; systemd adds @default. A call outside the list fails with \
                 EPERM. A code path the check does not reach may need more: trace it the same way.",
                observed.syscalls.len()
            ),
            // The unit's own lists first reset: allow-lists are a union.
            lines: vec![
                DropInLine::service("SystemCallErrorNumber=EPERM"),
                DropInLine::service("SystemCallFilter="),
                DropInLine::service(format!("SystemCallFilter={}", calls.join(" "))),
            ],
        });
    }
    // The reference units' deny-list: what the program never called in one
    // candidate, each call it did make in one of its own (a server may make
    // a call it does not need: hyper's shutdown fails with EPERM in the
    // reference units, and the server serves on).
    let (called, never): (Vec<&String>, Vec<&String>) =
        denied_by_name.iter().partition(|c| observed.syscalls.contains(c));
    if !never.is_empty() {
        out.push(Candidate {
            label: "SystemCallFilter=~ (deny-list)".into(),
            comment: "Denied by name should anyone widen the list: what the reference units deny \
                      (io_uring, userfaultfd, keyrings, re-aiming a socket, running written code) and \
                      the program never called."
                .into(),
            lines: vec![DropInLine::service(format!(
                "SystemCallFilter=~{}",
                never.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
            ))],
        });
    }
    for call in called {
        out.push(Candidate {
            label: format!("SystemCallFilter=~{call}"),
            comment: format!(
                "{call} is denied in the reference units; the program called it under the check and \
                 serves without it."
            ),
            lines: vec![DropInLine::service(format!("SystemCallFilter=~{call}"))],
        });
    }
    if let Some(peak) = observed.memory_peak {
        let max = (peak * MEMORY_MARGIN).max(MEMORY_FLOOR).div_ceil(16 << 20) * 16;
        out.push(Candidate {
            label: "MemoryMax=".into(),
            comment: format!(
                "Memory bounded: {MEMORY_MARGIN}x the peak under the check ({:.1} MiB), at least {} MiB. \
                 Size it to your load's peak plus a margin.",
                peak as f64 / f64::from(1 << 20),
                MEMORY_FLOOR >> 20
            ),
            lines: vec![DropInLine::service(format!("MemoryMax={max}M"))],
        });
    }
    if let Some(peak) = observed.tasks_peak {
        let max = (peak * TASKS_MARGIN).max(TASKS_FLOOR);
        out.push(Candidate {
            label: "TasksMax=".into(),
            comment: format!(
                "No fork bomb: {TASKS_MARGIN}x the most tasks seen under the check ({peak}), at least \
                 {TASKS_FLOOR}. Size it to your load's threads and workers."
            ),
            lines: vec![DropInLine::service(format!("TasksMax={max}"))],
        });
    }
    out
}

/// Where the program wrote, as the directives that let it: a directory of
/// its own under /var/lib, /var/cache, /var/log or /run (made by systemd,
/// owned by the unit's user, dynamic or not), else the written file's
/// directory.
fn writable(written: &[String]) -> Option<Candidate> {
    let mut lines: Vec<String> = Vec::new();
    for path in written.iter().filter(|p| !ALWAYS_WRITABLE.iter().any(|a| p.starts_with(a))) {
        let own = [
            ("/var/lib/", "StateDirectory"),
            ("/var/cache/", "CacheDirectory"),
            ("/var/log/", "LogsDirectory"),
            ("/run/", "RuntimeDirectory"),
        ]
        .iter()
        .find_map(|(root, key)| {
            let name = path.strip_prefix(root)?.split('/').next().filter(|n| !n.is_empty())?;
            // A file directly beneath the root has no directory of its own.
            path.strip_prefix(root)?.contains('/').then(|| format!("{key}={name}"))
        });
        let line = own.unwrap_or_else(|| {
            let dir = path.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
            format!("ReadWritePaths={dir}")
        });
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    (!lines.is_empty()).then(|| Candidate {
        label: WRITABLE.into(),
        comment: "The places the program wrote under the check, and no others: its own directories \
                  (made by systemd for the unit's user) or the directories of the files it wrote."
            .into(),
        lines: lines.into_iter().map(DropInLine::service).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(candidates: &[Candidate]) -> Vec<String> {
        candidates.iter().flat_map(|c| &c.lines).map(|l| l.entry.clone()).collect()
    }

    #[test]
    fn computed_directives_follow_what_the_program_did() {
        let observed = Observed {
            syscalls: vec!["accept4".into(), "clone3".into(), "connect".into(), "read".into()],
            families: vec!["AF_INET6".into()],
            bound_ports: vec![8000],
            written: vec!["/var/lib/web/state.json".into(), "/tmp/x".into(), "/srv/data/a".into()],
            executable: vec!["/usr/bin/python3.11".into(), "/usr/lib/x86_64-linux-gnu/libc.so.6".into()],
            memory_peak: Some(10 << 20),
            tasks_peak: Some(2),
        };
        let denied = ["connect".to_owned(), "shutdown".to_owned()];
        let lines = entries(&candidates(&observed, &["seccomp".into()], &denied, true));
        assert_eq!(
            lines,
            [
                "StateDirectory=web",
                "ReadWritePaths=/srv/data",
                "NoExecPaths=/ /tmp /var/tmp",
                "ExecPaths=/usr/bin/python3.11 /usr/lib/x86_64-linux-gnu/libc.so.6",
                "RestrictAddressFamilies=",
                "RestrictAddressFamilies=AF_INET6",
                "SocketBindAllow=8000",
                "SocketBindDeny=any",
                "SystemCallErrorNumber=EPERM",
                "SystemCallFilter=",
                "SystemCallFilter=accept4 clone clone3 connect read seccomp",
                "SystemCallFilter=~shutdown",
                "SystemCallFilter=~connect",
                "MemoryMax=64M",
                "TasksMax=16",
            ],
            "/tmp is private anyway; a call the program makes is a candidate of its own"
        );
        let socket_activated = entries(&candidates(&observed, &[], &denied, false));
        assert!(!socket_activated
            .iter()
            .any(|l| l.starts_with("RestrictAddressFamilies=") || l.starts_with("SocketBind")));
        let big = Observed { memory_peak: Some(100 << 20), tasks_peak: Some(9), ..Observed::default() };
        assert_eq!(entries(&candidates(&big, &[], &[], false)), ["MemoryMax=400M", "TasksMax=36"]);
    }
}
