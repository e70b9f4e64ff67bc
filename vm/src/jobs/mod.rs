//! The jobs behind `sandkasten-vm`'s commands: the library owns them, the
//! binary only parses flags and turns a job's answer into an exit status.
//!
//! - [`matrix`]: the escape matrix, one boot per release, and the release
//!   diff; [`merge`]: the parts of a sharded matrix joined;
//! - [`ablate`]: the ablation maps;
//! - [`audit`] and [`lab`]: the catalogue in a unit of one's own, and in
//!   every lab step;
//! - [`enforce`]: the enforcement report, in a VM or on this host;
//! - [`exec`]: a command (or a unit's sandbox) in the guest;
//! - [`reliability`]: crashes, hangs, restarts and starvation under load;
//! - [`bench`]: what the sandbox costs, the same server sandboxed and bare.
//!
//! This module holds what they share: how a plan is built, staged and run,
//! and where the committed data lives.

mod ablate;
mod audit;
mod bench;
mod enforce;
mod exec;
mod harden;
mod matrix;
mod reliability;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub use ablate::{ablate, redraw_maps};
pub use audit::{audit, lab, redraw_lab, AuditRequest, YourUnit};
pub use bench::{bench, BenchSettings};
pub use enforce::enforce;
pub use exec::{exec, ExecRequest};
pub use harden::{default_check, harden, HardenRequest};
pub use matrix::{matrix, merge, Outputs};
pub use reliability::reliability;

use crate::guest::print_progress;
use crate::systemd_build::SystemdDebs;
use crate::{ablation, enforcement, passes, payload};
use crate::{AccelRequest, Config, Event, Guest, Release};

/// How the VM jobs boot their guests.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The releases to run, in order.
    pub releases: Vec<Release>,
    /// The image cache [default: [`crate::default_cache_dir`]].
    pub cache_dir: Option<PathBuf>,
    /// The accelerator wanted.
    pub accel: AccelRequest,
    /// The whole run's deadline per release [default: three times the
    /// accelerator's default].
    pub timeout: Option<Duration>,
    /// qemu start → the guest side's start [default: the accelerator's].
    pub boot_deadline: Option<Duration>,
    /// Debian packages the guest needs beyond the recipe's (`--package`).
    pub packages: Vec<String>,
    /// A systemd under test, installed over the release's own (`--systemd`).
    pub systemd: Option<SystemdDebs>,
}

/// Builds the servers, the probe and this harness (its guest side), and the
/// package, once per command.
fn build() -> anyhow::Result<payload::Build> {
    eprintln!("sandkasten-vm: building the servers, the probe, the guest side (release) and the package");
    Ok(payload::build(&payload::workspace_root())?)
}

/// A payload directory with `build`'s packages, `extra_units` and the run
/// script that hands the guest side its job; the caller adds the job.
fn new_payload(build: &payload::Build, extra_units: &[PathBuf]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("sandkasten-vm-payload-").tempdir()?;
    payload::stage(dir.path(), build, payload::RUN_SCRIPT, extra_units)?;
    Ok(dir)
}

/// A payload whose job is `staged`'s plan, with its units.
fn stage(build: &payload::Build, staged: &passes::Staged) -> anyhow::Result<tempfile::TempDir> {
    let dir = new_payload(build, &[])?;
    payload::stage_plan(dir.path(), staged)?;
    Ok(dir)
}

/// A payload whose job is `job`.
fn stage_job(build: &payload::Build, job: &crate::contract::GuestJob) -> anyhow::Result<tempfile::TempDir> {
    let dir = new_payload(build, &[])?;
    payload::stage_job(dir.path(), job)?;
    Ok(dir)
}

/// The reference units of the workspace's `units/`.
fn references() -> anyhow::Result<Vec<passes::Reference>> {
    references_in(&payload::workspace_root().join("units"))
}

/// The reference units of `units`.
fn references_in(units: &Path) -> anyhow::Result<Vec<passes::Reference>> {
    Ok(passes::REFERENCE_UNITS.iter().map(|u| passes::load_reference(units, u)).collect::<Result<_, _>>()?)
}

/// `path` parsed as JSON; `what` names it in the error ("an ablation map").
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// `value` as pretty JSON with a final newline, written to `path`.
fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A guest side's JSON report from what it wrote: a status other than 0
/// is one more error in it (`errors` finds its error list).
fn guest_report<T: serde::de::DeserializeOwned>(
    stdout: &[u8],
    status: i32,
    errors: fn(&mut T) -> &mut Vec<String>,
) -> anyhow::Result<T> {
    let output = String::from_utf8_lossy(stdout);
    let mut report: T = serde_json::from_str(output.trim())
        .map_err(|e| anyhow::anyhow!("the guest side wrote no report ({e}): {}", output.trim()))?;
    if status != 0 {
        errors(&mut report).push(format!("the guest side exited with status {status}"));
    }
    Ok(report)
}

/// Prints one release's table and a `FAIL:` line per failure; whether it
/// had none.
fn print_outcome(table: &str, failures: &[String]) -> bool {
    println!("{table}");
    print_failures(failures);
    failures.is_empty()
}

/// One `FAIL:` line per failure on stdout, the form every job uses.
fn print_failures(failures: &[String]) {
    for failure in failures {
        println!("FAIL: {failure}");
    }
}

