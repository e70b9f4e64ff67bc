//! `sandkasten-vm reliability`.

use std::path::Path;

use super::{build, finish, guest_report, print_outcome, run_plan, stage_job, write_json, RunOptions};
use crate::contract::GuestJob;
use crate::reliability::{Judged, ReliabilityReport};

/// `sandkasten-vm reliability`: one boot per release, the scenarios of
/// [`crate::inside::reliability`] against the shipped http socket and
/// service; passes when every release's run does.
pub fn reliability(opts: &RunOptions, json: Option<&Path>) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let built = build()?;
    let dir = stage_job(&built, &GuestJob::Reliability)?;
    let mut reports = Vec::new();
    let mut passed = true;
    for &release in &opts.releases {
        let run = run_plan(opts, release, dir.path(), "reliability run")?;
        let mut report = guest_report::<ReliabilityReport>(run.result(), run.status, |r| &mut r.errors)
            .map_err(|e| anyhow::anyhow!("{release}: {e}"))?;
        report.release = release.to_string();
        report.image = Some(run.image.clone());
        passed &= print_outcome(&report.table(), &report.failures());
        reports.push(report);
    }
    if let Some(path) = json {
        write_json(path, &reports)?;
    }
    finish("reliability", "passed", passed, started);
    Ok(passed)
}
