//! [`run`]: one watch, from its flags to its end. Opens the bundle, the
//! state and the output, then loops: read what the sensor wrote, score it,
//! write the alerts, save the position now and then, and look for a newer
//! bundle. It stops when asked (`stop`), when a pipe ends, or, with
//! `until_caught_up`, once everything written so far is scored.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fedsoc_datasets::read::live::LiveFormat;

use crate::bundles::{BundleWatch, Newer, Trust};
use crate::detector::{Detector, ThresholdChoice};
use crate::error::WatchError;
use crate::follow::{Follower, Input, Position, Progress, Start};
use crate::metrics::{self, WatchMetrics};
use crate::output::Output;
use crate::pipeline::{BatchHook, Counts, Pipeline};
use crate::state::StateDir;
use crate::stdin::StdinLines;

/// How often the drop folder is looked at for a newer bundle.
pub const BUNDLE_POLL: Duration = Duration::from_secs(1);

/// The longest the position goes unsaved while flows are read.
pub const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Bytes read before the loop looks up (bundles, stop, saving).
const READ_BUDGET: usize = 4 << 20;

/// Where the log comes from.
#[derive(Clone, Debug)]
pub enum InputSpec {
    /// A file followed as it grows, across rotation.
    File {
        path: PathBuf,
        format: LiveFormat,
        /// Further places rotated files are archived (catch-up only).
        rotated: Vec<PathBuf>,
        start: Start,
    },
    /// Standard input.
    Stdin { format: LiveFormat },
}

impl InputSpec {
    pub fn format(&self) -> LiveFormat {
        match self {
            InputSpec::File { format, .. } | InputSpec::Stdin { format } => *format,
        }
    }
}

/// Everything a watch is told.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub input: InputSpec,
    pub bundle: PathBuf,
    pub trust: Trust,
    pub threshold: ThresholdChoice,
    /// `None`: standard output.
    pub out: Option<PathBuf>,
    pub out_max_bytes: u64,
    pub out_keep: usize,
    pub state: Option<PathBuf>,
    /// Write every scored flow, not only alerts.
    pub all: bool,
    pub metrics: Option<SocketAddr>,
    /// How long to wait when caught up before looking again.
    pub poll: Duration,
    /// Stop once everything written so far is scored.
    pub until_caught_up: bool,
}

/// What a watch did.
#[derive(Clone, Debug)]
pub struct Summary {
    pub counts: Counts,
    /// Round of the model in force at the end.
    pub round: u64,
    pub model_sha256: String,
    /// Where the input was read to.
    pub position: Option<Position>,
}

/// The name a format has in flags and the state.
pub fn format_name(format: LiveFormat) -> &'static str {
    match format {
        LiveFormat::Zeek => "zeek",
        LiveFormat::Suricata => "suricata",
    }
}

enum Source {
    File(Box<Follower>),
    Stdin(StdinLines),
}

