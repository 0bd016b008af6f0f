//! `fedsoc experiment run` and `fedsoc bench train` as a data scientist
//! runs them: a scenario in, a report out.

use std::path::Path;
use std::process::Command;

fn fedsoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
}

const SYNTHETIC: &str = r#"
name = "tiny-synthetic"
seeds = [1]
[data]
format = "synthetic"
rows = 600
[federation]
participants = 3
rounds = 2
[[model]]
kind = "autoencoder"
hidden = [16, 4]
batch_size = 64
[[model]]
kind = "classifier"
hidden = [16]
batch_size = 64
loss = "balanced"
"#;

fn run(scenario: &Path, out: &Path) -> std::process::Output {
    fedsoc()
        .args(["experiment", "run"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_scenario_writes_summary_metrics_plots_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, SYNTHETIC).unwrap();
    let out = dir.path().join("out");
    let output = run(&scenario, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("federated") && stdout.contains("ROC-AUC"),
        "{stdout}"
    );

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for model in [
        "autoencoder",
        "classifier",
        "autoencoder+classifier (min-p)",
        "autoencoder+classifier (fisher)",
    ] {
        let m = &summary["models"][model];
        for variant in ["federated", "centralized"] {
            let t = &m[variant]["synthetic-test"];
            let auc = &t["roc_auc"];
            let (mean, low, high) = (
                auc["mean"].as_f64().unwrap(),
                auc["low"].as_f64().unwrap(),
                auc["high"].as_f64().unwrap(),
            );
            assert!(
                (0.0..=1.0).contains(&mean) && low <= mean && mean <= high,
                "{model} {variant}: {auc}"
            );
            assert!(t["pr_auc"].is_number(), "{t}");
            let points = t["operating_points"].as_array().unwrap();
            assert_eq!(points.len(), 3, "{t}");
            assert_eq!(points[1]["target_fpr"], 0.01);
            assert!(
                points[1]["recall_by_family"]["scan"]["mean"].is_number(),
                "{t}"
            );
            assert!(t["oracle"]["recall"]["mean"].is_number(), "{t}");
        }
        for p in ["soc-1", "soc-2", "soc-3"] {
            assert!(m["local"][p]["synthetic-test"]["roc_auc"]["mean"].is_number());
        }
    }
    // Federated against centralized, paired, with an interval.
    let comparisons = summary["comparisons"].as_array().unwrap();
    assert!(
        comparisons.iter().any(|c| c["a"] == "federated"
            && c["b"] == "centralized"
            && c["roc_auc"]["low"].is_number()),
        "{comparisons:?}"
    );
    // One CSV row per detector and test set: 4 detectors × (3 local + 2).
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 5, "{csv}");
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains("recall_scan_at_1pct") && header.contains("recall_at_0.1pct"),
        "{header}"
    );
    let rounds = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    assert_eq!(rounds.lines().count(), 1 + 2 * 5 * 2, "{rounds}");
    for plot in [
        "roc-autoencoder-synthetic-test.svg",
        "recall-classifier-synthetic-test.svg",
        "auc-per-round-autoencoder.svg",
        "validation-auc-per-round-classifier.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## classifier on synthetic-test"),
        "{report}"
    );
    assert!(report.contains("roc-autoencoder-synthetic-test.svg"));
}

#[test]
fn a_bad_scenario_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(&scenario, SYNTHETIC.replace("rounds = 2", "rounds = 0")).unwrap();
    let output = run(&scenario, &dir.path().join("out"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("federation.rounds"),
        "{stderr}"
    );
}

#[test]
fn missing_nsl_kdd_data_says_how_to_point_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("kdd.toml");
    std::fs::write(
        &scenario,
        SYNTHETIC.replace(
            "format = \"synthetic\"\nrows = 600",
            "format = \"nsl-kdd\"\ntrain = \"KDDTrain+\"\ntest = [\"KDDTest+\"]",
        ),
    )
    .unwrap();
    let output = fedsoc()
        .args(["experiment", "run"])
        .arg(&scenario)
        .arg("--data")
        .arg(dir.path().join("nowhere"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KDDTrain+") && stderr.contains("--data"),
        "{stderr}"
    );
}

#[test]
fn bench_train_reports_samples_per_second() {
    let output = fedsoc()
        .args([
            "bench", "train", "--rows", "2000", "--dim", "20", "--epochs", "1", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["rows"], 2000);
    assert_eq!(report["dim"], 20);
    assert!(report["samples_per_s"].as_f64().unwrap() > 0.0);
}
