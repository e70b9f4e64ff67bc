//! What `strace -f` saw a program do, read from its output: the calls it
//! made, the address families it opened, the ports it bound, the files it
//! wrote and ran. Only calls that succeeded count for the last four: a
//! failed attempt is not something the program needs.

use std::collections::{BTreeMap, BTreeSet};

/// What one trace shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Every system call seen, by name.
    pub syscalls: BTreeSet<String>,
    /// `AF_INET`, `AF_UNIX`: the families of sockets `socket(2)` made.
    pub families: BTreeSet<String>,
    /// Ports `bind(2)` took.
    pub bound_ports: BTreeSet<u16>,
    /// Absolute paths created, written, removed or renamed.
    pub written: BTreeSet<String>,
    /// Programs `execve(2)` ran, and files mapped executable (strace -y).
    pub executed: BTreeSet<String>,
}

/// Calls that write the path in their first string argument when they
/// succeed, whatever their flags.
const WRITING: [&str; 14] = [
    "creat",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
];

/// Reads strace's output (`-f`, to a file or stderr: lines prefixed by a
/// pid or `[pid N]`, calls split by `<unfinished ...>` and `<... resumed>`).
pub fn parse(text: &str) -> Trace {
    let mut trace = Trace::default();
    // A call another thread interrupted, by pid: its name and its start.
    let mut pending: BTreeMap<String, (String, String)> = BTreeMap::new();
    for raw in text.lines() {
        let (pid, line) = split_pid(raw);
        let (name, whole) = if let Some(rest) = line.strip_prefix("<... ") {
            let Some((name, tail)) = rest.split_once(" resumed>") else { continue };
            match pending.remove(pid) {
                Some((_, start)) => (name.to_owned(), format!("{start}{tail}")),
                None => (name.to_owned(), tail.to_owned()),
            }
        } else {
            let Some((name, _)) = line.split_once('(') else { continue };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            if let Some(start) = line.strip_suffix(" <unfinished ...>") {
                pending.insert(pid.to_owned(), (name.to_owned(), start.to_owned()));
                trace.syscalls.insert(name.to_owned());
                continue;
            }
            (name.to_owned(), line.to_owned())
        };
        trace.syscalls.insert(name.clone());
        if !succeeded(&whole) {
            continue;
        }
        let args = whole.split_once('(').map_or("", |(_, a)| a);
        match name.as_str() {
            "socket" => {
                if let Some(family) = args.split([',', ')']).next().filter(|f| f.starts_with("AF_")) {
                    trace.families.insert(family.trim().to_owned());
                }
            }
            "bind" => trace.bound_ports.extend(port(args)),
            "execve" | "execveat" => trace.executed.extend(first_path(args)),
            // strace -y names a mapped file: a library or module mapped executable.
            "mmap" | "mmap2" if args.contains("PROT_EXEC") => trace.executed.extend(fd_path(args)),
            "open" | "openat" | "openat2" if writes(args) => trace.written.extend(first_path(args)),
            name if WRITING.contains(&name) => trace.written.extend(all_paths(args)),
            _ => {}
        }
    }
    trace
}

/// The pid prefix (`[pid  12] ` or `12  `) and the rest of the line.
fn split_pid(line: &str) -> (&str, &str) {
    if let Some(rest) = line.strip_prefix("[pid ") {
        if let Some((pid, call)) = rest.split_once(']') {
            return (pid.trim(), call.trim_start());
        }
    }
    let digits = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    if digits > 0 && line[digits..].starts_with(' ') {
        return (&line[..digits], line[digits..].trim_start());
    }
    ("", line)
}

/// Whether a finished call returned something other than an error.
fn succeeded(line: &str) -> bool {
    match line.rsplit_once(" = ") {
        Some((call, result)) => {
            call.trim_end().ends_with(')') && !result.starts_with('-') && !result.starts_with('?')
        }
        None => false,
    }
}

/// Whether `open`'s flags ask to write or create.
fn writes(args: &str) -> bool {
    ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"].iter().any(|f| args.contains(f))
}

/// The quoted strings among the arguments that are absolute paths.
fn all_paths(args: &str) -> Vec<String> {
    args.split('"').skip(1).step_by(2).filter(|s| s.starts_with('/')).map(str::to_owned).collect()
}

fn first_path(args: &str) -> Option<String> {
    all_paths(args).into_iter().next()
}

/// The path strace -y prints after a file descriptor: `3</usr/lib/libc.so.6>`.
fn fd_path(args: &str) -> Option<String> {
    let at = args.find("</")?;
    let rest = &args[at + 1..];
    Some(rest[..rest.find('>')?].to_owned())
}

/// `sin_port=htons(8000)` or `sin6_port=htons(8000)` in `bind`'s address.
fn port(args: &str) -> Option<u16> {
    let at = args.find("_port=htons(")?;
    let rest = &args[at + "_port=htons(".len()..];
    rest.split(')').next()?.parse().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"execve("/usr/bin/python3", ["/usr/bin/python3", "-m", "http.server"], 0x7ffc /* 9 vars */) = 0
brk(NULL)                               = 0x5581
openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) = -1 EAFNOSUPPORT (Address family not supported by protocol)
bind(3, {sa_family=AF_INET6, sin6_port=htons(8000), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::", &sin6_addr), sin6_scope_id=0}, 28) = 0
[pid   812] openat(AT_FDCWD, "/var/lib/web/state.json", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666 <unfinished ...>
[pid   811] accept4(3,  <unfinished ...>
[pid   812] <... openat resumed>)        = 5
openat(AT_FDCWD, "/var/cache/x", O_RDWR) = -1 ENOENT (No such file or directory)
811   <... accept4 resumed>{sa_family=AF_INET6, sin6_port=htons(4242)}, [28], SOCK_CLOEXEC) = 4
812   renameat2(AT_FDCWD, "/srv/a.tmp", AT_FDCWD, "/srv/a", 0) = 0
127.0.0.1 - - [07/Dec/2026 12:00:00] "GET / HTTP/1.0" 200 -
[pid   812] mmap(0x7f10, 1396736, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3</usr/lib/x86_64-linux-gnu/libssl.so.3>, 0x26000) = 0x7f10
mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 4</usr/share/data.bin>, 0) = 0x7f20
exit_group(0)                           = ?
+++ exited with 0 +++
"#;

    #[test]
    fn a_trace_gives_calls_families_ports_writes_and_programs() {
        let trace = parse(TRACE);
        let calls: Vec<&str> = trace.syscalls.iter().map(String::as_str).collect();
        assert_eq!(
            calls,
            ["accept4", "bind", "brk", "execve", "exit_group", "mmap", "openat", "renameat2", "socket"],
            "the program's own log line is not a call"
        );
        assert_eq!(trace.families, BTreeSet::from(["AF_INET6".to_owned()]), "a refused family is not needed");
        assert_eq!(trace.bound_ports, BTreeSet::from([8000]), "accept's peer port is not a bind");
        let written: Vec<&str> = trace.written.iter().map(String::as_str).collect();
        assert_eq!(written, ["/srv/a", "/srv/a.tmp", "/var/lib/web/state.json"], "a resumed call counts");
        let executed: Vec<&str> = trace.executed.iter().map(String::as_str).collect();
        assert_eq!(
            executed,
            ["/usr/bin/python3", "/usr/lib/x86_64-linux-gnu/libssl.so.3"],
            "a library mapped executable runs, a data file mapped readable does not"
        );
    }
}
