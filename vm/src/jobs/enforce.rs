//! `sandkasten-vm enforce`.

use std::path::Path;

use anyhow::Context;

use super::{
    ablation_maps, all_attempts, build, check_or_write, committed_enforcement, finish, references_in,
    run_plan, stage, write_json, RunOptions,
};
use crate::{enforcement, Release};

/// `sandkasten-vm enforce`: the enforcement report, per release in a VM,
/// or (`--host`) on this machine.
pub fn enforce(
    opts: &RunOptions,
    units: &Path,
    check: bool,
    host: bool,
    json: Option<&Path>,
) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let references = references_in(units)?;
    let tests = enforcement::tests(&references, &ablation_maps(units)?, &all_attempts());
    let staged = enforcement::staged(&references, &tests);
    let labels = enforcement::labels(&references);
    let mut reports = Vec::new();
    if host {
        let output = crate::host_mode::run(&staged).map_err(anyhow::Error::msg)?;
        let mut report = enforcement::evaluate(&staged.plan, &staged.roles, &tests, &labels, &output);
        report.guest.accel = "host".to_owned();
        println!("{}", report.table());
        reports.push(report);
    } else {
        let dir = stage(&build()?, &staged)?;
        for &release in &opts.releases {
            let run = run_plan(opts, release, dir.path(), "enforcement tests")?;
            let output = String::from_utf8_lossy(run.result());
            let mut report = enforcement::evaluate(&staged.plan, &staged.roles, &tests, &labels, &output);
            report.guest.release = release.to_string();
            report.guest.accel = run.accel.to_string();
            report.guest.image = Some(run.image.clone());
            println!("{}", report.table());
            reports.push(report);
        }
    }
    let mut ok = reports.iter().all(|r| r.failures.is_empty());
    if let Some(path) = json {
        write_json(path, &reports)?;
    }
    if !host {
        for report in &reports {
            let release: Release = report.guest.release.parse()?;
            let path = units.join("enforcement").join(format!("{release}.json"));
            // A report with gaps is never written over the committed one.
            if check || report.failures.is_empty() {
                ok &=
                    check_or_write(&path, report, check, "an enforcement report", enforcement::differences)?;
            }
        }
        if !check {
            write_enforcement_tables(units)?;
        }
    }
    finish("enforcement report", "complete", ok, started);
    Ok(ok)
}

/// The table of every committed release, spliced into units/README.md.
fn write_enforcement_tables(units: &Path) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for release in Release::ALL {
        reports.extend(committed_enforcement(units, release)?);
    }
    let table = enforcement::markdown(&reports);
    let file = units.join("README.md");
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let spliced = enforcement::splice(&text, &table).with_context(|| {
        format!("{} has no enforcement table markers ({})", file.display(), enforcement::TABLE_BEGIN)
    })?;
    std::fs::write(&file, spliced).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("sandkasten-vm: wrote the enforcement table in {}", file.display());
    Ok(())
}
