//! `sandkasten-lockdown PROGRAM [ARGS...]`: the servers' lockdown for a
//! program that is not one of ours.
//!
//! Two routes have no directive in `systemd.exec`: code written through
//! `/proc/self/mem` (which ignores page protections, so
//! `MemoryDenyWriteExecute=` never sees it) and one shared page mapped
//! executable in one place and writable in another. sandkasten's servers
//! close both themselves (`SANDKASTEN_LOCKDOWN=1`, see the runtime's
//! `lockdown` module); a Python, Perl or C service cannot. This wrapper
//! installs the same Landlock ruleset and seccomp filter, then executes
//! PROGRAM in its own place (same process, same pid): both are inherited
//! across `execve` and cannot be undone. It is meant as the first word of a
//! unit's `ExecStart=`:
//!
//! ```ini
//! ExecStart=/usr/libexec/sandkasten/sandkasten-lockdown /usr/bin/python3 -m http.server
//! ```
//!
//! What the program then cannot do, and so must not need:
//! - write, create, remove or rename files anywhere but beneath `/tmp`,
//!   `/var/tmp`, `/dev` and the directories systemd made for the unit
//!   (`StateDirectory=`, `CacheDirectory=`, `LogsDirectory=`,
//!   `RuntimeDirectory=`); reading is untouched;
//! - map shared memory executable (`mmap` with `PROT_EXEC` and
//!   `MAP_SHARED`: a JIT that double-maps its code this way fails);
//! - `tgkill` any thread group but the one that ran the wrapper: a child
//!   process cannot `raise()` a signal on itself (a forking server whose
//!   children do so does not survive it);
//! - gain privileges through set-uid programs (Landlock sets
//!   `no_new_privs`, as `NoNewPrivileges=yes` does).
//!
//! If the lockdown cannot be installed the program is not started: the
//! wrapper exits with 125 and says why (as env(1) does for its own
//! failures); 126 when PROGRAM cannot be executed, 127 when it is not
//! found.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use clap::Parser;

/// Installs sandkasten's lockdown (Landlock: writes only beneath /tmp,
/// /var/tmp, /dev and the unit's own directories; seccomp: no executable
/// shared mapping, no tgkill of another process), then runs PROGRAM in its
/// place.
#[derive(Parser)]
#[command(version, name = "sandkasten-lockdown")]
struct Args {
    /// The program to run in the wrapper's place (found on PATH as a shell
    /// finds it).
    program: OsString,
    /// Its arguments, passed on as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn main() -> ExitCode {
    let Args { program, args } = Args::parse();
    if let Err(e) = sandkasten_runtime::lockdown::install() {
        eprintln!("sandkasten-lockdown: {e}; {} was not started", program.to_string_lossy());
        return ExitCode::from(125);
    }
    // Only returns when the exec failed.
    let error = Command::new(&program).args(&args).exec();
    eprintln!("sandkasten-lockdown: cannot run {}: {error}", program.to_string_lossy());
    ExitCode::from(if error.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}
