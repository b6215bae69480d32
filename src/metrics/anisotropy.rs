//! Anisotropy: how much a set of embeddings points the same way.
//!
//! For embeddings `h_1..h_N` and unit vectors `u_i = h_i / ||h_i||`,
//!
//! ```text
//! anisotropy = 1 / (N (N-1)) * Σ_{i ≠ j} cos(h_i, h_j)
//!            = (||Σ_i u_i||² − N) / (N (N − 1))
//! ```
//!
//! The second form is exact and costs O(N·D) instead of the O(N²·D) of the
//! full cosine matrix. It equals LCO-Embedding `Analysis/anisotropy.py`
//! (the mean of the strict lower triangle of sklearn's cosine matrix; the
//! matrix is symmetric, so the lower triangle's mean is the mean over i ≠ j).
//! One difference: the LCO script divides by `np.count_nonzero` of the lower
//! triangle, which silently drops pairs whose cosine is exactly 0; geom
//! divides by the number of pairs, N(N−1)/2. On real hidden states no cosine
//! is exactly 0 and the two agree.
//!
//! A value near 1 means all embeddings occupy a narrow cone (the
//! "representation degeneration" of generative models); near 0, directions
//! are spread out (isotropy).

use ndarray::{Array1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::kernels;
use crate::error::{GeomError, Result};

/// What to do with rows of zero norm, whose cosine is undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZeroNorm {
    /// Fail with an error naming the first such row (default).
    #[default]
    Error,
    /// Leave such rows out of the average.
    Skip,
}

/// Rows per rayon task when summing unit vectors.
const ROWS_PER_TASK: usize = 64;

/// Exact anisotropy: mean cosine over all pairs `i ≠ j`, in O(N·D).
///
/// # Shapes
/// `x`: `[N, D]`, N ≥ 2 rows with non-zero norm.
pub fn anisotropy(x: ArrayView2<f32>, zero: ZeroNorm) -> Result<f64> {
    let (sum, n) = sum_unit_rows(x, None, zero)?;
    Ok(from_unit_sum(&sum, n))
}

/// Centred anisotropy: the mean cosine after subtracting the mean embedding.
///
/// Removes the common direction shared by all rows; what remains measures
/// how the residuals spread. Residuals sum to zero, so for roughly equal
/// norms the value is close to −1/(N−1) unless they share further structure.
///
/// # Shapes
/// `x`: `[N, D]`.
pub fn anisotropy_centered(x: ArrayView2<f32>, zero: ZeroNorm) -> Result<f64> {
    let mean = x
        .map(|&v| v as f64)
        .mean_axis(Axis(0))
        .ok_or_else(|| GeomError::invalid("anisotropy of an empty matrix"))?;
    let (sum, n) = sum_unit_rows(x, Some(&mean), zero)?;
    Ok(from_unit_sum(&sum, n))
}

