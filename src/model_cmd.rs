//! `fedsoc model export` and `fedsoc score`: getting a global model out of the coordinator's
//! storage folder into a file other tools load, and scoring a SOC's own telemetry with it.
//! The work is in `fedsoc_models::export` and `fedsoc_experiments::score`; this is flags,
//! files and messages.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use fedsoc_coordinator::{CoordinatorConfig, FederationSpec, model_sha256};
use fedsoc_experiments::ExperimentError;
use fedsoc_experiments::score::{
    ExportedModel, InputFormat, InputSpec, Threshold, ThresholdSource, calibrate_on, read_input,
    write_scores,
};
use fedsoc_models::ExportMeta;
use fedsoc_models::export::{burn_sidecar_json, export_burn, export_safetensors};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Write a round's global model as safetensors (for notebooks and `fedsoc score`) or as a
    /// burn record, with its architecture, round, hash and feature encoder.
    Export(ExportArgs),
    /// Verify a model bundle offline against the federation CA: the coordinator's signed
    /// checkpoint, the inclusion of every provenance entry, and every file against them.
    Verify(crate::bundle_cmd::VerifyArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// The federation's coordinator.toml: the model architecture and the feature encoder
    /// (the stored weights alone do not say them).
    #[arg(long)]
    config: PathBuf,
    /// The coordinator's storage folder (default: [storage] dir of --config).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The round to export (default: the latest complete round; 0 is the initial model).
    #[arg(long)]
    round: Option<u64>,
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    format: ExportFormat,
    /// The file to write; a burn export also writes OUT.json beside it; a bundle is a folder.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// One F32 tensor per layer weight ([out, in], as PyTorch's nn.Linear) and bias, plus
    /// metadata (kind, widths, round, hash, encoder).
    Safetensors,
    /// burn's record format (burnpack) of the model module, plus a JSON sidecar OUT.json.
    Burn,
    /// A deployable folder: the safetensors model, the encoder, the federation's threshold and
    /// their audit-log proofs (verify it with `fedsoc model verify`).
    Bundle,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// A model written by `fedsoc model export --format safetensors`.
    #[arg(long, required_unless_present = "bundle", conflicts_with = "bundle")]
    model: Option<PathBuf>,
    /// A bundle written by `fedsoc model export --format bundle`: model, encoder and the
    /// federation's threshold in one, used only once verified (--ca).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The federation CA (PEM) to verify --bundle against.
    #[arg(long, requires = "bundle")]
    ca: Option<PathBuf>,
    /// Score with --bundle without verifying it (prints a warning; its contents may have been
    /// changed by anyone).
    #[arg(long, requires = "bundle", conflicts_with = "ca")]
    insecure_skip_verify: bool,
    /// The telemetry to score.
    #[arg(long)]
    input: PathBuf,
    /// The telemetry format (default: guessed from the file; csv when --schema is given).
    #[arg(long, value_enum)]
    format: Option<TelemetryFormat>,
    /// The CSV schema (TOML) naming the columns, for --format csv.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// The scores CSV (row, score, flag, and label, family when the input has attack labels);
    /// default: standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Flag rows scoring above this (overrides a bundle's threshold).
    #[arg(long, conflicts_with = "calibrate")]
    threshold: Option<f32>,
    /// Calibrate the threshold on this reference traffic (same format as --input): its benign
    /// rows, or all rows when it has no labels.
    #[arg(long)]
    calibrate: Option<PathBuf>,
    /// The false-positive rate to calibrate for (default 0.01).
    #[arg(long)]
    fpr: Option<f64>,
    /// Count and skip malformed rows instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TelemetryFormat {
    NslKdd,
    Zeek,
    Suricata,
    Csv,
}

impl From<TelemetryFormat> for InputFormat {
    fn from(f: TelemetryFormat) -> Self {
        match f {
            TelemetryFormat::NslKdd => InputFormat::NslKdd,
            TelemetryFormat::Zeek => InputFormat::Zeek,
            TelemetryFormat::Suricata => InputFormat::Suricata,
            TelemetryFormat::Csv => InputFormat::Csv,
        }
    }
}

pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Export(args) => export(args),
        ModelCommand::Verify(args) => crate::bundle_cmd::verify(args),
    }
}

fn export(args: ExportArgs) -> Result<()> {
    if let ExportFormat::Bundle = args.format {
        return crate::bundle_cmd::export(&args.config, args.store, args.round, &args.out);
    }
    let config = CoordinatorConfig::load(&args.config)?;
    let spec = FederationSpec::from_config(&config)?;
    let store = args.store.unwrap_or_else(|| config.storage.dir.clone());
    let head = read_head(&store)?;
    let round = args.round.unwrap_or(head.round);
    if round > head.round {
        bail!(
            "round {round} is not complete: the latest complete round in {} is {}",
            store.display(),
            head.round
        );
    }
    let expected = recorded_sha256(&store, round, &head, &spec)?;
    let flat = read_model(&store, round, &spec)?;
    let actual = model_sha256(&flat);
    if actual != expected {
        bail!(
            "{} hashes to {actual} but round {round} was recorded with {expected}; the file was \
             altered or corrupted, refusing to export it (restore the storage folder from a backup)",
            model_path(&store, round).display()
        );
    }
    let meta = ExportMeta {
        federation: spec.federation.clone(),
        round,
        model_sha256: actual,
        encoder_json: spec.encoder_json.clone(),
    };
    match args.format {
        ExportFormat::Safetensors => {
            write_atomic(&args.out, &export_safetensors(&spec.model, &flat, &meta)?)?;
        }
        ExportFormat::Bundle => unreachable!("handled above"),
        ExportFormat::Burn => {
            let sidecar = sidecar_path(&args.out);
            write_atomic(&args.out, &export_burn(&spec.model, &flat)?)?;
            write_atomic(
                &sidecar,
                burn_sidecar_json(&spec.model, &flat, &meta)?.as_bytes(),
            )?;
            outln!("metadata: {}", sidecar.display());
        }
    }
    outln!(
        "exported round {round} of {} ({}, {} parameters, sha256 {}) to {}",
        spec.federation,
        spec.model.kind(),
        flat.len(),
        meta.model_sha256,
        args.out.display()
    );
    Ok(())
}

/// `state.json`'s latest complete round and its hash.
struct Head {
    round: u64,
    model_sha256: String,
}

fn read_head(store: &Path) -> Result<Head> {
    let path = store.join("state.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: --store must be the coordinator's storage folder ([storage] dir of \
             coordinator.toml) after at least its initial model was saved",
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    match (value["round"].as_u64(), value["model_sha256"].as_str()) {
        (Some(round), Some(sha)) => Ok(Head {
            round,
            model_sha256: sha.to_string(),
        }),
        _ => bail!("{} has no round and model_sha256", path.display()),
    }
}

/// The hash the coordinator recorded for `round`: its line of `history.jsonl`, else the head
/// (`state.json`) when it is that round, else for round 0 the initial model the config's seed
/// determines.
fn recorded_sha256(store: &Path, round: u64, head: &Head, spec: &FederationSpec) -> Result<String> {
    let path = store.join("history.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut recorded = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {} is not JSON", path.display(), i + 1))?;
        if value["round"].as_u64() == Some(round)
            && let Some(sha) = value["model_sha256"].as_str()
        {
            recorded = Some(sha.to_string());
        }
    }
    if let Some(sha) = recorded {
        return Ok(sha);
    }
    if round == head.round {
        return Ok(head.model_sha256.clone());
    }
    if round == 0 {
        return Ok(model_sha256(&spec.initial_model()?));
    }
    bail!(
        "{} has no record of round {round}, so its model cannot be checked; export a recorded round",
        path.display()
    )
}

fn model_path(store: &Path, round: u64) -> PathBuf {
    store.join("models").join(format!("round-{round:06}.f32"))
}

