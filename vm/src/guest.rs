//! Booting runs: [`Guest`] (an image and an accelerator, prepared once) and
//! [`Run`] (what one boot reported).
//!
//! One run:
//! 1. Stage the payload (the caller's directory, plus `.sandkasten/argv` for a
//!    command) and pack it into `payload.img` with `mkfs.ext4 -d`; the guest
//!    sees it as `/dev/vdb` on `/payload`. The root image is shared by all runs
//!    and booted with `snapshot=on`, which saves copying and packing the
//!    whole root file system per run.
//! 2. Start qemu; poll the three port files and qemu's status every 20 ms
//!    against one deadline (scaled to the accelerator).
//! 3. On `end STATUS` kill qemu (the guest would only power off) and return.
//!    A qemu that dies with an error before any result is retried once; a
//!    guest that stops without a result, or the deadline, is an error that
//!    carries the last 40 console lines.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::accel::{self, Accel, AccelRequest, Decision};
use crate::error::{file_tail, Error, IoContext};
use crate::image::{self, Image, Release};
use crate::process::{self, secs};
use crate::qemu::{self, Qemu, Serial, Spec};

/// The CPU model qemu emulates (`-cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuModel {
    /// `qemu64,+rdrand`: the fastest under TCG here (DESIGN.md); RDRAND keeps
    /// dbus from waiting for entropy. Lacks SSE4.2: payloads must be built for
    /// baseline x86-64.
    Qemu64,
    /// `max`: every feature TCG can emulate.
    Max,
    /// `host` under KVM (`max` under TCG).
    Host,
}

/// Which initrd boots the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitrdKind {
    /// Busybox + seven modules + switch_root: the fastest.
    #[default]
    Tiny,
    /// Debian's initramfs-tools image (udev, scripts): for comparison.
    Stock,
}

/// What to boot and run. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Debian release of the guest.
    pub release: Release,
    /// `auto` probes KVM once and falls back to TCG.
    pub accel: AccelRequest,
    /// A directory copied to `/payload` in the guest (binaries, units, a
    /// script). Its `overlay/` subdirectory, if any, is copied onto `/` before
    /// systemd starts (tiny initrd) or before the command (stock initrd).
    pub payload_dir: Option<PathBuf>,
    /// The command to run as root in `/payload`; `None` runs `/payload/run`.
    pub command: Option<Vec<OsString>>,
    /// The whole run's deadline; `None`: 60 s under KVM, 300 s under TCG.
    pub timeout: Option<Duration>,
    /// `None`: `host` under KVM, `qemu64,+rdrand` under TCG.
    pub cpu: Option<CpuModel>,
    /// The initrd to boot with.
    pub initrd: InitrdKind,
    /// Extra kernel arguments after `vm/guest/cmdline.txt` (debugging,
    /// measuring boot levers; e.g. `systemd.log_level=debug`).
    pub extra_cmdline: Vec<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs (DESIGN.md: 1 is much slower than 2 under TCG).
    pub smp: u32,
    /// Images, probe cache and run logs; `None`: [`crate::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Where this run's console log (and port files) go; `None`: a fresh
    /// directory under `<cache>/runs/` (the newest 30 are kept).
    pub run_dir: Option<PathBuf>,
}

