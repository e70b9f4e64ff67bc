//! Fuzz target: an HTTP request target, as hyper hands it to the handler,
//! through the whole pipeline against a content tree built to tempt it
//! (links out of the root, hidden files behind harmless names, a FIFO, a
//! symlink loop, precompressed siblings good and bad). The properties, not
//! just "no panic", are in `sandkasten_http_fuzz::check_target`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sandkasten_http_fuzz::check_target(data);
});
