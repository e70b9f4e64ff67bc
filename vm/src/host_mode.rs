//! Host mode: a job carried out on the machine we run on, not in a guest
//! (`enforce --host`, `audit --host`, `harden --host`), by the same guest
//! side as in the VM ([`crate::inside`], which never imports this).
//!
//! An admin who copies a unit onto a host (a laptop, a container under
//! Incus, LXC or Proxmox, where nesting changes what systemd can do) asks
//! what that host enforces; a workshop participant on a laptop that is not
//! Debian hardens their service where it runs. The job's units are
//! installed as runtime units (`/run/systemd/system`: gone at the next
//! boot), then the same code as in the guest carries it out. Not
//! `systemd-run` transient units: a transient unit cannot be an
//! `Accept=yes` template, and the point is to run the very unit text the
//! VM runs.
//!
//! The job runs as in the guest, in a process of its own (`sandkasten-vm
//! guest JOB`, in its own process group): what crosses is the job and its
//! report.
//!
//! The machine is the admin's: a [`Session`] records everything it
//! changes (files, units started, a service it stopped) before it changes
//! it, and undoes it when it ends, when the job fails, and on Ctrl-C,
//! SIGTERM or SIGHUP: the job's processes are killed first, so that
//! nothing runs on while it is undone.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once, PoisonError};

use crate::contract::harden::{DROP_IN, RUNTIME_UNITS, TRACE_DROP_IN, WORK};
use crate::contract::paths::{CANARY_STATE, CANARY_UNIX_DIR, PROBE};
use crate::contract::{GuestJob, OUTPUT_DIR};
use crate::inside::systemd::{command, failure, QUERY_TIMEOUT};
use crate::passes::Staged;

/// The egress guard the reference sockets require.
const EGRESS_GUARD: &str = "sandkasten-egress.service";
/// The canary's interface and unit, made by every plan.
const CANARY_LINK: &str = "sk-canary";
const CANARY_UNIT: &str = "sandkasten-canary.service";

/// What a session changed on this machine, in the order to undo it.
#[derive(Debug, Default)]
struct Changes {
    /// Units it may have started: stopped and reset at the end.
    units: Vec<String>,
    /// Files it wrote: removed.
    files: Vec<PathBuf>,
    /// Directories it made: removed with what is in them.
    dirs: Vec<PathBuf>,
    /// Network interfaces it made: deleted.
    links: Vec<String>,
    /// Units that ran before it stopped them: started again.
    restart: Vec<String>,
}

/// The changes of the session under way; taken by whoever undoes them
/// first (the end of the session, or the signal handler, which holds the
/// lock until the process exits: nothing new is recorded, so nothing new
/// is made, after it).
static CHANGES: Mutex<Option<Changes>> = Mutex::new(None);
/// The process group of the job under way (0: none).
static JOB: AtomicI32 = AtomicI32::new(0);

fn record(change: impl FnOnce(&mut Changes)) {
    let mut changes = CHANGES.lock().unwrap_or_else(PoisonError::into_inner);
    change(changes.get_or_insert_with(Changes::default));
}

/// What a host job needs beyond PID 1 systemd and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The probe and the egress guard: a plan (enforce, audit).
    Probe,
    /// `strace`, to trace the program (harden).
    Strace,
}

/// A host job under way: everything it changes is undone when it is
/// dropped, or when the process is interrupted.
#[derive(Debug)]
pub struct Session {
    _private: (),
}

impl Session {
    /// Starts a session, or says why this machine cannot run `what` (the
    /// command, for the messages) with `needs`.
    pub fn begin(what: &str, needs: &[Needs]) -> Result<Session, String> {
        if let Some(why) = unfit(what, needs) {
            return Err(why);
        }
        static HANDLER: Once = Once::new();
        let mut installed = Ok(());
        HANDLER.call_once(|| {
            installed = ctrlc::set_handler(|| {
                eprintln!("sandkasten-vm: interrupted: undoing what host mode changed on this machine");
                let mut changes = CHANGES.lock().unwrap_or_else(PoisonError::into_inner);
                kill_job();
                if let Some(changes) = changes.take() {
                    changes.undo();
                }
                std::process::exit(130);
            })
            .map_err(|e| format!("cannot catch Ctrl-C, so host mode could not clean up after it: {e}"));
        });
        installed?;
        Ok(Session { _private: () })
    }

