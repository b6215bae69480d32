//! Kernel alignment between two paired sets of embeddings.
//!
//! Given paired rows `a_i ∈ R^{Da}`, `b_i ∈ R^{Db}` (an image and its
//! caption, say), each metric asks how similar the two sets' similarity
//! structures are. The definitions follow minyoungg/platonic-rep `metrics.py`
//! (`AlignmentMetrics`), with `S_A(i)` the k nearest neighbours of `a_i`
//! among the other `a_j` (see [`super::knn`]) and likewise `S_B(i)`:
//!
//! * `mutual_knn` = mean_i |S_A(i) ∩ S_B(i)| / k — the paper's kernel alignment;
//! * `jaccard_knn` = mean_i |S_A(i) ∩ S_B(i)| / |S_A(i) ∪ S_B(i)| (not in platonic-rep);
//! * `cycle_knn` = mean_i 1[i ∈ ∪_{j ∈ S_B(i)} S_A(j)] — go to a neighbour in B, come back through A;
//! * `lcs_knn` = mean_i LCS(S_A(i), S_B(i)) over the *ordered* neighbour lists
//!   (platonic-rep returns the raw length, in `[0, k]`, not divided by k);
//! * `edit_distance_knn` = 1 − mean_i Levenshtein(S_A(i), S_B(i)) / k;
//! * `cka` = HSIC(K, L) / (sqrt(HSIC(K, K) HSIC(L, L)) + 1e-6), biased HSIC
//!   `tr(K H L H)`, linear kernels `K = A Aᵀ`, `L = B Bᵀ`; `cka_rbf` the same with
//!   `K_ij = exp(−||a_i − a_j||² / (2σ²))`;
//! * `unbiased_cka` = the same with the unbiased HSIC estimator (Song et al. 2012, eq. 5);
//! * `cknna` = CKA restricted to mutual k-nearest-neighbour pairs (Huh et al. 2024);
//! * `svcca` = mean canonical correlation between the top-`cca_dim` singular
//!   subspaces of the standardised features (Raghu et al. 2017).
//!
//! Preparation, as platonic-rep's `prepare_features` + `compute_score`:
//! an optional clamp of |x| at the `q` quantile, then optional L2
//! normalisation of rows. geom normalises by default for the kNN family
//! (neighbours by cosine) and not for the CKA family and SVCCA (Kornblith's
//! definitions); `normalize` overrides either default.

use ndarray::ArrayView2;

use super::knn::{check_k, knn, KnnGraph};
use super::{cka, prep, svcca};
use crate::error::{GeomError, Result};

/// A kernel-alignment metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Mutual k-nearest-neighbour overlap (the paper's kernel alignment).
    MutualKnn,
    /// Jaccard index of the two neighbour sets.
    JaccardKnn,
    /// Cycle kNN: can a neighbour in B lead back through A?
    CycleKnn,
    /// Longest common subsequence of the ordered neighbour lists.
    LcsKnn,
    /// One minus the normalised edit distance of the ordered neighbour lists.
    EditDistanceKnn,
    /// Linear CKA (biased HSIC).
    Cka,
    /// RBF-kernel CKA (biased HSIC).
    CkaRbf,
    /// Linear CKA with the unbiased HSIC estimator.
    UnbiasedCka,
    /// CKA restricted to mutual nearest neighbours (unbiased HSIC).
    Cknna,
    /// SVCCA: mean canonical correlation of the top singular subspaces.
    Svcca,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 10] = [
        Metric::MutualKnn,
        Metric::JaccardKnn,
        Metric::CycleKnn,
        Metric::LcsKnn,
        Metric::EditDistanceKnn,
        Metric::Cka,
        Metric::CkaRbf,
        Metric::UnbiasedCka,
        Metric::Cknna,
        Metric::Svcca,
    ];

    /// The name used in JSON output (`mutual_knn`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::MutualKnn => "mutual_knn",
            Metric::JaccardKnn => "jaccard_knn",
            Metric::CycleKnn => "cycle_knn",
            Metric::LcsKnn => "lcs_knn",
            Metric::EditDistanceKnn => "edit_distance_knn",
            Metric::Cka => "cka",
            Metric::CkaRbf => "cka_rbf",
            Metric::UnbiasedCka => "unbiased_cka",
            Metric::Cknna => "cknna",
            Metric::Svcca => "svcca",
        }
    }

    /// True for the metrics computed from kNN graphs alone.
    pub fn is_knn(self) -> bool {
        matches!(
            self,
            Metric::MutualKnn
                | Metric::JaccardKnn
                | Metric::CycleKnn
                | Metric::LcsKnn
                | Metric::EditDistanceKnn
        )
    }

    /// True for the metrics that use `k`.
    pub fn uses_k(self) -> bool {
        self.is_knn() || self == Metric::Cknna
    }

    /// Whether rows are L2-normalised when the user does not say.
    pub fn normalizes_by_default(self) -> bool {
        self.is_knn()
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = GeomError;
    /// Accepts `mutual_knn` and `mutual-knn` spellings.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == norm)
            .ok_or_else(|| {
                GeomError::invalid(format!(
                    "unknown metric '{s}' (expected one of: {})",
                    Metric::ALL.map(|m| m.name().replace('_', "-")).join(", ")
                ))
            })
    }
}