/// The last line of every job, on stderr: what ran, whether it passed
/// (`ok` says it in the job's own word), and how long it took.
fn finish(what: &str, ok: &str, passed: bool, started: std::time::Instant) {
    eprintln!(
        "sandkasten-vm: {what} {} in {:.0} s",
        if passed { ok } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
}

/// A measurement and its committed file at `path`: with `check`, compared
/// (`differences(committed, measured)`), a `FAIL:` line for each
/// difference; else written there. Whether it matched (always, when
/// written).
fn check_or_write<T: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    measured: &T,
    check: bool,
    what: &str,
    differences: impl Fn(&T, &T) -> Vec<String>,
) -> anyhow::Result<bool> {
    if check {
        let committed: T = read_json(path, what)?;
        let differences = differences(&committed, measured);
        let lines: Vec<String> = differences
            .iter()
            .map(|difference| format!("{} differs from the measurement: {difference}", path.display()))
            .collect();
        print_failures(&lines);
        return Ok(differences.is_empty());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_json(path, measured)?;
    eprintln!("sandkasten-vm: wrote {}", path.display());
    Ok(true)
}

/// The JSON files in `dir`.
fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(files)
}

/// Every committed ablation map in `units/ablation`.
fn ablation_maps(units: &Path) -> anyhow::Result<Vec<ablation::AblationMap>> {
    let dir = units.join("ablation");
    let maps: Vec<ablation::AblationMap> =
        json_files(&dir)?.iter().map(|path| read_json(path, "an ablation map")).collect::<Result<_, _>>()?;
    anyhow::ensure!(!maps.is_empty(), "no ablation map in {}: run sandkasten-vm ablate first", dir.display());
    Ok(maps)
}

/// The committed enforcement report of `release`, if there is one.
fn committed_enforcement(
    units: &Path,
    release: Release,
) -> anyhow::Result<Option<enforcement::EnforcementReport>> {
    let path = units.join("enforcement").join(format!("{release}.json"));
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path, "an enforcement report").map(Some)
}

/// What the guest's initrd says when dpkg refused the payload's packages
/// (`vm/guest/initrd/init`).
const DPKG_FAILED: &str = "initrd: dpkg --install failed";

/// Every attempt of the probe's catalogue.
fn all_attempts() -> Vec<String> {
    sandkasten_probe::catalogue::ATTEMPTS.iter().map(|a| a.id.to_owned()).collect()
}

/// Boots `release` once with the payload in `dir` and returns what its
/// guest side wrote.
fn run_plan(opts: &RunOptions, release: Release, dir: &Path, what: &str) -> anyhow::Result<crate::Run> {
    let mut config = Config::new(release);
    config.accel = opts.accel;
    config.cache_dir = Some(opts.cache_dir.clone().unwrap_or_else(crate::default_cache_dir));
    config.payload_dir = Some(dir.to_owned());
    config.packages = opts.packages.clone();
    config.boot_deadline = opts.boot_deadline;
    // Passes run side by side, and each may fill its MemoryMax=.
    config.memory_mib = 2048;
    let guest = Guest::prepare(&config, &mut print_progress)?;
    if let Some(debs) = &opts.systemd {
        debs.stage(dir)?;
        config.boot_deadline = opts.boot_deadline.or(Some(crate::systemd_build::BOOT_DEADLINE));
        eprintln!(
            "sandkasten-vm: systemd {} from {} (sha256 {}) goes in over the image's own",
            debs.version(),
            debs.build.from,
            debs.build.sha256
        );
    }
    config.timeout = Some(match opts.timeout {
        Some(timeout) => timeout,
        None => guest.accel().default_timeout() * 3,
    });
    eprintln!("sandkasten-vm: {release:?} {what} under {} (the guest's progress follows)", guest.accel());
    let mut progress = |event: &Event| match event {
        Event::Stderr(bytes) => {
            let _ = std::io::stderr().write_all(bytes);
        }
        Event::Stdout(_) => {}
        other => print_progress(other),
    };
    let mut run = match guest.run(&config, &mut progress) {
        // Root passes make the guest kernel patch its own text (static
        // keys); under TCG that has crashed it. Said loudly, tried once more.
        // (Not when the initrd's dpkg refused the packages: that is the
        // same on every boot.)
        Err(crate::Error::NoResult { console_log, console_tail })
            if console_tail.contains("Kernel panic") && !console_tail.contains(DPKG_FAILED) =>
        {
            eprintln!(
                "sandkasten-vm: the guest kernel panicked ({}); booting once more",
                console_log.display()
            );
            guest.run(&config, &mut progress)?
        }
        Err(crate::Error::NoResult { console_tail, .. }) if console_tail.contains(DPKG_FAILED) => {
            anyhow::bail!(
                "the guest could not install the payload's packages{}:\n{console_tail}",
                if opts.systemd.is_some() {
                    " (--systemd's among them: does its directory hold every package of the systemd source the image has, in one version?)"
                } else {
                    ""
                }
            )
        }
        other => other?,
    };
    run.image.systemd_build = opts.systemd.as_ref().map(|debs| debs.build.clone());
    eprintln!(
        "sandkasten-vm: {release:?}: guest ready {:.1} s after qemu start, plan ran {:.1} s; console log {}",
        run.timings.to_script_start.as_secs_f64(),
        run.timings.script.as_secs_f64(),
        run.console_log.display()
    );
    Ok(run)
}