/// Sampled-pair estimator (Ethayarajh, 2019): mean cosine over `n_pairs`
/// uniformly drawn pairs `i ≠ j` (with replacement), seeded.
///
/// Useful as a cross-check of the exact value and to reproduce papers that
/// used it; the exact [`anisotropy`] is cheaper for every N that fits in memory.
///
/// # Shapes
/// `x`: `[N, D]`.
pub fn anisotropy_sampled(
    x: ArrayView2<f32>,
    n_pairs: usize,
    seed: u64,
    zero: ZeroNorm,
) -> Result<f64> {
    let norms = row_norms(x);
    let keep = kept_rows(&norms, zero)?;
    if n_pairs == 0 {
        return Err(GeomError::invalid(
            "the sampled anisotropy needs at least one pair",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = keep.len();
    let mut total = 0.0f64;
    for _ in 0..n_pairs {
        let a = rng.random_range(0..m);
        let mut b = rng.random_range(0..m - 1);
        if b >= a {
            b += 1;
        }
        let (i, j) = (keep[a], keep[b]);
        let dot: f64 = x
            .row(i)
            .iter()
            .zip(x.row(j))
            .map(|(&p, &q)| p as f64 * q as f64)
            .sum();
        total += dot / (norms[i] * norms[j]);
    }
    Ok(total / n_pairs as f64)
}

/// Mean cosine over pairs `i ≠ j` of a weighted multiset of rows, from unit
/// vectors: used by the bootstrap (`counts[i]` copies of row `i`).
///
/// # Shapes
/// `units`: `[N, D]` unit rows; `counts`: `[N]`.
pub fn anisotropy_weighted(units: ArrayView2<f32>, counts: &[u32]) -> f64 {
    let d = units.ncols();
    let mut s = vec![0.0f64; d];
    let mut n = 0usize;
    for (row, &c) in units.axis_iter(Axis(0)).zip(counts) {
        if c == 0 {
            continue;
        }
        n += c as usize;
        for (acc, &v) in s.iter_mut().zip(row.iter()) {
            *acc += c as f64 * v as f64;
        }
    }
    from_unit_sum(&Array1::from(s), n)
}

/// Unit rows of `x` (zero rows handled by `zero`).
///
/// # Shapes
/// `[N, D]` → `[M, D]`, M = N minus skipped rows.
pub fn unit_rows(x: ArrayView2<f32>, zero: ZeroNorm) -> Result<ndarray::Array2<f32>> {
    let norms = row_norms(x);
    let keep = kept_rows(&norms, zero)?;
    let mut out = ndarray::Array2::<f32>::zeros((keep.len(), x.ncols()));
    for (o, &i) in keep.iter().enumerate() {
        let inv = 1.0 / norms[i];
        for (dst, &v) in out.row_mut(o).iter_mut().zip(x.row(i)) {
            *dst = (v as f64 * inv) as f32;
        }
    }
    Ok(out)
}

fn from_unit_sum(sum: &Array1<f64>, n: usize) -> f64 {
    let sq: f64 = sum.iter().map(|v| v * v).sum();
    (sq - n as f64) / (n as f64 * (n as f64 - 1.0))
}

fn row_norms(x: ArrayView2<f32>) -> Vec<f64> {
    x.axis_iter(Axis(0))
        .into_par_iter()
        .map(|r| match r.as_slice() {
            Some(row) => kernels::sq_norm(row, None).sqrt(),
            None => r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt(),
        })
        .collect()
}

fn kept_rows(norms: &[f64], zero: ZeroNorm) -> Result<Vec<usize>> {
    let mut keep = Vec::with_capacity(norms.len());
    for (i, &nrm) in norms.iter().enumerate() {
        if nrm > 0.0 && nrm.is_finite() {
            keep.push(i);
        } else if !nrm.is_finite() {
            return Err(GeomError::invalid(format!(
                "row {i} has a non-finite value (expected finite embeddings)"
            )));
        } else if zero == ZeroNorm::Error {
            return Err(GeomError::ZeroNormRow {
                what: "the embeddings".into(),
                row: i,
            });
        }
    }
    if keep.len() < 2 {
        return Err(GeomError::invalid(format!(
            "anisotropy needs at least 2 rows with non-zero norm, got {}",
            keep.len()
        )));
    }
    Ok(keep)
}

/// Σ_i (x_i − c) / ||x_i − c|| over kept rows, and how many rows were kept.
fn sum_unit_rows(
    x: ArrayView2<f32>,
    center: Option<&Array1<f64>>,
    zero: ZeroNorm,
) -> Result<(Array1<f64>, usize)> {
    let n = x.nrows();
    let d = x.ncols();
    if n < 2 {
        return Err(GeomError::invalid(format!(
            "anisotropy needs at least 2 rows, got {n}"
        )));
    }
    let x = x.as_standard_layout();
    let center: Option<Vec<f64>> = center.map(|c| c.to_vec());
    let starts: Vec<usize> = (0..n).step_by(ROWS_PER_TASK).collect();
    let partials: Vec<Result<(Vec<f64>, usize)>> = starts
        .par_iter()
        .map(|&start| {
            let end = (start + ROWS_PER_TASK).min(n);
            let mut s = vec![0.0f64; d];
            let mut kept = 0usize;
            for i in start..end {
                let row = x.row(i);
                let row = row.as_slice().expect("standard layout rows are contiguous");
                let sq = kernels::sq_norm(row, center.as_deref());
                if !sq.is_finite() {
                    return Err(GeomError::invalid(format!(
                        "row {i} has a non-finite value (expected finite embeddings)"
                    )));
                }
                if sq == 0.0 {
                    if zero == ZeroNorm::Error {
                        return Err(GeomError::ZeroNormRow {
                            what: if center.is_some() {
                                "the centred embeddings".into()
                            } else {
                                "the embeddings".into()
                            },
                            row: i,
                        });
                    }
                    continue;
                }
                kernels::axpy(&mut s, row, center.as_deref(), 1.0 / sq.sqrt());
                kept += 1;
            }
            Ok((s, kept))
        })
        .collect();
    let mut total = Array1::<f64>::zeros(d);
    let mut kept = 0usize;
    for p in partials {
        let (s, k) = p?;
        kept += k;
        for (t, v) in total.iter_mut().zip(s) {
            *t += v;
        }
    }
    if kept < 2 {
        return Err(GeomError::invalid(format!(
            "anisotropy needs at least 2 rows with non-zero norm, got {kept}"
        )));
    }
    Ok((total, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    /// O(N²) definition, for checking the O(N·D) form.
    fn brute(x: &Array2<f32>) -> f64 {
        let n = x.nrows();
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let (a, b) = (x.row(i), x.row(j));
                    let dot: f64 = a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum();
                    let na: f64 = a.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                    let nb: f64 = b.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                    s += dot / (na * nb);
                }
            }
        }
        s / (n * (n - 1)) as f64
    }

    fn pseudo_random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0) + 0.3)
    }

    #[test]
    fn exact_equals_pairwise_definition() {
        let x = pseudo_random(150, 17, 1);
        assert!((anisotropy(x.view(), ZeroNorm::Error).unwrap() - brute(&x)).abs() < 1e-12);
    }

    #[test]
    fn identical_rows_give_one_and_opposite_rows_give_minus_one() {
        let x = array![[1.0f32, 2.0], [2.0, 4.0], [0.5, 1.0]];
        assert!((anisotropy(x.view(), ZeroNorm::Error).unwrap() - 1.0).abs() < 1e-12);
        let y = array![[1.0f32, 0.0], [-1.0, 0.0]];
        assert!((anisotropy(y.view(), ZeroNorm::Error).unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn centered_removes_the_shared_offset() {
        let x = pseudo_random(200, 32, 2).mapv(|v| v + 0.7);
        let raw = anisotropy(x.view(), ZeroNorm::Error).unwrap();
        let cen = anisotropy_centered(x.view(), ZeroNorm::Error).unwrap();
        assert!(raw > 0.3, "{raw}");
        // Centred residuals sum to zero, so the mean cosine is about −1/(N−1).
        assert!(cen.abs() < 0.02, "{cen}");
    }

    #[test]
    fn sampled_converges_to_exact_and_is_seeded() {
        let x = pseudo_random(100, 8, 3);
        let exact = anisotropy(x.view(), ZeroNorm::Error).unwrap();
        let a = anisotropy_sampled(x.view(), 200_000, 7, ZeroNorm::Error).unwrap();
        let b = anisotropy_sampled(x.view(), 200_000, 7, ZeroNorm::Error).unwrap();
        assert_eq!(a, b);
        assert!((a - exact).abs() < 5e-3, "{a} vs {exact}");
    }

    #[test]
    fn zero_rows_error_or_skip() {
        let x = array![[1.0f32, 0.0], [0.0, 0.0], [0.0, 1.0]];
        let e = anisotropy(x.view(), ZeroNorm::Error)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1"), "{e}");
        let v = anisotropy(x.view(), ZeroNorm::Skip).unwrap();
        assert!(v.abs() < 1e-12);
    }

    #[test]
    fn weighted_matches_materialised_multiset() {
        let x = pseudo_random(20, 5, 4);
        let units = unit_rows(x.view(), ZeroNorm::Error).unwrap();
        let counts: Vec<u32> = (0..20).map(|i| (i % 3) as u32).collect();
        let mut rows = Vec::new();
        for (i, &c) in counts.iter().enumerate() {
            for _ in 0..c {
                rows.push(x.row(i).to_owned());
            }
        }
        let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
        let m = ndarray::stack(Axis(0), &views).unwrap();
        let want = anisotropy(m.view(), ZeroNorm::Error).unwrap();
        assert!((anisotropy_weighted(units.view(), &counts) - want).abs() < 1e-6);
    }
}
