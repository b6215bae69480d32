//! Statistics for layer curves: chance levels, permutation tests and
//! bootstrap confidence intervals.
//!
//! * **Chance level** of a kNN metric: its expected value when the pairing
//!   between the two sides is random. For `mutual_knn` it is `k / (N − 1)`
//!   (two independent uniformly random k-subsets of the N − 1 other items
//!   share k²/(N−1) items on average); for `jaccard_knn` it is the
//!   hypergeometric expectation of `t / (2k − t)`. The other kNN metrics have
//!   no closed form here and use the mean of a seeded permutation null.
//! * **Permutation test**: the pairing is shuffled `P` times (the neighbour
//!   graph of B is relabelled, which equals recomputing it on shuffled rows),
//!   and the p-value is `(1 + #{null ≥ observed}) / (1 + P)`.
//! * **Bootstrap**: rows (pairs) are resampled with replacement `B` times and
//!   the percentile interval of the metric is reported. For the kNN family
//!   the per-item scores are resampled with the neighbour graphs held fixed
//!   (recomputing kNN on a resample would make duplicated rows each other's
//!   nearest neighbours); CKNNA likewise keeps the graphs and weights each
//!   row by its multiplicity; for CKA / unbiased CKA the kernel is
//!   re-indexed; SVCCA is recomputed on the resampled rows.

use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::alignment::{knn_item_scores, mean, prepare, score, AlignOptions, Metric, Prepared};
use super::anisotropy::{anisotropy_weighted, unit_rows, ZeroNorm};
use super::cka::{centered, cka_centered, cka_unbiased, cknna_weighted, UnbiasedKernel};
use super::knn::KnnGraph;
use crate::error::Result;

/// Permutations used for a chance level when no closed form exists.
pub const CHANCE_PERMUTATIONS: usize = 100;

/// A two-sided percentile confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ci {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Closed-form chance level of a kNN metric under random pairing, when one exists.
pub fn chance_level_closed_form(metric: Metric, n: usize, k: usize) -> Option<f64> {
    let m = n.checked_sub(1)?;
    match metric {
        Metric::MutualKnn => Some(k as f64 / m as f64),
        Metric::JaccardKnn => {
            // t ~ Hypergeometric(population m, k successes, k draws).
            let ln_choose = |a: usize, b: usize| {
                ln_gamma(a as f64 + 1.0) - ln_gamma(b as f64 + 1.0) - ln_gamma((a - b) as f64 + 1.0)
            };
            let total = ln_choose(m, k);
            let mut e = 0.0;
            for t in 0..=k {
                if k - t > m - k {
                    continue;
                }
                let p = (ln_choose(k, t) + ln_choose(m - k, k - t) - total).exp();
                e += p * t as f64 / (2 * k - t) as f64;
            }
            Some(e)
        }
        _ => None,
    }
}

/// Scores of `metric` under `p` seeded random re-pairings of two kNN graphs.
pub fn permutation_null(
    metric: Metric,
    ga: &KnnGraph,
    gb: &KnnGraph,
    p: usize,
    seed: u64,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm: Vec<usize> = (0..ga.n).collect();
    (0..p)
        .map(|_| {
            perm.shuffle(&mut rng);
            mean(&knn_item_scores(metric, ga, &gb.permuted(&perm)))
        })
        .collect()
}

/// Chance level of a kNN metric: closed form when there is one, else the
/// mean of a seeded permutation null of [`CHANCE_PERMUTATIONS`] draws.
pub fn chance_level(metric: Metric, ga: &KnnGraph, gb: &KnnGraph, seed: u64) -> f64 {
    chance_level_closed_form(metric, ga.n, ga.k)
        .unwrap_or_else(|| mean(&permutation_null(metric, ga, gb, CHANCE_PERMUTATIONS, seed)))
}

