//! The round running now, as the admin service shows it, and the switch a
//! data scientist uses to abandon it.
//!
//! Rounds report their stages here; `Status` reads a snapshot and
//! `StopRounds { abort_current }` flips the abort switch, which the round
//! notices at its next wait and closes as aborted in the audit log.
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
    live: Arc<Mutex<Option<LiveRound>>>,
    abort: Arc<watch::Sender<bool>>,
}

impl Default for RoundWatch {
    fn default() -> Self {
        RoundWatch {
            live: Arc::default(),
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
    fn lock(&self) -> MutexGuard<'_, Option<LiveRound>> {
        // Every update is a field assignment: poison is moot.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A round attempt opened with `members`; clears any earlier abort.
    pub fn begin(&self, round: u64, attempt: u32, members: Vec<String>) {
        self.abort.send_replace(false);
        let now = now_ms();
        *self.lock() = Some(LiveRound {
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
            let mut live = self.lock();
            let Some(live) = live.as_mut() else { return };
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
        if let Some(live) = self.lock().as_mut() {
            live.dropped
                .entry(participant.to_string())
                .or_insert_with(|| reason.to_string());
        }
    }

    /// The round ended, however it ended.
    pub fn finish(&self) {
        *self.lock() = None;
    }

    pub fn snapshot(&self) -> Option<LiveRound> {
        self.lock().clone()
    }

    /// Asks the running round to stop; false if none runs.
    pub fn request_abort(&self) -> bool {
        let running = self.lock().is_some();
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
}
