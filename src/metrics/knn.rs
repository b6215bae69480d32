//! Exact k-nearest neighbours by inner product (cosine on unit rows).
//!
//! For rows `x_1..x_N`, the neighbours of `i` are the `k` indices `j ≠ i`
//! with the largest `⟨x_i, x_j⟩`, in decreasing order. Ties are broken by the
//! lowest index, so results are deterministic (platonic-rep's
//! `compute_nearest_neighbors` uses `argsort`, whose order among equal values
//! is unspecified; on inputs without exact ties the two agree).
//!
//! The similarity matrix is never materialised: it is swept in `B × B`
//! blocks of its upper triangle — one GEMM `[B, D] × [D, B]` through the
//! system BLAS per block, whose rows and (transposed) columns update the
//! running top-k of the rows concerned in parallel (rayon) — so memory is
//! O(B² + N·k) on top of the input, with `B ≤ sqrt(BLOCK_BYTES / 4)`.

use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{GeomError, Result};

/// Target size of one block of similarities (64 MiB of f32).
pub const BLOCK_BYTES: usize = 64 << 20;

/// The k nearest neighbours of every row, with their similarities.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    /// Number of rows N.
    pub n: usize,
    /// Neighbours per row k.
    pub k: usize,
    /// Row-major `[N, k]` neighbour indices, most similar first.
    pub idx: Vec<u32>,
    /// Row-major `[N, k]` similarities matching `idx`.
    pub sim: Vec<f32>,
}

impl KnnGraph {
    /// Neighbours of row `i`, most similar first.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.idx[i * self.k..(i + 1) * self.k]
    }

    /// Similarities of row `i`'s neighbours.
    pub fn row_sim(&self, i: usize) -> &[f32] {
        &self.sim[i * self.k..(i + 1) * self.k]
    }

    /// The graph of the same points relabelled by a permutation: row `i` of
    /// the result is row `perm[i]` of `self`, with every neighbour index `j`
    /// mapped to `inv[j]` (`inv` the inverse permutation). This is the graph
    /// one would get by recomputing kNN on the rows shuffled by `perm`.
    pub fn permuted(&self, perm: &[usize]) -> KnnGraph {
        let mut inv = vec![0u32; self.n];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i as u32;
        }
        let mut idx = Vec::with_capacity(self.idx.len());
        let mut sim = Vec::with_capacity(self.sim.len());
        for &p in perm {
            idx.extend(self.row(p).iter().map(|&j| inv[j as usize]));
            sim.extend_from_slice(self.row_sim(p));
        }
        KnnGraph {
            n: self.n,
            k: self.k,
            idx,
            sim,
        }
    }
}

/// Checks `1 <= k <= n - 1`.
pub fn check_k(k: usize, n: usize) -> Result<()> {
    if k == 0 || k >= n {
        return Err(GeomError::KOutOfRange { k, n });
    }
    Ok(())
}

/// Rows (and columns) per block of the symmetric sweep for N rows: small
/// enough that the upper triangle is most of the work (≥ 8 blocks when N
/// allows), large enough for an efficient GEMM, and at most [`BLOCK_BYTES`].
pub fn block_rows(n: usize) -> usize {
    let cap = ((BLOCK_BYTES / 4) as f64).sqrt() as usize;
    n.div_ceil(8).clamp(256, cap).min(n.max(1))
}

/// Exact kNN by inner product, self excluded, ties by lowest index.
///
/// Pass L2-normalised rows for cosine neighbours.
///
/// The Gram matrix is symmetric, so only its upper block triangle is
/// computed: for row blocks `I ≤ J`, one GEMM `S = X_I X_Jᵀ` offers columns
/// `J` to the rows of `I` and (through `Sᵀ`) columns `I` to the rows of `J`.
/// That halves the GEMM work of the naive row sweep; each row keeps its
/// running top-k (O(N·k) state).
///
/// # Shapes
/// `x`: `[N, D]` → graph of `[N, k]`.
pub fn knn(x: ArrayView2<f32>, k: usize) -> Result<KnnGraph> {
    let n = x.nrows();
    check_k(k, n)?;
    let x = x.as_standard_layout();
    let b = block_rows(n);
    let mut idx = vec![u32::MAX; n * k];
    let mut sim = vec![f32::NEG_INFINITY; n * k];
    let mut filled = vec![0usize; n];
    let mut s_buf = Array2::<f32>::zeros((b, b));
    let mut t_buf = Array2::<f32>::zeros((b, b));
    for i0 in (0..n).step_by(b) {
        let i1 = (i0 + b).min(n);
        for j0 in (i0..n).step_by(b) {
            let j1 = (j0 + b).min(n);
            let mut sb = s_buf.slice_mut(s![..i1 - i0, ..j1 - j0]);
            general_mat_mul(
                1.0,
                &x.slice(s![i0..i1, ..]),
                &x.slice(s![j0..j1, ..]).t(),
                0.0,
                &mut sb,
            );
            offer_rows(&mut idx, &mut sim, &mut filled, k, i0, sb.view(), j0);
            if j0 != i0 {
                let mut tb = t_buf.slice_mut(s![..j1 - j0, ..i1 - i0]);
                tb.assign(&sb.t());
                offer_rows(&mut idx, &mut sim, &mut filled, k, j0, tb.view(), i0);
            }
        }
    }
    // Rows whose candidates were all NaN (never for finite inputs): fill
    // the rest deterministically with the lowest unused indices.
    for (r, &f) in filled.iter().enumerate() {
        let (ri, rs) = (&mut idx[r * k..(r + 1) * k], &mut sim[r * k..(r + 1) * k]);
        let mut f = f;
        let mut j = 0u32;
        while f < k {
            if j as usize != r && !ri[..f].contains(&j) {
                ri[f] = j;
                rs[f] = f32::NEG_INFINITY;
                f += 1;
            }
            j += 1;
        }
    }
    Ok(KnnGraph { n, k, idx, sim })
}

