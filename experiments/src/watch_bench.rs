//! `fedsoc bench watch`: how much live traffic one core of `fedsoc watch`
//! keeps up with, and how long a flow waits between the sensor writing
//! it and its alert line being written: the figures a SOC sizes hardware
//! with.
//!
//! Per input format (Zeek TSV, Zeek JSON, Suricata EVE):
//!
//! - Throughput: a file of synthetic flows is read twice over, in turns:
//!   bare parsing (read, split, [`LineParser::line`]), the floor no
//!   detector can beat, and the real watch ([`run_with`]) reading it from
//!   the start until caught up, scoring every flow and writing alerts to
//!   a file. The medians and their ratio say what detection adds to
//!   parsing.
//! - Latency: a writer thread appends to a live file at a steady rate in
//!   1 ms ticks while the watch follows it in-process, polling as
//!   `fedsoc watch` does by default; a [`BatchHook`] stamps each batch
//!   once its alert lines are written. Every appended flow must be scored
//!   exactly once, or the benchmark fails.
//!
//! The model is the demo's autoencoder over the synthetic encoder with
//! initial weights (scoring costs the same whatever the weights), its
//! threshold the 99th percentile of its scores on the first flows, so
//! about 1 % of flows raise alerts as in a deployment.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedsoc_datasets::EncoderSpec;
use fedsoc_datasets::read::live::{LineParser, LiveFlow, LiveFormat, Parsed};
use fedsoc_models::{AutoencoderConfig, ModelConfig, Scorer, initial_weights};
use fedsoc_watch::alert::{ModelStamp, ScoreKind};
use fedsoc_watch::bundles::Trust;
use fedsoc_watch::detector::{Detector, ThresholdChoice};
use fedsoc_watch::follow::Start;
use fedsoc_watch::output::{DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use fedsoc_watch::pipeline::{BATCH, BatchHook};
use fedsoc_watch::run::run_with;
use fedsoc_watch::{InputSpec, WatchConfig, synth};
use serde::Serialize;

use crate::error::ExperimentError;

/// Target for Zeek TSV: flows/s on one core.
pub const TARGET_TSV_FLOWS_PER_S: f64 = 200_000.0;

/// Target latency: p99 in milliseconds at [`TARGET_RATE`].
pub const TARGET_P99_MS: f64 = 250.0;

/// The rate the latency target is stated at, in flows/s.
pub const TARGET_RATE: u64 = 10_000;

/// The hidden widths of the demo's autoencoder (`experiments/src/local.rs`).
pub const HIDDEN: [usize; 3] = [64, 32, 8];

/// Flows whose scores set the threshold.
pub const THRESHOLD_FLOWS: usize = 10_000;

/// The threshold's percentile: about 1 % of flows alert.
pub const THRESHOLD_PERCENTILE: f64 = 99.0;

/// `fedsoc watch`'s default poll.
pub const POLL: Duration = Duration::from_millis(20);

/// Most flows a file or a live run may hold: they are generated in memory
/// (a few hundred bytes each) before they are written.
pub const MAX_FLOWS: usize = 10_000_000;

/// How long the latency run waits, after the writer is done, for the
/// watch to score what was appended before it counts flows as lost.
const DRAIN_WAIT: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Clone, Debug)]
pub struct WatchBenchOptions {
    /// Flows in each format's file for the throughput runs.
    pub flows: usize,
    /// Flows/s appended to the live file in the latency runs.
    pub rate: u64,
    /// How long the live file is appended to, per format.
    pub seconds: f64,
    /// Throughput runs per format; the median is reported.
    pub repeats: usize,
    pub seed: u64,
    /// An empty folder for the logs and alert files.
    pub dir: PathBuf,
}

impl WatchBenchOptions {
    /// Flows appended in each latency run.
    pub fn live_flows(&self) -> usize {
        (self.rate as f64 * self.seconds).round() as usize
    }

