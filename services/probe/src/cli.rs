//! Command-line interface: `run` (the default), `list`, `canary`,
//! `canary-report`, and the hidden `run-one` (one attempt in this process,
//! for debugging; the runner forks a child per attempt instead).

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::canary::{self, CanaryConfig, CanaryState};
use crate::catalogue::{self, Attempt, ATTEMPTS};
use crate::context::{Ctx, Options};
use crate::{output, runner, sys};

/// Escape-attempt probe for systemd sandboxes.
///
/// Without a subcommand it runs the catalogue (or `--only` a part of it),
/// each attempt in a forked process with a deadline, and prints one verdict
/// per attempt: blocked, killed, escaped, unsupported or error.
#[derive(Debug, Parser)]
#[command(name = "sandkasten-probe", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: run the attempts).
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// Options for running attempts.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of a probe run.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// One JSON object per attempt instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Run only these attempts (ids, or a family such as `net`).
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// Options passed to each attempt.
    #[command(flatten)]
    pub opts: Options,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the catalogue: id, directive, accepted outcomes, what it does.
    List {
        /// One JSON object per attempt.
        #[arg(long)]
        json: bool,
    },
    /// Open the targets in this (root) namespace, write FILE, and record
    /// what reaches them until stopped.
    Canary {
        /// State file to write (its control socket is FILE.sock).
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// The 192.0.2.0/24 address to listen on (default: the first found).
        #[arg(long, value_name = "ADDR")]
        lan_addr: Option<Ipv4Addr>,
        /// Content directory to record for fs.write-content.
        #[arg(long, value_name = "DIR", default_value = "/usr/share/sandkasten")]
        content_dir: PathBuf,
        /// D-Bus socket to record for net.dbus.
        #[arg(long, value_name = "PATH", default_value = "/run/dbus/system_bus_socket")]
        dbus_socket: PathBuf,
        /// Exit after this many seconds at the latest.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        lifetime: u64,
        /// Where the unix sockets on the file system go (net.unix-path,
        /// net.unix-dgram); default: beside the state file.
        #[arg(long, value_name = "DIR")]
        unix_dir: Option<PathBuf>,
    },
    /// Ask the canary what reached it; list marker files left on the host.
    CanaryReport {
        /// The canary's state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// Stop the canary after reporting.
        #[arg(long)]
        stop: bool,
        /// Remove the marker files found.
        #[arg(long)]
        clean_markers: bool,
        /// Summarize only this run.
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
    },
    /// Make one attempt in this process and print its outcome as JSON.
    ///
    /// For debugging by hand: a probe run forks one child per attempt
    /// instead. The canary names the run and the attempt of a `run-one`
    /// process that signals or traces its target from the command line.
    #[command(hide = true)]
    RunOne {
        /// Attempt id.
        id: String,
        /// Options of the run.
        #[command(flatten)]
        opts: Options,
    },
}

/// Resolves `--only` to attempts; unknown names are an error.
fn select(only: &[String]) -> Result<Vec<&'static Attempt>, String> {
    if only.is_empty() {
        return Ok(ATTEMPTS.iter().collect());
    }
    let mut out: Vec<&'static Attempt> = Vec::new();
    for name in only {
        let family = format!("{}.", name.trim_end_matches('.'));
        let matched: Vec<_> = ATTEMPTS.iter().filter(|a| a.id == name || a.id.starts_with(&family)).collect();
        if matched.is_empty() {
            return Err(format!("unknown attempt {name:?} (see `sandkasten-probe list`)"));
        }
        for a in matched {
            if !out.iter().any(|o| o.id == a.id) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// Treats a closed stdout (`| head`) as success.
fn quiet_pipe(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> io::Result<ExitCode> {
    let stdout = io::stdout();
    match cli.cmd {
        Some(Cmd::List { json }) => {
            quiet_pipe(output::list(&mut stdout.lock(), ATTEMPTS, json))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::RunOne { id, opts }) => {
            // The runner may die; this process must not outlive it.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let Some(a) = catalogue::find(&id) else {
                return Err(io::Error::other(format!("unknown attempt {id:?}")));
            };
            let run_id = opts.run_id.clone().unwrap_or_else(|| sys::random_hex(8));
            let ctx = Ctx::new(opts, run_id);
            // The probe stands in for a compromised server: where the unit
            // switches the server's lockdown on, the attempt runs under it
            // too, installed as the runner installs it (before any thread).
            let outcome = match runner::lock_down() {
                Ok(()) => runner::run_here(&ctx, a),
                Err(o) => o,
            };
            let line = serde_json::to_string(&outcome).map_err(io::Error::other)?;
            let mut out = stdout.lock();
            writeln!(out, "{line}")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Canary { state, lan_addr, content_dir, dbus_socket, lifetime, unix_dir }) => {
            let cfg = CanaryConfig {
                unix_dir,
                state,
                lan_addr,
                content_dir,
                dbus_socket,
                lifetime: Duration::from_secs(lifetime),
            };
            canary::run(&cfg).map_err(|e| io::Error::other(format!("canary failed: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::CanaryReport { state, stop, clean_markers, run_id }) => {
            let st = CanaryState::load(&state).map_err(io::Error::other)?;
            let mut report = canary::query(&st, stop).map_err(|e| {
                io::Error::other(format!("ask the canary at {}: {e}", st.control_socket.display()))
            })?;
            report.markers = canary::scan_markers(&st.host.content_dir, clean_markers, run_id.as_deref());
            report.summarize(run_id.as_deref());
            let text = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
            quiet_pipe(writeln!(stdout.lock(), "{text}"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let attempts = select(&cli.run.only).map_err(io::Error::other)?;
            let run_id = cli.run.opts.run_id.clone().unwrap_or_else(|| sys::random_hex(8));
            let json = cli.run.json;
            let mut out = stdout.lock();
            if !json {
                quiet_pipe(writeln!(out, "run {run_id}"))?;
                quiet_pipe(output::table_header(&mut out))?;
            }
            let mut write_err = None;
            let all = runner::run_all(&cli.run.opts, &run_id, &attempts, |v| {
                let r = if json { output::json_line(&mut out, v) } else { output::table_row(&mut out, v) };
                if let Err(e) = quiet_pipe(r.and_then(|()| out.flush())) {
                    write_err.get_or_insert(e);
                }
            });
            if let Some(e) = write_err {
                return Err(e);
            }
            if !json {
                quiet_pipe(output::summary(&mut out, &all))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
