//! Integration tests: the real sandkasten-gopher, which cargo builds for
//! these tests (`CARGO_BIN_EXE_sandkasten-gopher`), with sockets passed as
//! systemd passes them (the shared support: tests/support, `sandkasten_tests`).

/// The binary under test.
const GOPHER: &str = env!("CARGO_BIN_EXE_sandkasten-gopher");

// Real gopher exchanges over loopback: menus, gophermaps, search, the root's walls.
mod gopher;

// The unit that runs sandkasten-gopher, checked against this binary.
mod units;
