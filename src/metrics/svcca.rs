//! SVCCA (Raghu et al. 2017), as platonic-rep `svcca`.
//!
//! Each side is standardised per column (`(x − mean) / (std + 1e-8)`, std with
//! N−1), reduced to its top-`cca_dim` left singular vectors `U` (`[N, cca_dim]`,
//! orthonormal columns), and the two subspaces are compared by CCA. For
//! orthonormal, centred bases the canonical correlations are exactly the
//! singular values of `U_aᵀ U_b`; SVCCA is their mean.
//!
//! Differences from platonic-rep: it takes the subspace with
//! `torch.svd_lowrank` (a randomised approximation, niter = 2) and runs
//! sklearn's iterative CCA on it, adding 1e-10 noise; geom computes the
//! exact subspace (symmetric eigendecomposition of the smaller Gram matrix)
//! and the canonical correlations in closed form. The fixtures compare with
//! platonic-rep's procedure run on the exact subspace.

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{linalg::general_mat_mul, Array2, ArrayView2, Axis};

use crate::error::{GeomError, Result};

/// platonic-rep's guard on the column standard deviation.
pub const STD_EPS: f64 = 1e-8;

/// Standardised top-`dim` left singular subspace of `x`.
///
/// # Shapes
/// `[N, D]` → `[N, dim]` with orthonormal columns.
pub fn top_subspace(x: ArrayView2<f32>, dim: usize) -> Result<Array2<f64>> {
    let (n, d) = x.dim();
    if dim == 0 || dim > n.min(d) {
        return Err(GeomError::invalid(format!(
            "svcca dimension {dim} is out of range for a [{n}, {d}] matrix (expected 1..={})",
            n.min(d)
        )));
    }
    let mut a = x.mapv(|v| v as f64);
    let mean = a.mean_axis(Axis(0)).expect("n >= 1");
    a -= &mean;
    let std = a.std_axis(Axis(0), 1.0);
    for (mut col, s) in a.axis_iter_mut(Axis(1)).zip(std.iter()) {
        col /= s + STD_EPS;
    }
    // Left singular vectors of A are the eigenvectors of A Aᵀ; when D < N,
    // take V from AᵀA and U = A V / σ.
    let u = if n <= d {
        let mut g = Array2::<f64>::zeros((n, n));
        general_mat_mul(1.0, &a, &a.t(), 0.0, &mut g);
        let (vecs, _) = top_eigenvectors(&g, dim);
        vecs
    } else {
        let mut g = Array2::<f64>::zeros((d, d));
        general_mat_mul(1.0, &a.t(), &a, 0.0, &mut g);
        let (v, vals) = top_eigenvectors(&g, dim);
        let mut u = a.dot(&v);
        for (mut col, &lam) in u.axis_iter_mut(Axis(1)).zip(vals.iter()) {
            let sigma = lam.max(0.0).sqrt();
            if sigma > 0.0 {
                col /= sigma;
            }
        }
        u
    };
    Ok(u)
}

/// Eigenvectors of the `dim` largest eigenvalues of a symmetric matrix, as columns.
fn top_eigenvectors(g: &Array2<f64>, dim: usize) -> (Array2<f64>, Vec<f64>) {
    let n = g.nrows();
    let m = DMatrix::from_row_slice(n, n, g.as_slice().expect("standard layout"));
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
    let mut out = Array2::<f64>::zeros((n, dim));
    let mut vals = Vec::with_capacity(dim);
    for (c, &i) in order.iter().take(dim).enumerate() {
        vals.push(eig.eigenvalues[i]);
        for r in 0..n {
            out[[r, c]] = eig.eigenvectors[(r, i)];
        }
    }
    (out, vals)
}

/// Mean canonical correlation of two orthonormal bases: the mean singular
/// value of `U_aᵀ U_b`.
///
/// # Shapes
/// `ua`: `[N, d]`, `ub`: `[N, d]`.
pub fn mean_canonical_correlation(ua: &Array2<f64>, ub: &Array2<f64>) -> f64 {
    let m = ua.t().dot(ub);
    let (r, c) = m.dim();
    let dm = DMatrix::from_row_slice(
        r,
        c,
        m.as_standard_layout().as_slice().expect("standard layout"),
    );
    let sv = dm.singular_values();
    sv.iter().map(|s| s.min(1.0)).sum::<f64>() / sv.len() as f64
}