/// The stored flat vector of `round`, checked against the config's architecture.
fn read_model(store: &Path, round: u64, spec: &FederationSpec) -> Result<Vec<f32>> {
    let path = model_path(store, round);
    let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if raw.len() % 4 != 0 {
        bail!(
            "{} holds {} bytes, not a whole number of f32 values; the file is truncated",
            path.display(),
            raw.len()
        );
    }
    let flat: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if flat.len() != spec.model.num_params() {
        bail!(
            "{} holds {} values but the {} in --config (input_dim {}, hidden {:?}) has {}; \
             pass the coordinator.toml of the federation that trained it",
            path.display(),
            flat.len(),
            spec.model.kind(),
            spec.model.input_dim(),
            spec.hidden(),
            spec.model.num_params()
        );
    }
    Ok(flat)
}

/// `OUT` + `.json`, e.g. `global.bpk.json`.
fn sidecar_path(out: &Path) -> PathBuf {
    let mut name = OsString::from(out.as_os_str());
    name.push(".json");
    PathBuf::from(name)
}

/// Writes to a temporary file beside `path`, syncs it, and renames it over `path`, so a
/// reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a telemetry file for `score`; a malformed row names this
/// command's way to skip such rows.
fn read_telemetry(input: &InputSpec) -> Result<fedsoc_datasets::Loaded, ExperimentError> {
    read_input(input).map_err(|e| match e {
        ExperimentError::Data(e) => ExperimentError::Data(e.with_skip_hint("pass --skip-bad-rows")),
        other => other,
    })
}

pub fn score(args: ScoreArgs) -> Result<()> {
    let (model, bundled) = match (&args.model, &args.bundle) {
        (Some(path), _) => (ExportedModel::load(path)?, None),
        (None, Some(bundle)) => {
            crate::bundle_cmd::for_scoring(bundle, args.ca.as_deref(), args.insecure_skip_verify)?
        }
        (None, None) => bail!("give --model MODEL.safetensors or --bundle BUNDLE"),
    };
    if args.threshold.is_none() && args.calibrate.is_none() && bundled.is_none() {
        bail!(
            "give exactly one of --threshold T (flag rows scoring above T) or --calibrate REF \
             (calibrate on normal traffic REF at --fpr, default 0.01){}",
            if args.bundle.is_some() {
                "; this bundle carries no federation threshold"
            } else {
                ""
            }
        );
    }
    if args.fpr.is_some() && args.calibrate.is_none() {
        bail!("--fpr applies to --calibrate REF; with --threshold it has no effect, drop it");
    }
    let spec = |path: &Path| InputSpec {
        path: path.to_path_buf(),
        format: args.format.map(InputFormat::from),
        schema: args.schema.clone(),
        skip_bad_rows: args.skip_bad_rows,
    };
    let threshold = match (args.threshold, &args.calibrate, bundled) {
        (Some(value), _, _) => {
            if !value.is_finite() {
                bail!("--threshold {value} must be a finite number");
            }
            Threshold {
                value,
                source: ThresholdSource::Given,
            }
        }
        (None, Some(reference), _) => {
            let loaded = read_telemetry(&spec(reference))?;
            eprintln!("{}", loaded.report);
            calibrate_on(
                &model,
                &loaded.records,
                &reference.display().to_string(),
                args.fpr.unwrap_or(0.01),
            )?
        }
        (None, None, Some(bundled)) => bundled,
        (None, None, None) => unreachable!("checked above"),
    };
    let loaded = read_telemetry(&spec(&args.input))?;
    eprintln!("{}", loaded.report);
    let scores = model.score(&loaded.records)?;
    let summary = match &args.out {
        Some(out) => {
            let mut buf = Vec::new();
            let summary = write_scores(&mut buf, &loaded.records, &scores, &threshold)?;
            write_atomic(out, &buf)?;
            summary
        }
        None => {
            let mut stdout = std::io::BufWriter::new(crate::out::Stdout);
            let summary = write_scores(&mut stdout, &loaded.records, &scores, &threshold)?;
            stdout
                .flush()
                .context("writing the scores to standard output")?;
            summary
        }
    };
    eprintln!(
        "model: {} of round {} of federation {} (sha256 {})",
        model.config.kind(),
        model.meta.round,
        model.meta.federation,
        model.meta.model_sha256
    );
    eprintln!("{summary}");
    if let Some(out) = &args.out {
        eprintln!("scores: {}", out.display());
    }
    Ok(())
}
