//! Fuzz target: any bytes as a gophermap, decoded as the server decodes the
//! file, parsed as the map of the root and of a subdirectory, and rendered:
//! every line must be a well-formed RFC 1436 menu line. The properties are
//! in `sandkasten_gopher_fuzz::check_gophermap`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sandkasten_gopher_fuzz::check_gophermap(data);
});
