//! `sandkasten-vm matrix`.

use std::path::Path;

use anyhow::Context;

use super::{
    ablation_maps, all_attempts, build, committed_enforcement, finish, print_failures, references, run_plan,
    stage, write_json, RunOptions,
};
use crate::{matrix, passes, payload, Release};

/// `sandkasten-vm matrix`: one boot per release, every unit, the control
/// and the plain user in it.
pub fn matrix(opts: &RunOptions, json: Option<&Path>, junit: Option<&Path>) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let staged = passes::matrix(&references()?, &all_attempts());
    let dir = stage(&build()?, &staged)?;
    let mut reports = Vec::new();
    for &release in &opts.releases {
        let run = run_plan(opts, release, dir.path(), "matrix")?;
        let output = String::from_utf8_lossy(run.result());
        let mut report = matrix::evaluate(&staged.plan, &staged.roles, &output, &run.accel.to_string());
        // The release booted, not the guest's os-release codename (sid's says forky).
        report.guest.release = release.to_string();
        if run.status != 0 {
            report.failures.push(format!("the guest side exited with status {}", run.status));
        }
        println!("{}", report.table());
        reports.push(report);
    }
    let units = payload::workspace_root().join("units");
    let maps = ablation_maps(&units).unwrap_or_default();
    let mut enforcement = Vec::new();
    for release in Release::ALL {
        enforcement.extend(committed_enforcement(&units, release)?);
    }
    let (differences, cross) = crate::release_diff::explain(&reports, &maps, &enforcement);
    if reports.len() > 1 {
        println!("release differences: {}", differences.len());
        for difference in &differences {
            println!("  {}", difference.line());
        }
    }
    print_failures(&cross);
    if let Some(path) = json {
        match reports.as_slice() {
            [report] => write_json(path, report)?,
            reports => write_json(path, reports)?,
        }
    }
    if let Some(path) = junit {
        let xml: String = reports.iter().map(matrix::Report::junit).collect();
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let passed = cross.is_empty() && reports.iter().all(matrix::Report::passed);
    finish("matrix", "passed", passed, started);
    Ok(passed)
}
