//! The round running now, as the admin service shows it, and the switch a
//! data scientist uses to abandon it.
//!
//! Rounds report their stages here; `Status` reads a snapshot and
//! `StopRounds { abort_current }` flips the abort switch, which the round
//! notices at its next wait and closes as aborted in the audit log.
//!
//! The round loop *claims* a queued round before it opens it (see
//! `Shared::claim_next_round`); from the claim on the round counts as
//! running, so a stop either took it off the queue before the claim or
//! sees it running, and an abort requested between the claim and the
//! round's first stage is not lost.
//!
//! Entering a stage is also a fault point (see [`fedsoc_proto::fault`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use fedsoc_proto::fault::stage;
use fedsoc_proto::fault::{Pause, pause_at};

use crate::kind::RoundKind;
use crate::metrics::Metrics;

/// A snapshot of the running round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRound {
    pub round: u64,
    pub attempt: u32,
    pub stage: &'static str,
    pub members: Vec<String>,
    /// participant → why it dropped, so far.
    pub dropped: BTreeMap<String, String>,
    pub started_unix_ms: u64,
    pub stage_started_unix_ms: u64,
}

/// Shared between the round loop (writer) and the admin service (reader).
#[derive(Clone, Debug)]
pub struct RoundWatch {
    state: Arc<Mutex<State>>,
    abort: Arc<watch::Sender<bool>>,
    /// Where rounds, stages, dropouts and round traffic are counted.
    metrics: Metrics,
}

#[derive(Debug, Default)]
struct State {
    /// The round the loop took from the queue, from the claim until the
    /// loop is done with it (it may not have opened yet).
    claimed: Option<u64>,
    live: Option<LiveRound>,
    /// The open round's kind and its stage's start, for the metrics.
    timing: Option<(RoundKind, Instant)>,
}

