//! Running the host tools an image build needs (mmdebstrap, mkfs.ext4, cp):
//! whether they are there, and errors that carry their output.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{tail_lines, Error, IoContext};

/// Fails with an install hint when `tool` is not on `PATH`.
pub(crate) fn require_tool(tool: &'static str, package: &'static str) -> Result<(), Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // root's PATH usually has these, other users' not: mkfs.ext4 lives there.
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    if dirs.iter().any(|d| d.join(tool).is_file()) {
        Ok(())
    } else {
        Err(Error::MissingTool { tool, package })
    }
}

/// A command's name and arguments, shortened for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if s.len() > 300 {
        s.truncate(300);
        s.push_str(" …");
    }
    s
}

/// Runs `cmd` to completion; on failure the error carries its output tail.
pub(crate) fn run_captured(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let output = cmd.stdin(Stdio::null()).output().ctx(|| format!("failed to run {what}"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    Err(Error::Command {
        command: describe(cmd),
        status: output.status.to_string(),
        output: tail_lines(&text, 40),
    })
}

/// Runs `cmd`, handing each stderr line to `on_line` as it comes (stdout is
/// collected beside it); on failure the error carries the last lines of both.
pub(crate) fn run_streaming(
    cmd: &mut Command,
    what: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("failed to run {what}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stdout }, &mut buf);
        buf
    });
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("stderr is piped")).lines() {
        let line = line.ctx(|| format!("failed to read {what}'s output"))?;
        on_line(&line);
        tail.push(line);
        if tail.len() > 200 {
            tail.drain(..100);
        }
    }
    let status = child.wait().ctx(|| format!("failed to wait for {what}"))?;
    let stdout = stdout.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let n = tail.len().saturating_sub(30);
    let output = format!("{}\n(stdout:)\n{}", tail[n..].join("\n"), tail_lines(&stdout, 10));
    Err(Error::Command { command: describe(cmd), status: status.to_string(), output })
}

/// Seconds with one decimal, as progress lines print them.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