/// Permutation p-value `(1 + #{null ≥ observed}) / (1 + P)`.
pub fn p_value(observed: f64, null: &[f64]) -> f64 {
    let ge = null.iter().filter(|&&v| v >= observed - 1e-12).count();
    (1 + ge) as f64 / (1 + null.len()) as f64
}

/// Percentile interval of `values` at `level` (e.g. 0.95), linear interpolation.
pub fn percentile_ci(mut values: Vec<f64>, level: f64) -> Ci {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if values.is_empty() {
            return f64::NAN;
        }
        let pos = p * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
    };
    let alpha = (1.0 - level) / 2.0;
    Ci {
        lo: q(alpha),
        hi: q(1.0 - alpha),
    }
}

/// Bootstrap interval of an alignment metric.
///
/// `pa`/`pb` are the prepared sides; `a`/`b` the raw rows (needed by the
/// metrics recomputed per resample).
///
/// # Shapes
/// `a`: `[N, Da]`, `b`: `[N, Db]`.
#[allow(clippy::too_many_arguments)]
pub fn bootstrap_alignment(
    metric: Metric,
    pa: &Prepared,
    pb: &Prepared,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    opts: &AlignOptions,
    n_boot: usize,
    seed: u64,
    level: f64,
) -> Result<Ci> {
    let n = pa.n();
    if matches!(pa, Prepared::Degenerate(_)) || matches!(pb, Prepared::Degenerate(_)) {
        return Ok(Ci {
            lo: f64::NAN,
            hi: f64::NAN,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n_boot);
    let items = match (pa, pb) {
        (Prepared::Knn(ga), Prepared::Knn(gb)) => Some(knn_item_scores(metric, ga, gb)),
        _ => None,
    };
    for _ in 0..n_boot {
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        let v = match (pa, pb) {
            _ if let Some(s) = &items => idx.iter().map(|&i| s[i]).sum::<f64>() / n as f64,
            (Prepared::Centered(k), Prepared::Centered(l)) => {
                // H' (HKH)[idx, idx] H' = H' K[idx, idx] H': re-centring the sub-kernel is exact.
                cka_centered(&centered(reindex(k, &idx)), &centered(reindex(l, &idx)))
            }
            (Prepared::Unbiased(k), Prepared::Unbiased(l)) => {
                cka_unbiased(&reindex_unbiased(k, &idx), &reindex_unbiased(l, &idx))
            }
            (Prepared::Cknna(ga), Prepared::Cknna(gb)) => {
                let mut counts = vec![0u32; n];
                idx.iter().for_each(|&i| counts[i] += 1);
                cknna_weighted(ga, gb, Some(&counts))
            }
            _ => {
                let ra = a.select(ndarray::Axis(0), &idx);
                let rb = b.select(ndarray::Axis(0), &idx);
                let qa = prepare(metric, ra.view(), opts)?;
                let qb = prepare(metric, rb.view(), opts)?;
                score(metric, &qa, &qb)?
            }
        };
        values.push(v);
    }
    Ok(percentile_ci(values, level))
}

/// Bootstrap interval of the exact anisotropy (rows resampled with replacement).
///
/// # Shapes
/// `x`: `[N, D]`.
pub fn bootstrap_anisotropy(
    x: ArrayView2<f32>,
    zero: ZeroNorm,
    n_boot: usize,
    seed: u64,
    level: f64,
) -> Result<Ci> {
    let units = unit_rows(x, zero)?;
    let n = units.nrows();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut counts = vec![0u32; n];
    let values = (0..n_boot)
        .map(|_| {
            counts.iter_mut().for_each(|c| *c = 0);
            for _ in 0..n {
                counts[rng.random_range(0..n)] += 1;
            }
            anisotropy_weighted(units.view(), &counts)
        })
        .collect();
    Ok(percentile_ci(values, level))
}

fn reindex(k: &Array2<f64>, idx: &[usize]) -> Array2<f64> {
    Array2::from_shape_fn((idx.len(), idx.len()), |(p, q)| k[[idx[p], idx[q]]])
}

/// Sub-kernel of a resample; a row drawn twice pairs with its copy at `K_ii`.
fn reindex_unbiased(k: &UnbiasedKernel, idx: &[usize]) -> UnbiasedKernel {
    let full = Array2::from_shape_fn((idx.len(), idx.len()), |(p, q)| {
        let (i, j) = (idx[p], idx[q]);
        if i == j {
            k.diag[i]
        } else {
            k.kt[[i, j]]
        }
    });
    UnbiasedKernel::new(full)
}

/// Lanczos approximation of ln Γ(x), x > 0 (|error| < 1e-13 here).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::knn::knn;

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0))
    }

    #[test]
    fn closed_form_chance_matches_the_permutation_null() {
        let (a, b) = (random(200, 16, 1), random(200, 16, 2));
        let (ga, gb) = (knn(a.view(), 10).unwrap(), knn(b.view(), 10).unwrap());
        for m in [Metric::MutualKnn, Metric::JaccardKnn] {
            let closed = chance_level_closed_form(m, 200, 10).unwrap();
            let emp = mean(&permutation_null(m, &ga, &gb, 400, 3));
            assert!(
                (closed - emp).abs() < 0.1 * closed,
                "{m}: {closed} vs {emp}"
            );
        }
        assert!(
            (chance_level_closed_form(Metric::MutualKnn, 1001, 10).unwrap() - 0.01).abs() < 1e-15
        );
    }

    #[test]
    fn aligned_data_is_significant_and_random_is_not() {
        let a = random(150, 8, 4);
        let noise = random(150, 8, 5);
        let b = &a + &noise.mapv(|v| 0.1 * v);
        let (ga, gb, gn) = (
            knn(a.view(), 5).unwrap(),
            knn(b.view(), 5).unwrap(),
            knn(noise.view(), 5).unwrap(),
        );
        let obs = mean(&knn_item_scores(Metric::MutualKnn, &ga, &gb));
        let p = p_value(obs, &permutation_null(Metric::MutualKnn, &ga, &gb, 99, 1));
        assert!((p - 0.01).abs() < 1e-12, "{p}");
        let obs0 = mean(&knn_item_scores(Metric::MutualKnn, &ga, &gn));
        let p0 = p_value(obs0, &permutation_null(Metric::MutualKnn, &ga, &gn, 99, 1));
        assert!(p0 > 0.05, "{p0}");
    }

    #[test]
    fn bootstrap_interval_brackets_the_estimate() {
        let a = random(120, 6, 6);
        let b = &a + &random(120, 6, 7).mapv(|v| 0.5 * v);
        let o = AlignOptions {
            k: 5,
            ..Default::default()
        };
        for m in [
            Metric::MutualKnn,
            Metric::Cka,
            Metric::UnbiasedCka,
            Metric::Cknna,
        ] {
            let (pa, pb) = (
                prepare(m, a.view(), &o).unwrap(),
                prepare(m, b.view(), &o).unwrap(),
            );
            let v = score(m, &pa, &pb).unwrap();
            let ci =
                bootstrap_alignment(m, &pa, &pb, a.view(), b.view(), &o, 200, 1, 0.95).unwrap();
            assert!(
                ci.lo < ci.hi && ci.lo <= v + 0.05 && v - 0.05 <= ci.hi,
                "{m}: {v} {ci:?}"
            );
        }
        let ci = bootstrap_anisotropy(a.view(), ZeroNorm::Error, 200, 1, 0.9).unwrap();
        let v = crate::metrics::anisotropy(a.view(), ZeroNorm::Error).unwrap();
        assert!(ci.lo <= v + 0.02 && v - 0.02 <= ci.hi, "{v} {ci:?}");
    }

    #[test]
    fn percentiles() {
        let ci = percentile_ci((0..=100).map(f64::from).collect(), 0.9);
        assert!((ci.lo - 5.0).abs() < 1e-12 && (ci.hi - 95.0).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }
}