impl Default for RoundWatch {
    fn default() -> Self {
        Self::with_metrics(Metrics::default())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RoundWatch {
    /// A watch that counts rounds, stages, dropouts and traffic in `metrics`.
    pub fn with_metrics(metrics: Metrics) -> Self {
        RoundWatch {
            state: Arc::default(),
            abort: Arc::new(watch::channel(false).0),
            metrics,
        }
    }

    /// Where the running round counts what happens to it.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a field assignment: poison is moot.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The round loop took `round` from the queue: it counts as running
    /// from now on. Clears any earlier abort.
    pub fn claim(&self, round: u64) {
        let mut state = self.state();
        self.abort.send_replace(false);
        state.claimed = Some(round);
    }

    /// The round loop is done with its claimed round.
    pub fn release(&self) {
        self.state().claimed = None;
    }

    /// The claimed round, else the round running without a claim.
    pub fn running_round(&self) -> Option<u64> {
        let state = self.state();
        state.claimed.or(state.live.as_ref().map(|l| l.round))
    }

    /// A round attempt of `kind` opened with `members`. An abort requested
    /// since the round was claimed stands; a round run without a claim
    /// starts with no abort.
    pub fn begin(&self, round: u64, attempt: u32, kind: RoundKind, members: Vec<String>) {
        let mut state = self.state();
        if state.claimed != Some(round) {
            self.abort.send_replace(false);
        }
        self.metrics.round_started(kind);
        state.timing = Some((kind, Instant::now()));
        let now = now_ms();
        state.live = Some(LiveRound {
            round,
            attempt,
            stage: stage::TRAINING,
            members,
            dropped: BTreeMap::new(),
            started_unix_ms: now,
            stage_started_unix_ms: now,
        });
    }

    /// The running round entered `name` (one of [`stage::ALL`]).
    pub async fn enter(&self, name: &'static str) {
        let round = {
            let mut state = self.state();
            let state = &mut *state;
            let Some(live) = state.live.as_mut() else {
                return;
            };
            // A round opens in its first stage; entering it again (as
            // rounds do right after opening) times nothing.
            if let Some((_, started)) = state.timing.as_mut().filter(|_| live.stage != name) {
                self.metrics
                    .stage_done(live.stage, started.elapsed().as_secs_f64());
                *started = Instant::now();
            }
            live.stage = name;
            live.stage_started_unix_ms = now_ms();
            live.round
        };
        tracing::info!(round, stage = name, "stage");
        match pause_at(round, name) {
            None => {}
            Some(Pause::Forever) => {
                tracing::warn!(round, stage = name, "fault point reached; pausing");
                std::future::pending::<()>().await;
            }
            Some(Pause::For(pause)) => {
                tracing::warn!(
                    round,
                    stage = name,
                    pause_ms = pause.as_millis() as u64,
                    "fault point reached; stalling"
                );
                tokio::time::sleep(pause).await;
            }
        }
    }

    pub fn dropped(&self, participant: &str, reason: &str) {
        if let Some(live) = self.state().live.as_mut()
            && !live.dropped.contains_key(participant)
        {
            self.metrics.dropout(live.stage, reason);
            live.dropped
                .insert(participant.to_string(), reason.to_string());
        }
    }

    /// The round ended without completing (or was never opened).
    pub fn finish(&self) {
        self.close(false);
    }

    /// The round completed: its model or conclusion is stored.
    pub fn complete(&self) {
        self.close(true);
    }

    fn close(&self, completed: bool) {
        let mut state = self.state();
        let live = state.live.take();
        if let (Some(live), Some((kind, started))) = (live, state.timing.take()) {
            self.metrics
                .stage_done(live.stage, started.elapsed().as_secs_f64());
            if completed {
                self.metrics.round_completed(kind);
            } else {
                self.metrics.round_aborted(kind);
            }
        }
    }

    pub fn snapshot(&self) -> Option<LiveRound> {
        self.state().live.clone()
    }

    /// Asks the running (or claimed) round to stop; false if none runs.
    pub fn request_abort(&self) -> bool {
        let state = self.state();
        let running = state.live.is_some() || state.claimed.is_some();
        if running {
            self.abort.send_replace(true);
        }
        running
    }

    /// Resolves once an abort has been requested for the running round.
    pub async fn aborted(&self) {
        let mut rx = self.abort.subscribe();
        let _ = rx.wait_for(|requested| *requested).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tracks_stages_and_dropouts_and_aborts() {
        let watch = RoundWatch::default();
        assert!(!watch.request_abort(), "nothing runs yet");
        watch.begin(3, 2, RoundKind::Train, vec!["a".into(), "b".into()]);
        watch.enter(stage::SHARE_KEYS).await;
        watch.dropped("b", "missed the deadline");
        watch.dropped("b", "a later reason is not the cause");
        let live = watch.snapshot().unwrap();
        assert_eq!((live.round, live.attempt, live.stage), (3, 2, "share-keys"));
        assert_eq!(live.dropped["b"], "missed the deadline");
        assert!(watch.request_abort());
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.aborted())
            .await
            .expect("abort is seen");
        watch.finish();
        assert!(watch.snapshot().is_none());
        watch.begin(4, 1, RoundKind::Train, vec![]);
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.aborted()).await;
        assert!(pending.is_err(), "a new round starts without the old abort");
    }

    #[tokio::test]
    async fn rounds_stages_and_dropouts_are_counted_once() {
        let metrics = Metrics::new();
        let watch = RoundWatch::with_metrics(metrics.clone());
        watch.begin(1, 1, RoundKind::Moments, vec!["a".into(), "b".into()]);
        watch.enter(stage::TRAINING).await;
        watch.enter(stage::SHARE_KEYS).await;
        watch.dropped("b", "missed the deadline of stage 2");
        watch.dropped("b", "disconnected at stage 3");
        watch.finish();
        watch.begin(2, 1, RoundKind::Train, vec!["a".into()]);
        watch.enter(stage::MODEL_UPDATE).await;
        watch.complete();
        // Closing again (the loop's own finish) counts nothing more.
        watch.finish();
        let text = metrics.encode();
        for line in [
            "fedsoc_coordinator_rounds_started_total{kind=\"moments\"} 1",
            "fedsoc_coordinator_rounds_aborted_total{kind=\"moments\"} 1",
            "fedsoc_coordinator_rounds_completed_total{kind=\"moments\"} 0",
            "fedsoc_coordinator_rounds_started_total{kind=\"train\"} 1",
            "fedsoc_coordinator_rounds_completed_total{kind=\"train\"} 1",
            "fedsoc_coordinator_rounds_aborted_total{kind=\"train\"} 0",
            "fedsoc_coordinator_stage_duration_seconds_count{stage=\"training\"} 2",
            "fedsoc_coordinator_stage_duration_seconds_count{stage=\"share-keys\"} 1",
            "fedsoc_coordinator_stage_duration_seconds_count{stage=\"model-update\"} 1",
            "fedsoc_coordinator_dropouts_total{stage=\"share-keys\",reason=\"deadline\"} 1",
            "fedsoc_coordinator_dropouts_total{stage=\"share-keys\",reason=\"disconnected\"} 0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
    }

    #[tokio::test]
    async fn a_claimed_round_counts_as_running_and_keeps_an_early_abort() {
        let watch = RoundWatch::default();
        watch.claim(5);
        assert_eq!(watch.running_round(), Some(5));
        assert!(watch.snapshot().is_none(), "claimed, not open yet");
        assert!(watch.request_abort(), "a claimed round can be aborted");
        watch.begin(5, 1, RoundKind::Train, vec!["a".into()]);
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.aborted())
            .await
            .expect("the abort requested before the round opened stands");
        watch.finish();
        assert_eq!(watch.running_round(), Some(5), "claimed until released");
        watch.release();
        assert_eq!(watch.running_round(), None);
        assert!(!watch.request_abort());
        // A new claim starts without the old abort.
        watch.claim(5);
        watch.begin(5, 2, RoundKind::Train, vec![]);
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.aborted()).await;
        assert!(pending.is_err());
    }
}
