//! The `Federation` gRPC service: admits a participant's stream.
//!
//! Admission checks, in order: the TLS layer has verified the client
//! certificate against the federation CA; the certificate names a
//! participant; that participant is on the roster; its first message is a
//! `Hello` with our protocol version and its own id. Only then does the
//! stream join the [`Registry`]. Each refusal says why and what to do.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedsoc_pki::{Identity, Role};
use fedsoc_proto::v1::federation_server::Federation;
use fedsoc_proto::v1::{
    CoordinatorMessage, ParticipantMessage, Welcome, coordinator_message, participant_message,
};
use fedsoc_proto::{PROTOCOL_VERSION, session_end};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::federation::FederationSpec;
use crate::registry::{Evicted, Link, Registry};

/// How long a new stream may take to say Hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages buffered towards one participant.
const OUTBOX_DEPTH: usize = 16;
/// How long a replaced session's stream may take to accept the notice
/// that says why it ends.
const REPLACED_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many messages one session may send: a burst, then a steady rate.
/// An honest participant sends a handful per stage (vectors travel in
/// 1 MiB chunks); a flood is cut off with `RESOURCE_EXHAUSTED`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub burst: f64,
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 2048.0,
            per_second: 512.0,
        }
    }
}

/// A token bucket: `take` is false once the session is over its rate.
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            tokens: limit.burst,
            last: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.limit.per_second;
        self.tokens = (self.tokens + refill).min(self.limit.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct FederationService {
    pub spec: Arc<FederationSpec>,
    /// Certificates revoked by the CA, re-read when the CRL changes.
    pub revocations: Option<Arc<fedsoc_pki::Revocations>>,
    /// The CRL sent in Welcome, for participants to check us against.
    pub crl: Option<Arc<crate::crl::CrlGate>>,
    pub roster: Arc<Vec<String>>,
    pub registry: Registry,
    /// Our certificate (DER), sent in Welcome: its key signs checkpoints.
    pub certificate: Arc<Vec<u8>>,
    pub rate_limit: RateLimit,
    /// Takes participants' checkpoint cosignatures (ignored without).
    pub witnesses: Option<Arc<crate::witness::Witnesses>>,
    /// Counts refused sessions by reason.
    pub metrics: crate::metrics::Metrics,
    next_session: AtomicU64,
}

impl FederationService {
    pub fn new(
        spec: Arc<FederationSpec>,
        roster: Arc<Vec<String>>,
        registry: Registry,
        certificate: Arc<Vec<u8>>,
    ) -> Self {
        FederationService {
            spec,
            revocations: None,
            crl: None,
            roster,
            registry,
            certificate,
            rate_limit: RateLimit::default(),
            witnesses: None,
            metrics: crate::metrics::Metrics::default(),
            next_session: AtomicU64::new(1),
        }
    }
}

/// The verified identity behind a request's client certificate, refused
/// if the CA has revoked it.
pub fn peer_identity<T>(
    request: &Request<T>,
    revocations: Option<&fedsoc_pki::Revocations>,
) -> Result<Identity, Status> {
    let leaf = peer_certificate(request)?;
    let identity =
        fedsoc_pki::identity_from_der(&leaf).map_err(|e| Status::unauthenticated(e.to_string()))?;
    if let Some(revocations) = revocations
        && let Err(e) = revocations.check(&leaf)
    {
        tracing::warn!(peer = %identity, error = %e, "refused: revoked certificate");
        return Err(Status::permission_denied(e.to_string()));
    }
    Ok(identity)
}

/// The client certificate (DER) that TLS verified against the CA.
fn peer_certificate<T>(request: &Request<T>) -> Result<Vec<u8>, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate: connect with mutual TLS"))?;
    certs
        .first()
        .map(|c| c.to_vec())
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))
}

/// Checks the Hello against the certificate and protocol version.
/// Checks the Hello; returns the participant's last checkpoint size.
/// What a Hello tells the coordinator: the participant's last checkpoint
/// size, and whether it wants each completed round's bundle.
fn check_hello(
    first: Option<ParticipantMessage>,
    identity: &Identity,
) -> Result<(u64, bool), Status> {
    let hello = match first.and_then(|m| m.body) {
        Some(participant_message::Body::Hello(hello)) => hello,
        _ => {
            return Err(Status::invalid_argument(
                "the first message of a session must be Hello",
            ));
        }
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version {} is not supported: this coordinator speaks version {}; \
             install a participant of the same fedsoc release",
            hello.protocol_version, PROTOCOL_VERSION
        )));
    }
    if hello.participant_id != identity.id {
        return Err(Status::permission_denied(format!(
            "Hello names participant {:?} but the certificate is for {:?}; \
             set the participant id to the one in its certificate",
            hello.participant_id, identity.id
        )));
    }
    Ok((hello.last_checkpoint_size, hello.wants_bundles))
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send>>;

