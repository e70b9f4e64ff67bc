//! The one thing a boot asks of the guest side, typed: the host writes a
//! [`GuestJob`] to [`crate::paths::JOB`], and the payload's `run` script
//! ([`RUN_SCRIPT`]) hands it to `sandkasten-vm guest`. One protocol for
//! every command, instead of a hidden subcommand each and dotfiles beside
//! a shell script.

use serde::{Deserialize, Serialize};

use crate::harden::HardenJob;
use crate::Plan;

/// What the guest side does in one boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum GuestJob {
    /// Carry out a plan (matrix, ablation, enforcement, audit, lab); the
    /// answer is one [`crate::GuestEvent`] per line.
    Plan {
        /// The passes, their units installed through the payload's overlay.
        plan: Plan,
    },
    /// The sandbox's own cost; the answer is one
    /// [`crate::bench::BenchReport`].
    Bench {
        /// Rounds of each scenario.
        rounds: usize,
        /// Seconds of each load.
        duration_s: f64,
    },
    /// The http socket through crashes, hangs, restarts and starvation;
    /// the answer is one [`crate::reliability::ReliabilityReport`].
    Reliability,
    /// `exec --unit`: a command inside exactly the sandbox of a unit the
    /// payload's overlay installed; the answer is the command's own output
    /// and exit status.
    InUnit {
        /// The unit (`lab1.service`, `sandkasten-echo-inetd@.service`).
        unit: String,
        /// The command and its arguments.
        command: Vec<String>,
    },
    /// `harden`: the user's unit, traced under its check, and the tightest
    /// drop-in under which its program still serves; the answer is one
    /// [`crate::harden::HardenReport`].
    Harden(HardenJob),
}

/// The payload's `run` script, the same for every job: the guest side,
/// as installed by the package, with the job the host wrote.
pub const RUN_SCRIPT: &str = concat!(
    "#!/bin/sh\n",
    "# The guest side of sandkasten-vm (vm/guest-side), given this boot's job.\n",
    "exec /usr/libexec/sandkasten/sandkasten-vm guest /payload/job.json\n"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::JOB;

    #[test]
    fn the_run_script_reads_the_job_where_the_host_writes_it() {
        assert!(RUN_SCRIPT.contains(&format!(" guest {JOB}\n")), "{RUN_SCRIPT}");
    }

    #[test]
    fn jobs_are_tagged_by_name() {
        let job = GuestJob::InUnit { unit: "u.service".into(), command: vec!["/bin/true".into()] };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(text, r#"{"job":"in-unit","unit":"u.service","command":["/bin/true"]}"#);
        assert_eq!(serde_json::from_str::<GuestJob>(&text).unwrap(), job);
        let text = serde_json::to_string(&GuestJob::Reliability).unwrap();
        assert_eq!(text, r#"{"job":"reliability"}"#);
    }
}
