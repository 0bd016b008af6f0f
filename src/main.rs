//! `fedsoc`: the command line. A thin shell: every command parses its
//! flags and calls into the library crates. Standard output goes through
//! [`out`] (`out!`, `outln!`), never `print!`, so that `fedsoc … | head`
//! ends quietly.
#![deny(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use fedsoc_coordinator::{Coordinator, CoordinatorConfig};
use fedsoc_experiments::bench::{self, SecAggBenchOptions, run_secagg_bench};
use fedsoc_experiments::demo::{DemoOptions, DemoRound, run_demo};
use fedsoc_participant::{Agent, ParticipantConfig};
use fedsoc_pki::{CertificateAuthority, Identity, Role};

/// `print!` through [`out`]: a reader that closes the pipe ends the
/// command quietly instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!($($arg)*))
    };
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod bundle_cmd;
mod console_cmd;
mod model_cmd;
mod out;
mod round_cmd;
mod watch_cmd;

#[derive(Parser)]
#[command(
    name = "fedsoc",
    version,
    about = "Federated anomaly detection for cross-border SOCs"
)]
struct Cli {
    /// Log filter, e.g. "info" or "fedsoc_coordinator=debug" (overrides RUST_LOG).
    #[arg(long, global = true)]
    log: Option<String>,
    /// Log lines as text or as one JSON object each (with round, stage and
    /// participant fields), for a log collector.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Coordinator and participants on this machine over real mutual TLS,
    /// trained on built-in synthetic SOC telemetry.
    Demo(DemoArgs),
    /// Run the coordinator.
    #[command(subcommand)]
    Coordinator(CoordinatorCommand),
    /// Run a participant (node agent) beside a SOC's telemetry.
    #[command(subcommand)]
    Participant(ParticipantCommand),
    /// Start, watch and stop training rounds on a running coordinator.
    #[command(subcommand)]
    Round(round_cmd::RoundCommand),
    /// Federation certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Benchmarks over the real stack.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The auditors' log: verify and replay every round, inspect, prove,
    /// export, repair.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Experiments on real or synthetic data: local-only vs federated vs
    /// centralized, with metrics, plots and a report.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Global models outside the federation: export a round for notebooks, burn or deployment
    /// (a verifiable bundle), and verify a bundle.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Score telemetry with an exported model and flag rows above a threshold.
    Score(model_cmd::ScoreArgs),
    /// Score Zeek or Suricata logs as the sensor writes them with the
    /// federation's verified bundle, and write ECS alerts (NDJSON) for the SIEM.
    Watch(watch_cmd::WatchArgs),
    /// A read-only web console on this machine: the federation now, its
    /// rounds with plots, each round's audit entries with checked proofs,
    /// and the log's verification.
    Console(console_cmd::ConsoleArgs),
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Run a scenario file, e.g. experiments/scenarios/nsl-kdd-cross-border.toml.
    Run(ExperimentArgs),
}

