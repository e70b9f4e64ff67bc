//! What an attempt observed ([`Outcome`]) and what the probe concludes from
//! it ([`Verdict`]).
//!
//! The split is the point of the probe: an attempt only reports facts (the
//! errno it got, the thing it managed to do). Whether that fact counts as
//! `blocked` is decided by the runner against the attempt's list of accepted
//! outcomes, so an unexpected errno can never be mistaken for protection.

use serde::{Deserialize, Serialize};

use crate::sys::Errno;

/// Why an attempt could not be made here. Kept apart from `error` because an
/// `unsupported` attempt says something about the machine, not the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unsupported {
    /// The kernel lacks the feature (a syscall returns ENOSYS on the host,
    /// a device or ABI does not exist, the host's root lacks a capability).
    Kernel,
    /// The kernel has the feature but its build or boot configuration
    /// refuses it to everyone, root included (sid's kernel forces writes
    /// through /proc/PID/mem only for a tracer): a default, not a sandbox.
    KernelPolicy,
    /// systemd was built without the BPF framework, so the directive that
    /// should stop the attempt is parsed but not enforced.
    SystemdBpf,
    /// The attempt has no target here (no disk, no D-Bus, no content dir).
    NotApplicable,
    /// The attempt needs the canary (`--canary FILE`) and none was given.
    NoCanary,
}

impl Unsupported {
    /// The kebab-case name used in JSON and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Unsupported::Kernel => "kernel",
            Unsupported::KernelPolicy => "kernel-policy",
            Unsupported::SystemdBpf => "systemd-bpf",
            Unsupported::NotApplicable => "not-applicable",
            Unsupported::NoCanary => "no-canary",
        }
    }
}

/// The raw observation one attempt makes, sent from the attempt's forked
/// child to the runner as one JSON line on a pipe (printed on stdout by
/// `run-one`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// The attempt did what it wanted.
    Escaped {
        /// What it managed, with the evidence.
        detail: String,
    },
    /// The attempt was stopped; `outcome` is an errno name (`EPERM`) or a
    /// named observation (`empty`, `no-reply`, `all-zero`, …).
    Stopped {
        /// Errno name or named observation, compared with the accepted list.
        outcome: String,
        /// What was tried and what happened.
        detail: String,
    },
    /// A helper process the attempt started was killed by a signal (the
    /// attempt forks when a signal must not end its own report, e.g. the
    /// x32 probe, where SIGSEGV means "no such ABI" but SIGSYS a filter).
    Killed {
        /// Signal name (`SIGSYS`).
        signal: String,
        /// Which helper and why.
        detail: String,
    },
    /// The attempt cannot be made here.
    Unsupported {
        /// Which kind of reason.
        reason: Unsupported,
        /// The reason in words.
        detail: String,
    },
    /// The probe itself failed (bad state file, no writable directory for
    /// its own scratch files, an errno that cannot be attributed).
    Failed {
        /// What went wrong.
        detail: String,
    },
}

impl Outcome {
    /// An escape with its evidence.
    pub fn escaped(detail: impl Into<String>) -> Outcome {
        Outcome::Escaped { detail: detail.into() }
    }

    /// Stopped by an errno.
    pub fn errno(e: Errno, what: impl Into<String>) -> Outcome {
        Outcome::Stopped { outcome: e.name(), detail: format!("{}: {e}", what.into()) }
    }

    /// Stopped with a named observation instead of an errno.
    pub fn stopped(outcome: &str, detail: impl Into<String>) -> Outcome {
        Outcome::Stopped { outcome: outcome.to_owned(), detail: detail.into() }
    }

    /// Cannot be made here.
    pub fn unsupported(reason: Unsupported, detail: impl Into<String>) -> Outcome {
        Outcome::Unsupported { reason, detail: detail.into() }
    }

    /// The probe failed.
    pub fn failed(detail: impl Into<String>) -> Outcome {
        Outcome::Failed { detail: detail.into() }
    }
}

/// The probe's conclusion for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    /// Stopped with an accepted errno or observation.
    Blocked,
    /// Killed by an accepted signal (SIGSYS from seccomp, SIGKILL from the
    /// OOM killer).
    Killed,
    /// The attempt succeeded.
    Escaped,
    /// The attempt cannot be made here (see `reason`).
    Unsupported,
    /// Anything else: the probe failed, or the attempt was stopped in a way
    /// the catalogue does not accept (so we do not know what stopped it).
    Error,
}

impl VerdictKind {
    /// The lowercase name used in JSON and in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Blocked => "blocked",
            VerdictKind::Killed => "killed",
            VerdictKind::Escaped => "escaped",
            VerdictKind::Unsupported => "unsupported",
            VerdictKind::Error => "error",
        }
    }
}

