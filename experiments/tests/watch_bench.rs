//! `fedsoc bench watch` at a tiny size: the report is well-formed and every
//! appended flow was scored exactly once. Speeds are never asserted: they
//! depend on the machine and its load.

use fedsoc_experiments::watch_bench::{WatchBenchOptions, render, run_watch_bench};
use fedsoc_watch::pipeline::BATCH;

#[test]
fn tiny_watch_bench_reports_every_format_and_sees_every_flow_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = WatchBenchOptions {
        flows: 5_000,
        rate: 2_000,
        seconds: 1.0,
        repeats: 1,
        seed: 3,
        dir: dir.path().join("bench"),
    };
    let report = run_watch_bench(&options).unwrap();

    let names: Vec<_> = report.formats.iter().map(|f| f.format).collect();
    assert_eq!(names, ["zeek-tsv", "zeek-json", "eve"]);
    assert!(report.threshold.is_finite() && report.threshold > 0.0);
    assert_eq!(report.batch, BATCH);
    for f in &report.formats {
        assert_eq!(f.flows, 5_000, "{}", f.format);
        assert!(f.flows_per_s > 0.0 && f.flows_per_s.is_finite(), "{f:?}");
        assert!(f.parse_only_flows_per_s > 0.0, "{f:?}");
        assert!(f.ratio_to_parse() > 0.0, "{f:?}");
        // The threshold is a 99th percentile: some flows alert, most do not.
        assert!(f.alerts > 0 && f.alert_share() < 0.1, "{f:?}");
        let l = &f.latency;
        assert_eq!((l.flows, l.seen_once), (2_000, 2_000), "{f:?}");
        assert!(
            0.0 <= l.p50_ms && l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms,
            "{f:?}"
        );
        assert!(l.achieved_rate > 0.0, "{f:?}");
    }

    let rows = report.rows();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let value = serde_json::to_value(row).unwrap();
        let object = value.as_object().unwrap();
        let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "alert_share",
                "batch",
                "flows",
                "flows_per_s",
                "format",
                "latency_max_ms",
                "latency_p50_ms",
                "latency_p99_ms",
                "model",
                "parse_only_flows_per_s",
                "rate",
                "ratio_to_parse"
            ]
        );
        assert!(row.model.starts_with("autoencoder "), "{}", row.model);
        assert_eq!((row.rate, row.batch), (2_000, BATCH));
    }

    let table = render(&report);
    for needle in ["zeek-tsv", "zeek-json", "eve", "one core", "target"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
    // The bench cleans up its logs and alerts as it goes.
    let left: Vec<_> = walk(&options.dir);
    assert!(
        left.iter().all(|p| p.is_dir()),
        "files left behind: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