    /// Installs a runtime unit `name` with `text`, refusing when a unit of
    /// that name is loaded already (ours would shadow it, or be shadowed).
    pub fn install_unit(&self, name: &str, text: &str) -> Result<(), String> {
        let path = Path::new(RUNTIME_UNITS).join(name);
        if path.exists() {
            return Err(format!(
                "{} exists already: another run is under way, or one was interrupted (then remove it \
                 and run systemctl daemon-reload; a reboot clears it too)",
                path.display()
            ));
        }
        if let Some(fragment) = loaded_from(name) {
            return Err(format!(
                "{name} is installed on this host already ({fragment}): give the installed unit by its \
                 name alone, or the file under another name"
            ));
        }
        record(|c| {
            c.files.push(path.clone());
            c.units.push(name.to_owned());
        });
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Installs the unit file at `path` as a runtime unit of its own name
    /// ([`Session::install_unit`]).
    pub fn install_file(&self, path: &Path) -> Result<(), String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: no unit name", path.display()))?;
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.install_unit(name, &text)
    }

    /// Makes systemd read the units again.
    pub fn daemon_reload(&self) -> Result<(), String> {
        daemon_reload()
    }

    /// Stops each of `units` that runs now, to start it again at the end:
    /// the job starts its own copies on the same ports.
    pub fn stop_for_now(&self, units: &[String]) -> Result<(), String> {
        for unit in units {
            let state = command("systemctl", &["is-active", unit], QUERY_TIMEOUT)?;
            if !matches!(state.stdout.trim(), "active" | "activating" | "reloading") {
                continue;
            }
            eprintln!("sandkasten-vm: stopping {unit} while the job runs; it is started again at the end");
            record(|c| c.restart.push(unit.clone()));
            let out = command("systemctl", &["stop", unit], QUERY_TIMEOUT)?;
            if !out.status.success() {
                return Err(failure(&format!("systemctl stop {unit}"), &out));
            }
        }
        Ok(())
    }

    /// What harden does to `service` here, to be undone: its drop-ins in
    /// the runtime directory (the directory too, when it was not there),
    /// the socket of its socket-activated variant, its work directory.
    pub fn harden_writes(&self, service: &str, socket: &str) {
        let drop_ins = Path::new(RUNTIME_UNITS).join(format!("{service}.d"));
        let existed = drop_ins.is_dir();
        record(|c| {
            c.units.extend([service.to_owned(), socket.to_owned()]);
            c.files.extend([DROP_IN, TRACE_DROP_IN].map(|name| drop_ins.join(name)));
            c.files.push(Path::new(RUNTIME_UNITS).join(socket));
            if !existed {
                c.dirs.push(drop_ins);
            }
            c.dirs.push(PathBuf::from(WORK));
        });
    }

    /// Installs `staged`'s units, carries out its plan here: the events,
    /// one JSON line each, as the guest would have written them. What the
    /// plan made is undone with the session.
    pub fn carry_out(&self, staged: &Staged) -> Result<String, String> {
        record(|c| {
            c.units.push(CANARY_UNIT.to_owned());
            for pass in &staged.plan.passes {
                c.units.extend([pass.socket(), pass.instances(), pass.unit()]);
            }
            c.links.push(CANARY_LINK.to_owned());
            c.dirs.extend([OUTPUT_DIR, CANARY_UNIX_DIR].map(PathBuf::from));
            c.dirs.extend(Path::new(CANARY_STATE).parent().map(Path::to_owned));
        });
        for generated in &staged.units {
            self.install_unit(&generated.service_name, &generated.service)?;
            if let (Some(name), Some(text)) = (&generated.socket_name, &generated.socket) {
                self.install_unit(name, text)?;
            }
        }
        daemon_reload()?;
        eprintln!("sandkasten-vm: {} test passes on this host", staged.plan.passes.len());
        let (output, _) = self.run_job(&GuestJob::Plan { plan: staged.plan.clone() })?;
        Ok(String::from_utf8_lossy(&output).into_owned())
    }

