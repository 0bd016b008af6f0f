//! The encoder: shape, standardisation, one-hot blocks, errors, serde, and
//! that encoded features carry signal for anomaly detection.

use fedsoc_datasets::encoder::{
    CategoricalColumn, MIN_RATE_DURATION_S, NumericColumn, OTHER_SLOT, port_class,
};
use fedsoc_datasets::synthetic::reference_sample;
use fedsoc_datasets::{
    DatasetError, EncoderSpec, FlowRecord, SyntheticConfig, site_telemetry, test_set,
};
use ndarray::{Array2, Axis};
use proptest::prelude::*;

fn record() -> FlowRecord {
    FlowRecord {
        duration_s: 1.5,
        bytes_out: 800.0,
        bytes_in: 20_000.0,
        packets_out: 12.0,
        packets_in: 18.0,
        protocol: "tcp".into(),
        service: "https".into(),
        conn_state: "SF".into(),
        dst_port: 443,
        label: None,
    }
}

fn column(spec: &EncoderSpec, name: &str) -> usize {
    spec.feature_names()
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// Every categorical block of every row holds exactly one 1 and zeros.
fn assert_one_hot(spec: &EncoderSpec, x: &Array2<f32>) {
    for row in x.rows() {
        let mut offset = spec.numeric.len();
        for c in &spec.categorical {
            let block = row.slice(ndarray::s![offset..offset + c.width()]);
            assert!(block.iter().all(|&v| v == 0.0 || v == 1.0));
            assert_eq!(block.sum(), 1.0, "{} block {block}", c.name);
            offset += c.width();
        }
        assert_eq!(offset, spec.dim());
    }
}

fn column_stats(x: &Array2<f32>, j: usize) -> (f64, f64) {
    let col = x.column(j);
    let n = col.len() as f64;
    let mean = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = col
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn default_spec_shape_and_names() {
    let spec = EncoderSpec::synthetic_default();
    spec.validate().unwrap();
    let names = spec.feature_names();
    assert_eq!(names.len(), spec.dim());
    assert_eq!(spec.dim(), 9 + 4 + 10 + 14 + 4);
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert_eq!(names[0], "duration");
    assert!(names.contains(&format!("service={OTHER_SLOT}")));
    // Fitted, not placeholder statistics; and stable.
    assert!(
        spec.numeric
            .iter()
            .all(|c| c.std != 1.0 && c.std > 0.0 && c.mean != 0.0)
    );
    assert_eq!(spec, EncoderSpec::synthetic_default());
    let x = spec.encode(&[record(), record()]).unwrap();
    assert_eq!(x.dim(), (2, spec.dim()));
}

#[test]
fn default_statistics_come_from_the_public_reference_sample() {
    let spec = EncoderSpec::synthetic_default();
    let refit = EncoderSpec::fit(&reference_sample(), &EncoderSpec::synthetic_layout()).unwrap();
    for (a, b) in spec.numeric.iter().zip(&refit.numeric) {
        assert!((a.mean - b.mean).abs() <= 1e-5 * b.mean.abs(), "{}", a.name);
        assert!((a.std - b.std).abs() <= 1e-5 * b.std, "{}", a.name);
    }
    // A participant's data gives different statistics: nothing of it leaked in.
    let site = site_telemetry(0, &SyntheticConfig::default()).unwrap();
    let local = EncoderSpec::fit(&site, &EncoderSpec::synthetic_layout()).unwrap();
    assert_ne!(local.numeric, spec.numeric);
}

#[test]
fn reference_sample_encodes_to_z_scores() {
    let spec = EncoderSpec::synthetic_default();
    let x = spec.encode(&reference_sample()).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    for (j, c) in spec.numeric.iter().enumerate() {
        let (mean, std) = column_stats(&x, j);
        assert!(mean.abs() < 1e-3, "{}: mean {mean}", c.name);
        assert!((std - 1.0).abs() < 1e-3, "{}: std {std}", c.name);
    }
    assert_one_hot(&spec, &x);
}

#[test]
fn participant_data_encodes_to_roughly_standard_values() {
    let spec = EncoderSpec::synthetic_default();
    let config = SyntheticConfig {
        seed: 42,
        rows: 2000,
        attack_fraction: 0.0,
    };
    let rows: Vec<FlowRecord> = (0..8)
        .flat_map(|s| site_telemetry(s, &config).unwrap())
        .collect();
    let x = spec.encode(&rows).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    for (j, c) in spec.numeric.iter().enumerate() {
        let (mean, std) = column_stats(&x, j);
        assert!(mean.abs() < 0.1, "{}: mean {mean}", c.name);
        assert!((0.9..1.1).contains(&std), "{}: std {std}", c.name);
    }
    // One site alone is shifted (non-IID) but still of unit scale.
    let x = spec.encode(&rows[..2000]).unwrap();
    for j in 0..spec.numeric.len() {
        let (mean, std) = column_stats(&x, j);
        assert!(mean.abs() < 1.0 && (0.3..3.0).contains(&std));
    }
    let x = spec
        .encode(
            &test_set(&SyntheticConfig {
                attack_fraction: 0.3,
                ..config
            })
            .unwrap(),
        )
        .unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    assert_one_hot(&spec, &x);
}

#[test]
fn unknown_categories_go_to_the_other_slot() {
    let spec = EncoderSpec::synthetic_default();
    let mut r = record();
    r.protocol = "sctp".into();
    r.service = "ftp".into();
    r.conn_state = "S4".into();
    let mut generic = record();
    generic.service = "other".into();
    let x = spec.encode(&[r, generic, record()]).unwrap();
    assert_one_hot(&spec, &x);
    for name in ["protocol", "service", "conn_state"] {
        assert_eq!(
            x[[0, column(&spec, &format!("{name}={OTHER_SLOT}"))]],
            1.0,
            "{name}"
        );
        assert_eq!(
            x[[2, column(&spec, &format!("{name}={OTHER_SLOT}"))]],
            0.0,
            "{name}"
        );
    }
    assert_eq!(x[[1, column(&spec, &format!("service={OTHER_SLOT}"))]], 1.0);
    assert_eq!(x[[2, column(&spec, "service=https")]], 1.0);
    assert_eq!(x[[2, column(&spec, "port_class=well_known")]], 1.0);
}

#[test]
fn derived_features_and_port_classes() {
    assert_eq!(port_class(0), "well_known");
    assert_eq!(port_class(1023), "well_known");
    assert_eq!(port_class(1024), "registered");
    assert_eq!(port_class(49151), "registered");
    assert_eq!(port_class(49152), "ephemeral");
    // A raw (no log, unit std, zero mean) spec exposes the derived values.
    let mut spec = EncoderSpec::synthetic_layout();
    spec.numeric.iter_mut().for_each(|c| c.log1p = false);
    let mut r = record();
    r.duration_s = 0.0;
    r.packets_in = 0.0;
    r.bytes_in = 0.0;
    let x = spec.encode(&[r]).unwrap();
    assert_eq!(x[[0, column(&spec, "bytes_per_packet_out")]], 800.0 / 12.0);
    assert_eq!(x[[0, column(&spec, "bytes_per_packet_in")]], 0.0);
    assert_eq!(
        x[[0, column(&spec, "byte_rate")]],
        (800.0 / MIN_RATE_DURATION_S) as f32
    );
    assert_eq!(
        x[[0, column(&spec, "packet_rate")]],
        (12.0 / MIN_RATE_DURATION_S) as f32
    );
}

#[test]
fn non_finite_and_negative_numerics_name_row_and_column() {
    let spec = EncoderSpec::synthetic_default();
    let mut rows = vec![record(); 5];
    rows[3].bytes_out = f64::NAN;
    match spec.encode(&rows).unwrap_err() {
        DatasetError::NonFinite { row: 3, column, .. } => assert_eq!(column, "bytes_out"),
        other => panic!("{other}"),
    }
    rows[3].bytes_out = 1.0;
    rows[4].duration_s = f64::INFINITY;
    let err = spec.encode(&rows).unwrap_err();
    assert!(
        err.to_string().contains("row 4") && err.to_string().contains("duration_s"),
        "{err}"
    );
    rows[4].duration_s = 1.0;
    rows[1].packets_in = -2.0;
    assert!(matches!(
        spec.encode(&rows).unwrap_err(),
        DatasetError::Negative { row: 1, .. }
    ));
    assert!(EncoderSpec::fit(&rows, &spec).is_err());
    // A finite record whose derived feature overflows names that feature.
    let mut raw = EncoderSpec::synthetic_layout();
    raw.numeric.iter_mut().for_each(|c| c.log1p = false);
    let mut huge = record();
    huge.bytes_out = f64::MAX;
    huge.duration_s = 0.0;
    match raw.encode(&[record(), huge]).unwrap_err() {
        DatasetError::NonFinite { row: 1, column, .. } => assert_eq!(column, "byte_rate"),
        other => panic!("{other}"),
    }
}

#[test]
fn zero_std_does_not_divide_by_zero() {
    let rows = vec![record(); 10];
    let spec = EncoderSpec::fit(&rows, &EncoderSpec::synthetic_layout()).unwrap();
    assert!(spec.numeric.iter().all(|c| c.std == 0.0));
    let x = spec.encode(&rows).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(
        x.slice(ndarray::s![.., ..spec.numeric.len()])
            .iter()
            .all(|&v| v == 0.0)
    );
    let mut other = record();
    other.bytes_out = 0.0;
    let y = spec.encode(&[other]).unwrap();
    assert_eq!(y[[0, column(&spec, "bytes_out")]], -(800f64.ln_1p()) as f32);
}

#[test]
fn fit_needs_records() {
    assert_eq!(
        EncoderSpec::fit(&[], &EncoderSpec::synthetic_layout()).unwrap_err(),
        DatasetError::EmptyInput
    );
}

#[test]
fn invalid_specs_are_rejected() {
    let base = EncoderSpec::synthetic_default();
    let mut cases: Vec<EncoderSpec> = Vec::new();
    let mut s = base.clone();
    s.numeric[1].name = "duration".into();
    cases.push(s);
    let mut s = base.clone();
    s.numeric[2].mean = f64::NAN;
    cases.push(s);
    let mut s = base.clone();
    s.numeric[2].std = -1.0;
    cases.push(s);
    let mut s = base.clone();
    s.categorical[0].vocabulary.clear();
    cases.push(s);
    let mut s = base.clone();
    s.categorical[1].vocabulary.push("dns".into());
    cases.push(s);
    let mut s = base.clone();
    s.categorical[1].vocabulary.push(" ".into());
    cases.push(s);
    cases.push(EncoderSpec {
        numeric: vec![],
        categorical: vec![],
    });
    for spec in cases {
        let err = spec.validate().unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSpec(_)), "{err}");
        assert_eq!(spec.encode(&[record()]).unwrap_err(), err);
    }
    // Columns the data does not have are named when encoding.
    let mut s = base.clone();
    s.numeric[0].name = "latency".into();
    s.validate().unwrap();
    let err = s.encode(&[record()]).unwrap_err().to_string();
    assert!(
        err.contains("`latency`") && err.contains("bytes_out"),
        "{err}"
    );
    let mut s = base.clone();
    s.categorical.push(CategoricalColumn {
        name: "country".into(),
        vocabulary: vec!["de".into()],
    });
    assert!(
        s.encode(&[record()])
            .unwrap_err()
            .to_string()
            .contains("`country`")
    );
    // A subset of columns in any order is fine.
    let spec = EncoderSpec {
        numeric: vec![NumericColumn {
            name: "packet_rate".into(),
            log1p: true,
            mean: 1.0,
            std: 2.0,
        }],
        categorical: vec![base.categorical[2].clone()],
    };
    assert_eq!(spec.encode(&[record()]).unwrap().dim(), (1, 1 + 14));
}

