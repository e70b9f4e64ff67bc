//! Where a run's console log, port files and `qemu-command.sh` stay after
//! the run: a fresh directory under `<cache>/runs/` per run, with only the
//! newest 30 kept so the cache does not grow without bound.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext};

/// A fresh `<cache>/runs/<time>-<pid>/`; older ones beyond the newest 30 go.
pub(super) fn new_run_dir(cache_dir: &Path) -> Result<PathBuf, Error> {
    let runs = cache_dir.join("runs");
    std::fs::create_dir_all(&runs).ctx(|| format!("failed to create {}", runs.display()))?;
    let mut old: Vec<PathBuf> = std::fs::read_dir(&runs)
        .ctx(|| format!("failed to list {}", runs.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    old.sort();
    if old.len() >= 30 {
        for dir in &old[..old.len() - 29] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-{}-", now.as_millis(), std::process::id()))
        .tempdir_in(&runs)
        .ctx(|| format!("failed to create a run directory in {}", runs.display()))?
        .keep();
    Ok(dir)
}
