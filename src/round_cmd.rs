//! `fedsoc round start|status|stop`: a data scientist's (or, for status,
//! an auditor's) control of a running coordinator over its admin service.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fedsoc_coordinator::control::{Control, ControlConfig, render_status};

#[derive(Subcommand)]
pub enum RoundCommand {
    /// Queue training rounds (data-scientist certificate).
    Start {
        #[arg(long)]
        rounds: u32,
        #[command(flatten)]
        target: Target,
        /// Show a progress bar until the queued rounds are done.
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
            target,
            follow,
        } => {
            let mut control = target.connect().await?;
            let before = control.status().await?.completed_rounds;
            let queued = control.start(rounds).await?;
            outln!("queued {rounds} rounds; {queued} in the queue now");
            if follow {
                follow_progress(&mut control, before, queued).await?;
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
            outln!(
                "took {} rounds off the queue{}",
                reply.dequeued,
                if reply.aborted_running {
                    "; the running round is being aborted"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

/// A bar over the rounds queued, until the queue is empty or halts.
async fn follow_progress(control: &mut Control, before: u64, queued: u32) -> Result<()> {
    let bar = indicatif::ProgressBar::new(queued as u64);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rounds  {msg}")
            .context("progress bar template")?,
    );
    loop {
        let status = control.status().await?;
        bar.set_position(status.completed_rounds.saturating_sub(before));
        bar.set_message(match &status.running {
            Some(live) => format!("round {} · {}", live.round, live.stage),
            None => "waiting for participants".into(),
        });
        if !status.halted.is_empty() {
            bar.abandon();
            anyhow::bail!("{}", status.halted);
        }
        if status.queued_rounds == 0 {
            bar.finish_with_message(format!("done at round {}", status.completed_rounds));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
