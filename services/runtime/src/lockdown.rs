//! The pieces of the sandbox that systemd cannot express: two about code
//! that was never shipped, one about sibling instances.
//!
//! ## No page executable in one mapping and writable in another
//!
//! `MemoryDenyWriteExecute=` (systemd's seccomp filter, and the kernel's
//! `PR_SET_MDWE` on newer systemd) looks at one mapping at a time: it
//! refuses `PROT_WRITE|PROT_EXEC` together and refuses to add `PROT_EXEC`
//! later. A *shared* page can have two mappings: executable here, writable
//! in a forked child or a second `mremap` mapping. Code written through the
//! one runs through the other, and neither check ever sees a writable,
//! executable mapping (the escape matrix's `code.shared-alias-*` rows show
//! it on both Debian releases).
//!
//! So the server installs one more seccomp filter before it starts any
//! thread: `mmap` with `PROT_EXEC` and `MAP_SHARED` fails with `EPERM`.
//! Nothing a server legitimately does maps shared memory executable (the
//! dynamic loader maps libraries `MAP_PRIVATE`).
//!
//! The same filter lets `tgkill(2)`, which glibc's `abort()` needs and so
//! stays in the allow-lists, aim at this process only: every instance of a
//! template runs as the same dynamic user, and the kernel lets a user
//! signal its own processes across user namespaces, so one compromised
//! instance could otherwise kill the others (`priv.signal-sibling`).
//!
//! ## No file written outside the places the unit makes writable
//!
//! `/proc/self/mem` writes ignore page protections, so a process that can
//! open it read-write can put code into its own executable pages.
//! `ReadOnlyPaths=/proc` would close that, but on systemd 252 it also
//! breaks `PrivateUsers=` (the uid map is written after the mounts:
//! "Failed to set up user namespacing: Read-only file system"). A Landlock
//! ruleset does it from inside instead: write, create and remove rights
//! only beneath `/tmp`, `/var/tmp`, `/dev` and the unit's own directories.
//! Read-only mounts still answer first (EROFS), so the rest of the sandbox
//! keeps its meaning; `/proc` is simply not a place the server writes.
//!
//! ## Both
//!
//! Both only narrow: they cannot be undone, they are inherited by every
//! thread and child, and systemd's own filters still apply.
//!
//! It is switched on by the unit (`Environment=SANDKASTEN_LOCKDOWN=1`), so
//! that the unit file shows every layer of the sandbox, and so that the
//! escape probe, which runs in the unit in the server's place, gets the
//! same filter the server would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use landlock::{path_beneath_rules, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// The environment variable that switches the lockdown on (`1`).
pub const ENV: &str = "SANDKASTEN_LOCKDOWN";

/// Why the lockdown could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filter could not be built for this architecture.
    #[error("cannot build the lockdown filter: {0}")]
    Build(String),
    /// The kernel refused the filter (seccomp(2) not allowed, say).
    #[error("cannot install the lockdown filter: {0}")]
    Install(String),
    /// Landlock is missing or refused the ruleset.
    #[error(
        "cannot restrict file writes with Landlock: {0} (is landlock in this kernel's lsm= list? \
         SANDKASTEN_LOCKDOWN=0 runs without, and then /proc/self/mem is writable)"
    )]
    Landlock(String),
    /// The variable holds something other than `0` or `1`.
    #[error("{ENV} must be 0 or 1, not {0:?}")]
    Value(String),
}

/// Installs the lockdown when `SANDKASTEN_LOCKDOWN=1`; Ok(false) when it is
/// unset or `0`. Call before any thread exists: a filter installed with
/// prctl-style semantics covers the calling thread and what it starts.
pub fn from_env() -> Result<bool, Error> {
    match std::env::var(ENV).as_deref() {
        Err(_) | Ok("0") | Ok("") => Ok(false),
        Ok("1") => install().map(|()| true),
        Ok(other) => Err(Error::Value(other.to_owned())),
    }
}

/// Installs both on the calling thread (and everything it starts).
pub fn install() -> Result<(), Error> {
    restrict_writes()?;
    let program = filter()?;
    seccompiler::apply_filter(&program).map_err(|e| Error::Install(e.to_string()))
}

/// The directories systemd made for the unit (`StateDirectory=` and its
/// kin), as it passes them: several per variable, separated by ':'.
pub fn unit_directories() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["STATE_DIRECTORY", "RUNTIME_DIRECTORY", "CACHE_DIRECTORY", "LOGS_DIRECTORY"] {
        if let Some(value) = std::env::var_os(var) {
            dirs.extend(value.to_string_lossy().split(':').filter(|d| !d.is_empty()).map(PathBuf::from));
        }
    }
    dirs
}

/// Where the server may still write: the private temporary directories,
/// `/dev` (null and friends), and the directories systemd made for the unit.
fn writable_places() -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev"].map(PathBuf::from).to_vec();
    places.extend(unit_directories());
    places.retain(|p| p.is_dir());
    places
}

/// Landlock: the write, create, remove and rename rights handled, granted
/// only beneath [`writable_places`]. Fails unless the kernel enforces
/// Landlock at all (ABI 1, Linux 5.13; ABI 2's rename right where there).
fn restrict_writes() -> Result<(), Error> {
    let landlock = |e: landlock::RulesetError| Error::Landlock(e.to_string());
    // Write, create, remove and rename rights (Landlock ABI 2). Not the later
    // Truncate (ABI 3) and IoctlDev (ABI 5) rights: handling those makes the
    // kernel walk the path of every file opened, reads included, to record
    // them (6 % of sandkasten-http's small-file throughput, scripts/bench
    // --only lockdown), and neither matters here: nothing outside the
    // writable places can be opened for writing, and PrivateDevices= leaves
    // no device worth an ioctl.
    let write = AccessFs::from_write(ABI::V2);
    let status = Ruleset::default()
        .handle_access(write)
        .map_err(landlock)?
        .create()
        .map_err(landlock)?
        .add_rules(path_beneath_rules(writable_places(), write))
        .map_err(landlock)?
        .restrict_self()
        .map_err(landlock)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
        RulesetStatus::NotEnforced => Err(Error::Landlock("the kernel does not enforce Landlock".into())),
    }
}

/// `mmap(…, prot & PROT_EXEC, flags & MAP_SHARED, …)` and `tgkill` aimed at
/// another process → EPERM; everything else passes on to the other filters.
fn filter() -> Result<BpfProgram, Error> {
    let build = |e: seccompiler::BackendError| Error::Build(e.to_string());
    let arg = |index: u8, bit: i32| {
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit as u64), bit as u64)
    };
    let shared_exec = SeccompRule::new(vec![
        arg(2, libc::PROT_EXEC).map_err(build)?,
        arg(3, libc::MAP_SHARED).map_err(build)?,
    ])
    .map_err(build)?;
    let arch = std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| build(e))?;
    // tgkill(tgid, …) for any tgid but ours: a sibling instance runs as the
    // same user, so the kernel would let us signal (kill) it.
    let own = std::process::id() as u64;
    let foreign_signal =
        SeccompRule::new(vec![
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, own).map_err(build)?
        ])
        .map_err(build)?;
    let filter = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_mmap, vec![shared_exec]), (libc::SYS_tgkill, vec![foreign_signal])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(build)?;
    filter.try_into().map_err(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter builds for this machine; installing the lockdown is tested
    /// on real processes (services/probe/tests/restricted.rs), since a
    /// filter cannot be removed.
    #[test]
    fn the_filter_builds() {
        assert!(!filter().unwrap().is_empty());
    }
}