#[derive(Args)]
struct ExperimentArgs {
    /// The scenario (TOML).
    scenario: PathBuf,
    /// Folder for summary.json, metrics.csv, plots and report.md.
    #[arg(long, default_value = "fedsoc-experiment")]
    out: PathBuf,
    /// Folder holding the data (e.g. the one with nsl-kdd/); overrides the
    /// scenario and $FEDSOC_DATA.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seeds to run instead of the scenario's, e.g. --seeds 1,2,3.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Rounds instead of the scenario's (for a quick look).
    #[arg(long)]
    rounds: Option<u32>,
    /// Trainings run at once (default: one per core); the results are the
    /// same for any value.
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every hash, signature and checkpoint, then replay every round
    /// (unmasking and the server optimiser's step) and compare each model hash.
    Verify {
        /// The audit log folder, a coordinator storage folder holding
        /// audit/, or an exported bundle.
        dir: PathBuf,
        /// The federation CA to trust (else the log's own, with a warning).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Fail unless the latest checkpoint is cosigned by at least N
        /// distinct participants certified by the CA given with --ca (each
        /// checked the checkpoint against the one it held).
        #[arg(long, value_name = "N", requires = "ca")]
        min_cosigners: Option<usize>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The rounds as a table: members, messages per stage, dropouts,
    /// survivors, samples, loss, model hash, metrics.
    Show {
        dir: PathBuf,
        /// One round in detail: every stage and every message hash.
        #[arg(long)]
        round: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// One entry with its inclusion proof against a signed checkpoint.
    Prove {
        dir: PathBuf,
        #[arg(long)]
        entry: u64,
        /// Tree size to prove against (default: the newest checkpoint's).
        #[arg(long)]
        size: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Copy the log, the CA and a README into a folder for an auditor, and
    /// verify the copy.
    Export {
        dir: PathBuf,
        /// A new or empty folder.
        #[arg(long)]
        to: PathBuf,
    },
    /// Cut a torn tail (an interrupted write) off the log, keeping a copy.
    Repair { dir: PathBuf },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// A secure round against the same round in plaintext, over gRPC and
    /// mutual TLS on loopback, with random updates instead of training.
    Secagg(SecAggArgs),
    /// Local training throughput of the autoencoder (d→64→32→8→32→64→d,
    /// batch 256, Adam), comparable with experiments/pytorch/autoencoder_throughput.py.
    Train(TrainArgs),
    /// Reading a week of rotated gzip Zeek logs as a participant does, with
    /// max_rows: rows/s and the peak memory of the reading process.
    Read(ReadArgs),
    /// Live detection (`fedsoc watch`) on one core: flows/s per input format
    /// (Zeek TSV, Zeek JSON, EVE) against the bare parse rate, and the
    /// latency from a flow's line being appended to its batch being written,
    /// at a steady rate.
    Watch(WatchBenchArgs),
    /// The reading half of `bench read`, run as a child process so its
    /// peak memory is the read's alone.
    #[command(hide = true)]
    ReadChild(ReadChildArgs),
}

#[derive(Args)]
struct ReadArgs {
    /// Rows over all files.
    #[arg(long, default_value_t = 20_000_000)]
    rows: u64,
    /// Hourly files the rows are spread over (48: two days).
    #[arg(long, default_value_t = 48)]
    files: usize,
    /// Where the logs are written; reused by a later run of the same
    /// --rows, --files and --seed. Default: a temporary folder, removed.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The participant's max_rows: the sample the read keeps.
    #[arg(long, default_value_t = 1_000_000)]
    max_rows: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON object on stdout instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WatchBenchArgs {
    /// Flows in each format's file for the throughput runs.
    #[arg(long, default_value_t = 500_000)]
    flows: usize,
    /// Flows/s appended to the live file in the latency runs.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long the live file is appended to, per format.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Throughput runs per format (parse-only and full path in turns); the
    /// median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// One JSON object per format, one per line, instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReadChildArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    max_rows: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct TrainArgs {
    /// Folder with KDDTrain+ to encode and train on; without it, random rows.
    #[arg(long)]
    nsl_kdd: Option<PathBuf>,
    #[arg(long, default_value_t = 125_973)]
    rows: usize,
    #[arg(long, default_value_t = 125)]
    dim: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed epochs (after one warm-up epoch).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Write the rows trained on as raw f32 for the PyTorch script's --data.
    #[arg(long)]
    dump: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SecAggArgs {
    #[arg(long, default_value_t = 50)]
    participants: usize,
    /// Model size D (the nearest autoencoder shape is used).
    #[arg(long, default_value_t = 100_000)]
    params: usize,
    /// SecAgg+ neighbours per participant (0: the coordinator's default).
    #[arg(long, default_value_t = 0)]
    neighbors: usize,
    /// Share of participants that vanish after sharing keys.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Measured rounds per mode, after a warm-up round; medians reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Number of participating SOCs.
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// Training rounds.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Output folder: PKI, configs, global model of every round, metrics.json.
    #[arg(long, default_value = "fedsoc-demo")]
    out: PathBuf,
    /// Synthetic telemetry rows per participant.
    #[arg(long, default_value_t = 4000)]
    rows: usize,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Subcommand)]
enum CoordinatorCommand {
    /// Serve participants and run the configured rounds.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ParticipantCommand {
    /// Join the federation and train on every task until stopped.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the latest audit checkpoint this participant accepted (kept
    /// in its state folder), for an auditor to compare with
    /// `fedsoc audit verify` / `fedsoc audit show`.
    Checkpoint {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a federation CA (ca.pem, ca.key) and its first, empty
    /// revocation list (crl.pem) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "federation")]
        federation: String,
        /// Days the CRL stays current (its nextUpdate); renew it before
        /// then with `fedsoc pki crl`.
        #[arg(long, default_value_t = fedsoc_pki::crl::CRL_VALIDITY_DAYS)]
        crl_days: i64,
    },
    /// Re-sign DIR/crl.pem: the same revocations, the next CRL number and a
    /// fresh nextUpdate. Coordinators and participants refuse a CRL past
    /// its nextUpdate, so run this (e.g. monthly) before it runs out.
    Crl {
        /// The PKI folder holding ca.pem and ca.key.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Days the new CRL stays current.
        #[arg(long, default_value_t = fedsoc_pki::crl::CRL_VALIDITY_DAYS)]
        days: i64,
        /// Number the new CRL at least this high: to climb back over the
        /// CRL number coordinators and participants already enforced after
        /// the newest crl.pem was lost (revoke the ids again first).
        #[arg(long, default_value_t = 0)]
        at_least: u64,
    },
    /// Issue a certificate (ID.pem, ID.key) signed by the CA in DIR, and
    /// record it in DIR/issued.json.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// coordinator, participant, data-scientist or auditor.
        #[arg(long)]
        role: String,
        /// 1-64 characters of a-z, A-Z, 0-9, '-', '_' and '.'.
        #[arg(long)]
        id: String,
        /// DNS name or IP address the coordinator is reached at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = fedsoc_pki::authority::DEFAULT_VALIDITY_DAYS)]
        days: i64,
        /// Replace an existing ID.pem and ID.key (the old certificate stays
        /// valid until revoked: revoke it first).
        #[arg(long)]
        force: bool,
    },
    /// Revoke every certificate issued to ID: rewrites DIR/crl.pem, signed
    /// by the CA, keeping earlier revocations.
    Revoke {
        /// The id the certificate was issued to (`pki issue --id`).
        id: String,
        /// The PKI folder holding ca.pem, ca.key and issued.json.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// key-compromise, superseded, cessation-of-operation or unspecified.
        #[arg(long, default_value = "unspecified")]
        reason: fedsoc_pki::RevocationReason,
        /// Days the new CRL stays current (its nextUpdate).
        #[arg(long, default_value_t = fedsoc_pki::crl::CRL_VALIDITY_DAYS)]
        crl_days: i64,
    },
    /// Describe a certificate (identity, validity, fingerprint, revocation)
    /// or a CRL (revoked serials).
    Show {
        /// A certificate or a crl.pem.
        file: PathBuf,
        /// CRL to check the certificate against (default: crl.pem beside
        /// --ca, else beside the certificate when a ca.pem is there).
        #[arg(long)]
        crl: Option<PathBuf>,
        /// CA that signed the CRL (default: ca.pem beside the CRL).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(filter: Option<&str>, default: &str, format: LogFormat) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Demo(_) | Command::Bench(_) | Command::Audit(_) | Command::Experiment(_) => "warn",
        _ => "info",
    };
    init_logging(cli.log.as_deref(), default_log, cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo(args) => demo(args).await,
        Command::Bench(BenchCommand::Secagg(args)) => bench_secagg(args).await,
        Command::Bench(BenchCommand::Train(args)) => bench_train(args),
        Command::Bench(BenchCommand::Read(args)) => bench_read(args),
        Command::Bench(BenchCommand::Watch(args)) => bench_watch(args),
        Command::Bench(BenchCommand::ReadChild(args)) => {
            let figures =
                fedsoc_experiments::read_bench::measure_read(&args.dir, args.max_rows, args.seed)?;
            outln!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        Command::Audit(command) => audit(command),
        Command::Experiment(ExperimentCommand::Run(args)) => experiment(args).await,
        Command::Round(command) => round_cmd::run(command).await,
        Command::Model(command) => model_cmd::run(command),
        Command::Score(args) => model_cmd::score(args),
        Command::Watch(args) => watch_cmd::watch(args, shutdown_signal()).await,
        Command::Console(args) => console_cmd::run(args, shutdown_signal()).await,
        Command::Coordinator(CoordinatorCommand::Serve { config }) => {
            let config = CoordinatorConfig::load(&config)?;
            let coordinator = Coordinator::start(&config).await?;
            coordinator.run_queued(shutdown_signal()).await;
            coordinator.shutdown().await;
            Ok(())
        }
        Command::Participant(ParticipantCommand::Run { config }) => {
            let config = ParticipantConfig::load(&config)?;
            let agent = Agent::new(config)?;
            agent.run(shutdown_signal()).await?;
            Ok(())
        }
        Command::Participant(ParticipantCommand::Checkpoint { config, json }) => {
            participant_checkpoint(&config, json)
        }
        Command::Pki(PkiCommand::Init {
            dir,
            federation,
            crl_days,
        }) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            if dir.join("ca.key").exists() {
                anyhow::bail!(
                    "{} already holds a CA key; refusing to overwrite it",
                    dir.join("ca.key").display()
                );
            }
            CertificateAuthority::generate(&federation)?.save(&dir)?;
            let pki = fedsoc_pki::PkiDir::new(&dir);
            let crl = pki.sign_crl(crl_days, 0)?;
            outln!(
                "created {}/ca.pem, ca.key and crl.pem (CRL #{}, nothing revoked, current until {}; \
                 renew with `fedsoc pki crl --dir {}`)",
                dir.display(),
                crl.number,
                crl.current_until(),
                dir.display()
            );
            Ok(())
        }
        Command::Pki(PkiCommand::Crl {
            dir,
            days,
            at_least,
        }) => {
            let pki = fedsoc_pki::PkiDir::new(&dir);
            let crl = pki.sign_crl(days, at_least)?;
            outln!(
                "wrote {} (CRL #{}, {} revoked, current until {}); copy it to the coordinator",
                pki.crl_path().display(),
                crl.number,
                crl.entries.len(),
                crl.current_until()
            );
            Ok(())
        }
        Command::Pki(PkiCommand::Issue {
            dir,
            role,
            id,
            hosts,
            days,
            force,
        }) => {
            let role: Role = role.parse()?;
            if role == Role::Coordinator && hosts.is_empty() {
                anyhow::bail!(
                    "a coordinator certificate needs at least one --host (the name participants dial)"
                );
            }
            let identity = Identity::new(role, id.clone())?;
            let issued = fedsoc_pki::PkiDir::new(&dir).issue(&identity, &hosts, days, force)?;
            outln!(
                "issued {role} {id}: {}, {} (serial {}, valid until {}, sha256 {})",
                issued.cert.display(),
                issued.key.display(),
                issued.record.serial,
                issued.record.not_after,
                issued.record.fingerprint,
            );
            Ok(())
        }
        Command::Pki(PkiCommand::Revoke {
            id,
            dir,
            reason,
            crl_days,
        }) => {
            let outcome = fedsoc_pki::PkiDir::new(&dir).revoke_with(&id, reason, crl_days)?;
            if outcome.revoked.is_empty() {
                outln!(
                    "{id} was already revoked (serial {}); {} unchanged (CRL #{})",
                    outcome.already_revoked.join(", "),
                    outcome.crl.display(),
                    outcome.crl_number
                );
            } else {
                outln!(
                    "revoked {id} (serial {}, {reason}): wrote {} (CRL #{})",
                    outcome.revoked.join(", "),
                    outcome.crl.display(),
                    outcome.crl_number
                );
            }
            Ok(())
        }
        Command::Pki(PkiCommand::Show {
            file,
            crl,
            ca,
            json,
        }) => {
            let shown = fedsoc_pki::show::show(&file, crl.as_deref(), ca.as_deref())?;
            if json {
                outln!("{}", shown.to_json());
            } else {
                out!("{}", shown.to_text());
            }
            Ok(())
        }
    }
}

async fn demo(args: DemoArgs) -> Result<()> {
    let options = DemoOptions {
        participants: args.participants,
        rounds: args.rounds,
        out: args.out,
        rows: args.rows,
        epochs: args.epochs,
        seed: args.seed,
    };
    outln!(
        "fedsoc demo: {} SOCs on 127.0.0.1 over mutual TLS with secure aggregation, {} synthetic flows each: statistics, {} training rounds, calibration, bundle",
        options.participants,
        options.rows,
        options.rounds
    );
    outln!(
        "{:>5}  {:>12}  {:>10}  {:>8}  {:>8}",
        "round",
        "participants",
        "train loss",
        "ROC-AUC",
        "PR-AUC"
    );
    let print = |r: &DemoRound| {
        let who = if r.train_loss.is_none() {
            "initial".to_string()
        } else {
            format!(
                "{}/{}",
                r.included.len(),
                r.included.len() + r.dropped.len()
            )
        };
        let loss = r.train_loss.map_or("-".to_string(), |l| format!("{l:.4}"));
        outln!(
            "{:>5}  {:>12}  {:>10}  {:>8.4}  {:>8.4}",
            r.round,
            who,
            loss,
            r.test_roc_auc,
            r.test_pr_auc
        );
    };
    let report = run_demo(&options, print).await?;
    if let (Some(first), Some(last)) = (report.rounds.get(1), report.rounds.last()) {
        outln!(
            "ROC-AUC on {} held-out flows ({} attacks): {:.4} after round {}, {:.4} after round {}",
            report.test_rows,
            report.test_attack_rows,
            first.test_roc_auc,
            first.round,
            last.test_roc_auc,
            last.round
        );
    }
    let e = &report.encoder;
    outln!(
        "encoder: fitted by statistics rounds {}-{} from secure sums over {} rows (sha256 {}); outside the vocabulary: {}",
        e.round - 1,
        e.round,
        e.rows,
        &e.sha256[..16],
        e.other_share
            .iter()
            .map(|(c, s)| format!("{c} {:.1}%", 100.0 * s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t = &report.threshold;
    outln!(
        "threshold: {:.6} ({}) at {:.1}% false alarms on {} held-out benign rows, round {}; the pooled quantile lies in [{:.6}, {:.6}]",
        t.threshold,
        t.score,
        100.0 * t.false_alarm_rate,
        t.benign_rows,
        t.round,
        t.score_interval[0],
        t.score_interval[1]
    );
    outln!(
        "bundle: {b}; check it: fedsoc model verify {b} --ca {dir}/pki/ca.pem",
        b = report.bundle.display(),
        dir = options.out.display()
    );
    outln!(
        "models, certificates, configs, metrics.json and the audit log are in {}",
        options.out.display()
    );
    outln!(
        "check every round: fedsoc audit verify {dir} --ca {dir}/pki/ca.pem",
        dir = options.out.display()
    );
    Ok(())
}

async fn experiment(args: ExperimentArgs) -> Result<()> {
    use fedsoc_experiments::scenario::report::write_all;
    use fedsoc_experiments::scenario::run::{Progress, RunOptions, run};
    use std::io::IsTerminal;

    let options = RunOptions {
        scenario: args.scenario,
        out: args.out,
        data: args.data,
        seeds: args.seeds,
        rounds: args.rounds,
        jobs: args.jobs,
    };
    let bar = indicatif::ProgressBar::new(0);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress = |event: Progress| match event {
        Progress::Phase { label, total } => {
            bar.set_prefix(label);
            bar.set_length(total);
            bar.set_position(0);
        }
        Progress::Step { message } => {
            bar.inc(1);
            if bar.is_hidden() {
                eprintln!("done: {message}");
            }
            bar.set_message(message);
        }
    };
    let results = run(&options, &progress).await?;
    bar.finish_and_clear();
    let jobs = options.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let summary = write_all(&results, &options.out, jobs)?;
    for (model, m) in &summary.models {
        for test in summary.tests.iter().filter(|t| !t.contains('@')) {
            let show = |label: &str| {
                if let Some(t) = m.get(label, test) {
                    let at1 = t.operating_points.get(1);
                    outln!(
                        "{model:<40} {test:<12} {label:<20} ROC-AUC {:.4} [{:.4}, {:.4}]  recall@1%FPR {:.3} (test FPR {:.3})",
                        t.roc_auc.mean,
                        t.roc_auc.low,
                        t.roc_auc.high,
                        at1.map_or(f64::NAN, |p| p.recall.mean),
                        at1.map_or(f64::NAN, |p| p.fpr.mean)
                    );
                }
            };
            show("federated");
            show("centralized");
            for p in m.local.keys() {
                show(&format!("local {p}"));
            }
            for p in m.personalized.keys() {
                show(&format!("personalized {p}"));
            }
        }
    }
    outln!(
        "report, plots, summary.json and metrics.csv are in {}",
        options.out.display()
    );
    Ok(())
}

fn bench_train(args: TrainArgs) -> Result<()> {
    use fedsoc_experiments::train_bench::{TrainBenchOptions, run_train_bench};
    let report = run_train_bench(&TrainBenchOptions {
        rows: args.rows,
        dim: args.dim,
        batch_size: args.batch,
        epochs: args.epochs,
        nsl_kdd: args.nsl_kdd,
        dump: args.dump,
    })?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!(
            "{}: {} rows × {} columns ({}), batch {}, 1 thread: {:.0} samples/s (median epoch {:.3} s)",
            report.framework,
            report.rows,
            report.dim,
            report.data,
            report.batch,
            report.samples_per_s,
            report.epoch_s_median
        );
    }
    Ok(())
}

fn bench_read(args: ReadArgs) -> Result<()> {
    use fedsoc_experiments::read_bench::{ReadBenchOptions, run_read_bench};
    let temporary = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("fedsoc-bench-read-")
                .tempdir()
                .context("creating a folder for the generated logs")?,
        ),
    };
    let dir = match (&args.dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => unreachable!("a temporary folder exists when no --dir is given"),
    };
    let exe = std::env::current_exe().context("finding this executable to run the reader")?;
    let child = [
        exe.display().to_string(),
        "bench".to_string(),
        "read-child".to_string(),
    ];
    let report = run_read_bench(
        &ReadBenchOptions {
            rows: args.rows,
            files: args.files,
            dir,
            max_rows: args.max_rows,
            seed: args.seed,
        },
        &child,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!(
            "{} rows in {} gzip Zeek files ({:.0} MB): read in {:.1} s, {:.0} rows/s; \
             kept {} (max_rows {}); peak memory {:.0} MB (baseline before reading {:.0} MB)",
            report.rows,
            report.files,
            report.bytes_on_disk as f64 / 1e6,
            report.seconds,
            report.rows_per_s,
            report.kept,
            report.max_rows,
            report.peak_rss_mb,
            report.baseline_rss_mb
        );
    }
    Ok(())
}

fn bench_watch(args: WatchBenchArgs) -> Result<()> {
    use fedsoc_experiments::watch_bench::{WatchBenchOptions, render, run_watch_bench};
    let dir = tempfile::Builder::new()
        .prefix("fedsoc-bench-watch-")
        .tempdir()
        .context("creating a folder for the generated logs and alerts")?;
    let report = run_watch_bench(&WatchBenchOptions {
        flows: args.flows,
        rate: args.rate,
        seconds: args.seconds,
        repeats: args.repeats,
        seed: 0,
        dir: dir.path().to_path_buf(),
    })?;
    if args.json {
        for row in report.rows() {
            outln!("{}", serde_json::to_string(&row)?);
        }
    } else {
        out!("{}", render(&report));
    }
    Ok(())
}

async fn bench_secagg(args: SecAggArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("fedsoc-bench-")
        .tempdir()
        .context("creating a working folder for the benchmark")?;
    let options = SecAggBenchOptions {
        participants: args.participants,
        params: args.params,
        neighbors: args.neighbors,
        dropout: args.dropout,
        rounds: args.rounds,
        dir: dir.path().to_path_buf(),
    };
    let report = run_secagg_bench(&options).await?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        out!("{}", bench::render(&report));
    }
    Ok(())
}

/// `fedsoc participant checkpoint`: the checkpoint in the state folder.
fn participant_checkpoint(config: &std::path::Path, json: bool) -> Result<()> {
    let config = ParticipantConfig::load(config)?;
    let dir = config
        .state_dir
        .clone()
        .context("the configuration names no state folder")?;
    let held = fedsoc_participant::audit::read_held(&dir)?;
    let Some(held) = held else {
        if json {
            outln!(
                "{}",
                serde_json::json!({ "participant": config.id, "state_dir": dir, "checkpoint": null })
            );
        } else {
            outln!(
                "participant {} holds no audit checkpoint yet (state folder {}): it has not completed a round",
                config.id,
                dir.display()
            );
        }
        return Ok(());
    };
    let c = &held.checkpoint;
    let note = held.to_note()?;
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "participant": config.id,
                "state_dir": dir,
                "origin": c.origin,
                "tree_size": c.tree_size,
                "root": hex::encode(c.root),
                "timestamp_ms": c.timestamp_ms,
                "key_id": held.key_id.to_string(),
                "note": note,
            })
        );
    } else {
        outln!("participant {} (state folder {})", config.id, dir.display());
        outln!("latest accepted checkpoint:");
        outln!("  origin  {}", c.origin);
        outln!("  size    {}", c.tree_size);
        outln!("  root    {}", hex::encode(c.root));
        outln!("  time    {} ms", c.timestamp_ms);
        outln!("  signed  by coordinator key {}", held.key_id);
        outln!("");
        out!("{note}");
        outln!("");
        outln!(
            "compare: `fedsoc audit verify <log> --ca ca.pem` must pass, and `fedsoc audit prove <log> --entry 0 --size {}` must show root {}",
            c.tree_size,
            hex::encode(c.root)
        );
    }
    Ok(())
}

