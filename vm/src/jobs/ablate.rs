//! `sandkasten-vm ablate`.

use std::path::Path;

use anyhow::Context;

use super::{
    all_attempts, build, check_or_write, finish, json_files, read_json, references, run_plan, stage,
    RunOptions,
};
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
    let built = build()?;
    let mut ok = true;
    for reference in chosen {
        let labels: Vec<String> = reference.directives().into_iter().map(|d| d.label).collect();
        for &release in &opts.releases {
            let removals = |sets: &[Vec<String>]| -> Vec<Vec<crate::variant::Directive>> {
                sets.iter().map(|set| reference.directives_labelled(set)).collect()
            };
            // One boot per round, each pass the whole catalogue.
            let measure = |sets: &[Vec<String>], first_round: bool, what: &str| {
                let staged = passes::ablation(reference, &removals(sets), &attempts, first_round);
                let dir = stage(&built, &staged)?;
                let run =
                    run_plan(opts, release, dir.path(), &format!("ablation of {} ({what})", reference.name))?;
                let output = String::from_utf8_lossy(run.result());
                anyhow::Ok((ablation::read_round(&staged.plan, &staged.roles, &output), run))
            };
            let singles: Vec<Vec<String>> = labels.iter().map(|l| vec![l.clone()]).collect();
            let (mut round, first) = measure(&singles, true, "round 1")?;
            round.merge(
                measure(&ablation::Round::isolation_sets(&labels), false, "round 2: each layer on its own")?
                    .0,
            );
            let sets = round.sets_to_verify(&attempts, &labels);
            if !sets.is_empty() {
                round.merge(measure(&sets, false, &format!("round 3: {} sets of layers", sets.len()))?.0);
            }
            let mut map = round.map(&reference.name, &labels, &attempts);
            map.guest.accel = first.accel.to_string();
            map.guest.release = release.to_string();
            map.guest.image = Some(first.image);
            println!("{}", map.table());
            let stem = out.join(format!("{}-{}", reference.short(), map.guest.release));
            ok &= check_or_write(
                &stem.with_extension("json"),
                &map,
                check,
                "an ablation map",
                ablation::differences,
            )?;
            if !check {
                let svg = stem.with_extension("svg");
                std::fs::write(&svg, map.svg()).with_context(|| format!("cannot write {}", svg.display()))?;
                eprintln!("sandkasten-vm: wrote {}", svg.display());
            }
            ok &= map.failures.is_empty();
        }
    }
    finish("ablation", "complete", ok, started);
    Ok(ok)
}

/// `sandkasten-vm ablate --redraw`: the pictures again from the JSON maps.
pub fn redraw_maps(dir: &Path) -> anyhow::Result<bool> {
    let maps = json_files(dir)?;
    for json in &maps {
        let map: ablation::AblationMap = read_json(json, "an ablation map")?;
        let svg = json.with_extension("svg");
        std::fs::write(&svg, map.svg()).with_context(|| format!("cannot write {}", svg.display()))?;
    }
    anyhow::ensure!(!maps.is_empty(), "no ablation map (*.json) in {}", dir.display());
    eprintln!("sandkasten-vm: redrew {} pictures in {}", maps.len(), dir.display());
    Ok(true)
}
