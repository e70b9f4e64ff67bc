//! Fuzz target: the bytes a gopher client sends, read as the server reads
//! its request line, parsed, resolved against a content tree built to tempt
//! it (links out of the root, hidden files behind harmless names, gophermaps
//! that link out, a FIFO, a symlink loop), and the menu or error rendered.
//! The properties are in `sandkasten_gopher_fuzz::check_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sandkasten_gopher_fuzz::check_request(data);
});