    fn check(&self) -> Result<(), ExperimentError> {
        if self.flows == 0 || self.flows > MAX_FLOWS {
            return Err(ExperimentError::Setup(format!(
                "--flows {}: give 1 to {MAX_FLOWS} flows (they are generated in memory)",
                self.flows
            )));
        }
        if self.repeats == 0 {
            return Err(ExperimentError::Setup(
                "--repeats 0: give at least 1 run".into(),
            ));
        }
        if self.rate == 0 || !self.seconds.is_finite() || self.seconds <= 0.0 {
            return Err(ExperimentError::Setup(format!(
                "--rate {} --seconds {}: give a rate of at least 1 flow/s and a positive \
                 number of seconds",
                self.rate, self.seconds
            )));
        }
        let live = self.rate as f64 * self.seconds;
        if live.round() < 1.0 || live > MAX_FLOWS as f64 {
            return Err(ExperimentError::Setup(format!(
                "--rate {} × --seconds {} appends {live:.0} flows: give between 1 and \
                 {MAX_FLOWS}",
                self.rate, self.seconds
            )));
        }
        Ok(())
    }
}

/// The input formats measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchFormat {
    ZeekTsv,
    ZeekJson,
    Eve,
}

impl BenchFormat {
    pub const ALL: [BenchFormat; 3] = [
        BenchFormat::ZeekTsv,
        BenchFormat::ZeekJson,
        BenchFormat::Eve,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchFormat::ZeekTsv => "zeek-tsv",
            BenchFormat::ZeekJson => "zeek-json",
            BenchFormat::Eve => "eve",
        }
    }

    fn live_format(self) -> LiveFormat {
        match self {
            BenchFormat::ZeekTsv | BenchFormat::ZeekJson => LiveFormat::Zeek,
            BenchFormat::Eve => LiveFormat::Suricata,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            BenchFormat::ZeekTsv | BenchFormat::ZeekJson => "conn.log",
            BenchFormat::Eve => "eve.json",
        }
    }

    fn header(self) -> String {
        match self {
            BenchFormat::ZeekTsv => synth::zeek_tsv_header(),
            BenchFormat::ZeekJson | BenchFormat::Eve => String::new(),
        }
    }

    fn line(self, flow: &LiveFlow) -> String {
        match self {
            BenchFormat::ZeekTsv => synth::zeek_tsv_line(flow),
            BenchFormat::ZeekJson => synth::zeek_json_line(flow),
            BenchFormat::Eve => synth::eve_line(flow),
        }
    }

    /// Flows with the ids this format carries (Zeek uids, EVE flow ids).
    fn flows(self, count: usize, seed: u64) -> Vec<LiveFlow> {
        match self {
            BenchFormat::ZeekTsv | BenchFormat::ZeekJson => synth::flows(count, seed),
            BenchFormat::Eve => synth::eve_flows(count, seed),
        }
    }
}

/// Latency of one live run.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Flows appended and measured.
    pub flows: usize,
    /// Flows scored exactly once (the run fails unless this is `flows`).
    pub seen_once: usize,
    /// The rate the writer achieved, flows/s.
    pub achieved_rate: f64,
}

/// One format's figures.
#[derive(Clone, Debug, Serialize)]
pub struct FormatFigures {
    pub format: &'static str,
    /// Flows in the throughput file.
    pub flows: usize,
    pub file_bytes: u64,
    /// Median over the repeats, through the real watch.
    pub flows_per_s: f64,
    /// Median over the repeats, parsing only.
    pub parse_only_flows_per_s: f64,
    pub alerts: u64,
    pub latency: Latency,
}

/// The whole measurement.
#[derive(Clone, Debug, Serialize)]
pub struct WatchBenchReport {
    pub formats: Vec<FormatFigures>,
    /// The model, e.g. "autoencoder 40→64→32→8→32→64→40".
    pub model: String,
    pub threshold: f64,
    /// Flows whose scores set the threshold.
    pub threshold_flows: usize,
    pub batch: usize,
    pub rate: u64,
    pub seconds: f64,
    pub repeats: usize,
    pub poll_ms: u64,
}

/// One line of `--json`: one format.
#[derive(Clone, Debug, Serialize)]
pub struct WatchBenchRow {
    pub format: &'static str,
    pub flows_per_s: f64,
    pub parse_only_flows_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub ratio_to_parse: f64,
    pub latency_max_ms: f64,
    pub flows: usize,
    pub rate: u64,
    pub batch: usize,
    pub alert_share: f64,
    pub model: String,
}

