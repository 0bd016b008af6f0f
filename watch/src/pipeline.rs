//! [`Pipeline`]: lines in, alert lines out. Parses each line, gathers flows
//! into batches, scores a batch with the model in force, writes the alert
//! lines, and saves the state when the caller asks. It never reads a file
//! itself: the follower (or standard input) hands it lines.
//!
//! Batches hold up to [`BATCH`] flows and are also scored whenever the
//! input is caught up, so a quiet sensor's flow waits for no batch to fill.

use std::sync::Arc;

use fedsoc_datasets::read::live::{LineParser, LiveFlow, LiveFormat, Parsed};

use crate::alert::{self, LineOrigin};
use crate::detector::Detector;
use crate::error::WatchError;
use crate::follow::{Input, Line, Position};
use crate::metrics::WatchMetrics;
use crate::output::Output;
use crate::state::{STATE_FORMAT, STATE_VERSION, Saved, StateDir};

/// Flows scored per forward pass. At 200k flows/s a batch is 5 ms of
/// traffic: large enough that the per-call cost of building tensors is
/// spread thin, small enough to add nothing a SOC would notice.
pub const BATCH: usize = 1024;

/// Malformed lines reported one by one before only every
/// [`MALFORMED_EVERY`]-th is.
const MALFORMED_REPORTED: u64 = 20;
const MALFORMED_EVERY: u64 = 10_000;

/// What the pipeline has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub flows: u64,
    pub alerts: u64,
    /// Lines written (alerts, and with `--all` every scored flow).
    pub written: u64,
    pub malformed: u64,
    /// Records that are not flows (EVE `dns`, `alert`, … events).
    pub ignored: u64,
    /// Flows read again after a restart whose lines were already written.
    pub already_written: u64,
    pub models_loaded: u64,
}

/// Called with each batch once its lines are written (the benchmark
/// measures latency with it).
pub type BatchHook = Box<dyn FnMut(&[LiveFlow]) + Send>;

/// The saved-state half of the pipeline.
struct Durable {
    state: StateDir,
    input: String,
    input_format: String,
}

/// Lines in, alert lines out.
pub struct Pipeline {
    format: LiveFormat,
    parser: LineParser,
    detector: Detector,
    output: Output,
    durable: Option<Durable>,
    metrics: Option<Arc<WatchMetrics>>,
    hook: Option<BatchHook>,
    /// Every scored flow is written, not only alerts.
    all: bool,
    flows: Vec<LiveFlow>,
    offsets: Vec<u64>,
    /// The file the batch's lines come from.
    path: String,
    /// After a restart: lines of the current file up to this offset were
    /// written before the crash.
    written_through: Option<u64>,
    /// The last position handed to [`commit`](Self::commit) or reached at
    /// a new file.
    position: Option<Position>,
    /// Timestamp of the newest flow seen (nanoseconds), for the lag.
    newest_ts: Option<i128>,
    counts: Counts,
    error: Option<WatchError>,
}

impl Pipeline {
    pub fn new(format: LiveFormat, detector: Detector, output: Output, all: bool) -> Pipeline {
        Pipeline {
            format,
            parser: LineParser::new(format),
            detector,
            output,
            durable: None,
            metrics: None,
            hook: None,
            all,
            flows: Vec::with_capacity(BATCH),
            offsets: Vec::with_capacity(BATCH),
            path: String::new(),
            written_through: None,
            position: None,
            newest_ts: None,
            counts: Counts {
                models_loaded: 1,
                ..Counts::default()
            },
            error: None,
        }
    }

    /// Saves the position in `state` at every [`commit`](Self::commit) and
    /// new file; `written_through` is what the alert file's unsaved tail
    /// already holds of the saved position's file.
    pub fn with_state(
        mut self,
        state: StateDir,
        input: &str,
        input_format: &str,
        position: Option<Position>,
        written_through: Option<u64>,
    ) -> Pipeline {
        self.durable = Some(Durable {
            state,
            input: input.to_string(),
            input_format: input_format.to_string(),
        });
        self.position = position;
        self.written_through = written_through;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<WatchMetrics>) -> Pipeline {
        let stamp = self.detector.stamp();
        metrics.set_model(&stamp.federation, stamp.round, &stamp.model_sha256);
        metrics.bundle_loaded();
        self.metrics = Some(metrics);
        self
    }

