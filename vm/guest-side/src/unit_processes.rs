//! What a running unit's processes hold, read from its cgroup and `/proc`
//! as root outside the sandbox: the ports they listen on, the files they
//! map executable, the memory and tasks they use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::systemd::show_one;

/// The unit's cgroup directory, if it has one (it runs).
fn cgroup(service: &str) -> Option<PathBuf> {
    let group = show_one(service, "ControlGroup").ok()?;
    let group = group.trim();
    (!group.is_empty()).then(|| Path::new("/sys/fs/cgroup").join(group.trim_start_matches('/')))
}

/// Every process in the unit's cgroup and the cgroups beneath it.
pub fn pids(service: &str) -> Vec<u32> {
    let Some(root) = cgroup(service) else { return Vec::new() };
    let mut pids = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    pids
}

/// The TCP ports the unit's processes listen on (in their own network
/// namespace), lowest first.
pub fn listening_ports(service: &str) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for pid in pids(service) {
        let inodes = socket_inodes(pid);
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
                ports
                    .extend(listeners(&text).into_iter().filter(|(_, i)| inodes.contains(i)).map(|(p, _)| p));
            }
        }
    }
    ports.into_iter().collect()
}

/// The inodes of the sockets `pid` holds open.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return BTreeSet::new() };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// `(port, inode)` of each listening socket in a `/proc/net/tcp` table
/// (state `0A` is `TCP_LISTEN`).
fn listeners(table: &str) -> Vec<(u16, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            Some((port, fields.get(9)?.parse().ok()?))
        })
        .collect()
}

/// The files the unit's processes run: each one's executable and every
/// file it maps executable (its interpreter, libraries, extension modules).
pub fn executable_files(service: &str) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for pid in pids(service) {
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            files.insert(exe.to_string_lossy().into_owned());
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            files.extend(executable_mappings(&maps));
        }
    }
    files
}

/// The files of a `/proc/PID/maps` text mapped with `x`.
fn executable_mappings(maps: &str) -> Vec<String> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let perms = fields.nth(1)?;
            let path = fields.nth(3)?;
            (perms.contains('x') && path.starts_with('/')).then(|| path.to_owned())
        })
        .collect()
}

/// A number the unit's cgroup keeps (`memory.peak`, `pids.current`).
pub fn cgroup_number(service: &str, file: &str) -> Option<u64> {
    std::fs::read_to_string(cgroup(service)?.join(file)).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:1F40 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listeners(table), [(8000, 4242)]);
    }

    #[test]
    fn only_executable_mappings_of_files_count() {
        let maps = "55d0-55d1 r--p 00000000 08:01 123 /usr/bin/python3.11\n\
                    55d1-55d2 r-xp 00001000 08:01 123 /usr/bin/python3.11\n\
                    7f00-7f01 r-xp 00000000 08:01 9 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    7f02-7f03 rw-p 00000000 00:00 0 \n\
                    7ffd-7ffe r-xp 00000000 00:00 0 [vdso]\n";
        assert_eq!(executable_mappings(maps), ["/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libc.so.6"]);
    }
}
