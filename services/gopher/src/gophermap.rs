//! Gophermap files: a hand-written menu that replaces the generated one.
//!
//! A directory holding a file called `gophermap` is served from that file
//! instead of from its listing, so a site can have an introduction, links to
//! other servers and a chosen order. The format is the common one
//! (Gophernicus, pygopherd, Bucktooth), reduced to what is unambiguous:
//!
//! - A line without a TAB is an info line (type `i`, selector `fake`, host
//!   `(NULL)`, port 0).
//! - `Tdisplay<TAB>selector<TAB>host<TAB>port` is an item of type `T`. Fields
//!   after the port (Gopher+) are ignored.
//! - A missing or empty host or port means this server (the address the
//!   client connected to, or `--host`/`--port`); an invalid port too.
//! - For items on this server, a selector that does not start with `/` is
//!   relative to the gophermap's directory (`..` is resolved lexically and
//!   stops at the root); an empty one means the display text, relative, so
//!   `0notes.txt<TAB>` links the file next to the map. Selectors of other
//!   hosts and `URL:` selectors are kept as written.
//! - A line of just `.` ends the map; a line of just `*` ends it and appends
//!   the generated listing of the directory (Gophernicus's conventions).
//! - A line whose type character is not printable ASCII is shown as an info
//!   line, with its TABs turned into spaces: a typo should be visible, not
//!   silently dropped.
//!
//! Parsing is pure (text in, items out) so it is unit-tested without files.

use crate::menu::{Item, ItemType};

/// A parsed gophermap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gophermap {
    /// The items, in file order.
    pub items: Vec<Item>,
    /// Whether a `*` line asked for the directory's listing after them.
    pub include_listing: bool,
}

/// Parses a gophermap found in the directory whose selector is `dir`
/// (`""` for the root, `/a/b` below it).
pub fn parse(text: &str, dir: &str) -> Gophermap {
    let mut items = Vec::new();
    for line in text.lines() {
        match line {
            "." => return Gophermap { items, include_listing: false },
            "*" => return Gophermap { items, include_listing: true },
            _ => items.push(parse_line(line, dir)),
        }
    }
    Gophermap { items, include_listing: false }
}

fn parse_line(line: &str, dir: &str) -> Item {
    if !line.contains('\t') {
        return Item::info(line);
    }
    let mut chars = line.chars();
    let Some(kind) = chars.next().and_then(ItemType::new) else {
        return Item::info(line.replace('\t', " "));
    };
    let mut fields = chars.as_str().split('\t');
    // `split` on a string that contains a TAB yields at least two fields.
    let display = fields.next().unwrap_or_default().to_owned();
    let selector = fields.next().unwrap_or_default();
    let host = fields.next().filter(|h| !h.is_empty()).map(str::to_owned);
    let port = fields.next().and_then(|p| p.trim().parse::<u16>().ok());
    if kind == ItemType::INFO {
        // Info lines written with TABs keep the info conventions for what
        // they leave out.
        return Item {
            kind,
            display,
            selector: if selector.is_empty() { "fake".into() } else { selector.into() },
            host: Some(host.unwrap_or_else(|| "(NULL)".into())),
            port: Some(port.unwrap_or(0)),
        };
    }
    let selector = if host.is_some() || selector.starts_with('/') || selector.starts_with("URL:") {
        selector.to_owned()
    } else if selector.is_empty() {
        join(dir, &display)
    } else {
        join(dir, selector)
    };
    Item { kind, display, selector, host, port }
}

/// Joins a relative selector onto a directory selector, resolving `.` and
/// `..` lexically and never above the root.
fn join(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return "/".to_owned();
    }
    parts.iter().map(|p| format!("/{p}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: char, display: &str, selector: &str, host: Option<&str>, port: Option<u16>) -> Item {
        Item {
            kind: ItemType::new(kind).unwrap(),
            display: display.into(),
            selector: selector.into(),
            host: host.map(Into::into),
            port,
        }
    }

    #[test]
    fn lines_without_tab_are_info() {
        let map = parse("Welcome!\n\n  indented\r\n", "");
        assert_eq!(map.items, [Item::info("Welcome!"), Item::info(""), Item::info("  indented")]);
        assert!(!map.include_listing);
    }

    #[test]
    fn host_and_port_default_to_this_server() {
        let map = parse("0About\t/about.txt\n1Docs\t/docs\t\t\n9Bin\t/b\tother.org\n", "");
        assert_eq!(
            map.items,
            [
                item('0', "About", "/about.txt", None, None),
                item('1', "Docs", "/docs", None, None),
                item('9', "Bin", "/b", Some("other.org"), None),
            ]
        );
    }

    #[test]
    fn explicit_host_and_port_are_kept() {
        let map = parse("1Floodgap\t\tgopher.floodgap.com\t70\t+\n", "/sub");
        assert_eq!(map.items, [item('1', "Floodgap", "", Some("gopher.floodgap.com"), Some(70))]);
        // An invalid port means this server's.
        let map = parse("1X\t/x\t\tseventy\n", "");
        assert_eq!(map.items, [item('1', "X", "/x", None, None)]);
    }

    #[test]
    fn relative_selectors_are_relative_to_the_map() {
        let map = parse(
            "0Notes\tnotes.txt\n1Up\t../other\n1Top\t../../..\n0same.txt\t\nhWeb\tURL:https://example.org/\n",
            "/sub/dir",
        );
        assert_eq!(
            map.items,
            [
                item('0', "Notes", "/sub/dir/notes.txt", None, None),
                item('1', "Up", "/sub/other", None, None),
                item('1', "Top", "/", None, None),
                item('0', "same.txt", "/sub/dir/same.txt", None, None),
                item('h', "Web", "URL:https://example.org/", None, None),
            ]
        );
        let map = parse("0Notes\tnotes.txt\n", "");
        assert_eq!(map.items, [item('0', "Notes", "/notes.txt", None, None)]);
    }

    #[test]
    fn info_items_with_tabs_keep_info_defaults() {
        let map = parse("iText\t\t\t\n", "/sub");
        assert_eq!(map.items, [Item::info("Text")]);
    }

    #[test]
    fn dot_ends_and_star_appends_listing() {
        let map = parse("one\n.\ntwo\n", "");
        assert_eq!(map.items, [Item::info("one")]);
        assert!(!map.include_listing);
        let map = parse("one\n*\ntwo\n", "");
        assert_eq!(map.items, [Item::info("one")]);
        assert!(map.include_listing);
    }

    #[test]
    fn bad_type_characters_become_visible_info() {
        let map = parse(" x\t/y\n", "");
        assert_eq!(map.items, [Item::info(" x /y")]);
    }
}
