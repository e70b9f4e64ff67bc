//! The harness's typed errors. Each guest failure carries the console tail,
//! because "it timed out" alone never tells what the guest was doing.

use std::path::PathBuf;
use std::time::Duration;

/// Why the harness (not the guest command) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system or process operation failed; `context` names the path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A host tool is missing.
    #[error("{tool} not found; install it with `apt-get install {package}`")]
    MissingTool {
        /// The executable.
        tool: &'static str,
        /// The Debian package that ships it.
        package: &'static str,
    },
    /// A host command (mmdebstrap, mkfs.ext4, ...) failed.
    #[error("{command} failed ({status}); its last output lines:\n{output}")]
    Command {
        /// The command line, shortened.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// The caller asked for something impossible.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The image on disk does not look like one this recipe builds.
    #[error("image {dir}: {detail}")]
    Image {
        /// The image directory.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// qemu exited with an error before the guest reported a result, on
    /// the last of [`crate::guest::BOOTS`] boots.
    #[error(
        "qemu failed ({status}) before the guest reported a result\n\
         qemu stderr:\n{stderr}\nlast console lines ({console_log}):\n{console_tail}",
        console_log = console_log.display()
    )]
    QemuFailed {
        /// qemu's exit status.
        status: String,
        /// The tail of qemu's stderr.
        stderr: String,
        /// The per-run console log.
        console_log: PathBuf,
        /// Its last 40 lines.
        console_tail: String,
    },
    /// The guest did not finish before the deadline; qemu was killed.
    #[error(
        "guest did not finish within {:.0} s under {accel}; qemu killed\n\
         last console lines ({console_log}):\n{console_tail}",
        after.as_secs_f64(),
        console_log = console_log.display()
    )]
    Timeout {
        /// The deadline that passed.
        after: Duration,
        /// The accelerator in use (the deadline scales with it).
        accel: crate::Accel,
        /// The per-run console log.
        console_log: PathBuf,
        /// Its last 40 lines.
        console_tail: String,
    },
    /// The guest never reached its script's `start` line, on the last of
    /// [`crate::guest::BOOTS`] boots; qemu was killed.
    #[error(
        "the guest did not boot within {:.0} s under {accel} (its script never started); qemu killed\n\
         last console lines ({console_log}):\n{console_tail}",
        after.as_secs_f64(),
        console_log = console_log.display()
    )]
    BootHung {
        /// The boot deadline that passed.
        after: Duration,
        /// The accelerator in use (the deadline scales with it).
        accel: crate::Accel,
        /// The per-run console log.
        console_log: PathBuf,
        /// Its last 40 lines.
        console_tail: String,
    },
    /// The guest powered off (or panicked) without a complete result.
    #[error(
        "guest stopped without a complete result (no end line on sandkasten.control)\n\
         last console lines ({console_log}):\n{console_tail}",
        console_log = console_log.display()
    )]
    NoResult {
        /// The per-run console log.
        console_log: PathBuf,
        /// Its last 40 lines.
        console_tail: String,
    },
    /// The guest wrote something unexpected on the control port.
    #[error("malformed line on the sandkasten.control port: {0:?}")]
    Protocol(String),
}

impl Error {
    /// One line for a failure of the machine that a second boot may not
    /// repeat (a qemu crash, a hung boot), with the console log it left.
    pub(crate) fn machine_failure(&self) -> String {
        match self {
            Error::QemuFailed { status, stderr, console_log, .. } => {
                let said = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                format!("qemu crashed ({status}: {said}; console: {})", console_log.display())
            }
            Error::BootHung { after, console_tail, console_log, .. } => {
                let lockup = if console_tail.contains("soft lockup") {
                    ", the kernel reports a soft lockup"
                } else {
                    ""
                };
                format!(
                    "the guest's boot hung (its script had not started after {:.0} s{lockup}; console: {})",
                    after.as_secs_f64(),
                    console_log.display()
                )
            }
            other => other.to_string(),
        }
    }
}

/// Attaches a path-bearing context to io errors.
pub(crate) trait IoContext<T> {
    /// Wraps the error with `context()`.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}

/// The last `n` lines of `text`, lossily decoded, without carriage returns
/// (the serial console ends lines with CRLF).
pub(crate) fn tail_lines(text: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(text).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of the file at `path` (empty when unreadable).
pub(crate) fn file_tail(path: &std::path::Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) if !bytes.is_empty() => tail_lines(&bytes, n),
        Ok(_) => "(empty)".to_string(),
        Err(e) => format!("(unreadable: {e})"),
    }
}
