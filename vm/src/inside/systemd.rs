//! The few things the guest side asks systemd (and other programs), each a
//! short child process with its output captured.

use std::collections::BTreeMap;
use std::process::Command;

/// Runs `argv`; its stdout, or a message with its stderr when it failed.
pub fn output(argv: &[&str]) -> Result<String, String> {
    let (program, args) = argv.split_first().expect("a program");
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
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
