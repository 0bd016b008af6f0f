//! The `Admin` gRPC service: data scientists queue rounds; data scientists
//! and auditors read status. Callers are known by their certificates and
//! must be on the roster under the role their certificate names.

use std::sync::Arc;

use fedsoc_pki::Role;
use fedsoc_proto::v1::admin_server::Admin;
use fedsoc_proto::v1::{
    LiveRound, RoundSummary, StartRoundsReply, StartRoundsRequest, StatusReply, StatusRequest,
    StopRoundsReply, StopRoundsRequest,
};
use tonic::{Request, Response, Status};

use crate::config::Roster;
use crate::server::Shared;
use crate::session::peer_identity;

/// Most rounds one request may queue: a typo should not commit a
/// federation to a year of training.
pub const MAX_QUEUED_ROUNDS: u32 = 10_000;

pub struct AdminService {
    pub shared: Arc<Shared>,
    pub roster: Arc<Roster>,
    pub min_participants: usize,
    pub revocations: Option<Arc<fedsoc_pki::Revocations>>,
}

impl AdminService {
    fn authorize<T>(&self, request: &Request<T>, allowed: &[Role]) -> Result<(), Status> {
        let identity = peer_identity(request, self.revocations.as_deref())?;
        let listed = match identity.role {
            Role::DataScientist => &self.roster.data_scientists,
            Role::Auditor => &self.roster.auditors,
            _ => {
                return Err(Status::permission_denied(format!(
                    "a {} certificate cannot use the admin service",
                    identity.role
                )));
            }
        };
        if !allowed.contains(&identity.role) {
            return Err(Status::permission_denied(format!(
                "{} may not do this; it needs one of: {}",
                identity,
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !listed.contains(&identity.id) {
            return Err(Status::permission_denied(format!(
                "{identity} is not on the federation's roster"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn start_rounds(
        &self,
        request: Request<StartRoundsRequest>,
    ) -> Result<Response<StartRoundsReply>, Status> {
        self.authorize(&request, &[Role::DataScientist])?;
        let request = request.into_inner();
        let rounds = request.rounds;
        if rounds == 0 || rounds > MAX_QUEUED_ROUNDS {
            return Err(Status::invalid_argument(format!(
                "rounds must be between 1 and {MAX_QUEUED_ROUNDS}, got {rounds}"
            )));
        }
        let kinds = crate::kind::RoundKind::requested(&request.kind, rounds)
            .map_err(Status::invalid_argument)?;
        if kinds.iter().any(|k| k.is_sum()) && !self.shared.secure {
            return Err(Status::failed_precondition(
                "statistics and calibrate rounds run only over secure aggregation; this \
                 coordinator is configured for plaintext aggregation",
            ));
        }
        let queued = self
            .shared
            .queue_kinds(&kinds)
            .map_err(|e| Status::internal(e.to_string()))?;
        let connected = self.shared.registry.connected();
        let offline: Vec<String> = self
            .roster
            .participants
            .iter()
            .filter(|id| !connected.contains(id))
            .cloned()
            .collect();
        let online = self.roster.participants.len() - offline.len();
        if online < self.min_participants {
            tracing::warn!(
                rounds,
                queued,
                online,
                need = self.min_participants,
                offline = %offline.join(","),
                "rounds queued, but only {online} participants are online and a round needs {}; they run once enough connect",
                self.min_participants
            );
        } else {
            tracing::info!(rounds, queued, online, "rounds queued");
        }
        Ok(Response::new(StartRoundsReply {
            queued,
            online: online as u32,
            roster_size: self.roster.participants.len() as u32,
            min_participants: self.min_participants as u32,
            offline,
        }))
    }

    async fn stop_rounds(
        &self,
        request: Request<StopRoundsRequest>,
    ) -> Result<Response<StopRoundsReply>, Status> {
        self.authorize(&request, &[Role::DataScientist])?;
        let abort = request.into_inner().abort_current;
        let stopped = self
            .shared
            .stop_rounds(abort)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(
            dequeued = stopped.dequeued,
            running = stopped.running.unwrap_or(0),
            aborted_running = stopped.aborted,
            "rounds stopped"
        );
        Ok(Response::new(StopRoundsReply {
            dequeued: stopped.dequeued,
            aborted_running: stopped.aborted,
            running_round: stopped.running.unwrap_or(0),
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        self.authorize(&request, &[Role::DataScientist, Role::Auditor])?;
        let status = self.shared.status();
        Ok(Response::new(StatusReply {
            federation: self.shared.spec.federation.clone(),
            completed_rounds: status.completed_round,
            queued_rounds: status.queued(),
            running: self.shared.running().map(|live| LiveRound {
                round: live.round,
                attempt: live.attempt,
                stage: live.stage.to_string(),
                kind: self.shared.kind_of(live.round).name().into(),
                members: live.members,
                dropped: live
                    .dropped
                    .iter()
                    .map(|(p, why)| format!("{p}: {why}"))
                    .collect(),
                started_unix_ms: live.started_unix_ms,
                stage_started_unix_ms: live.stage_started_unix_ms,
            }),
            min_participants: self.min_participants as u32,
            roster: self.roster.participants.clone(),
            halted: status.halted.clone().unwrap_or_default(),
            connected: self.shared.registry.connected(),
            recent: status
                .recent
                .iter()
                .map(|r| RoundSummary {
                    round: r.round,
                    included: r.included.clone(),
                    dropped: r
                        .dropped
                        .iter()
                        .map(|(p, why)| format!("{p}: {why}"))
                        .collect(),
                    mean_loss: r.mean_loss,
                    samples: r.samples,
                    model_sha256: r.model_sha256.clone(),
                    kind: r.kind.name().into(),
                })
                .collect(),
        }))
    }
}
