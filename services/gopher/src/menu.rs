//! Gopher menus: item types and the wire format of a menu line.
//!
//! Kept apart from the file system so that the format (RFC 1436 section 3.8:
//! `TYPE display TAB selector TAB host TAB port CRLF`, a menu ending with a
//! line of `.`) is written in exactly one place and tested as plain bytes.
//! Items whose host or port is left open are filled in at render time with
//! the [`Origin`] of the connection, because the same menu is reachable under
//! different addresses (the loopback in tests, the public address in
//! production).

use std::fmt;

/// A one-character gopher item type (RFC 1436 and common extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemType(u8);

impl ItemType {
    /// `0`: a text file.
    pub const TEXT: ItemType = ItemType(b'0');
    /// `1`: a directory (menu).
    pub const DIRECTORY: ItemType = ItemType(b'1');
    /// `3`: an error.
    pub const ERROR: ItemType = ItemType(b'3');
    /// `4`: a BinHex file.
    pub const BINHEX: ItemType = ItemType(b'4');
    /// `6`: a uuencoded file.
    pub const UUENCODED: ItemType = ItemType(b'6');
    /// `7`: a full-text search (here: over file names).
    pub const SEARCH: ItemType = ItemType(b'7');
    /// `9`: a binary file.
    pub const BINARY: ItemType = ItemType(b'9');
    /// `g`: a GIF image.
    pub const GIF: ItemType = ItemType(b'g');
    /// `I`: any other image.
    pub const IMAGE: ItemType = ItemType(b'I');
    /// `h`: an HTML document.
    pub const HTML: ItemType = ItemType(b'h');
    /// `i`: an informational line (not selectable).
    pub const INFO: ItemType = ItemType(b'i');
    /// `s`: a sound file.
    pub const SOUND: ItemType = ItemType(b's');
    /// `d`: a document (PDF, word processor).
    pub const DOCUMENT: ItemType = ItemType(b'd');

    /// An item type from a gophermap: any printable ASCII character.
    pub fn new(c: char) -> Option<ItemType> {
        c.is_ascii_graphic().then_some(ItemType(c as u8))
    }

    /// The type a file name's extension implies, if it implies one. Files
    /// without a known extension are sniffed by [`crate::root`].
    pub fn for_extension(name: &str) -> Option<ItemType> {
        let (_, ext) = name.rsplit_once('.')?;
        let ext = ext.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "md" | "markdown" | "rst" | "gmi" | "csv" | "tsv" | "log" | "conf" | "cfg"
            | "ini" | "toml" | "yaml" | "yml" | "json" | "xml" | "asc" | "diff" | "patch" | "nfo" | "rs"
            | "c" | "h" | "py" | "sh" | "go" | "js" | "css" => ItemType::TEXT,
            "html" | "htm" | "xhtml" => ItemType::HTML,
            "gif" => ItemType::GIF,
            "png" | "jpg" | "jpeg" | "bmp" | "webp" | "tif" | "tiff" | "ico" | "svg" => ItemType::IMAGE,
            "wav" | "mp3" | "ogg" | "oga" | "flac" | "opus" | "m4a" | "au" | "aiff" | "mid" | "midi" => {
                ItemType::SOUND
            }
            "pdf" | "ps" | "doc" | "docx" | "odt" | "rtf" => ItemType::DOCUMENT,
            "hqx" => ItemType::BINHEX,
            "uu" | "uue" => ItemType::UUENCODED,
            "zip" | "gz" | "tgz" | "xz" | "bz2" | "zst" | "tar" | "7z" | "exe" | "bin" | "iso" | "img"
            | "deb" | "rpm" | "mp4" | "mkv" | "webm" | "avi" | "mov" => ItemType::BINARY,
            _ => return None,
        })
    }

    /// The type character.
    pub fn as_char(self) -> char {
        self.0 as char
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// Where a connection reached us: the host and port written into items that
/// point back at this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// One menu line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item type.
    pub kind: ItemType,
    /// What the user sees.
    pub display: String,
    /// What the client sends back to fetch it.
    pub selector: String,
    /// Host, or `None` for this server (the connection's [`Origin`]).
    pub host: Option<String>,
    /// Port, or `None` for this server.
    pub port: Option<u16>,
}

