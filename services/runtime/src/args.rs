//! Command-line flags that every server shares.
//!
//! Each flag has an environment twin (`SANDKASTEN_*`) so that a unit can set
//! it with `Environment=` or `EnvironmentFile=` instead of editing
//! `ExecStart=`.

use std::time::Duration;

use clap::Args;

/// The shared flags; flatten them into a server's own `clap::Parser`.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Bind ADDR ourselves when systemd passed no socket (development and
    /// benchmarks only). `udp:ADDR` binds a UDP socket. Repeatable.
    #[arg(long = "listen", value_name = "ADDR", env = "SANDKASTEN_LISTEN", value_delimiter = ',')]
    pub listen: Vec<String>,

    /// Exit after this many seconds without an open connection, so systemd
    /// starts us again on the next one. 0 never exits.
    #[arg(long, value_name = "SECS", default_value_t = 0, env = "SANDKASTEN_IDLE_EXIT")]
    pub idle_exit: u64,

    /// On SIGTERM, how long open connections may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 10, env = "SANDKASTEN_GRACE")]
    pub grace: u64,

    /// Connections served at once; further ones wait in the kernel's backlog.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..), env = "SANDKASTEN_MAX_CONNECTIONS")]
    pub max_connections: u32,

    /// Close a connection whose client sends nothing for this long.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..), env = "SANDKASTEN_READ_TIMEOUT")]
    pub read_timeout: u64,

    /// Threads for blocking file operations (tokio's blocking pool). They
    /// count against the unit's TasksMax=, so the default is small.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..), env = "SANDKASTEN_BLOCKING_THREADS")]
    pub blocking_threads: u32,

    /// Worker threads (0: one per CPU, at most 4).
    #[arg(long, value_name = "N", default_value_t = 0, env = "SANDKASTEN_THREADS")]
    pub threads: usize,
}

impl RuntimeArgs {
    /// `--idle-exit` as a duration; `None` when idle exit is off.
    pub fn idle_exit(&self) -> Option<Duration> {
        (self.idle_exit > 0).then(|| Duration::from_secs(self.idle_exit))
    }

    /// `--grace` as a duration.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace)
    }

    /// `--read-timeout` as a duration.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout)
    }

    /// Tokio worker threads: `--threads`, or one per CPU capped at four
    /// (more threads than that only cost memory for servers this small).
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(1)
    }
}