    pub fn with_hook(mut self, hook: BatchHook) -> Pipeline {
        self.hook = Some(hook);
        self
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Nanoseconds since the epoch of the newest flow seen.
    pub fn newest_ts(&self) -> Option<i128> {
        self.newest_ts
    }

    /// Takes one input; the first error stops the pipeline (see
    /// [`check`](Self::check)).
    pub fn take(&mut self, input: Input<'_>) {
        if self.error.is_some() {
            return;
        }
        let result = match input {
            Input::NewFile { path, at, resumed } => self.new_file(path, at, resumed),
            Input::Line(line) => self.line(line),
            Input::Header(bytes) => {
                // A header line parses as a header, or its file is not
                // what the format says: then the lines after it report it.
                if let Ok(text) = std::str::from_utf8(bytes) {
                    let _ = self.parser.line(text);
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    /// The error that stopped the pipeline, if any.
    pub fn check(&mut self) -> Result<(), WatchError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn new_file(&mut self, path: &str, at: Position, resumed: bool) -> Result<(), WatchError> {
        self.flush()?;
        // A restart's unsaved tail belongs to the saved file only.
        if !resumed {
            self.written_through = None;
        }
        self.parser.new_file();
        self.path = path.to_string();
        self.commit(Some(at))
    }

    fn line(&mut self, line: Line<'_>) -> Result<(), WatchError> {
        let parsed = if line.cut {
            Err(format!(
                "the line is longer than {} bytes and was cut; is this a sensor log?",
                crate::lines::MAX_LINE
            ))
        } else {
            match std::str::from_utf8(line.bytes) {
                Ok(text) => self.parser.line(text),
                Err(_) => Err("the line is not valid UTF-8".to_string()),
            }
        };
        match parsed {
            Ok(Parsed::Flow(flow)) => {
                if let Some(ts) = flow.key.ts_nanos {
                    self.newest_ts = self.newest_ts.max(Some(ts));
                }
                self.flows.push(flow);
                self.offsets.push(line.offset);
                if self.flows.len() >= BATCH {
                    self.flush()?;
                }
            }
            Ok(Parsed::Header) => {}
            Ok(Parsed::Ignored) => {
                self.counts.ignored += 1;
                if let Some(m) = &self.metrics {
                    m.ignored(1);
                }
            }
            Err(reason) => self.malformed(line.path, line.line, &reason),
        }
        Ok(())
    }

    fn malformed(&mut self, path: &str, line: u64, reason: &str) {
        self.counts.malformed += 1;
        if let Some(m) = &self.metrics {
            m.malformed(1);
        }
        let n = self.counts.malformed;
        if n <= MALFORMED_REPORTED {
            tracing::warn!("{path}:{line}: malformed line skipped: {reason}");
        } else if n.is_multiple_of(MALFORMED_EVERY) {
            tracing::warn!(
                "{n} malformed lines skipped so far; the latest, {path}:{line}: {reason}"
            );
        }
    }

    /// Scores the flows gathered so far and writes their lines.
    pub fn flush(&mut self) -> Result<(), WatchError> {
        if self.flows.is_empty() {
            return Ok(());
        }
        let scores = self.detector.score(&self.flows)?;
        let created = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let stamp = self.detector.stamp();
        let mut alerts = 0;
        let mut written = 0;
        let mut already = 0;
        let out = self.output.buffer();
        for ((flow, &offset), &score) in self.flows.iter().zip(&self.offsets).zip(&scores) {
            let flagged = self.detector.flags(score);
            if self
                .written_through
                .is_some_and(|through| offset <= through)
            {
                already += 1;
                continue;
            }
            alerts += u64::from(flagged);
            if flagged || self.all {
                written += 1;
                let origin = LineOrigin {
                    path: Some(&self.path),
                    offset,
                };
                alert::write_line(
                    out,
                    flow,
                    self.format,
                    score,
                    flagged,
                    stamp,
                    &origin,
                    created,
                );
            }
        }
        self.output.write()?;
        let n = self.flows.len() as u64;
        self.counts.flows += n;
        self.counts.alerts += alerts;
        self.counts.written += written;
        self.counts.already_written += already;
        if let Some(m) = &self.metrics {
            m.flows_read(n);
            m.alerts(alerts);
        }
        if let Some(hook) = &mut self.hook {
            hook(&self.flows);
        }
        self.flows.clear();
        self.offsets.clear();
        Ok(())
    }

    /// Switches to another model between two batches: the flows gathered
    /// so far are scored by the old one first.
    pub fn swap(&mut self, detector: Detector) -> Result<(), WatchError> {
        self.flush()?;
        self.detector = detector;
        self.counts.models_loaded += 1;
        if let Some(m) = &self.metrics {
            let stamp = self.detector.stamp();
            m.set_model(&stamp.federation, stamp.round, &stamp.model_sha256);
            m.bundle_loaded();
        }
        Ok(())
    }

    /// Scores what is gathered, makes the alert file durable and saves
    /// `position` (where every line handed in so far ends) with it; then
    /// rotates the alert file if it is full.
    pub fn commit(&mut self, position: Option<Position>) -> Result<(), WatchError> {
        self.flush()?;
        if position.is_some() {
            self.position = position;
        }
        let Some(durable) = &self.durable else {
            if self.output.full() {
                self.output.rotate()?;
            }
            return Ok(());
        };
        self.output.sync()?;
        let save = |output| Saved {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            input: durable.input.clone(),
            input_format: durable.input_format.clone(),
            position: self.position.clone(),
            output,
        };
        durable.state.save(&save(self.output.mark()?))?;
        if self.output.full() {
            self.output.rotate()?;
            durable.state.save(&save(self.output.mark()?))?;
        }
        Ok(())
    }
}
