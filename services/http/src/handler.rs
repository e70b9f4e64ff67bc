//! The request pipeline. Each request goes through these steps, in order:
//!
//! 1. **Method**: GET and HEAD only; anything else is 405 with `Allow`.
//! 2. **Decode** the path (`resolve::decode`): `..`, `%2f`, `%00` are 400.
//! 3. **Locate** it (`resolve::locate`): canonicalize, require containment
//!    in the root, pick `index.html`, vet `.gz`/`.br` siblings. Refusals are
//!    403/404; suspicious ones log a warning with the peer and the path.
//!    This runs on the async worker, not tokio's blocking pool: in a
//!    read-only tree that the kernel has cached after the first request, a
//!    lookup is a few microseconds of system calls, and the round trip to
//!    the blocking pool (two thread switches) cost more than the lookup
//!    itself: half the requests per second for a 1 KiB file
//!    (`scripts/bench`). The price, as in nginx's event loop: a lookup that
//!    has to wait for the disk holds up this worker's other connections
//!    meanwhile.
//! 4. **Directory without `/`**: 301 to the normalized path with `/`, so
//!    relative links in the page resolve inside the directory.
//! 5. **Directory without `index.html`**: an HTML listing (`listing`).
//! 6. **File**: tower-http's `ServeFile` does MIME type, `Last-Modified`,
//!    `Range`, precompressed siblings and HEAD. We strip the conditional
//!    headers it would half-handle, then add `ETag` and `Vary`, answer
//!    `If-None-Match`/`If-Modified-Since` with 304, and repeat the call
//!    without `Range` when `If-Range` does not hold (`validators`).
//!    A plain GET (no `Range`, no `If-Unmodified-Since`, no precompressed
//!    sibling in play) skips tower-http and gets the same headers from us:
//!    a small file ([`SMALL_FILE`]) is sent from memory, kept by `cache`
//!    while the lookup's `lstat` shows it unchanged, else read whole right
//!    after the lookup (tower-http opens, stats and reads through one
//!    blocking-pool round trip each, which for a small file costs far more
//!    than the reading); a larger one is mapped and sent from the page
//!    cache with `sendfile` (`zerocopy`), as nginx sends it.
//!
//! Every response carries `X-Content-Type-Options: nosniff` (a browser must
//! not run an uploaded `.txt` as script), and every request gets one
//! debug-level access line: cheap when debug is off, which is the default.

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION, RANGE, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use tower_http::services::ServeFile;

use crate::cache::Whole;
use crate::resolve::{self, Located, Refusal, Wanted};
use crate::zerocopy::Mappings;
use crate::{listing, validators, Site};

/// Files up to this size may be read whole right after the lookup and sent
/// from memory (step 6); larger ones are streamed by tower-http.
pub(crate) const SMALL_FILE: u64 = 256 * 1024;

/// The body of every response: a file stream from tower-http or a small
/// buffer of ours. Boxed once per response so both fit one type.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// hyper's service function: never fails, every problem is a status code.
pub(crate) async fn handle(
    site: Arc<Site>,
    peer: SocketAddr,
    mappings: Arc<Mappings>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // GET and HEAD bodies mean nothing here; hyper discards an unread body.
    let (parts, _body) = req.into_parts();
    let mut response = respond(&site, peer, Some(&mappings), &parts).await;
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    tracing::debug!(
        %peer,
        method = %parts.method,
        path = parts.uri.path(),
        status = response.status().as_u16(),
        "request"
    );
    Ok(response)
}

