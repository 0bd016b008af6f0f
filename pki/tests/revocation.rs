//! Issue, revoke and refuse: a PKI folder as the `fedsoc pki` commands keep
//! it, and a running [`Revocations`] following its CRL.

use std::path::Path;

use fedsoc_pki::show::{Shown, show};
use fedsoc_pki::{
    CertificateAuthority, CrlFloor, Identity, PkiDir, PkiError, RevocationList, RevocationReason,
    Revocations, Role, load_certificate_der,
};

fn folder() -> (tempfile::TempDir, PkiDir) {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::generate("revocation-test")
        .unwrap()
        .save(dir.path())
        .unwrap();
    let pki = PkiDir::new(dir.path());
    (dir, pki)
}

fn issue(pki: &PkiDir, role: Role, id: &str) -> Vec<u8> {
    let hosts = if role == Role::Coordinator {
        vec!["localhost".to_string()]
    } else {
        vec![]
    };
    let issued = pki
        .issue(&Identity::new(role, id).unwrap(), &hosts, 30, false)
        .unwrap();
    load_certificate_der(&issued.cert).unwrap()
}

fn ca_pem(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ca.pem")).unwrap()
}

#[test]
fn revoked_certificate_is_refused_and_others_accepted() {
    let (dir, pki) = folder();
    let ee = issue(&pki, Role::Participant, "soc-ee");
    let fr = issue(&pki, Role::Participant, "soc-fr");
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    revocations.check(&ee).unwrap();
    assert_eq!(revocations.crl_number(), 0);

    let outcome = pki
        .revoke("soc-ee", RevocationReason::KeyCompromise)
        .unwrap();
    assert_eq!(outcome.revoked.len(), 1);
    assert_eq!(outcome.crl_number, 1);

    let err = revocations.check(&ee).unwrap_err();
    assert!(matches!(err, PkiError::Revoked { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&outcome.revoked[0]), "{text}");
    assert!(text.contains("participant soc-ee"), "{text}");
    assert!(text.contains("key-compromise"), "{text}");
    assert!(text.contains("new certificate"), "{text}");
    revocations.check(&fr).unwrap();

    // A fresh watcher reads the same list.
    let fresh = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    assert!(fresh.check(&ee).is_err());
    fresh.check(&fr).unwrap();
}

#[test]
fn a_second_revocation_is_picked_up_without_recreating_the_watcher() {
    let (dir, pki) = folder();
    let ee = issue(&pki, Role::Participant, "soc-ee");
    let fr = issue(&pki, Role::Participant, "soc-fr");
    let auditor = issue(&pki, Role::Auditor, "eu-audit");
    pki.revoke("soc-ee", RevocationReason::Superseded).unwrap();
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    assert_eq!(revocations.crl_number(), 1);
    revocations.check(&fr).unwrap();

    // Rewritten within the same second as the first: the watcher still sees it.
    let outcome = pki
        .revoke("soc-fr", RevocationReason::CessationOfOperation)
        .unwrap();
    assert_eq!(outcome.crl_number, 2);
    assert!(revocations.check(&fr).is_err());
    assert!(
        revocations.check(&ee).is_err(),
        "earlier revocations are kept"
    );
    revocations.check(&auditor).unwrap();
    assert_eq!(revocations.crl_number(), 2);
    assert_eq!(revocations.revoked_count(), 2);

    // Revoking again changes nothing and says so.
    let again = pki.revoke("soc-fr", RevocationReason::Unspecified).unwrap();
    assert!(again.revoked.is_empty());
    assert_eq!(again.already_revoked, outcome.revoked);
    assert_eq!(again.crl_number, 2);
}

#[test]
fn many_threads_check_while_the_list_is_rewritten() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let (dir, pki) = folder();
    let ids: Vec<String> = (0..4).map(|i| format!("soc-{i}")).collect();
    let certs: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| issue(&pki, Role::Participant, id))
        .collect();
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    shareable(&revocations);
    std::thread::scope(|scope| {
        for cert in &certs {
            let revocations = &revocations;
            scope.spawn(move || {
                for _ in 0..200 {
                    let _ = revocations.check(cert);
                }
            });
        }
        for id in &ids[..2] {
            pki.revoke(id, RevocationReason::KeyCompromise).unwrap();
        }
    });
    assert!(revocations.check(&certs[0]).is_err());
    assert!(revocations.check(&certs[1]).is_err());
    revocations.check(&certs[2]).unwrap();
    revocations.check(&certs[3]).unwrap();
}

