//! `sandkasten-vm`: the CLI over the library. It parses flags, prints
//! progress on stderr and maps the outcome to an exit code: the guest
//! command's own status, or 69 when the harness failed.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sandkasten_vm::guest::print_progress;
use sandkasten_vm::{ablation, enforcement, matrix, passes, payload};
use sandkasten_vm::{
    AccelRequest, Config, CpuModel, Event, Guest, Image, InitrdKind, Release, Releases, EXIT_HARNESS_FAILURE,
};

/// Boots a real systemd in a qemu guest to prove sandkasten's sandboxes hold.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the guest image (or say where the cached one is).
    Image {
        #[command(flatten)]
        image: ImageArgs,
        /// Build even when an image with this recipe is cached.
        #[arg(long)]
        rebuild: bool,
    },
    /// Boot the guest, run COMMAND as root in /payload, print its output and
    /// exit with its status (69 when the harness itself failed).
    Exec {
        #[command(flatten)]
        boot: BootArgs,
        /// The whole run's deadline in seconds [default: 60 under KVM, 300 under TCG].
        #[arg(long, env = "SANDKASTEN_VM_TIMEOUT")]
        timeout: Option<f64>,
        /// Print host-side timings as one JSON line on stderr at the end.
        #[arg(long)]
        timings: bool,
        /// Install this unit file in the guest (with the servers, the
        /// reference units and content) and run COMMAND inside exactly its
        /// sandbox: a drop-in replaces ExecStart= (and makes it a one-off:
        /// Type=exec, no restart, no watchdog) and adds COMMAND's program,
        /// not its libraries, to ExecPaths=: the reference units let nothing
        /// else run (a static program such as /bin/busybox works).
        #[arg(long, value_name = "FILE", conflicts_with = "payload", requires = "command")]
        unit: Option<PathBuf>,
        /// The command; without one, the payload's `run` script.
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// The main job: build the servers, boot the guest, check every server
    /// through its socket, run the escape probe inside every reference
    /// unit's sandbox and once unsandboxed (the control), print the matrix.
    /// Exits 0 when everything held, 1 when not, 69 when the harness failed.
    Matrix {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Write the report (DESIGN.md's schema; an array for --release all) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Measure which directive holds which attempt: run the whole catalogue
    /// in a reference unit as shipped, then once per directive with that
    /// directive removed (NoExecPaths= and ExecPaths= as a pair), all in
    /// one guest; attempts that no single removal opens get a second round
    /// with sets removed. Prints the map per attempt and per directive and
    /// writes it as JSON and SVG. Exits 1 when the measurement is
    /// incomplete or (--check) differs from the committed map.
    Ablate {
        #[command(flatten)]
        boot: MatrixArgs,
        /// The reference unit(s) to measure [default: all four].
        #[arg(long = "unit", value_name = "UNIT")]
        units: Vec<String>,
        /// Where the maps go (UNIT-RELEASE.json and .svg) [default: the
        /// workspace's units/ablation].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Compare with the maps in --out instead of writing them, and fail
        /// when a holder differs (the committed map is stale).
        #[arg(long)]
        check: bool,
        /// Measure nothing: redraw the SVG pictures from the JSON maps in
        /// --out.
        #[arg(long, conflicts_with = "check")]
        redraw: bool,
    },
    /// Measure which directives this systemd and kernel enforce: per
    /// directive of the reference units, one positive test (the attempts
    /// the committed ablation maps show it stopping on its own) in its unit
    /// with every other directive removed, beside the root control. Each
    /// directive is enforced, silently ignored, refused at start or
    /// enforced differently. Writes units/enforcement/RELEASE.json and the
    /// table in README.md and units/README.md. Exits 1 when (--check) the
    /// measurement differs from the committed report.
    Enforce {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Compare with the committed reports instead of writing them.
        #[arg(long)]
        check: bool,
        /// No VM: run the tests on this machine, whose PID 1 must be
        /// systemd, as root, with sandkasten installed (scripts/install).
        /// The test units are runtime units, removed at the end; the
        /// attempts are built to change nothing (invalid arguments, current
        /// values, markers removed).
        #[arg(long, conflicts_with = "check")]
        host: bool,
        /// The reference units and their ablation maps [default: the
        /// workspace's units/].
        #[arg(long, value_name = "DIR")]
        units: Option<PathBuf>,
        /// Also write the report (an array, one per release) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Boot with the serial console on this terminal and root logged in
    /// (the harness runner does not start). Ctrl-A X quits.
    Shell {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// The guest side of `matrix` and `ablate`: carry out PLAN (run in
    /// the guest by the harness, not by hand).
    #[command(hide = true)]
    Inside {
        /// The plan the host wrote.
        plan: PathBuf,
    },
    /// Say which accelerator `auto` picks here, and why.
    Accel {
        #[command(flatten)]
        image: ImageArgs,
    },
}

#[derive(clap::Args)]
struct ImageArgs {
    /// Debian release of the guest.
    #[arg(long, value_enum, default_value = "bookworm", env = "SANDKASTEN_VM_RELEASE")]
    release: Release,
    /// Image cache [default: $XDG_CACHE_HOME/sandkasten or ~/.cache/sandkasten].
    #[arg(long, env = "SANDKASTEN_VM_CACHE")]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BootArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Accelerator: auto proves KVM with a short probe boot, else TCG.
    #[arg(long, value_enum, default_value = "auto", env = "SANDKASTEN_VM_ACCEL")]
    accel: AccelArg,
    /// Directory copied to /payload in the guest (its overlay/ onto /).
    #[arg(long)]
    payload: Option<PathBuf>,
    /// CPU model [default: host under KVM, qemu64 (+rdrand) under TCG].
    #[arg(long, value_enum)]
    cpu: Option<CpuArg>,
    /// Initrd: tiny (busybox + virtio modules) or Debian's stock one.
    #[arg(long, value_enum, default_value = "tiny")]
    initrd: InitrdArg,
    /// Extra kernel argument (repeatable), after vm/guest/cmdline.txt.
    #[arg(long = "append", value_name = "ARG")]
    append: Vec<String>,
    /// Keep this run's console log and port files here [default: <cache>/runs/...].
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Debian release(s) of the guest: bookworm (systemd 252), trixie (257),
    /// sid (the newest), or all.
    #[arg(long, default_value = "bookworm", env = "SANDKASTEN_VM_RELEASE")]
    release: Releases,
    /// Image cache [default: $XDG_CACHE_HOME/sandkasten or ~/.cache/sandkasten].
    #[arg(long, env = "SANDKASTEN_VM_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Accelerator: auto proves KVM with a short probe boot, else TCG.
    #[arg(long, value_enum, default_value = "auto", env = "SANDKASTEN_VM_ACCEL")]
    accel: AccelArg,
    /// The whole run's deadline per release in seconds [default: 180 under KVM, 900 under TCG].
    #[arg(long, env = "SANDKASTEN_VM_TIMEOUT")]
    timeout: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, ValueEnum)]
enum CpuArg {
    Qemu64,
    Max,
    Host,
}

#[derive(Clone, Copy, ValueEnum)]
enum InitrdArg {
    Tiny,
    Stock,
}

impl AccelArg {
    fn request(self) -> AccelRequest {
        match self {
            AccelArg::Auto => AccelRequest::Auto,
            AccelArg::Kvm => AccelRequest::Kvm,
            AccelArg::Tcg => AccelRequest::Tcg,
        }
    }
}

impl ImageArgs {
    fn release(&self) -> Release {
        self.release
    }
    fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(sandkasten_vm::default_cache_dir)
    }
}

impl BootArgs {
    fn config(&self) -> Config {
        let mut c = Config::new(self.image.release());
        c.accel = self.accel.request();
        c.payload_dir = self.payload.clone();
        c.cpu = self.cpu.map(|cpu| match cpu {
            CpuArg::Qemu64 => CpuModel::Qemu64,
            CpuArg::Max => CpuModel::Max,
            CpuArg::Host => CpuModel::Host,
        });
        c.initrd = match self.initrd {
            InitrdArg::Tiny => InitrdKind::Tiny,
            InitrdArg::Stock => InitrdKind::Stock,
        };
        c.cache_dir = Some(self.image.cache_dir());
        c.run_dir = self.run_dir.clone();
        c.extra_cmdline = self.append.clone();
        c
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sandkasten-vm: error: {err:#}");
            ExitCode::from(EXIT_HARNESS_FAILURE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Image { image, rebuild } => {
            let cache = image.cache_dir();
            let built = if rebuild {
                Image::build(image.release(), &cache, &mut print_progress)
            } else {
                Image::ensure(image.release(), &cache, &mut print_progress)
            }
            .context("failed to build the guest image")?;
            println!("{}", built.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Accel { image } => {
            let mut config = Config::new(image.release());
            config.cache_dir = Some(image.cache_dir());
            let guest = Guest::prepare(&config, &mut print_progress)?;
            println!("{}", guest.accel());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Shell { boot } => {
            let config = boot.config();
            let guest = Guest::prepare(&config, &mut print_progress)?;
            eprintln!("sandkasten-vm: booting a shell under {} (Ctrl-A X quits)", guest.accel());
            let status = guest.shell(&config)?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_HARNESS_FAILURE) })
        }
        Cmd::Matrix { boot, json, junit } => matrix(&boot, json.as_deref(), junit.as_deref()),
        Cmd::Ablate { boot, units, out, check, redraw } => {
            let out = out.unwrap_or_else(|| payload::workspace_root().join("units/ablation"));
            if redraw {
                redraw_maps(&out)
            } else {
                ablate(&boot, &units, &out, check)
            }
        }
        Cmd::Enforce { boot, check, host, units, json } => {
            let units = units.unwrap_or_else(|| payload::workspace_root().join("units"));
            enforce(&boot, &units, check, host, json.as_deref())
        }
        Cmd::Inside { plan } => Ok(ExitCode::from(sandkasten_vm::inside::run(&plan) as u8)),
        Cmd::Exec { boot, timeout, timings, unit, command } => {
            let mut config = boot.config();
            // Kept alive until the run is over: the payload directory.
            let mut staged = None;
            if let Some(unit) = &unit {
                let dir = stage_unit_payload(unit, &command)?;
                config.payload_dir = Some(dir.path().to_owned());
                staged = Some(dir);
            } else if !command.is_empty() {
                config.command = Some(command);
            }
            config.timeout = timeout.map(Duration::from_secs_f64);
            let mut stream = |event: &Event| match event {
                Event::Stdout(bytes) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(bytes);
                    let _ = out.flush();
                }
                Event::Stderr(bytes) => {
                    let _ = std::io::stderr().write_all(bytes);
                }
                other => print_progress(other),
            };
            let guest = Guest::prepare(&config, &mut stream)?;
            let run = guest.run(&config, &mut stream)?;
            let t = run.timings;
            if timings {
                eprintln!(
                    "{}",
                    serde_json::json!({
                        "accel": run.accel.to_string(),
                        "status": run.status,
                        "attempts": run.attempts,
                        "payload_s": t.payload.as_secs_f64(),
                        "qemu_to_script_start_s": t.to_script_start.as_secs_f64(),
                        "script_s": t.script.as_secs_f64(),
                        "qemu_total_s": t.qemu.as_secs_f64(),
                        "guest_uptime_at_start_s": t.guest_uptime_at_start,
                        "console_log": run.console_log,
                    })
                );
            }
            eprintln!(
                "sandkasten-vm: {} guest script started {:.1} s after qemu, ran {:.1} s, exit status {}",
                run.accel,
                t.to_script_start.as_secs_f64(),
                t.script.as_secs_f64(),
                run.status
            );
            drop(staged);
            Ok(ExitCode::from(u8::try_from(run.status).unwrap_or(EXIT_HARNESS_FAILURE)))
        }
    }
}

/// The payload for `exec --unit`: the servers and units as for the matrix,
/// the user's unit beside them, and the command to run in it.
fn stage_unit_payload(unit: &Path, command: &[OsString]) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::ffi::OsStrExt;
    let name = unit
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(".service"))
        .with_context(|| format!("{}: --unit takes a .service file", unit.display()))?;
    let text = std::fs::read_to_string(unit).with_context(|| format!("cannot read {}", unit.display()))?;
    anyhow::ensure!(text.contains("[Service]"), "{}: no [Service] section", unit.display());
    let workspace = payload::workspace_root();
    eprintln!("sandkasten-vm: building the servers and the probe (release)");
    let bin_dir = payload::build_binaries(&workspace)?;
    let dir = tempfile::Builder::new().prefix("sandkasten-vm-payload-").tempdir()?;
    payload::stage(dir.path(), &workspace, &bin_dir, payload::IN_UNIT_PLAN, &[unit.to_owned()])?;
    std::fs::write(dir.path().join(".unit-name"), name)?;
    let mut argv = Vec::new();
    for arg in command {
        argv.extend_from_slice(arg.as_bytes());
        argv.push(0);
    }
    std::fs::write(dir.path().join(".unit-command"), argv)?;
    Ok(dir)
}

/// Builds the servers, the probe and this harness (its guest side), once
/// per command; their directory.
fn build() -> anyhow::Result<PathBuf> {
    eprintln!("sandkasten-vm: building the servers, the probe and the guest side (release)");
    Ok(payload::build_binaries(&payload::workspace_root())?)
}

/// Stages a payload with the binaries in `bin_dir` and `staged`'s units and
/// plan.
fn stage(bin_dir: &Path, staged: &passes::Staged) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("sandkasten-vm-payload-").tempdir()?;
    payload::stage(dir.path(), &payload::workspace_root(), bin_dir, payload::INSIDE_PLAN, &[])?;
    payload::stage_plan(dir.path(), staged)?;
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

/// Every committed ablation map in `units/ablation`.
fn ablation_maps(units: &Path) -> anyhow::Result<Vec<ablation::AblationMap>> {
    let dir = units.join("ablation");
    let mut maps = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            maps.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not an ablation map", path.display()))?,
            );
        }
    }
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
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an enforcement report", path.display()))?,
    ))
}

