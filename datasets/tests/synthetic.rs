//! The synthetic generator: determinism, realism, country differences and
//! the campaign→countries table.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use fedsoc_datasets::synthetic::{
    AttackFamily, MAX_ROWS, campaigns, campaigns_hitting, countries, country_for_site,
    reference_sample,
};
use fedsoc_datasets::{DatasetError, FlowRecord, SyntheticConfig, site_telemetry, test_set};

fn config(seed: u64, rows: usize, attack_fraction: f64) -> SyntheticConfig {
    SyntheticConfig {
        seed,
        rows,
        attack_fraction,
    }
}

/// A hashable identity of a record (its numbers bit-for-bit plus strings).
fn key(r: &FlowRecord) -> (u64, u64, u64, u64, u64, String, String, String, u16) {
    (
        r.duration_s.to_bits(),
        r.bytes_out.to_bits(),
        r.bytes_in.to_bits(),
        r.packets_out.to_bits(),
        r.packets_in.to_bits(),
        r.protocol.clone(),
        r.service.clone(),
        r.conn_state.clone(),
        r.dst_port,
    )
}

fn shares<'a>(values: impl Iterator<Item = &'a str>) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    let mut n = 0.0;
    for v in values {
        *counts.entry(v.to_string()).or_insert(0.0) += 1.0;
        n += 1.0;
    }
    counts.values_mut().for_each(|c| *c /= n);
    counts
}

