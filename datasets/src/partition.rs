//! Splitting one record set among simulated participants, deterministic by
//! seed so an experiment can be re-run exactly.
//!
//! - [`iid_indices`]: a random, balanced split;
//! - [`by_family`]: benign rows split IID, each attack family only to the
//!   participants assigned it (each SOC sees its own attacks);
//! - [`dirichlet_label_skew`]: per family, shares drawn from Dirichlet(α)
//!   (small α: each participant sees few families);
//! - [`quantity_skew`]: sizes drawn from Dirichlet(α), content IID;
//! - [`benign_by_group`]: SOCs whose normal traffic differs: the benign
//!   rows of each value of a column (NSL-KDD's `service`) shared out in
//!   Dirichlet(α) proportions; [`benign_slices`] cuts a test set the same
//!   way, so each SOC is also tested on its own kind of normal traffic.
//!
//! All return, per participant, indices into the records, each index at
//! most once.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;
use crate::record::NORMAL;
use crate::seed::{Purpose, stream};

/// A partitioning scheme, as a scenario file names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Partitioner {
    Iid,
    /// `families[p]` are the attack families participant `p` sees.
    ByFamily {
        families: Vec<Vec<String>>,
    },
    DirichletLabelSkew {
        alpha: f64,
    },
    QuantitySkew {
        alpha: f64,
    },
    /// Benign rows by the value of a categorical `column` (e.g. "service"),
    /// each value's rows shared out in Dirichlet(α) proportions; attack
    /// rows as `families` assigns them (IID among everyone when empty).
    /// The shares are drawn from `profile_seed`, not the run's seed: which
    /// SOC sees which traffic is part of the scenario, the same in every
    /// run, so the per-SOC test slices are fixed too.
    BenignByGroup {
        column: String,
        alpha: f64,
        #[serde(default)]
        families: Vec<Vec<String>>,
        #[serde(default = "one")]
        profile_seed: u64,
    },
}

impl Partitioner {
    /// Indices of `families` (one attack family per row, "normal" for
    /// benign) for each of `parts` participants. `groups` is each row's
    /// value of the column a [`Partitioner::BenignByGroup`] names.
    pub fn split(
        &self,
        families: &[String],
        groups: Option<&[String]>,
        parts: usize,
        seed: u64,
    ) -> Result<Vec<Vec<usize>>, DatasetError> {
        match self {
            Partitioner::BenignByGroup {
                column,
                alpha,
                families: assigned,
                profile_seed,
            } => {
                let groups = groups.ok_or_else(|| {
                    DatasetError::Partition(format!(
                        "benign-by-group needs each row's `{column}`; the data has no such column"
                    ))
                })?;
                benign_by_group(
                    families,
                    groups,
                    assigned,
                    parts,
                    (*alpha, *profile_seed),
                    seed,
                )
            }
            Partitioner::Iid => iid_indices(families.len(), parts, seed),
            Partitioner::ByFamily { families: assigned } => {
                if assigned.len() != parts {
                    return Err(DatasetError::Partition(format!(
                        "by-family lists families for {} participants but there are {parts}; give one list per participant",
                        assigned.len()
                    )));
                }
                by_family(families, assigned, seed)
            }
            Partitioner::DirichletLabelSkew { alpha } => {
                dirichlet_label_skew(families, parts, *alpha, seed)
            }
            Partitioner::QuantitySkew { alpha } => {
                quantity_skew(families.len(), parts, *alpha, seed)
            }
        }
    }
}

fn one() -> u64 {
    1
}

fn rng(seed: u64, salt: u64) -> ChaCha8Rng {
    stream(seed, salt, Purpose::Partition)
}

/// A random permutation of `0..len` dealt round-robin into `parts` parts:
/// part sizes differ by at most one, every index appears exactly once.
pub fn iid_indices(len: usize, parts: usize, seed: u64) -> Result<Vec<Vec<usize>>, DatasetError> {
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng(seed, 0));
    Ok(deal(&order, parts))
}

fn deal(order: &[usize], parts: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = (0..parts)
        .map(|_| Vec::with_capacity(order.len() / parts + 1))
        .collect();
    for (i, &index) in order.iter().enumerate() {
        out[i % parts].push(index);
    }
    out
}