/// The response to one request. `mappings` is the connection's, when its
/// stream sends mapped files with `sendfile` (see `zerocopy`); without it a
/// large file is streamed by tower-http.
pub(crate) async fn respond(
    site: &Arc<Site>,
    peer: SocketAddr,
    mappings: Option<&Arc<Mappings>>,
    parts: &Parts,
) -> Response<Body> {
    // 1. Method.
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    // 2. Decode.
    let path = parts.uri.path();
    let segments = match resolve::decode(path) {
        Ok(segments) => segments,
        Err(refusal) => return refused(peer, path, refusal),
    };
    // 3. Locate, inline (see the module note on why not spawn_blocking).
    let wanted = Wanted {
        trailing_slash: path.ends_with('/'),
        gzip: accepts(&parts.headers, b"gzip"),
        br: accepts(&parts.headers, b"br"),
    };
    let plain_get = parts.method == Method::GET
        && !parts.headers.contains_key(RANGE)
        && !parts.headers.contains_key(IF_UNMODIFIED_SINCE);
    let located = resolve::locate(site.root(), Some(site.listings()), &segments, wanted);
    let plain = match &located {
        Ok(Located::File(file)) if plain_get => open_plain(site, file, mappings),
        _ => None,
    };
    match located {
        Err(refusal) => refused(peer, path, refusal),
        // 4. Directory without slash.
        Ok(Located::DirWithoutSlash) => redirect(&segments, parts.uri.query()),
        // 5. Listing.
        Ok(Located::Listing(contents)) => {
            let title = display(&segments);
            let page = listing::render(&title, &contents, segments.is_empty());
            let mut response = full(StatusCode::OK, Bytes::from(page));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        // 6. File.
        Ok(Located::File(file)) => match plain {
            Some(plain) => serve_plain(parts, &file, plain),
            None => serve_file(peer, parts, &file).await,
        },
    }
}

/// Step 6's shortcut, run right after the lookup, for a file tower-http
/// would send unchanged anyway (identity coding, since no precompressed
/// sibling was vetted): a small one from the cache (`cache`) or read whole
/// and cached, a large one mapped for the connection's `sendfile` path.
/// `None` leaves the request to tower-http: a large file without that path,
/// or a file that changed since the lookup.
fn open_plain(site: &Site, file: &resolve::File, mappings: Option<&Arc<Mappings>>) -> Option<Whole> {
    if file.gzip.is_some() || file.br.is_some() {
        return None;
    }
    let small = file.meta.len() <= SMALL_FILE;
    if small {
        if let Some(cached) = site.small_files().get(&file.path, &file.meta) {
            return Some(cached);
        }
    } else if mappings.is_none() {
        return None;
    }
    // The same canonical path tower-http would open (see resolve.rs on
    // why opening by path is acceptable for a read-only root).
    let mut handle = std::fs::File::open(&file.path).ok()?;
    let meta = handle.metadata().ok()?;
    if !meta.is_file() || (meta.len() <= SMALL_FILE) != small {
        return None;
    }
    if small {
        // Exactly the length fstat gave, in one read for a small file: the
        // ETag describes that length. A file cut short meanwhile fails here
        // and goes to tower-http.
        let mut bytes = vec![0; meta.len() as usize];
        handle.read_exact(&mut bytes).ok()?;
        let whole = Whole { bytes: Bytes::from(bytes), meta };
        site.small_files().put(&file.path, whole.clone());
        Some(whole)
    } else {
        let bytes = mappings?.map(handle, meta.len()).ok()?;
        Some(Whole { bytes, meta })
    }
}

/// Step 6 for a file [`open_plain`] opened: the headers tower-http would
/// send (`Content-Type` from the canonical name, `Accept-Ranges`,
/// `Last-Modified`), then the validators as in [`serve_file`].
fn serve_plain(parts: &Parts, file: &resolve::File, whole: Whole) -> Response<Body> {
    let etag = validators::etag(&whole.meta, None);
    let last_modified = whole.meta.modified().ok().map(|t| header_value(httpdate::fmt_http_date(t)));
    if not_modified(&parts.headers, &etag, last_modified.as_ref()) {
        return not_modified_response(&etag, last_modified);
    }
    let mime = mime_guess::from_path(&file.path).first_raw().unwrap_or("application/octet-stream");
    let mut response = full(StatusCode::OK, whole.bytes);
    let out = response.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(last_modified) = last_modified {
        out.insert(LAST_MODIFIED, last_modified);
    }
    out.insert(ETAG, header_value(etag));
    out.insert(VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether the request's `If-None-Match` (or, without it,
/// `If-Modified-Since`) says the client's copy is current: RFC 9110
/// §13.2.2's order.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: Option<&HeaderValue>) -> bool {
    let mut inm = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        inm.any(|value| validators::none_match(value, etag))
    } else {
        headers
            .get(IF_MODIFIED_SINCE)
            .is_some_and(|since| validators::not_modified_since(since, last_modified))
    }
}

/// Step 6: the file through tower-http, then validators and conditionals.
async fn serve_file(peer: SocketAddr, parts: &Parts, file: &resolve::File) -> Response<Body> {
    let headers = &parts.headers;
    let mut use_range = headers.contains_key(RANGE);
    loop {
        let mut response = match call_serve_file(parts, file, use_range).await {
            Ok(response) => response,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // Removed between our lookup and tower-http's open.
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
            Err(err) => {
                tracing::error!(%peer, path = %file.path.display(), %err, "failed to serve file");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n");
            }
        };
        let status = response.status();
        if !matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE)
        {
            // 412 from If-Unmodified-Since: nothing to add.
            return response;
        }
        let coding = response.headers().get(CONTENT_ENCODING).and_then(|v| v.to_str().ok());
        let meta = match coding {
            None => Some(&file.meta),
            Some("gzip") => file.gzip.as_ref(),
            Some("br") => file.br.as_ref(),
            Some(_) => None,
        };
        let Some(meta) = meta else {
            // SECURITY: tower-http picked a sibling that appeared after we
            // vetted the directory; it may point anywhere. Do not send it.
            tracing::warn!(%peer, path = parts.uri.path(), ?coding, "unvetted precompressed file, refused");
            return text(StatusCode::SERVICE_UNAVAILABLE, "content changed, try again\n");
        };
        let etag = validators::etag(meta, coding);
        let last_modified = response.headers().get(LAST_MODIFIED).cloned();

        if not_modified(headers, &etag, last_modified.as_ref()) {
            return not_modified_response(&etag, last_modified);
        }
        if use_range && status != StatusCode::OK {
            if let Some(if_range) = headers.get(IF_RANGE) {
                if !validators::if_range_holds(if_range, &etag, last_modified.as_ref()) {
                    // The client's partial copy is stale: send it all.
                    use_range = false;
                    continue;
                }
            }
        }
        let out = response.headers_mut();
        out.insert(ETAG, header_value(etag));
        out.insert(VARY, HeaderValue::from_static("accept-encoding"));
        return response;
    }
}

