//! `fedsoc watch`: flags to a [`WatchConfig`], the watch on a thread of its
//! own, SIGINT/SIGTERM to a clean stop (the position saved). The work is in
//! `fedsoc_watch`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use fedsoc_datasets::read::live::LiveFormat;
use fedsoc_watch::bundles::Trust;
use fedsoc_watch::detector::ThresholdChoice;
use fedsoc_watch::follow::Start;
use fedsoc_watch::output::{DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use fedsoc_watch::{InputSpec, WatchConfig};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StdinFormat {
    Zeek,
    Suricata,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["zeek", "suricata", "stdin"])))]
pub struct WatchArgs {
    /// The federation's bundle: one bundle folder, or the folder a
    /// participant drops each new verified bundle into (`bundles = "DIR"`),
    /// whose newest round is followed.
    #[arg(long)]
    bundle: PathBuf,
    /// The federation CA (PEM) every bundle is verified against.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Use bundles without verifying them (their weights and threshold may
    /// have been changed by anyone who could write them).
    #[arg(long)]
    insecure_skip_verify: bool,
    /// Follow a Zeek conn.log (TSV or JSON) as it grows, across rotation.
    #[arg(long, value_name = "PATH")]
    zeek: Option<PathBuf>,
    /// Follow a Suricata eve.json as it grows, across rotation.
    #[arg(long, value_name = "PATH")]
    suricata: Option<PathBuf>,
    /// Read the log from standard input instead (from a shipper).
    #[arg(long, value_enum, value_name = "FORMAT")]
    stdin: Option<StdinFormat>,
    /// Where alerts go (NDJSON); standard output without it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Rotate the alert file at this size.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES)]
    out_max_bytes: u64,
    /// Rotated alert files kept (FILE.1 … FILE.N).
    #[arg(long, default_value_t = DEFAULT_KEEP)]
    out_keep: usize,
    /// Folder keeping the read position, so a restart (even after kill -9)
    /// neither loses nor repeats a flow.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Write every scored flow (event.kind "event"), not only alerts.
    #[arg(long)]
    all: bool,
    /// Alert above this score instead of the federation's calibrated
    /// threshold.
    #[arg(long)]
    threshold: Option<f64>,
    /// Without a saved position, start at the file's end (only what is
    /// written from now on) instead of its beginning.
    #[arg(long)]
    from_end: bool,
    /// Further places rotated logs are archived (a folder or a file; may be
    /// repeated), searched when catching up after a stop.
    #[arg(long, value_name = "PATH")]
    rotated: Vec<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// How long to wait, once caught up, before looking at the log again.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    poll_ms: u64,
}

/// Runs `fedsoc watch` until SIGINT/SIGTERM (or the end of standard input).
pub async fn watch(args: WatchArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let config = config(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut worker = tokio::task::spawn_blocking(move || fedsoc_watch::run(&config, &flag, None));
    let summary = tokio::select! {
        done = &mut worker => done,
        () = shutdown => {
            stop.store(true, Ordering::Relaxed);
            worker.await
        }
    }
    .context("the watch thread failed")??;
    let c = summary.counts;
    tracing::info!(
        "watch stopped: {} flows scored, {} alerts, {} lines written, {} malformed lines, {} \
         non-flow records, {} models used; last model: round {} sha256 {}",
        c.flows,
        c.alerts,
        c.written,
        c.malformed,
        c.ignored,
        c.models_loaded,
        summary.round,
        summary.model_sha256
    );
    Ok(())
}

fn config(args: WatchArgs) -> Result<WatchConfig> {
    let trust = match (&args.ca, args.insecure_skip_verify) {
        (Some(ca), _) => Trust::Ca(
            std::fs::read_to_string(ca)
                .with_context(|| format!("reading the federation CA (--ca) {}", ca.display()))?,
        ),
        (None, true) => {
            tracing::warn!(
                "--insecure-skip-verify: bundles in {} are NOT verified; their weights, encoder \
                 and threshold may have been changed by anyone who could write them. Pass --ca \
                 CA.pem instead.",
                args.bundle.display()
            );
            Trust::Unverified
        }
        (None, false) => bail!(
            "refusing to watch with bundles that are not verified: pass --ca CA.pem (the \
             federation CA) to verify each bundle in {}, or --insecure-skip-verify to use them \
             unchecked",
            args.bundle.display()
        ),
    };
    let start = if args.from_end {
        Start::End
    } else {
        Start::Beginning
    };
    let file = |path: PathBuf, format| InputSpec::File {
        path,
        format,
        rotated: args.rotated.clone(),
        start,
    };
    let input = match (args.zeek, args.suricata, args.stdin) {
        (Some(path), None, None) => file(path, LiveFormat::Zeek),
        (None, Some(path), None) => file(path, LiveFormat::Suricata),
        (None, None, Some(StdinFormat::Zeek)) => InputSpec::Stdin {
            format: LiveFormat::Zeek,
        },
        (None, None, Some(StdinFormat::Suricata)) => InputSpec::Stdin {
            format: LiveFormat::Suricata,
        },
        _ => bail!("give one input: --zeek PATH, --suricata PATH or --stdin FORMAT"),
    };
    Ok(WatchConfig {
        input,
        bundle: args.bundle,
        trust,
        threshold: args
            .threshold
            .map_or(ThresholdChoice::Federation, ThresholdChoice::Fixed),
        out: args.out,
        out_max_bytes: args.out_max_bytes,
        out_keep: args.out_keep,
        state: args.state,
        all: args.all,
        metrics: args.metrics,
        poll: Duration::from_millis(args.poll_ms.max(1)),
        until_caught_up: false,
    })
}