/// One line of the probe's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Catalogue id of the route (`net.tcp-loopback`).
    pub id: String,
    /// The goal the route leads to (`reach-host-network`).
    #[serde(default)]
    pub goal: String,
    /// The directive that should stop the attempt.
    pub directive: String,
    /// The conclusion.
    pub verdict: VerdictKind,
    /// The errno, signal or named observation, when there was one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<String>,
    /// The outcomes that count as blocked for this attempt.
    pub accepted: Vec<String>,
    /// Why an attempt is `unsupported`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<Unsupported>,
    /// Evidence in words.
    pub detail: String,
    /// Wall time of the attempt's child (from the fork to the reap), in
    /// milliseconds.
    pub elapsed_ms: u64,
}

/// How the attempt's forked child ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildResult {
    /// The child reported an outcome.
    Reported(Outcome),
    /// The child was killed by a signal before reporting.
    Signaled(i32),
    /// The child overran its deadline and the runner killed it.
    TimedOut(u64),
    /// The child ended without a readable report.
    NoReport(String),
}

/// Classifies a child's result against the attempt's accepted outcomes.
///
/// SECURITY: this is the only place a result becomes `blocked` or `killed`,
/// and only through an exact match with `accepted`. Every other stop is an
/// `error`, so a probe broken by something the catalogue did not foresee
/// shows up instead of passing.
pub fn classify(
    accepted: &[&str],
    result: ChildResult,
) -> (VerdictKind, Option<String>, Option<Unsupported>, String) {
    let list = accepted.join(", ");
    match result {
        ChildResult::Reported(Outcome::Escaped { detail }) => (VerdictKind::Escaped, None, None, detail),
        ChildResult::Reported(Outcome::Stopped { outcome, detail }) => {
            if accepted.contains(&outcome.as_str()) {
                (VerdictKind::Blocked, Some(outcome), None, detail)
            } else {
                let detail =
                    format!("stopped by {outcome}, which is not an accepted outcome ({list}): {detail}");
                (VerdictKind::Error, Some(outcome), None, detail)
            }
        }
        ChildResult::Reported(Outcome::Killed { signal, detail }) => {
            if accepted.contains(&signal.as_str()) {
                (VerdictKind::Killed, Some(signal), None, detail)
            } else {
                let detail =
                    format!("killed by {signal}, which is not an accepted outcome ({list}): {detail}");
                (VerdictKind::Error, Some(signal), None, detail)
            }
        }
        ChildResult::Reported(Outcome::Unsupported { reason, detail }) => {
            (VerdictKind::Unsupported, None, Some(reason), detail)
        }
        ChildResult::Reported(Outcome::Failed { detail }) => {
            (VerdictKind::Error, None, None, format!("probe failure: {detail}"))
        }
        ChildResult::Signaled(sig) => {
            let name = crate::sys::signal_name(sig);
            if accepted.contains(&name.as_str()) {
                let detail = format!("the attempt's process was killed by {name}");
                (VerdictKind::Killed, Some(name), None, detail)
            } else {
                let detail = format!("killed by {name}, which is not an accepted outcome ({list})");
                (VerdictKind::Error, Some(name), None, detail)
            }
        }
        ChildResult::TimedOut(ms) => {
            (VerdictKind::Error, None, None, format!("no result within the {ms} ms deadline; killed"))
        }
        ChildResult::NoReport(why) => {
            (VerdictKind::Error, None, None, format!("no report from the attempt: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_names_are_the_json_names() {
        for u in [
            Unsupported::Kernel,
            Unsupported::KernelPolicy,
            Unsupported::SystemdBpf,
            Unsupported::NotApplicable,
            Unsupported::NoCanary,
        ] {
            assert_eq!(serde_json::to_value(u).unwrap(), u.as_str());
        }
    }

    #[test]
    fn unaccepted_errno_is_an_error_not_blocked() {
        let r = ChildResult::Reported(Outcome::stopped("EACCES", "open"));
        assert_eq!(classify(&["EROFS"], r).0, VerdictKind::Error);
        let r = ChildResult::Reported(Outcome::stopped("EROFS", "open"));
        assert_eq!(classify(&["EROFS"], r).0, VerdictKind::Blocked);
    }

    #[test]
    fn signals_count_only_when_accepted() {
        assert_eq!(
            classify(&["EPERM", "SIGSYS"], ChildResult::Signaled(libc::SIGSYS)).0,
            VerdictKind::Killed
        );
        assert_eq!(classify(&["EPERM"], ChildResult::Signaled(libc::SIGSYS)).0, VerdictKind::Error);
        assert_eq!(classify(&["SIGKILL"], ChildResult::TimedOut(10)).0, VerdictKind::Error);
    }
}
