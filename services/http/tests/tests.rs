//! Integration tests: the real sandkasten-http, which cargo builds for these
//! tests (`CARGO_BIN_EXE_sandkasten-http`), with sockets passed as systemd
//! passes them (the shared support: tests/support, `sandkasten_tests`).

/// The binary under test.
const HTTP: &str = env!("CARGO_BIN_EXE_sandkasten-http");

// A real HTTP/1.1 client over loopback: files, ranges, listings, the root's walls.
mod http;

// The units that run sandkasten-http, checked against this binary.
mod units;