fn total_variation(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> f64 {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.iter()
        .map(|k| (a.get(*k).unwrap_or(&0.0) - b.get(*k).unwrap_or(&0.0)).abs())
        .sum::<f64>()
        / 2.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn default_config_is_benign_4000_rows() {
    let c = SyntheticConfig::default();
    assert_eq!(c, config(0, 4000, 0.0));
    let rows = site_telemetry(0, &c).unwrap();
    assert_eq!(rows.len(), 4000);
    assert!(
        rows.iter()
            .all(|r| !r.is_attack() && r.family() == "normal")
    );
}

#[test]
fn same_seed_same_records_different_seed_different_records() {
    let c = config(7, 1000, 0.1);
    assert_eq!(
        site_telemetry(3, &c).unwrap(),
        site_telemetry(3, &c).unwrap()
    );
    assert_eq!(test_set(&c).unwrap(), test_set(&c).unwrap());
    assert_ne!(
        site_telemetry(3, &c).unwrap(),
        site_telemetry(3, &config(8, 1000, 0.1)).unwrap()
    );
    assert_ne!(
        test_set(&c).unwrap(),
        test_set(&config(8, 1000, 0.1)).unwrap()
    );
    // Wrapped sites share a country profile but not a random stream.
    assert_eq!(country_for_site(8).code, "de");
    assert_ne!(
        site_telemetry(0, &c).unwrap(),
        site_telemetry(8, &c).unwrap()
    );
}

#[test]
fn contamination_leaves_the_benign_stream_unchanged() {
    let clean = site_telemetry(0, &config(3, 2000, 0.0)).unwrap();
    let dirty = site_telemetry(0, &config(3, 2000, 0.1)).unwrap();
    let mut benign: Vec<_> = dirty.iter().filter(|r| !r.is_attack()).map(key).collect();
    let mut prefix: Vec<_> = clean[..1800].iter().map(key).collect();
    benign.sort();
    prefix.sort();
    assert_eq!(benign, prefix);
}

#[test]
fn at_least_eight_european_socs() {
    let codes: Vec<&str> = countries().iter().map(|c| c.code).collect();
    for code in ["de", "fr", "it", "es", "nl", "pl", "se", "ee"] {
        assert!(codes.contains(&code), "{code} missing");
    }
    for c in countries() {
        let total: f64 = c.service_mix.iter().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-9, "{} mix sums to {total}", c.code);
    }
}

#[test]
fn records_are_physically_consistent() {
    let c = config(11, 3000, 0.2);
    let mut all: Vec<FlowRecord> = (0..8)
        .flat_map(|s| site_telemetry(s, &c).unwrap())
        .collect();
    all.extend(test_set(&c).unwrap());
    for r in &all {
        for (name, v) in r.numeric_fields() {
            assert!(v.is_finite() && v >= 0.0, "{name} = {v} in {r:?}");
        }
        assert!(
            ["tcp", "udp", "icmp"].contains(&r.protocol.as_str()),
            "{r:?}"
        );
        assert!(["SF", "S0", "REJ", "RSTO", "RSTR", "SH", "OTH"].contains(&r.conn_state.as_str()));
        if r.bytes_out > 0.0 {
            assert!(r.packets_out >= 1.0, "{r:?}");
            assert!(r.bytes_out / r.packets_out <= 1500.0, "{r:?}");
        }
        if r.bytes_in > 0.0 {
            assert!(r.packets_in >= 1.0, "{r:?}");
            assert!(r.bytes_in / r.packets_in <= 1500.0, "{r:?}");
        }
        if r.protocol == "icmp" {
            assert_eq!(r.dst_port, 0);
        }
        if !r.is_attack() {
            let expected: Option<(&str, &[u16])> = match r.service.as_str() {
                "dns" => Some(("udp", &[53])),
                "ntp" => Some(("udp", &[123])),
                "https" => Some(("tcp", &[443])),
                "http" => Some(("tcp", &[80, 8080])),
                "ssh" => Some(("tcp", &[22])),
                "rdp" => Some(("tcp", &[3389])),
                "smb" => Some(("tcp", &[445])),
                "smtp" => Some(("tcp", &[25, 587])),
                "ldap" => Some(("tcp", &[389, 636])),
                _ => None,
            };
            if let Some((proto, ports)) = expected {
                assert_eq!(r.protocol, proto, "{r:?}");
                assert!(ports.contains(&r.dst_port), "{r:?}");
            }
        }
    }
    let benign: Vec<&FlowRecord> = all.iter().filter(|r| !r.is_attack()).collect();
    let sf = benign.iter().filter(|r| r.conn_state == "SF").count() as f64 / benign.len() as f64;
    assert!(sf > 0.85, "benign SF share {sf}");
}

#[test]
fn volumes_are_heavy_tailed() {
    let rows = reference_sample();
    let https: Vec<f64> = rows
        .iter()
        .filter(|r| r.service == "https")
        .map(|r| r.bytes_in)
        .collect();
    let mut sorted = https.clone();
    sorted.sort_by(f64::total_cmp);
    let p50 = sorted[sorted.len() / 2];
    let p99 = sorted[sorted.len() * 99 / 100];
    assert!(p99 > 20.0 * p50, "https bytes_in p50 {p50} p99 {p99}");
    let mean = https.iter().sum::<f64>() / https.len() as f64;
    assert!(
        mean > 2.0 * p50,
        "mean {mean} vs median {p50}: not right-skewed"
    );
}

#[test]
fn countries_have_measurably_different_traffic() {
    let c = config(5, 4000, 0.0);
    let sites: Vec<Vec<FlowRecord>> = (0..8).map(|s| site_telemetry(s, &c).unwrap()).collect();
    let mixes: Vec<_> = sites
        .iter()
        .map(|rows| shares(rows.iter().map(|r| r.service.as_str())))
        .collect();
    for i in 0..8 {
        for j in i + 1..8 {
            let tv = total_variation(&mixes[i], &mixes[j]);
            assert!(
                tv > 0.08,
                "{} vs {}: service mixes too alike (TV {tv:.3})",
                countries()[i].code,
                countries()[j].code
            );
        }
    }
    let share = |site: usize, services: &[&str]| {
        services
            .iter()
            .map(|s| mixes[site].get(*s).unwrap_or(&0.0))
            .sum::<f64>()
    };
    let argmax = |services: &[&str]| {
        (0..8)
            .max_by(|&a, &b| share(a, services).total_cmp(&share(b, services)))
            .unwrap()
    };
    assert_eq!(countries()[argmax(&["smb", "rdp"])].code, "de");
    assert_eq!(countries()[argmax(&["dns", "ntp"])].code, "nl");
    assert_eq!(countries()[argmax(&["smtp"])].code, "it");
    assert!(["fr", "se"].contains(&countries()[argmax(&["https", "http"])].code));

    // Same service, different constituency: volumes and durations differ.
    let https = |site: usize, f: fn(&FlowRecord) -> f64| {
        median(
            sites[site]
                .iter()
                .filter(|r| r.service == "https" && r.conn_state == "SF")
                .map(f)
                .collect(),
        )
    };
    let (fr, nl, se, ee) = (1, 4, 6, 7);
    let (volume_nl, volume_ee) = (https(nl, |r| r.bytes_in), https(ee, |r| r.bytes_in));
    assert!(
        volume_nl > 2.0 * volume_ee,
        "https bytes_in: nl {volume_nl} vs ee {volume_ee}"
    );
    let (duration_se, duration_fr) = (https(se, |r| r.duration_s), https(fr, |r| r.duration_s));
    assert!(
        duration_se > 1.3 * duration_fr,
        "https duration: se {duration_se} vs fr {duration_fr}"
    );
}

#[test]
fn each_campaign_hits_exactly_its_documented_countries() {
    let c = config(9, 2000, 0.3);
    for site in 0..countries().len() {
        let code = countries()[site].code;
        let rows = site_telemetry(site, &c).unwrap();
        let seen: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.is_attack())
            .map(|r| r.family())
            .collect();
        let documented: BTreeSet<&str> =
            campaigns_hitting(code).map(|c| c.family.label()).collect();
        assert_eq!(seen, documented, "site {site} ({code})");
        assert_eq!(rows.iter().filter(|r| r.is_attack()).count(), 600);
    }
    // Every family hits some countries but not all.
    for campaign in campaigns() {
        assert!(campaign.countries.len() >= 2 && campaign.countries.len() < countries().len());
    }
    assert_eq!(campaigns().len(), AttackFamily::ALL.len());
}

