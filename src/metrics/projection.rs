//! Projections of one layer's hidden states to a plane (PCA), and how well a
//! projection keeps neighbourhoods (trustworthiness).
//!
//! * [`pca`] — principal component analysis as scikit-learn's
//!   `PCA(k, svd_solver="full")`: centre the columns, `X_c = U S Vᵀ`; the
//!   components are the top `k` rows of `Vᵀ`, the coordinates `X_c V = U S`,
//!   the explained variance `S² / (N − 1)` and its ratio `S² / ‖X_c‖_F²`.
//!   [`pca_fit`] and [`PcaBasis::transform`] split the two steps, so a basis
//!   fitted on one set (e.g. both modalities together) projects another.
//! * [`trustworthiness`] — `sklearn.manifold.trustworthiness` (Venna &
//!   Kaski 2001) with Euclidean distances.
//!
//! # How PCA is computed
//!
//! `S²` are the eigenvalues of both the Gram matrix `X_c X_cᵀ` (`[N, N]`) and
//! the scatter matrix `X_cᵀ X_c` (`[D, D]`); geom forms the smaller one with
//! one BLAS GEMM in `f64` and takes its top `k` eigenpairs. Up to
//! [`DENSE_EIGEN_MAX`] rows that is a full `nalgebra::SymmetricEigen`; above,
//! a seeded subspace iteration with Rayleigh–Ritz ([`OVERSAMPLE`] extra
//! vectors) run until every wanted Ritz pair has a residual
//! `‖M v − θ v‖ ≤` [`EIGEN_TOL`]` · θ₁`, which is exact to that tolerance,
//! not a randomised approximation (it falls back to the full decomposition
//! if [`MAX_ITERS`] are not enough). From the Gram matrix the components are
//! `V = X_cᵀ U / S`. Components of zero variance (rank-deficient data) are
//! completed deterministically by Gram–Schmidt on the coordinate axes.
//!
//! Signs follow scikit-learn's `svd_flip(u_based_decision=False)`: in every
//! component the loading of largest magnitude is positive (the first one on
//! a tie).

use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{s, Array1, Array2, ArrayView2, Axis, Zip};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::prep::check_finite;
use crate::error::{GeomError, Result};

/// Largest Gram/scatter matrix decomposed in full; larger ones use subspace iteration.
pub const DENSE_EIGEN_MAX: usize = 256;
/// Extra vectors of the subspace iteration beyond the `k` wanted.
pub const OVERSAMPLE: usize = 14;
/// Relative residual at which a Ritz pair counts as converged.
pub const EIGEN_TOL: f64 = 1e-10;
/// Subspace iterations before falling back to the full decomposition.
pub const MAX_ITERS: usize = 2000;
/// Seed of the subspace iteration's starting block (results do not depend
/// on it beyond [`EIGEN_TOL`]; fixed so that they are bit-reproducible).
const EIGEN_SEED: u64 = 0x05ee_d9ca;
/// Eigenvalues below this fraction of the largest count as zero variance.
const ZERO_VARIANCE: f64 = 1e-12;
/// Target size of one block of high-dimensional distances (64 MiB of f64).
const DIST_BLOCK_BYTES: usize = 64 << 20;

/// A fitted PCA basis: what [`PcaBasis::transform`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaBasis {
    /// `[D]` column means of the fitted data.
    pub mean: Array1<f64>,
    /// `[k, D]` principal directions, orthonormal rows, largest variance first.
    pub components: Array2<f64>,
    /// Variance along each component (`S² / (N − 1)`, sklearn's `explained_variance_`).
    pub explained_variance: Vec<f64>,
    /// Fraction of the total variance along each component (sums to ≤ 1).
    pub explained_variance_ratio: Vec<f64>,
}

/// PCA of a data set: its basis and the coordinates of its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// `[N, k]` coordinates of the rows in the basis.
    pub coords: Array2<f64>,
    /// Fraction of the total variance along each component.
    pub explained_variance_ratio: Vec<f64>,
    /// Variance along each component (`S² / (N − 1)`).
    pub explained_variance: Vec<f64>,
    /// `[D]` column means.
    pub mean: Array1<f64>,
    /// `[k, D]` principal directions, orthonormal rows.
    pub components: Array2<f64>,
}

