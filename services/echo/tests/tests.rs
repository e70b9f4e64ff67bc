//! Integration tests: the real sandkasten-echo, which cargo builds for these
//! tests (`CARGO_BIN_EXE_sandkasten-echo`), with sockets passed as systemd
//! passes them (the shared support: tests/support, `sandkasten_tests`).

/// The binary under test.
const ECHO: &str = env!("CARGO_BIN_EXE_sandkasten-echo");

// Echo over TCP and UDP listeners, an Accept=yes connection and --inetd.
mod echo;

// The runtime contract every server shares, seen from outside the process.
mod runtime;

// The units that run sandkasten-echo, checked against this binary.
mod units;
