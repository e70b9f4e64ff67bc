//! sandkasten-http: a static-file server for socket-activated, sandboxed
//! operation.
//!
//! The library never binds: it gets the sockets that systemd passed (or that
//! `main` bound for `--listen`) from [`sandkasten_runtime`] and serves them.
//! File serving (ranges, `Last-Modified`, precompressed siblings, MIME types)
//! is tower-http's `ServeFile`, except a plain GET, which the handler answers
//! with the same headers: a small file read whole, a large one sent from the
//! page cache with `sendfile` (see `handler` and `zerocopy`). Around it this
//! crate adds what tower-http lacks: path containment, `ETag`s and the
//! conditional requests built on them, `If-Range`, directory listings, and
//! the connection policy (timeouts, limits, graceful shutdown).
//!
//! # Layout
//! - `cache`: small files and listings kept in memory while unchanged.
//! - [`cli`]: the command line ([`Args`]), flattened with the runtime's flags.
//! - `conn`: one HTTP/1.1 connection: hyper, its read timeout, header cap and
//!   graceful shutdown.
//! - `handler`: the request pipeline, a numbered list atop the module.
//! - `resolve`: SECURITY: request path to a file inside the root, or a
//!   refusal.
//! - `validators`: `ETag`, `If-None-Match`, `If-Modified-Since`, `If-Range`.
//! - `zerocopy`: the connection's stream, which sends a mapped file's range
//!   with `sendfile` when hyper writes it (the crate's one `unsafe`).
//! - `listing`: the HTML index of a directory without `index.html`.
//! - `fuzzing` (hidden): the pipeline's steps for the fuzz targets in
//!   `fuzz/`; not an API.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod cache;
pub mod cli;
mod conn;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod listing;
mod resolve;
mod validators;
mod zerocopy;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use sandkasten_content::ContentRoot;
use sandkasten_runtime::{accept, Context, ServeError, Socket};

pub use cli::Args;

pub use sandkasten_content::Hidden;
/// Why the content root is unusable (the shared content-root check).
pub use sandkasten_content::RootError as Error;

/// The content tree being served, checked once at startup, with the policy
/// of `sandkasten-content`: containment, hidden files, listing cap.
///
/// Shared by every connection behind an `Arc`; lives as long as the process.
#[derive(Debug)]
pub struct Site {
    root: ContentRoot,
    small_files: cache::SmallFiles,
    listings: cache::Listings,
}

impl Site {
    /// Checks that `root` is a readable directory and canonicalizes it.
    ///
    /// Done at startup so a typo in `--root` fails the unit at once instead
    /// of answering 404 to every request.
    pub fn open(root: &Path, hidden: Hidden) -> Result<Site, Error> {
        Ok(Site {
            root: ContentRoot::open(root, hidden)?,
            small_files: cache::SmallFiles::default(),
            listings: cache::Listings::default(),
        })
    }

    /// The content root and its policy.
    pub fn root(&self) -> &ContentRoot {
        &self.root
    }

    /// Small files served lately, checked against the file on each use.
    pub(crate) fn small_files(&self) -> &cache::SmallFiles {
        &self.small_files
    }

    /// Listings served lately, checked against the directory on each use.
    pub(crate) fn listings(&self) -> &cache::Listings {
        &self.listings
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
