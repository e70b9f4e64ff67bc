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

/// One contender's figures from its per-round `values`.
fn stat(values: &[f64], p99_ms: Option<f64>, errors: u64) -> Stat {
    Stat {
        median: median(values).unwrap_or(0.0),
        min: values.iter().copied().reduce(f64::min).unwrap_or(0.0),
        max: values.iter().copied().reduce(f64::max).unwrap_or(0.0),
        p99_ms,
        errors,
    }
}

/// One contender's requests/s from its load reports, one per round.
fn stat_of_loads(reports: &[HttpReport]) -> Stat {
    let rates: Vec<f64> = reports.iter().map(|r| r.rate).collect();
    let p99: Vec<f64> = reports.iter().map(|r| r.p99_ms).collect();
    stat(&rates, median(&p99), reports.iter().map(|r| r.errors).sum())
}

/// A throughput scenario's row: requests/s.
pub fn throughput_row(t: &Throughput) -> Row {
    let rates = |reports: &[HttpReport]| reports.iter().map(|r| r.rate).collect::<Vec<_>>();
    Row {
        name: t.name.clone(),
        unit: "req/s".into(),
        bare: stat_of_loads(&t.bare),
        sandboxed: stat_of_loads(&t.sandboxed),
        ratio: ratio(&rates(&t.sandboxed), &rates(&t.bare)),
    }
}

fn throughput_failures(t: &Throughput, rounds: usize) -> Vec<String> {
    let mut failures = Vec::new();
    for (side, reports) in [("bare", &t.bare), ("sandboxed", &t.sandboxed)] {
        if reports.len() != rounds {
            failures.push(format!("{}: {side} ran {} of {rounds} rounds", t.name, reports.len()));
        }
        let errors: u64 = reports.iter().map(|r| r.errors).sum();
        if errors > 0 {
            failures.push(format!("{}: {side} had {errors} failed or wrong answer(s)", t.name));
        }
        if reports.iter().any(|r| r.requests == 0) {
            failures.push(format!("{}: {side} answered nothing in a round", t.name));
        }
    }
    failures
}

/// A latency's row, named `name`: milliseconds.
pub fn latency_row(l: &Latency, name: &str) -> Row {
    Row {
        name: name.to_owned(),
        unit: "ms".into(),
        bare: stat(&l.bare_ms, None, 0),
        sandboxed: stat(&l.sandboxed_ms, None, 0),
        ratio: ratio(&l.sandboxed_ms, &l.bare_ms),
    }
}

fn latency_failures(l: &Latency, name: &str, rounds: usize) -> Vec<String> {
    [("bare", &l.bare_ms), ("sandboxed", &l.sandboxed_ms)]
        .into_iter()
        .filter(|(_, ms)| ms.len() != rounds)
        .map(|(side, ms)| format!("{name}: {side} measured in {} of {rounds} rounds", ms.len()))
        .collect()
}

/// The cold start row's name.
pub const COLD: &str = "cold start, connect → first byte";
/// The warm row's name.
pub const WARM: &str = "warm (server running), connect → first byte";

/// What the host makes of a [`BenchReport`]: its figures, its failures and
/// its table (the report is the contract's; reading it is the host's).
pub trait Figures {
    /// Every row: the throughput scenarios, the cold start, warm.
    fn rows(&self) -> Vec<Row>;
    /// Why this measurement cannot be trusted: the guest side's errors, a
    /// contender that failed or answered wrong, a missing round. Slow
    /// figures are never a failure.
    fn failures(&self) -> Vec<String>;
    /// The report as a markdown table.
    fn table(&self) -> String;
}

impl Figures for BenchReport {
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.throughput.iter().map(throughput_row).collect();
        rows.push(latency_row(&self.cold, COLD));
        rows.push(latency_row(&self.warm, WARM));
        rows
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = self.errors.clone();
        if self.throughput.is_empty() {
            failures.push("no throughput scenario was measured".into());
        }
        failures.extend(self.throughput.iter().flat_map(|t| throughput_failures(t, self.rounds)));
        failures.extend(latency_failures(&self.cold, COLD, self.rounds));
        failures.extend(latency_failures(&self.warm, WARM, self.rounds));
        failures
    }

    fn table(&self) -> String {
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
            image: None,
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
