//! The model bundle on the command line: `fedsoc model export --format bundle`, `fedsoc model
//! verify` and the bundle side of `fedsoc score`. The work is in `fedsoc_bundle`; this is
//! files, flags and what gets printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use fedsoc_bundle::{Bundle, EncoderOrigin, VerifiedBundle};
use fedsoc_coordinator::{CoordinatorConfig, FederationSpec};
use fedsoc_experiments::score::{ExportedModel, Threshold, ThresholdSource};

#[derive(Args)]
pub struct VerifyArgs {
    /// The bundle folder written by `fedsoc model export --format bundle`.
    bundle: PathBuf,
    /// The federation CA certificate (PEM): the only thing the bundle is checked against.
    #[arg(long)]
    ca: PathBuf,
}

/// `fedsoc model export --format bundle`: the round's model, encoder and threshold with their
/// audit-log proofs, checked against the config's CA before anything is written.
pub fn export(config: &Path, store: Option<PathBuf>, round: Option<u64>, out: &Path) -> Result<()> {
    let config = CoordinatorConfig::load(config)?;
    let spec = FederationSpec::from_config(&config)?;
    let store = store.unwrap_or_else(|| config.storage.dir.clone());
    let log_dir = store.join("audit");
    let log = fedsoc_audit::AuditLog::open_read_only(&log_dir).with_context(|| {
        format!(
            "opening the audit log in {}: --store must be the coordinator's storage folder \
             ([storage] dir of coordinator.toml); stop the coordinator or copy the folder if a \
             round is being written",
            log_dir.display()
        )
    })?;
    let certificate = read_text(&config.tls.cert, "the coordinator certificate ([tls] cert)")?;
    let bundle = Bundle::from_log(&log, round, &certificate, &spec.encoder_json)?;
    let ca = read_text(&config.tls.ca, "the federation CA ([tls] ca)")?;
    let verified = bundle.verify(&ca).context(
        "the bundle built from the audit log does not verify against the federation CA in \
         --config; nothing was written",
    )?;
    bundle.write(out)?;
    outln!(
        "exported round {} of {} as a bundle to {} (verify it with `fedsoc model verify {} --ca CA.pem`)",
        verified.round,
        verified.federation,
        out.display(),
        out.display()
    );
    Ok(())
}

/// `fedsoc model verify`: prints what was proven, or fails naming what is wrong.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let verified = read_verified(&args.bundle, &args.ca)?;
    for line in describe(&verified) {
        outln!("{line}");
    }
    outln!("verified: {}", args.bundle.display());
    Ok(())
}

/// Reads and verifies a bundle folder against the CA in `ca`.
fn read_verified(bundle: &Path, ca: &Path) -> Result<VerifiedBundle> {
    let ca = read_text(ca, "the federation CA (--ca)")?;
    let verified = Bundle::read(bundle)?
        .verify(&ca)
        .with_context(|| format!("{} does not verify", bundle.display()))?;
    Ok(verified)
}

/// What `verify` established, one line each.
fn describe(v: &VerifiedBundle) -> Vec<String> {
    let encoder = match &v.encoder_origin {
        EncoderOrigin::Fitted { index, round, rows } => format!(
            "fitted by the federation in round {round} over {rows} rows (encoder.fitted, log entry {index})"
        ),
        EncoderOrigin::Created { index } => {
            format!("the federation's initial encoder (federation.created, log entry {index})")
        }
    };
    let threshold = match &v.threshold {
        Some(t) => format!(
            "{} for a false-alarm rate of {} (interval {:?}), calibrated in round {} over {} benign rows (threshold.calibrated, log entry {})",
            t.calibrated.threshold,
            t.calibrated.false_alarm_rate,
            t.calibrated.false_alarm_interval,
            t.calibrated.round,
            t.calibrated.benign_rows,
            t.index
        ),
        None => "none in the bundle (score with --threshold)".into(),
    };
    let c = &v.checkpoint;
    vec![
        format!("federation  {}", v.federation),
        format!(
            "round       {} (round.model, log entry {})",
            v.round, v.model_index
        ),
        format!(
            "model       {}, {} parameters, sha256 {}",
            v.contents.model.kind(),
            v.contents.weights.len(),
            v.model_sha256
        ),
        format!("encoder     sha256 {}: {encoder}", v.encoder_sha256),
        format!("threshold   {threshold}"),
        format!(
            "checkpoint  log {} size {} signed {} by coordinator {:?}, certificate chained to --ca",
            c.origin,
            c.tree_size,
            utc(c.timestamp_ms),
            v.coordinator
        ),
    ]
}

fn utc(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
}

/// The model and the logged threshold of a bundle for `fedsoc score`: verified against `ca`, or
/// (only with `insecure`) read unverified after a loud warning.
pub fn for_scoring(
    bundle: &Path,
    ca: Option<&Path>,
    insecure: bool,
) -> Result<(ExportedModel, Option<Threshold>)> {
    let contents = match (ca, insecure) {
        (Some(ca), _) => {
            let verified = read_verified(bundle, ca)?;
            eprintln!(
                "bundle verified: round {} of {}, model sha256 {}",
                verified.round, verified.federation, verified.model_sha256
            );
            verified.contents
        }
        (None, true) => {
            eprintln!(
                "WARNING: --insecure-skip-verify: {} is NOT verified. Its weights, encoder and \
                 threshold may have been changed by anyone who could write it; do not act on \
                 these scores. Pass --ca CA.pem instead.",
                bundle.display()
            );
            Bundle::read(bundle)?.contents_unverified()?
        }
        (None, false) => bail!(
            "refusing to score with a bundle that was not verified: pass --ca CA.pem (the \
             federation CA) to verify {}, or --insecure-skip-verify to use it unchecked",
            bundle.display()
        ),
    };
    let threshold = contents.threshold.as_ref().map(|t| Threshold {
        value: t.threshold as f32,
        source: ThresholdSource::Federation {
            round: t.round,
            false_alarm_rate: t.false_alarm_rate,
            benign_rows: t.benign_rows,
        },
    });
    let model = ExportedModel {
        config: contents.model,
        weights: contents.weights,
        meta: contents.meta,
        encoder: contents.encoder,
    };
    Ok((model, threshold))
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}
