//! The reliability run's report: what each scenario did to
//! `sandkasten-http` behind its socket, and the judgement of it.
//!
//! The guest side ([`crate::inside::reliability`]) drives real clients
//! through the shipped `sandkasten-http.socket` while it crashes, hangs,
//! restarts or starves the service, and reports one [`Scenario`] each; the
//! host prints them as a table and judges them here. Socket activation
//! promises that the socket outlives its service: a scenario passes when
//! no request was lost but those the service held at the moment it was
//! killed, and the socket is still listening afterwards.

pub use crate::contract::reliability::{ReliabilityReport, Scenario};

/// Why `s` fails; empty when it passes.
fn scenario_failures(s: &Scenario) -> Vec<String> {
    let mut failures = Vec::new();
    if s.sent == 0 {
        failures.push(format!("{}: no request was sent", s.name));
    }
    if s.lost() > 0 {
        failures.push(format!(
            "{}: {} request(s) lost beyond the {} in flight (first errors: {})",
            s.name,
            s.lost(),
            s.in_flight,
            s.errors.join("; ")
        ));
    }
    if s.socket_after != "active" {
        failures.push(format!("{}: the socket ended {}", s.name, s.socket_after));
    }
    failures
}

/// What the host makes of a [`ReliabilityReport`]: its failures and its
/// table (the report is the contract's; judging it is the host's).
pub trait Judged {
    /// Every reason this run fails.
    fn failures(&self) -> Vec<String>;
    /// The report as a markdown table.
    fn table(&self) -> String;
}

impl Judged for ReliabilityReport {
    fn failures(&self) -> Vec<String> {
        let mut failures = self.errors.clone();
        failures.extend(self.scenarios.iter().flat_map(scenario_failures));
        failures
    }

    fn table(&self) -> String {
        let mut out = format!(
            "Reliability of sandkasten-http.socket on {} (systemd {})\n\n\
             | scenario | sent | answered | failed | of those in flight at a kill | lost | recovery | socket after | note |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            self.release, self.systemd
        );
        for s in &self.scenarios {
            let recovery = s.recovery_s.map_or("-".to_owned(), |r| format!("{r:.1} s"));
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                s.name,
                s.sent,
                s.answered,
                s.failed,
                s.in_flight,
                s.lost(),
                recovery,
                s.socket_after,
                s.note
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(failed: u64, in_flight: u64, socket: &str) -> Scenario {
        Scenario {
            name: "SIGKILL under load".into(),
            sent: 100,
            answered: 100 - failed,
            failed,
            in_flight,
            recovery_s: Some(1.2),
            socket_after: socket.into(),
            note: String::new(),
            errors: vec!["connection reset".into()],
        }
    }

    #[test]
    fn a_kill_may_cost_the_requests_in_flight_and_no_more() {
        assert!(scenario_failures(&scenario(2, 2, "active")).is_empty());
        let failures = scenario_failures(&scenario(3, 2, "active"));
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("1 request(s) lost beyond the 2 in flight"), "{failures:?}");
    }

    #[test]
    fn a_socket_that_ends_failed_fails_the_scenario() {
        let failures = scenario_failures(&scenario(0, 0, "failed"));
        assert_eq!(failures, ["SIGKILL under load: the socket ended failed"]);
    }

    #[test]
    fn a_scenario_that_sent_nothing_proves_nothing() {
        let mut s = scenario(0, 0, "active");
        s.sent = 0;
        s.answered = 0;
        assert_eq!(scenario_failures(&s), ["SIGKILL under load: no request was sent"]);
    }

    #[test]
    fn the_table_shows_losses_and_recovery() {
        let report = ReliabilityReport {
            release: "bookworm".into(),
            systemd: "252".into(),
            image: None,
            scenarios: vec![scenario(3, 2, "active")],
            errors: vec![],
        };
        let table = report.table();
        assert!(table.contains("| SIGKILL under load | 100 | 97 | 3 | 2 | 1 | 1.2 s | active |"), "{table}");
        assert_eq!(report.failures().len(), 1);
    }
}
