//! `fedsoc model export` and `fedsoc score` on a real (small) federation's storage folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedsoc_models::export::read_burn_sidecar;
use fedsoc_models::{ModelConfig, read_safetensors};
use safetensors::SafeTensors;

fn fedsoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
}

fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// A federation of three SOCs as `fedsoc demo --rounds 2` leaves it (statistics in rounds 1-2,
/// training in 3-4, calibration in 5): `coordinator.toml` and the
/// storage folder (the same folder) with models, state.json, history.jsonl and audit/.
fn federation(dir: &Path) -> PathBuf {
    let out = dir.join("demo");
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
    ok(&output);
    out
}

fn stored_model(store: &Path, round: u64) -> Vec<f32> {
    std::fs::read(store.join(format!("models/round-{round:06}.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A Zeek conn.log (JSON lines): small benign web flows, and (when `attacks`) large labelled
/// exfiltration flows with odd states and ports.
fn zeek_log(path: &Path, benign: usize, attacks: usize) {
    let mut text = String::new();
    for i in 0..benign {
        text += &format!(
            "{{\"proto\":\"tcp\",\"service\":\"http\",\"conn_state\":\"SF\",\"id.resp_p\":80,\
             \"duration\":{:.2},\"orig_bytes\":{},\"resp_bytes\":{},\"orig_pkts\":{},\"resp_pkts\":{},\
             \"label\":\"Benign\"}}\n",
            0.1 + (i % 7) as f64 * 0.05,
            300 + 17 * (i % 11),
            2000 + 101 * (i % 13),
            4 + i % 3,
            5 + i % 4
        );
    }
    for i in 0..attacks {
        text += &format!(
            "{{\"proto\":\"udp\",\"conn_state\":\"S0\",\"id.resp_p\":{},\"duration\":{},\
             \"orig_bytes\":{},\"resp_bytes\":0,\"orig_pkts\":{},\"resp_pkts\":0,\
             \"label\":\"Malicious\",\"detailedlabel\":\"exfil\"}}\n",
            40000 + i,
            300 + i * 50,
            50_000_000 + i * 1_000_000,
            40_000 + i
        );
    }
    std::fs::write(path, text).unwrap();
}

/// The scores CSV: `(row, score, flag, family)` per line.
fn read_scores(path: &Path) -> (String, Vec<(usize, f32, u8, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f.get(4).map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    (header, rows)
}

/// The threshold value from the stderr summary line `threshold: VALUE (…)`.
fn threshold_in(stderr: &str) -> f32 {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("threshold: "))
        .unwrap_or_else(|| panic!("no threshold line in:\n{stderr}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn export_round_then_score_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let store = federation(dir.path());
    let config = store.join("coordinator.toml");

    // safetensors, the last training round (4), storage folder named explicitly.
    let model = dir.path().join("global.safetensors");
    ok(&fedsoc()
        .args(["model", "export", "--round", "4", "--format", "safetensors"])
        .arg("--config")
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap());
    let bytes = std::fs::read(&model).unwrap();
    let (arch, flat, meta) = read_safetensors(&bytes).unwrap();
    assert_eq!(bits(&flat), bits(&stored_model(&store, 4)));
    assert_eq!(meta.round, 4);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        metrics["rounds"][2]["model_sha256"].as_str().unwrap(),
        meta.model_sha256
    );
    let ModelConfig::Autoencoder(ae) = &arch else {
        panic!("the demo trains an autoencoder: {arch:?}")
    };
    assert_eq!(ae.hidden, vec![64, 32, 8]);
    let d = ae.input_dim;
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let shapes = [
        ("encoder.0.weight", vec![64, d]),
        ("encoder.0.bias", vec![64]),
        ("encoder.2.weight", vec![8, 32]),
        ("decoder.0.weight", vec![32, 8]),
        ("decoder.2.weight", vec![d, 64]),
        ("decoder.2.bias", vec![d]),
    ];
    for (name, shape) in shapes {
        assert_eq!(file.tensor(name).unwrap().shape(), &shape[..], "{name}");
    }
    assert_eq!(file.len(), 12);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let m = header.metadata().as_ref().unwrap();
    assert_eq!(m["kind"], "autoencoder");
    assert_eq!(m["input_dim"], d.to_string());
    assert_eq!(m["hidden"], "[64,32,8]");
    assert_eq!(m["activation"], "relu");
    assert_eq!(m["round"], "4");
    assert_eq!(m["model_sha256"], meta.model_sha256);
    let encoder: serde_json::Value = serde_json::from_str(&m["encoder"]).unwrap();
    assert!(encoder.is_object(), "{encoder}");

    // burn, the latest round by default (the calibration, which keeps round 4's model),
    // storage folder from the config.
    let record = dir.path().join("global.bpk");
    ok(&fedsoc()
        .args(["model", "export", "--format", "burn"])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&record)
        .output()
        .unwrap());
    let sidecar = std::fs::read_to_string(dir.path().join("global.bpk.json")).unwrap();
    let (burn_arch, burn_meta) = read_burn_sidecar(&sidecar).unwrap();
    assert_eq!((burn_arch, burn_meta.round), (arch.clone(), 5));
    let back = fedsoc_models::export::read_burn(&arch, &std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(bits(&back), bits(&flat));

    // Score: calibrate on benign traffic at 10 % false positives, then score a mix.
    let reference = dir.path().join("normal.log");
    zeek_log(&reference, 60, 0);
    let input = dir.path().join("conn.log");
    zeek_log(&input, 30, 6);
    let scores = dir.path().join("scores.csv");
    let stderr = ok(&fedsoc()
        .args(["score", "--format", "zeek", "--fpr", "0.1"])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--calibrate")
        .arg(&reference)
        .arg("--out")
        .arg(&scores)
        .output()
        .unwrap());
    assert!(stderr.contains("rows scored: 36"), "{stderr}");
    assert!(stderr.contains("calibrated"), "{stderr}");
    assert!(stderr.contains("recall"), "{stderr}");
    let threshold = threshold_in(&stderr);
    let (header, rows) = read_scores(&scores);
    assert_eq!(header, "row,score,flag,label,family");
    assert_eq!(rows.len(), 36);
    for (i, (row, score, flag, _)) in rows.iter().enumerate() {
        assert_eq!(*row, i);
        assert_eq!(
            *flag,
            u8::from(*score > threshold),
            "row {i}: {score} vs {threshold}"
        );
    }
    assert_eq!(rows.iter().filter(|r| r.3 == "exfil").count(), 6);

    // A given threshold; the format guessed from the JSON lines; scores on stdout.
    let output = fedsoc()
        .args(["score", "--threshold", "0.5"])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = ok(&output);
    assert!(stderr.contains("given with --threshold"), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 37);
    for line in stdout.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let score: f32 = f[1].parse().unwrap();
        assert_eq!(f[2], if score > 0.5 { "1" } else { "0" }, "{line}");
    }

    // Neither threshold nor calibration: say what is needed.
    let stderr = failed(
        &fedsoc()
            .arg("score")
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("exactly one of --threshold"), "{stderr}");

    // A truncated model file is refused, naming the problem.
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = failed(
        &fedsoc()
            .args(["score", "--threshold", "1"])
            .arg("--model")
            .arg(&cut)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("truncated or corrupt"), "{stderr}");

    // A malformed row: the hint names this command's flag, not the
    // participant's config setting, and the flag does skip the row.
    let bad = dir.path().join("bad.log");
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&bad, text).unwrap();
    let score_bad = |extra: &[&str]| {
        fedsoc()
            .args(["score", "--format", "zeek", "--threshold", "0.5"])
            .args(extra)
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&bad)
            .output()
            .unwrap()
    };
    let stderr = failed(&score_bad(&[]));
    assert!(
        stderr.contains("bad.log:37:")
            && stderr.contains("fix the row, or pass --skip-bad-rows")
            && !stderr.contains("participant.toml"),
        "{stderr}"
    );
    let stderr = ok(&score_bad(&["--skip-bad-rows"]));
    assert!(stderr.contains("1 malformed rows skipped"), "{stderr}");

    // Scores on standard output into a reader that stops after one line:
    // far more than a pipe holds, so the writer does meet the closed pipe.
    let large = dir.path().join("large.log");
    zeek_log(&large, 6000, 0);
    let mut child = fedsoc()
        .args(["score", "--format", "zeek", "--threshold", "0.5"])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&large)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut header = String::new();
    std::io::BufRead::read_line(&mut reader, &mut header).unwrap();
    assert!(header.starts_with("row,score,flag"), "{header}");
    drop(reader);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Error"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}

#[test]
fn export_refuses_a_model_that_does_not_match_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = federation(dir.path());
    let config = store.join("coordinator.toml");
    let export = |round: &str| {
        fedsoc()
            .args(["model", "export", "--round", round])
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(dir.path().join("m.safetensors"))
            .output()
            .unwrap()
    };
    // The initial model (round 0) is checked against the config's seed.
    ok(&export("0"));

    let path = store.join("models/round-000001.f32");
    let mut raw = std::fs::read(&path).unwrap();
    raw[0] ^= 0x01;
    std::fs::write(&path, &raw).unwrap();
    let stderr = failed(&export("1"));
    assert!(
        stderr.contains("round-000001.f32") && stderr.contains("refusing"),
        "{stderr}"
    );

    let stderr = failed(&export("6"));
    assert!(stderr.contains("not complete"), "{stderr}");

    std::fs::write(&path, &raw[..raw.len() - 2]).unwrap();
    let stderr = failed(&export("1"));
    assert!(stderr.contains("truncated"), "{stderr}");
}

/// A real federation (coordinator and participants over mutual TLS, one round): its model
/// exported as a bundle verifies with `model verify`, a changed weight fails naming the file,
/// and `score --bundle` refuses a bundle it did not verify.
#[test]
fn bundle_export_verify_and_score_only_when_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = federation(dir.path());
    let config = store.join("coordinator.toml");
    let ca = store.join("pki").join("ca.pem");
    let bundle = dir.path().join("bundle");
    ok(&fedsoc()
        .args(["model", "export", "--format", "bundle", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap());
    for file in ["model.safetensors", "encoder.json", "provenance.json"] {
        assert!(bundle.join(file).exists(), "{file}");
    }

    let output = fedsoc()
        .args(["model", "verify"])
        .arg(&bundle)
        .arg("--ca")
        .arg(&ca)
        .output()
        .unwrap();
    ok(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "federation",
        "round       5",
        "threshold",
        "fitted by the federation in round 2",
        "sha256",
        "checkpoint",
        "verified:",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }

    let telemetry = dir.path().join("conn.log");
    zeek_log(&telemetry, 40, 5);
    let score = |extra: &[&str]| {
        fedsoc()
            .args(["score", "--threshold", "0.5", "--bundle"])
            .arg(&bundle)
            .arg("--input")
            .arg(&telemetry)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = failed(&score(&[]));
    assert!(refused.contains("--insecure-skip-verify"), "{refused}");
    let verified = ok(&score(&["--ca", ca.to_str().unwrap()]));
    assert!(verified.contains("bundle verified"), "{verified}");
    let insecure = ok(&score(&["--insecure-skip-verify"]));
    assert!(insecure.contains("WARNING"), "{insecure}");

    // One changed byte in the weights: verification and verified scoring fail, naming it.
    let model = bundle.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&model, bytes).unwrap();
    let err = failed(
        &fedsoc()
            .args(["model", "verify"])
            .arg(&bundle)
            .arg("--ca")
            .arg(&ca)
            .output()
            .unwrap(),
    );
    assert!(err.contains("model.safetensors was changed"), "{err}");
    let err = failed(&score(&["--ca", ca.to_str().unwrap()]));
    assert!(err.contains("model.safetensors was changed"), "{err}");
}
