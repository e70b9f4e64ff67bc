//! Request lines: from the bytes a client sent to a [`Request`].
//!
//! This is the one place where untrusted bytes turn into something the
//! server acts on, so every rule about what a selector may contain lives here
//! and is unit-tested without a socket or a file system. The checks are
//! purely lexical: whether a path really stays inside the content root (after
//! symlinks) is [`crate::root`]'s job, and it runs on top of these rules.
//!
//! # Rules
//! - The line ends at LF; one CR right before it is part of the terminator
//!   (RFC 1436 says CRLF, many clients and `nc` send a bare LF).
//! - A selector is at most [`MAX_SELECTOR`] bytes of UTF-8 without control
//!   characters (TAB, CR, LF, NUL and the rest of C0 and DEL): those would
//!   break the tab-separated menus we send back, or our logs.
//! - A TAB is allowed only after [`SEARCH_SELECTOR`] (or `search`), where it
//!   separates the query (RFC 1436 type 7). Anything after a second TAB is
//!   ignored, as Gopher+ clients put `+` or `$` there.
//! - `caps.txt` and `/caps.txt` ask for the generated caps file.
//! - Anything else is a path below the root: empty and `.` components are
//!   skipped, `..` is refused outright (never resolved, even if it would stay
//!   inside), and a component that starts with `.` names a hidden file, which
//!   is never served.

use thiserror::Error;

/// The longest selector we accept, in bytes (RFC 1436 suggests 255).
pub const MAX_SELECTOR: usize = 255;

/// The longest search query we accept, in bytes.
pub const MAX_QUERY: usize = 255;

/// The longest request line we read, terminator included: a selector, a
/// TAB, a query and a few bytes of slack for Gopher+ suffixes.
pub const MAX_LINE: usize = 1024;

/// The selector of the type 7 search over file names.
///
/// SECURITY: a file or directory called `search` in the root is shadowed by
/// it; that is the price of a fixed, documented selector.
pub const SEARCH_SELECTOR: &str = "/search";

/// The selector of the generated caps file; `caps.txt` is accepted too.
pub const CAPS_SELECTOR: &str = "/caps.txt";

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A file or directory below the root, as validated path components
    /// (none empty, `.` or `..`, none hidden); empty for the root itself.
    Path(Vec<String>),
    /// A type 7 search over file names.
    Search {
        /// What to look for (trimmed, not empty).
        query: String,
    },
    /// The generated `caps.txt`.
    Caps,
}

impl Request {
    /// The selector of a path request as we write it in menus: `""` for the
    /// root, `/a/b` below it.
    pub fn path_selector(components: &[String]) -> String {
        components.iter().map(|c| format!("/{c}")).collect()
    }
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// More than [`MAX_SELECTOR`] bytes before the first TAB.
    #[error("selector is longer than {MAX_SELECTOR} bytes")]
    TooLong,
    /// More than [`MAX_QUERY`] bytes of query.
    #[error("search query is longer than {MAX_QUERY} bytes")]
    QueryTooLong,
    /// No line end within [`MAX_LINE`] bytes.
    #[error("request line is longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A TAB after a selector that takes no query.
    #[error("selector contains a tab (only {SEARCH_SELECTOR} takes a query)")]
    Tab,
    /// CR, LF, NUL or another control character.
    #[error("selector contains a control character")]
    Control,
    /// Bytes that are not UTF-8.
    #[error("selector is not UTF-8")]
    NotUtf8,
    /// A `..` component.
    #[error("selector contains a '..' component")]
    Traversal,
    /// A component starting with `.`.
    #[error("selector names a hidden file")]
    Hidden,
    /// A search without (or with an empty) query.
    #[error("search needs a query: send {SEARCH_SELECTOR}<TAB>words")]
    EmptyQuery,
}

/// Strips the line terminator (LF, or CRLF) from a complete request line.
pub fn strip_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one request line, without its terminator (see
/// [`strip_terminator`]).
pub fn parse(line: &[u8]) -> Result<Request, SelectorError> {
    let (selector, query) = match line.iter().position(|&b| b == b'\t') {
        Some(tab) => (&line[..tab], Some(&line[tab + 1..])),
        None => (line, None),
    };
    if selector.len() > MAX_SELECTOR {
        return Err(SelectorError::TooLong);
    }
    if line.iter().any(|&b| b != b'\t' && is_control(b)) {
        return Err(SelectorError::Control);
    }
    let selector = std::str::from_utf8(selector).map_err(|_| SelectorError::NotUtf8)?;
    if selector == SEARCH_SELECTOR || selector == &SEARCH_SELECTOR[1..] {
        return parse_query(query.unwrap_or_default());
    }
    if query.is_some() {
        return Err(SelectorError::Tab);
    }
    if selector == CAPS_SELECTOR || selector == &CAPS_SELECTOR[1..] {
        return Ok(Request::Caps);
    }
    let components = parse_path(selector)?;
    // The limit holds for the selector as we write it in menus too: `a`
    // becomes `/a`, so 255 bytes without the leading slash are 256.
    if Request::path_selector(&components).len() > MAX_SELECTOR {
        return Err(SelectorError::TooLong);
    }
    Ok(Request::Path(components))
}

fn parse_query(query: &[u8]) -> Result<Request, SelectorError> {
    // Gopher+ clients append "\t+" or "\t$": ignore what follows a second TAB.
    let query = match query.iter().position(|&b| b == b'\t') {
        Some(tab) => &query[..tab],
        None => query,
    };
    if query.len() > MAX_QUERY {
        return Err(SelectorError::QueryTooLong);
    }
    let query = std::str::from_utf8(query).map_err(|_| SelectorError::NotUtf8)?.trim();
    if query.is_empty() {
        return Err(SelectorError::EmptyQuery);
    }
    Ok(Request::Search { query: query.to_owned() })
}

/// Splits a path selector into checked components.
fn parse_path(selector: &str) -> Result<Vec<String>, SelectorError> {
    let mut components = Vec::new();
    for component in selector.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(SelectorError::Traversal),
            hidden if sandkasten_content::is_hidden(hidden.as_ref()) => return Err(SelectorError::Hidden),
            name => components.push(name.to_owned()),
        }
    }
    Ok(components)
}