/// The table in the `synthetic` module doc says what the code does.
#[test]
fn documented_campaign_table_matches_code() {
    let doc = include_str!("../src/synthetic/mod.rs");
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("//! | `")) {
        let cells: Vec<&str> = line
            .trim_start_matches("//!")
            .split('|')
            .map(str::trim)
            .collect();
        let family = cells[1].trim_matches('`');
        let hits: Vec<&str> = cells[3].split(',').map(str::trim).collect();
        let campaign = campaigns()
            .iter()
            .find(|c| c.family.label() == family)
            .unwrap();
        assert_eq!(campaign.countries, hits.as_slice(), "{family}");
        rows += 1;
    }
    assert_eq!(rows, campaigns().len());
}

#[test]
fn test_set_has_every_family_and_no_training_rows() {
    let c = config(1, 5000, 0.2);
    let rows = test_set(&c).unwrap();
    assert_eq!(rows.len(), 5000);
    let families = shares(rows.iter().map(|r| r.family()));
    for family in AttackFamily::ALL {
        let share = families.get(family.label()).copied().unwrap_or(0.0);
        assert!((share - 0.04).abs() < 1e-3, "{}: {share}", family.label());
    }
    assert!((families["normal"] - 0.8).abs() < 1e-9);

    let training: HashSet<_> = (0..8)
        .flat_map(|s| site_telemetry(s, &config(1, 5000, 0.2)).unwrap())
        .map(|r| key(&r))
        .collect();
    // Zero-duration single-packet flows (e.g. one unanswered SYN to 443)
    // are identical wherever they are captured; every other row is unique.
    let overlap = rows
        .iter()
        .filter(|r| r.duration_s > 0.0 && training.contains(&key(r)))
        .count();
    assert_eq!(overlap, 0);
}

