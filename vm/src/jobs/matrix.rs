//! `sandkasten-vm matrix` and `sandkasten-vm merge`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{
    ablation_maps, all_attempts, build, committed_enforcement, finish, print_failures, read_json, references,
    run_plan, stage, write_json, RunOptions,
};
use crate::shard::{self, Shard};
use crate::{matrix, passes, payload, Release};

/// Where a matrix's reports go besides the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs<'a> {
    /// `--json FILE`: ARCHITECTURE.md's schema (an array for more than one release).
    pub json: Option<&'a Path>,
    /// `--junit FILE`.
    pub junit: Option<&'a Path>,
}

/// `sandkasten-vm matrix`: one boot per release, every unit, the control
/// and the plain user in it; with `shard`, only that part of the catalogue
/// (every attempt of it in every unit), the functional checks in part 1.
pub fn matrix(opts: &RunOptions, shard: Option<Shard>, outputs: Outputs) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let attempts = match shard {
        Some(shard) => shard.take(&all_attempts()),
        None => all_attempts(),
    };
    let mut staged = passes::matrix(&references()?, &attempts);
    staged.plan.functional = shard.map_or(true, |s| s.is_first());
    let dir = stage(&build()?, &staged)?;
    let mut reports = Vec::new();
    for &release in &opts.releases {
        let run = run_plan(opts, release, dir.path(), "matrix")?;
        let output = String::from_utf8_lossy(run.result());
        let mut report = matrix::evaluate(&staged.plan, &staged.roles, &output, &run.accel.to_string());
        // The release booted, not the guest's os-release codename (sid's says forky).
        report.guest.release = release.to_string();
        report.guest.image = Some(run.image.clone());
        report.shard = shard;
        if run.status != 0 {
            report.failures.push(format!("the guest side exited with status {}", run.status));
        }
        println!("{}", report.table());
        reports.push(report);
    }
    let what = match shard {
        Some(shard) => format!("matrix (shard {shard})"),
        None => "matrix".to_owned(),
    };
    present(&what, &reports, outputs, started)
}

/// `sandkasten-vm merge`: the reports of a sharded matrix (each `--json`
/// file an object or an array) joined into one per release, shown and
/// judged as one run would be. A part missing, given twice or of another
/// split is an error.
pub fn merge(files: &[PathBuf], outputs: Outputs) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for file in files {
        let value: serde_json::Value = read_json(file, "a matrix report")?;
        let parts = match value {
            serde_json::Value::Array(items) => items,
            object => vec![object],
        };
        for part in parts {
            reports.push(
                serde_json::from_value::<matrix::Report>(part)
                    .with_context(|| format!("{} is not a matrix report", file.display()))?,
            );
        }
    }
    let merged = shard::merge(reports, &all_attempts())?;
    for report in &merged {
        println!("{}", report.table());
    }
    present("merge", &merged, outputs, started)
}

/// What a matrix run ends with, whole or merged, after each release's
/// table: the differences between releases explained, the reports
/// written, the verdict.
fn present(
    what: &str,
    reports: &[matrix::Report],
    outputs: Outputs,
    started: std::time::Instant,
) -> anyhow::Result<bool> {
    let units = payload::workspace_root().join("units");
    let maps = ablation_maps(&units).unwrap_or_default();
    let mut enforcement = Vec::new();
    for release in Release::ALL {
        enforcement.extend(committed_enforcement(&units, release)?);
    }
    let (differences, cross) = crate::release_diff::explain(reports, &maps, &enforcement);
    if reports.len() > 1 {
        println!("release differences: {}", differences.len());
        for difference in &differences {
            println!("  {}", difference.line());
        }
    }
    print_failures(&cross);
    if let Some(path) = outputs.json {
        match reports {
            [report] => write_json(path, report)?,
            reports => write_json(path, reports)?,
        }
    }
    if let Some(path) = outputs.junit {
        let xml: String = reports.iter().map(matrix::Report::junit).collect();
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let passed = cross.is_empty() && reports.iter().all(matrix::Report::passed);
    finish(what, "passed", passed, started);
    Ok(passed)
}