/// `items` split IID into `parts` parts (see [`iid_indices`]).
pub fn iid_split<T: Clone>(
    items: &[T],
    parts: usize,
    seed: u64,
) -> Result<Vec<Vec<T>>, DatasetError> {
    Ok(iid_indices(items.len(), parts, seed)?
        .into_iter()
        .map(|part| part.into_iter().map(|i| items[i].clone()).collect())
        .collect())
}

/// Rows grouped by family, in a fixed (sorted) family order.
fn rows_by_family(families: &[String]) -> std::collections::BTreeMap<&str, Vec<usize>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, f) in families.iter().enumerate() {
        groups.entry(f.as_str()).or_default().push(i);
    }
    groups
}

/// Benign rows split IID (disjoint, balanced) among all participants;
/// rows of each attack family split IID among the participants assigned
/// it; rows of families nobody is assigned are left out.
pub fn by_family(
    families: &[String],
    assigned: &[Vec<String>],
    seed: u64,
) -> Result<Vec<Vec<usize>>, DatasetError> {
    let parts = assigned.len();
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut out = vec![Vec::new(); parts];
    for (salt, (family, mut rows)) in rows_by_family(families).into_iter().enumerate() {
        let takers: Vec<usize> = if family == NORMAL {
            (0..parts).collect()
        } else {
            (0..parts)
                .filter(|&p| assigned[p].iter().any(|f| f == family))
                .collect()
        };
        if takers.is_empty() {
            continue;
        }
        rows.shuffle(&mut rng(seed, 1 + salt as u64));
        for (k, part) in deal(&rows, takers.len()).into_iter().enumerate() {
            out[takers[k]].extend(part);
        }
    }
    for (p, fams) in assigned.iter().enumerate() {
        for f in fams {
            if !families.iter().any(|x| x == f) {
                return Err(DatasetError::Partition(format!(
                    "participant {p} is assigned family `{f}`, which no row has; check the family names"
                )));
            }
        }
    }
    Ok(out)
}

/// `parts` shares summing to 1 from Dirichlet(α, …, α).
fn dirichlet(parts: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Result<Vec<f64>, DatasetError> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(DatasetError::Partition(format!(
            "alpha = {alpha}; it must be finite and > 0 (0.1 is very skewed, 100 nearly IID)"
        )));
    }
    let gamma = Gamma::new(alpha, 1.0)
        .map_err(|e| DatasetError::Partition(format!("alpha = {alpha}: {e}")))?;
    loop {
        let draws: Vec<f64> = (0..parts).map(|_| gamma.sample(rng)).collect();
        let total: f64 = draws.iter().sum();
        // All-zero draws (underflow at tiny alpha) are redrawn.
        if total > 0.0 && total.is_finite() {
            return Ok(draws.iter().map(|d| d / total).collect());
        }
    }
}

/// Cuts `rows` into consecutive pieces proportional to `shares`.
fn cut(rows: &[usize], shares: &[f64]) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(shares.len());
    let mut start = 0usize;
    let mut acc = 0.0f64;
    for (k, share) in shares.iter().enumerate() {
        acc += share;
        let end = if k + 1 == shares.len() {
            rows.len()
        } else {
            ((acc * rows.len() as f64).round() as usize).clamp(start, rows.len())
        };
        out.push(rows[start..end].to_vec());
        start = end;
    }
    out
}

/// The shares of a group's benign rows, one per participant: Dirichlet(α),
/// drawn from the seed and the group's name alone, so the training split
/// and every test slice give a group the same shares.
fn group_shares(
    group: &str,
    parts: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<f64>, DatasetError> {
    // FNV-1a: a stable hash of the name (std's hasher may change).
    let salt = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    dirichlet(parts, alpha, &mut rng(seed, 5000 ^ salt))
}

/// Benign rows grouped by their `groups` value, in a fixed order.
fn benign_groups<'a>(
    families: &[String],
    groups: &'a [String],
) -> Result<std::collections::BTreeMap<&'a str, Vec<usize>>, DatasetError> {
    if groups.len() != families.len() {
        return Err(DatasetError::Partition(format!(
            "{} group values for {} rows",
            groups.len(),
            families.len()
        )));
    }
    let mut out: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, g) in groups.iter().enumerate() {
        if families[i] == NORMAL {
            out.entry(g.as_str()).or_default().push(i);
        }
    }
    Ok(out)
}

