//! What the canary and the probe share: the state file the canary writes
//! and the probe reads, the report the canary answers with, and the
//! greeting that proves a peer is the canary.
//!
//! This is the lowest layer of the canary: plain data, serialised as JSON,
//! depending on nothing else of the crate, so that the probe's side (its
//! context, the attempts) and the canary's side share it without either
//! depending on the other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Size of the canary's SysV shared memory segment.
pub const SHM_SIZE: usize = 4096;

/// The first line the canary sends on every stream, and the prefix of its
/// UDP answers. The nonce is random per canary, so a listener that is not
/// the canary cannot produce it by accident.
pub fn greeting(nonce: &str) -> String {
    format!("sandkasten-canary {nonce}")
}

/// What the canary found on the host before the probe ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// The canary's uid.
    pub uid: u32,
    /// Namespace inode numbers (`net`, `pid`, `ipc`, `uts`, `mnt`, `user`,
    /// `cgroup`): the probe compares its own to see what is private.
    pub namespaces: BTreeMap<String, u64>,
    /// (device, inode) of the directories the file-system attempts write to
    /// or list, keyed by path (`content` for the content directory). A
    /// missing key means the host has no such directory.
    pub dirs: BTreeMap<String, (u64, u64)>,
    /// The canary's capability bounding set: what any unsandboxed root
    /// process here can have at most.
    pub cap_bnd: u64,
    /// Kernel features: system calls that do not return ENOSYS, address
    /// families, ABIs (`x32`, `ia32`), devices (`dev_mem`, `dev_port`).
    pub features: BTreeMap<String, bool>,
    /// The served content directory the canary checked.
    pub content_dir: PathBuf,
    /// The D-Bus socket path the canary checked.
    pub dbus_socket: Option<PathBuf>,
    /// Whether that socket exists on the host.
    pub dbus_socket_exists: bool,
    /// Entries in /home plus entries in /root.
    pub home_entries: usize,
    /// Disk block devices (names under /sys/block).
    pub disks: Vec<String>,
}

/// The state file: targets for the probe, facts, and the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryState {
    /// Format version.
    pub version: u32,
    /// The canary's pid.
    pub pid: i32,
    /// Random per canary; proves a peer is this canary.
    pub nonce: String,
    /// TCP listener on 127.0.0.1.
    pub tcp_loopback: SocketAddr,
    /// TCP listener on a 192.0.2.0/24 address, when the host has one.
    pub tcp_lan: Option<SocketAddr>,
    /// UDP socket on 127.0.0.1; answers every datagram.
    pub udp: SocketAddr,
    /// Abstract unix socket name (without the leading NUL).
    pub abstract_unix: String,
    /// Port on 127.0.0.1 the canary keeps trying to connect to, for
    /// `net.listen-new`.
    pub listen_port: u16,
    /// A unix stream socket on the file system, outside /run (mode 0666).
    #[serde(default)]
    pub unix_stream: Option<PathBuf>,
    /// A unix datagram socket beside it (mode 0666).
    #[serde(default)]
    pub unix_dgram: Option<PathBuf>,
    /// Key of a mode-0666 SysV shared memory segment.
    pub sysv_shm_key: i32,
    /// Name of a mode-0666 POSIX message queue.
    pub mqueue: String,
    /// A process that records signals and tracers and otherwise sleeps.
    pub target_pid: i32,
    /// Its start time (see [`crate::sys::proc_starttime`]).
    pub target_starttime: u64,
    /// Where `canary-report` asks (mode 0600).
    pub control_socket: PathBuf,
    /// What the canary learned about the host.
    pub host: HostFacts,
}

impl CanaryState {
    /// Reads a state file.
    pub fn load(path: &Path) -> Result<CanaryState, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))
    }
}

/// Something that reached the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Which target (`tcp-loopback`, `tcp-lan`, `udp`, `abstract-unix`,
    /// `listen-new`, `sysv-shm`, `mqueue`, `signal`, `ptrace`).
    pub target: String,
    /// Who: a socket address, or a pid/uid.
    pub peer: String,
    /// The probe's token, when one came with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Run id from the token (or from the sender's command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Attempt id from the token (or from the sender's command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Milliseconds since the canary started.
    pub at_ms: u64,
}

/// A marker file an attempt left where the host can see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Full path.
    pub path: PathBuf,
    /// Run id from the name.
    pub run_id: String,
    /// Attempt id from the name.
    pub attempt: String,
    /// Whether `--clean-markers` removed it.
    pub removed: bool,
}

/// The answer to `canary-report`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The canary's pid.
    pub canary_pid: i32,
    /// Everything that reached the canary, in order.
    pub events: Vec<Event>,
    /// Marker files found in the host's directories.
    #[serde(default)]
    pub markers: Vec<Marker>,
    /// Attempt id → run ids seen escaping (from events and markers).
    #[serde(default)]
    pub seen: BTreeMap<String, Vec<String>>,
}

impl Report {
    /// Fills `seen` from events and markers, optionally for one run only.
    pub fn summarize(&mut self, run_id: Option<&str>) {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let pairs = self
            .events
            .iter()
            .filter_map(|e| Some((e.attempt.clone()?, e.run_id.clone().unwrap_or_else(|| "?".into()))))
            .chain(self.markers.iter().map(|m| (m.attempt.clone(), m.run_id.clone())));
        for (attempt, run) in pairs {
            if run_id.is_some_and(|r| r != run) {
                continue;
            }
            let runs = seen.entry(attempt).or_default();
            if !runs.contains(&run) {
                runs.push(run);
            }
        }
        self.seen = seen;
    }
}