/// Options of the alignment metrics (defaults as platonic-rep / the paper).
#[derive(Debug, Clone, PartialEq)]
pub struct AlignOptions {
    /// Neighbours per row for the kNN family and CKNNA (paper: 10).
    pub k: usize,
    /// L2-normalise rows first; `None` = the metric's default (on for the kNN family).
    pub normalize: Option<bool>,
    /// Clamp |x| at this quantile before normalising (platonic-rep uses 0.95); `None` = off.
    pub clamp_q: Option<f64>,
    /// Bandwidth σ of the RBF kernel.
    pub rbf_sigma: f64,
    /// Subspace dimension of SVCCA.
    pub cca_dim: usize,
}

impl Default for AlignOptions {
    fn default() -> Self {
        Self {
            k: 10,
            normalize: None,
            clamp_q: None,
            rbf_sigma: 1.0,
            cca_dim: 10,
        }
    }
}

impl AlignOptions {
    /// Whether `metric` normalises rows under these options.
    pub fn normalizes(&self, metric: Metric) -> bool {
        self.normalize.unwrap_or(metric.normalizes_by_default())
    }
}

/// One side of a comparison, preprocessed once so that it can be scored
/// against many others (all-pairs mode reuses it across layers).
#[derive(Debug, Clone)]
pub enum Prepared {
    /// kNN graph (kNN family).
    Knn(KnnGraph),
    /// Centred kernel matrix `H K H` (biased CKA), `[N, N]`.
    Centered(ndarray::Array2<f64>),
    /// Kernel with zero diagonal and its row sums (unbiased CKA).
    Unbiased(cka::UnbiasedKernel),
    /// Neighbour graph with inner products (CKNNA).
    Cknna(KnnGraph),
    /// Orthonormal basis of the top singular subspace, `[N, cca_dim]` (SVCCA).
    Svcca(ndarray::Array2<f64>),
    /// Every row the same vector (N rows), so nearest neighbours are
    /// undefined: any score involving it is NaN. (The last-token state of
    /// the embedding layer is one: every prompt ends in the same token.)
    Degenerate(usize),
}

impl Prepared {
    /// Number of rows N.
    pub fn n(&self) -> usize {
        match self {
            Prepared::Knn(g) | Prepared::Cknna(g) => g.n,
            Prepared::Centered(k) => k.nrows(),
            Prepared::Unbiased(u) => u.n(),
            Prepared::Svcca(u) => u.nrows(),
            Prepared::Degenerate(n) => *n,
        }
    }
}