#[test]
fn spec_round_trips_through_toml_and_json() {
    let spec = EncoderSpec::synthetic_default();
    let toml_text = toml::to_string(&spec).unwrap();
    assert_eq!(toml::from_str::<EncoderSpec>(&toml_text).unwrap(), spec);
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<EncoderSpec>(&json).unwrap(), spec);
}

/// AUC of `scores` for `positive` labels (Mann-Whitney, ties count half).
fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| positive[order[k]]).count() as f64 * mid_rank;
        i = j + 1;
    }
    let p = positive.iter().filter(|&&x| x).count() as f64;
    let n = positive.len() as f64 - p;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[test]
fn auc_helper_is_correct() {
    assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &[false, false, true, true]), 1.0);
    assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]), 0.0);
    assert_eq!(auc(&[1.0, 1.0, 1.0, 1.0], &[true, false, true, false]), 0.5);
}

#[test]
fn distance_from_mean_separates_attacks_better_than_chance() {
    let spec = EncoderSpec::synthetic_default();
    let centre = spec
        .encode(&reference_sample())
        .unwrap()
        .mean_axis(Axis(0))
        .unwrap();
    let rows = test_set(&SyntheticConfig {
        seed: 3,
        rows: 10_000,
        attack_fraction: 0.2,
    })
    .unwrap();
    let x = spec.encode(&rows).unwrap();
    let scores: Vec<f64> = x
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(&centre)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
        })
        .collect();
    let positive: Vec<bool> = rows.iter().map(FlowRecord::is_attack).collect();
    let overall = auc(&scores, &positive);
    eprintln!("distance-from-mean AUC: {overall:.3}");
    for family in ["scan", "flood", "bruteforce", "exfiltration", "c2"] {
        let (s, p): (Vec<f64>, Vec<bool>) = rows
            .iter()
            .zip(&scores)
            .filter(|(r, _)| !r.is_attack() || r.family() == family)
            .map(|(r, &s)| (s, r.is_attack()))
            .unzip();
        eprintln!("  {family}: {:.3}", auc(&s, &p));
    }
    assert!(overall > 0.6, "AUC {overall}");
    // Not trivially separable either.
    assert!(overall < 0.999, "AUC {overall}");
}

