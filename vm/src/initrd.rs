//! The tiny initrd: `vm/guest/initrd/init` (a busybox script), the guest's
//! own static busybox, and just the kernel modules that reach the disks and
//! the result ports (virtio PCI, block, console) with their dependencies.
//!
//! Debian's initramfs-tools image starts udev and probes everything; this one
//! loads seven modules and switches root, which is the measured fastest way to
//! systemd (ARCHITECTURE.md, boot levers). The archive is an uncompressed `newc`
//! cpio written here, so the host needs no cpio tool and nothing decompresses
//! it at boot.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::error::{Error, IoContext};

/// The modules the guest needs before systemd starts; dependencies are added
/// from `modules.dep`.
const WANTED: &[&str] = &["virtio_pci", "virtio_blk", "virtio_console"];
/// Loaded when the kernel has them as modules: ext4 is built into Debian's
/// cloud kernel but a module in the generic one, and needs crc32c through the
/// crypto API (a soft dependency that `modules.dep` does not list; the
/// generic one, since crc32c_intel needs SSE4.2, which qemu64 lacks).
const OPTIONAL: &[&str] = &["crc32c_generic", "crc16", "mbcache", "jbd2", "ext4"];

/// Every module name the tiny initrd asks for, for the image recipe's hash.
pub(crate) const MODULES: [&str; 8] =
    [WANTED[0], WANTED[1], WANTED[2], OPTIONAL[0], OPTIONAL[1], OPTIONAL[2], OPTIONAL[3], OPTIONAL[4]];

/// Builds the tiny initrd from the guest root file system at `rootfs`.
pub(crate) fn build_tiny(rootfs: &Path, kernel: &str, init: &str) -> Result<Vec<u8>, Error> {
    let moddir = rootfs.join("usr/lib/modules").join(kernel);
    let moddir = if moddir.is_dir() { moddir } else { rootfs.join("lib/modules").join(kernel) };
    let dep_path = moddir.join("modules.dep");
    let deps_text =
        std::fs::read_to_string(&dep_path).ctx(|| format!("failed to read {}", dep_path.display()))?;
    let deps = parse_modules_dep(&deps_text);
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();

    let mut order: Vec<String> = Vec::new();
    for name in WANTED {
        if !deps.contains_key(*name) && !is_builtin(&builtin, name) {
            return Err(Error::Image {
                dir: moddir.clone(),
                detail: format!("kernel module {name} is neither a module nor built in"),
            });
        }
        visit(name, &deps, &mut order);
    }
    for name in OPTIONAL {
        if deps.contains_key(*name) {
            visit(name, &deps, &mut order);
        }
    }

    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "newroot", "lib", "lib/modules"] {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for init's stdio before /init runs.
    cpio.node("dev/console", 0o020600, 5, 1);
    let busybox = rootfs.join("usr/bin/busybox");
    let busybox =
        std::fs::read(&busybox).ctx(|| format!("failed to read {} (busybox-static)", busybox.display()))?;
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, init.as_bytes());
    let mut list = String::new();
    for name in &order {
        let rel = &deps[name.as_str()].0;
        let data = read_module(&moddir.join(rel))?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &data);
        list.push_str(&format!("{name}.ko\n"));
    }
    cpio.file("modules", 0o644, list.as_bytes());
    Ok(cpio.finish())
}

/// Module name → (relative path, dependency names) from `modules.dep`.
fn parse_modules_dep(text: &str) -> HashMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let deps = deps.split_whitespace().map(module_name).collect();
            Some((module_name(path), (path.to_string(), deps)))
        })
        .collect()
}

/// `kernel/drivers/virtio/virtio_pci.ko.xz` → `virtio_pci`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

fn is_builtin(builtin: &str, name: &str) -> bool {
    builtin.lines().any(|l| module_name(l) == name)
}

/// Depth-first: dependencies before the module, each once.
fn visit(name: &str, deps: &HashMap<String, (String, Vec<String>)>, order: &mut Vec<String>) {
    if order.iter().any(|m| m == name) {
        return;
    }
    let Some((_, needs)) = deps.get(name) else { return };
    for dep in needs {
        visit(dep, deps, order);
    }
    order.push(name.to_string());
}

/// A module's bytes, decompressed on the host when the kernel ships them
/// compressed (busybox's insmod may not understand xz or zstd).
fn read_module(path: &Path) -> Result<Vec<u8>, Error> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "xz-utils"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "zstd"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "gzip"))
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).ctx(|| format!("failed to read {}", path.display())),
        Some((tool, package)) => {
            let out = Command::new(tool).args(["-dc"]).arg(path).output().map_err(|_| {
                Error::MissingTool { tool: if tool == "xz" { "xz" } else { "zstd" }, package }
            })?;
            if !out.status.success() {
                return Err(Error::Command {
                    command: format!("{tool} -dc {}", path.display()),
                    status: out.status.to_string(),
                    output: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            Ok(out.stdout)
        }
    }
}

/// An uncompressed `newc` (SVR4, no CRC) cpio archive, as the kernel's
/// initramfs unpacker reads it.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, 2, (0, 0), &[]);
    }
    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, 1, (0, 0), data);
    }
    fn node(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.entry(name, mode, 1, (major, minor), &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the archive is reproducible
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }
}
