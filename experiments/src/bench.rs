//! `fedsoc bench secagg`: what secure aggregation costs over the real
//! stack. Two local federations of the same size, one secure and one
//! plaintext, run the same rounds over gRPC and mutual TLS on loopback;
//! participants answer with random updates, so what is timed is the
//! protocol, not the model. Beside the two, the bare PRG expands as many
//! mask words as the coordinator did to unmask: the floor of its cost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fedsoc_coordinator::{RoundReport, StageStats};
use fedsoc_secagg::prg::{RingVec, Sign};
use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::{Ring, recommended_neighbours};
use serde::Serialize;

use crate::error::ExperimentError;
use crate::local::{LocalFederation, LocalFederationSpec, RandomUpdatePlan};

/// What to measure.
#[derive(Clone, Debug)]
pub struct SecAggBenchOptions {
    pub participants: usize,
    /// Model size D; the nearest autoencoder shape is used.
    pub params: usize,
    /// SecAgg+ neighbours per participant; 0 lets the coordinator choose.
    pub neighbors: usize,
    /// Share of participants that vanish after sharing keys.
    pub dropout: f64,
    /// Measured rounds per mode (after one warm-up round); medians reported.
    /// A round's time is the whole of `run_next_round`: stages, the audit
    /// log and the checkpoint sent to every participant.
    pub rounds: usize,
    /// Working folder (PKI, configs, stored models).
    pub dir: PathBuf,
}

/// One mode's median round.
#[derive(Clone, Debug, Serialize)]
pub struct ModeFigures {
    pub round_s: f64,
    pub server_compute_s: f64,
    pub bytes_down_per_participant: f64,
    pub bytes_up_per_participant: f64,
    pub included: usize,
    pub stages: Vec<StageStats>,
}

/// The benchmark's result; the flat keys are the ones scripts read.
#[derive(Clone, Debug, Serialize)]
pub struct SecAggBenchReport {
    pub participants: usize,
    pub params: usize,
    pub neighbors: usize,
    pub threshold: usize,
    pub dropouts: usize,
    pub rounds: usize,
    pub secure_round_s: f64,
    pub plain_round_s: f64,
    /// secure_round_s / plain_round_s.
    pub ratio: f64,
    pub server_compute_s: f64,
    /// The bare PRG expanding the words the coordinator expanded to unmask.
    pub prg_floor_s: f64,
    pub prg_words: usize,
    pub bytes_up_per_participant: f64,
    pub bytes_down_per_participant: f64,
    pub secure: ModeFigures,
    pub plain: ModeFigures,
}

/// Hidden width of the one-hidden-layer autoencoder over `input_dim`
/// features with about `params` parameters (2·d·h + h + d).
fn hidden_width(input_dim: usize, params: usize) -> usize {
    let per_unit = 2 * input_dim + 1;
    (params.saturating_sub(input_dim) as f64 / per_unit as f64)
        .round()
        .max(1.0) as usize
}

/// Runs the benchmark.
pub async fn run_secagg_bench(
    options: &SecAggBenchOptions,
) -> Result<SecAggBenchReport, ExperimentError> {
    let n = options.participants;
    if n < 2 {
        return Err(ExperimentError::Setup(
            "--participants must be at least 2 for a secure round".into(),
        ));
    }
    if !(0.0..1.0).contains(&options.dropout) {
        return Err(ExperimentError::Setup(format!(
            "--dropout {} is not a share in [0, 1)",
            options.dropout
        )));
    }
    let input_dim = fedsoc_datasets::EncoderSpec::synthetic_default().dim();
    let hidden = hidden_width(input_dim, options.params);
    let vanishing = (options.dropout * n as f64).round() as usize;
    let (k_auto, _) = recommended_neighbours(n, 0);
    let neighbors = if options.neighbors == 0 {
        k_auto
    } else {
        options.neighbors
    };
    // What the coordinator picks for threshold = 0 (no colluders).
    let threshold = fedsoc_secagg::config::threshold_floor(neighbors, 0);

    let mut spec = LocalFederationSpec::new(&options.dir.join("secure"), n);
    spec.hidden = vec![hidden];
    spec.neighbors = options.neighbors as u32;
    spec.min_participants = 2;
    spec.stage_timeout_s = 120;
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 1000,
        scale: 0.05,
        vanishing,
    });
    let secure = measure(&spec, options.rounds).await?;
    spec.dir = options.dir.join("plain");
    spec.secure = false;
    let plain = measure(&spec, options.rounds).await?;

    let params = secure
        .first()
        .map(|r| r.report.model.len())
        .unwrap_or(options.params);
    let secure_median = median_round(&secure);
    let plain_median = median_round(&plain);
    let vector_len = WeightedEncoding::vector_len(params);
    let words = secure_median.report.stats.masks_expanded * vector_len;
    let prg_floor_s = prg_time(words, vector_len);
    let secure_fig = figures(secure_median);
    let plain_fig = figures(plain_median);
    Ok(SecAggBenchReport {
        participants: n,
        params,
        neighbors,
        threshold,
        dropouts: vanishing,
        rounds: options.rounds,
        secure_round_s: secure_fig.round_s,
        plain_round_s: plain_fig.round_s,
        ratio: secure_fig.round_s / plain_fig.round_s,
        server_compute_s: secure_fig.server_compute_s,
        prg_floor_s,
        prg_words: words,
        bytes_up_per_participant: secure_fig.bytes_up_per_participant,
        bytes_down_per_participant: secure_fig.bytes_down_per_participant,
        secure: secure_fig,
        plain: plain_fig,
    })
}

