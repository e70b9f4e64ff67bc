//! One HTTP/1.1 connection, from accept to close.
//!
//! hyper does the protocol; this module sets the policy the design asks of
//! every sandkasten server: a deadline on reading each request head (so a
//! client that connects and sends nothing, or goes quiet between keep-alive
//! requests, is closed), a cap on the head's size (hyper answers 431), and
//! graceful shutdown on stop: a response in flight completes, then the
//! connection closes instead of waiting for another request. A connection
//! accepted just before the stop, whose request hyper has not read yet, is
//! served its one request first: hyper would count it as idle and close it,
//! and the client, whose request sat unread in the socket, would see a reset
//! (measured: one request lost per `systemctl restart` under load, by
//! `sandkasten-vm reliability`).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sandkasten_runtime::Context;
use tokio::net::TcpStream;

use crate::handler;
use crate::zerocopy::{Mappings, Stream};
use crate::Site;

/// The largest request head (request line plus headers) we buffer. Browsers
/// send a few KiB at most; hyper refuses values under 8 KiB, and answers a
/// longer head with 431 Request Header Fields Too Large.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `stream` until the client closes it, the read timeout fires, or a
/// stop is requested and the response in flight (if any) is done. Errors are
/// logged here: one bad connection never concerns the others.
pub(crate) async fn serve(ctx: Context, site: Arc<Site>, stream: TcpStream, peer: SocketAddr) {
    // Responses are written in large chunks; Nagle would only delay the
    // last segment of each.
    let _ = stream.set_nodelay(true);
    // Told of every request hyper reads, so a stop knows whether this
    // connection has had its first one (a stored permit if nobody waits).
    let requested = Arc::new(tokio::sync::Notify::new());
    let seen = requested.clone();
    // Large files go from the page cache to the socket (`zerocopy`).
    let mappings = Arc::new(Mappings::default());
    let stream = Stream::new(stream, mappings.clone());
    let service = service_fn(move |req| {
        seen.notify_one();
        handler::handle(site.clone(), peer, mappings.clone(), req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.read_timeout())
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = ctx.stopped() => {
            // The first request (or the read timeout, or the client's
            // close) before the graceful shutdown; later ones are not
            // waited for.
            let result = tokio::select! {
                result = conn.as_mut() => Some(result),
                _ = requested.notified() => None,
            };
            match result {
                Some(result) => result,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    match result {
        Ok(()) => tracing::trace!(%peer, "connection closed"),
        Err(err) if err.is_timeout() => {
            tracing::debug!(%peer, "closed a connection that sent no request in time")
        }
        Err(err) if err.is_parse() || err.is_parse_too_large() => {
            tracing::warn!(%peer, %err, "malformed request, connection closed")
        }
        Err(err) => tracing::debug!(%peer, %err, "connection ended with an error"),
    }
}