#[test]
fn a_crl_from_another_ca_is_refused_and_the_last_good_list_stays() {
    let (dir, pki) = folder();
    let ee = issue(&pki, Role::Participant, "soc-ee");
    let fr = issue(&pki, Role::Participant, "soc-fr");
    pki.revoke("soc-ee", RevocationReason::KeyCompromise)
        .unwrap();
    let good = std::fs::read(pki.crl_path()).unwrap();
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    assert!(revocations.check(&ee).is_err());

    // Same CA name, different key: an empty list with a higher number.
    let impostor = CertificateAuthority::generate("revocation-test").unwrap();
    let (_, forged) = RevocationList {
        number: 40,
        ..RevocationList::empty()
    }
    .extend_and_sign(&impostor, &[], RevocationReason::Unspecified)
    .unwrap();
    std::fs::write(pki.crl_path(), &forged).unwrap();
    assert!(
        revocations.check(&ee).is_err(),
        "the forged list is refused"
    );
    revocations.check(&fr).unwrap();
    assert_eq!(revocations.crl_number(), 1);

    // Neither garbage nor a deleted file un-revokes anyone.
    std::fs::write(pki.crl_path(), "not a CRL").unwrap();
    assert!(revocations.check(&ee).is_err());
    std::fs::remove_file(pki.crl_path()).unwrap();
    assert!(revocations.check(&ee).is_err());

    // Nor does an older list signed by the right CA (a rollback).
    std::fs::write(pki.crl_path(), &good).unwrap();
    assert!(revocations.check(&ee).is_err());
    let ca = pki.load_ca().unwrap();
    let (_, newer_empty) = RevocationList::empty()
        .extend_and_sign(&ca, &[], RevocationReason::Unspecified)
        .unwrap();
    std::fs::write(pki.crl_path(), &newer_empty).unwrap();
    assert!(
        revocations.check(&ee).is_err(),
        "a different CRL #1 does not replace the CRL #1 in force"
    );

    // At start-up, a present but forged CRL is an error, not "nothing revoked".
    std::fs::write(pki.crl_path(), &forged).unwrap();
    let err = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap_err();
    assert!(matches!(err, PkiError::BadCrl { .. }), "{err}");
    assert!(err.to_string().contains("crl.pem"), "{err}");
    // And `pki revoke` refuses to build on it.
    let err = pki
        .revoke("soc-fr", RevocationReason::Unspecified)
        .unwrap_err();
    assert!(err.to_string().contains("move it away"), "{err}");
}

#[test]
fn a_missing_crl_means_nothing_revoked_until_one_appears() {
    let (dir, pki) = folder();
    let ee = issue(&pki, Role::Participant, "soc-ee");
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    revocations.check(&ee).unwrap();
    pki.revoke("soc-ee", RevocationReason::Unspecified).unwrap();
    let err = revocations.check(&ee).unwrap_err();
    assert!(err.to_string().contains("unspecified"), "{err}");
}

#[test]
fn revoking_an_unknown_id_lists_the_known_ones() {
    let (_dir, pki) = folder();
    issue(&pki, Role::Participant, "soc-ee");
    issue(&pki, Role::Coordinator, "coord");
    let err = pki
        .revoke("soc-xx", RevocationReason::Unspecified)
        .unwrap_err();
    assert!(matches!(err, PkiError::UnknownId { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("soc-xx") && text.contains("coord, soc-ee"),
        "{text}"
    );
    assert!(matches!(
        pki.revoke("../ca", RevocationReason::Unspecified),
        Err(PkiError::BadId(_))
    ));
}

#[test]
fn issuing_keeps_keys_private_serials_unique_and_ids_safe() {
    let (dir, pki) = folder();
    let who = Identity::participant("soc-ee").unwrap();
    let first = pki.issue(&who, &[], 30, false).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:o}", mode);
    }
    let err = pki.issue(&who, &[], 30, false).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyIssued { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    let second = pki.issue(&who, &[], 30, true).unwrap();
    assert_ne!(first.record.serial, second.record.serial);
    assert_eq!(second.record.serial.len(), 32, "128-bit serial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:o}", mode);
    }

    let index = fedsoc_pki::IssuanceIndex::load(dir.path()).unwrap();
    assert_eq!(index.for_id("soc-ee").count(), 2);
    // Revoking the id revokes both: the replaced one may still be out there.
    let outcome = pki.revoke("soc-ee", RevocationReason::Superseded).unwrap();
    assert_eq!(outcome.revoked.len(), 2);

    for reserved in ["ca", "crl", "CA"] {
        let err = pki
            .issue(&Identity::participant(reserved).unwrap(), &[], 30, true)
            .unwrap_err();
        assert!(matches!(err, PkiError::ReservedId(_)), "{err}");
    }
    let err = pki.issue(&who, &[], 0, true).unwrap_err();
    assert!(matches!(err, PkiError::BadValidity(_)), "{err}");
    let err = pki.issue(&who, &[], 36_000, true).unwrap_err();
    assert!(err.to_string().contains("outlive the CA"), "{err}");
}