#[test]
fn attacks_have_their_documented_shapes() {
    let rows = test_set(&config(2, 10_000, 0.5)).unwrap();
    let of = |f: &'static str| rows.iter().filter(move |r| r.family() == f);
    let n = of("scan").count() as f64;
    let tiny = of("scan")
        .filter(|r| ["S0", "REJ"].contains(&r.conn_state.as_str()) && r.bytes_in == 0.0)
        .count() as f64;
    assert!(tiny / n > 0.9);
    let ports: HashSet<u16> = of("scan").map(|r| r.dst_port).collect();
    assert!(ports.len() > 500, "scan should spread over many ports");
    assert!(of("flood").all(|r| r.packets_out >= 50.0 && r.duration_s < 60.0));
    assert!(
        of("bruteforce")
            .all(|r| ["ssh", "rdp"].contains(&r.service.as_str()) && r.bytes_out < 10_000.0)
    );
    let rsto = of("bruteforce").filter(|r| r.conn_state == "RSTO").count() as f64
        / of("bruteforce").count() as f64;
    assert!(rsto > 0.5);
    assert!(of("exfiltration").all(
        |r| ["https", "dns"].contains(&r.service.as_str()) && ![443, 53].contains(&r.dst_port)
    ));
    assert!(median(of("exfiltration").map(|r| r.bytes_out).collect()) > 1e6);
    // C2 at a site: one implant, one rare port, near-constant rhythm.
    let site = site_telemetry(0, &config(2, 4000, 0.3)).unwrap();
    let c2: Vec<&FlowRecord> = site.iter().filter(|r| r.family() == "c2").collect();
    assert_eq!(c2.len(), 400);
    let ports: HashSet<u16> = c2.iter().map(|r| r.dst_port).collect();
    assert_eq!(ports.len(), 1);
    assert!(
        ports.iter().all(|&p| p >= 1024),
        "c2 uses a rare high port: {ports:?}"
    );
    for values in [
        c2.iter().map(|r| r.duration_s).collect::<Vec<_>>(),
        c2.iter().map(|r| r.bytes_out).collect(),
    ] {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let max_dev = values
            .iter()
            .map(|x| (x / mean - 1.0).abs())
            .fold(0.0, f64::max);
        assert!(max_dev < 0.1, "c2 beacons vary by {max_dev}");
    }
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let err = site_telemetry(0, &config(0, 10, bad)).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::InvalidConfig {
                    field: "attack_fraction",
                    ..
                }
            ),
            "{err}"
        );
        assert!(test_set(&config(0, 10, bad)).is_err());
    }
    let err = test_set(&config(0, MAX_ROWS + 1, 0.0)).unwrap_err();
    assert!(err.to_string().contains("rows"), "{err}");
    assert_eq!(site_telemetry(0, &config(0, 0, 0.5)).unwrap(), vec![]);
    assert_eq!(
        site_telemetry(0, &config(0, 10, 1.0))
            .unwrap()
            .iter()
            .filter(|r| r.is_attack())
            .count(),
        10
    );
}

#[test]
fn config_serde_defaults_missing_fields() {
    let c: SyntheticConfig = toml::from_str("seed = 4\nattack_fraction = 0.05").unwrap();
    assert_eq!(c, config(4, 4000, 0.05));
    assert!(toml::from_str::<SyntheticConfig>("sede = 4").is_err());
}

#[test]
fn hundred_thousand_rows_are_fast() {
    let c = config(0, 100_000, 0.05);
    let start = Instant::now();
    let rows = site_telemetry(0, &c).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(rows.len(), 100_000);
    eprintln!("100k rows in {elapsed:?}");
    let limit = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
    assert!(elapsed.as_secs_f64() < limit, "{elapsed:?}");
}