impl Item {
    /// An item served by this server.
    pub fn local(kind: ItemType, display: impl Into<String>, selector: impl Into<String>) -> Item {
        Item { kind, display: display.into(), selector: selector.into(), host: None, port: None }
    }

    /// An info line: type `i`, selector `fake`, host `(NULL)`, port 0 (the
    /// convention most clients expect).
    pub fn info(text: impl Into<String>) -> Item {
        Item {
            kind: ItemType::INFO,
            display: text.into(),
            selector: "fake".into(),
            host: Some("(NULL)".into()),
            port: Some(0),
        }
    }

    /// Appends the item's line, CRLF included, to `out`.
    pub fn render(&self, origin: &Origin, out: &mut String) {
        let host = self.host.as_deref().unwrap_or(&origin.host);
        let port = self.port.unwrap_or(origin.port);
        out.push(self.kind.as_char());
        push_field(out, &self.display);
        out.push('\t');
        push_field(out, &self.selector);
        out.push('\t');
        push_field(out, host);
        out.push_str(&format!("\t{port}\r\n"));
    }
}

/// Writes a field with TAB, CR and LF replaced by spaces: one stray control
/// character in a file name or gophermap must not break the whole menu.
fn push_field(out: &mut String, field: &str) {
    out.extend(field.chars().map(|c| if matches!(c, '\t' | '\r' | '\n') { ' ' } else { c }));
}

/// Renders a complete menu, ending with the `.` line.
pub fn render(items: &[Item], origin: &Origin) -> String {
    let mut out = String::with_capacity(items.len() * 64 + 3);
    for item in items {
        item.render(origin, &mut out);
    }
    out.push_str(".\r\n");
    out
}

/// A complete error response: one type 3 item and the end of the menu.
pub fn error(message: &str) -> String {
    let mut out = String::from("3");
    push_field(&mut out, message);
    out.push_str("\t\terror.host\t1\r\n.\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { host: "127.0.0.1".into(), port: 7070 }
    }

    #[test]
    fn menu_lines_and_terminator() {
        let items = [
            Item::local(ItemType::DIRECTORY, "docs", "/docs"),
            Item::info("hello"),
            Item {
                kind: ItemType::TEXT,
                display: "elsewhere".into(),
                selector: "/x".into(),
                host: Some("example.org".into()),
                port: Some(70),
            },
        ];
        assert_eq!(
            render(&items, &origin()),
            "1docs\t/docs\t127.0.0.1\t7070\r\n\
             ihello\tfake\t(NULL)\t0\r\n\
             0elsewhere\t/x\texample.org\t70\r\n.\r\n"
        );
    }

    #[test]
    fn control_characters_never_break_a_line() {
        let item = Item::local(ItemType::TEXT, "a\tb\r\nc", "/s");
        assert_eq!(render(&[item], &origin()), "0a b  c\t/s\t127.0.0.1\t7070\r\n.\r\n");
    }

    #[test]
    fn error_item_format() {
        assert_eq!(error("not found"), "3not found\t\terror.host\t1\r\n.\r\n");
    }

    #[test]
    fn extensions() {
        assert_eq!(ItemType::for_extension("a.TXT"), Some(ItemType::TEXT));
        assert_eq!(ItemType::for_extension("a.gif"), Some(ItemType::GIF));
        assert_eq!(ItemType::for_extension("a.jpeg"), Some(ItemType::IMAGE));
        assert_eq!(ItemType::for_extension("index.html"), Some(ItemType::HTML));
        assert_eq!(ItemType::for_extension("x.tar.gz"), Some(ItemType::BINARY));
        assert_eq!(ItemType::for_extension("README"), None);
        assert_eq!(ItemType::for_extension("a.weird"), None);
        assert_eq!(ItemType::new('+'), Some(ItemType(b'+')));
        assert_eq!(ItemType::new(' '), None);
        assert_eq!(ItemType::new('ä'), None);
    }
}
