//! qemu: the command line and the child process.
//!
//! [`Qemu`] owns the child and kills and reaps it on drop, so no return path
//! (error, panic unwinding) leaves a guest running. The child also gets
//! `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the harness even when the
//! harness itself is killed (Ctrl-C, a test runner's timeout).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext};
use crate::machine::CpuModel;
use crate::machine::{Accel, Probe};

/// The qemu binary.
pub(crate) const QEMU: &str = "qemu-system-x86_64";

/// The qemu binary to run: `$SANDKASTEN_VM_QEMU` (a qemu built elsewhere, or
/// the tests' fake that crashes on purpose), else [`QEMU`] from `PATH`.
fn binary() -> std::ffi::OsString {
    std::env::var_os("SANDKASTEN_VM_QEMU").filter(|q| !q.is_empty()).unwrap_or_else(|| QEMU.into())
}

/// qboot: a minimal firmware that jumps straight to the kernel (Debian's
/// qemu-system-data ships it); measured faster than SeaBIOS.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// Where the guest's serial console goes.
#[derive(Debug, Clone)]
pub(crate) enum Serial {
    /// A log file (harness runs).
    File(PathBuf),
    /// The terminal, with qemu's monitor multiplexed (`sandkasten-vm shell`;
    /// Ctrl-A X quits).
    Stdio,
}

/// Everything one qemu invocation needs.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub accel: Accel,
    pub cpu: CpuModel,
    pub memory_mib: u32,
    pub smp: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// Booted with `snapshot=on`: writes go to a temporary overlay.
    pub root: PathBuf,
    /// The payload disk, `/dev/vdb` in the guest.
    pub payload: Option<PathBuf>,
    pub serial: Serial,
    /// virtio serial ports: (name in the guest, file on the host).
    pub ports: Vec<(&'static str, PathBuf)>,
}

/// The `-cpu` argument for `cpu` under `accel`.
pub(crate) fn cpu_arg(accel: Accel, cpu: CpuModel) -> &'static str {
    match (accel, cpu) {
        (Accel::Kvm, CpuModel::Host) => "host",
        (_, CpuModel::Max) => "max",
        // qemu64 lacks RDRAND; without it dbus waits for entropy (ARCHITECTURE.md, boot levers).
        (_, CpuModel::Qemu64) => "qemu64,+rdrand",
        // TCG cannot pass the host CPU through.
        (Accel::Tcg, CpuModel::Host) => "max",
    }
}

/// The full qemu command for `spec`.
pub(crate) fn command(spec: &Spec) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["-nodefaults", "-no-reboot", "-display", "none", "-nic", "none"]);
    cmd.args(["-machine", "pc", "-m", &spec.memory_mib.to_string(), "-smp", &spec.smp.to_string()]);
    cmd.args(["-accel", &spec.accel.to_string(), "-cpu", cpu_arg(spec.accel, spec.cpu)]);
    if Path::new(QBOOT).is_file() {
        cmd.args(["-bios", QBOOT]);
    }
    cmd.arg("-kernel").arg(&spec.kernel).arg("-initrd").arg(&spec.initrd);
    cmd.args(["-append", &spec.cmdline]);
    cmd.arg("-drive").arg(drive(&spec.root, true));
    if let Some(payload) = &spec.payload {
        cmd.arg("-drive").arg(drive(payload, false));
    }
    match &spec.serial {
        Serial::File(path) => cmd.arg("-serial").arg(format!("file:{}", path.display())),
        Serial::Stdio => cmd.args(["-serial", "mon:stdio"]),
    };
    if !spec.ports.is_empty() {
        cmd.args(["-device", "virtio-serial"]);
        for (i, (name, path)) in spec.ports.iter().enumerate() {
            cmd.arg("-chardev").arg(format!("file,id=port{i},path={}", comma_escape(path)));
            cmd.args(["-device", &format!("virtserialport,chardev=port{i},name={name}")]);
        }
    }
    cmd
}

