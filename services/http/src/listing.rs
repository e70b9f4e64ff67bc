//! The HTML index of a directory that has no `index.html`.
//!
//! File names are attacker-influenced text in an HTML page, so every name is
//! written twice, each time escaped for where it goes: HTML-escaped as link
//! text, and percent-encoded (every byte but the unreserved ones) in the
//! `href`, so `<`, `"`, `&`, `?`, `#` and `:` can neither break the markup nor
//! turn a name into a query, a fragment or a URL scheme.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One directory entry, as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    /// The name, raw bytes.
    pub(crate) name: OsString,
    /// Whether it is a directory (a symlink's target: links that lead
    /// outside the root or to a hidden file are not listed at all).
    pub(crate) dir: bool,
}

/// A directory's listing: what the content root serves of it, sorted by
/// name, and whether the cap cut it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The entries, sorted by name.
    pub(crate) entries: Vec<Entry>,
    /// Whether entries were left out ([`sandkasten_content::MAX_LISTING`]).
    pub(crate) truncated: bool,
}

impl From<sandkasten_content::Listing> for Listing {
    fn from(listing: sandkasten_content::Listing) -> Listing {
        let mut entries: Vec<Entry> =
            listing.entries.into_iter().map(|e| Entry { name: e.name, dir: e.meta.is_dir() }).collect();
        entries.sort();
        Listing { entries, truncated: listing.truncated }
    }
}

/// Renders the listing page. `path` is the decoded request path (for the
/// title); `root` says whether to omit the parent link.
pub(crate) fn render(path: &str, listing: &Listing, root: bool) -> String {
    let entries = &listing.entries;
    let title = escape(path);
    let mut page = String::with_capacity(256 + entries.len() * 96);
    // `write!` into a String cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if !root {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for entry in entries {
        let slash = if entry.dir { "/" } else { "" };
        let href: String = percent_encoding::percent_encode(entry.name.as_bytes(), SEGMENT).collect();
        let text = escape(&entry.name.to_string_lossy());
        let _ = writeln!(page, "<li><a href=\"./{href}{slash}\">{text}{slash}</a></li>");
    }
    page.push_str("</ul>");
    if listing.truncated {
        let _ = write!(page, "\n<p>(listing cut at {} entries)</p>", sandkasten_content::MAX_LISTING);
    }
    page.push_str("</body></html>\n");
    page
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_hrefs() {
        let entries =
            vec![Entry { name: "<b>&\"x.txt".into(), dir: false }, Entry { name: "a dir".into(), dir: true }];
        let listing = Listing { entries, truncated: false };
        let page = render("/<p>/", &listing, false);
        assert!(page.contains("<title>Index of /&lt;p&gt;/</title>"), "{page}");
        assert!(page.contains("href=\"./%3Cb%3E%26%22x.txt\">&lt;b&gt;&amp;&quot;x.txt</a>"), "{page}");
        assert!(page.contains("href=\"./a%20dir/\">a dir/</a>"), "{page}");
        assert!(page.contains("href=\"../\""), "{page}");
        assert!(!render("/", &listing, true).contains("../"));
        assert!(!page.contains("listing cut"));
        let cut = Listing { truncated: true, ..listing };
        assert!(render("/", &cut, true).contains("(listing cut at 10000 entries)"));
    }
}