impl FormatFigures {
    pub fn ratio_to_parse(&self) -> f64 {
        self.flows_per_s / self.parse_only_flows_per_s
    }

    pub fn alert_share(&self) -> f64 {
        self.alerts as f64 / self.flows as f64
    }
}

impl WatchBenchReport {
    /// The `--json` lines, one per format.
    pub fn rows(&self) -> Vec<WatchBenchRow> {
        self.formats
            .iter()
            .map(|f| WatchBenchRow {
                format: f.format,
                flows_per_s: f.flows_per_s,
                parse_only_flows_per_s: f.parse_only_flows_per_s,
                latency_p50_ms: f.latency.p50_ms,
                latency_p99_ms: f.latency.p99_ms,
                ratio_to_parse: f.ratio_to_parse(),
                latency_max_ms: f.latency.max_ms,
                flows: f.flows,
                rate: self.rate,
                batch: self.batch,
                alert_share: f.alert_share(),
                model: self.model.clone(),
            })
            .collect()
    }
}

/// The model every run scores with, built fresh for each run (a
/// [`Detector`] is consumed by the watch).
struct BenchModel {
    config: ModelConfig,
    weights: Vec<f32>,
    encoder: EncoderSpec,
    stamp: ModelStamp,
}

impl BenchModel {
    /// The demo's autoencoder with the 99th-percentile threshold of its
    /// scores on `sample`.
    fn new(sample: &[LiveFlow], seed: u64) -> Result<BenchModel, ExperimentError> {
        let encoder = EncoderSpec::synthetic_default();
        let config = ModelConfig::Autoencoder(AutoencoderConfig {
            input_dim: encoder.dim(),
            hidden: HIDDEN.to_vec(),
        });
        let weights = initial_weights(&config, seed)?;
        let records: Vec<_> = sample.iter().map(|f| f.record.clone()).collect();
        let features = encoder.encode(records.as_slice())?;
        let scores = Scorer::new(&config, &weights)?.scores(features.view())?;
        let threshold = percentile(
            scores.iter().map(|&s| f64::from(s)).collect(),
            THRESHOLD_PERCENTILE,
        )
        .filter(|t| t.is_finite())
        .ok_or_else(|| {
            ExperimentError::Setup(format!(
                "the model's scores on the first {} flows have no finite 99th percentile; \
                     the synthetic encoder or the model is broken",
                sample.len()
            ))
        })?;
        let encoder_json = serde_json::to_vec(&encoder)
            .map_err(|e| ExperimentError::Setup(format!("serialising the encoder: {e}")))?;
        let stamp = ModelStamp {
            federation: "bench".into(),
            round: 0,
            model_sha256: fedsoc_models::export::flat_sha256(&weights),
            encoder_sha256: fedsoc_bundle::sha256_hex(&encoder_json),
            kind: ScoreKind::ReconstructionMse,
            threshold,
            bundle: "fedsoc bench watch (no bundle)".into(),
            verified: false,
        };
        Ok(BenchModel {
            config,
            weights,
            encoder,
            stamp,
        })
    }

    fn detector(&self) -> Result<Detector, ExperimentError> {
        Detector::from_model(
            &self.config,
            &self.weights,
            self.encoder.clone(),
            self.stamp.clone(),
        )
        .map_err(watch_error)
    }

    /// "autoencoder d→64→32→8→32→64→d" with the encoder's d.
    fn describe(&self) -> String {
        let d = self.encoder.dim();
        let mut widths = vec![d];
        widths.extend(HIDDEN);
        widths.extend(HIDDEN.iter().rev().skip(1));
        widths.push(d);
        let widths: Vec<String> = widths.iter().map(usize::to_string).collect();
        format!("autoencoder {}", widths.join("→"))
    }
}

fn watch_error(e: fedsoc_watch::WatchError) -> ExperimentError {
    ExperimentError::Setup(format!("the watch failed: {e}"))
}

