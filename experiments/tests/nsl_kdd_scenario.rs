//! The cross-border scenario on real NSL-KDD data, small enough for CI:
//! KDDTrain+_20Percent split by attack family among four SOCs, three
//! rounds. Skipped, with a message, where the data is absent.

use fedsoc_datasets::read::default_data_dir;
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_experiments::scenario::run::{RunOptions, Variant, run};
use fedsoc_experiments::scenario::secure_sum::federated_encoder;
use fedsoc_experiments::scenario::{Scenario, data};

const SCENARIO: &str = r#"
name = "ci-cross-border"
seeds = [1]
[data]
format = "nsl-kdd"
train = "KDDTrain+_20Percent"
test = ["KDDTest+"]
[partition]
kind = "by-family"
families = [["DoS"], ["Probe"], ["R2L"], ["U2R"]]
[federation]
participants = 4
rounds = 3
[[model]]
kind = "autoencoder"
hidden = [64, 32, 8]
epochs = 2
[[model]]
kind = "classifier"
hidden = [64, 32]
loss = "balanced"
"#;

fn nsl_kdd_root() -> Option<std::path::PathBuf> {
    let root = default_data_dir()?;
    root.join("nsl-kdd").is_dir().then_some(root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_border_federation_learns_from_every_soc() {
    let Some(root) = nsl_kdd_root() else {
        eprintln!("skipped: NSL-KDD not found; set FEDSOC_DATA to the folder holding nsl-kdd/");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ci.toml");
    std::fs::write(&path, SCENARIO).unwrap();

    // The federation's statistics, from secure sums, equal the pooled fit.
    let scenario = Scenario::load(&path).unwrap();
    let loaded = data::load(&scenario, &path, Some(&root)).unwrap();
    let split = data::split(&loaded, &scenario, 1).unwrap();
    let federated = federated_encoder(&loaded.layout, &split.participants, 1).unwrap();
    let mut pooled = Records::new(
        split.participants[0].numeric_names().to_vec(),
        split.participants[0].categorical_names().to_vec(),
    );
    for p in &split.participants {
        pooled.append(p).unwrap();
    }
    let fitted = EncoderSpec::fit(&pooled, &loaded.layout).unwrap();
    for (f, c) in federated.numeric.iter().zip(&fitted.numeric) {
        assert!((f.mean - c.mean).abs() < 1e-4, "{f:?} vs {c:?}");
        assert!((f.std - c.std).abs() < 1e-4, "{f:?} vs {c:?}");
    }
    // Each SOC holds the attacks of exactly one family.
    for (p, family) in ["DoS", "Probe", "R2L", "U2R"].iter().enumerate() {
        let counts = split.participants[p].family_counts();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(counts.contains_key(*family), "{counts:?}");
    }

    let results = run(
        &RunOptions {
            scenario: path,
            out: dir.path().join("out"),
            data: Some(root),
            seeds: None,
            rounds: None,
            jobs: None,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let auc = |model: &str, variant: Variant| {
        results
            .outcomes
            .iter()
            .find(|o| o.model == model && o.variant == variant && o.participant.is_none())
            .map(|o| o.evaluations[0].roc_auc)
            .unwrap()
    };
    let federated_ae = auc("autoencoder", Variant::Federated);
    assert!(
        federated_ae > 0.9,
        "federated autoencoder ROC-AUC {federated_ae}"
    );
    // The federated classifier beats the SOC that only saw U2R (52 rows).
    let lonely = results
        .outcomes
        .iter()
        .find(|o| o.model == "classifier" && o.participant.as_deref() == Some("soc-4"))
        .map(|o| o.evaluations[0].roc_auc)
        .unwrap();
    let federated_clf = auc("classifier", Variant::Federated);
    assert!(
        federated_clf > lonely + 0.05,
        "federated {federated_clf} vs soc-4 alone {lonely}"
    );
    // The federated threshold is calibrated: near 1% false alarms on the
    // validation distribution, and not wildly off on the test set.
    let fpr = results
        .outcomes
        .iter()
        .find(|o| o.model == "autoencoder" && o.variant == Variant::Federated)
        .map(|o| o.evaluations[0].false_positive_rate)
        .unwrap();
    assert!(
        fpr < 0.05,
        "test false-alarm rate at the calibrated threshold: {fpr}"
    );
}

const SERVICES: &str = r#"
name = "ci-services"
seeds = [1]
[data]
format = "nsl-kdd"
train = "KDDTrain+_20Percent"
test = ["KDDTest+"]
[partition]
kind = "benign-by-group"
column = "service"
alpha = 0.3
[federation]
participants = 4
rounds = 1
[calibration]
validation_fraction = 0.2
[[model]]
kind = "autoencoder"
hidden = [8]
"#;

#[test]
fn validation_rows_never_overlap_training_rows_and_socs_see_different_normal_traffic() {
    let Some(root) = nsl_kdd_root() else {
        eprintln!("skipped: NSL-KDD not found; set FEDSOC_DATA to the folder holding nsl-kdd/");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, SERVICES).unwrap();
    let scenario = Scenario::load(&path).unwrap();
    let loaded = data::load(&scenario, &path, Some(&root)).unwrap();
    let split = data::split(&loaded, &scenario, 3).unwrap();

    // Row numbers of the training file: each used once, by one
    // participant, either to train or to validate; none left out.
    let mut seen = vec![0u8; loaded.train.len()];
    for p in 0..4 {
        for &r in split.train_rows[p].iter().chain(&split.validation_rows[p]) {
            seen[r] += 1;
        }
        assert_eq!(split.participants[p].len(), split.train_rows[p].len());
        assert_eq!(split.validation[p].len(), split.validation_rows[p].len());
        // Validation holds attacks as well as normal rows.
        assert!(split.validation[p].family_counts().len() > 1);
    }
    assert!(seen.iter().all(|&n| n == 1), "a row is used twice or never");
    // The test file is another file: a scenario testing on its training
    // file is refused (see scenario::tests).
    assert_ne!(loaded.tests[0].1.len(), loaded.train.len());

    // Each SOC's normal traffic is its own mix of services: the share of
    // the commonest service differs widely between SOCs.
    let service = |records: &fedsoc_datasets::Records, i: usize| {
        let k = records
            .categorical_names()
            .iter()
            .position(|c| c == "service")
            .unwrap();
        records.categorical_row(i)[k].clone()
    };
    let http_share: Vec<f64> = split
        .participants
        .iter()
        .map(|r| {
            let normal: Vec<usize> = (0..r.len()).filter(|&i| r.family(i) == "normal").collect();
            let http = normal.iter().filter(|&&i| service(r, i) == "http").count();
            http as f64 / normal.len() as f64
        })
        .collect();
    let spread = http_share.iter().cloned().fold(0.0, f64::max)
        - http_share.iter().cloned().fold(1.0, f64::min);
    assert!(spread > 0.2, "http shares {http_share:?}");
    // The test set comes whole and as one slice per SOC, each with every
    // attack and that SOC's share of each service's normal rows.
    let names: Vec<&str> = loaded.tests.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "KDDTest+",
            "KDDTest+@soc-1",
            "KDDTest+@soc-2",
            "KDDTest+@soc-3",
            "KDDTest+@soc-4"
        ]
    );
    let whole = &loaded.tests[0].1;
    let attacks = whole.attack_flags().iter().filter(|&&a| a).count();
    let mut normal_total = 0;
    for (_, slice) in &loaded.tests[1..] {
        let flags = slice.attack_flags();
        assert_eq!(flags.iter().filter(|&&a| a).count(), attacks);
        normal_total += flags.iter().filter(|&&a| !a).count();
    }
    assert_eq!(normal_total, whole.len() - attacks);
}
