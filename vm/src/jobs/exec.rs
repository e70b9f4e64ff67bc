//! `sandkasten-vm exec`: a command, a payload's `run` script, or a command
//! inside the sandbox of a unit given on the command line.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::contract::GuestJob;
use crate::guest::print_progress;
use crate::{payload, Config, Event, Guest};

/// What `exec` runs.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// Run the command inside this unit's sandbox (`--unit`).
    pub unit: Option<PathBuf>,
    /// The command; without one, the payload's `run` script.
    pub command: Vec<OsString>,
    /// Print host-side timings as one JSON line on stderr at the end.
    pub timings: bool,
    /// `--binary SRC[:DEST]`, with `--unit`.
    pub binaries: Vec<String>,
    /// `--files DIR[:DEST]`, with `--unit`.
    pub files: Vec<String>,
    /// `--sysusers FILE`, with `--unit`.
    pub sysusers: Vec<PathBuf>,
}

/// Boots the guest as `config` says, runs `request` there with its output
/// streamed to ours, and returns the guest command's exit status.
pub fn exec(mut config: Config, request: ExecRequest) -> anyhow::Result<i32> {
    // Kept alive until the run is over: the payload directory.
    let mut staged = None;
    anyhow::ensure!(
        request.unit.is_some()
            || (request.binaries.is_empty() && request.files.is_empty() && request.sysusers.is_empty()),
        "--binary, --files and --sysusers go with --unit (without it, put files in --payload's overlay/)"
    );
    if let Some(unit) = &request.unit {
        let dir = stage_unit_payload(unit, &request)?;
        config.payload_dir = Some(dir.path().to_owned());
        staged = Some(dir);
    } else if !request.command.is_empty() {
        config.command = Some(request.command);
    }
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
    if request.timings {
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
    Ok(run.status)
}

/// The payload for `exec --unit`: the servers and units as for the matrix,
/// the user's unit beside them, and the command to run in it.
fn stage_unit_payload(unit: &Path, request: &ExecRequest) -> anyhow::Result<tempfile::TempDir> {
    // The unit (a .service with ExecStart=) and the socket it requires.
    let yours = super::YourUnit {
        service: unit.to_owned(),
        socket: None,
        binaries: request.binaries.clone(),
        files: request.files.clone(),
        sysusers: request.sysusers.clone(),
    };
    let (audited, mut installs) = yours.load().context("--unit")?;
    installs.extend(super::audit::resolve_sysusers(&request.sysusers)?.1);
    let build = super::build()?;
    let dir = super::new_payload(&build, &audited.files)?;
    payload::stage_installs(dir.path(), &installs)?;
    let command = request
        .command
        .iter()
        .map(|arg| arg.to_str().map(str::to_owned).with_context(|| format!("{arg:?} is not UTF-8")))
        .collect::<anyhow::Result<_>>()?;
    payload::stage_job(dir.path(), &GuestJob::InUnit { unit: audited.reference.name.clone(), command })?;
    Ok(dir)
}
