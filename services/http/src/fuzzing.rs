//! Entry points for the fuzz targets in `services/http/fuzz/`: not an API.
//!
//! The request pipeline (`resolve`, `handler`) is private to the crate; this
//! module lends the fuzz targets the same functions the server calls, with
//! the crate's private types mapped to public ones, and nothing else.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::{handler, resolve, Site};

/// A refused request path: the status it is answered with, and why.
#[derive(Debug)]
pub struct Refused {
    /// The status code the handler answers with.
    pub status: StatusCode,
    /// The reason, as logged.
    pub reason: String,
}

impl From<resolve::Refusal> for Refused {
    fn from(refusal: resolve::Refusal) -> Refused {
        Refused { status: refusal.status(), reason: refusal.to_string() }
    }
}

/// Step 2 of the pipeline: the request path's decoded segments.
pub fn decode(raw: &str) -> Result<Vec<OsString>, Refused> {
    resolve::decode(raw).map_err(Refused::from)
}

/// The `Location:` path the handler builds from decoded segments.
pub fn encode(segments: &[OsString]) -> String {
    resolve::encode(segments)
}

/// What step 3 found.
#[derive(Debug)]
pub enum Located {
    /// A file to serve, by canonical path, with the precompressed siblings
    /// that were vetted.
    File {
        /// The canonical path.
        path: PathBuf,
        /// A `.gz` sibling was vetted.
        gzip: bool,
        /// A `.br` sibling was vetted.
        br: bool,
    },
    /// A directory asked for without the trailing `/`.
    DirWithoutSlash,
    /// A directory's listing: names and whether each is a directory.
    Listing(Vec<(OsString, bool)>),
}

/// Step 3 of the pipeline against `site`'s root and policy.
pub fn locate(
    site: &Site,
    segments: &[OsString],
    trailing_slash: bool,
    gzip: bool,
    br: bool,
) -> Result<Located, Refused> {
    let wanted = resolve::Wanted { trailing_slash, gzip, br };
    Ok(match resolve::locate(site.root(), None, segments, wanted)? {
        resolve::Located::File(file) => {
            Located::File { path: file.path, gzip: file.gzip.is_some(), br: file.br.is_some() }
        }
        resolve::Located::DirWithoutSlash => Located::DirWithoutSlash,
        resolve::Located::Listing(listing) => {
            Located::Listing(listing.entries.into_iter().map(|e| (e.name, e.dir)).collect())
        }
    })
}

/// The whole pipeline for one request (what hyper's service function does
/// after parsing the head), with the body collected.
pub async fn respond(site: &Arc<Site>, request: Request<()>) -> io::Result<Response<Bytes>> {
    let (parts, ()) = request.into_parts();
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let (head, body) = handler::respond(site, peer, None, &parts).await.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(head, body))
}
