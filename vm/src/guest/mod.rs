//! Booting runs: [`Guest`] (an image and an accelerator, prepared once) and
//! [`Run`] (what one boot reported). This module is the run loop; the
//! pieces it uses each have their own: `config` (what to boot),
//! [`crate::progress`] (events a caller follows), `payload_disk` (packing
//! `payload.img`), `ports` (the guest's port files and control lines) and
//! `run_dir` (per-run log directories).
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
//!    Two failures of the machine, not of the guest's work, are booted
//!    again, up to [`BOOTS`] boots in all: a qemu that dies with an error before any result, and a boot
//!    that never reaches the script's `start` line (seen under TCG on a
//!    loaded host: both vCPUs in the kernel's soft-lockup report from the
//!    first seconds on, the guest never coming back). A guest that stops
//!    without a result, or the whole run's deadline, is an error that
//!    carries the last 40 console lines.

mod config;
mod payload_disk;
mod ports;
mod run_dir;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

pub use crate::machine::{CpuModel, InitrdKind};
pub use crate::progress::{print_progress, Event};
pub use config::Config;

use crate::accel::{self, Accel, Decision};
use crate::error::{file_tail, Error, IoContext};
use crate::image::{self, Image};
use crate::process;
use crate::qemu::{self, Qemu, Serial, Spec};
use payload_disk::build_payload;
use ports::{parse_control, ControlLine, Tail};
use run_dir::new_run_dir;

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
    /// 1, or up to [`BOOTS`] when qemu crashed or the boot hung.
    pub attempts: u32,
    /// The image it booted, for the report ([`crate::contract::GuestInfo`]'s
    /// `image`).
    pub image: crate::contract::ImageInfo,
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
        let recipe = image::Recipe::with_packages(config.release, &config.packages)?;
        let image = Image::ensure(&recipe, &cache_dir, on_event)?;
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
        let deadlines = Deadlines {
            run: config.timeout.unwrap_or_else(|| accel.default_timeout()),
            boot: config.boot_deadline.unwrap_or_else(|| accel.default_boot_deadline()),
        };
        let mut attempt = 1;
        loop {
            match self.attempt(config, &payload, &run_dir, deadlines, attempt, on_event) {
                Err(e @ (Error::QemuFailed { .. } | Error::BootHung { .. })) if attempt < BOOTS => {
                    on_event(&Event::Retry { reason: e.machine_failure() });
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
        deadlines: Deadlines,
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
        let deadline = t0 + deadlines.run;
        let boot_deadline = t0 + deadlines.boot;
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
                    image: self.image.info(),
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
            if start.is_none() && Instant::now() >= boot_deadline && boot_deadline < deadline {
                qemu.kill();
                return Err(Error::BootHung {
                    after: deadlines.boot,
                    accel: self.accel(),
                    console_tail: file_tail(&console_log, 40),
                    console_log,
                });
            }
            if Instant::now() >= deadline {
                qemu.kill();
                return Err(Error::Timeout {
                    after: deadlines.run,
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

/// Boots of one run at most: the first, and two more after a qemu crash or
/// a hung boot. Hangs came in a pair 5 minutes apart in one CI run (2 of
/// about 60 boots) and in none of about 150 in the run before it, so a
/// single retry would not have been enough margin.
pub const BOOTS: u32 = 3;

/// How long one attempt may take: to the script's `start` line, and in all.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    run: Duration,
    boot: Duration,
}

/// The boot target of harness runs.
const HARNESS_TARGET: &str = "sandkasten-harness.target";
/// The boot target of the debug shell.
const SHELL_TARGET: &str = "sandkasten-shell.target";
