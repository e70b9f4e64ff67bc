//! sandkasten-http: a static-file server for socket-activated, sandboxed
//! operation.
//!
//! The library never binds: it gets the sockets that systemd passed (or that
//! `main` bound for `--listen`) from [`sandkasten_runtime`] and serves them.
//! File serving (ranges, `Last-Modified`, precompressed siblings, MIME types)
//! is tower-http's `ServeFile`, except a plain GET of a small file, which the
//! handler reads whole and sends from memory with the same headers (see
//! `handler`). Around it this crate adds what tower-http lacks: path
//! containment, `ETag`s and the conditional requests built on them,
//! `If-Range`, directory listings, and the connection policy (timeouts,
//! limits, graceful shutdown).
//!
//! # Layout
//! - [`cli`]: the command line ([`Args`]), flattened with the runtime's flags.
//! - `conn`: one HTTP/1.1 connection: hyper, its read timeout, header cap and
//!   graceful shutdown.
//! - `handler`: the request pipeline, a numbered list atop the module.
//! - `resolve`: SECURITY: request path to a file inside the root, or a
//!   refusal.
//! - `validators`: `ETag`, `If-None-Match`, `If-Modified-Since`, `If-Range`.
//! - `listing`: the HTML index of a directory without `index.html`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
mod conn;
mod handler;
mod listing;
mod resolve;
mod validators;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandkasten_runtime::{accept, Context, ServeError, Socket};

pub use cli::Args;

/// Why the content root is unusable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--root` does not exist or cannot be read.
    #[error("--root {}: {source}", path.display())]
    RootUnusable {
        /// The path as given.
        path: PathBuf,
        /// What `canonicalize`/`metadata` said.
        #[source]
        source: io::Error,
    },
    /// `--root` exists but is not a directory.
    #[error("--root {}: not a directory", path.display())]
    RootNotDirectory {
        /// The path as given.
        path: PathBuf,
    },
}

/// The content tree being served, checked once at startup.
///
/// Shared by every connection behind an `Arc`; lives as long as the process.
#[derive(Debug, Clone)]
pub struct Site {
    /// The canonical root (no symlinks, absolute): every file we serve must
    /// canonicalize to a path under it.
    root: PathBuf,
}

impl Site {
    /// Checks that `root` exists and is a directory, and canonicalizes it.
    ///
    /// Done at startup so a typo in `--root` fails the unit at once instead
    /// of answering 404 to every request.
    pub fn open(root: &Path) -> Result<Site, Error> {
        let unusable = |source| Error::RootUnusable { path: root.to_owned(), source };
        let canonical = std::fs::canonicalize(root).map_err(unusable)?;
        let meta = std::fs::metadata(&canonical).map_err(unusable)?;
        if !meta.is_dir() {
            return Err(Error::RootNotDirectory { path: root.to_owned() });
        }
        Ok(Site { root: canonical })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Serves `sockets` until the runtime asks us to stop.
///
/// Each TCP listener gets the runtime's accept loop; a connected stream
/// (systemd's `Accept=yes`) is served as one connection, after which the
/// server stops, since that instance exists for that connection alone.
pub async fn serve(ctx: Context, sockets: Vec<Socket>, site: Site) -> Result<(), ServeError> {
    let site = Arc::new(site);
    let conn_ctx = ctx.clone();
    let handler = move |stream, peer: SocketAddr| conn::serve(conn_ctx.clone(), site.clone(), stream, peer);
    accept::serve_connections(&ctx, sockets, handler).await
}