#[test]
fn show_names_identity_validity_fingerprint_key_and_revocation() {
    let (dir, pki) = folder();
    let issued = pki
        .issue(
            &Identity::new(Role::Coordinator, "coord").unwrap(),
            &["localhost".into(), "127.0.0.1".into()],
            30,
            false,
        )
        .unwrap();
    let Shown::Certificate(summary) = show(&issued.cert, None, None).unwrap() else {
        panic!("a certificate")
    };
    assert_eq!(summary.role.as_deref(), Some("coordinator"));
    assert_eq!(summary.id.as_deref(), Some("coord"));
    assert_eq!(summary.serial, issued.record.serial);
    assert_eq!(summary.fingerprint_sha256, issued.record.fingerprint);
    assert_eq!(summary.key_algorithm, "Ed25519");
    assert_eq!(summary.validity, "valid");
    assert!(
        (29..=30).contains(&summary.days_left),
        "{}",
        summary.days_left
    );
    assert_eq!(summary.hostnames, vec!["localhost", "127.0.0.1"]);
    assert_eq!(summary.signed_by_ca, Some(true));
    assert!(
        summary.subject.contains("coordinator coord"),
        "{}",
        summary.subject
    );
    assert!(summary.issuer.contains("fedsoc CA revocation-test"));
    let none_yet = summary.revocation.as_ref().unwrap();
    assert!(
        !none_yet.revoked && none_yet.crl_number == 0,
        "no crl.pem yet"
    );
    let text = show(&issued.cert, None, None).unwrap().to_text();
    for field in [
        "subject:",
        "role:",
        "id:",
        "serial:",
        "issuer:",
        "not before:",
        "not after:",
        "valid for",
        "sha256:",
        "key:",
        "Ed25519",
        "revocation:",
    ] {
        assert!(text.contains(field), "{field} missing:\n{text}");
    }

    pki.revoke("coord", RevocationReason::KeyCompromise)
        .unwrap();
    let shown = show(&issued.cert, None, None).unwrap();
    let Shown::Certificate(summary) = &shown else {
        panic!("a certificate")
    };
    let revocation = summary.revocation.as_ref().unwrap();
    assert!(revocation.revoked);
    assert_eq!(revocation.reason.as_deref(), Some("key-compromise"));
    assert!(shown.to_text().contains("REVOKED"), "{}", shown.to_text());
    let json: serde_json::Value = serde_json::from_str(&shown.to_json()).unwrap();
    assert_eq!(json["kind"], "certificate");
    assert_eq!(json["revocation"]["revoked"], true);
    assert_eq!(json["id"], "coord");

    let crl = show(&pki.crl_path(), None, None).unwrap();
    let Shown::Crl(list) = &crl else {
        panic!("a CRL")
    };
    assert_eq!(list.crl_number, 1);
    assert_eq!(list.revoked[0].id.as_deref(), Some("coord"));
    assert!(
        crl.to_text().contains("coordinator coord"),
        "{}",
        crl.to_text()
    );

    // An expired certificate says so.
    let expired = pki
        .issue_with_validity(
            &Identity::participant("old").unwrap(),
            &[],
            time::OffsetDateTime::now_utc() - time::Duration::days(10),
            time::OffsetDateTime::now_utc() - time::Duration::days(3),
            false,
        )
        .unwrap();
    let text = show(&expired.cert, None, None).unwrap().to_text();
    assert!(text.contains("EXPIRED"), "{text}");
    let _ = dir;
}

