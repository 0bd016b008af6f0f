//! The `fedsoc` binary as a newcomer runs it.

use std::process::Command;

fn fedsoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
}

#[test]
fn demo_runs_rounds_and_writes_models_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let output = fedsoc()
        .args([
            "demo",
            "--participants",
            "3",
            "--rounds",
            "2",
            "--rows",
            "500",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let round_lines = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(round_lines, 3, "initial + 2 rounds:\n{stdout}");
    for round in 0..=2 {
        assert!(out.join(format!("models/round-{round:06}.f32")).exists());
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["rounds"].as_array().unwrap().len(), 3);
    assert!(out.join("pki/ca.pem").exists() && out.join("coordinator.toml").exists());

    // Running again into the same folder replaces the previous demo.
    let again = fedsoc()
        .args([
            "demo",
            "--participants",
            "3",
            "--rounds",
            "1",
            "--rows",
            "300",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // (statistics 1-2, training 3, calibration 4: the first run's round 5 is gone)
    assert!(out.join("models/round-000004.f32").exists());
    assert!(!out.join("models/round-000005.f32").exists());
}

#[test]
fn demo_refuses_a_federation_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let output = fedsoc()
        .args(["demo", "--participants", "2", "--rounds", "1", "--out"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 3"), "{stderr}");
}

#[test]
fn demo_refuses_to_overwrite_a_foreign_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let output = fedsoc()
        .args(["demo", "--rounds", "1", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("choose another --out"), "{stderr}");
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn malformed_participant_config_names_file_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("participant.toml");
    std::fs::write(
        &path,
        "id = \"soc-de\"\ncoordinator = \"https://localhost:7443\"\n\
         [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
         [data]\nsource = \"synthetic\"\nsite = 0\nrows = -5\n",
    )
    .unwrap();
    let output = fedsoc()
        .args(["participant", "run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("participant.toml") && stderr.contains("data"),
        "{stderr}"
    );
}

#[test]
fn bench_secagg_reports_json_with_a_dropout_survived() {
    let output = fedsoc()
        .args([
            "bench",
            "secagg",
            "--participants",
            "4",
            "--params",
            "2000",
            "--neighbors",
            "2",
            "--dropout",
            "0.25",
            "--rounds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "secure_round_s",
        "plain_round_s",
        "ratio",
        "server_compute_s",
        "prg_floor_s",
        "bytes_up_per_participant",
    ] {
        let v = report[key].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{key} = {v} in {stdout}");
    }
    // One of four vanished after sharing keys; the other three are summed
    // in the sum.
    assert_eq!(report["dropouts"], 1);
    assert_eq!(report["secure"]["included"], 3);
    assert_eq!(report["plain"]["included"], 3);
    // The nearest one-hidden-layer autoencoder over 41 features: 41→24→41.
    assert_eq!(report["params"], 2033);
    let stages: Vec<&str> = report["secure"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"unmask"), "{stages:?}");
}

#[test]
fn bench_secagg_refuses_a_dropout_share_out_of_range() {
    let output = fedsoc()
        .args(["bench", "secagg", "--participants", "4", "--dropout", "1.5"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--dropout 1.5"), "{stderr}");
}

#[test]
fn console_refuses_plain_http_off_loopback_and_a_missing_source() {
    let output = fedsoc()
        .args(["console", "--audit-log", ".", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--tls-cert"),
        "{stderr}"
    );
    let output = fedsoc()
        .args(["console", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--audit-log DIR"), "{stderr}");
}
