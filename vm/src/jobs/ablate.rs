//! `sandkasten-vm ablate`.

use std::path::Path;

use anyhow::Context;

use super::{all_attempts, build, references, run_plan, stage, RunOptions};
use crate::{ablation, passes};

/// `sandkasten-vm ablate`: per unit and release, a first round (baseline,
/// control, each directive removed) and, where needed, a second (sets).
pub fn ablate(opts: &RunOptions, units: &[String], out: &Path, check: bool) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let references = references()?;
    let chosen: Vec<&passes::Reference> = if units.is_empty() {
        references.iter().collect()
    } else {
        units
            .iter()
            .map(|u| {
                references.iter().find(|r| &r.name == u || r.short() == *u).with_context(|| {
                    format!("{u} is not a reference unit (try one of {:?})", passes::REFERENCE_UNITS)
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let attempts = all_attempts();
    let bin_dir = build()?;
    let mut ok = true;
    for reference in chosen {
        let directives = reference.directives();
        let labels: Vec<String> = directives.iter().map(|d| d.label.clone()).collect();
        for &release in &opts.releases {
            let removals = |sets: &[Vec<String>]| -> Vec<Vec<crate::variant::Directive>> {
                sets.iter()
                    .map(|set| directives.iter().filter(|d| set.contains(&d.label)).cloned().collect())
                    .collect()
            };
            // One boot per round, each pass the whole catalogue.
            let measure = |sets: &[Vec<String>], first_round: bool, what: &str| {
                let staged = passes::ablation(reference, &removals(sets), &attempts, first_round);
                let dir = stage(&bin_dir, &staged)?;
                let run =
                    run_plan(opts, release, dir.path(), &format!("ablation of {} ({what})", reference.name))?;
                let output = String::from_utf8_lossy(run.result());
                anyhow::Ok((ablation::read_round(&staged.plan, &staged.roles, &output), run.accel))
            };
            let singles: Vec<Vec<String>> = labels.iter().map(|l| vec![l.clone()]).collect();
            let (mut round, accel) = measure(&singles, true, "round 1")?;
            round.merge(
                measure(&ablation::Round::isolation_sets(&labels), false, "round 2: each layer on its own")?
                    .0,
            );
            let sets = round.sets_to_verify(&attempts, &labels);
            if !sets.is_empty() {
                round.merge(measure(&sets, false, &format!("round 3: {} sets of layers", sets.len()))?.0);
            }
            let mut map = round.map(&reference.name, &labels, &attempts);
            map.guest.accel = accel.to_string();
            map.guest.release = release.to_string();
            println!("{}", map.table());
            let stem = out.join(format!("{}-{}", reference.short(), map.guest.release));
            let json = stem.with_extension("json");
            if check {
                let committed: ablation::AblationMap = serde_json::from_str(
                    &std::fs::read_to_string(&json)
                        .with_context(|| format!("cannot read {}", json.display()))?,
                )
                .with_context(|| format!("{} is not an ablation map", json.display()))?;
                for difference in ablation::differences(&committed, &map) {
                    println!("FAIL: {} differs from the measurement: {difference}", json.display());
                    ok = false;
                }
            } else {
                std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
                std::fs::write(&json, serde_json::to_string_pretty(&map)? + "\n")
                    .with_context(|| format!("cannot write {}", json.display()))?;
                let svg = stem.with_extension("svg");
                std::fs::write(&svg, map.svg()).with_context(|| format!("cannot write {}", svg.display()))?;
                eprintln!("sandkasten-vm: wrote {} and {}", json.display(), svg.display());
            }
            ok &= map.failures.is_empty();
        }
    }
    eprintln!(
        "sandkasten-vm: ablation {} in {:.0} s",
        if ok { "complete" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}

/// `sandkasten-vm ablate --redraw`: the pictures again from the JSON maps.
pub fn redraw_maps(dir: &Path) -> anyhow::Result<bool> {
    let mut drawn = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let json = entry?.path();
        if json.extension().is_some_and(|e| e == "json") {
            let text =
                std::fs::read_to_string(&json).with_context(|| format!("cannot read {}", json.display()))?;
            let map: ablation::AblationMap = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an ablation map", json.display()))?;
            let svg = json.with_extension("svg");
            std::fs::write(&svg, map.svg()).with_context(|| format!("cannot write {}", svg.display()))?;
            drawn += 1;
        }
    }
    anyhow::ensure!(drawn > 0, "no ablation map (*.json) in {}", dir.display());
    eprintln!("sandkasten-vm: redrew {drawn} pictures in {}", dir.display());
    Ok(true)
}