/// A measured round: its report and its whole wall time, audit log
/// writes and the checkpoint included.
struct Measured {
    report: RoundReport,
    wall_s: f64,
}

/// One warm-up round, then `rounds` measured ones.
async fn measure(
    spec: &LocalFederationSpec,
    rounds: usize,
) -> Result<Vec<Measured>, ExperimentError> {
    let federation = LocalFederation::start(spec).await?;
    let outcome = async {
        let mut reports = Vec::new();
        for i in 0..=rounds.max(1) {
            // Vanished participants reconnect between rounds.
            federation
                .coordinator
                .wait_for_participants(spec.participants, Duration::from_secs(60))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            let report = federation.coordinator.run_next_round().await?;
            let wall_s = started.elapsed().as_secs_f64();
            if i > 0 {
                reports.push(Measured { report, wall_s });
            }
        }
        Ok(reports)
    }
    .await;
    federation.shutdown().await;
    outcome
}

/// The round of median wall time.
fn median_round(rounds: &[Measured]) -> &Measured {
    let mut sorted: Vec<&Measured> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    sorted[sorted.len() / 2]
}

fn figures(measured: &Measured) -> ModeFigures {
    let report = &measured.report;
    let (down, up) = report.stats.bytes_per_member();
    ModeFigures {
        round_s: measured.wall_s,
        server_compute_s: report.stats.server_compute_s(),
        bytes_down_per_participant: down,
        bytes_up_per_participant: up,
        included: report.included.len(),
        stages: report.stats.stages.clone(),
    }
}

/// Seconds the bare PRG takes to expand `words` ring words (Z_2^64, the
/// coordinator's default ring), in vectors as long as the round's: the
/// best of three runs, on memory already touched.
fn prg_time(words: usize, vector_len: usize) -> f64 {
    let vector_len = vector_len.max(1);
    let mut vector = RingVec::zeros(Ring::U64, vector_len);
    vector.expand(&rand::random(), Sign::Add);
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut left = words;
            while left > 0 {
                // A shorter last vector would change the work; a whole
                // one differs from the round's by under one vector.
                vector.expand(&rand::random(), Sign::Add);
                left = left.saturating_sub(vector_len);
            }
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// One figure of the secure-vs-plaintext table, read from a mode's figures.
type Column = fn(&ModeFigures) -> String;

/// The report as a table for people.
pub fn render(report: &SecAggBenchReport) -> String {
    let mut out = format!(
        "secure aggregation over gRPC + mTLS on loopback: N={} participants, D={} parameters, \
         k={} neighbours, t={}, {} vanishing after key sharing; median of {} round(s)\n\n",
        report.participants,
        report.params,
        report.neighbors,
        report.threshold,
        report.dropouts,
        report.rounds
    );
    out.push_str(&format!(
        "{:<36} {:>10} {:>14}\n",
        "stage (secure)", "wall s", "coordinator s"
    ));
    for s in &report.secure.stages {
        out.push_str(&format!(
            "{:<36} {:>10.4} {:>14.4}\n",
            s.name, s.wall_s, s.server_compute_s
        ));
    }
    let staged: f64 = report.secure.stages.iter().map(|s| s.wall_s).sum();
    out.push_str(&format!(
        "{:<36} {:>10.4}\n",
        "store model, audit flush, checkpoint",
        (report.secure.round_s - staged).max(0.0)
    ));
    out.push_str(&format!(
        "\n{:<36} {:>10} {:>10}\n",
        "", "secure", "plaintext"
    ));
    let rows: [(&str, Column); 5] = [
        ("round wall time (s)", |m| format!("{:.4}", m.round_s)),
        ("coordinator compute (s)", |m| {
            format!("{:.4}", m.server_compute_s)
        }),
        ("bytes down per participant", |m| {
            format!("{:.0}", m.bytes_down_per_participant)
        }),
        ("bytes up per participant", |m| {
            format!("{:.0}", m.bytes_up_per_participant)
        }),
        ("participants included", |m| m.included.to_string()),
    ];
    for (name, value) in rows {
        out.push_str(&format!(
            "{name:<36} {:>10} {:>10}\n",
            value(&report.secure),
            value(&report.plain)
        ));
    }
    out.push_str(&format!(
        "\nsecure / plaintext round: {:.2}x\n\
         bare PRG for the coordinator's {} mask words: {:.4} s \
         (coordinator compute / PRG floor: {:.2}x)\n",
        report.ratio,
        report.prg_words,
        report.prg_floor_s,
        report.server_compute_s / report.prg_floor_s.max(f64::MIN_POSITIVE),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_width_hits_the_requested_size() {
        for params in [1_000, 100_000, 1_000_000] {
            let h = hidden_width(35, params);
            let actual = 2 * 35 * h + h + 35;
            assert!(actual.abs_diff(params) <= 36, "{params} -> {actual}");
        }
        assert_eq!(hidden_width(35, 0), 1);
    }
}