impl Pca {
    /// The basis alone, to project other rows with.
    pub fn basis(&self) -> PcaBasis {
        PcaBasis {
            mean: self.mean.clone(),
            components: self.components.clone(),
            explained_variance: self.explained_variance.clone(),
            explained_variance_ratio: self.explained_variance_ratio.clone(),
        }
    }
}

impl PcaBasis {
    /// Number of components k.
    pub fn n_components(&self) -> usize {
        self.components.nrows()
    }

    /// Coordinates of `x`'s rows in this basis: `(x − mean) · componentsᵀ`.
    ///
    /// # Shapes
    /// `x`: `[M, D]` → `[M, k]`.
    ///
    /// # Errors
    /// [`GeomError::InvalidArgument`] if `x` is not `D` wide or holds a
    /// non-finite value.
    pub fn transform(&self, x: ArrayView2<f32>) -> Result<Array2<f64>> {
        let d = self.mean.len();
        if x.ncols() != d {
            return Err(GeomError::invalid(format!(
                "the PCA basis was fitted on {d} columns, but the data to project has {} \
                 (a joint basis needs both sets to be equally wide)",
                x.ncols()
            )));
        }
        check_finite(x, "PCA input")?;
        Ok(centred(x, &self.mean).dot(&self.components.t()))
    }
}

/// [`PcaBasis::transform`] as a function.
pub fn transform(basis: &PcaBasis, x: ArrayView2<f32>) -> Result<Array2<f64>> {
    basis.transform(x)
}

/// Fits the top-`k` principal components of `x` and projects its rows.
///
/// # Shapes
/// `x`: `[N, D]` → coordinates `[N, k]`, components `[k, D]`.
///
/// # Errors
/// As [`pca_fit`].
pub fn pca(x: ArrayView2<f32>, k: usize) -> Result<Pca> {
    let basis = pca_fit(x, k)?;
    let coords = basis.transform(x)?;
    Ok(Pca {
        coords,
        explained_variance_ratio: basis.explained_variance_ratio,
        explained_variance: basis.explained_variance,
        mean: basis.mean,
        components: basis.components,
    })
}

/// Fits the top-`k` principal components of `x` (see the module docs).
///
/// # Shapes
/// `x`: `[N, D]` → components `[k, D]`.
///
/// # Errors
/// [`GeomError::InvalidArgument`] if `N < 2`, `k` is not in
/// `1..=min(N, D)`, or `x` holds a non-finite value.
pub fn pca_fit(x: ArrayView2<f32>, k: usize) -> Result<PcaBasis> {
    let (n, d) = x.dim();
    if n < 2 {
        return Err(GeomError::invalid(format!(
            "PCA needs at least 2 rows, got {n}"
        )));
    }
    if k == 0 || k > n.min(d) {
        return Err(GeomError::invalid(format!(
            "{k} principal components are out of range for a [{n}, {d}] matrix (expected 1..={})",
            n.min(d)
        )));
    }
    check_finite(x, "PCA input")?;
    let mean = column_means(x);
    let xc = centred(x, &mean);
    let gram = n <= d;
    let m = if gram {
        xc.dot(&xc.t())
    } else {
        xc.t().dot(&xc)
    };
    let total: f64 = m.diag().sum();
    let (vals, vecs) = top_eigen(&m, k);
    let vals: Vec<f64> = vals.into_iter().map(|v| v.max(0.0)).collect();
    let floor = ZERO_VARIANCE * vals[0];
    let mut components = Array2::<f64>::zeros((k, d));
    let mut filled = Vec::with_capacity(k);
    for (c, &lam) in vals.iter().enumerate() {
        if lam <= floor || lam == 0.0 {
            continue;
        }
        let v = if gram {
            xc.t().dot(&vecs.column(c))
        } else {
            vecs.column(c).to_owned()
        };
        let norm = v.dot(&v).sqrt();
        if norm > 0.0 {
            components.row_mut(c).assign(&(v / norm));
            filled.push(c);
        }
    }
    complete_basis(&mut components, &filled);
    for mut row in components.axis_iter_mut(Axis(0)) {
        flip_sign(row.as_slice_mut().expect("standard layout"));
    }
    let explained_variance = vals.iter().map(|&l| l / (n - 1) as f64).collect();
    let explained_variance_ratio = vals
        .iter()
        .map(|&l| if total > 0.0 { l / total } else { 0.0 })
        .collect();
    Ok(PcaBasis {
        mean,
        components,
        explained_variance,
        explained_variance_ratio,
    })
}

