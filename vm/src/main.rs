//! `sandkasten-vm`: the CLI over the library. It parses flags, prints
//! progress on stderr and maps the outcome to an exit code: the guest
//! command's own status, or 69 when the harness failed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sandkasten_vm::guest::print_progress;
use sandkasten_vm::jobs::{
    self, AuditRequest, BenchSettings, ExecRequest, HardenRequest, RunOptions, YourUnit,
};
use sandkasten_vm::payload;
use sandkasten_vm::shard::Shard;
use sandkasten_vm::systemd_build::SystemdDebs;
use sandkasten_vm::{
    AccelRequest, Config, CpuModel, Guest, Image, InitrdKind, Recipe, Release, Releases, EXIT_HARNESS_FAILURE,
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
        /// Build again when the cached image is older than DAYS [default:
        /// 7 for sid, which moves daily; no limit for bookworm and trixie].
        #[arg(long, value_name = "DAYS", conflicts_with = "rebuild")]
        max_age: Option<f64>,
        /// A Debian package beyond the recipe's own (repeatable): the image
        /// `audit --package` and `exec --package` boot.
        #[arg(long = "package", value_name = "NAME")]
        packages: Vec<String>,
    },
    /// Boot the guest, run COMMAND as root in /payload, print its output and
    /// exit with its status (69 when the harness itself failed).
    Exec {
        #[command(flatten)]
        boot: BootArgs,
        /// The whole run's deadline in seconds [default: 60 under KVM, 300 under TCG].
        #[arg(long, env = "SANDKASTEN_VM_TIMEOUT")]
        timeout: Option<f64>,
        /// Seconds from qemu's start to the guest side's start; a boot that
        /// misses it has hung and is booted again, three boots at most
        /// [default: 30 under KVM, 60 under TCG].
        #[arg(long, env = "SANDKASTEN_VM_BOOT_DEADLINE")]
        boot_deadline: Option<f64>,
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
        #[command(flatten)]
        yours: YourFiles,
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
        /// Run only part I of N of the catalogue (every N-th attempt, in
        /// every unit and the control), for N machines; `merge` joins the
        /// parts' --json reports.
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Join the --json reports of a matrix run in parts (--shard I/N, one
    /// part per machine) into one report per release: the table, the
    /// release differences, JSON and JUnit as one run gives them. Exits 0
    /// when everything held, 1 when not, 69 when a part is missing, given
    /// twice, of another split, or ran on another guest.
    Merge {
        /// The parts' --json reports (each an object or an array).
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Audit a unit of your own: install it (with its socket, your program
    /// and your files) in the guest, run the whole escape catalogue inside
    /// exactly its sandbox, with its real sockets handed in, and the same
    /// catalogue unsandboxed as the control. Prints each attempt by goal,
    /// what closes each escape (measured in the reference units), the
    /// static score and the directives this release does not enforce.
    /// Exits 0 when nothing escaped, 1 when something did (or the audit is
    /// incomplete), 69 when the harness failed
    Audit {
        #[command(flatten)]
        unit: UnitArgs,
        #[command(flatten)]
        boot: MatrixArgs,
        /// Write the reports (an array, one per release; ARCHITECTURE.md's
        /// schema) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Check that the real program still serves in the unit as written,
        /// before the probe takes its place: COMMAND runs in the guest under
        /// bash, with $PORT and $ADDR (127.0.0.1:PORT) of the unit's socket;
        /// it must exit 0 (e.g. 'exec 3<>/dev/tcp/127.0.0.1/$PORT'). A
        /// failing check fails the audit and says so.
        #[arg(long, value_name = "COMMAND")]
        check: Option<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Harden a unit of your own, proven: run its real program in the guest
    /// against a check (--check, or an HTTP GET / a TCP connect), trace it
    /// (strace -f), and keep each directive of the reference sandbox, and
    /// those computed from the trace (ExecPaths=, the system-call lists,
    /// address families, where it writes, MemoryMax=, TasksMax=), only
    /// while the check still passes. Writes UNIT.service.d/50-sandkasten-harden.conf
    /// (and, when the program takes a socket, a socket-activated variant in
    /// a private network), then audits the unit as given beside each variant
    /// in one guest: escapes per goal before and after, and why each escape
    /// left stays. Exits 0 when a variant serves and its audit is complete,
    /// 1 when not, 69 when the harness failed
    Harden {
        #[command(flatten)]
        unit: UnitArgs,
        #[command(flatten)]
        boot: MatrixArgs,
        /// The check the program must keep passing: run by bash in the guest
        /// with $PORT and $ADDR (127.0.0.1:PORT) of the port it serves on
        /// (its socket's, or the one it listens on); exit 0 passes
        /// [default: GET / answered 2xx or 3xx for a unit that looks like
        /// HTTP, else a TCP connect and one byte].
        #[arg(long, value_name = "COMMAND")]
        check: Option<String>,
        /// Where UNIT.service.d/ goes (one directory per release when
        /// several) [default: beside the unit file].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Do not try the program socket-activated in a private network.
        #[arg(long)]
        no_socket: bool,
        /// Write the outcome (harden's report and the audits; an array, one
        /// per release; ARCHITECTURE.md's schema) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Audit every lab step (units/lab) on each release and write the
    /// measurement (units/lab/measured/RELEASE.json) and the table in
    /// units/lab/README.md; with --check, compare instead. Exits 1 when the
    /// measurement differs or is incomplete
    Lab {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Compare with the committed measurement instead of writing it.
        #[arg(long)]
        check: bool,
        /// Only rewrite the README's table from the committed measurement
        /// (no guest).
        #[arg(long, conflicts_with = "check")]
        redraw: bool,
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
    /// the committed ablation maps show it stopping) as two passes of its
    /// unit that differ in that directive only: it alone against every
    /// directive removed, or the unit as shipped against the unit without
    /// it. Each directive is enforced, silently ignored, refused at start or
    /// enforced differently. Writes units/enforcement/RELEASE.json and the
    /// table in units/README.md. Exits 1 when (--check) the
    /// measurement differs from the committed report.
    Enforce {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Compare with the committed reports instead of writing them.
        #[arg(long)]
        check: bool,
        /// No VM: run the tests on this machine, whose PID 1 must be
        /// systemd, as root, with the packages sandkasten and
        /// sandkasten-probe installed (scripts/install --probe).
        /// The test units are runtime units, removed at the end; the
        /// attempts are built to change nothing (invalid arguments, current
        /// values, markers removed).
        #[arg(long, conflicts_with_all = ["check", "systemd"])]
        host: bool,
        /// The reference units and their ablation maps [default: the
        /// workspace's units/].
        #[arg(long, value_name = "DIR")]
        units: Option<PathBuf>,
        /// Also write the report (an array, one per release;
        /// ARCHITECTURE.md's schema) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Boot with the serial console on this terminal and root logged in
    /// (the harness runner does not start). Ctrl-A X quits.
    Shell {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Reliability of the shipped http socket under crashes (SIGKILL,
    /// SIGSEGV, SIGABRT, a burst), a hang (SIGSTOP), `systemctl restart`,
    /// idle exit, silent clients and a flood; a table per release, failing
    /// when a request is lost beyond those in flight at a kill or the socket
    /// ends failed.
    Reliability {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Write the reports (an array, one per release) here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// What the sandbox costs: the same sandkasten-http in its shipped
    /// socket and service (sandboxed) and under systemd-socket-activate as
    /// root (bare), in one guest per release, alternated round by round:
    /// requests/s (1 KiB kept alive and a new connection each, 100 KiB kept
    /// alive) and the cold start, connect to first byte, against warm.
    /// Prints a table per release; exits 1 when a contender failed or
    /// answered wrong (never for slow figures), 69 when the harness failed.
    Bench {
        #[command(flatten)]
        boot: MatrixArgs,
        /// Write the reports (an array, one per release, with the table's
        /// figures as `rows`) here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        #[command(flatten)]
        settings: BenchArgs,
    },
    /// The guest side: do the JOB the host wrote (a plan, bench,
    /// reliability or a command in a unit; run in the guest by the harness,
    /// not by hand).
    #[command(hide = true)]
    Guest {
        /// The job file (`/payload/job.json`).
        job: PathBuf,
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
    accel: AccelRequest,
    /// Directory copied to /payload in the guest (its overlay/ onto /).
    #[arg(long)]
    payload: Option<PathBuf>,
    /// CPU model [default: host under KVM, qemu64 (+rdrand) under TCG].
    #[arg(long, value_enum)]
    cpu: Option<CpuModel>,
    /// Initrd: tiny (busybox + virtio modules) or Debian's stock one.
    #[arg(long, value_enum, default_value = "tiny")]
    initrd: InitrdKind,
    /// Extra kernel argument (repeatable), after vm/guest/cmdline.txt.
    #[arg(long = "append", value_name = "ARG")]
    append: Vec<String>,
    /// Keep this run's console log and port files here [default: <cache>/runs/...].
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

/// `audit --host`, `harden --host`.
#[derive(clap::Args)]
struct HostArgs {
    /// No VM: on this machine, whose PID 1 must be systemd, as root, with
    /// the packages sandkasten and sandkasten-probe installed
    /// (scripts/install --probe; harden needs strace too). UNIT is a file
    /// (installed as a runtime unit for the run) or the name of a unit
    /// installed here, read with its drop-ins. The program must be
    /// installed here. The service is stopped while the run starts its own
    /// copies, and started again after; everything the run writes
    /// (runtime units, drop-ins) is removed at the end and on Ctrl-C.
    #[arg(long, conflicts_with_all = ["release", "systemd"])]
    host: bool,
    /// The reference units and their ablation maps [default: the
    /// workspace's units/].
    #[arg(long, value_name = "DIR")]
    units: Option<PathBuf>,
}

/// A unit of your own and what it needs, for `audit` and `harden`.
#[derive(clap::Args)]
struct UnitArgs {
    /// The service file; or, without a path and with --package, the unit
    /// as that Debian package ships it (`nginx.service --package nginx`),
    /// read from the guest image of each release.
    #[arg(value_name = "UNIT.service")]
    service: PathBuf,
    /// Its socket [default: the .socket the service Requires=, read from
    /// beside it].
    #[arg(value_name = "UNIT.socket")]
    socket: Option<PathBuf>,
    #[command(flatten)]
    yours: YourFiles,
}

impl UnitArgs {
    /// The unit for the job, and the Debian packages its guest needs.
    fn split(self) -> (YourUnit, Vec<String>) {
        let UnitArgs { service, socket, yours } = self;
        let unit = YourUnit {
            service,
            socket,
            binaries: yours.binaries,
            files: yours.files,
            sysusers: yours.sysusers,
        };
        (unit, yours.packages)
    }
}

/// Your program and files, for `exec --unit`, `audit` and `harden`.
#[derive(clap::Args)]
struct YourFiles {
    /// Install your program in the guest (repeatable): at DEST, or where
    /// the unit runs a program of the same name (ExecStart=).
    #[arg(long = "binary", value_name = "PATH[:DEST]")]
    binaries: Vec<String>,
    /// Lay a directory over the guest's root (repeatable), or put it at
    /// DEST: `--files site:/srv/www`.
    #[arg(long, value_name = "DIR[:DEST]")]
    files: Vec<String>,
    /// A sysusers.d file for a user the unit names with User=
    /// (repeatable); applied before the unit starts.
    #[arg(long, value_name = "FILE")]
    sysusers: Vec<PathBuf>,
    /// A Debian package the program needs in the guest (repeatable):
    /// `--package python3`. Each set of packages is a guest image of its
    /// own, built once (mmdebstrap, a minute or two) and cached.
    #[arg(long = "package", value_name = "NAME")]
    packages: Vec<String>,
}

/// How long and how often `bench` measures.
#[derive(clap::Args)]
struct BenchArgs {
    /// Rounds of each scenario and of the cold start, contenders alternated.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Seconds of each load.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    duration: f64,
}

impl BenchArgs {
    fn settings(&self) -> BenchSettings {
        BenchSettings { rounds: self.rounds.into(), duration: self.duration }
    }
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Debian release(s) of the guest: bookworm (systemd 252), trixie (257),
    /// sid (the newest), a comma-separated list, or all [default: bookworm;
    /// for lab: bookworm,trixie].
    #[arg(long, env = "SANDKASTEN_VM_RELEASE")]
    release: Option<Releases>,
    /// Image cache [default: $XDG_CACHE_HOME/sandkasten or ~/.cache/sandkasten].
    #[arg(long, env = "SANDKASTEN_VM_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Accelerator: auto proves KVM with a short probe boot, else TCG.
    #[arg(long, value_enum, default_value = "auto", env = "SANDKASTEN_VM_ACCEL")]
    accel: AccelRequest,
    /// The whole run's deadline per release in seconds [default: 180 under KVM, 900 under TCG].
    #[arg(long, env = "SANDKASTEN_VM_TIMEOUT")]
    timeout: Option<f64>,
    /// Seconds from qemu's start to the guest side's start; a boot that
    /// misses it has hung and is booted again, three boots at most
    /// [default: 30 under KVM, 60 under TCG].
    #[arg(long, env = "SANDKASTEN_VM_BOOT_DEADLINE")]
    boot_deadline: Option<f64>,
    /// A systemd under test: every Debian package in DIR (a local build,
    /// a backport) is installed in the guest over the release's own before
    /// systemd starts; the reports name the build. DIR needs every package
    /// of the systemd source the image has (bookworm: systemd,
    /// systemd-sysv, libsystemd0, libsystemd-shared, libudev1, udev) and
    /// what the new version adds.
    #[arg(long, value_name = "DIR")]
    systemd: Option<PathBuf>,
}

/// Where a matrix's reports go besides the terminal.
#[derive(clap::Args)]
struct OutputArgs {
    /// Write the report (ARCHITECTURE.md's schema; an array for more than
    /// one release) here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

impl OutputArgs {
    fn outputs(&self) -> jobs::Outputs<'_> {
        jobs::Outputs { json: self.json.as_deref(), junit: self.junit.as_deref() }
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
        c.accel = self.accel;
        c.payload_dir = self.payload.clone();
        c.cpu = self.cpu;
        c.initrd = self.initrd;
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
            eprintln!("sandkasten-vm: error: {}", said_once(&err));
            ExitCode::from(EXIT_HARNESS_FAILURE)
        }
    }
}

/// The error and its causes, each said once: an error whose message
/// already names its cause (`cannot read F: No such file`) is not followed
/// by that cause again.
fn said_once(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1).map(ToString::to_string) {
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Image { image, rebuild, max_age, packages } => {
            let cache = image.cache_dir();
            let recipe = Recipe::with_packages(image.release(), &packages)?;
            if let Some(days) = max_age.filter(|d| !(d.is_finite() && *d >= 0.0)) {
                anyhow::bail!("--max-age {days}: give a number of days, 0 or more");
            }
            let max_age = match max_age {
                Some(days) => Some(Duration::from_secs_f64(days * 86_400.0)),
                None => image.release().max_image_age(),
            };
            let built = if rebuild {
                Image::build(&recipe, &cache, &mut print_progress)
            } else {
                Image::ensure_fresh(&recipe, &cache, max_age, &mut print_progress)
            }
            .context("failed to build the guest image")?;
            let info = built.info();
            eprintln!("sandkasten-vm: image built {}: {}", info.built, info.packages.join(" "));
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
        Cmd::Matrix { boot, shard, outputs } => {
            exit(jobs::matrix(&boot.options()?, shard, outputs.outputs()))
        }
        Cmd::Merge { reports, outputs } => exit(jobs::merge(&reports, outputs.outputs())),
        Cmd::Ablate { boot, out: None, check: false, redraw: false, .. } if boot.systemd.is_some() => {
            the_committed_measurement_is_the_releases("ablate", "--check or --out DIR")
        }
        Cmd::Lab { boot, check: false, redraw: false } if boot.systemd.is_some() => {
            the_committed_measurement_is_the_releases("lab", "--check")
        }
        Cmd::Ablate { boot, units, out, check, redraw } => {
            let out = out.unwrap_or_else(|| payload::workspace_root().join("units/ablation"));
            exit(if redraw {
                jobs::redraw_maps(&out)
            } else {
                jobs::ablate(&boot.options()?, &units, &out, check)
            })
        }
        Cmd::Enforce { boot, check, host, units, json } => {
            let units = units.unwrap_or_else(|| payload::workspace_root().join("units"));
            exit(jobs::enforce(&boot.options()?, &units, check, host, json.as_deref()))
        }
        Cmd::Audit { unit, boot, json, check, host } => {
            let (unit, packages) = unit.split();
            let mut options = boot.options()?;
            options.packages = packages;
            let HostArgs { host, units } = host;
            exit(jobs::audit(&options, &AuditRequest { unit, json, check, host, units }))
        }
        Cmd::Harden { unit, boot, check, out, no_socket, json, host } => {
            let (unit, packages) = unit.split();
            let mut options = boot.options()?;
            options.packages = packages;
            let HostArgs { host, units } = host;
            exit(jobs::harden(&options, &HardenRequest { unit, check, out, json, no_socket, host, units }))
        }
        Cmd::Lab { redraw: true, .. } => exit(jobs::redraw_lab()),
        Cmd::Lab { boot, check, .. } => {
            let mut options = boot.options()?;
            if boot.release.is_none() {
                options.releases = sandkasten_vm::lab::RELEASES.to_vec();
            }
            exit(jobs::lab(&options, check))
        }
        Cmd::Reliability { boot, json } => exit(jobs::reliability(&boot.options()?, json.as_deref())),
        Cmd::Bench { boot, json, settings } => {
            exit(jobs::bench(&boot.options()?, settings.settings(), json.as_deref()))
        }
        Cmd::Guest { job } => Ok(ExitCode::from(sandkasten_vm::inside::run(&job) as u8)),
        Cmd::Exec { boot, timeout, boot_deadline, timings, unit, yours, command } => {
            let mut config = boot.config();
            config.timeout = timeout.map(Duration::from_secs_f64);
            config.boot_deadline = boot_deadline.map(Duration::from_secs_f64);
            config.packages = yours.packages;
            let request = ExecRequest {
                unit,
                command,
                timings,
                binaries: yours.binaries,
                files: yours.files,
                sysusers: yours.sysusers,
            };
            let status = jobs::exec(config, request)?;
            Ok(ExitCode::from(u8::try_from(status).unwrap_or(EXIT_HARNESS_FAILURE)))
        }
    }
}

impl MatrixArgs {
    /// The options of a run; a `--systemd` directory is read here, before
    /// anything is built.
    fn options(&self) -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            releases: self.release.as_ref().map_or(vec![Release::Bookworm], Releases::list),
            cache_dir: self.cache_dir.clone(),
            accel: self.accel,
            timeout: self.timeout.map(Duration::from_secs_f64),
            boot_deadline: self.boot_deadline.map(Duration::from_secs_f64),
            packages: Vec::new(),
            systemd: self.systemd.as_deref().map(SystemdDebs::read).transpose()?,
        })
    }
}

/// A usage error (exit 2): `--systemd` with a job that would write its
/// measurement over the committed one, which is the release's own systemd's.
fn the_committed_measurement_is_the_releases(job: &str, instead: &str) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "{job} --systemd would write a systemd under test's measurement over the release's own \
                 (units/); give {instead}"
            ),
        )
        .exit()
}

/// A job's answer as an exit status: 0 when it passed, 1 when not.
fn exit(passed: anyhow::Result<bool>) -> anyhow::Result<ExitCode> {
    Ok(if passed? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
