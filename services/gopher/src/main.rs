//! sandkasten-gopher: glue. Parse flags, take the sockets systemd passed,
//! start logging, check the content root, then serve until stopped. The
//! server itself lives in the library (`lib.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandkasten_gopher::Config;
use sandkasten_runtime::RuntimeArgs;

/// An RFC 1436 gopher server for one read-only directory tree, started by
/// systemd socket activation.
#[derive(Debug, Parser)]
#[command(name = "sandkasten-gopher", version)]
struct Args {
    /// The directory to serve.
    #[arg(long, value_name = "DIR", env = "SANDKASTEN_ROOT")]
    root: PathBuf,

    /// Host written into menu items on this server (default: the local
    /// address each client connected to).
    #[arg(long, value_name = "NAME", env = "SANDKASTEN_HOST")]
    host: Option<String>,

    /// Port written into menu items on this server (default: the local port
    /// each client connected to).
    #[arg(long, value_name = "PORT", env = "SANDKASTEN_PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // First: this changes the environment, which is only sound while the
    // process has a single thread.
    let sockets = match sandkasten_runtime::activation::take(&args.runtime.listen) {
        Ok(sockets) => sockets,
        Err(err) => return fail(&err),
    };
    sandkasten_runtime::logging::init();
    let config = match Config::new(&args.root, args.host, args.port) {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    if let Err(err) = sandkasten_runtime::activation::require_streams(&sockets) {
        return fail(&err);
    }
    tracing::info!(root = %config.root().path().display(), "content root");
    sandkasten_runtime::run("sandkasten-gopher", &args.runtime, sockets, |ctx, sockets| {
        sandkasten_gopher::serve(ctx, sockets, config)
    })
}

/// Startup errors: one line on stderr, exit code 2 (as for bad flags).
fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sandkasten-gopher: error: {err}");
    ExitCode::from(2)
}