/// Nearest-rank percentile `p` (0–100) of `values`; `None` when empty.
fn percentile(mut values: Vec<f64>, p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

fn median(values: Vec<f64>) -> f64 {
    percentile(values, 50.0).unwrap_or(f64::NAN)
}

/// Runs the whole benchmark in `options.dir`.
pub fn run_watch_bench(options: &WatchBenchOptions) -> Result<WatchBenchReport, ExperimentError> {
    options.check()?;
    std::fs::create_dir_all(&options.dir).map_err(|e| ExperimentError::io(&options.dir, e))?;

    // The Zeek flows are written twice (TSV, JSON), then dropped before the
    // EVE flows are made: one format's flows in memory at a time.
    let zeek = synth::flows(options.flows, options.seed);
    let sample = &zeek[..zeek.len().min(THRESHOLD_FLOWS)];
    let model = BenchModel::new(sample, options.seed)?;
    let threshold_flows = sample.len();
    let mut files = Vec::new();
    for format in [BenchFormat::ZeekTsv, BenchFormat::ZeekJson] {
        files.push((format, write_log(options, format, &zeek)?));
    }
    drop(zeek);
    let eve = BenchFormat::Eve.flows(options.flows, options.seed);
    files.push((
        BenchFormat::Eve,
        write_log(options, BenchFormat::Eve, &eve)?,
    ));
    drop(eve);

    let mut formats = Vec::new();
    for (format, path) in files {
        tracing::info!("{}: throughput", format.name());
        let mut floor = Vec::with_capacity(options.repeats);
        let mut full = Vec::with_capacity(options.repeats);
        let mut alerts = 0;
        for repeat in 0..options.repeats {
            floor.push(options.flows as f64 / parse_only(&path, format, options.flows)?);
            let (seconds, run_alerts) = full_path(&path, format, &model, options, repeat)?;
            full.push(options.flows as f64 / seconds);
            alerts = run_alerts;
        }
        let file_bytes = std::fs::metadata(&path)
            .map_err(|e| ExperimentError::io(&path, e))?
            .len();
        // The throughput file is not needed any more.
        let _ = std::fs::remove_file(&path);
        tracing::info!("{}: latency", format.name());
        let latency = live_latency(format, &model, options)?;
        formats.push(FormatFigures {
            format: format.name(),
            flows: options.flows,
            file_bytes,
            flows_per_s: median(full),
            parse_only_flows_per_s: median(floor),
            alerts,
            latency,
        });
    }
    Ok(WatchBenchReport {
        formats,
        model: model.describe(),
        threshold: model.stamp.threshold,
        threshold_flows,
        batch: BATCH,
        rate: options.rate,
        seconds: options.seconds,
        repeats: options.repeats,
        poll_ms: POLL.as_millis() as u64,
    })
}

/// Writes `flows` as `format` to a file of its own folder.
fn write_log(
    options: &WatchBenchOptions,
    format: BenchFormat,
    flows: &[LiveFlow],
) -> Result<PathBuf, ExperimentError> {
    let folder = options.dir.join(format!("throughput-{}", format.name()));
    std::fs::create_dir_all(&folder).map_err(|e| ExperimentError::io(&folder, e))?;
    let path = folder.join(format.file_name());
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        out.write_all(format.header().as_bytes())?;
        for flow in flows {
            out.write_all(format.line(flow).as_bytes())?;
        }
        out.flush()
    };
    write().map_err(|e| ExperimentError::io(&path, e))?;
    Ok(path)
}