/// Why a session's inbound stream stopped being read.
#[derive(Debug)]
enum End {
    /// The participant closed its side.
    Closed,
    /// The connection broke (reset, TLS or HTTP/2 error).
    Broken(Status),
    /// The session sent more than its rate allows.
    RateLimited,
    /// A newer session of the same participant took this one's place,
    /// from this address.
    Replaced(Option<SocketAddr>),
    /// Nobody reads the link's inbox any more.
    Unread,
}

impl End {
    /// One short phrase for the INFO line that says the participant left.
    fn reason(&self) -> &'static str {
        match self {
            End::Closed => "the participant closed the session",
            End::Broken(status) if status.code() == tonic::Code::Cancelled => {
                "the participant cancelled the session"
            }
            End::Broken(_) => "the connection was lost",
            End::RateLimited => "over the message rate limit",
            End::Replaced(_) => "replaced by a newer session of the same participant",
            End::Unread => "the session's messages were no longer read",
        }
    }
}

/// The participant a session belongs to, for messages handled outside
/// rounds (checkpoint cosignatures).
struct Witness {
    id: String,
    certificate: Vec<u8>,
    witnesses: Option<Arc<crate::witness::Witnesses>>,
}

impl Witness {
    fn cosigned(&self, message: &fedsoc_proto::v1::CheckpointCosignature) {
        let Some(witnesses) = &self.witnesses else {
            return;
        };
        match witnesses.receive(&self.id, &self.certificate, message) {
            Ok(fresh) => {
                tracing::debug!(participant = %self.id, fresh, "checkpoint cosignature received")
            }
            Err(reason) => {
                tracing::warn!(participant = %self.id, %reason, "checkpoint cosignature refused")
            }
        }
    }
}

/// Moves a session's messages to its link's inbox until the stream ends,
/// the session goes over its rate, or a newer session evicts it.
/// Checkpoint cosignatures go to the witnesses instead, in or out of a round.
async fn pump_inbound(
    mut inbound: Streaming<ParticipantMessage>,
    inbox: mpsc::Sender<ParticipantMessage>,
    mut evicted: Evicted,
    mut bucket: Bucket,
    witness: Witness,
) -> End {
    let mut watching = true;
    let end = loop {
        tokio::select! {
            biased;
            by = &mut evicted, if watching => match by {
                Ok(by) => return End::Replaced(by),
                Err(_) => watching = false,
            },
            // A link the coordinator dropped (shutdown) ends the session.
            () = inbox.closed() => break End::Unread,
            message = inbound.message() => match message {
                Ok(Some(_)) if !bucket.take() => break End::RateLimited,
                Ok(Some(ParticipantMessage {
                    body: Some(participant_message::Body::Cosignature(cosigned)),
                })) => witness.cosigned(&cosigned),
                Ok(Some(message)) => {
                    if inbox.send(message).await.is_err() {
                        break End::Unread;
                    }
                }
                Ok(None) => break End::Closed,
                Err(status) => break End::Broken(status),
            },
        }
    };
    // An eviction drops the old link, and with it its inbox: say
    // "replaced" rather than "unread" when that is what happened.
    match (end, watching) {
        (End::Unread, true) => match evicted.try_recv() {
            Ok(by) => End::Replaced(by),
            Err(_) => End::Unread,
        },
        (end, _) => end,
    }
}

/// The status that ends a session a newer one replaced: it names where the
/// newer one came from, and carries [`session_end::REPLACED`] so that the
/// agent stops instead of taking its place back.
pub fn replaced_status(id: &str, by: Option<SocketAddr>) -> Status {
    let from = by.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
    let mut status = Status::aborted(format!(
        "another agent with the same certificate (participant {id}) connected from {from} \
         and took over this session; only one agent may run per participant id"
    ));
    let metadata = status.metadata_mut();
    metadata.insert(
        session_end::KEY,
        MetadataValue::from_static(session_end::REPLACED),
    );
    if let Some(Ok(value)) = by.map(|a| a.to_string().parse()) {
        metadata.insert(session_end::REPLACED_BY, value);
    }
    status
}