/// Column means in `f64`. `[N, D]` → `[D]`.
fn column_means(x: ArrayView2<f32>) -> Array1<f64> {
    let mut sum = Array1::<f64>::zeros(x.ncols());
    for row in x.axis_iter(Axis(0)) {
        Zip::from(&mut sum)
            .and(&row)
            .for_each(|s, &v| *s += v as f64);
    }
    sum / x.nrows() as f64
}

/// `x − mean` in `f64`. `[N, D]` → `[N, D]`.
fn centred(x: ArrayView2<f32>, mean: &Array1<f64>) -> Array2<f64> {
    let mut out = Array2::<f64>::zeros(x.dim());
    Zip::from(out.axis_iter_mut(Axis(0)))
        .and(x.axis_iter(Axis(0)))
        .par_for_each(|mut o, r| {
            Zip::from(&mut o)
                .and(&r)
                .and(mean)
                .for_each(|o, &v, &m| *o = v as f64 - m);
        });
    out
}

/// sklearn's `svd_flip(u_based_decision=False)` for one component: the
/// entry of largest magnitude (the first on a tie) becomes positive.
fn flip_sign(v: &mut [f64]) {
    let mut best = 0;
    for (j, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = j;
        }
    }
    if v[best] < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

/// Fills the rows of `basis` not listed in `filled` with unit vectors
/// orthogonal to every other row: coordinate axes, in order, by Gram–Schmidt.
fn complete_basis(basis: &mut Array2<f64>, filled: &[usize]) {
    let (k, d) = basis.dim();
    let mut done: Vec<usize> = filled.to_vec();
    let mut axis = 0;
    for c in (0..k).filter(|c| !filled.contains(c)) {
        while axis < d {
            let mut v = Array1::<f64>::zeros(d);
            v[axis] = 1.0;
            axis += 1;
            for _ in 0..2 {
                for &r in &done {
                    let p = basis.row(r).dot(&v);
                    v.scaled_add(-p, &basis.row(r));
                }
            }
            let norm = v.dot(&v).sqrt();
            if norm > 0.5 {
                basis.row_mut(c).assign(&(v / norm));
                done.push(c);
                break;
            }
        }
    }
}

/// The `k` largest eigenvalues of a symmetric positive semi-definite matrix
/// and their unit eigenvectors, largest first.
///
/// # Shapes
/// `m`: `[M, M]` → (`k` values, `[M, k]` vectors).
fn top_eigen(m: &Array2<f64>, k: usize) -> (Vec<f64>, Array2<f64>) {
    let size = m.nrows();
    if size <= DENSE_EIGEN_MAX || k + OVERSAMPLE >= size {
        return dense_eigen(m, k);
    }
    subspace_eigen(m, k).unwrap_or_else(|| dense_eigen(m, k))
}

/// Top-`k` eigenpairs from the full decomposition (ties: lowest index first).
fn dense_eigen(m: &Array2<f64>, k: usize) -> (Vec<f64>, Array2<f64>) {
    let size = m.nrows();
    let std = m.as_standard_layout();
    let dm = DMatrix::from_row_slice(size, size, std.as_slice().expect("standard layout"));
    let eig = SymmetricEigen::new(dm);
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&i, &j| {
        eig.eigenvalues[j]
            .total_cmp(&eig.eigenvalues[i])
            .then(i.cmp(&j))
    });
    let mut vecs = Array2::<f64>::zeros((size, k));
    let mut vals = Vec::with_capacity(k);
    for (c, &i) in order.iter().take(k).enumerate() {
        vals.push(eig.eigenvalues[i]);
        for r in 0..size {
            vecs[[r, c]] = eig.eigenvectors[(r, i)];
        }
    }
    (vals, vecs)
}

