//! What every attempt may consult: the options, the run id, and the canary's
//! view of the host.
//!
//! The canary's view matters because the probe usually runs inside the very
//! sandbox it tests: anything it learns about the machine from inside (is
//! there a `/dev/mem`? does the kernel have `kexec_load`?) may already be the
//! sandbox's doing. Facts that decide between `blocked` and `unsupported`
//! therefore come from the canary, which records them in the root namespaces
//! before the probe starts.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::canary::{CanaryState, MARKER_PREFIX};
use crate::sys::{self, Errno};
use crate::verdict::{Outcome, Unsupported};

/// Options of a probe run (or of one `run-one` process). The runner builds
/// one [`Ctx`] from them, which every attempt's forked child shares.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The canary's state file (written by `sandkasten-probe canary`).
    /// Without it, attempts that need a target outside the sandbox report
    /// `unsupported`.
    #[arg(long, env = "SANDKASTEN_CANARY", value_name = "FILE")]
    pub canary: Option<PathBuf>,

    /// Names this run in marker files and in the tokens the canary records
    /// (letters, digits, `-` and `_`; random when omitted). The canary's
    /// signal and ptrace targets receive no token and read the run id from
    /// the probe's command line: given here, their events name the run.
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,

    /// Leave marker files in place so the harness can look for them from
    /// outside (`canary-report` lists and removes them).
    #[arg(long)]
    pub keep_markers: bool,

    /// The served content directory that `fs.write-content` tries to modify.
    #[arg(long, value_name = "DIR", default_value = "/usr/share/sandkasten")]
    pub content_dir: PathBuf,

    /// The D-Bus system bus socket `net.dbus` connects to.
    #[arg(long, value_name = "PATH", default_value = "/run/dbus/system_bus_socket")]
    pub dbus_socket: PathBuf,

    /// A directory the probe may write its scratch files into (else the
    /// first writable of the unit's directories ($STATE_DIRECTORY,
    /// $RUNTIME_DIRECTORY, $CACHE_DIRECTORY, $LOGS_DIRECTORY), $TMPDIR, /tmp,
    /// /var/tmp, /dev/shm).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// Tasks `res.fork-bomb` creates at most before it calls it an escape
    /// (capped at 2000).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub fork_limit: u32,

    /// MiB `res.memory` touches at most before it calls it an escape
    /// (capped at 512).
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub memory_mib: u32,
}

fn parse_run_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a run id is 1 to 32 letters, digits, '-' or '_'".to_owned())
    }
}

/// Everything an attempt function receives.
#[derive(Debug)]
pub struct Ctx {
    /// The options of this run.
    pub opts: Options,
    /// The run id (given or random).
    pub run_id: String,
    /// The canary's state, when `--canary` was given and readable.
    pub canary: Option<CanaryState>,
    /// Why the canary state could not be read, when `--canary` was given.
    pub canary_error: Option<String>,
}

