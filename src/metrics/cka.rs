//! The CKA family: linear / RBF CKA with the biased HSIC, the unbiased HSIC
//! estimator, and CKNNA.
//!
//! All of these work on `[N, N]` kernel matrices (O(N²) memory, O(N²·D) time
//! for the Gram), computed in `f64` from `f32` inputs. Definitions follow
//! platonic-rep `metrics.py` (`cka`, `unbiased_cka`, `hsic_biased`,
//! `hsic_unbiased`, `cknna`), including its `+ 1e-6` in the denominator.

use ndarray::{linalg::general_mat_mul, Array2, ArrayView2, Axis};

use super::knn::KnnGraph;

/// platonic-rep adds this to the CKA / CKNNA denominator.
pub const CKA_DENOM_EPS: f64 = 1e-6;

/// Linear kernel `K = X Xᵀ` in f64.
///
/// # Shapes
/// `[N, D]` → `[N, N]`.
pub fn linear_kernel(x: ArrayView2<f32>) -> Array2<f64> {
    let x64 = x.mapv(|v| v as f64);
    let n = x.nrows();
    let mut k = Array2::<f64>::zeros((n, n));
    general_mat_mul(1.0, &x64, &x64.t(), 0.0, &mut k);
    k
}

/// RBF kernel `K_ij = exp(−||x_i − x_j||² / (2σ²))`.
///
/// # Shapes
/// `[N, D]` → `[N, N]`.
pub fn rbf_kernel(x: ArrayView2<f32>, sigma: f64) -> Array2<f64> {
    let g = linear_kernel(x);
    let n = g.nrows();
    let diag: Vec<f64> = (0..n).map(|i| g[[i, i]]).collect();
    let denom = 2.0 * sigma * sigma;
    Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            1.0
        } else {
            let d2 = (diag[i] + diag[j] - 2.0 * g[[i, j]]).max(0.0);
            (-d2 / denom).exp()
        }
    })
}

/// Double-centred kernel `H K H`, `H = I − 11ᵀ/N`.
///
/// # Shapes
/// `[N, N]` → `[N, N]`.
pub fn centered(mut k: Array2<f64>) -> Array2<f64> {
    let n = k.nrows() as f64;
    let row_means = k.mean_axis(Axis(1)).expect("non-empty kernel");
    let col_means = k.mean_axis(Axis(0)).expect("non-empty kernel");
    let grand = row_means.sum() / n;
    for ((i, j), v) in k.indexed_iter_mut() {
        *v = *v - row_means[i] - col_means[j] + grand;
    }
    k
}

/// Biased CKA from two centred kernels: `⟨Kc, Lc⟩ / (‖Kc‖ ‖Lc‖ + 1e-6)`
/// (`tr(K H L H) = ⟨HKH, HLH⟩_F`).
pub fn cka_centered(kc: &Array2<f64>, lc: &Array2<f64>) -> f64 {
    let kl = frob_dot(kc, lc);
    let kk = frob_dot(kc, kc);
    let ll = frob_dot(lc, lc);
    kl / ((kk * ll).sqrt() + CKA_DENOM_EPS)
}