/// C0 controls and DEL.
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Whether `name` may appear in a menu as a selector component: no control
/// characters (a TAB or CR in a file name would break the menu line) and not
/// hidden (`sandkasten-content`'s rule: `.well-known` is not).
pub fn is_listable_name(name: &str) -> bool {
    !sandkasten_content::is_hidden(name.as_ref()) && !name.bytes().any(is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[&str]) -> Request {
        Request::Path(parts.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn root_selectors() {
        assert_eq!(parse(b""), Ok(path(&[])));
        assert_eq!(parse(b"/"), Ok(path(&[])));
        assert_eq!(parse(b"/./"), Ok(path(&[])));
    }

    #[test]
    fn paths_are_split_and_normalised() {
        assert_eq!(parse(b"/docs/readme.txt"), Ok(path(&["docs", "readme.txt"])));
        assert_eq!(parse(b"docs//readme.txt/"), Ok(path(&["docs", "readme.txt"])));
        assert_eq!(parse("/ünï cödé".as_bytes()), Ok(path(&["ünï cödé"])));
    }

    #[test]
    fn terminators_crlf_and_bare_lf() {
        assert_eq!(strip_terminator(b"/a\r\n"), b"/a");
        assert_eq!(strip_terminator(b"/a\n"), b"/a");
        assert_eq!(strip_terminator(b"/a"), b"/a");
        // Only one CR belongs to the terminator; the other is refused.
        assert_eq!(parse(strip_terminator(b"/a\r\r\n")), Err(SelectorError::Control));
    }

    #[test]
    fn length_limit_is_255_bytes() {
        let ok = format!("/{}", "a".repeat(254));
        assert!(parse(ok.as_bytes()).is_ok());
        let long = format!("/{}", "a".repeat(255));
        assert_eq!(parse(long.as_bytes()), Err(SelectorError::TooLong));
        // Found by fuzzing: without the leading slash the raw line is 255
        // bytes, but the selector the server would write for it is 256.
        assert!(parse("a".repeat(254).as_bytes()).is_ok());
        assert_eq!(parse("a".repeat(255).as_bytes()), Err(SelectorError::TooLong));
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in [&b"/a\rb"[..], b"/a\nb", b"/a\0b", b"/a\x1bb", b"/a\x7f"] {
            assert_eq!(parse(bad), Err(SelectorError::Control), "{bad:?}");
        }
    }

    #[test]
    fn tab_only_after_search() {
        assert_eq!(parse(b"/docs\tx"), Err(SelectorError::Tab));
        assert_eq!(parse(b"/caps.txt\t+"), Err(SelectorError::Tab));
        assert_eq!(parse(b"/search\tfoo"), Ok(Request::Search { query: "foo".into() }));
        assert_eq!(parse(b"search\t Foo Bar "), Ok(Request::Search { query: "Foo Bar".into() }));
        assert_eq!(parse(b"/search\tfoo\t+"), Ok(Request::Search { query: "foo".into() }));
        assert_eq!(parse(b"/search"), Err(SelectorError::EmptyQuery));
        assert_eq!(parse(b"/search\t  "), Err(SelectorError::EmptyQuery));
        let long = format!("/search\t{}", "q".repeat(256));
        assert_eq!(parse(long.as_bytes()), Err(SelectorError::QueryTooLong));
        assert_eq!(parse(b"/search\tfoo\0"), Err(SelectorError::Control));
    }

    #[test]
    fn traversal_and_hidden_files() {
        assert_eq!(parse(b"../etc/passwd"), Err(SelectorError::Traversal));
        assert_eq!(parse(b"/docs/../../etc"), Err(SelectorError::Traversal));
        assert_eq!(parse(b"/docs/.."), Err(SelectorError::Traversal));
        assert_eq!(parse(b"/.git/config"), Err(SelectorError::Hidden));
        assert_eq!(parse(b"/docs/.env"), Err(SelectorError::Hidden));
        // Dots inside a name are fine.
        assert_eq!(parse(b"/a..b/c."), Ok(path(&["a..b", "c."])));
    }

    #[test]
    fn caps_and_non_utf8() {
        assert_eq!(parse(b"caps.txt"), Ok(Request::Caps));
        assert_eq!(parse(b"/caps.txt"), Ok(Request::Caps));
        assert_eq!(parse(b"/\xff"), Err(SelectorError::NotUtf8));
    }

    #[test]
    fn path_selectors_and_listable_names() {
        assert_eq!(Request::path_selector(&[]), "");
        assert_eq!(Request::path_selector(&["a".into(), "b c".into()]), "/a/b c");
        assert!(is_listable_name("notes.txt"));
        assert!(!is_listable_name(".hidden"));
        assert!(!is_listable_name("tab\tname"));
    }
}
