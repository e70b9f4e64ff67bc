//! The client side of the control socket: how the harness and
//! `canary-report` ask a running canary for its report.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::state::{CanaryState, Report};

/// Asks the canary named by a state file for its report (`stop` also ends
/// it). The canary answers after taking in everything queued.
pub fn query(state: &CanaryState, stop: bool) -> io::Result<Report> {
    let mut s = UnixStream::connect(&state.control_socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(if stop { b"stop\n" } else { b"report\n" })?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    serde_json::from_str(text.trim()).map_err(io::Error::other)
}
