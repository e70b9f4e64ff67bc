//! `sandkasten-vm bench` in a real guest, short: the measurement must be
//! complete and sane, whatever the figures are.

use sandkasten_vm::bench::{BenchReport, Figures};

use crate::util::{one_guest_at_a_time, sandkasten_vm};

#[test]
fn bench_measures_both_contenders_without_errors() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = sandkasten_vm(&[
        "bench",
        "--release",
        "bookworm",
        "--accel",
        "tcg",
        "--rounds",
        "2",
        "--duration",
        "0.5",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "the measurement failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| cold start, connect → first byte (ms) |"), "{stdout}");
    let reports: Vec<BenchReport> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!((report.release.as_str(), report.accel.as_str(), report.rounds), ("bookworm", "tcg", 2));
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(report.throughput.len(), 4);
    for scenario in &report.throughput {
        for (side, loads) in [("bare", &scenario.bare), ("sandboxed", &scenario.sandboxed)] {
            assert_eq!(loads.len(), 2, "{} {side}", scenario.name);
            for load in loads {
                assert_eq!(load.errors, 0, "{} {side}: {load:?}", scenario.name);
                assert!(load.requests > 0 && load.rate > 0.0, "{} {side}: {load:?}", scenario.name);
                assert!(
                    load.p50_ms > 0.0 && load.p50_ms <= load.p99_ms,
                    "{} {side}: {load:?}",
                    scenario.name
                );
            }
        }
    }
    for latency in [&report.cold, &report.warm] {
        assert_eq!((latency.bare_ms.len(), latency.sandboxed_ms.len()), (2, 2), "{latency:?}");
        assert!(latency.bare_ms.iter().chain(&latency.sandboxed_ms).all(|ms| *ms > 0.0), "{latency:?}");
    }
    // Starting the service costs something over answering with it running.
    for (cold, warm) in report.cold.sandboxed_ms.iter().zip(&report.warm.sandboxed_ms) {
        assert!(cold >= warm, "a sandboxed cold start of {cold} ms beat its own warm figure of {warm} ms");
    }
    // The rows written for bench.py are the ones the table shows.
    let names = |rows: &[sandkasten_vm::bench::Row]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&report.rows), names(&report.rows()));
    assert!(report.rows.iter().all(|row| row.ratio.is_some_and(|r| r > 0.0)), "{:?}", report.rows);
}
