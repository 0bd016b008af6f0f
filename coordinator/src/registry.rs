//! The participants connected right now, each with its stream halves.
//!
//! A round takes the links it needs out of the registry, so only one task
//! at a time reads a participant's messages, and gives back those that are
//! still alive. A participant that reconnects replaces its old link.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fedsoc_proto::v1::{CoordinatorMessage, ParticipantMessage};
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// Messages to one participant; an `Err` ends its stream with that status.
pub type Outbox = mpsc::Sender<Result<CoordinatorMessage, Status>>;

/// One participant's live session.
#[derive(Debug)]
pub struct Link {
    pub id: String,
    /// Distinguishes a reconnected session from the one it replaced.
    pub session: u64,
    /// The participant's certificate (DER), forwarded to the other members
    /// of a secure round so they can check its signing key themselves.
    pub certificate: Vec<u8>,
    pub outbox: Outbox,
    pub inbox: mpsc::Receiver<ParticipantMessage>,
    /// Tree size of the last audit checkpoint the participant holds.
    pub audit_size: u64,
}

impl Link {
    /// Whether both directions of the stream are still open.
    pub fn is_alive(&self) -> bool {
        !self.outbox.is_closed() && !self.inbox.is_closed()
    }
}

#[derive(Clone, Default)]
pub struct Registry {
    links: Arc<Mutex<HashMap<String, Link>>>,
    /// Ids of every participant with a session, in or out of a round.
    connected: Arc<Mutex<HashMap<String, u64>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Registry {
    fn links(&self) -> MutexGuard<'_, HashMap<String, Link>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so poison is moot.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected_map(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.connected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a new session, replacing any older one of the same participant.
    pub fn insert(&self, link: Link) {
        self.connected_map().insert(link.id.clone(), link.session);
        if let Some(old) = self.links().insert(link.id.clone(), link) {
            tracing::info!(participant = %old.id, "replaced by a newer session");
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Forgets a session when its stream ends, unless a newer one replaced it.
    pub fn disconnected(&self, id: &str, session: u64) {
        let mut connected = self.connected_map();
        if connected.get(id) == Some(&session) {
            connected.remove(id);
            drop(connected);
            let mut links = self.links();
            if links.get(id).is_some_and(|l| l.session == session) {
                links.remove(id);
            }
            drop(links);
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// Ids of every connected participant, sorted.
    pub fn connected(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.connected_map().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Takes every live idle link out, sorted by id.
    pub fn take_idle(&self) -> Vec<Link> {
        let mut links = self.links();
        let mut taken: Vec<Link> = links.drain().map(|(_, l)| l).collect();
        drop(links);
        taken.retain(Link::is_alive);
        taken.sort_by(|a, b| a.id.cmp(&b.id));
        taken
    }

    /// Gives a link back after a round, unless it died or was replaced.
    pub fn restore(&self, link: Link) {
        if !link.is_alive() || self.connected_map().get(&link.id) != Some(&link.session) {
            return;
        }
        self.links().entry(link.id.clone()).or_insert(link);
    }

    /// Calls `f` on every idle link (between rounds: all of them).
    pub fn for_each_idle(&self, mut f: impl FnMut(&mut Link)) {
        for link in self.links().values_mut() {
            f(link);
        }
    }

    /// Waits until at least `n` participants are connected, or `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if self.connected_map().len() >= n {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && self.connected_map().len() >= n
    }
}