impl Config {
    /// Defaults: auto accelerator, tiny initrd, 1 GiB, 2 vCPUs, `/payload/run`.
    pub fn new(release: Release) -> Config {
        Config {
            release,
            accel: AccelRequest::Auto,
            payload_dir: None,
            command: None,
            timeout: None,
            cpu: None,
            initrd: InitrdKind::Tiny,
            extra_cmdline: Vec::new(),
            memory_mib: 1024,
            smp: 2,
            cache_dir: None,
            run_dir: None,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(crate::default_cache_dir)
    }
}

/// Progress of image builds and runs, for a UI or a test to follow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A stage of an image build or a run, with the time since it began.
    Progress {
        /// The stage ("bootstrap", "payload", ...).
        stage: String,
        /// Time since the build or run began.
        elapsed: Duration,
        /// A human line.
        detail: String,
    },
    /// The accelerator was chosen.
    Accel(Decision),
    /// qemu was started (attempt 1, or 2 after a crash).
    QemuStarted {
        /// 1 or 2.
        attempt: u32,
    },
    /// The guest script started.
    ScriptStarted {
        /// Since qemu started.
        after: Duration,
    },
    /// Bytes the guest command wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes the guest command wrote to stderr.
    Stderr(Vec<u8>),
    /// The guest script ended.
    ScriptEnded {
        /// Its exit status.
        status: i32,
        /// Since qemu started.
        after: Duration,
    },
    /// qemu crashed before a result and is started once more.
    Retry {
        /// qemu's exit status and stderr tail.
        reason: String,
    },
}

/// Prints progress, accelerator and retry events to stderr as
/// `sandkasten-vm: ...` lines (guest output is not printed).
pub fn print_progress(event: &Event) {
    match event {
        Event::Progress { stage, elapsed, detail } => {
            eprintln!("sandkasten-vm: [{:>6}] {stage}: {detail}", secs(*elapsed))
        }
        Event::Accel(d) => eprintln!("sandkasten-vm: {}", d.note),
        Event::Retry { reason } => eprintln!("sandkasten-vm: qemu crashed ({reason}); retrying once"),
        _ => {}
    }
}

/// Wall-clock times of one run, measured on the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Staging the payload and `mkfs.ext4` of its disk.
    pub payload: Duration,
    /// qemu start → the guest script's `start` line.
    pub to_script_start: Duration,
    /// The guest script's `start` → `end` line.
    pub script: Duration,
    /// qemu start → qemu gone.
    pub qemu: Duration,
    /// The guest's uptime (kernel start → script start), as the guest saw it.
    pub guest_uptime_at_start: f64,
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The accelerator it ran under.
    pub accel: Accel,
    /// The guest command's exit status (128+N for signal N).
    pub status: i32,
    /// Everything the command wrote to stdout (the `sandkasten.results` port).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// The serial console log, kept after the run.
    pub console_log: PathBuf,
    /// Host-side timings.
    pub timings: Timings,
    /// 1, or 2 when qemu crashed once.
    pub attempts: u32,
}

impl Run {
    /// The bytes the guest wrote to the results port (its stdout).
    pub fn result(&self) -> &[u8] {
        &self.stdout
    }
    /// Whether the guest command exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A built image and a chosen accelerator, ready to boot runs from.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The cached image.
    pub image: Image,
    /// The accelerator and why.
    pub decision: Decision,
    cache_dir: PathBuf,
}

impl Guest {
    /// Builds or reuses the image for `config.release` and chooses the
    /// accelerator (probing KVM for `auto`). Call once, run many times.
    pub fn prepare(config: &Config, on_event: &mut dyn FnMut(&Event)) -> Result<Guest, Error> {
        process::require_tool("mkfs.ext4", "e2fsprogs")?;
        let cache_dir = config.cache_dir();
        let image = Image::ensure(config.release, &cache_dir, on_event)?;
        let decision = accel::decide(config.accel, accel::kvm_device(), || {
            accel::probe_cached(&cache_dir, &image.kernel())
        });
        on_event(&Event::Accel(decision.clone()));
        Ok(Guest { image, decision, cache_dir })
    }

    /// Prepares and runs once, printing progress to stderr
    /// ([`print_progress`]).
    pub fn boot(config: &Config) -> Result<Run, Error> {
        Guest::boot_with(config, &mut print_progress)
    }

    /// Prepares and runs once, reporting to `on_event`.
    pub fn boot_with(config: &Config, on_event: &mut dyn FnMut(&Event)) -> Result<Run, Error> {
        Guest::prepare(config, on_event)?.run(config, on_event)
    }