/// `cmd` as a line a shell would run again (each word single-quoted as needed).
pub(crate) fn shell_line(cmd: &Command) -> String {
    let quote = |w: &str| {
        if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
            w.to_string()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn drive(path: &Path, snapshot: bool) -> String {
    let mut s = format!("file={},if=virtio,format=raw", comma_escape(path));
    if snapshot {
        s.push_str(",snapshot=on");
    }
    s
}

/// qemu option values escape a comma by doubling it.
fn comma_escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// A running qemu; killed and reaped when dropped.
pub(crate) struct Qemu {
    child: Child,
    started: Instant,
}

impl Qemu {
    /// Starts `cmd` (from [`command`]) with stdin from /dev/null and stderr
    /// to `stderr` (`None`: inherit the terminal, for the shell).
    pub(crate) fn spawn(mut cmd: Command, stderr: Option<&Path>) -> Result<Qemu, Error> {
        match stderr {
            Some(path) => {
                let file =
                    std::fs::File::create(path).ctx(|| format!("failed to create {}", path.display()))?;
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
            }
            None => {
                cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        die_with_parent(&mut cmd);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingTool { tool: QEMU, package: "qemu-system-x86" },
            _ => Error::Io { context: format!("failed to start {QEMU}"), source: e },
        })?;
        Ok(Qemu { child, started })
    }

    /// When qemu was started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// qemu's exit status, if it has exited.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child.try_wait().ctx(|| format!("failed to wait for {QEMU}"))
    }

    /// Waits for qemu to exit on its own.
    pub(crate) fn wait(&mut self) -> Result<ExitStatus, Error> {
        self.child.wait().ctx(|| format!("failed to wait for {QEMU}"))
    }

    /// Kills qemu (SIGKILL: the disk is a throw-away snapshot) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it dies:
/// qemu never outlives a harness that was itself killed. (Tied to the
/// spawning thread: callers wait for qemu on the thread that started it.)
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// qemu's version line (part of the probe cache key); empty when qemu is missing.
pub(crate) fn version() -> String {
    Command::new(binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// Deadline for the kernel's first line ("Linux version", printed through
/// `earlyprintk` once the kernel proper runs in long mode) under a working
/// KVM, which gets there in well under a second. Any earlier output proves
/// nothing: on this machine the real-mode setup code prints "Probing EDD"
/// under KVM and then the vCPU spins forever.
const PROBE_FIRST_OUTPUT: Duration = Duration::from_secs(3);
/// Deadline for the kernel to reach its "no root" panic.
const PROBE_TOTAL: Duration = Duration::from_secs(10);

/// Boots `kernel` under KVM with no disk: a working KVM prints at once and
/// panics for want of a root file system, and `panic=-1` + `-no-reboot` turn
/// that into a clean qemu exit.
pub(crate) fn probe_kvm(kernel: &Path) -> Probe {
    match probe_kvm_inner(kernel) {
        Ok(probe) => probe,
        Err(e) => Probe::Unusable(format!("probe failed to run: {e}")),
    }
}

fn probe_kvm_inner(kernel: &Path) -> Result<Probe, Error> {
    let dir = tempfile::tempdir().ctx(|| "failed to create a temporary directory".into())?;
    let console = dir.path().join("console.log");
    let stderr = dir.path().join("stderr.log");
    let mut cmd = Command::new(binary());
    cmd.args(["-nodefaults", "-no-reboot", "-display", "none", "-nic", "none", "-m", "256"]);
    cmd.args(["-accel", "kvm", "-cpu", "host"]);
    cmd.arg("-kernel").arg(kernel);
    cmd.args(["-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1"]);
    cmd.arg("-serial").arg(format!("file:{}", comma_escape(&console)));
    let mut qemu = Qemu::spawn(cmd, Some(&stderr))?;
    let printed = |p: &Path| std::fs::read_to_string(p).is_ok_and(|log| log.contains("Linux version"));
    loop {
        if let Some(status) = qemu.try_wait()? {
            let log = std::fs::read_to_string(&console).unwrap_or_default();
            if status.success() && log.contains("Kernel panic") {
                return Ok(Probe::Usable);
            }
            let err = crate::error::file_tail(&stderr, 3);
            return Ok(Probe::Unusable(format!("probe boot: qemu exited with {status}: {}", one_line(&err))));
        }
        let elapsed = qemu.started().elapsed();
        if elapsed > PROBE_FIRST_OUTPUT && !printed(&console) {
            return Ok(Probe::Unusable(format!(
                "probe boot: the kernel did not start within {} s under KVM",
                PROBE_FIRST_OUTPUT.as_secs()
            )));
        }
        if elapsed > PROBE_TOTAL {
            return Ok(Probe::Unusable(format!("probe boot did not finish in {} s", PROBE_TOTAL.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
