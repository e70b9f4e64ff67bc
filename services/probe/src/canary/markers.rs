//! Marker files: the name every file the probe creates starts with, and the
//! scan that finds, from the host, the markers an escaped file-system
//! attempt left behind.

use std::path::Path;

use super::state::Marker;

/// Prefix of every file the probe creates, so `canary-report` can find the
/// ones an escape left behind.
pub const MARKER_PREFIX: &str = ".sandkasten-probe.";

/// The host directories the file-system attempts leave markers in (besides
/// the content directory); the canary records each one's identity, so the
/// probe can tell the host's directory from a sandbox's private copy.
pub(super) const MARKER_DIRS: [&str; 5] = ["/tmp", "/dev/shm", "/etc", "/usr/lib", "/var/lib"];

/// Finds marker files in the host's directories; removes them if `clean`
/// (only those of `run_id`, when given).
pub fn scan_markers(content_dir: &Path, clean: bool, run_id: Option<&str>) -> Vec<Marker> {
    let mut out = Vec::new();
    let dirs = MARKER_DIRS.iter().map(Path::new).chain([content_dir]);
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(MARKER_PREFIX) else { continue };
            let Some((run, attempt)) = rest.split_once('.') else { continue };
            // Scratch files of other attempts carry a suffix after the id;
            // only the file-system attempts' markers end with the id.
            if !attempt.starts_with("fs.") || attempt.matches('.').count() != 1 {
                continue;
            }
            let path = e.path();
            // Only this run's markers: runs side by side must not clean up
            // each other's evidence before it is reported.
            let ours = run_id.map_or(true, |r| r == run);
            let removed = clean && ours && std::fs::remove_file(&path).is_ok();
            out.push(Marker { path, run_id: run.into(), attempt: attempt.into(), removed });
        }
    }
    out
}