/// The floor: seconds to read `path`, split it into lines and parse each.
fn parse_only(path: &Path, format: BenchFormat, expected: usize) -> Result<f64, ExperimentError> {
    let started = Instant::now();
    let bytes = std::fs::read(path).map_err(|e| ExperimentError::io(path, e))?;
    let mut parser = LineParser::new(format.live_format());
    let (mut flows, mut malformed) = (0usize, 0usize);
    for line in bytes.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let parsed = match std::str::from_utf8(line) {
            Ok(text) => parser.line(text),
            Err(_) => Err("not UTF-8".into()),
        };
        match parsed {
            Ok(Parsed::Flow(flow)) => {
                std::hint::black_box(flow);
                flows += 1;
            }
            Ok(Parsed::Header | Parsed::Ignored) => {}
            Err(_) => malformed += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if flows != expected || malformed > 0 {
        return Err(ExperimentError::Setup(format!(
            "{}: parsed {flows} flows of the {expected} written ({malformed} malformed lines); \
             the synthetic writer and the parser disagree, a bug to report",
            path.display()
        )));
    }
    Ok(seconds)
}

/// The config of a watch on `path` writing alerts to `out`.
fn watch_config(
    path: &Path,
    format: BenchFormat,
    model: &BenchModel,
    out: PathBuf,
    until_caught_up: bool,
) -> WatchConfig {
    WatchConfig {
        input: InputSpec::File {
            path: path.to_path_buf(),
            format: format.live_format(),
            rotated: Vec::new(),
            start: Start::Beginning,
        },
        // Not read: run_with is given the detector.
        bundle: PathBuf::new(),
        trust: Trust::Unverified,
        threshold: ThresholdChoice::Fixed(model.stamp.threshold),
        out: Some(out),
        out_max_bytes: DEFAULT_MAX_BYTES,
        out_keep: DEFAULT_KEEP,
        state: None,
        all: false,
        metrics: None,
        poll: POLL,
        until_caught_up,
    }
}

/// The real watch over the whole file: seconds and alerts.
fn full_path(
    path: &Path,
    format: BenchFormat,
    model: &BenchModel,
    options: &WatchBenchOptions,
    repeat: usize,
) -> Result<(f64, u64), ExperimentError> {
    let out = options
        .dir
        .join(format!("alerts-{}-{repeat}.ndjson", format.name()));
    let config = watch_config(path, format, model, out.clone(), true);
    let detector = model.detector()?;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let summary = run_with(&config, None, detector, &stop, None).map_err(watch_error)?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&out);
    let c = summary.counts;
    if c.flows != options.flows as u64 || c.malformed > 0 {
        return Err(ExperimentError::Setup(format!(
            "{}: the watch scored {} flows of the {} written ({} malformed lines); a bug to \
             report",
            path.display(),
            c.flows,
            options.flows,
            c.malformed
        )));
    }
    Ok((seconds, c.alerts))
}

/// Each scored batch: when its lines were written, and its flows' ids.
type Batches = Arc<Mutex<Vec<(Instant, Vec<String>)>>>;

