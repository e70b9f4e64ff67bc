//! Reading what the guest writes to its virtio ports: qemu appends each port
//! to a file on the host, [`Tail`] follows such a file, and
//! [`parse_control`] reads the control port's `start UPTIME` / `end STATUS`
//! lines. The run loop polls these; the wire format is kept here, apart from
//! the loop's timing and retry logic.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::{Error, IoContext};

/// A line on the control port.
#[derive(Debug, PartialEq)]
pub(super) enum ControlLine {
    Start { uptime: f64 },
    End { status: i32 },
}

pub(super) fn parse_control(line: &str) -> Result<ControlLine, Error> {
    let bad = || Error::Protocol(line.to_string());
    let mut words = line.split_whitespace();
    match words.next() {
        Some("start") => {
            Ok(ControlLine::Start { uptime: words.next().and_then(|u| u.parse().ok()).unwrap_or(0.0) })
        }
        Some("end") => {
            Ok(ControlLine::End { status: words.next().and_then(|s| s.parse().ok()).ok_or_else(bad)? })
        }
        _ => Err(bad()),
    }
}

/// Follows a file that qemu appends to.
#[derive(Debug)]
pub(super) struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    pub(super) fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0 }
    }

    pub(super) fn read_new(&mut self) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::new();
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(buf),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("failed to open {}", self.path.display()),
                    source: e,
                })
            }
        };
        file.seek(SeekFrom::Start(self.offset)).ctx(|| format!("failed to seek {}", self.path.display()))?;
        file.read_to_end(&mut buf).ctx(|| format!("failed to read {}", self.path.display()))?;
        self.offset += buf.len() as u64;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        assert_eq!(parse_control("start 9.85").unwrap(), ControlLine::Start { uptime: 9.85 });
        assert_eq!(parse_control("end 3 10.2").unwrap(), ControlLine::End { status: 3 });
        assert!(parse_control("end").is_err());
        assert!(parse_control("garbage").is_err());
    }
}