fn frob_dot(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

/// A kernel prepared for the unbiased HSIC estimator: zero diagonal, row sums.
#[derive(Debug, Clone)]
pub struct UnbiasedKernel {
    /// `K̃`: the kernel with its diagonal set to 0, `[N, N]`.
    pub kt: Array2<f64>,
    /// Row sums of `K̃`, `[N]`.
    pub row_sums: Vec<f64>,
    /// Sum of all entries of `K̃`.
    pub total: f64,
    /// The diagonal that was zeroed, `[N]` (kept for bootstrap re-indexing).
    pub diag: Vec<f64>,
}

impl UnbiasedKernel {
    /// Prepares a symmetric kernel.
    pub fn new(mut k: Array2<f64>) -> Self {
        let mut diag = Vec::with_capacity(k.nrows());
        for i in 0..k.nrows() {
            diag.push(k[[i, i]]);
            k[[i, i]] = 0.0;
        }
        let row_sums: Vec<f64> = k.sum_axis(Axis(1)).to_vec();
        let total = row_sums.iter().sum();
        Self {
            kt: k,
            row_sums,
            total,
            diag,
        }
    }

    /// Number of rows N.
    pub fn n(&self) -> usize {
        self.kt.nrows()
    }
}

/// Unbiased HSIC (Song et al. 2012, eq. 5) of two symmetric kernels:
///
/// ```text
/// [ Σ K̃∘L̃ᵀ + (1ᵀK̃1)(1ᵀL̃1)/((m−1)(m−2)) − 2·1ᵀK̃L̃1/(m−2) ] / (m(m−3))
/// ```
pub fn hsic_unbiased(k: &UnbiasedKernel, l: &UnbiasedKernel) -> f64 {
    let m = k.n() as f64;
    let trace_term = frob_dot(&k.kt, &l.kt);
    let sums = k.total * l.total / ((m - 1.0) * (m - 2.0));
    // 1ᵀ K̃ L̃ 1 = (K̃ᵀ 1)·(L̃ 1); K̃ is symmetric.
    let cross: f64 = k.row_sums.iter().zip(&l.row_sums).map(|(a, b)| a * b).sum();
    (trace_term + sums - 2.0 * cross / (m - 2.0)) / (m * (m - 3.0))
}

/// Unbiased CKA: `HSIC_u(K, L) / (sqrt(HSIC_u(K, K) HSIC_u(L, L)) + 1e-6)`.
pub fn cka_unbiased(k: &UnbiasedKernel, l: &UnbiasedKernel) -> f64 {
    let kl = hsic_unbiased(k, l);
    let kk = hsic_unbiased(k, k);
    let ll = hsic_unbiased(l, l);
    kl / ((kk * ll).sqrt() + CKA_DENOM_EPS)
}

/// CKNNA (platonic-rep `cknna`, unbiased variant): the unbiased HSIC of the
/// kernels masked to mutual neighbour pairs,
///
/// ```text
/// sim(K, L) = HSIC_u(M∘K, M∘L),  M_ij = 1[j ∈ S_K(i) and j ∈ S_L(i)]
/// cknna     = sim(K, L) / (sqrt(sim(K, K) sim(L, L)) + 1e-6)
/// ```
///
/// where `S_K(i)` are the top-k of row i of K with the diagonal excluded.
/// The masked kernels have at most k entries per row and are not symmetric;
/// they are handled sparsely here (O(N·k²)), from the graphs' neighbour
/// indices and inner products.
pub fn cknna(ga: &KnnGraph, gb: &KnnGraph) -> f64 {
    cknna_weighted(ga, gb, None)
}

/// CKNNA of a resample in which row `i` appears `counts[i]` times, with the
/// neighbour graphs held fixed (copies of one row are not each other's
/// neighbours). `None` = every row once, which is [`cknna`].
pub fn cknna_weighted(ga: &KnnGraph, gb: &KnnGraph, counts: Option<&[u32]>) -> f64 {
    let kl = masked_hsic(ga, gb, counts);
    let kk = masked_hsic(ga, ga, counts);
    let ll = masked_hsic(gb, gb, counts);
    kl / ((kk * ll).sqrt() + CKA_DENOM_EPS)
}

/// `HSIC_u(M∘K, M∘L)` with `M` the mutual mask of the two graphs; `K`
/// values come from `ga.sim`, `L` values from `gb.sim`. With `counts`, the
/// matrices are those of the multiset of rows (row i repeated `counts[i]`
/// times): each entry (i, j) stands for `counts[i]·counts[j]` entries.
fn masked_hsic(ga: &KnnGraph, gb: &KnnGraph, counts: Option<&[u32]>) -> f64 {
    let n = ga.n;
    let w = |i: usize| counts.map_or(1.0, |c| c[i] as f64);
    let m: f64 = counts.map_or(n as f64, |c| c.iter().map(|&x| x as f64).sum());
    // Sparse rows of K̃ = M∘K and L̃ = M∘L: (column, K value, L value).
    let rows: Vec<Vec<(u32, f64, f64)>> = (0..n)
        .map(|i| {
            let (ia, sa) = (ga.row(i), ga.row_sim(i));
            let (ib, sb) = (gb.row(i), gb.row_sim(i));
            ia.iter()
                .zip(sa)
                .filter_map(|(&j, &kv)| {
                    ib.iter()
                        .position(|&x| x == j)
                        .map(|p| (j, kv as f64, sb[p] as f64))
                })
                .collect()
        })
        .collect();
    let mut sum_k = 0.0;
    let mut sum_l = 0.0;
    let mut trace_term = 0.0;
    let mut col_sum_k = vec![0.0f64; n];
    let mut row_sum_l = vec![0.0f64; n];
    for (i, row) in rows.iter().enumerate() {
        let wi = w(i);
        if wi == 0.0 {
            continue;
        }
        for &(j, kv, lv) in row {
            let wj = w(j as usize);
            sum_k += wi * wj * kv;
            sum_l += wi * wj * lv;
            col_sum_k[j as usize] += wi * kv;
            row_sum_l[i] += wj * lv;
            // Σ K̃_ij L̃_ji: needs (j, i) in the mask too.
            if let Some(&(_, _, lji)) = rows[j as usize].iter().find(|e| e.0 as usize == i) {
                trace_term += wi * wj * kv * lji;
            }
        }
    }
    // Σ over resample positions q of (1ᵀK̃)_q (L̃1)_q; position q of row j appears w(j) times.
    let cross: f64 = col_sum_k
        .iter()
        .zip(&row_sum_l)
        .enumerate()
        .map(|(j, (a, b))| w(j) * a * b)
        .sum();
    (trace_term + sum_k * sum_l / ((m - 1.0) * (m - 2.0)) - 2.0 * cross / (m - 2.0))
        / (m * (m - 3.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0))
    }

    /// Dense transcription of the unbiased HSIC formula, for non-symmetric inputs.
    fn hsic_u_dense(k: &Array2<f64>, l: &Array2<f64>) -> f64 {
        let m = k.nrows() as f64;
        let mut kt = k.clone();
        let mut lt = l.clone();
        for i in 0..k.nrows() {
            kt[[i, i]] = 0.0;
            lt[[i, i]] = 0.0;
        }
        let t: f64 = frob_dot(&kt, &lt.t().to_owned());
        let kl = kt.dot(&lt);
        (t + kt.sum() * lt.sum() / ((m - 1.0) * (m - 2.0)) - 2.0 * kl.sum() / (m - 2.0))
            / (m * (m - 3.0))
    }

    #[test]
    fn unbiased_matches_dense_formula() {
        let a = random(30, 6, 1);
        let b = random(30, 4, 2);
        let (k, l) = (linear_kernel(a.view()), linear_kernel(b.view()));
        let got = hsic_unbiased(
            &UnbiasedKernel::new(k.clone()),
            &UnbiasedKernel::new(l.clone()),
        );
        assert!((got - hsic_u_dense(&k, &l)).abs() < 1e-10);
    }

    #[test]
    fn cknna_matches_dense_masks() {
        let a = random(40, 6, 3);
        let b = random(40, 5, 4);
        let k = 6;
        let (ga, gb) = (
            super::super::knn::knn(a.view(), k).unwrap(),
            super::super::knn::knn(b.view(), k).unwrap(),
        );
        let (kk, ll) = (linear_kernel(a.view()), linear_kernel(b.view()));
        let mask = |g1: &KnnGraph, g2: &KnnGraph| {
            Array2::from_shape_fn((40, 40), |(i, j)| {
                f64::from(u8::from(
                    g1.row(i).contains(&(j as u32)) && g2.row(i).contains(&(j as u32)),
                ))
            })
        };
        let sim = |g1: &KnnGraph, g2: &KnnGraph, x: &Array2<f64>, y: &Array2<f64>| {
            let mk = mask(g1, g2);
            hsic_u_dense(&(&mk * x), &(&mk * y))
        };
        let want = sim(&ga, &gb, &kk, &ll)
            / ((sim(&ga, &ga, &kk, &kk) * sim(&gb, &gb, &ll, &ll)).sqrt() + 1e-6);
        assert!(
            (cknna(&ga, &gb) - want).abs() < 1e-6,
            "{} vs {want}",
            cknna(&ga, &gb)
        );
    }

    #[test]
    fn weighted_cknna_with_unit_counts_is_cknna() {
        let a = random(30, 5, 8);
        let b = random(30, 5, 9);
        let (ga, gb) = (
            super::super::knn::knn(a.view(), 4).unwrap(),
            super::super::knn::knn(b.view(), 4).unwrap(),
        );
        let ones = vec![1u32; 30];
        assert!((cknna_weighted(&ga, &gb, Some(&ones)) - cknna(&ga, &gb)).abs() < 1e-12);
        // Doubling every row keeps the masked structure; the value stays finite and close.
        let twos = vec![2u32; 30];
        assert!(cknna_weighted(&ga, &gb, Some(&twos)).is_finite());
    }

    #[test]
    fn biased_cka_is_invariant_to_rotation_and_scale() {
        let a = random(50, 5, 5);
        // Columns permuted and scaled: same kernel up to scale.
        let b = a.slice(s![.., ..;-1]).mapv(|v| 3.0 * v);
        let v = cka_centered(
            &centered(linear_kernel(a.view())),
            &centered(linear_kernel(b.view())),
        );
        assert!((v - 1.0).abs() < 1e-6, "{v}");
    }
}
