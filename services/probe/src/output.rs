//! Rendering: JSON lines for the harness, a table for people.

use std::io::{self, Write};

use crate::catalogue::Attempt;
use crate::verdict::{Verdict, VerdictKind};

/// One verdict as one JSON object on one line.
pub fn json_line(out: &mut impl Write, v: &Verdict) -> io::Result<()> {
    let text = serde_json::to_string(v).map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

/// The table header.
pub fn table_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{:<20} {:<11} {:<22} DIRECTIVE", "ID", "VERDICT", "OUTCOME")
}

/// One verdict as a table row plus an indented detail line.
pub fn table_row(out: &mut impl Write, v: &Verdict) -> io::Result<()> {
    let outcome = match (&v.outcome, &v.reason) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => {
            serde_json::to_value(r).ok().and_then(|x| x.as_str().map(str::to_owned)).unwrap_or_default()
        }
        (None, None) => "-".to_owned(),
    };
    writeln!(out, "{:<20} {:<11} {:<22} {}", v.id, v.verdict.as_str(), outcome, v.directive)?;
    writeln!(out, "    {}", v.detail)
}

/// The closing count line.
pub fn summary(out: &mut impl Write, all: &[Verdict]) -> io::Result<()> {
    let count = |k: VerdictKind| all.iter().filter(|v| v.verdict == k).count();
    writeln!(
        out,
        "{} attempts: {} escaped, {} blocked, {} killed, {} unsupported, {} error",
        all.len(),
        count(VerdictKind::Escaped),
        count(VerdictKind::Blocked),
        count(VerdictKind::Killed),
        count(VerdictKind::Unsupported),
        count(VerdictKind::Error)
    )
}

/// The catalogue, for `list`.
pub fn list(out: &mut impl Write, attempts: &[Attempt], json: bool) -> io::Result<()> {
    for a in attempts {
        if json {
            let v = serde_json::json!({
                "id": a.id, "goal": a.goal.id(), "what": a.what, "directive": a.held_by.describe(),
                "accepted": a.accepted, "deadline_ms": a.deadline_ms,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{:<26} {:<24} {}", a.id, a.goal.id(), a.accepted.join(" | "))?;
            writeln!(out, "    {}", a.what)?;
            writeln!(out, "    held by: {}", a.held_by.describe())?;
        }
    }
    Ok(())
}
