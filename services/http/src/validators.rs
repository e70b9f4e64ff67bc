//! Validators and the conditional requests built on them.
//!
//! tower-http sends `Last-Modified` and answers `If-Modified-Since`, but has
//! no `ETag`, no `If-None-Match` and no `If-Range`. We add all three and, to
//! keep RFC 9110's order (§13.2.2: `If-None-Match` wins over
//! `If-Modified-Since`, both before `Range`), evaluate both 304 conditions
//! here, on the response tower-http built, instead of letting it answer one.
//!
//! The `ETag` is strong and derived from size and modification time (like
//! nginx's), plus the content coding: `app.js` and `app.js.gz` are different
//! representations and must never share a tag. Strong, so that `If-Range`
//! (which only accepts strong tags) can use it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use http::HeaderValue;

/// The `ETag` of a file's representation: `"mtime.nsec-size"` in hex, with
/// `-gzip`/`-br` for precompressed siblings.
pub(crate) fn etag(meta: &Metadata, coding: Option<&str>) -> String {
    let mut tag = format!("\"{:x}.{:x}-{:x}", meta.mtime(), meta.mtime_nsec(), meta.size());
    if let Some(coding) = coding {
        tag.push('-');
        tag.push_str(coding);
    }
    tag.push('"');
    tag
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or any listed tag by
/// weak comparison (RFC 9110 §13.1.2: `W/` is ignored).
pub(crate) fn none_match(header: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = header.to_str() else { return false };
    tags(value).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// Whether `If-Modified-Since` says the client's copy is current (304).
/// An unparsable date is ignored, as RFC 9110 §13.1.3 asks.
pub(crate) fn not_modified_since(header: &HeaderValue, last_modified: Option<&HeaderValue>) -> bool {
    match (date(Some(header)), date(last_modified)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether `If-Range` lets a `Range` apply: a strong tag equal to ours, or
/// exactly our `Last-Modified` date. Anything else means the client's partial
/// copy is stale and it must get the whole representation.
pub(crate) fn if_range_holds(header: &HeaderValue, etag: &str, last_modified: Option<&HeaderValue>) -> bool {
    let Ok(value) = header.to_str() else { return false };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == etag;
    }
    match (date(Some(header)), date(last_modified)) {
        (Some(since), Some(modified)) => since == modified,
        _ => false,
    }
}

fn date(header: Option<&HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(header?.to_str().ok()?.trim()).ok()
}

/// The entity tags in a comma-separated list, each with its quotes and any
/// `W/` prefix; `*` as itself. Tags may contain commas, so this walks quotes
/// rather than splitting.
fn tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        let start = rest;
        let body = rest.strip_prefix("W/").unwrap_or(rest);
        if let Some(tail) = body.strip_prefix('"') {
            let Some(end) = tail.find('"') else {
                rest = "";
                return None;
            };
            let len = start.len() - tail.len() + end + 1;
            rest = &start[len..];
            return Some(&start[..len]);
        }
        if let Some(tail) = body.strip_prefix('*') {
            rest = tail;
            return Some("*");
        }
        // Not a tag: skip to the next element.
        rest = rest.find(',').map_or("", |at| &rest[at..]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn tag_lists_parse_with_commas_inside_quotes() {
        let got: Vec<&str> = tags(r#" "a,b", W/"c" ,junk, *"#).collect();
        assert_eq!(got, [r#""a,b""#, r#"W/"c""#, "*"]);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(none_match(&hv(r#"W/"x", "y""#), r#""x""#));
        assert!(none_match(&hv("*"), r#""x""#));
        assert!(!none_match(&hv(r#""x-gzip""#), r#""x""#));
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let lm = hv("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(if_range_holds(&hv(r#""x""#), r#""x""#, Some(&lm)));
        assert!(!if_range_holds(&hv(r#"W/"x""#), r#""x""#, Some(&lm)));
        assert!(if_range_holds(&lm, r#""x""#, Some(&lm)));
        assert!(!if_range_holds(&hv("Sun, 06 Nov 1994 08:49:38 GMT"), r#""x""#, Some(&lm)));
    }

    #[test]
    fn if_modified_since_compares_dates_and_ignores_garbage() {
        let lm = hv("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified_since(&lm, Some(&lm)));
        assert!(not_modified_since(&hv("Mon, 07 Nov 1994 08:49:37 GMT"), Some(&lm)));
        assert!(!not_modified_since(&hv("Sat, 05 Nov 1994 08:49:37 GMT"), Some(&lm)));
        assert!(!not_modified_since(&hv("yesterday"), Some(&lm)));
    }
}