impl Ctx {
    /// Builds the context; a `--canary` file that cannot be read is kept as
    /// an error that canary-based attempts report (as `error`, not
    /// `unsupported`: the harness asked for a canary and did not get one).
    pub fn new(opts: Options, run_id: String) -> Ctx {
        let (canary, canary_error) = match &opts.canary {
            None => (None, None),
            Some(path) => match CanaryState::load(path) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            },
        };
        Ctx { opts, run_id, canary, canary_error }
    }

    /// The line an attempt sends to a canary, so the canary's report names
    /// the run and the attempt that reached it.
    pub fn token(&self, id: &str) -> String {
        format!("sandkasten-probe {} {}", self.run_id, id)
    }

    /// The file name of a marker left by attempt `id`; `canary-report` finds
    /// markers by the `.sandkasten-probe.` prefix.
    pub fn marker_name(&self, id: &str) -> String {
        format!("{}{}.{}", MARKER_PREFIX, self.run_id, id)
    }

    /// The canary state, or the outcome to report without one.
    pub fn need_canary(&self) -> Result<&CanaryState, Outcome> {
        match (&self.canary, &self.canary_error) {
            (Some(c), _) => Ok(c),
            (None, Some(e)) => Err(Outcome::failed(format!("cannot read the canary state: {e}"))),
            (None, None) => Err(Outcome::unsupported(
                Unsupported::NoCanary,
                "needs a target outside the sandbox: run `sandkasten-probe canary` first and pass --canary FILE",
            )),
        }
    }

    /// Whether this process shares namespace `kind` with the canary (None
    /// without a canary or when either side cannot tell).
    pub fn same_ns_as_host(&self, kind: &str) -> Option<bool> {
        let host = self.canary.as_ref()?.host.namespaces.get(kind).copied()?;
        Some(sys::ns_inode(kind)? == host)
    }

    /// The outcome for an ENOSYS from the attempt's syscall `feature`.
    ///
    /// If the canary saw the syscall work on the host, ENOSYS here is the
    /// sandbox's doing and is reported as such (an `error` unless accepted).
    /// If the host lacks it too, the attempt is `unsupported`.
    pub fn enosys(&self, feature: &str, what: &str) -> Outcome {
        match self.canary.as_ref().and_then(|c| c.host.features.get(feature).copied()) {
            Some(true) => {
                Outcome::errno(Errno(libc::ENOSYS), format!("{what} (the host kernel has {feature})"))
            }
            Some(false) => Outcome::unsupported(
                Unsupported::Kernel,
                format!("the kernel has no {feature}: ENOSYS in the root namespaces too"),
            ),
            None => Outcome::unsupported(
                Unsupported::Kernel,
                format!(
                    "{what}: ENOSYS, so the kernel probably lacks {feature} (without --canary a filter \
                     returning ENOSYS cannot be told apart)"
                ),
            ),
        }
    }

    /// Whether the canary saw host feature `feature` (None: unknown).
    pub fn host_feature(&self, feature: &str) -> Option<bool> {
        self.canary.as_ref().and_then(|c| c.host.features.get(feature).copied())
    }

    /// Whether a new file in `dir` would be seen from the host: true when
    /// the canary recorded the same directory object for `key`.
    pub fn visible_on_host(&self, key: &str, dir: &Path) -> Option<bool> {
        let host = self.canary.as_ref()?.host.dirs.get(key).copied()?;
        Some(sys::dir_identity(dir)? == host)
    }

    /// A directory this process can create files in, for attempts that
    /// need a file of their own (chmod, chown, exec, mknod, swapon).
    pub fn scratch_dir(&self) -> Option<PathBuf> {
        scratch_candidates(&self.opts).into_iter().find(|d| {
            let probe =
                d.join(format!("{}{}.scratch-test.{}", MARKER_PREFIX, self.run_id, std::process::id()));
            let ok = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        })
    }

    /// A unique scratch file path for attempt `id`, or the outcome to report
    /// when no directory is writable.
    pub fn scratch_file(&self, id: &str, suffix: &str) -> Result<PathBuf, Outcome> {
        match self.scratch_dir() {
            Some(d) => Ok(d.join(format!("{}.{}", self.marker_name(id), suffix))),
            None => Err(Outcome::unsupported(
                Unsupported::NotApplicable,
                "no writable directory for the attempt's own file (tried --scratch-dir, the unit's \
                 directories, $TMPDIR, /tmp, /var/tmp, /dev/shm)",
            )),
        }
    }

    /// Removes a marker unless `--keep-markers` asked to leave it.
    pub fn drop_marker(&self, path: &Path) -> &'static str {
        if self.opts.keep_markers {
            "kept"
        } else {
            let _ = std::fs::remove_file(path);
            "removed"
        }
    }
}

/// Where scratch files may go, in order of preference: every place a
/// sandboxed process might find writable (`--scratch-dir`, the unit's own
/// directories, $TMPDIR, /tmp, /var/tmp, /dev/shm), each once.
pub fn scratch_candidates(opts: &Options) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = opts.scratch_dir.iter().cloned().collect();
    candidates.extend(sandkasten_runtime::lockdown::unit_directories());
    candidates.extend(std::env::var_os("TMPDIR").filter(|t| !t.is_empty()).map(PathBuf::from));
    candidates.extend(["/tmp", "/var/tmp", "/dev/shm"].map(PathBuf::from));
    let mut seen = std::collections::BTreeSet::new();
    candidates.retain(|c| seen.insert(c.clone()));
    candidates
}

/// Removes the scratch files and directories attempt `id` of run `run_id`
/// left behind when it was killed mid-way (a seccomp filter's SIGSYS comes
/// between creating a file and removing it). Markers (no suffix after the
/// id) are left alone.
pub fn remove_scratch(opts: &Options, run_id: &str, id: &str) {
    let prefix = format!("{MARKER_PREFIX}{run_id}.{id}.");
    for dir in scratch_candidates(opts) {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let p = e.path();
                if std::fs::remove_file(&p).is_err() {
                    let _ = std::fs::remove_dir(&p);
                }
            }
        }
    }
}