/// One call to tower-http with only the headers it should act on.
async fn call_serve_file(parts: &Parts, file: &resolve::File, use_range: bool) -> io::Result<Response<Body>> {
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    let forward = req.headers_mut();
    for value in parts.headers.get_all(ACCEPT_ENCODING) {
        forward.append(ACCEPT_ENCODING, value.clone());
    }
    copy(&parts.headers, forward, IF_UNMODIFIED_SINCE);
    if use_range {
        copy(&parts.headers, forward, RANGE);
    }
    // ServeFile guesses the MIME type from the canonical name: the type of
    // what is actually sent, whatever the link that led there is called.
    let mut service = ServeFile::new(&file.path).precompressed_gzip().precompressed_br();
    let response = service.try_call(req).await?;
    Ok(response.map(|body| body.boxed_unsync()))
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, name: http::header::HeaderName) {
    if let Some(value) = from.get(&name) {
        to.insert(name, value.clone());
    }
}

/// Whether any `Accept-Encoding` value mentions `coding` (ASCII
/// case-insensitive, like tower-http). Only decides which siblings to vet,
/// so a false positive costs one `lstat`, never correctness.
fn accepts(headers: &HeaderMap, coding: &[u8]) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .any(|value| value.as_bytes().windows(coding.len()).any(|w| w.eq_ignore_ascii_case(coding)))
}

fn not_modified_response(etag: &str, last_modified: Option<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(ETAG, header_value(etag.to_owned()));
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(last_modified) = last_modified {
        headers.insert(LAST_MODIFIED, last_modified);
    }
    response
}

fn redirect(segments: &[OsString], query: Option<&str>) -> Response<Body> {
    let mut location = resolve::encode(segments);
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let mut response = text(StatusCode::MOVED_PERMANENTLY, "moved\n");
    // The query came through hyper's URI parser; if it still is no valid
    // header value, drop it rather than fail.
    let value = HeaderValue::from_str(&location).unwrap_or_else(|_| header_value(resolve::encode(segments)));
    response.headers_mut().insert(LOCATION, value);
    response
}

/// Answers a refused path, logging it with the peer and the raw path.
fn refused(peer: SocketAddr, path: &str, refusal: Refusal) -> Response<Body> {
    let status = refusal.status();
    if refusal.is_suspicious() {
        tracing::warn!(%peer, path, reason = %refusal, status = status.as_u16(), "refused request path");
    } else if let Refusal::Io(err) = &refusal {
        tracing::error!(%peer, path, %err, "failed to look up path");
    } else {
        tracing::debug!(%peer, path, reason = %refusal, "refused request path");
    }
    let reason = match status {
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        _ => "internal server error\n",
    };
    text(status, reason)
}

/// The decoded directory path, for the listing's title.
fn display(segments: &[OsString]) -> String {
    let mut out = String::from("/");
    for segment in segments {
        out.push_str(&String::from_utf8_lossy(segment.as_bytes()));
        out.push('/');
    }
    out
}

/// Our ETags and encoded paths are ASCII by construction.
fn header_value(value: String) -> HeaderValue {
    HeaderValue::try_from(value).expect("ASCII by construction")
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = full(status, Bytes::from_static(message.as_bytes()));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn full(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
