//! Feature preparation shared by the metrics: finiteness check, outlier
//! clamping and L2 normalisation (platonic-rep `prepare_features` /
//! `remove_outliers` / `F.normalize`).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{GeomError, Result};

/// `F.normalize`'s guard: rows are divided by `max(||x||, NORMALIZE_EPS)`.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// Fails on the first NaN or infinite entry, naming its row and column.
pub fn check_finite(x: ArrayView2<f32>, what: &str) -> Result<()> {
    for (i, row) in x.axis_iter(Axis(0)).enumerate() {
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(GeomError::invalid(format!(
                "{what}: row {i}, column {j} is {} (expected finite values)",
                row[j]
            )));
        }
    }
    Ok(())
}

/// Returns `x` with each row divided by `max(||row||_2, 1e-12)` (as torch `F.normalize`).
///
/// # Shapes
/// `[N, D]` → `[N, D]`.
pub fn l2_normalize(x: ArrayView2<f32>) -> Array2<f32> {
    let mut out = x.to_owned();
    l2_normalize_inplace(&mut out);
    out
}

/// [`l2_normalize`] in place.
pub fn l2_normalize_inplace(x: &mut Array2<f32>) {
    x.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            let norm = match row.as_slice() {
                Some(r) => super::kernels::sq_norm(r, None).sqrt(),
                None => row
                    .iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>()
                    .sqrt(),
            };
            let inv = 1.0 / norm.max(NORMALIZE_EPS);
            row.mapv_inplace(|v| (v as f64 * inv) as f32);
        });
}

/// Clamps every entry to `[-t, t]`, with `t` the `q`-quantile of `|x|` over the
/// whole matrix, taken as platonic-rep's `remove_outliers(exact=True)` does:
/// `t = sort(|x|.flatten())[floor(q * N * D)]`.
///
/// # Shapes
/// `[N, D]` → `[N, D]`.
pub fn clamp_quantile(x: ArrayView2<f32>, q: f64) -> Result<Array2<f32>> {
    if !(0.0..=1.0).contains(&q) {
        return Err(GeomError::invalid(format!(
            "clamp quantile q = {q} is out of range (expected 0 < q <= 1)"
        )));
    }
    if q >= 1.0 {
        return Ok(x.to_owned());
    }
    let mut abs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let idx = ((q * abs.len() as f64).floor() as usize).min(abs.len() - 1);
    let (_, t, _) = abs.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    let t = *t;
    Ok(x.mapv(|v| v.clamp(-t, t)))
}

/// Applies the optional clamp, then the optional normalisation.
pub fn prepare(x: ArrayView2<f32>, clamp_q: Option<f64>, normalize: bool) -> Result<Array2<f32>> {
    let mut out = match clamp_q {
        Some(q) => clamp_quantile(x, q)?,
        None => x.to_owned(),
    };
    if normalize {
        l2_normalize_inplace(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn normalize_rows() {
        let x = array![[3.0f32, 4.0], [0.0, 0.0]];
        let n = l2_normalize(x.view());
        assert!((n[[0, 0]] - 0.6).abs() < 1e-7 && (n[[0, 1]] - 0.8).abs() < 1e-7);
        assert_eq!(n[[1, 0]], 0.0);
    }

    #[test]
    fn clamp_matches_exact_quantile() {
        // |x| sorted: 1..=10; q = 0.5 → index 5 → value 6.
        let x = array![
            [1.0f32, -2.0, 3.0, -4.0, 5.0],
            [-6.0, 7.0, -8.0, 9.0, -10.0]
        ];
        let c = clamp_quantile(x.view(), 0.5).unwrap();
        assert_eq!(c.row(1).to_vec(), vec![-6.0, 6.0, -6.0, 6.0, -6.0]);
        assert!(clamp_quantile(x.view(), 1.5).is_err());
    }

    #[test]
    fn non_finite_is_named() {
        let x = array![[1.0f32, 2.0], [f32::NAN, 0.0]];
        let e = check_finite(x.view(), "image layer 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1, column 0"), "{e}");
    }
}