/// Finding 6 (revocation gaps): a PKI folder starts with a signed, empty
/// CRL, and renewing re-signs the same revocations with a higher number and
/// a fresh nextUpdate. Before, `pki init` wrote no CRL at all (so a
/// coordinator ran with "nothing revoked" and nothing to send), and no
/// command renewed a list without revoking something.
#[test]
fn revocation_gaps_init_writes_an_empty_crl_and_renewal_keeps_every_revocation() {
    let (dir, pki) = folder();
    let first = pki.sign_crl(fedsoc_pki::crl::CRL_VALIDITY_DAYS, 0).unwrap();
    assert_eq!((first.number, first.entries.len()), (1, 0));
    let revocations = Revocations::watch(&ca_pem(dir.path()), &pki.crl_path()).unwrap();
    let (list, der) = revocations.current().expect("a CRL file is in force");
    assert_eq!(list.number, 1);
    let from_der = RevocationList::parse_verified(&der, &ca_pem(dir.path())).unwrap();
    assert_eq!(from_der, *list, "the DER handed on is the list in force");
    let days_left = (list.next_update.unwrap() - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&days_left), "{days_left}");

    issue(&pki, Role::Participant, "soc-ee");
    pki.revoke("soc-ee", RevocationReason::KeyCompromise)
        .unwrap();
    let renewed = pki.sign_crl(10, 0).unwrap();
    assert_eq!(renewed.number, 3);
    assert_eq!(renewed.entries.len(), 1, "the revocation is kept");
    let days_left = (renewed.next_update.unwrap() - time::OffsetDateTime::now_utc()).whole_days();
    assert!((9..=10).contains(&days_left), "{days_left}");
    // Climbing over a floor after the newest list was lost.
    assert_eq!(pki.sign_crl(30, 9).unwrap().number, 9);
    let err = pki.sign_crl(0, 0).unwrap_err();
    assert!(matches!(err, PkiError::BadValidity(_)), "{err}");
}

/// Finding 6: nextUpdate is enforced. Before, a list past its nextUpdate
/// verified and was used like a current one; now it is refused, and the
/// refusal names the renewal command.
#[test]
fn revocation_gaps_a_crl_past_its_next_update_is_refused_with_the_renewal_command() {
    let (_dir, pki) = folder();
    let list = pki.sign_crl(30, 0).unwrap();
    let now = time::OffsetDateTime::now_utc();
    list.check_current(now, "crl.pem").unwrap();
    let err = list
        .check_current(now + time::Duration::days(31), "crl.pem")
        .unwrap_err();
    assert!(matches!(err, PkiError::StaleCrl { number: 1, .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("crl.pem (CRL #1)") && text.contains("stale"),
        "{text}"
    );
    assert!(text.contains("fedsoc pki crl --dir"), "{text}");
    // A list without nextUpdate never says it is current.
    let err = RevocationList::empty().check_current(now, "x").unwrap_err();
    assert!(err.to_string().contains("no nextUpdate"), "{err}");
}

/// Finding 6: the CRL-number floor is durable. Before, it lived only in a
/// running `Revocations`: a fresh one (a restart) loads an older list
/// signed by the CA without complaint, un-revoking whoever the newer list
/// named. A [`CrlFloor`] reopened from disk refuses it, naming both
/// numbers, where the floor is kept and how to recover.
#[test]
fn revocation_gaps_the_crl_floor_survives_a_restart_and_refuses_an_older_list() {
    let (dir, pki) = folder();
    let ee = issue(&pki, Role::Participant, "soc-ee");
    pki.sign_crl(30, 0).unwrap();
    let old = std::fs::read(pki.crl_path()).unwrap();
    pki.revoke("soc-ee", RevocationReason::KeyCompromise)
        .unwrap();
    let ca = ca_pem(dir.path());
    let newer =
        RevocationList::parse_verified(&std::fs::read(pki.crl_path()).unwrap(), &ca).unwrap();
    let older = RevocationList::parse_verified(&old, &ca).unwrap();

    // The attack as it was: restore the old list, restart, soc-ee is back.
    std::fs::write(pki.crl_path(), &old).unwrap();
    let restarted = Revocations::watch(&ca, &pki.crl_path()).unwrap();
    restarted.check(&ee).unwrap();

    let state = tempfile::tempdir().unwrap();
    let record = state.path().join(fedsoc_pki::floor::CRL_FLOOR_FILE);
    let disk = fedsoc_durable::Disk::real();
    let mut floor = CrlFloor::open(&record, disk.clone(), "this coordinator").unwrap();
    assert_eq!(floor.highest(), 0);
    floor.admit(&older, "crl.pem").unwrap();
    floor.admit(&newer, "crl.pem").unwrap();
    assert_eq!(floor.highest(), 2);

    let mut reopened = CrlFloor::open(&record, disk, "this coordinator").unwrap();
    assert_eq!(reopened.highest(), 2, "kept across a restart");
    let err = reopened.admit(&older, "crl.pem").unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::CrlRollback {
                number: 1,
                floor: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("crl.pem is CRL #1, older than CRL #2"),
        "{text}"
    );
    assert!(text.contains(&record.display().to_string()), "{text}");
    assert!(text.contains("--at-least 3"), "{text}");
    reopened.admit(&newer, "crl.pem").unwrap();

    std::fs::write(&record, "{").unwrap();
    let err = CrlFloor::open(&record, fedsoc_durable::Disk::real(), "x").unwrap_err();
    assert!(matches!(err, PkiError::BadCrlFloor { .. }), "{err}");
}
