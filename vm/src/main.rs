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
use sandkasten_vm::{matrix, payload};
use sandkasten_vm::{
    AccelRequest, Config, CpuModel, Event, Guest, Image, InitrdKind, Release, EXIT_HARNESS_FAILURE,
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
    /// Boot with the serial console on this terminal and root logged in
    /// (the harness runner does not start). Ctrl-A X quits.
    Shell {
        #[command(flatten)]
        boot: BootArgs,
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
    release: ReleaseArg,
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
    /// Debian release(s) of the guest: bookworm (systemd 252), trixie (257), or all.
    #[arg(long, value_enum, default_value = "bookworm", env = "SANDKASTEN_VM_RELEASE")]
    release: MatrixRelease,
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MatrixRelease {
    Bookworm,
    Trixie,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReleaseArg {
    Bookworm,
    Trixie,
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
        match self.release {
            ReleaseArg::Bookworm => Release::Bookworm,
            ReleaseArg::Trixie => Release::Trixie,
        }
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

/// `sandkasten-vm matrix`: one boot per release, every unit and the control
/// in it.
fn matrix(args: &MatrixArgs, json: Option<&Path>, junit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let releases = match args.release {
        MatrixRelease::Bookworm => vec![Release::Bookworm],
        MatrixRelease::Trixie => vec![Release::Trixie],
        MatrixRelease::All => vec![Release::Bookworm, Release::Trixie],
    };
    let started = std::time::Instant::now();
    let workspace = payload::workspace_root();
    eprintln!("sandkasten-vm: building the servers and the probe (release)");
    let bin_dir = payload::build_binaries(&workspace)?;
    let catalogue = probe_catalogue(&bin_dir.join("sandkasten-probe"))?;
    let staged = tempfile::Builder::new().prefix("sandkasten-vm-payload-").tempdir()?;
    payload::stage(staged.path(), &workspace, &bin_dir, payload::MATRIX_PLAN, &[])?;

    let mut reports = Vec::new();
    for release in releases {
        let mut config = Config::new(release);
        config.accel = args.accel.request();
        config.cache_dir = Some(args.cache_dir.clone().unwrap_or_else(sandkasten_vm::default_cache_dir));
        config.payload_dir = Some(staged.path().to_owned());
        let guest = Guest::prepare(&config, &mut print_progress)?;
        config.timeout = Some(match args.timeout {
            Some(secs) => Duration::from_secs_f64(secs),
            None => guest.accel().default_timeout() * 3,
        });
        eprintln!("sandkasten-vm: {release:?} matrix under {} (the guest's progress follows)", guest.accel());
        let mut progress = |event: &Event| match event {
            // The plan's progress lines ("matrix: probing inside ...").
            Event::Stderr(bytes) => {
                let _ = std::io::stderr().write_all(bytes);
            }
            Event::Stdout(_) => {}
            other => print_progress(other),
        };
        let run = guest.run(&config, &mut progress)?;
        let output = String::from_utf8_lossy(run.result());
        let mut report = matrix::evaluate(&output, &run.accel.to_string(), &catalogue);
        if run.status != 0 {
            report.failures.push(format!("the guest plan exited with status {}", run.status));
        }
        println!("{}", report.table());
        eprintln!(
            "sandkasten-vm: {release:?}: guest ready {:.1} s after qemu start, plan ran {:.1} s; console log {}",
            run.timings.to_script_start.as_secs_f64(),
            run.timings.script.as_secs_f64(),
            run.console_log.display()
        );
        reports.push(report);
    }
    let cross = matrix::cross_release(&reports);
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

/// Every attempt id the probe knows, so that a unit whose probe stopped
/// half-way shows up as a gap.
fn probe_catalogue(probe: &Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(probe)
        .args(["list", "--json"])
        .output()
        .with_context(|| format!("cannot run {}", probe.display()))?;
    anyhow::ensure!(out.status.success(), "{} list --json failed", probe.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)?;
            value["id"].as_str().map(str::to_owned).context("catalogue line without an id")
        })
        .collect()
}
