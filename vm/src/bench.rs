//! The sandbox's own cost: the report of `sandkasten-vm bench`, its
//! figures and its table.
//!
//! The guest side ([`crate::inside::bench`]) runs the same
//! `sandkasten-http` twice in one guest: in its reference unit behind the
//! shipped socket (*sandboxed*: namespaces, `DynamicUser=`, seccomp,
//! Landlock) and under `systemd-socket-activate` as root (*bare*), and
//! measures both in turn, round by round. Under TCG the absolute figures
//! are slow, but both contenders run on the same emulated CPUs, so their
//! ratio is what the sandbox costs. Each ratio is taken per round (the two
//! contenders measured next to each other) and the median of those is
//! reported; the host only computes figures and judges errors here, never
//! speed: this is a measurement, not a check.

pub use crate::contract::bench::{median, BenchReport, HttpReport, Latency, Row, Stat, Throughput};

/// The median of `a[i] / b[i]`, over the rounds where `b[i]` is positive.
fn ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    let per_round: Vec<f64> = a.iter().zip(b).filter(|(_, b)| **b > 0.0).map(|(a, b)| a / b).collect();
    median(&per_round)
}

impl Stat {
    fn of(values: &[f64], p99_ms: Option<f64>, errors: u64) -> Stat {
        Stat {
            median: median(values).unwrap_or(0.0),
            min: values.iter().copied().reduce(f64::min).unwrap_or(0.0),
            max: values.iter().copied().reduce(f64::max).unwrap_or(0.0),
            p99_ms,
            errors,
        }
    }

    fn of_loads(reports: &[HttpReport]) -> Stat {
        let rates: Vec<f64> = reports.iter().map(|r| r.rate).collect();
        let p99: Vec<f64> = reports.iter().map(|r| r.p99_ms).collect();
        Stat::of(&rates, median(&p99), reports.iter().map(|r| r.errors).sum())
    }
}

impl Throughput {
    /// Its row: requests/s.
    pub fn row(&self) -> Row {
        let rates = |reports: &[HttpReport]| reports.iter().map(|r| r.rate).collect::<Vec<_>>();
        Row {
            name: self.name.clone(),
            unit: "req/s".into(),
            bare: Stat::of_loads(&self.bare),
            sandboxed: Stat::of_loads(&self.sandboxed),
            ratio: ratio(&rates(&self.sandboxed), &rates(&self.bare)),
        }
    }

    fn failures(&self, rounds: usize) -> Vec<String> {
        let mut failures = Vec::new();
        for (side, reports) in [("bare", &self.bare), ("sandboxed", &self.sandboxed)] {
            if reports.len() != rounds {
                failures.push(format!("{}: {side} ran {} of {rounds} rounds", self.name, reports.len()));
            }
            let errors: u64 = reports.iter().map(|r| r.errors).sum();
            if errors > 0 {
                failures.push(format!("{}: {side} had {errors} failed or wrong answer(s)", self.name));
            }
            if reports.iter().any(|r| r.requests == 0) {
                failures.push(format!("{}: {side} answered nothing in a round", self.name));
            }
        }
        failures
    }
}

impl Latency {
    /// Its row, named `name`: milliseconds.
    pub fn row(&self, name: &str) -> Row {
        Row {
            name: name.to_owned(),
            unit: "ms".into(),
            bare: Stat::of(&self.bare_ms, None, 0),
            sandboxed: Stat::of(&self.sandboxed_ms, None, 0),
            ratio: ratio(&self.sandboxed_ms, &self.bare_ms),
        }
    }

    fn failures(&self, name: &str, rounds: usize) -> Vec<String> {
        [("bare", &self.bare_ms), ("sandboxed", &self.sandboxed_ms)]
            .into_iter()
            .filter(|(_, ms)| ms.len() != rounds)
            .map(|(side, ms)| format!("{name}: {side} measured in {} of {rounds} rounds", ms.len()))
            .collect()
    }
}

/// The cold start row's name.
pub const COLD: &str = "cold start, connect → first byte";
/// The warm row's name.
pub const WARM: &str = "warm (server running), connect → first byte";

impl BenchReport {
    /// Every row: the throughput scenarios, the cold start, warm.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.throughput.iter().map(Throughput::row).collect();
        rows.push(self.cold.row(COLD));
        rows.push(self.warm.row(WARM));
        rows
    }

    /// Why this measurement cannot be trusted: the guest side's errors, a
    /// contender that failed or answered wrong, a missing round. Slow
    /// figures are never a failure.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = self.errors.clone();
        if self.throughput.is_empty() {
            failures.push("no throughput scenario was measured".into());
        }
        failures.extend(self.throughput.iter().flat_map(|t| t.failures(self.rounds)));
        failures.extend(self.cold.failures(COLD, self.rounds));
        failures.extend(self.warm.failures(WARM, self.rounds));
        failures
    }

    /// The report as a markdown table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "The sandbox's own cost on {} (systemd {}, kernel {}, {}): the same sandkasten-http \
             in sandkasten-http.service behind its socket (sandboxed) and under \
             systemd-socket-activate as root (bare); {} round(s) of {} s, {} connections; \
             median (min–max), ratio = sandboxed / bare per round, then the median\n\n\
             | scenario | bare | sandboxed | ratio |\n|---|---|---|---|\n",
            self.release,
            self.systemd,
            self.kernel,
            if self.accel.is_empty() { "?" } else { &self.accel },
            self.rounds,
            self.duration_s,
            self.concurrency
        );
        for row in self.rows() {
            let ratio = row.ratio.map_or("-".to_owned(), |r| format!("**{r:.2}**"));
            out += &format!(
                "| {} ({}) | {} | {} | {ratio} |\n",
                row.name,
                row.unit,
                cell(&row.bare, &row.unit),
                cell(&row.sandboxed, &row.unit)
            );
        }
        out
    }
}

