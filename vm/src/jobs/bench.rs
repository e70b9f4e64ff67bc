//! `sandkasten-vm bench`.

use std::path::Path;

use super::{build, finish, guest_report, print_outcome, run_plan, stage_job, write_json, RunOptions};
use crate::bench::{BenchReport, Figures};
use crate::contract::GuestJob;

/// How long and how often `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchSettings {
    /// Rounds of each scenario (and of the cold start).
    pub rounds: usize,
    /// Seconds of each load.
    pub duration: f64,
}

/// The guest side's job (vm/guest-side/src/bench.rs) with `settings`.
fn job(settings: BenchSettings) -> GuestJob {
    GuestJob::Bench { rounds: settings.rounds, duration_s: settings.duration }
}

/// `sandkasten-vm bench`: one boot per release, the same server sandboxed
/// and bare ([`crate::inside::bench`]); prints a table per release and
/// writes the reports, with their figures, to `json`. Passes when every
/// release's guest side measured everything without a wrong answer; how
/// slow the sandbox is never fails it.
pub fn bench(opts: &RunOptions, settings: BenchSettings, json: Option<&Path>) -> anyhow::Result<bool> {
    anyhow::ensure!(settings.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        settings.duration.is_finite() && settings.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    let started = std::time::Instant::now();
    let built = build()?;
    let dir = stage_job(&built, &job(settings))?;
    let mut reports = Vec::new();
    let mut passed = true;
    for &release in &opts.releases {
        let run = run_plan(opts, release, dir.path(), "sandbox cost measurement")?;
        let mut report = guest_report::<BenchReport>(run.result(), run.status, |r| &mut r.errors)
            .map_err(|e| anyhow::anyhow!("{release}: {e}"))?;
        report.release = release.to_string();
        report.accel = run.accel.to_string();
        report.image = Some(run.image.clone());
        report.rows = report.rows();
        passed &= print_outcome(&report.table(), &report.failures());
        reports.push(report);
    }
    if let Some(path) = json {
        write_json(path, &reports)?;
    }
    finish("bench", "measured", passed, started);
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_passes_the_settings_on() {
        assert_eq!(
            job(BenchSettings { rounds: 2, duration: 0.5 }),
            GuestJob::Bench { rounds: 2, duration_s: 0.5 }
        );
    }

    #[test]
    fn a_failed_guest_side_is_an_error_in_its_report_and_no_report_is_an_error() {
        let json = r#"{"release":"","systemd":"252","kernel":"6.1","rounds":1,"duration_s":1.0,
            "concurrency":16,"throughput":[],"cold":{"bare_ms":[],"sandboxed_ms":[]},
            "warm":{"bare_ms":[],"sandboxed_ms":[]},"errors":["the socket did not start"]}"#;
        let report = guest_report::<BenchReport>(json.as_bytes(), 1, |r| &mut r.errors).unwrap();
        assert_eq!(report.errors, ["the socket did not start", "the guest side exited with status 1"]);
        let error = guest_report::<BenchReport>(b"Segmentation fault\n", 139, |r| &mut r.errors)
            .unwrap_err()
            .to_string();
        assert!(error.contains("wrote no report") && error.contains("Segmentation fault"), "{error}");
    }
}