    /// The accelerator runs use.
    pub fn accel(&self) -> Accel {
        self.decision.accel
    }

    /// Boots the guest once and runs `config.command` (or `/payload/run`).
    /// `config.release` and `config.accel` were settled by [`Guest::prepare`].
    pub fn run(&self, config: &Config, on_event: &mut dyn FnMut(&Event)) -> Result<Run, Error> {
        if config.command.is_none() && !config.payload_dir.as_ref().is_some_and(|d| d.join("run").is_file()) {
            return Err(Error::Config("no command given and the payload has no run script".into()));
        }
        let scratch = tempfile::Builder::new()
            .prefix("sandkasten-vm-")
            .tempdir()
            .ctx(|| "failed to create a scratch directory".into())?;
        let started = Instant::now();
        let payload = scratch.path().join("payload.img");
        build_payload(config, scratch.path(), &payload)?;
        let payload_time = started.elapsed();
        on_event(&Event::Progress {
            stage: "payload".into(),
            elapsed: payload_time,
            detail: "payload.img ready".into(),
        });

        let run_dir = match &config.run_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).ctx(|| format!("failed to create {}", dir.display()))?;
                dir.clone()
            }
            None => new_run_dir(&self.cache_dir)?,
        };
        let accel = self.accel();
        let timeout = config.timeout.unwrap_or_else(|| accel.default_timeout());
        let mut attempt = 1;
        loop {
            match self.attempt(config, &payload, &run_dir, timeout, attempt, on_event) {
                Err(Error::QemuFailed { status, stderr, .. }) if attempt == 1 => {
                    on_event(&Event::Retry { reason: format!("{status}: {}", stderr.trim()) });
                    attempt += 1;
                }
                Ok(mut run) => {
                    run.timings.payload = payload_time;
                    return Ok(run);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spec(&self, config: &Config, payload: Option<PathBuf>, serial: Serial, unit: &str) -> Spec {
        let accel = self.accel();
        let cpu = config.cpu.unwrap_or(match accel {
            Accel::Kvm => CpuModel::Host,
            Accel::Tcg => CpuModel::Qemu64,
        });
        let initrd = match config.initrd {
            InitrdKind::Tiny => self.image.tiny_initrd(),
            InitrdKind::Stock => self.image.stock_initrd(),
        };
        let mut cmdline = format!("{} systemd.unit={unit}", image::kernel_cmdline());
        for arg in &config.extra_cmdline {
            cmdline.push(' ');
            cmdline.push_str(arg);
        }
        Spec {
            accel,
            cpu,
            memory_mib: config.memory_mib,
            smp: config.smp,
            kernel: self.image.kernel(),
            initrd,
            cmdline,
            root: self.image.rootfs(),
            payload,
            serial,
            ports: Vec::new(),
        }
    }

    fn attempt(
        &self,
        config: &Config,
        payload: &Path,
        run_dir: &Path,
        timeout: Duration,
        attempt: u32,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Run, Error> {
        let console_log = run_dir.join("console.log");
        let qemu_stderr = run_dir.join("qemu-stderr.log");
        let mut spec =
            self.spec(config, Some(payload.to_path_buf()), Serial::File(console_log.clone()), HARNESS_TARGET);
        let mut ports = Vec::new();
        for name in ["sandkasten.control", "sandkasten.results", "sandkasten.stderr"] {
            let path = run_dir.join(format!("{name}.out"));
            // qemu appends to an existing file; each attempt starts empty.
            File::create(&path).ctx(|| format!("failed to create {}", path.display()))?;
            spec.ports.push((name, path.clone()));
            ports.push(Tail::new(path));
        }
        let [mut control, mut results, mut errors] = <[Tail; 3]>::try_from(ports).expect("three ports");

        let cmd = qemu::command(&spec);
        // For reproducing a run by hand.
        let line = qemu::shell_line(&cmd);
        let cmd_file = run_dir.join("qemu-command.sh");
        std::fs::write(&cmd_file, format!("{line}\n"))
            .ctx(|| format!("failed to write {}", cmd_file.display()))?;
        let mut qemu = Qemu::spawn(cmd, Some(&qemu_stderr))?;
        on_event(&Event::QemuStarted { attempt });
        let t0 = qemu.started();
        let deadline = t0 + timeout;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut lines = String::new();
        let mut start: Option<(Duration, f64)> = None;
        let mut end: Option<(i32, Duration)> = None;
        loop {
            let exited = qemu.try_wait()?;
            // Read after try_wait: what qemu wrote before exiting is seen.
            let out = results.read_new()?;
            if !out.is_empty() {
                on_event(&Event::Stdout(out.clone()));
                stdout.extend(out);
            }
            let err = errors.read_new()?;
            if !err.is_empty() {
                on_event(&Event::Stderr(err.clone()));
                stderr.extend(err);
            }
            lines.push_str(&String::from_utf8_lossy(&control.read_new()?));
            while let Some(nl) = lines.find('\n') {
                let line: String = lines.drain(..=nl).collect();
                match parse_control(line.trim_end())? {
                    ControlLine::Start { uptime } => {
                        let after = t0.elapsed();
                        start = Some((after, uptime));
                        on_event(&Event::ScriptStarted { after });
                    }
                    ControlLine::End { status } => {
                        let after = t0.elapsed();
                        end = Some((status, after));
                        on_event(&Event::ScriptEnded { status, after });
                    }
                }
            }
            if let Some((status, ended)) = end {
                // The result is complete; the guest would only power off now.
                qemu.kill();
                let (to_start, uptime) = start.unwrap_or((ended, 0.0));
                return Ok(Run {
                    accel: self.accel(),
                    status,
                    stdout,
                    stderr,
                    console_log,
                    timings: Timings {
                        payload: Duration::ZERO,
                        to_script_start: to_start,
                        script: ended.saturating_sub(to_start),
                        qemu: t0.elapsed(),
                        guest_uptime_at_start: uptime,
                    },
                    attempts: attempt,
                });
            }
            if let Some(status) = exited {
                let console_tail = file_tail(&console_log, 40);
                if !status.success() {
                    return Err(Error::QemuFailed {
                        status: status.to_string(),
                        stderr: file_tail(&qemu_stderr, 10),
                        console_log,
                        console_tail,
                    });
                }
                return Err(Error::NoResult { console_log, console_tail });
            }
            if Instant::now() >= deadline {
                qemu.kill();
                return Err(Error::Timeout {
                    after: timeout,
                    accel: self.accel(),
                    console_tail: file_tail(&console_log, 40),
                    console_log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Boots with the serial console on the terminal (`-serial mon:stdio`,
    /// Ctrl-A X quits) into `sandkasten-shell.target`: root logged in on
    /// ttyS0, the harness runner not started. Returns qemu's exit status.
    pub fn shell(&self, config: &Config) -> Result<ExitStatus, Error> {
        let scratch = tempfile::Builder::new()
            .prefix("sandkasten-vm-")
            .tempdir()
            .ctx(|| "failed to create a scratch directory".into())?;
        let payload = match &config.payload_dir {
            Some(_) => {
                let img = scratch.path().join("payload.img");
                build_payload(config, scratch.path(), &img)?;
                Some(img)
            }
            None => None,
        };
        let spec = self.spec(config, payload, Serial::Stdio, SHELL_TARGET);
        let mut qemu = Qemu::spawn(qemu::command(&spec), None)?;
        qemu.wait()
    }
}

/// The boot target of harness runs.
const HARNESS_TARGET: &str = "sandkasten-harness.target";
/// The boot target of the debug shell.
const SHELL_TARGET: &str = "sandkasten-shell.target";

/// A line on the control port.
#[derive(Debug, PartialEq)]
enum ControlLine {
    Start { uptime: f64 },
    End { status: i32 },
}

fn parse_control(line: &str) -> Result<ControlLine, Error> {
    let bad = || Error::Protocol(line.to_string());
    let mut words = line.split_whitespace();
    match words.next() {
        Some("start") => {
            Ok(ControlLine::Start { uptime: words.next().and_then(|u| u.parse().ok()).unwrap_or(0.0) })
        }
        Some("end") => {
            Ok(ControlLine::End { status: words.next().and_then(|s| s.parse().ok()).ok_or_else(bad)? })
        }
        _ => Err(bad()),
    }
}

/// Follows a file that qemu appends to.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0 }
    }

    fn read_new(&mut self) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::new();
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(buf),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("failed to open {}", self.path.display()),
                    source: e,
                })
            }
        };
        file.seek(SeekFrom::Start(self.offset)).ctx(|| format!("failed to seek {}", self.path.display()))?;
        file.read_to_end(&mut buf).ctx(|| format!("failed to read {}", self.path.display()))?;
        self.offset += buf.len() as u64;
        Ok(buf)
    }
}

/// Stages the payload under `scratch/payload` and packs it into `img`.
fn build_payload(config: &Config, scratch: &Path, img: &Path) -> Result<(), Error> {
    let stage = scratch.join("payload");
    std::fs::create_dir_all(&stage).ctx(|| format!("failed to create {}", stage.display()))?;
    if let Some(dir) = &config.payload_dir {
        if !dir.is_dir() {
            return Err(Error::Config(format!("payload {} is not a directory", dir.display())));
        }
        // cp -a keeps modes, symlinks and ownership; --reflink shares blocks
        // where the file system can.
        let mut cp = Command::new("cp");
        cp.args(["-a", "--reflink=auto", "-T"]).arg(dir).arg(&stage);
        process::run_captured(&mut cp, "cp")?;
    }
    if let Some(argv) = &config.command {
        if argv.is_empty() {
            return Err(Error::Config("empty command".into()));
        }
        let meta = stage.join(".sandkasten");
        std::fs::create_dir_all(&meta).ctx(|| format!("failed to create {}", meta.display()))?;
        let mut bytes = Vec::new();
        for arg in argv {
            use std::os::unix::ffi::OsStrExt;
            if arg.as_bytes().contains(&0) {
                return Err(Error::Config("a command argument contains a NUL byte".into()));
            }
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        std::fs::write(meta.join("argv"), bytes).ctx(|| "failed to write the command".into())?;
    }
    // Room for what the payload holds plus what a guest script writes there.
    let size_mib = dir_size(&stage) / (1 << 20) * 3 / 2 + 32;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "sandkasten-payload", "-d"])
        .arg(&stage)
        .arg(img)
        .arg(format!("{size_mib}M"));
    process::run_captured(&mut mkfs, "mkfs.ext4")
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// A fresh `<cache>/runs/<time>-<pid>/`; older ones beyond the newest 30 go.
fn new_run_dir(cache_dir: &Path) -> Result<PathBuf, Error> {
    let runs = cache_dir.join("runs");
    std::fs::create_dir_all(&runs).ctx(|| format!("failed to create {}", runs.display()))?;
    let mut old: Vec<PathBuf> = std::fs::read_dir(&runs)
        .ctx(|| format!("failed to list {}", runs.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    old.sort();
    if old.len() >= 30 {
        for dir in &old[..old.len() - 29] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-{}-", now.as_millis(), std::process::id()))
        .tempdir_in(&runs)
        .ctx(|| format!("failed to create a run directory in {}", runs.display()))?
        .keep();
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        assert_eq!(parse_control("start 9.85").unwrap(), ControlLine::Start { uptime: 9.85 });
        assert_eq!(parse_control("end 3 10.2").unwrap(), ControlLine::End { status: 3 });
        assert!(parse_control("end").is_err());
        assert!(parse_control("garbage").is_err());
    }
}
