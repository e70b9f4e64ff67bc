//! sandkasten-http: glue only. Parse flags, take the sockets systemd passed,
//! start logging, check the root, and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use sandkasten_http::{Args, Site};

fn main() -> ExitCode {
    let args = Args::parse();
    // First, while the process has one thread: this edits the environment.
    let sockets = match sandkasten_runtime::activation::take(&args.runtime.listen) {
        Ok(sockets) => sockets,
        Err(err) => return usage_error(&err),
    };
    if let Err(err) = sandkasten_runtime::activation::require_streams(&sockets) {
        return usage_error(&err);
    }
    sandkasten_runtime::logging::init();
    let site = match Site::open(&args.root, args.hidden()) {
        Ok(site) => site,
        Err(err) => return usage_error(&err),
    };
    sandkasten_runtime::run("sandkasten-http", &args.runtime, sockets, |ctx, sockets| async move {
        sandkasten_http::serve(ctx, sockets, site).await
    })
}

/// Startup errors are configuration errors: say so on stderr and exit 2,
/// which systemd shows as `status=2/INVALIDARGUMENT`.
fn usage_error(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sandkasten-http: error: {err}");
    ExitCode::from(2)
}
