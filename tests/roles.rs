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
        said.contains("PermissionDenied") && said.contains("participant certificate cannot use the admin service"),
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