/// Top-`k` eigenpairs by subspace iteration with Rayleigh–Ritz, or `None`
/// if they have not converged to [`EIGEN_TOL`] within [`MAX_ITERS`].
///
/// Each step is one GEMM `M Q` (`[M, M] × [M, k + p]`), a `(k + p)²`
/// eigenproblem and a re-orthonormalisation; the error shrinks like
/// `(λ_{k+p+1} / λ_k)` per step.
fn subspace_eigen(m: &Array2<f64>, k: usize) -> Option<(Vec<f64>, Array2<f64>)> {
    let size = m.nrows();
    let l = k + OVERSAMPLE;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(EIGEN_SEED);
    let mut q = Array2::from_shape_fn((size, l), |_| rng.random_range(-1.0..1.0));
    orthonormalize(&mut q, &mut rng);
    for _ in 0..MAX_ITERS {
        let z = m.dot(&q);
        let mut h = q.t().dot(&z);
        let ht = h.t().to_owned();
        h = (&h + &ht) * 0.5;
        let (theta, w) = dense_eigen(&h, l);
        let y = q.dot(&w);
        let zw = z.dot(&w);
        let scale = theta[0].abs().max(f64::MIN_POSITIVE);
        let converged = (0..k).all(|c| {
            let r = &zw.column(c) - &(&y.column(c) * theta[c]);
            r.dot(&r).sqrt() <= EIGEN_TOL * scale
        });
        if converged {
            let vecs = y.slice(s![.., ..k]).to_owned();
            return Some((theta[..k].to_vec(), vecs));
        }
        q = zw;
        orthonormalize(&mut q, &mut rng);
    }
    None
}

/// Orthonormalises the columns of `q` in place (modified Gram–Schmidt,
/// twice, on the contiguous rows of `qᵀ`); a column that vanishes is
/// replaced by a fresh random one.
fn orthonormalize(q: &mut Array2<f64>, rng: &mut impl Rng) {
    let mut qt = q.t().as_standard_layout().into_owned();
    let (cols, rows) = qt.dim();
    for c in 0..cols {
        let (done, mut rest) = qt.view_mut().split_at(Axis(0), c);
        let mut v = rest.row_mut(0);
        for attempt in 0..4 {
            let before = v.dot(&v).sqrt();
            for _ in 0..2 {
                for p in done.axis_iter(Axis(0)) {
                    let proj = p.dot(&v);
                    v.scaled_add(-proj, &p);
                }
            }
            let norm = v.dot(&v).sqrt();
            if norm > 1e-8 * before && norm > 0.0 {
                v.mapv_inplace(|x| x / norm);
                break;
            }
            v.assign(&Array1::from_shape_fn(rows, |_| {
                rng.random_range(-1.0..1.0)
            }));
            debug_assert!(attempt < 3, "cannot orthonormalise column {c}");
        }
    }
    q.assign(&qt.t());
}

/// Trustworthiness of a low-dimensional embedding, as
/// `sklearn.manifold.trustworthiness(high, low, n_neighbors=k)` (Euclidean):
///
/// `T(k) = 1 − 2 / (N k (2N − 3k − 1)) · Σ_i Σ_{j ∈ U_k(i)} max(0, r(i, j) − k)`
///
/// where `U_k(i)` are the `k` nearest neighbours of `i` in the embedding and
/// `r(i, j)` is the rank of `j` among `i`'s neighbours in the original space
/// (1 = nearest). 1 means every neighbour in the plane is a true neighbour;
/// a random embedding scores about 0.5.
///
/// Neighbours in the embedding are exact, from a `kiddo` k-d tree for 1 to 3
/// dimensions (brute force above). Ranks in the original space are exact,
/// from `f64` distances computed block by block with one GEMM each (no
/// `N × N` matrix is kept). Ties are broken by the lowest index on both
/// sides (sklearn's `argsort` leaves their order unspecified; without exact
/// ties the two agree).
///
/// # Shapes
/// `high`: `[N, D]`, `low`: `[N, d]`.
///
/// # Errors
/// [`GeomError::InvalidArgument`] if the row counts differ, `k` is not in
/// `1..N/2` (sklearn's constraint), or a value is not finite.
pub fn trustworthiness(high: ArrayView2<f32>, low: ArrayView2<f64>, k: usize) -> Result<f64> {
    let n = high.nrows();
    if low.nrows() != n {
        return Err(GeomError::invalid(format!(
            "trustworthiness needs one embedded point per row: the original data has {n} rows \
             but the embedding has {}",
            low.nrows()
        )));
    }
    if k == 0 || 2 * k >= n {
        return Err(GeomError::invalid(format!(
            "k = {k} neighbours is out of range for the trustworthiness of {n} points \
             (expected 1 <= k < N/2 = {}, as sklearn)",
            n as f64 / 2.0
        )));
    }
    if low.ncols() == 0 {
        return Err(GeomError::invalid("the embedding has no columns"));
    }
    check_finite(high, "trustworthiness: original data")?;
    if let Some(((i, j), v)) = low.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(GeomError::invalid(format!(
            "trustworthiness: embedding row {i}, column {j} is {v} (expected finite values)"
        )));
    }
    let nbrs = embedded_knn(low, k)?;
    let mean = column_means(high);
    let xc = centred(high, &mean);
    let sq: Vec<f64> = xc.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
    let block = (DIST_BLOCK_BYTES / 8 / n).clamp(1, n);
    let mut penalty: u64 = 0;
    for i0 in (0..n).step_by(block) {
        let i1 = (i0 + block).min(n);
        let g = xc.slice(s![i0..i1, ..]).dot(&xc.t());
        penalty += g
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(r, grow)| {
                let i = i0 + r;
                let dist: Vec<f64> = (0..n)
                    .map(|j| {
                        if j == i {
                            f64::INFINITY
                        } else {
                            sq[i] + sq[j] - 2.0 * grow[j]
                        }
                    })
                    .collect();
                nbrs[i * k..(i + 1) * k]
                    .iter()
                    .map(|&j| {
                        let (dj, j) = (dist[j as usize], j as usize);
                        // 1-based rank of j among i's neighbours in the original space.
                        let rank = 1 + dist
                            .iter()
                            .enumerate()
                            .filter(|&(l, &dl)| dl < dj || (dl == dj && l < j))
                            .count();
                        rank.saturating_sub(k) as u64
                    })
                    .sum::<u64>()
            })
            .sum::<u64>();
    }
    let (nf, kf) = (n as f64, k as f64);
    Ok(1.0 - penalty as f64 * 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0)))
}