/// Appends to a live file at `options.rate` while the watch follows it;
/// the latency of every flow.
fn live_latency(
    format: BenchFormat,
    model: &BenchModel,
    options: &WatchBenchOptions,
) -> Result<Latency, ExperimentError> {
    let total = options.live_flows();
    let flows = format.flows(total, options.seed.wrapping_add(1));
    let mut index = HashMap::with_capacity(total);
    for (i, flow) in flows.iter().enumerate() {
        let id = flow.key.id.clone().ok_or_else(|| {
            ExperimentError::Setup("a synthetic flow has no id; a bug to report".into())
        })?;
        if index.insert(id, i).is_some() {
            return Err(ExperimentError::Setup(
                "two synthetic flows share an id, so latency cannot be matched; a bug to report"
                    .into(),
            ));
        }
    }
    let lines: Vec<String> = flows.iter().map(|f| format.line(f)).collect();
    drop(flows);

    let folder = options.dir.join(format!("live-{}", format.name()));
    std::fs::create_dir_all(&folder).map_err(|e| ExperimentError::io(&folder, e))?;
    let path = folder.join(format.file_name());
    std::fs::write(&path, format.header()).map_err(|e| ExperimentError::io(&path, e))?;
    let config = watch_config(&path, format, model, folder.join("alerts.ndjson"), false);

    let batches: Batches = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let hook: BatchHook = {
        let (batches, seen) = (batches.clone(), seen.clone());
        Box::new(move |flows: &[LiveFlow]| {
            let now = Instant::now();
            let ids = flows
                .iter()
                .map(|f| f.key.id.clone().unwrap_or_default())
                .collect();
            seen.fetch_add(flows.len(), Ordering::Relaxed);
            if let Ok(mut batches) = batches.lock() {
                batches.push((now, ids));
            }
        })
    };
    let stop = AtomicBool::new(false);
    let (watched, written) = std::thread::scope(|scope| {
        let (config, stop) = (&config, &stop);
        let watch = scope.spawn(move || {
            let detector = model.detector()?;
            run_with(config, None, detector, stop, Some(hook)).map_err(watch_error)
        });
        let written = append_at_rate(&path, &lines, options.rate);
        // Wait for the watch to score what was appended (or to fail).
        let deadline = Instant::now() + DRAIN_WAIT;
        while written.is_ok()
            && seen.load(Ordering::Relaxed) < total
            && !watch.is_finished()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let watched = watch.join().unwrap_or_else(|_| {
            Err(ExperimentError::Setup(
                "the watch thread panicked; a bug to report".into(),
            ))
        });
        (watched, written)
    });
    let (appended, writer_seconds) = written.map_err(|e| ExperimentError::io(&path, e))?;
    let summary = watched?;
    if summary.counts.malformed > 0 {
        return Err(ExperimentError::Setup(format!(
            "{}: the watch found {} malformed lines in the synthetic log; a bug to report",
            path.display(),
            summary.counts.malformed
        )));
    }

    let batches = std::mem::take(
        &mut *batches
            .lock()
            .map_err(|_| ExperimentError::Setup("the batch record was poisoned".into()))?,
    );
    let mut times = vec![0u32; total];
    let mut unknown = 0usize;
    let mut latencies = Vec::with_capacity(total);
    for (written_at, ids) in &batches {
        for id in ids {
            match index.get(id) {
                Some(&i) => {
                    times[i] += 1;
                    if times[i] == 1 {
                        let waited = written_at.saturating_duration_since(appended[i]);
                        latencies.push(waited.as_secs_f64() * 1e3);
                    }
                }
                None => unknown += 1,
            }
        }
    }
    let seen_once = times.iter().filter(|&&n| n == 1).count();
    let missing = times.iter().filter(|&&n| n == 0).count();
    let repeated = times.iter().filter(|&&n| n > 1).count();
    if seen_once != total || unknown > 0 {
        return Err(ExperimentError::Setup(format!(
            "{}: of {total} flows appended, {seen_once} were scored once, {missing} never \
             (within {} s of the writer's end), {repeated} more than once, and {unknown} flows \
             scored were never appended; the watch lost or repeated flows, a bug to report",
            format.name(),
            DRAIN_WAIT.as_secs()
        )));
    }
    let _ = std::fs::remove_dir_all(&folder);
    let stat = |p| percentile(latencies.clone(), p).unwrap_or(f64::NAN);
    Ok(Latency {
        p50_ms: stat(50.0),
        p99_ms: stat(99.0),
        max_ms: stat(100.0),
        flows: total,
        seen_once,
        achieved_rate: total as f64 / writer_seconds.max(1e-9),
    })
}

/// Appends `lines` to `path` at `rate` lines/s: every millisecond, the
/// lines due by then in one write. The instant each line was appended,
/// and the seconds the writing took.
fn append_at_rate(
    path: &Path,
    lines: &[String],
    rate: u64,
) -> std::io::Result<(Vec<Instant>, f64)> {
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    let started = Instant::now();
    let mut appended = Vec::with_capacity(lines.len());
    let mut buffer = Vec::new();
    let mut tick = 1u64;
    while appended.len() < lines.len() {
        let at = started + Duration::from_millis(tick);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let elapsed = started.elapsed();
        let due = ((elapsed.as_secs_f64() * rate as f64) as usize).min(lines.len());
        let sent = appended.len();
        if due > sent {
            buffer.clear();
            for line in &lines[sent..due] {
                buffer.extend_from_slice(line.as_bytes());
            }
            file.write_all(&buffer)?;
            file.flush()?;
            let now = Instant::now();
            appended.resize(due, now);
        }
        // A late tick is not made up for with empty ones.
        tick = tick.max(elapsed.as_millis() as u64) + 1;
    }
    Ok((appended, started.elapsed().as_secs_f64()))
}

