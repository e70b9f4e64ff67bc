//! The command line: `--root` plus the flags every sandkasten server shares.
//!
//! Lives in the library (not `main.rs`) so the flags are documented in one
//! place with the rest of the crate; each flag has a `SANDKASTEN_*`
//! environment twin so a unit can set it with `Environment=`.

use std::path::PathBuf;

use clap::Parser;
use sandkasten_content::Hidden;
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

    /// Serve hidden files (names starting with `.`: `.git`, `.env`) and list
    /// them. By default they are refused (404) and left out of listings,
    /// except `.well-known` (RFC 8615).
    #[arg(long, env = "SANDKASTEN_SERVE_HIDDEN")]
    pub serve_hidden: bool,

    /// Flags shared with every sandkasten server.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl Args {
    /// The hidden-file policy `--serve-hidden` asks for.
    pub fn hidden(&self) -> Hidden {
        if self.serve_hidden {
            Hidden::Serve
        } else {
            Hidden::Refuse
        }
    }
}