/// Exact kNN of the rows of a low-dimensional embedding, self excluded,
/// nearest first, ties by lowest index. Returns `[N, k]` row-major indices.
pub fn embedded_knn(low: ArrayView2<f64>, k: usize) -> Result<Vec<u32>> {
    let n = low.nrows();
    if k == 0 || k >= n {
        return Err(GeomError::KOutOfRange { k, n });
    }
    match low.ncols() {
        1 => kd_knn::<1>(low, k),
        2 => kd_knn::<2>(low, k),
        3 => kd_knn::<3>(low, k),
        _ => Ok(brute_knn(low, k)),
    }
}

/// Sorts candidates `(squared distance, index)` nearest first, ties by index,
/// drops `skip`, and keeps `k`.
fn best_k(mut cand: Vec<(f64, u32)>, skip: usize, k: usize) -> Vec<u32> {
    cand.retain(|&(_, j)| j as usize != skip);
    cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cand.truncate(k);
    cand.into_iter().map(|(_, j)| j).collect()
}

/// [`embedded_knn`] with a `kiddo` k-d tree in `K` dimensions.
fn kd_knn<const K: usize>(low: ArrayView2<f64>, k: usize) -> Result<Vec<u32>> {
    let n = low.nrows();
    let pts: Vec<[f64; K]> = low
        .axis_iter(Axis(0))
        .map(|r| std::array::from_fn(|c| r[c]))
        .collect();
    let tree: ImmutableKdTree<f64, K> = ImmutableKdTree::new_from_slice(&pts).map_err(|e| {
        GeomError::invalid(format!("cannot build a k-d tree of the embedding: {e}"))
    })?;
    // k + 2 results: self and k others, plus one to see whether the k-th
    // distance ties with points the query did not return.
    let want = NonZeroUsize::new((k + 2).min(n)).expect("k + 2 > 0");
    let rows: Vec<Vec<u32>> = pts
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let res = tree
                .query(p)
                .nearest_n::<SquaredEuclidean<f64>>(want)
                .execute();
            let far = res.iter().map(|r| r.distance).fold(0.0, f64::max);
            let mut cand: Vec<(f64, u32)> = res.iter().map(|r| (r.distance, r.item)).collect();
            cand.retain(|&(_, j)| j as usize != i);
            cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let kth = cand[k - 1].0;
            if kth < far {
                return best_k(cand, i, k);
            }
            // The k-th distance ties with the farthest returned: gather every
            // point at that distance so that the lowest indices win.
            let all = tree.query(p).within::<SquaredEuclidean<f64>>(kth).execute();
            best_k(all.iter().map(|r| (r.distance, r.item)).collect(), i, k)
        })
        .collect();
    Ok(rows.into_iter().flatten().collect())
}