/// Every attempt of the probe's catalogue.
fn all_attempts() -> Vec<String> {
    sandkasten_probe::catalogue::ATTEMPTS.iter().map(|a| a.id.to_owned()).collect()
}

/// Boots `release` once with the payload in `dir` and returns what its
/// guest side wrote.
fn run_plan(
    args: &MatrixArgs,
    release: Release,
    dir: &Path,
    what: &str,
) -> anyhow::Result<sandkasten_vm::Run> {
    let mut config = Config::new(release);
    config.accel = args.accel.request();
    config.cache_dir = Some(args.cache_dir.clone().unwrap_or_else(sandkasten_vm::default_cache_dir));
    config.payload_dir = Some(dir.to_owned());
    // Passes run side by side, and each may fill its MemoryMax=.
    config.memory_mib = 2048;
    let guest = Guest::prepare(&config, &mut print_progress)?;
    config.timeout = Some(match args.timeout {
        Some(secs) => Duration::from_secs_f64(secs),
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
    let run = match guest.run(&config, &mut progress) {
        // Root passes make the guest kernel patch its own text (static
        // keys); under TCG that has crashed it. Said loudly, tried once more.
        Err(sandkasten_vm::Error::NoResult { console_log, console_tail })
            if console_tail.contains("Kernel panic") =>
        {
            eprintln!(
                "sandkasten-vm: the guest kernel panicked ({}); booting once more",
                console_log.display()
            );
            guest.run(&config, &mut progress)?
        }
        other => other?,
    };
    eprintln!(
        "sandkasten-vm: {release:?}: guest ready {:.1} s after qemu start, plan ran {:.1} s; console log {}",
        run.timings.to_script_start.as_secs_f64(),
        run.timings.script.as_secs_f64(),
        run.console_log.display()
    );
    Ok(run)
}

impl MatrixArgs {
    fn releases(&self) -> Vec<Release> {
        self.release.list()
    }
}

/// `sandkasten-vm matrix`: one boot per release, every unit, the control
/// and the plain user in it.
fn matrix(args: &MatrixArgs, json: Option<&Path>, junit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let staged = passes::matrix(&references()?, &all_attempts());
    let dir = stage(&build()?, &staged)?;
    let mut reports = Vec::new();
    for release in args.releases() {
        let run = run_plan(args, release, dir.path(), "matrix")?;
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
    let (differences, cross) = sandkasten_vm::release_diff::explain(&reports, &maps, &enforcement);
    if reports.len() > 1 {
        println!("release differences: {}", differences.len());
        for difference in &differences {
            println!("  {}", difference.line());
        }
    }
    for failure in &cross {
        println!("FAIL: {failure}");
    }
    if let Some(path) = json {
        let text = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = junit {
        let xml: String = reports.iter().map(matrix::Report::junit).collect();
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let passed = cross.is_empty() && reports.iter().all(matrix::Report::passed);
    eprintln!(
        "sandkasten-vm: matrix {} in {:.0} s",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `sandkasten-vm ablate`: per unit and release, a first round (baseline,
/// control, each directive removed) and, where needed, a second (sets).
fn ablate(args: &MatrixArgs, units: &[String], out: &Path, check: bool) -> anyhow::Result<ExitCode> {
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
        for release in args.releases() {
            let removals = |sets: &[Vec<String>]| -> Vec<Vec<sandkasten_vm::variant::Directive>> {
                sets.iter()
                    .map(|set| directives.iter().filter(|d| set.contains(&d.label)).cloned().collect())
                    .collect()
            };
            // One boot per round, each pass the whole catalogue.
            let measure = |sets: &[Vec<String>], first_round: bool, what: &str| {
                let staged = passes::ablation(reference, &removals(sets), &attempts, first_round);
                let dir = stage(&bin_dir, &staged)?;
                let run =
                    run_plan(args, release, dir.path(), &format!("ablation of {} ({what})", reference.name))?;
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
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `sandkasten-vm enforce`: the enforcement report, per release in a VM,
/// or (`--host`) on this machine.
fn enforce(
    args: &MatrixArgs,
    units: &Path,
    check: bool,
    host: bool,
    json: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let references = references_in(units)?;
    let tests = enforcement::tests(&references, &ablation_maps(units)?, &all_attempts());
    let staged = passes::enforcement(&references, &tests);
    let labels = enforcement::labels(&references);
    let mut reports = Vec::new();
    if host {
        if let Some(why) = sandkasten_vm::inside::host::unfit() {
            anyhow::bail!("{why}");
        }
        eprintln!(
            "sandkasten-vm: {} directive tests on this host",
            staged.plan.passes.len().saturating_sub(1)
        );
        let output = sandkasten_vm::inside::host::run(&staged).map_err(anyhow::Error::msg)?;
        let mut report = enforcement::evaluate(&staged.plan, &staged.roles, &tests, &labels, &output);
        report.guest.accel = "host".to_owned();
        println!("{}", report.table());
        reports.push(report);
    } else {
        let dir = stage(&build()?, &staged)?;
        for release in args.releases() {
            let run = run_plan(args, release, dir.path(), "enforcement tests")?;
            let output = String::from_utf8_lossy(run.result());
            let mut report = enforcement::evaluate(&staged.plan, &staged.roles, &tests, &labels, &output);
            report.guest.release = release.to_string();
            report.guest.accel = run.accel.to_string();
            println!("{}", report.table());
            reports.push(report);
        }
    }
    let mut ok = reports.iter().all(|r| r.failures.is_empty());
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !host {
        for report in &reports {
            let release: Release = report.guest.release.parse()?;
            let path = units.join("enforcement").join(format!("{release}.json"));
            if check {
                let committed = committed_enforcement(units, release)?
                    .with_context(|| format!("no committed report {}", path.display()))?;
                for difference in enforcement::differences(&committed, report) {
                    println!("FAIL: {} differs from the measurement: {difference}", path.display());
                    ok = false;
                }
            } else if report.failures.is_empty() {
                std::fs::create_dir_all(units.join("enforcement"))?;
                std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("sandkasten-vm: wrote {}", path.display());
            }
        }
        if !check {
            write_enforcement_tables(units)?;
        }
    }
    eprintln!(
        "sandkasten-vm: enforcement report {} in {:.0} s",
        if ok { "complete" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The table of every committed release, spliced into README.md and
/// units/README.md.
fn write_enforcement_tables(units: &Path) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for release in Release::ALL {
        reports.extend(committed_enforcement(units, release)?);
    }
    let table = enforcement::markdown(&reports);
    let workspace = units.parent().unwrap_or(units);
    for file in [workspace.join("README.md"), units.join("README.md")] {
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let spliced = enforcement::splice(&text, &table).with_context(|| {
            format!("{} has no enforcement table markers ({})", file.display(), enforcement::TABLE_BEGIN)
        })?;
        std::fs::write(&file, spliced).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("sandkasten-vm: wrote the enforcement table in {}", file.display());
    }
    Ok(())
}

/// `sandkasten-vm ablate --redraw`: the pictures again from the JSON maps.
fn redraw_maps(dir: &Path) -> anyhow::Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}