/// The report as a table with the targets.
pub fn render(report: &WatchBenchReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fedsoc bench watch: live detection on one core (the pipeline is single-threaded; \
         burn's Flex CPU backend scores on one thread)"
    );
    let _ = writeln!(
        s,
        "model {} (initial weights), threshold {:.6} = p{} of its scores on the first {} \
         flows; batches of up to {} flows",
        report.model, report.threshold, THRESHOLD_PERCENTILE, report.threshold_flows, report.batch
    );
    let flows = report.formats.first().map_or(0, |f| f.flows);
    let live = report.formats.first().map_or(0, |f| f.latency.flows);
    let _ = writeln!(
        s,
        "throughput: {flows} flows per file, median of {} run(s); latency: {live} flows appended \
         over {} s at {} flows/s in 1 ms ticks, the watch polling every {} ms\n",
        report.repeats, report.seconds, report.rate, report.poll_ms
    );
    let _ = writeln!(
        s,
        "{:<10} {:>11} {:>13} {:>6} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "format",
        "flows/s",
        "parse-only/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "max ms",
        "measured",
        "alerts"
    );
    for f in &report.formats {
        let _ = writeln!(
            s,
            "{:<10} {:>11.0} {:>13.0} {:>6.2} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>6.2}%",
            f.format,
            f.flows_per_s,
            f.parse_only_flows_per_s,
            f.ratio_to_parse(),
            f.latency.p50_ms,
            f.latency.p99_ms,
            f.latency.max_ms,
            f.latency.flows,
            100.0 * f.alert_share()
        );
    }
    let _ = writeln!(
        s,
        "\nevery appended flow was scored exactly once ({})",
        report
            .formats
            .iter()
            .map(|f| format!("{} {}/{}", f.format, f.latency.seen_once, f.latency.flows))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(tsv) = report.formats.iter().find(|f| f.format == "zeek-tsv") {
        let _ = writeln!(
            s,
            "target: Zeek TSV >= {TARGET_TSV_FLOWS_PER_S:.0} flows/s per core: {} ({:.0} flows/s)",
            met(tsv.flows_per_s >= TARGET_TSV_FLOWS_PER_S),
            tsv.flows_per_s
        );
    }
    let p99s = report
        .formats
        .iter()
        .map(|f| {
            format!(
                "{} {} ({:.1} ms)",
                f.format,
                met(f.latency.p99_ms <= TARGET_P99_MS),
                f.latency.p99_ms
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if report.rate == TARGET_RATE {
        let _ = writeln!(
            s,
            "target: p99 <= {TARGET_P99_MS:.0} ms at {TARGET_RATE} flows/s: {p99s}"
        );
    } else {
        let _ = writeln!(
            s,
            "target: p99 <= {TARGET_P99_MS:.0} ms is stated at {TARGET_RATE} flows/s; measured \
             at {} flows/s: {p99s}",
            report.rate
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(v.clone(), 99.0), Some(99.0));
        assert_eq!(percentile(v.clone(), 50.0), Some(50.0));
        assert_eq!(percentile(v, 100.0), Some(100.0));
        assert_eq!(percentile(vec![3.0], 1.0), Some(3.0));
        assert_eq!(percentile(Vec::new(), 50.0), None);
    }

    #[test]
    fn bad_options_are_refused_with_the_fix() {
        let base = WatchBenchOptions {
            flows: 10,
            rate: 10,
            seconds: 1.0,
            repeats: 1,
            seed: 0,
            dir: PathBuf::from("unused"),
        };
        for bad in [
            WatchBenchOptions {
                flows: 0,
                ..base.clone()
            },
            WatchBenchOptions {
                repeats: 0,
                ..base.clone()
            },
            WatchBenchOptions {
                rate: 0,
                ..base.clone()
            },
            WatchBenchOptions {
                seconds: f64::NAN,
                ..base.clone()
            },
            WatchBenchOptions {
                seconds: 0.01,
                ..base.clone()
            },
        ] {
            let e = run_watch_bench(&bad).unwrap_err().to_string();
            assert!(e.contains("give"), "{e}");
        }
    }

    #[test]
    fn the_model_is_named_by_its_widths() {
        let flows = synth::flows(200, 0);
        let model = BenchModel::new(&flows, 0).unwrap();
        let d = EncoderSpec::synthetic_default().dim();
        assert_eq!(
            model.describe(),
            format!("autoencoder {d}→64→32→8→32→64→{d}")
        );
        assert!(model.stamp.threshold.is_finite());
    }
}
