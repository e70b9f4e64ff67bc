//! `sandkasten-vm enforce`.

use std::path::Path;

use anyhow::Context;

use super::{
    ablation_maps, all_attempts, build, check_or_write, committed_enforcement, finish, references_in,
    run_plan, stage, write_json, RunOptions,
};
use crate::systemd_build::SystemdDebs;
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
            // A report with gaps is never written over the committed one,
            // nor one of a systemd under test: the committed report is the
            // release's own systemd's, which another build is compared with.
            if check || (report.failures.is_empty() && opts.systemd.is_none()) {
                let same =
                    check_or_write(&path, report, check, "an enforcement report", enforcement::differences)?;
                if let (false, Some(debs)) = (same, &opts.systemd) {
                    println!("{}", build_is_the_cause(debs, report));
                }
                ok &= same;
            }
        }
        if opts.systemd.is_some() && !check {
            eprintln!(
                "sandkasten-vm: a systemd under test is not the release's: units/enforcement/ stays as it is \
                 (--check compares with it, --json writes the report)"
            );
        } else if !check {
            write_enforcement_tables(units)?;
        }
    }
    finish("enforcement report", "complete", ok, started);
    Ok(ok)
}

/// Why the measurement differs from the release's committed report: one
/// thing changed between them, the systemd build (same image, same kernel).
fn build_is_the_cause(debs: &SystemdDebs, report: &enforcement::EnforcementReport) -> String {
    let image = report.guest.image.as_ref();
    let own = image
        .and_then(|i| i.packages.iter().find_map(|p| p.strip_prefix("systemd=")))
        .unwrap_or("the release's own");
    format!(
        "CAUSE: each difference above is the systemd build's: systemd {} from {} (sha256 {}) ran in place of \
         the image's systemd {own}, on the same image (recipe {}) and kernel ({})",
        debs.version(),
        debs.build.from,
        debs.build.sha256,
        image.map_or("-", |i| i.recipe.as_str()),
        report.guest.kernel
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{GuestInfo, ImageInfo, SystemdBuild};

    /// The cause names the build, the release's own systemd it replaced,
    /// and what stayed the same.
    #[test]
    fn a_difference_under_a_systemd_build_is_the_builds() {
        let build = SystemdBuild {
            from: "debs".into(),
            packages: vec!["systemd=254.26-1~bpo12+1".into()],
            sha256: "c48b90fd7b45f813".into(),
        };
        let debs = SystemdDebs { files: Vec::new(), build };
        let report = enforcement::EnforcementReport {
            guest: GuestInfo {
                kernel: "6.1.0-50-cloud-amd64".into(),
                image: Some(ImageInfo {
                    recipe: "fb52239454313425".into(),
                    packages: vec!["libc6=2.36".into(), "systemd=252.39-1~deb12u2".into()],
                    ..ImageInfo::default()
                }),
                ..GuestInfo::default()
            },
            ..Default::default()
        };
        assert_eq!(
            build_is_the_cause(&debs, &report),
            "CAUSE: each difference above is the systemd build's: systemd 254.26-1~bpo12+1 from debs \
             (sha256 c48b90fd7b45f813) ran in place of the image's systemd 252.39-1~deb12u2, on the same \
             image (recipe fb52239454313425) and kernel (6.1.0-50-cloud-amd64)"
        );
    }
}
