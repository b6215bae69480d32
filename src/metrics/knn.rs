//! Exact k-nearest neighbours by inner product (cosine on unit rows).
//!
//! For rows `x_1..x_N`, the neighbours of `i` are the `k` indices `j ≠ i`
//! with the largest `⟨x_i, x_j⟩`, in decreasing order. Ties are broken by the
//! lowest index, so results are deterministic (platonic-rep's
//! `compute_nearest_neighbors` uses `argsort`, whose order among equal values
//! is unspecified; on inputs without exact ties the two agree).
//!
//! The similarity matrix is never materialised: rows are processed in blocks
//! of `B` against all N columns — one GEMM `[B, D] × [D, N]` through the
//! system BLAS, then a partial selection per row in parallel (rayon) — so
//! memory is O(B·N) on top of the input, with `B` chosen to keep the block
//! near [`BLOCK_BYTES`].

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

/// Rows per block for N columns.
pub fn block_rows(n: usize) -> usize {
    (BLOCK_BYTES / (4 * n.max(1))).clamp(16, 2048)
}

/// Exact kNN by inner product, self excluded, ties by lowest index.
///
/// Pass L2-normalised rows for cosine neighbours.
///
/// # Shapes
/// `x`: `[N, D]` → graph of `[N, k]`.
pub fn knn(x: ArrayView2<f32>, k: usize) -> Result<KnnGraph> {
    let n = x.nrows();
    check_k(k, n)?;
    let x = x.as_standard_layout();
    let block = block_rows(n).min(n);
    let mut idx = vec![0u32; n * k];
    let mut sim = vec![0f32; n * k];
    let mut sims = Array2::<f32>::zeros((block, n));
    for start in (0..n).step_by(block) {
        let end = (start + block).min(n);
        let rows = end - start;
        let mut sb = sims.slice_mut(s![..rows, ..]);
        general_mat_mul(1.0, &x.slice(s![start..end, ..]), &x.t(), 0.0, &mut sb);
        idx[start * k..end * k]
            .par_chunks_mut(k)
            .zip(sim[start * k..end * k].par_chunks_mut(k))
            .zip(sb.axis_iter(Axis(0)).into_par_iter())
            .enumerate()
            .for_each(|(r, ((out_i, out_s), row))| {
                let row = row.as_slice().expect("block rows are contiguous");
                select_top_k(row, start + r, out_i, out_s);
            });
    }
    Ok(KnnGraph { n, k, idx, sim })
}

/// Writes the `k = out_idx.len()` largest entries of `row` (excluding
/// position `skip`) into `out_idx`/`out_sim`, in decreasing order, ties by
/// lowest index. NaN never ranks above a number.
fn select_top_k(row: &[f32], skip: usize, out_idx: &mut [u32], out_sim: &mut [f32]) {
    let k = out_idx.len();
    let mut filled = 0usize;
    for (j, &v) in row.iter().enumerate() {
        if j == skip || v.is_nan() {
            continue;
        }
        if filled == k {
            // Strictly greater: an equal value at a higher index never displaces.
            if v <= out_sim[k - 1] {
                continue;
            }
            filled -= 1;
        }
        // Insert after all entries >= v (earlier indices win ties).
        let mut pos = filled;
        while pos > 0 && out_sim[pos - 1] < v {
            out_sim[pos] = out_sim[pos - 1];
            out_idx[pos] = out_idx[pos - 1];
            pos -= 1;
        }
        out_sim[pos] = v;
        out_idx[pos] = j as u32;
        filled += 1;
    }
    // Rows made only of NaN (never for finite inputs): fill deterministically.
    if filled < k {
        let mut j = 0usize;
        while filled < k {
            if j != skip && !out_idx[..filled].contains(&(j as u32)) {
                out_idx[filled] = j as u32;
                out_sim[filled] = f32::NEG_INFINITY;
                filled += 1;
            }
            j += 1;
        }
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
