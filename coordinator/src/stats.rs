//! Where a round's time and bytes went, stage by stage: what `fedsoc
//! bench` reports and what an operator reads when a round is slow.

use std::time::Duration;

use serde::Serialize;

/// One stage of a round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStats {
    pub name: &'static str,
    /// From the stage's first message out to its last message in and the
    /// coordinator's work on it.
    pub wall_s: f64,
    /// Coordinator compute in the stage: handling messages and closing it.
    pub server_compute_s: f64,
}

/// A round's stages and traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoundStats {
    pub stages: Vec<StageStats>,
    /// Members the round started with.
    pub members: usize,
    /// Protobuf payload bytes sent to all members (before TLS framing).
    pub bytes_down: u64,
    /// Protobuf payload bytes received from all members.
    pub bytes_up: u64,
    /// Mask vectors the coordinator expanded to unmask (secure rounds).
    pub masks_expanded: usize,
    /// Messages refused because they belong to another stage or task, or
    /// repeat one already taken (late, replayed or out of order).
    pub ignored_messages: u64,
}

impl RoundStats {
    pub fn stage(&mut self, name: &'static str, wall: Duration, server_compute: Duration) {
        self.stages.push(StageStats {
            name,
            wall_s: wall.as_secs_f64(),
            server_compute_s: server_compute.as_secs_f64(),
        });
    }

    pub fn server_compute_s(&self) -> f64 {
        self.stages.iter().map(|s| s.server_compute_s).sum()
    }

    /// Mean bytes per member, each way: (down, up).
    pub fn bytes_per_member(&self) -> (f64, f64) {
        let n = self.members.max(1) as f64;
        (self.bytes_down as f64 / n, self.bytes_up as f64 / n)
    }
}
