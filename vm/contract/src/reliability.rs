//! What the guest side of `sandkasten-vm reliability` counts and sends
//! back, one [`Scenario`] each (the host judges them, sandkasten-vm's `reliability` module).

use serde::{Deserialize, Serialize};

/// What one scenario did, counted by its clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name in the table ("SIGKILL under load").
    pub name: String,
    /// Requests the clients started.
    pub sent: u64,
    /// Requests answered with `200`.
    pub answered: u64,
    /// Requests that got no answer, or a wrong one.
    pub failed: u64,
    /// Failed requests that were open while the service was killed or
    /// stopped: the only ones a kill may cost.
    pub in_flight: u64,
    /// From the kill (or hang) to the first answer to a request sent after
    /// it, in seconds; `None` where nothing was killed.
    pub recovery_s: Option<f64>,
    /// The socket's `ActiveState` after the scenario ("active" when it still
    /// listens).
    pub socket_after: String,
    /// What else the scenario measured, in words (starts, slowest answer).
    pub note: String,
    /// The first few errors of requests lost beyond those in flight.
    pub errors: Vec<String>,
}

/// One release's reliability run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityReport {
    /// The release booted.
    pub release: String,
    /// Its systemd version ("252.39-1~deb12u1").
    pub systemd: String,
    /// The image booted (filled in by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::ImageInfo>,
    /// Every scenario, in the order run.
    pub scenarios: Vec<Scenario>,
    /// What kept the guest side from running a scenario at all.
    pub errors: Vec<String>,
}

impl Scenario {
    /// Requests lost beyond those in flight at a kill.
    pub fn lost(&self) -> u64 {
        self.failed.saturating_sub(self.in_flight)
    }
}