/// [`embedded_knn`] by brute force (any dimension).
fn brute_knn(low: ArrayView2<f64>, k: usize) -> Vec<u32> {
    let n = low.nrows();
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let xi = low.row(i);
            let cand = (0..n)
                .map(|j| {
                    let d: f64 = xi
                        .iter()
                        .zip(low.row(j))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (d, j as u32)
                })
                .collect();
            best_k(cand, i, k)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    /// Element-wise `|a − b| <= eps` (same shape).
    fn close<D: ndarray::Dimension>(
        a: &ndarray::Array<f64, D>,
        b: &ndarray::Array<f64, D>,
        eps: f64,
    ) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= eps, "{a} vs {b}");
        }
    }

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0))
    }

    /// Rows spread along `dir` with scale 10, plus unit noise.
    fn dominant(n: usize, dir: &Array1<f64>, seed: u64) -> Array2<f32> {
        let noise = random(n, dir.len(), seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1);
        let mut x = noise.mapv(|v| v as f64);
        for mut row in x.axis_iter_mut(Axis(0)) {
            let t: f64 = rng.random_range(-10.0..10.0);
            row.scaled_add(t, dir);
        }
        x.mapv(|v| v as f32)
    }

    #[test]
    fn dominant_direction_is_found() {
        for (n, d) in [(300, 8), (40, 64), (600, 300)] {
            let mut dir = Array1::from_shape_fn(d, |j| ((j * 7 % 5) as f64) - 2.0);
            dir /= dir.dot(&dir).sqrt();
            let x = dominant(n, &dir, 3);
            let p = pca(x.view(), 2).unwrap();
            let cos = p.components.row(0).dot(&dir).abs();
            assert!(cos > 0.99, "[{n}, {d}]: |cos| = {cos}");
            let r = &p.explained_variance_ratio;
            assert!(r[0] > 5.0 * r[1], "[{n}, {d}]: ratios {r:?}");
            let s: f64 = p.explained_variance_ratio.iter().sum();
            assert!(s <= 1.0 + 1e-12);
            // Orthonormal components, largest loading positive.
            let vvt = p.components.dot(&p.components.t());
            close(&vvt, &Array2::eye(2), 1e-9);
            for row in p.components.axis_iter(Axis(0)) {
                let big = row
                    .iter()
                    .fold(0.0f64, |m, v| if v.abs() > m.abs() { *v } else { m });
                assert!(big > 0.0);
            }
        }
    }

    #[test]
    fn hand_computed_case() {
        // Centred rows (±2, ±1) at the corners of a rectangle: variances
        // 4·4/3 along x and 4·1/3 along y, ratios 0.8 and 0.2.
        let x = array![[3.0f32, 1.0], [-1.0, 1.0], [3.0, -1.0], [-1.0, -1.0]];
        let p = pca(x.view(), 2).unwrap();
        close(&p.mean, &array![1.0, 0.0], 1e-12);
        assert_abs_diff_eq!(p.explained_variance[0], 16.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(p.explained_variance[1], 4.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(p.explained_variance_ratio[0], 0.8, epsilon = 1e-12);
        assert_abs_diff_eq!(p.explained_variance_ratio[1], 0.2, epsilon = 1e-12);
        close(&p.components, &array![[1.0, 0.0], [0.0, 1.0]], 1e-12);
        close(
            &p.coords,
            &array![[2.0, 1.0], [-2.0, 1.0], [2.0, -1.0], [-2.0, -1.0]],
            1e-12,
        );
        // One component of two: ratio below 1.
        let p1 = pca(x.view(), 1).unwrap();
        assert!(p1.explained_variance_ratio[0] < 1.0);
    }

    #[test]
    fn two_components_of_2d_data_are_a_rotation() {
        let x = random(50, 2, 9);
        let p = pca(x.view(), 2).unwrap();
        let d = |a: ArrayView2<f64>, i: usize, j: usize| {
            let r = &a.row(i) - &a.row(j);
            r.dot(&r).sqrt()
        };
        let x64 = x.mapv(|v| v as f64);
        for i in 0..50 {
            for j in 0..50 {
                assert_abs_diff_eq!(
                    d(x64.view(), i, j),
                    d(p.coords.view(), i, j),
                    epsilon = 1e-9
                );
            }
        }
        let s: f64 = p.explained_variance_ratio.iter().sum();
        assert_abs_diff_eq!(s, 1.0, epsilon = 1e-12);
    }

    #[test]
    fn subspace_iteration_matches_dense() {
        // Gram path (N < D) above DENSE_EIGEN_MAX, with a decaying spectrum.
        let (n, d) = (400, 500);
        let mut x = random(n, d, 21);
        for (j, mut col) in x.axis_iter_mut(Axis(1)).enumerate() {
            col.mapv_inplace(|v| v * (1.0 + 30.0 / (1.0 + j as f32)));
        }
        let xc = centred(x.view(), &column_means(x.view()));
        let g = xc.dot(&xc.t());
        let (vs, us) = subspace_eigen(&g, 3).expect("converges");
        let (vd, ud) = dense_eigen(&g, 3);
        for c in 0..3 {
            assert_abs_diff_eq!(vs[c], vd[c], epsilon = 1e-8 * vd[0]);
            let cos = us.column(c).dot(&ud.column(c)).abs();
            assert_abs_diff_eq!(cos, 1.0, epsilon = 1e-8);
        }
        // The basis from a set projects another; a basis fitted on x
        // projects x to the same coordinates as pca.
        let p = pca(x.view(), 2).unwrap();
        let b = pca_fit(x.view(), 2).unwrap();
        close(&b.transform(x.view()).unwrap(), &p.coords, 1e-9);
        assert_eq!(p.basis(), b);
        let other = random(7, d, 5);
        assert_eq!(transform(&b, other.view()).unwrap().dim(), (7, 2));
        let e = b.transform(random(3, 4, 1).view()).unwrap_err().to_string();
        assert!(e.contains("500 columns") && e.contains("has 4"), "{e}");
    }

    #[test]
    fn rank_deficient_and_bad_input() {
        // All rows on a line: the second component has zero variance but is
        // still a unit vector orthogonal to the first.
        let x = Array2::from_shape_fn((10, 3), |(i, j)| (i as f32) * [1.0, 2.0, 2.0][j]);
        let p = pca(x.view(), 2).unwrap();
        assert_abs_diff_eq!(p.explained_variance_ratio[0], 1.0, epsilon = 1e-12);
        assert_abs_diff_eq!(p.explained_variance_ratio[1], 0.0, epsilon = 1e-12);
        let vvt = p.components.dot(&p.components.t());
        close(&vvt, &Array2::eye(2), 1e-12);
        // Constant data: no variance at all, ratios 0, coordinates 0.
        let c = Array2::<f32>::ones((5, 4));
        let p = pca(c.view(), 2).unwrap();
        assert_eq!(p.explained_variance_ratio, vec![0.0, 0.0]);
        assert!(p.coords.iter().all(|v| v.abs() < 1e-12));
        assert!(pca(c.view(), 5).is_err());
        assert!(pca(c.view(), 0).is_err());
        assert!(pca(c.slice(s![..1, ..]), 1).is_err());
        let mut nan = c.clone();
        nan[[2, 1]] = f32::NAN;
        let e = pca(nan.view(), 1).unwrap_err().to_string();
        assert!(e.contains("row 2, column 1"), "{e}");
    }

    #[test]
    fn trustworthiness_of_identity_and_shuffle() {
        let x = random(200, 2, 4);
        let low = x.mapv(|v| v as f64);
        assert_abs_diff_eq!(
            trustworthiness(x.view(), low.view(), 10).unwrap(),
            1.0,
            epsilon = 1e-12
        );
        // A rotation and scaling is as good as the identity.
        let rot = array![[0.6, -0.8], [0.8, 0.6]] * 3.0;
        let t = trustworthiness(x.view(), low.dot(&rot).view(), 10).unwrap();
        assert_abs_diff_eq!(t, 1.0, epsilon = 1e-12);
        // PCA of 2-D data to 2-D keeps every neighbourhood.
        let p = pca(x.view(), 2).unwrap();
        assert_abs_diff_eq!(
            trustworthiness(x.view(), p.coords.view(), 5).unwrap(),
            1.0,
            epsilon = 1e-12
        );
        // A shuffle of the rows keeps nothing.
        let perm: Vec<usize> = (0..200).map(|i| (i * 71 + 13) % 200).collect();
        let shuffled = low.select(Axis(0), &perm);
        let t = trustworthiness(x.view(), shuffled.view(), 10).unwrap();
        assert!(t < 0.65, "shuffled: {t}");
    }

    #[test]
    fn trustworthiness_errors_name_the_sizes() {
        let x = random(20, 3, 1);
        let low = Array2::<f64>::zeros((19, 2));
        let e = trustworthiness(x.view(), low.view(), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("20 rows") && e.contains("19"), "{e}");
        let low = Array2::<f64>::zeros((20, 2));
        let e = trustworthiness(x.view(), low.view(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k = 10") && e.contains("N/2 = 10"), "{e}");
        assert!(trustworthiness(x.view(), low.view(), 0).is_err());
        assert!(trustworthiness(x.view(), low.view(), 9).is_ok());
    }

    /// `scripts/gen_projection_fixture.py`: sklearn's `PCA(2, svd_solver="full")`
    /// and `trustworthiness` of a seeded 60×20 matrix.
    #[test]
    fn matches_sklearn_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metrics/projection.json"
        );
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let matrix = |v: &serde_json::Value| -> Array2<f64> {
            let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
            let (n, d) = (rows.len(), rows[0].len());
            Array2::from_shape_vec((n, d), rows.concat()).unwrap()
        };
        let vector =
            |v: &serde_json::Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
        let x = matrix(&j["x"]).mapv(|v| v as f32);
        let want = matrix(&j["pca"]["coords"]);
        let p = pca(x.view(), 2).unwrap();
        for (got, want) in p
            .explained_variance_ratio
            .iter()
            .zip(vector(&j["pca"]["explained_variance_ratio"]))
        {
            assert_abs_diff_eq!(*got, want, epsilon = 1e-9);
        }
        for (got, want) in p
            .explained_variance
            .iter()
            .zip(vector(&j["pca"]["explained_variance"]))
        {
            assert_abs_diff_eq!(*got, want, epsilon = 1e-9 * want);
        }
        for (c, want_c) in want.axis_iter(Axis(1)).enumerate() {
            // Up to sign per component (both follow svd_flip; checked anyway).
            let got_c = p.coords.column(c);
            let sign = if got_c.dot(&want_c) < 0.0 { -1.0 } else { 1.0 };
            assert_eq!(
                sign, 1.0,
                "component {c}: sign differs from sklearn's svd_flip"
            );
            for (g, w) in got_c.iter().zip(want_c) {
                assert_abs_diff_eq!(sign * g, *w, epsilon = 1e-6);
            }
        }
        close(&p.mean, &Array1::from(vector(&j["pca"]["mean"])), 1e-9);
        for t in j["trustworthiness"].as_array().unwrap() {
            let k = t["k"].as_u64().unwrap() as usize;
            let want = t["value"].as_f64().unwrap();
            let got = trustworthiness(x.view(), matrix(&j["pca"]["coords"]).view(), k).unwrap();
            assert_abs_diff_eq!(got, want, epsilon = 1e-12);
            let ours = trustworthiness(x.view(), p.coords.view(), k).unwrap();
            assert_abs_diff_eq!(ours, want, epsilon = 1e-12);
        }
    }

    #[test]
    fn embedded_knn_ties_and_dimensions() {
        // Points on a square grid: many exact ties, broken by lowest index.
        let low = Array2::from_shape_fn((25, 2), |(i, c)| {
            if c == 0 {
                (i % 5) as f64
            } else {
                (i / 5) as f64
            }
        });
        let brute = brute_knn(low.view(), 4);
        assert_eq!(embedded_knn(low.view(), 4).unwrap(), brute);
        assert_eq!(&brute[12 * 4..13 * 4], &[7, 11, 13, 17]);
        // Duplicate points (distance 0 ties with self).
        let dup = Array2::<f64>::zeros((6, 2));
        assert_eq!(&embedded_knn(dup.view(), 2).unwrap()[..4], &[1, 2, 0, 2]);
        for d in [1usize, 3, 5] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d as u64);
            let y = Array2::from_shape_fn((120, d), |_| rng.random_range(-1.0..1.0));
            assert_eq!(
                embedded_knn(y.view(), 6).unwrap(),
                brute_knn(y.view(), 6),
                "d = {d}"
            );
        }
    }
}