/// Offers row `r` of `block` (columns `col0..`) to the running top-k of row
/// `row0 + r`, for every row of the block in parallel.
fn offer_rows(
    idx: &mut [u32],
    sim: &mut [f32],
    filled: &mut [usize],
    k: usize,
    row0: usize,
    block: ndarray::ArrayView2<f32>,
    col0: usize,
) {
    let rows = block.nrows();
    idx[row0 * k..(row0 + rows) * k]
        .par_chunks_mut(k)
        .zip(sim[row0 * k..(row0 + rows) * k].par_chunks_mut(k))
        .zip(filled[row0..row0 + rows].par_iter_mut())
        .zip(block.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(r, (((out_i, out_s), f), vals))| {
            let vals = vals.as_slice().expect("block rows are contiguous");
            offer(vals, col0, row0 + r, out_i, out_s, f);
        });
}

/// Merges candidates `(col0 + j, vals[j])` into a row's running top-k
/// (`out_idx`/`out_sim` sorted best first, `filled` entries valid), skipping
/// column `skip` (the row itself) and NaN. Order: larger value first, then
/// lower index — whatever order the candidates arrive in.
fn offer(
    vals: &[f32],
    col0: usize,
    skip: usize,
    out_idx: &mut [u32],
    out_sim: &mut [f32],
    filled: &mut usize,
) {
    let k = out_idx.len();
    let better = |v: f32, j: u32, sv: f32, sj: u32| v > sv || (v == sv && j < sj);
    for (jj, &v) in vals.iter().enumerate() {
        let j = col0 + jj;
        if j == skip || v.is_nan() {
            continue;
        }
        let j = j as u32;
        if *filled == k {
            if !better(v, j, out_sim[k - 1], out_idx[k - 1]) {
                continue;
            }
            *filled -= 1;
        }
        let mut pos = *filled;
        while pos > 0 && better(v, j, out_sim[pos - 1], out_idx[pos - 1]) {
            out_sim[pos] = out_sim[pos - 1];
            out_idx[pos] = out_idx[pos - 1];
            pos -= 1;
        }
        out_sim[pos] = v;
        out_idx[pos] = j;
        *filled += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::{Rng, SeedableRng};

    fn brute(x: &Array2<f32>, k: usize) -> Vec<u32> {
        let n = x.nrows();
        let mut out = Vec::new();
        for i in 0..n {
            let mut c: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (x.row(i).dot(&x.row(j)), j))
                .collect();
            // decreasing value, then increasing index
            c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            out.extend(c[..k].iter().map(|&(_, j)| j as u32));
        }
        out
    }

    #[test]
    fn matches_brute_force_across_blocks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((300, 12), |_| rng.random_range(-1.0f32..1.0));
        let x = crate::metrics::prep::l2_normalize(x.view());
        let g = knn(x.view(), 7).unwrap();
        assert_eq!(g.idx, brute(&x, 7));
    }

    #[test]
    fn ties_go_to_the_lowest_index_and_self_is_excluded() {
        // Rows 1, 2, 3 are identical: every row ties among the others.
        let x = array![[1.0f32, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]];
        let g = knn(x.view(), 2).unwrap();
        assert_eq!(g.row(1), &[2, 3]);
        assert_eq!(g.row(2), &[1, 3]);
        assert_eq!(g.row(3), &[1, 2]);
        assert_eq!(g.row(0), &[1, 2]);
    }

    #[test]
    fn ties_across_blocks_and_all_nan_rows() {
        // 600 rows → several 256-row blocks; copies of row 5 sit in later blocks.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut x = Array2::from_shape_fn((600, 8), |_| rng.random_range(-1.0f32..1.0));
        let r5 = x.row(5).to_owned();
        for c in [580usize, 300, 299] {
            x.row_mut(c).assign(&r5);
        }
        let x = crate::metrics::prep::l2_normalize(x.view());
        let g = knn(x.view(), 4).unwrap();
        assert_eq!(g.idx, brute(&x, 4));
        assert_eq!(&g.row(5)[..3], &[299, 300, 580]);
        assert_eq!(&g.row(580)[..3], &[5, 299, 300]);
        let mut y = Array2::from_elem((5, 2), f32::NAN);
        y.row_mut(0).fill(1.0);
        let g = knn(y.view(), 2).unwrap();
        assert_eq!(g.row(3), &[0, 1]);
    }

    #[test]
    fn k_must_be_below_n() {
        let x = array![[1.0f32], [2.0]];
        let e = knn(x.view(), 2).unwrap_err().to_string();
        assert!(e.contains("k = 2") && e.contains("N = 2"), "{e}");
        assert!(knn(x.view(), 0).is_err());
    }

    #[test]
    fn permuted_graph_equals_recomputed() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let x = Array2::from_shape_fn((40, 6), |_| rng.random_range(-1.0f32..1.0));
        let perm: Vec<usize> = (0..40).map(|i| (i * 7 + 3) % 40).collect();
        let shuffled = x.select(Axis(0), &perm);
        let g = knn(x.view(), 5).unwrap();
        assert_eq!(g.permuted(&perm).idx, knn(shuffled.view(), 5).unwrap().idx);
    }
}