/// SOCs whose normal traffic differs: the benign rows of each group
/// (value of a column such as `service`) shared out in Dirichlet(α)
/// proportions drawn from `profile_seed`, so at small α each kind of
/// normal traffic lives mostly at a few SOCs; which rows go where follows
/// `seed`. Attack rows go as `assigned` says (see [`by_family`]), or IID
/// among everyone when `assigned` is empty.
pub fn benign_by_group(
    families: &[String],
    groups: &[String],
    assigned: &[Vec<String>],
    parts: usize,
    (alpha, profile_seed): (f64, u64),
    seed: u64,
) -> Result<Vec<Vec<usize>>, DatasetError> {
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    if !assigned.is_empty() && assigned.len() != parts {
        return Err(DatasetError::Partition(format!(
            "families are listed for {} participants but there are {parts}; give one list per participant, or none to share attacks IID",
            assigned.len()
        )));
    }
    let mut out = vec![Vec::new(); parts];
    for (group, mut rows) in benign_groups(families, groups)? {
        rows.shuffle(&mut rng(seed, 6000));
        let shares = group_shares(group, parts, alpha, profile_seed)?;
        for (p, piece) in cut(&rows, &shares).into_iter().enumerate() {
            out[p].extend(piece);
        }
    }
    // Attacks: by family when assigned, else every family IID.
    let attacks: Vec<String> = families
        .iter()
        .map(|f| {
            if f == NORMAL {
                String::new()
            } else {
                f.clone()
            }
        })
        .collect();
    let everyone: Vec<Vec<String>>;
    let assigned = if assigned.is_empty() {
        let all: Vec<String> = rows_by_family(families)
            .into_keys()
            .filter(|f| *f != NORMAL)
            .map(str::to_string)
            .collect();
        everyone = vec![all; parts];
        &everyone
    } else {
        assigned
    };
    let attack_split = by_family(&attacks, assigned, seed)?;
    for (p, rows) in attack_split.into_iter().enumerate() {
        // `by_family` treats "" as a family nobody is assigned: only
        // attack rows come back.
        out[p].extend(rows);
    }
    for (p, part) in out.iter_mut().enumerate() {
        part.shuffle(&mut rng(seed, 7000 + p as u64));
        if !part.iter().any(|&i| families[i] == NORMAL) {
            return Err(DatasetError::Partition(format!(
                "participant {p} got no benign rows at alpha = {alpha}; raise alpha or use fewer participants"
            )));
        }
    }
    Ok(out)
}

/// A test set cut the way [`benign_by_group`] cut the training rows: slice
/// `p` holds participant `p`'s share of each group's benign test rows
/// (same shares as its training rows, from the same `profile_seed`) and
/// every attack row. The benign parts are disjoint and together cover
/// every benign row.
pub fn benign_slices(
    families: &[String],
    groups: &[String],
    parts: usize,
    alpha: f64,
    profile_seed: u64,
) -> Result<Vec<Vec<usize>>, DatasetError> {
    let seed = profile_seed;
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut out = vec![Vec::new(); parts];
    for (group, mut rows) in benign_groups(families, groups)? {
        rows.shuffle(&mut rng(seed, 8000));
        let shares = group_shares(group, parts, alpha, seed)?;
        for (p, piece) in cut(&rows, &shares).into_iter().enumerate() {
            out[p].extend(piece);
        }
    }
    let attacks: Vec<usize> = (0..families.len())
        .filter(|&i| families[i] != NORMAL)
        .collect();
    for part in &mut out {
        part.extend(&attacks);
        part.sort_unstable();
    }
    Ok(out)
}

