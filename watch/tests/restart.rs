//! A crash after alert lines were written but before the position covering
//! them was saved: the restart reads those flows again and writes none of
//! them twice. Deterministic: the crash is a pipeline dropped at a chosen
//! point, not a timed `kill -9` (tests/watch.rs does that to the process).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use fedsoc_datasets::EncoderSpec;
use fedsoc_datasets::read::live::LiveFormat;
use fedsoc_models::{AutoencoderConfig, ModelConfig, initial_weights};
use fedsoc_watch::alert::{ModelStamp, ScoreKind};
use fedsoc_watch::detector::Detector;
use fedsoc_watch::follow::{Follower, Start};
use fedsoc_watch::output::Output;
use fedsoc_watch::pipeline::Pipeline;
use fedsoc_watch::run::{InputSpec, WatchConfig, run_with};
use fedsoc_watch::state::StateDir;
use fedsoc_watch::synth;

fn detector() -> Detector {
    let encoder = EncoderSpec::synthetic_default();
    let model = ModelConfig::Autoencoder(AutoencoderConfig {
        input_dim: encoder.dim(),
        hidden: vec![8, 2],
    });
    let weights = initial_weights(&model, 3).unwrap();
    let stamp = ModelStamp {
        federation: "test".into(),
        round: 1,
        model_sha256: "00".into(),
        encoder_sha256: "00".into(),
        kind: ScoreKind::ReconstructionMse,
        threshold: 0.0,
        bundle: "in memory".into(),
        verified: false,
    };
    Detector::from_model(&model, &weights, encoder, stamp).unwrap()
}

fn uid_counts(out: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let uid = v.pointer("/zeek/session_id").unwrap().as_str().unwrap();
        *counts.entry(uid.to_string()).or_default() += 1;
    }
    counts
}

#[test]
fn lines_written_after_the_last_save_are_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    let out = dir.path().join("alerts.ndjson");
    let state_dir = dir.path().join("state");
    let flows = synth::flows(5_000, 9);
    let mut text = synth::zeek_tsv_header();
    text.extend(flows.iter().map(synth::zeek_tsv_line));
    std::fs::write(&log, &text).unwrap();
    let name = log.display().to_string();

    // First life: read part of the log, save, read more, write the lines,
    // then "crash" (no save) with half a line torn off the alert file's end.
    {
        let (state, saved) = StateDir::open(&state_dir, &name, "zeek").unwrap();
        assert!(saved.is_none());
        let (output, _) = Output::file(&out, 1 << 30, 2, None).unwrap();
        let mut pipeline = Pipeline::new(LiveFormat::Zeek, detector(), output, true)
            .with_state(state, &name, "zeek", None, None);
        let mut follower = Follower::new(&log, &[], None, Start::Beginning).unwrap();
        follower
            .read(200_000, &mut |input| pipeline.take(input))
            .unwrap();
        pipeline.check().unwrap();
        pipeline.commit(follower.position()).unwrap();
        let saved_lines = pipeline.counts().written;
        assert!(saved_lines > 0 && saved_lines < 5_000, "{saved_lines}");
        follower
            .read(200_000, &mut |input| pipeline.take(input))
            .unwrap();
        pipeline.flush().unwrap();
        assert!(pipeline.counts().written > saved_lines);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&out)
            .map(|mut f| std::io::Write::write_all(&mut f, b"{\"@timestamp\":\"20"))
            .unwrap()
            .unwrap();
    }
    let before = uid_counts_lenient(&out);
    assert!(before < 5_000, "the first life stopped before the end");

    // Second life: the real loop, to the end of the log.
    let config = WatchConfig {
        input: InputSpec::File {
            path: log.clone(),
            format: LiveFormat::Zeek,
            rotated: Vec::new(),
            start: Start::Beginning,
        },
        bundle: dir.path().to_path_buf(),
        trust: fedsoc_watch::bundles::Trust::Unverified,
        threshold: fedsoc_watch::detector::ThresholdChoice::Federation,
        out: Some(out.clone()),
        out_max_bytes: 1 << 30,
        out_keep: 2,
        state: Some(state_dir.clone()),
        all: true,
        metrics: None,
        poll: Duration::from_millis(5),
        until_caught_up: true,
    };
    let summary = run_with(&config, None, detector(), &AtomicBool::new(false), None).unwrap();
    assert!(summary.counts.already_written > 0, "{:?}", summary.counts);
    let counts = uid_counts(&out);
    assert_eq!(counts.len(), 5_000);
    assert!(counts.values().all(|&n| n == 1), "a flow written twice");
}

/// Whole lines in the file (a torn last one not counted).
fn uid_counts_lenient(out: &Path) -> usize {
    let text = std::fs::read_to_string(out).unwrap();
    text.lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count()
}
