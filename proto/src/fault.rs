//! Fault points for process-level tests, shared by coordinator and
//! participants: `FEDSOC_FAULT_PAUSE_AT=ROUND:STAGE[:SECONDS]` makes the
//! process stop dead (or stall for SECONDS) when round ROUND reaches STAGE,
//! so a test can `kill -9` it, or watch the others' deadlines fire, at a
//! known point of the protocol. Unset, nothing changes; set, a peer gains
//! nothing: the process only goes quiet.

use std::time::Duration;

/// The environment variable naming a fault point.
pub const FAULT_PAUSE_ENV: &str = "FEDSOC_FAULT_PAUSE_AT";

/// Stage names, in protocol order, as logs, status and fault points use them.
pub mod stage {
    /// Tasks out, local training, key advertisements (secure) or updates (plaintext).
    pub const TRAINING: &str = "training";
    /// Secure rounds: the advertisers reveal the nonces the graph is drawn from.
    pub const GRAPH_SEED: &str = "graph-seed";
    pub const SHARE_KEYS: &str = "share-keys";
    pub const MASKED_INPUT: &str = "masked-input";
    pub const CONSISTENCY: &str = "consistency";
    pub const UNMASK: &str = "unmask";
    /// Coordinator only: the aggregate is known; the new model is being
    /// written to the audit log and the store.
    pub const MODEL_UPDATE: &str = "model-update";
    /// Every stage, in order.
    pub const ALL: [&str; 7] = [
        TRAINING,
        GRAPH_SEED,
        SHARE_KEYS,
        MASKED_INPUT,
        CONSISTENCY,
        UNMASK,
        MODEL_UPDATE,
    ];

    /// The stage a secure-aggregation message number starts (see
    /// [`crate::secagg_stage`]).
    pub fn of_secagg(stage_no: u32) -> &'static str {
        match stage_no {
            crate::secagg_stage::ADVERTISE_KEYS => TRAINING,
            crate::secagg_stage::REVEAL_SEED => GRAPH_SEED,
            crate::secagg_stage::SHARE_KEYS => SHARE_KEYS,
            crate::secagg_stage::MASKED_INPUT => MASKED_INPUT,
            crate::secagg_stage::CONSISTENCY => CONSISTENCY,
            _ => UNMASK,
        }
    }
}

/// What a fault point asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    Forever,
    For(Duration),
}

/// The pause configured for `round` entering `stage`, if any.
pub fn pause_at(round: u64, stage: &str) -> Option<Pause> {
    parse(&std::env::var(FAULT_PAUSE_ENV).ok()?, round, stage)
}

fn parse(value: &str, round: u64, stage: &str) -> Option<Pause> {
    let mut parts = value.split(':').map(str::trim);
    let at_round: u64 = parts.next()?.parse().ok()?;
    let at_stage = parts.next()?;
    if at_round != round || at_stage != stage {
        return None;
    }
    match parts.next() {
        Some(seconds) => Some(Pause::For(Duration::from_secs_f64(
            seconds.parse::<f64>().ok()?.clamp(0.0, 86_400.0),
        ))),
        None => Some(Pause::Forever),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_round_stage_and_optional_seconds() {
        assert_eq!(parse("2:unmask", 2, "unmask"), Some(Pause::Forever));
        assert_eq!(
            parse("1:share-keys:2.5", 1, "share-keys"),
            Some(Pause::For(Duration::from_millis(2500)))
        );
        assert_eq!(parse("2:unmask", 3, "unmask"), None);
        assert_eq!(parse("2:unmask", 2, "training"), None);
        assert_eq!(parse("x:unmask", 2, "unmask"), None);
        assert_eq!(parse("2:unmask:soon", 2, "unmask"), None);
    }
}
