//! `fedsoc round start|status|stop`: a data scientist's (or, for status,
//! an auditor's) control of a running coordinator over its admin service.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fedsoc_coordinator::control::{
    Control, ControlConfig, render_completed, render_progress, render_started, render_status,
    render_stopped,
};

#[derive(Subcommand)]
pub enum RoundCommand {
    /// Queue training rounds (data-scientist certificate).
    Start {
        /// How many (a statistics round counts as two secure sums).
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// train: model updates; statistics: fit the federation's feature
        /// encoder from secure sums of the members' rows; calibrate: set the
        /// federation threshold from a secure histogram of benign scores.
        #[arg(long, value_enum, default_value_t = KindArg::Train)]
        kind: KindArg,
        #[command(flatten)]
        target: Target,
        /// Follow the queue until it is empty: a progress bar on a terminal,
        /// else one line per stage change and completed round. Ctrl-C
        /// stops following; the rounds stay queued (`round stop` ends them).
        #[arg(long)]
        follow: bool,
    },
    /// The federation now: the running round, its stage, who is in, who
    /// dropped, and recent rounds (data-scientist or auditor certificate).
    Status {
        #[command(flatten)]
        target: Target,
        /// Redraw every second until interrupted.
        #[arg(long)]
        watch: bool,
        /// The raw reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Empty the queue; the running round finishes unless --abort
    /// (data-scientist certificate).
    Stop {
        #[command(flatten)]
        target: Target,
        /// Abandon the running round too (recorded as aborted).
        #[arg(long)]
        abort: bool,
    },
}

#[derive(Args)]
pub struct Target {
    /// control.toml: the coordinator's URL and your certificate.
    #[arg(long, default_value = "control.toml")]
    config: PathBuf,
}

impl Target {
    async fn connect(&self) -> Result<Control> {
        let config = ControlConfig::load(&self.config)?;
        Ok(Control::connect(&config).await?)
    }
}

pub async fn run(command: RoundCommand) -> Result<()> {
    match command {
        RoundCommand::Start {
            rounds,
            kind,
            target,
            follow,
        } => {
            let mut control = target.connect().await?;
            let before = control.status().await?.completed_rounds;
            let reply = control.start(rounds, kind.name()).await?;
            outln!("{}", render_started(rounds, &reply));
            if follow {
                follow_progress(&mut control, before, reply.queued, &target.config).await?;
            }
            Ok(())
        }
        RoundCommand::Status {
            target,
            watch,
            json,
        } => {
            let mut control = target.connect().await?;
            loop {
                let status = control.status().await?;
                if json {
                    outln!("{}", status_json(&status));
                } else {
                    if watch && std::io::stdout().is_terminal() {
                        // Clear the screen and home the cursor.
                        out!("\x1b[2J\x1b[H");
                    }
                    out!("{}", render_status(&status));
                }
                if !watch {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        RoundCommand::Stop { target, abort } => {
            let mut control = target.connect().await?;
            let reply = control.stop(abort).await?;
            outln!("{}", render_stopped(&reply));
            Ok(())
        }
    }
}

/// Follows the queue until it is empty or halts: a progress bar on a
/// terminal, else one plain line per change of stage and per completed
/// round. Ctrl-C stops following (exit status 130) and says what stays
/// queued on the coordinator.
async fn follow_progress(
    control: &mut Control,
    before: u64,
    queued: u32,
    config: &Path,
) -> Result<()> {
    let mut interrupt = Interrupt::new()?;
    let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(queued as u64);
    if !terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rounds  {msg}")
            .context("progress bar template")?,
    );
    let mut last_line = String::new();
    let mut last_completed = before;
    let mut status = None;
    loop {
        let next = tokio::select! {
            _ = interrupt.recv() => return stopped_following(control, status, &bar, config).await,
            next = control.status() => next?,
        };
        let now = status.insert(next);
        bar.set_position(now.completed_rounds.saturating_sub(before));
        bar.set_message(match &now.running {
            Some(live) => format!("round {} · {}", live.round, live.stage),
            None => "waiting for participants".into(),
        });
        if !terminal {
            let mut done: Vec<_> = now
                .recent
                .iter()
                .filter(|r| r.round > last_completed)
                .collect();
            done.sort_by_key(|r| r.round);
            for r in done {
                outln!("{}", render_completed(r));
            }
            last_completed = last_completed.max(now.completed_rounds);
            let line = render_progress(now);
            if line != last_line {
                outln!("{line}");
                last_line = line;
            }
        }
        if !now.halted.is_empty() {
            bar.abandon();
            anyhow::bail!("{}", now.halted);
        }
        if now.queued_rounds == 0 {
            bar.finish_with_message(format!("done at round {}", now.completed_rounds));
            return Ok(());
        }
        tokio::select! {
            _ = interrupt.recv() => return stopped_following(control, status, &bar, config).await,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Ctrl-C while following: the rounds stay queued on the coordinator;
/// says how many and how to stop them, then exits with status 130.
async fn stopped_following(
    control: &mut Control,
    last: Option<fedsoc_proto::v1::StatusReply>,
    bar: &indicatif::ProgressBar,
    config: &Path,
) -> Result<()> {
    bar.abandon();
    let status = tokio::time::timeout(Duration::from_secs(5), control.status())
        .await
        .ok()
        .and_then(Result::ok)
        .or(last);
    let running = status.as_ref().and_then(|s| s.running.as_ref());
    let abort = match running {
        Some(live) => format!(" (add --abort to end round {} too)", live.round),
        None => String::new(),
    };
    let queued = match &status {
        Some(status) => {
            let running = match &status.running {
                Some(live) => format!(" (round {} is running)", live.round),
                None => String::new(),
            };
            format!(
                "{} {} queued on the coordinator{running}",
                status.queued_rounds,
                if status.queued_rounds == 1 {
                    "round stays"
                } else {
                    "rounds stay"
                }
            )
        }
        None => "the rounds stay queued on the coordinator".to_string(),
    };
    outln!(
        "stopped following; {queued} and run as participants allow. \
         To stop them: fedsoc round stop --config {}{abort}",
        config.display()
    );
    std::process::exit(130);
}

/// SIGINT, registered at once so that a Ctrl-C between two polls is not
/// lost (nor does it kill the process before it says what stays queued).
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> Result<Self> {
        Ok(Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("listening for Ctrl-C")?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn status_json(status: &fedsoc_proto::v1::StatusReply) -> serde_json::Value {
    serde_json::json!({
        "federation": status.federation,
        "completed_rounds": status.completed_rounds,
        "queued_rounds": status.queued_rounds,
        "connected": status.connected,
        "roster": status.roster,
        "min_participants": status.min_participants,
        "halted": status.halted,
        "running": status.running.as_ref().map(|l| serde_json::json!({
            "round": l.round,
            "attempt": l.attempt,
            "stage": l.stage,
            "members": l.members,
            "dropped": l.dropped,
        })),
        "recent": status.recent.iter().map(|r| serde_json::json!({
            "round": r.round,
            "included": r.included,
            "dropped": r.dropped,
            "samples": r.samples,
            "mean_loss": r.mean_loss,
            "model_sha256": r.model_sha256,
        })).collect::<Vec<_>>(),
    })
}

/// The kinds of round a data scientist starts.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Train,
    Statistics,
    Calibrate,
}

impl KindArg {
    fn name(self) -> &'static str {
        match self {
            KindArg::Train => "train",
            KindArg::Statistics => "statistics",
            KindArg::Calibrate => "calibrate",
        }
    }
}