/// Per family (benign included), the family's rows shared out in
/// Dirichlet(α) proportions.
pub fn dirichlet_label_skew(
    families: &[String],
    parts: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DatasetError> {
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut out = vec![Vec::new(); parts];
    for (salt, (_, mut rows)) in rows_by_family(families).into_iter().enumerate() {
        let mut r = rng(seed, 1000 + salt as u64);
        rows.shuffle(&mut r);
        let shares = dirichlet(parts, alpha, &mut r)?;
        for (p, piece) in cut(&rows, &shares).into_iter().enumerate() {
            out[p].extend(piece);
        }
    }
    for part in &mut out {
        part.shuffle(&mut rng(seed, 2000));
    }
    Ok(out)
}

/// Sizes in Dirichlet(α) proportions, each participant's rows IID; every
/// participant gets at least one row when there are enough.
pub fn quantity_skew(
    len: usize,
    parts: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DatasetError> {
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut r = rng(seed, 3000);
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut r);
    let mut shares = dirichlet(parts, alpha, &mut r)?;
    if len >= parts {
        // Reserve one row each, share the rest.
        let floor = 1.0 / len as f64;
        shares
            .iter_mut()
            .for_each(|s| *s = floor + *s * (1.0 - floor * parts as f64));
    }
    Ok(cut(&order, &shares))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fams(spec: &[(&str, usize)]) -> Vec<String> {
        spec.iter()
            .flat_map(|(f, n)| std::iter::repeat_n(f.to_string(), *n))
            .collect()
    }

    fn check_disjoint(split: &[Vec<usize>], len: usize) -> usize {
        let mut all: Vec<usize> = split.iter().flatten().copied().collect();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "an index appears twice");
        assert!(all.iter().all(|&i| i < len));
        n
    }

    #[test]
    fn benign_by_group_gives_socs_different_normal_traffic_and_tests_slice_alike() {
        let mut f = fams(&[("normal", 600), ("DoS", 40), ("R2L", 8)]);
        f.push("normal".into());
        let services = ["http", "smtp", "ftp", "dns"];
        let g: Vec<String> = (0..f.len())
            .map(|i| services[i % services.len()].to_string())
            .collect();
        let assigned: Vec<Vec<String>> = vec![vec!["DoS".into()], vec!["R2L".into()], vec![]];
        let split = benign_by_group(&f, &g, &assigned, 3, (0.3, 4), 9).unwrap();
        assert_eq!(check_disjoint(&split, f.len()), f.len());
        assert_eq!(
            split,
            benign_by_group(&f, &g, &assigned, 3, (0.3, 4), 9).unwrap()
        );
        // Attacks went where they were assigned.
        assert!(split[0].iter().all(|&i| f[i] == "normal" || f[i] == "DoS"));
        assert!(split[2].iter().all(|&i| f[i] == "normal"));
        // At alpha 0.3 the SOCs' service mixes differ: some service's share
        // at one SOC is far from its share at another.
        let mix = |p: usize, s: &str| {
            let benign: Vec<usize> = split[p]
                .iter()
                .copied()
                .filter(|&i| f[i] == "normal")
                .collect();
            benign.iter().filter(|&&i| g[i] == s).count() as f64 / benign.len() as f64
        };
        let spread = services
            .iter()
            .map(|s| {
                (0..3).map(|p| mix(p, s)).fold(0.0f64, f64::max)
                    - (0..3).map(|p| mix(p, s)).fold(1.0f64, f64::min)
            })
            .fold(0.0f64, f64::max);
        assert!(spread > 0.3, "service mixes barely differ: {spread}");
        // A test set sliced with the same seed: each SOC's benign slice has
        // its training mix (same shares per service), attacks everywhere.
        let slices = benign_slices(&f, &g, 3, 0.3, 4).unwrap();
        let benign_total: usize = slices
            .iter()
            .map(|s| s.iter().filter(|&&i| f[i] == "normal").count())
            .sum();
        assert_eq!(benign_total, 601);
        for (p, slice) in slices.iter().enumerate() {
            assert_eq!(slice.iter().filter(|&&i| f[i] != "normal").count(), 48);
            for s in services {
                let benign: Vec<usize> = slice
                    .iter()
                    .copied()
                    .filter(|&i| f[i] == "normal")
                    .collect();
                let share =
                    benign.iter().filter(|&&i| g[i] == s).count() as f64 / benign.len() as f64;
                assert!(
                    (share - mix(p, s)).abs() < 0.02,
                    "{p} {s}: {share} vs {}",
                    mix(p, s)
                );
            }
        }
        // Without assignments attacks are shared IID; without groups it is refused.
        let iid = benign_by_group(&f, &g, &[], 3, (0.3, 4), 9).unwrap();
        assert!(iid.iter().all(|part| part.iter().any(|&i| f[i] == "DoS")));
        let p = Partitioner::BenignByGroup {
            column: "service".into(),
            alpha: 0.3,
            families: vec![],
            profile_seed: 4,
        };
        assert!(
            p.split(&f, None, 3, 4)
                .unwrap_err()
                .to_string()
                .contains("`service`")
        );
    }

    #[test]
    fn by_family_gives_each_participant_its_own_attacks() {
        let f = fams(&[
            ("normal", 100),
            ("DoS", 30),
            ("Probe", 20),
            ("R2L", 5),
            ("U2R", 3),
        ]);
        let assigned: Vec<Vec<String>> = ["DoS", "Probe", "R2L", "U2R"]
            .iter()
            .map(|x| vec![x.to_string()])
            .collect();
        let split = by_family(&f, &assigned, 7).unwrap();
        assert_eq!(check_disjoint(&split, f.len()), f.len());
        for (p, part) in split.iter().enumerate() {
            let normal = part.iter().filter(|&&i| f[i] == "normal").count();
            assert_eq!(normal, 25, "a quarter of the normal rows each");
            assert!(
                part.iter()
                    .all(|&i| f[i] == "normal" || f[i] == assigned[p][0])
            );
        }
        assert_eq!(split, by_family(&f, &assigned, 7).unwrap());
        assert_ne!(split, by_family(&f, &assigned, 8).unwrap());
        let wrong = vec![vec!["Dos".to_string()]];
        assert!(
            by_family(&f, &wrong, 1)
                .unwrap_err()
                .to_string()
                .contains("`Dos`")
        );
    }

    #[test]
    fn dirichlet_skews_labels_more_at_small_alpha() {
        let f = fams(&[("normal", 2000), ("a", 2000), ("b", 2000), ("c", 2000)]);
        // Mean over participants of the largest family share: near 1/4 when
        // IID-like, near 1 when each participant holds one family.
        let dominance = |alpha: f64| {
            let split = dirichlet_label_skew(&f, 8, alpha, 3).unwrap();
            assert_eq!(check_disjoint(&split, f.len()), f.len());
            let mut total = 0.0;
            for part in split.iter().filter(|p| !p.is_empty()) {
                let mut counts = std::collections::BTreeMap::new();
                for &i in part {
                    *counts.entry(&f[i]).or_insert(0usize) += 1;
                }
                total += *counts.values().max().unwrap() as f64 / part.len() as f64;
            }
            total / 8.0
        };
        let skewed = dominance(0.1);
        let even = dominance(1000.0);
        assert!(skewed > 0.6, "{skewed}");
        assert!(even < 0.3, "{even}");
        assert!(dirichlet_label_skew(&f, 8, 0.0, 1).is_err());
        assert!(dirichlet_label_skew(&f, 8, f64::NAN, 1).is_err());
    }

    #[test]
    fn quantity_skew_varies_sizes_but_keeps_everyone() {
        let split = quantity_skew(10_000, 8, 0.5, 1).unwrap();
        assert_eq!(check_disjoint(&split, 10_000), 10_000);
        let sizes: Vec<usize> = split.iter().map(Vec::len).collect();
        assert!(sizes.iter().all(|&s| s >= 1));
        assert!(
            sizes.iter().max().unwrap() > &(3 * sizes.iter().min().unwrap()),
            "{sizes:?}"
        );
        assert_eq!(split, quantity_skew(10_000, 8, 0.5, 1).unwrap());
    }

    #[test]
    fn partitioner_reads_from_toml() {
        let p: Partitioner =
            toml::from_str("kind = \"dirichlet-label-skew\"\nalpha = 0.3").unwrap();
        assert_eq!(p, Partitioner::DirichletLabelSkew { alpha: 0.3 });
        let p: Partitioner =
            toml::from_str("kind = \"by-family\"\nfamilies = [[\"DoS\"], [\"Probe\"]]").unwrap();
        assert!(p.split(&fams(&[("DoS", 2)]), None, 3, 0).is_err());
        assert!(toml::from_str::<Partitioner>("kind = \"random\"").is_err());
    }
}
