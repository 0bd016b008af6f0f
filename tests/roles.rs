//! Roles are enforced by certificate, against real processes: only a data
//! scientist starts or stops rounds, an auditor only reads status, a
//! participant only joins, and a revoked participant is refused on its
//! next connection without a coordinator restart.

mod support;

use std::time::Duration;

use support::cluster::{Cluster, ClusterSpec};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_certificate_does_only_what_its_role_allows() {
    let mut cluster = Cluster::new(&ClusterSpec {
        participants: 3,
        min_participants: 2,
        ..ClusterSpec::default()
    });
    cluster.start_coordinator(None);
    cluster.start_all_participants();

    // A participant certificate cannot start, stop or even read rounds.
    let out = cluster.round_command("soc-0", &["start", "--rounds", "1"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("PermissionDenied")
            && said.contains("participant certificate cannot use the admin service"),
        "{said}"
    );
    // An auditor reads status but cannot start or stop rounds.
    let out = cluster.round_command("auditor", &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("federation faults"));
    for args in [&["start", "--rounds", "1"][..], &["stop"][..]] {
        let out = cluster.round_command("auditor", args);
        assert!(!out.status.success());
        let said = stderr(&out);
        assert!(
            said.contains("PermissionDenied") && said.contains("needs one of: data-scientist"),
            "{said}"
        );
    }
    // The data scientist can.
    cluster.queue_rounds(1);
    cluster.wait_completed(1, Duration::from_secs(120));

    // An auditor certificate cannot join a round as a participant.
    let root = cluster.path().to_path_buf();
    let text = std::fs::read_to_string(root.join("soc-0.toml"))
        .unwrap()
        .replace("id = \"soc-0\"", "id = \"auditor\"")
        .replace("pki/soc-0.", "pki/auditor.");
    std::fs::write(root.join("as-auditor.toml"), text).unwrap();
    let out = support::cluster::fedsoc()
        .current_dir(&root)
        .args(["participant", "run", "--config", "as-auditor.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an auditor joined a round");
    let said = stderr(&out);
    assert!(
        said.contains("auditor certificate cannot join rounds"),
        "{said}"
    );
}

#[test]
fn a_revoked_participant_is_refused_without_a_coordinator_restart() {
    // Four members, so that the three left after the revocation still make
    // a secure round (it needs at least three).
    let mut cluster = Cluster::new(&ClusterSpec {
        participants: 4,
        min_participants: 3,
        ..ClusterSpec::default()
    });
    cluster.start_coordinator(None);
    cluster.start_all_participants();
    cluster.queue_rounds(1);
    cluster.wait_completed(1, Duration::from_secs(120));

    // The CA revokes soc-2 while its session is open.
    let out = support::cluster::fedsoc()
        .current_dir(cluster.path())
        .args([
            "pki",
            "revoke",
            "soc-2",
            "--dir",
            "pki",
            "--reason",
            "key-compromise",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cluster.path().join("pki/crl.pem").exists());

    // The next round closes its open session; its reconnect is refused
    // and the agent stops for good.
    cluster.queue_rounds(1);
    cluster.wait_completed(2, Duration::from_secs(120));
    cluster.wait_log(
        "coordinator",
        "certificate revoked",
        Duration::from_secs(30),
    );
    cluster.wait_log("soc-2", "revoked", Duration::from_secs(30));
    let round2 = cluster
        .aggregated_rounds()
        .into_iter()
        .find(|r| r.round == 2)
        .unwrap();
    assert!(
        !round2.survivors.contains(&"soc-2".to_string()),
        "{round2:?}"
    );
    assert!(
        cluster.wait_exit("soc-2", Duration::from_secs(30)),
        "a revoked participant keeps retrying"
    );
    let status = cluster.status().unwrap();
    let connected = status["connected"].as_array().unwrap();
    assert!(!connected.iter().any(|c| c == "soc-2"), "{status}");
}

#[test]
fn an_expired_certificate_cannot_connect() {
    let mut cluster = Cluster::new(&ClusterSpec {
        participants: 3,
        min_participants: 2,
        ..ClusterSpec::default()
    });
    // soc-1's certificate expired yesterday.
    let now = time::OffsetDateTime::now_utc();
    cluster
        .ca
        .issue_with_validity(
            &fedsoc_pki::Identity::participant("soc-1").unwrap(),
            &[],
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap()
        .save(&cluster.path().join("pki"), "soc-1")
        .unwrap();
    cluster.start_coordinator(None);
    cluster.start_participant("soc-1", None);
    cluster.wait_log(
        "soc-1",
        "our certificate has expired",
        Duration::from_secs(60),
    );
    assert!(
        cluster.wait_exit("soc-1", Duration::from_secs(30)),
        "an expired certificate is a permanent refusal"
    );
    let status = cluster.status().unwrap();
    assert!(
        status["connected"].as_array().unwrap().is_empty(),
        "{status}"
    );
}
