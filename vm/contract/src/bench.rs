//! What the guest side of `sandkasten-vm bench` measures and sends back:
//! every sample of both contenders (the host computes the table's rows,
//! sandkasten-vm's `bench` module).

use serde::{Deserialize, Serialize};

pub use sandkasten_load::HttpReport;

/// One release's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The release booted (filled in by the host).
    pub release: String,
    /// Its systemd version.
    pub systemd: String,
    /// Its kernel.
    pub kernel: String,
    /// The accelerator it ran under (filled in by the host).
    #[serde(default)]
    pub accel: String,
    /// The image booted (filled in by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::ImageInfo>,
    /// Rounds of each scenario, contenders alternated within each.
    pub rounds: usize,
    /// Seconds of each load.
    pub duration_s: f64,
    /// Connections of each load.
    pub concurrency: usize,
    /// Each throughput scenario, every round of each contender.
    pub throughput: Vec<Throughput>,
    /// From connect to the first byte of the answer, when the server has
    /// to be started by that connection, per round.
    pub cold: Latency,
    /// The same with the server already running (median of a few requests
    /// per round).
    pub warm: Latency,
    /// What kept the guest side from measuring, or a contender that
    /// answered wrong.
    pub errors: Vec<String>,
    /// The figures the table shows, computed by the host from the samples
    /// above ([`BenchReport::rows`]) and written with them, so that
    /// `scripts/bench.py` reads them instead of computing them again.
    #[serde(default)]
    pub rows: Vec<Row>,
}

/// One throughput scenario ("1 KiB, keep-alive").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Its name in the table.
    pub name: String,
    /// The load client's report per round, bare.
    pub bare: Vec<HttpReport>,
    /// The same, sandboxed.
    pub sandboxed: Vec<HttpReport>,
}

/// A latency per round, in milliseconds, for both contenders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Bare, per round.
    pub bare_ms: Vec<f64>,
    /// Sandboxed, per round.
    pub sandboxed_ms: Vec<f64>,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The scenario.
    pub name: String,
    /// What the figures count: "req/s" or "ms".
    pub unit: String,
    /// Bare.
    pub bare: Stat,
    /// Sandboxed.
    pub sandboxed: Stat,
    /// Sandboxed / bare, per round, then the median of those; `None`
    /// without a round where both were measured.
    pub ratio: Option<f64>,
}

/// One contender's figures over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// The median over the rounds.
    pub median: f64,
    /// The lowest round.
    pub min: f64,
    /// The highest round.
    pub max: f64,
    /// The median of the rounds' 99th percentile latencies (throughput
    /// only).
    pub p99_ms: Option<f64>,
    /// Requests that failed or were answered wrong, over every round.
    pub errors: u64,
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