fn audit(command: AuditCommand) -> Result<()> {
    use fedsoc_coordinator::{audit_view, replay};
    match command {
        AuditCommand::Verify {
            dir,
            ca,
            min_cosigners,
            json,
        } => {
            let ca_pem = ca
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading the CA {}", path.display()))
                })
                .transpose()?;
            let verified = replay::verify_log(&dir, ca_pem.as_deref()).and_then(|report| {
                if let Some(n) = min_cosigners {
                    report.require_cosigners(n)?;
                }
                Ok(report)
            });
            match verified {
                Ok(report) => {
                    if let Some(warning) = audit_view::tofu_warning(&report) {
                        eprintln!("{warning}");
                    }
                    if json {
                        outln!("{}", serde_json::to_string(&report)?);
                    } else {
                        out!("{}", audit_view::render_report(&report));
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        let failed = serde_json::json!({ "ok": false, "error": e.to_string() });
                        outln!("{failed}");
                    }
                    Err(anyhow::anyhow!("the audit log does not verify: {e}"))
                }
            }
        }
        AuditCommand::Show { dir, round, json } => {
            let mut timeline = audit_view::timeline(&dir)?;
            if let Some(round) = round {
                timeline = timeline.only_round(round);
                if timeline.attempts.is_empty() {
                    anyhow::bail!("the log has no round {round}");
                }
            }
            if json {
                outln!("{}", serde_json::to_string(&timeline)?);
            } else {
                out!(
                    "{}",
                    audit_view::render_timeline(&timeline, round.is_some())
                );
            }
            Ok(())
        }
        AuditCommand::Prove {
            dir,
            entry,
            size,
            json,
        } => {
            let proof = audit_view::prove_entry(&dir, entry, size)?;
            if json {
                outln!("{}", serde_json::to_string(&proof)?);
            } else {
                out!("{}", audit_view::render_proof(&proof));
            }
            Ok(())
        }
        AuditCommand::Export { dir, to } => {
            let export = replay::export_bundle(&dir, &to)?;
            out!("{}", audit_view::render_export(&export));
            Ok(())
        }
        AuditCommand::Repair { dir } => {
            let (dir, repaired) = replay::repair_log(&dir)?;
            out!("{}", audit_view::render_repair(&dir, &repaired));
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C (or SIGTERM on Unix).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
