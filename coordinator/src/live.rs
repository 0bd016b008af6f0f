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
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use fedsoc_proto::fault::stage;
use fedsoc_proto::fault::{Pause, pause_at};

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
}

#[derive(Debug, Default)]
struct State {
    /// The round the loop took from the queue, from the claim until the
    /// loop is done with it (it may not have opened yet).
    claimed: Option<u64>,
    live: Option<LiveRound>,
}

impl Default for RoundWatch {
    fn default() -> Self {
        RoundWatch {
            state: Arc::default(),
            abort: Arc::new(watch::channel(false).0),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RoundWatch {
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

    /// A round attempt opened with `members`. An abort requested since
    /// the round was claimed stands; a round run without a claim starts
    /// with no abort.
    pub fn begin(&self, round: u64, attempt: u32, members: Vec<String>) {
        let mut state = self.state();
        if state.claimed != Some(round) {
            self.abort.send_replace(false);
        }
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
            let Some(live) = state.live.as_mut() else {
                return;
            };
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
        if let Some(live) = self.state().live.as_mut() {
            live.dropped
                .entry(participant.to_string())
                .or_insert_with(|| reason.to_string());
        }
    }

    /// The round ended, however it ended.
    pub fn finish(&self) {
        self.state().live = None;
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
        watch.begin(3, 2, vec!["a".into(), "b".into()]);
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
        watch.begin(4, 1, vec![]);
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.aborted()).await;
        assert!(pending.is_err(), "a new round starts without the old abort");
    }

    #[tokio::test]
    async fn a_claimed_round_counts_as_running_and_keeps_an_early_abort() {
        let watch = RoundWatch::default();
        watch.claim(5);
        assert_eq!(watch.running_round(), Some(5));
        assert!(watch.snapshot().is_none(), "claimed, not open yet");
        assert!(watch.request_abort(), "a claimed round can be aborted");
        watch.begin(5, 1, vec!["a".into()]);
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
        watch.begin(5, 2, vec![]);
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.aborted()).await;
        assert!(pending.is_err());
    }
}