/// Preprocesses one side for `metric`.
///
/// # Shapes
/// `x`: `[N, D]`.
pub fn prepare(metric: Metric, x: ArrayView2<f32>, opts: &AlignOptions) -> Result<Prepared> {
    prep::check_finite(x, "input")?;
    let n = x.nrows();
    if metric.uses_k() {
        check_k(opts.k, n)?;
    }
    if (metric.is_knn() || metric == Metric::Cknna) && all_rows_equal(x) {
        return Ok(Prepared::Degenerate(n));
    }
    let x = prep::prepare(x, opts.clamp_q, opts.normalizes(metric))?;
    Ok(match metric {
        m if m.is_knn() => Prepared::Knn(knn(x.view(), opts.k)?),
        Metric::Cknna => {
            if opts.k < 2 {
                return Err(GeomError::invalid("cknna needs k >= 2 (as platonic-rep)"));
            }
            Prepared::Cknna(knn(x.view(), opts.k)?)
        }
        Metric::Cka => Prepared::Centered(cka::centered(cka::linear_kernel(x.view()))),
        Metric::CkaRbf => {
            if opts.rbf_sigma.is_nan() || opts.rbf_sigma <= 0.0 {
                return Err(GeomError::invalid(format!(
                    "rbf sigma = {} must be > 0",
                    opts.rbf_sigma
                )));
            }
            Prepared::Centered(cka::centered(cka::rbf_kernel(x.view(), opts.rbf_sigma)))
        }
        Metric::UnbiasedCka => {
            if n < 4 {
                return Err(GeomError::invalid(format!(
                    "unbiased CKA needs N >= 4 rows, got {n}"
                )));
            }
            Prepared::Unbiased(cka::UnbiasedKernel::new(cka::linear_kernel(x.view())))
        }
        Metric::Svcca => Prepared::Svcca(svcca::top_subspace(x.view(), opts.cca_dim)?),
        _ => unreachable!("every metric is handled above"),
    })
}

/// Scores two prepared sides.
pub fn score(metric: Metric, a: &Prepared, b: &Prepared) -> Result<f64> {
    GeomError::check_rows("a", a.n(), "b", b.n())?;
    Ok(match (a, b) {
        (Prepared::Degenerate(_), _) | (_, Prepared::Degenerate(_)) => f64::NAN,
        (Prepared::Knn(ga), Prepared::Knn(gb)) => mean(&knn_item_scores(metric, ga, gb)),
        (Prepared::Centered(k), Prepared::Centered(l)) => cka::cka_centered(k, l),
        (Prepared::Unbiased(k), Prepared::Unbiased(l)) => cka::cka_unbiased(k, l),
        (Prepared::Cknna(ga), Prepared::Cknna(gb)) => cka::cknna(ga, gb),
        (Prepared::Svcca(ua), Prepared::Svcca(ub)) => svcca::mean_canonical_correlation(ua, ub),
        _ => {
            return Err(GeomError::invalid(format!(
                "{metric}: the two sides were prepared for different metrics"
            )))
        }
    })
}

/// Whether every row of `x` is the same vector (bit for bit).
fn all_rows_equal(x: ArrayView2<f32>) -> bool {
    let Some(first) = x.rows().into_iter().next() else {
        return false;
    };
    x.nrows() > 1 && x.rows().into_iter().all(|r| r == first)
}

/// Kernel alignment of two paired sets in one call.
///
/// # Shapes
/// `a`: `[N, Da]`, `b`: `[N, Db]`.
pub fn align(
    metric: Metric,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    opts: &AlignOptions,
) -> Result<f64> {
    GeomError::check_rows("a", a.nrows(), "b", b.nrows())?;
    let pa = prepare(metric, a, opts)?;
    let pb = prepare(metric, b, opts)?;
    score(metric, &pa, &pb)
}