    /// Does `job` here as the guest would (`sandkasten-vm guest JOB`, this
    /// very binary, its progress on our stderr): what it wrote on stdout,
    /// and its exit status.
    pub fn run_job(&self, job: &GuestJob) -> Result<(Vec<u8>, i32), String> {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("the job's file: {e}"))?;
        serde_json::to_writer(&mut file, job).map_err(|e| format!("the job's file: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("where this program is: {e}"))?;
        let mut child = {
            // Recorded under the lock: an interrupt kills what started.
            let _changes = CHANGES.lock().unwrap_or_else(PoisonError::into_inner);
            let child = Command::new(&exe)
                .arg("guest")
                .arg(file.path())
                .stdout(Stdio::piped())
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot run {} guest: {e}", exe.display()))?;
            JOB.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
            child
        };
        let mut output = Vec::new();
        let read = child.stdout.take().map(|mut out| out.read_to_end(&mut output));
        let status = child.wait().map_err(|e| format!("the job: {e}"));
        JOB.store(0, Ordering::SeqCst);
        if let Some(Err(e)) = read {
            return Err(format!("the job's output: {e}"));
        }
        Ok((output, status?.code().unwrap_or(-1)))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Held while undoing: an interrupt now waits, then finds nothing left.
        let mut changes = CHANGES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(changes) = changes.take() {
            changes.undo();
        }
    }
}

/// Kills the job under way and every process it started.
fn kill_job() {
    let group = JOB.load(Ordering::SeqCst);
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// `enforce --host`: `staged`'s units installed, its plan carried out
/// here, everything removed again.
pub fn run(staged: &Staged) -> Result<String, String> {
    Session::begin("enforce", &[Needs::Probe])?.carry_out(staged)
}

/// The file a loaded unit `name` comes from, if systemd knows one.
pub fn loaded_from(name: &str) -> Option<String> {
    let out = command("systemctl", &["show", "-p", "LoadState,FragmentPath", name], QUERY_TIMEOUT).ok()?;
    let value = |key: &str| out.stdout.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("").to_owned();
    (value("LoadState=") == "loaded").then(|| value("FragmentPath="))
}

/// Why this machine cannot run host mode, if it cannot: PID 1 must be
/// systemd, we must be root, and what `needs` names must be there.
fn unfit(what: &str, needs: &[Needs]) -> Option<String> {
    // sd_booted(3): systemd creates this directory at boot.
    if !Path::new("/run/systemd/system").is_dir() {
        let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        return Some(format!(
            "this machine's PID 1 is not systemd (it is {:?}): host mode needs systemd to start the test \
             units; measure in a VM instead: sandkasten-vm {what} --release RELEASE",
            init.trim()
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Some(format!(
            "host mode starts units and must run as root (sudo sandkasten-vm {what} --host)"
        ));
    }
    if needs.contains(&Needs::Probe) {
        if !Path::new(PROBE).is_file() {
            return Some(format!(
                "host mode needs the probe at {PROBE}: install the package sandkasten-probe first \
                 (scripts/install --probe)"
            ));
        }
        let load = command("systemctl", &["show", "-p", "LoadState", "--value", EGRESS_GUARD], QUERY_TIMEOUT);
        if !load.is_ok_and(|out| out.stdout.trim() == "loaded") {
            return Some(format!(
                "host mode needs {EGRESS_GUARD}, which the reference sockets require: install the \
                 package sandkasten first (scripts/install --probe)"
            ));
        }
    }
    if needs.contains(&Needs::Strace) && command("strace", &["-V"], QUERY_TIMEOUT).is_err() {
        return Some(format!(
            "{what} --host traces the program with strace, which is not installed here: install it \
             (apt install strace, dnf install strace, pacman -S strace)"
        ));
    }
    None
}

fn daemon_reload() -> Result<(), String> {
    let out = command("systemctl", &["daemon-reload"], QUERY_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failure("systemctl daemon-reload", &out))
    }
}

impl Changes {
    /// Undoes the changes: best effort, every step tried.
    fn undo(self) {
        if !self.units.is_empty() {
            let mut args = vec!["stop"];
            args.extend(self.units.iter().map(String::as_str));
            let _ = command("systemctl", &args, QUERY_TIMEOUT);
            args[0] = "reset-failed";
            let _ = command("systemctl", &args, QUERY_TIMEOUT);
        }
        for path in &self.files {
            let _ = std::fs::remove_file(path);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = daemon_reload();
        for link in &self.links {
            let _ = command("ip", &["link", "del", link], QUERY_TIMEOUT);
        }
        for unit in &self.restart {
            match command("systemctl", &["start", unit], QUERY_TIMEOUT) {
                Ok(out) if out.status.success() => eprintln!("sandkasten-vm: started {unit} again"),
                Ok(out) => eprintln!("sandkasten-vm: {}", failure(&format!("systemctl start {unit}"), &out)),
                Err(e) => eprintln!("sandkasten-vm: could not start {unit} again: {e}"),
            }
        }
    }
}
