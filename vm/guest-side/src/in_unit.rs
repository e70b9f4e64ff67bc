//! `sandkasten-vm exec --unit FILE -- COMMAND...`, guest side: run COMMAND
//! inside exactly the sandbox of the unit FILE names (installed by the host
//! through the payload's overlay), pass back what it printed and exit with
//! its status.
//!
//! A drop-in replaces `ExecStart=` with COMMAND. It also makes the unit a
//! plain one-off run (`Type=exec`, no restart, no watchdog): COMMAND is not
//! a server that sends READY=1 or pings a watchdog. Every sandboxing
//! directive stays as the unit has it, with one addition, said on stderr:
//! COMMAND's own program joins `ExecPaths=`, since a unit that names
//! `ExecPaths=` (as the reference units do) lets nothing else run. Its
//! libraries do not: a statically linked program (`/bin/busybox`) runs,
//! most others do not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sandkasten_vm_contract::reference;

use crate::systemd::output;

/// Where COMMAND's output goes: files systemd opens before it enters the
/// sandbox, not the journal. A process that exits at once may be gone
/// before journald can tie its lines to the run (`exec --unit lab1 --
/// /usr/bin/id` printed nothing, 3 runs of 3).
const OUTPUT: &str = "/run/sandkasten-exec";

/// Runs `command` in `unit`'s sandbox; its exit status (1 when systemd
/// reports none).
pub fn run(unit: &str, command: &[String]) -> i32 {
    let Some(first) = command.first() else {
        eprintln!("sandkasten-vm: exec --unit needs a command");
        return 1;
    };
    let unit = match unit.strip_suffix("@.service") {
        Some(template) => format!("{template}@exec.service"),
        None => unit.to_owned(),
    };
    let program = find_program(first);
    // Users from --sysusers files (the overlay put them in /usr/lib/sysusers.d).
    if output(&["systemd-sysusers"]).is_err() {
        eprintln!("sandkasten-vm: systemd-sysusers failed");
    }
    // Neighbours to reach: the reference HTTP and gopher servers listen on
    // the guest's ports, as other services on a host would (the lab's
    // attempts against the host's network aim at them).
    let _ = output(&["systemctl", "start", reference::HTTP.socket, reference::GOPHER.socket]);
    let drop_in = PathBuf::from(format!("/run/systemd/system/{unit}.d"));
    for dir in [drop_in.as_path(), Path::new(OUTPUT)] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("sandkasten-vm: cannot create {}: {e}", dir.display());
            return 1;
        }
    }
    if let Err(e) = std::fs::write(drop_in.join("exec.conf"), drop_in_text(command, program.as_deref())) {
        eprintln!("sandkasten-vm: cannot write the drop-in in {}: {e}", drop_in.display());
        return 1;
    }
    if let Some(program) = &program {
        eprintln!("sandkasten-vm: {} added to ExecPaths= of {unit} for this run", program.display());
    }
    let _ = output(&["systemctl", "daemon-reload"]);
    // Sockets the unit needs (Requires=) start with it.
    let _ = Command::new("systemctl").args(["start", "--wait", &unit]).stderr(Stdio::null()).status();
    pass_back(&format!("{OUTPUT}/stdout"), &mut std::io::stdout());
    pass_back(&format!("{OUTPUT}/stderr"), &mut std::io::stderr());
    let status = output(&["systemctl", "show", "-p", "ExecMainStatus", "--value", &unit])
        .map(|value| value.trim().to_owned())
        .unwrap_or_default();
    eprintln!("sandkasten-vm: {} in {unit} exited with status {status}", command.join(" "));
    status.parse().unwrap_or(1)
}

/// The drop-in that turns the unit into one run of `command`.
fn drop_in_text(command: &[String], program: Option<&Path>) -> String {
    let mut text = format!(
        "[Service]\nType=exec\nExecStart=\nExecStart={}\nRestart=no\nWatchdogSec=0\n\
         StandardOutput=truncate:{OUTPUT}/stdout\nStandardError=truncate:{OUTPUT}/stderr\n",
        exec_start(command)
    );
    if let Some(program) = program {
        text += &format!("ExecPaths={}\n", program.display());
    }
    text
}

/// `command` as `ExecStart=` reads it: each word in double quotes, with
/// backslashes and double quotes escaped (systemd.service(5), "Command
/// lines"), so that no word is split or expanded.
fn exec_start(command: &[String]) -> String {
    command.iter().map(|word| format!(" \"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))).collect()
}

/// The program `name` runs, as the shell finds it (a path as given, else
/// the first executable of that name on `PATH`), with its symbolic links
/// resolved: `ExecPaths=` must name the file itself.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let found = if name.contains('/') {
        Some(PathBuf::from(name)).filter(|p| executable(p))
    } else {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        path.split(':').map(|dir| Path::new(dir).join(name)).find(|p| executable(p))
    };
    found.and_then(|p| std::fs::canonicalize(p).ok())
}

/// Copies the file at `path` (if there is one) to `to`.
fn pass_back(path: &str, to: &mut dyn std::io::Write) {
    if let Ok(bytes) = std::fs::read(path) {
        let _ = to.write_all(&bytes);
        let _ = to.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_quotes_each_word_as_systemd_reads_it() {
        let words = ["/bin/sh", "-c", r#"echo "a b" \ok"#].map(String::from);
        assert_eq!(exec_start(&words), r#" "/bin/sh" "-c" "echo \"a b\" \\ok""#);
    }

    #[test]
    fn the_drop_in_adds_the_program_only_when_found() {
        let command = ["/bin/busybox".to_owned(), "id".to_owned()];
        let with = drop_in_text(&command, Some(Path::new("/usr/bin/busybox")));
        assert!(with.contains("ExecStart=\nExecStart= \"/bin/busybox\" \"id\"\n"), "{with}");
        assert!(with.ends_with("ExecPaths=/usr/bin/busybox\n"), "{with}");
        assert!(!drop_in_text(&command, None).contains("ExecPaths="));
    }

    #[test]
    fn programs_are_found_as_the_shell_finds_them() {
        let sh = find_program("sh").expect("sh on PATH");
        assert!(sh.is_absolute() && !sh.is_symlink(), "{}", sh.display());
        assert_eq!(find_program("/no/such/program"), None);
        assert_eq!(find_program("no-such-program-here"), None);
    }
}