impl Source {
    fn read(&mut self, sink: &mut dyn FnMut(Input<'_>)) -> Result<Progress, WatchError> {
        match self {
            Source::File(f) => f.read(READ_BUDGET, sink),
            Source::Stdin(s) => s
                .read(READ_BUDGET, sink)
                .map_err(|e| WatchError::io("reading", std::path::Path::new("standard input"), e)),
        }
    }

    fn position(&self) -> Option<Position> {
        match self {
            Source::File(f) => f.position(),
            Source::Stdin(s) => Some(s.position()),
        }
    }

    fn lag_bytes(&self) -> u64 {
        match self {
            Source::File(f) => f.lag_bytes(),
            Source::Stdin(_) => 0,
        }
    }

    fn notes(&mut self) -> Vec<String> {
        match self {
            Source::File(f) => f.take_notes(),
            Source::Stdin(_) => Vec::new(),
        }
    }
}

/// Runs a watch until `stop` is set (or the input ends). `hook` sees each
/// batch once its lines are written.
pub fn run(
    config: &WatchConfig,
    stop: &AtomicBool,
    hook: Option<BatchHook>,
) -> Result<Summary, WatchError> {
    let (bundles, detector) =
        BundleWatch::open(&config.bundle, config.trust.clone(), config.threshold)?;
    announce(detector.stamp(), &config.trust);
    run_with(config, Some(bundles), detector, stop, hook)
}

/// [`run`] with the model given: `bundles` (if any) may replace it later;
/// `config.bundle` and `config.trust` are not used.
pub fn run_with(
    config: &WatchConfig,
    mut bundles: Option<BundleWatch>,
    detector: Detector,
    stop: &AtomicBool,
    hook: Option<BatchHook>,
) -> Result<Summary, WatchError> {
    let format = config.input.format();

    let (state, saved, input_name) = match (&config.state, &config.input) {
        (None, _) => (None, None, None),
        (Some(dir), InputSpec::File { path, .. }) => {
            let name = path.display().to_string();
            let (state, saved) = StateDir::open(dir, &name, format_name(format))?;
            (Some(state), saved, Some(name))
        }
        (Some(_), InputSpec::Stdin { .. }) => {
            return Err(WatchError::Setup(
                "--state keeps a followed file's position; a pipe (--stdin) has none: the \
                 shipper feeding it keeps its own offsets. Drop --state or follow the file"
                    .into(),
            ));
        }
    };
    let (output, recovered) = match &config.out {
        Some(path) => {
            let mark = saved.as_ref().and_then(|s| s.output.as_ref());
            let (output, recovered) =
                Output::file(path, config.out_max_bytes, config.out_keep, mark)?;
            (output, Some(recovered))
        }
        None => (Output::stdout(), None),
    };
    if let Some(r) = &recovered
        && (r.lines > 0 || r.torn_bytes > 0)
    {
        tracing::info!(
            "restart: {} alert lines were written after the last saved position and are not \
             written again{}",
            r.lines,
            if r.torn_bytes > 0 {
                format!("; a torn last line of {} bytes was cut off", r.torn_bytes)
            } else {
                String::new()
            }
        );
    }

    let mut source = match &config.input {
        InputSpec::File {
            path,
            rotated,
            start,
            ..
        } => {
            let position = saved.as_ref().and_then(|s| s.position.clone());
            Source::File(Box::new(Follower::new(path, rotated, position, *start)?))
        }
        InputSpec::Stdin { .. } => Source::Stdin(StdinLines::start(config.poll)),
    };

    let mut pipeline = Pipeline::new(format, detector, output, config.all);
    if let (Some(state), Some(name)) = (state, input_name) {
        let position = saved.as_ref().and_then(|s| s.position.clone());
        let through = recovered.as_ref().and_then(|r| r.written_through);
        pipeline = pipeline.with_state(state, &name, format_name(format), position, through);
    }
    let mut _server = None;
    let mut shared_metrics = None;
    if let Some(addr) = config.metrics {
        let m = Arc::new(WatchMetrics::new(format_name(format)));
        let server = metrics::serve(addr, m.clone()).map_err(|e| {
            WatchError::Setup(format!(
                "cannot serve metrics on {addr}: {e}; pick a free address with --metrics"
            ))
        })?;
        tracing::info!("metrics on http://{}/metrics", server.local_addr());
        pipeline = pipeline.with_metrics(m.clone());
        shared_metrics = Some(m);
        _server = Some(server);
    }
    if let Some(hook) = hook {
        pipeline = pipeline.with_hook(hook);
    }

    let mut last_save = Instant::now();
    let mut last_look = Instant::now();
    let mut unsaved = false;
    loop {
        let progress = source.read(&mut |input| pipeline.take(input))?;
        pipeline.check()?;
        for note in source.notes() {
            tracing::warn!("{note}");
        }
        if progress.bytes > 0 {
            unsaved = true;
        }
        if progress.caught_up {
            pipeline.flush()?;
        }
        let idle = progress.caught_up && progress.bytes == 0;
        if unsaved && (idle || last_save.elapsed() >= SAVE_EVERY) {
            pipeline.commit(source.position())?;
            unsaved = false;
            last_save = Instant::now();
        }
        if last_look.elapsed() >= BUNDLE_POLL {
            last_look = Instant::now();
            match bundles.as_mut().and_then(BundleWatch::poll) {
                Some(Newer::Loaded(detector)) => {
                    announce(detector.stamp(), &config.trust);
                    pipeline.swap(*detector)?;
                }
                Some(Newer::Refused { path, reason }) => {
                    tracing::error!(
                        "refused bundle {}: {reason}; the model of round {} stays in force",
                        path.display(),
                        pipeline.detector().stamp().round
                    );
                    if let Some(m) = &shared_metrics {
                        m.bundle_refused();
                    }
                }
                None => {}
            }
        }
        if let Some(m) = &shared_metrics {
            m.set_lag(source.lag_bytes(), lag_seconds(pipeline.newest_ts()));
        }
        if stop.load(Ordering::Relaxed)
            || progress.ended
            || (config.until_caught_up && progress.caught_up)
        {
            break;
        }
        if idle && matches!(source, Source::File(_)) {
            std::thread::sleep(config.poll);
        }
    }
    pipeline.commit(source.position())?;
    let stamp = pipeline.detector().stamp();
    Ok(Summary {
        counts: pipeline.counts(),
        round: stamp.round,
        model_sha256: stamp.model_sha256.clone(),
        position: source.position(),
    })
}

fn announce(stamp: &crate::alert::ModelStamp, trust: &Trust) {
    tracing::info!(
        "model in force: federation {} round {}, {} sha256 {}, threshold {}, from {} ({})",
        stamp.federation,
        stamp.round,
        match stamp.kind {
            crate::alert::ScoreKind::ReconstructionMse => "autoencoder",
            crate::alert::ScoreKind::Logit => "classifier",
        },
        stamp.model_sha256,
        stamp.threshold,
        stamp.bundle,
        match trust {
            Trust::Ca(_) => "verified against the federation CA",
            Trust::Unverified => "NOT verified: --insecure-skip-verify",
        }
    );
}

/// Seconds between now and the newest flow's timestamp.
fn lag_seconds(newest: Option<i128>) -> f64 {
    let Some(ts) = newest else {
        return 0.0;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    ((now - ts) as f64 / 1e9).max(0.0)
}
