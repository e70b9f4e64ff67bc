//! The command line: `--root` plus the flags every sandkasten server shares.
//!
//! Lives in the library (not `main.rs`) so the flags are documented in one
//! place with the rest of the crate; each flag has a `SANDKASTEN_*`
//! environment twin so a unit can set it with `Environment=`.

use std::path::PathBuf;

use clap::Parser;
use sandkasten_runtime::RuntimeArgs;

/// sandkasten-http: serve a directory over HTTP/1.1 from sockets that systemd
/// passes in.
#[derive(Debug, Clone, Parser)]
#[command(name = "sandkasten-http", version, about)]
pub struct Args {
    /// The directory to serve. Nothing outside it is ever read for a
    /// request, symlinks included.
    #[arg(long, value_name = "DIR", env = "SANDKASTEN_ROOT")]
    pub root: PathBuf,

    /// Flags shared with every sandkasten server.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}
