//! The participants connected right now, each with its stream halves.
//!
//! A round takes the links it needs out of the registry, so only one task
//! at a time reads a participant's messages, and gives back those that are
//! still alive. A participant that reconnects replaces its old link, and
//! the old session is told so (see [`Registry::insert`]): if the old
//! session is a second agent still running with the same certificate, it
//! learns why it lost its place instead of waiting forever.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fedsoc_proto::v1::{CoordinatorMessage, ParticipantMessage};
use tokio::sync::{mpsc, oneshot, watch};
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
    /// It asked for each completed round's model bundle.
    pub wants_bundles: bool,
}

impl Link {
    /// Whether both directions of the stream are still open.
    pub fn is_alive(&self) -> bool {
        !self.outbox.is_closed() && !self.inbox.is_closed()
    }
}

/// Resolves when a newer session of the same participant takes this
/// one's place, with the address the newer one connected from (if known).
/// Its sender is dropped without a value only once the session is gone.
pub type Evicted = oneshot::Receiver<Option<SocketAddr>>;

/// A participant's current session, in or out of a round.
#[derive(Debug)]
struct Seat {
    session: u64,
    /// Tells the session it was replaced.
    evict: oneshot::Sender<Option<SocketAddr>>,
}

#[derive(Clone, Default)]
pub struct Registry {
    links: Arc<Mutex<HashMap<String, Link>>>,
    /// Every participant with a session, in or out of a round.
    connected: Arc<Mutex<HashMap<String, Seat>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Registry {
    fn links(&self) -> MutexGuard<'_, HashMap<String, Link>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so poison is moot.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected_map(&self) -> MutexGuard<'_, HashMap<String, Seat>> {
        self.connected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current session of participant `id`.
    fn session_of(&self, id: &str) -> Option<u64> {
        self.connected_map().get(id).map(|seat| seat.session)
    }

    /// Adds a new session from `peer`, replacing any older one of the same
    /// participant; the older session's [`Evicted`] then resolves with
    /// `peer`, so it can close its stream and say why. Returns this
    /// session's own [`Evicted`].
    pub fn insert(&self, link: Link, peer: Option<SocketAddr>) -> Evicted {
        let (evict, evicted) = oneshot::channel();
        let id = link.id.clone();
        let session = link.session;
        let old = self
            .connected_map()
            .insert(id.clone(), Seat { session, evict });
        if let Some(old) = old.filter(|old| old.session != session) {
            let from = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
            tracing::info!(
                participant = %id,
                session,
                replaced_session = old.session,
                peer = %from,
                "participant {id}'s session was replaced by a newer one from {from}"
            );
            // Told before its link is dropped below, so that the old
            // session knows why its inbox closed. It may have ended
            // already; then nobody listens.
            let _ = old.evict.send(peer);
        }
        // The old link, if idle, goes; one in a round is refused back by
        // `restore`, since its session is no longer the current one.
        self.links().insert(id, link);
        self.changed.send_modify(|v| *v += 1);
        evicted
    }

    /// Forgets a session when its stream ends, unless a newer one replaced it.
    pub fn disconnected(&self, id: &str, session: u64) {
        let mut connected = self.connected_map();
        if connected.get(id).map(|seat| seat.session) == Some(session) {
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
        if !link.is_alive() || self.session_of(&link.id) != Some(link.session) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, session: u64) -> Link {
        let (outbox, _) = mpsc::channel(1);
        let (_, inbox) = mpsc::channel(1);
        Link {
            id: id.into(),
            session,
            certificate: Vec::new(),
            outbox,
            inbox,
            audit_size: 0,
            wants_bundles: false,
        }
    }

    #[test]
    fn a_newer_session_evicts_the_older_one_and_names_its_address() {
        let registry = Registry::default();
        let mut first = registry.insert(link("soc-0", 1), None);
        let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let mut second = registry.insert(link("soc-0", 2), Some(peer));
        assert_eq!(first.try_recv(), Ok(Some(peer)));
        assert!(second.try_recv().is_err(), "the newer session stays");
        // The old session's end does not take the newer one's place.
        registry.disconnected("soc-0", 1);
        assert_eq!(registry.connected(), vec!["soc-0".to_string()]);
        assert_eq!(second.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        registry.disconnected("soc-0", 2);
        assert!(registry.connected().is_empty());
    }

    #[test]
    fn other_participants_are_not_evicted() {
        let registry = Registry::default();
        let mut a = registry.insert(link("soc-0", 1), None);
        let _b = registry.insert(link("soc-1", 2), None);
        assert_eq!(a.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(registry.connected().len(), 2);
    }
}
