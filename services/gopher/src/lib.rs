//! sandkasten-gopher: an RFC 1436 gopher server for a read-only content tree.
//!
//! The library never binds: [`serve`] takes the sockets systemd passed (via
//! `sandkasten_runtime`), which is what lets the service run with
//! `PrivateNetwork=yes`. The binary (`main.rs`) only parses flags, takes the
//! sockets, starts logging and calls [`serve`] through
//! `sandkasten_runtime::run`.
//!
//! # Layout
//! - [`selector`]: request line to [`selector::Request`]; every lexical rule
//!   (length, control characters, TAB, `..`, hidden names).
//! - [`root`]: the content root on disk; symlink containment, listings, item
//!   types by extension or content.
//! - [`menu`]: item types and the menu wire format.
//! - [`gophermap`]: hand-written menus.
//! - [`search`]: the bounded type 7 search over file names.
//! - [`caps`]: the generated `caps.txt`.
//! - `connection` (private): one connection's exchange, with deadlines.
//!
//! # Selectors
//! `""` or `/` is the root menu, `/a/b` a file or directory below the root,
//! `/search<TAB>words` a search (listed as the last item of the generated
//! root menu), `/caps.txt` the caps file. Anything refused gets a type 3
//! error item and a warning in the log with the peer and the selector.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod caps;
mod connection;
pub mod gophermap;
pub mod menu;
pub mod root;
pub mod search;
pub mod selector;

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use sandkasten_runtime::{Context, ServeError, Socket};
use thiserror::Error;

use menu::{Item, ItemType, Origin};
use root::{ResolveError, Root, RootError, Target};
use selector::{Request, SelectorError, SEARCH_SELECTOR};

/// What the server needs besides its sockets; built once at startup.
#[derive(Debug, Clone)]
pub struct Config {
    root: Root,
    host: Option<String>,
    port: Option<u16>,
}

/// Why the configuration is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// `--root` is not a readable directory.
    #[error(transparent)]
    Root(#[from] RootError),
    /// `--host` would break menu lines.
    #[error("--host {0:?} must be 1 to 255 bytes without tabs, spaces or control characters")]
    Host(String),
}

impl Config {
    /// Checks the content root and the `--host` override.
    ///
    /// `host` and `port` replace, in every menu item that points back at
    /// this server, the local address the client connected to; set them
    /// when clients reach the server under a name or a forwarded port.
    pub fn new(root: &Path, host: Option<String>, port: Option<u16>) -> Result<Config, ConfigError> {
        if let Some(host) = &host {
            if host.is_empty() || host.len() > 255 || host.chars().any(|c| c.is_control() || c == ' ') {
                return Err(ConfigError::Host(host.clone()));
            }
        }
        Ok(Config { root: Root::open(root)?, host, port })
    }

    /// The content root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Host and port for items on this server, for a connection whose local
    /// address is `local`.
    pub fn origin(&self, local: SocketAddr) -> Origin {
        Origin {
            host: self.host.clone().unwrap_or_else(|| local.ip().to_canonical().to_string()),
            port: self.port.unwrap_or_else(|| local.port()),
        }
    }
}

/// Serves gopher on `sockets` until `ctx` says stop.
///
/// Each TCP listener gets the runtime's accept loop. A connected stream
/// (`Accept=yes`) is served as one connection, after which this returns and
/// the process exits 0.
pub async fn serve(ctx: Context, sockets: Vec<Socket>, config: Config) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let read_timeout = ctx.read_timeout();
    let handler = move |stream, peer| connection::handle(stream, peer, config.clone(), read_timeout);
    sandkasten_runtime::accept::serve_connections(&ctx, sockets, handler).await
}

/// Why a request got a type 3 error.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The request line broke a lexical rule.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// The path cannot be served.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Reading a directory or file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or a panic in a blocking task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// The text of the type 3 item: the lexical reason for malformed
    /// selectors, but only "not found" for anything about the file system,
    /// so that a client cannot probe what lies outside the root or hidden
    /// inside it.
    pub fn client_message(&self) -> String {
        match self {
            RequestError::Selector(SelectorError::Hidden) | RequestError::Resolve(_) => "not found".into(),
            RequestError::Selector(SelectorError::Traversal) => {
                "invalid selector: '..' is not allowed".into()
            }
            RequestError::Selector(err) => format!("invalid selector: {err}"),
            RequestError::Io(_) | RequestError::Internal(_) => "server error".into(),
        }
    }
}

/// What to send back for a valid request.
#[derive(Debug)]
pub enum Response {
    /// A menu, rendered per connection (host and port).
    Menu(Vec<Item>),
    /// Generated text, sent as is.
    Text(String),
    /// A file, sent as is.
    File(File),
}

/// Answers a parsed request (blocking file-system work).
pub fn respond(config: &Config, request: &Request) -> Result<Response, RequestError> {
    match request {
        Request::Caps => Ok(Response::Text(caps::text())),
        Request::Search { query } => Ok(Response::Menu(search_menu(&config.root, query))),
        Request::Path(components) => match config.root.resolve(components)? {
            Target::File(file) => Ok(Response::File(file)),
            Target::Directory(dir) => {
                let selector = Request::path_selector(components);
                let (mut items, from_gophermap) = config.root.menu(&dir, &selector)?;
                if components.is_empty() && !from_gophermap {
                    items.push(Item::local(ItemType::SEARCH, "Search file names", SEARCH_SELECTOR));
                }
                Ok(Response::Menu(items))
            }
        },
    }
}

fn search_menu(root: &Root, query: &str) -> Vec<Item> {
    let found = search::search(root, query, search::Limits::default());
    let mut items = Vec::with_capacity(found.items.len() + 2);
    let count = found.items.len();
    items.push(Item::info(format!("{count} name(s) containing {query:?}")));
    items.extend(found.items);
    if found.truncated {
        items.push(Item::info("(search stopped early: refine the query)"));
    }
    items
}