fn arbitrary_record() -> impl Strategy<Value = FlowRecord> {
    let text =
        |values: &'static [&'static str]| proptest::sample::select(values).prop_map(String::from);
    (
        (
            0.0..1e4f64,
            0.0..1e9f64,
            0.0..1e9f64,
            0.0..1e6f64,
            0.0..1e6f64,
        ),
        text(&["tcp", "udp", "icmp", "sctp", ""]),
        text(&["http", "https", "dns", "ssh", "other", "ftp", "-"]),
        text(&["SF", "S0", "REJ", "OTH", "S1", "RSTOS0"]),
        any::<u16>(),
    )
        .prop_map(
            |((d, bo, bi, po, pi), protocol, service, conn_state, dst_port)| FlowRecord {
                duration_s: d,
                bytes_out: bo,
                bytes_in: bi,
                packets_out: po,
                packets_in: pi,
                protocol,
                service,
                conn_state,
                dst_port,
                label: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn any_valid_record_encodes_to_finite_one_hot_rows(records in proptest::collection::vec(arbitrary_record(), 0..20)) {
        let spec = EncoderSpec::synthetic_default();
        let x = spec.encode(&records).unwrap();
        prop_assert_eq!(x.dim(), (records.len(), spec.dim()));
        prop_assert!(x.iter().all(|v| v.is_finite()));
        assert_one_hot(&spec, &x);
    }
}
