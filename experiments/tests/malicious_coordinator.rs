//! A coordinator that proposes secure-aggregation parameters below what a
//! member accepts, against real participant agents over gRPC and mutual
//! TLS. The coordinator picks n, k, t and c; each member holds the round to
//! its own floor from participant.toml (`[secure_aggregation]`), so a
//! coordinator cannot talk it into a round where the split-survivor-list
//! attack works (see `secagg/tests/malicious_server.rs` for the attack on
//! the state machines).

use std::time::Duration;

use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec, RandomUpdatePlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_refuse_rounds_below_their_own_floor() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = LocalFederationSpec::new(dir.path(), 5);
    spec.rows = 100;
    spec.hidden = vec![8, 4];
    spec.min_participants = 5;
    spec.round_timeout = Duration::from_secs(10);
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 50,
        scale: 0.1,
        vanishing: 0,
    });
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let ids = federation.participant_ids();
    // Member 0 wants at least six members; member 1 wants one colluder
    // tolerated. The coordinator proposes five members and c = 0.
    federation
        .participant_config_mut(0)
        .secure_aggregation
        .min_members = 6;
    federation
        .participant_config_mut(1)
        .secure_aggregation
        .colluders = 1;
    for (index, id) in ids.iter().enumerate().take(2) {
        assert!(
            federation
                .kill_and_wait_gone(id, Duration::from_secs(60))
                .await
        );
        federation.start_participant(index).unwrap();
    }
    assert!(
        federation
            .coordinator
            .wait_for_participants(5, Duration::from_secs(60))
            .await
    );
    let report = federation.coordinator.run_next_round().await.unwrap();
    let mut included = report.included.clone();
    included.sort();
    let mut want = ids[2..].to_vec();
    want.sort();
    assert_eq!(included, want, "dropped: {:?}", report.dropped);
    let reason = |id: &str| {
        report
            .dropped
            .iter()
            .find(|d| d.participant == id)
            .map(|d| d.reason.clone())
            .unwrap_or_default()
    };
    let r0 = reason(&ids[0]);
    assert!(
        r0.contains("5 members, fewer than the 6") && r0.contains("min_members"),
        "{r0}"
    );
    let r1 = reason(&ids[1]);
    assert!(
        r1.contains("tolerates 0 colluding members, fewer than the 1") && r1.contains("colluders"),
        "{r1}"
    );
    federation.shutdown().await;
}
