//! The payload disk: the caller's payload directory, plus the command as
//! `.sandkasten/argv`, staged and packed with `mkfs.ext4 -d` into
//! `payload.img`, which the guest sees as `/dev/vdb` on `/payload`. A small
//! per-run disk saves copying and packing the whole root file system, which
//! all runs share (`snapshot=on`).

use std::path::Path;
use std::process::Command;

use super::Config;
use crate::error::{Error, IoContext};
use crate::process;

/// Stages the payload under `scratch/payload` and packs it into `img`.
pub(super) fn build_payload(config: &Config, scratch: &Path, img: &Path) -> Result<(), Error> {
    let stage = scratch.join("payload");
    std::fs::create_dir_all(&stage).ctx(|| format!("failed to create {}", stage.display()))?;
    if let Some(dir) = &config.payload_dir {
        if !dir.is_dir() {
            return Err(Error::Config(format!("payload {} is not a directory", dir.display())));
        }
        // cp -a keeps modes, symlinks and ownership; --reflink shares blocks
        // where the file system can.
        let mut cp = Command::new("cp");
        cp.args(["-a", "--reflink=auto", "-T"]).arg(dir).arg(&stage);
        process::run_captured(&mut cp, "cp")?;
    }
    if let Some(argv) = &config.command {
        if argv.is_empty() {
            return Err(Error::Config("empty command".into()));
        }
        let meta = stage.join(".sandkasten");
        std::fs::create_dir_all(&meta).ctx(|| format!("failed to create {}", meta.display()))?;
        let mut bytes = Vec::new();
        for arg in argv {
            use std::os::unix::ffi::OsStrExt;
            if arg.as_bytes().contains(&0) {
                return Err(Error::Config("a command argument contains a NUL byte".into()));
            }
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        std::fs::write(meta.join("argv"), bytes).ctx(|| "failed to write the command".into())?;
    }
    // Room for what the payload holds plus what a guest script writes there.
    let size_mib = dir_size(&stage) / (1 << 20) * 3 / 2 + 32;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "sandkasten-payload", "-d"])
        .arg(&stage)
        .arg(img)
        .arg(format!("{size_mib}M"));
    process::run_captured(&mut mkfs, "mkfs.ext4")
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
