//! The few things the guest side asks systemd (and other programs), each a
//! short child process with its output captured and a deadline.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a query (`systemctl show`, `journalctl`, `ip`) may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `argv` (at most [`QUERY_TIMEOUT`]); its stdout, or why it failed.
pub fn output(argv: &[&str]) -> Result<String, String> {
    let (program, args) = argv.split_first().expect("a program");
    let out = command(program, args, QUERY_TIMEOUT)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(failure(&argv.join(" "), &out))
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// What it printed.
    pub stdout: String,
    /// What it complained.
    pub stderr: String,
}

/// Runs `program` with `args`, killed after `limit`. Its output is read on
/// threads of their own, so a full pipe never stalls it.
pub fn command(program: &str, args: &[&str], limit: Duration) -> Result<Output, String> {
    let mut command = Command::new(program);
    command.args(args);
    run_with_limit(command, limit)
}

/// Runs `command` (its environment as the caller set it), killed after
/// `limit`, its output captured as [`command`] does.
pub fn run_with_limit(mut command: Command, limit: Duration) -> Result<Output, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("{program}: {error}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} {}: no answer in {:.0} s",
                    args.join(" "),
                    limit.as_secs_f64()
                ));
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program}: {error}"));
            }
        }
    };
    // A grandchild may hold the pipes open: wait a little, not forever.
    let grace = Duration::from_secs(1);
    let take = |pipe: mpsc::Receiver<Vec<u8>>| {
        pipe.recv_timeout(grace).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    };
    Ok(Output { status, stdout: take(stdout), stderr: take(stderr) })
}

/// Reads a pipe to its end on a thread; the bytes arrive on the receiver.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
    }
    rx
}

/// Why a command failed, in one line: its stderr's first line, else its status.
pub fn failure(what: &str, out: &Output) -> String {
    match out.stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => format!("{what}: {}", line.chars().take(300).collect::<String>()),
        None => format!("{what}: {}", out.status),
    }
}

/// `systemctl ARGS…`, its output dropped.
pub fn systemctl(args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["systemctl"];
    argv.extend_from_slice(args);
    output(&argv).map(drop)
}

/// One property of one unit, trimmed.
pub fn show_one(unit: &str, property: &str) -> Result<String, String> {
    output(&["systemctl", "show", "-p", property, "--value", unit]).map(|v| v.trim().to_owned())
}

/// `systemctl show` of `props` for each of `units`, one map per unit in
/// order (one child process for all of them).
pub fn show(units: &[String], props: &[&str]) -> Result<Vec<BTreeMap<String, String>>, String> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let props = format!("--property={}", props.join(","));
    let mut argv = vec!["systemctl", "show", props.as_str()];
    argv.extend(units.iter().map(String::as_str));
    Ok(parse_show(&output(&argv)?))
}

/// Splits `systemctl show` output (blocks of `Key=value` lines separated by
/// an empty line, one block per unit).
pub fn parse_show(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut blocks = Vec::new();
    let mut block = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            block.insert(k.to_owned(), v.to_owned());
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// The loaded instances of the template matching `pattern`
/// (`sk-echo-inetd@*.service`) with their active state.
pub fn instances(pattern: &str) -> Result<Vec<(String, String)>, String> {
    let text = output(&["systemctl", "list-units", "--all", "--plain", "--no-legend", pattern])?;
    Ok(parse_list_units(&text))
}

/// (unit, active state) from `systemctl list-units --plain --no-legend`.
pub fn parse_list_units(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let unit = words.next()?;
            let _load = words.next()?;
            let active = words.next()?;
            Some((unit.to_owned(), active.to_owned()))
        })
        .collect()
}

/// Whether an active state means the unit's processes may still run.
pub fn running(active_state: &str) -> bool {
    matches!(active_state, "active" | "activating" | "deactivating" | "reloading" | "refreshing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_blocks_per_unit() {
        let blocks = parse_show(
            "Id=a.service\nActiveState=active\n\nId=b.service\nActiveState=failed\nResult=oom-kill\n",
        );
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1]["Result"], "oom-kill");
        assert_eq!(blocks[0]["ActiveState"], "active");
    }

    #[test]
    fn list_units_lines() {
        let units =
            parse_list_units("sk-i@1-127.0.0.1:7007-127.0.0.1:4000.service loaded active running sk\n");
        assert_eq!(units, [("sk-i@1-127.0.0.1:7007-127.0.0.1:4000.service".to_owned(), "active".to_owned())]);
        assert!(running("deactivating") && !running("failed") && !running("inactive"));
    }
}