#[tonic::async_trait]
impl Federation for FederationService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<ParticipantMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        // Each refusal is counted by its reason, a fixed word.
        let refused = |reason: &'static str| {
            move |status: Status| {
                self.metrics.refused(reason);
                status
            }
        };
        let identity = peer_identity(&request, self.revocations.as_deref()).map_err(|status| {
            let reason = match status.code() {
                tonic::Code::PermissionDenied => "revoked",
                _ => "certificate",
            };
            refused(reason)(status)
        })?;
        let certificate = peer_certificate(&request).map_err(refused("certificate"))?;
        if identity.role != Role::Participant {
            self.metrics.refused("role");
            return Err(Status::permission_denied(format!(
                "a {} certificate cannot join rounds; participants need a participant certificate",
                identity.role
            )));
        }
        if !self.roster.contains(&identity.id) {
            tracing::warn!(participant = %identity.id, "refused: not on the roster");
            self.metrics.refused("not_on_roster");
            return Err(Status::permission_denied(format!(
                "participant {:?} is not on the roster of federation {:?}; \
                 ask the coordinator operator to add it",
                identity.id, self.spec.federation
            )));
        }
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(first)) => first,
            Ok(Err(status)) => return Err(status),
            Err(_) => {
                return Err(refused("no_hello")(Status::deadline_exceeded(
                    "no Hello within 10 seconds of opening the session",
                )));
            }
        };
        let (audit_size, wants_bundles) =
            check_hello(first, &identity).map_err(refused("bad_hello"))?;

        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_DEPTH);
        let welcome = CoordinatorMessage {
            body: Some(coordinator_message::Body::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                federation: self.spec.federation.clone(),
                model: Some(self.spec.model_spec()),
                encoder_spec_json: self.spec.in_force.get().json.to_string(),
                coordinator_certificate_der: self.certificate.to_vec(),
                crl_der: self
                    .crl
                    .as_ref()
                    .map(|gate| gate.current_der())
                    .unwrap_or_default(),
            })),
        };
        outbox
            .send(Ok(welcome))
            .await
            .map_err(|_| Status::cancelled("participant left during the handshake"))?;

        let (inbox_tx, inbox) = mpsc::channel(OUTBOX_DEPTH);
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let refusals = outbox.clone();
        let certificate_for_witness = certificate.clone();
        let evicted = self.registry.insert(
            Link {
                id: identity.id.clone(),
                session,
                certificate,
                outbox,
                inbox,
                audit_size,
                wants_bundles,
            },
            peer,
        );
        tracing::info!(participant = %identity.id, session, "joined");

        // Moves inbound messages to the link until the stream ends or a
        // newer session of the same participant takes its place; the
        // round that holds the link then sees its inbox close.
        let registry = self.registry.clone();
        let bucket = Bucket::new(self.rate_limit);
        let witness = Witness {
            id: identity.id.clone(),
            certificate: certificate_for_witness,
            witnesses: self.witnesses.clone(),
        };
        tokio::spawn(async move {
            let end = pump_inbound(inbound, inbox_tx, evicted, bucket, witness).await;
            let id = &identity.id;
            match &end {
                End::Replaced(by) => {
                    // Bounded: a participant that stopped reading must not
                    // hold this task forever.
                    let sent = tokio::time::timeout(
                        REPLACED_NOTICE_TIMEOUT,
                        refusals.send(Err(replaced_status(id, *by))),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        tracing::debug!(participant = %id, session, "the replaced session did not take its notice");
                    }
                }
                End::RateLimited => {
                    tracing::warn!(participant = %id, session, "over the message rate limit; session closed");
                    let _ = refusals.try_send(Err(Status::resource_exhausted(
                        "over the message rate limit of this session; reconnect and send \
                         only what the round asks for",
                    )));
                }
                End::Broken(status) => {
                    // The transport's own words (h2, rustls) are long and
                    // rarely actionable: kept for debugging only.
                    tracing::debug!(participant = %id, session, code = ?status.code(), detail = %status, "stream error");
                }
                End::Closed | End::Unread => {}
            }
            tracing::info!(participant = %id, session, reason = end.reason(), "left");
            registry.disconnected(id, session);
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(outbox_rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut bucket = Bucket::new(RateLimit {
            burst: 3.0,
            per_second: 0.001,
        });
        assert!(bucket.take() && bucket.take() && bucket.take());
        assert!(!bucket.take(), "the burst is spent");
    }

    #[test]
    fn a_replaced_session_is_told_why_and_from_where() {
        let from: SocketAddr = "192.0.2.7:50001".parse().unwrap();
        let status = replaced_status("soc-de", Some(from));
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(
            status.metadata().get(session_end::KEY).unwrap(),
            session_end::REPLACED
        );
        assert_eq!(
            status.metadata().get(session_end::REPLACED_BY).unwrap(),
            "192.0.2.7:50001"
        );
        assert!(
            status
                .message()
                .contains("(participant soc-de) connected from 192.0.2.7:50001"),
            "{status:?}"
        );
        let unknown = replaced_status("soc-de", None);
        assert!(unknown.metadata().get(session_end::REPLACED_BY).is_none());
        assert!(unknown.message().contains("from an unknown address"));
    }

    #[test]
    fn a_broken_stream_is_a_short_reason_not_the_transport_dump() {
        let raw = Status::unknown(
            "h2 protocol error: error reading a body from connection: stream error received",
        );
        let reason = End::Broken(raw).reason();
        assert_eq!(reason, "the connection was lost");
        assert_eq!(
            End::Broken(Status::cancelled("h2")).reason(),
            "the participant cancelled the session"
        );
    }
}