/// Per-item scores of a kNN-family metric; their mean is the metric.
///
/// # Shapes
/// both graphs `[N, k]` → `[N]`.
pub fn knn_item_scores(metric: Metric, ga: &KnnGraph, gb: &KnnGraph) -> Vec<f64> {
    let k = ga.k;
    (0..ga.n)
        .map(|i| {
            let (ra, rb) = (ga.row(i), gb.row(i));
            match metric {
                Metric::MutualKnn => overlap(ra, rb) as f64 / k as f64,
                Metric::JaccardKnn => {
                    let t = overlap(ra, rb);
                    t as f64 / (ra.len() + rb.len() - t) as f64
                }
                Metric::CycleKnn => {
                    let back = rb.iter().any(|&j| ga.row(j as usize).contains(&(i as u32)));
                    f64::from(u8::from(back))
                }
                Metric::LcsKnn => lcs(ra, rb) as f64,
                Metric::EditDistanceKnn => 1.0 - levenshtein(ra, rb) as f64 / k as f64,
                _ => unreachable!("{metric} is not a kNN metric"),
            }
        })
        .collect()
}

/// Mean of a slice (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// |a ∩ b| for short lists of distinct indices.
fn overlap(a: &[u32], b: &[u32]) -> usize {
    a.iter().filter(|x| b.contains(x)).count()
}

/// Length of the longest common subsequence.
fn lcs(a: &[u32], b: &[u32]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Levenshtein distance (unit insert, delete, substitute), as torchaudio's `edit_distance`.
fn levenshtein(a: &[u32], b: &[u32]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, &x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(x != y);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_distances() {
        assert_eq!(lcs(&[1, 2, 3, 4], &[2, 4, 3]), 2);
        assert_eq!(lcs(&[1, 2], &[3, 4]), 0);
        assert_eq!(levenshtein(&[1, 2, 3], &[1, 3]), 1);
        assert_eq!(levenshtein(&[1, 2, 3], &[3, 2, 1]), 2);
        assert_eq!(levenshtein(&[], &[1, 2]), 2);
    }

    #[test]
    fn identical_rows_have_no_neighbours() {
        // Every prompt ends in the same token, so the embedding layer's
        // last-token states are all one vector: ties everywhere, and an
        // index-order tie-break would give a perfect (and meaningless) 1.0.
        let same = ndarray::Array2::<f32>::from_elem((20, 4), 0.5);
        let other =
            ndarray::Array2::<f32>::from_shape_fn((20, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
        let opts = AlignOptions::default();
        for m in [Metric::MutualKnn, Metric::JaccardKnn, Metric::Cknna] {
            assert!(
                align(m, same.view(), other.view(), &opts).unwrap().is_nan(),
                "{m}"
            );
            assert!(
                align(m, other.view(), same.view(), &opts).unwrap().is_nan(),
                "{m}"
            );
        }
        assert!(align(Metric::MutualKnn, other.view(), other.view(), &opts).unwrap() > 0.99);
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
            assert_eq!(m.name().replace('_', "-").parse::<Metric>().unwrap(), m);
        }
        let e = "mutual".parse::<Metric>().unwrap_err().to_string();
        assert!(e.contains("mutual-knn"), "{e}");
    }

    #[test]
    fn identical_sides_align_perfectly() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x = ndarray::Array2::from_shape_fn((60, 8), |_| rng.random_range(-1.0f32..1.0));
        let o = AlignOptions {
            k: 5,
            cca_dim: 5,
            ..Default::default()
        };
        for m in [
            Metric::MutualKnn,
            Metric::JaccardKnn,
            Metric::CycleKnn,
            Metric::EditDistanceKnn,
        ] {
            assert!(
                (align(m, x.view(), x.view(), &o).unwrap() - 1.0).abs() < 1e-12,
                "{m}"
            );
        }
        assert!((align(Metric::LcsKnn, x.view(), x.view(), &o).unwrap() - 5.0).abs() < 1e-12);
        for m in [
            Metric::Cka,
            Metric::CkaRbf,
            Metric::UnbiasedCka,
            Metric::Cknna,
            Metric::Svcca,
        ] {
            let v = align(m, x.view(), x.view(), &o).unwrap();
            assert!((v - 1.0).abs() < 1e-4, "{m}: {v}");
        }
    }
}
