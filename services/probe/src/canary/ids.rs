//! Who reached the canary: the run id and the attempt, from the token an
//! attempt sends or, for the signal and ptrace targets, which receive no
//! token, from the sender's command line.

/// Parses "sandkasten-probe RUN ATTEMPT".
pub(super) fn parse_token(t: &str) -> (Option<String>, Option<String>) {
    let mut parts = t.split_whitespace();
    if parts.next() != Some("sandkasten-probe") {
        return (None, None);
    }
    (parts.next().map(str::to_owned), parts.next().map(str::to_owned))
}

/// Reads run id and attempt from the command line of the process that
/// signalled or traced the target: all those two targets learn of the
/// sender is its pid (every other target receives a token naming both).
///
/// The runner forks each attempt without exec, so an attempt's process has
/// the runner's command line. The run id is its `--run-id` (the harness
/// and the tests always give one; a run with a random id goes unnamed
/// here, though its tokens name it). The attempt is `None` there, and the
/// caller names it by target: only `priv.signal` signals the target and
/// only `priv.ptrace` traces it. A `run-one ID` process (made by hand)
/// names its attempt too.
pub(super) fn parse_cmdline(pid: i32) -> (Option<String>, Option<String>) {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    ids_from_args(&args)
}

/// Run id and attempt from a probe's arguments (see [`parse_cmdline`]).
fn ids_from_args(args: &[String]) -> (Option<String>, Option<String>) {
    let attempt = args.iter().position(|a| a == "run-one").and_then(|i| args.get(i + 1)).cloned();
    let run = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--run-id") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_owned),
        None => None,
    });
    (run, attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cmdline: &str) -> (Option<String>, Option<String>) {
        let args: Vec<String> = cmdline.split(' ').map(str::to_owned).collect();
        ids_from_args(&args)
    }

    /// A forked attempt has the runner's command line: the run id, in
    /// either spelling, and no attempt (the caller names it by target).
    #[test]
    fn a_runner_command_line_names_the_run() {
        let run = Some("unit-x".to_owned());
        assert_eq!(
            ids("/usr/libexec/sandkasten/sandkasten-probe --json --run-id unit-x --only priv"),
            (run.clone(), None)
        );
        assert_eq!(ids("sandkasten-probe --run-id=unit-x --json"), (run, None));
        assert_eq!(ids("sandkasten-probe --json"), (None, None));
    }

    #[test]
    fn a_run_one_command_line_names_the_run_and_the_attempt() {
        assert_eq!(
            ids("sandkasten-probe run-one priv.signal --run-id r1 --canary /etc/c.json"),
            (Some("r1".to_owned()), Some("priv.signal".to_owned()))
        );
    }
}