/// `median (min–max)`, with the p99 latency and errors when there are any.
fn cell(stat: &Stat, unit: &str) -> String {
    let figure = |v: f64| if unit == "ms" { format!("{v:.1}") } else { format!("{v:.0}") };
    let mut cell = format!("{} ({}–{})", figure(stat.median), figure(stat.min), figure(stat.max));
    if let Some(p99) = stat.p99_ms {
        cell += &format!(" · p99 {p99:.1} ms");
    }
    if stat.errors > 0 {
        cell += &format!(" · {} err", stat.errors);
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rate: f64, errors: u64, p99_ms: f64) -> HttpReport {
        HttpReport {
            requests: (rate * 2.0) as u64,
            errors,
            seconds: 2.0,
            bytes: 0,
            rate,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            cpu: 1.0,
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            release: "bookworm".into(),
            systemd: "252.39".into(),
            kernel: "6.1.0".into(),
            accel: "tcg".into(),
            rounds: 3,
            duration_s: 2.0,
            concurrency: 16,
            throughput: vec![Throughput {
                name: "1 KiB, keep-alive".into(),
                // Round by round the sandboxed contender has 0.9, 0.5, 0.8
                // of the bare one's rate: the median of the ratios is 0.8,
                // not the ratio of the medians (900 / 1000).
                bare: vec![load(1000.0, 0, 4.0), load(2000.0, 0, 6.0), load(1000.0, 0, 5.0)],
                sandboxed: vec![load(900.0, 0, 5.0), load(1000.0, 0, 7.0), load(800.0, 0, 6.0)],
            }],
            cold: Latency { bare_ms: vec![10.0, 12.0, 11.0], sandboxed_ms: vec![40.0, 60.0, 33.0] },
            warm: Latency { bare_ms: vec![1.0, 1.0, 2.0], sandboxed_ms: vec![1.0, 2.0, 2.0] },
            errors: vec![],
            rows: vec![],
        }
    }

    #[test]
    fn ratios_are_the_median_of_per_round_ratios() {
        let rows = report().rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ratio, Some(0.8));
        assert_eq!(rows[0].bare.median, 1000.0);
        assert_eq!((rows[0].sandboxed.min, rows[0].sandboxed.max), (800.0, 1000.0));
        assert_eq!(rows[0].sandboxed.p99_ms, Some(6.0));
        // 40/10, 60/12, 33/11 = 4, 5, 3.
        assert_eq!(rows[1].ratio, Some(4.0));
        assert_eq!(rows[1].name, COLD);
        assert_eq!(rows[2].ratio, Some(1.0));
    }

    #[test]
    fn the_table_shows_both_contenders_and_the_ratio() {
        let table = report().table();
        assert!(table.contains("on bookworm (systemd 252.39, kernel 6.1.0, tcg)"), "{table}");
        assert!(
            table.contains(
                "| 1 KiB, keep-alive (req/s) | 1000 (1000–2000) · p99 5.0 ms | 900 (800–1000) · p99 6.0 ms | **0.80** |"
            ),
            "{table}"
        );
        assert!(
            table.contains(&format!("| {COLD} (ms) | 11.0 (10.0–12.0) | 40.0 (33.0–60.0) | **4.00** |")),
            "{table}"
        );
    }

    #[test]
    fn a_slow_sandbox_is_a_figure_and_wrong_answers_are_failures() {
        let mut slow = report();
        slow.throughput[0].sandboxed = vec![load(1.0, 0, 900.0); 3];
        assert_eq!(slow.failures(), Vec::<String>::new());
        let mut wrong = report();
        wrong.throughput[0].sandboxed[1] = load(900.0, 7, 5.0);
        assert_eq!(wrong.failures(), ["1 KiB, keep-alive: sandboxed had 7 failed or wrong answer(s)"]);
        assert!(wrong.table().contains("· 7 err"), "{}", wrong.table());
    }

    #[test]
    fn missing_rounds_and_guest_errors_are_failures() {
        let mut r = report();
        r.cold.sandboxed_ms.pop();
        r.throughput[0].bare[0].requests = 0;
        r.errors.push("the socket did not start".into());
        assert_eq!(
            r.failures(),
            [
                "the socket did not start",
                "1 KiB, keep-alive: bare answered nothing in a round",
                &format!("{COLD}: sandboxed measured in 2 of 3 rounds"),
            ]
        );
        r.throughput.clear();
        assert!(r.failures().contains(&"no throughput scenario was measured".to_owned()));
    }

    #[test]
    fn the_report_reads_back_from_json_without_rows() {
        let original = report();
        let mut json: serde_json::Value = serde_json::to_value(&original).unwrap();
        json.as_object_mut().unwrap().remove("rows");
        json.as_object_mut().unwrap().remove("accel");
        let read: BenchReport = serde_json::from_value(json).unwrap();
        assert_eq!(read, BenchReport { accel: String::new(), ..original });
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
