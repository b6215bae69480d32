//! Small vectorisable loops shared by the metrics, with a runtime switch to
//! AVX2 + FMA code on CPUs that have it (the portable build targets plain
//! x86-64, i.e. SSE2, so without this the compiler could not use wider
//! registers).
//!
//! Sums are accumulated in `f64` over 8 independent lanes: a single running
//! sum would be one long dependency chain that no compiler may reorder.

/// Lanes of the partial sums.
const LANES: usize = 8;

#[inline(always)]
fn sq_norm_body(row: &[f32], center: Option<&[f64]>) -> f64 {
    let mut acc = [0.0f64; LANES];
    match center {
        None => {
            let chunks = row.chunks_exact(LANES);
            let rem = chunks.remainder();
            for c in chunks {
                for l in 0..LANES {
                    let v = c[l] as f64;
                    acc[l] += v * v;
                }
            }
            for (l, &v) in rem.iter().enumerate() {
                acc[l] += v as f64 * v as f64;
            }
        }
        Some(m) => {
            let chunks = row.chunks_exact(LANES).zip(m.chunks_exact(LANES));
            let split = row.len() - row.len() % LANES;
            for (c, mc) in chunks {
                for l in 0..LANES {
                    let v = c[l] as f64 - mc[l];
                    acc[l] += v * v;
                }
            }
            for (l, (&v, &mv)) in row[split..].iter().zip(&m[split..]).enumerate() {
                let v = v as f64 - mv;
                acc[l] += v * v;
            }
        }
    }
    acc.iter().sum()
}

#[inline(always)]
fn axpy_body(acc: &mut [f64], row: &[f32], center: Option<&[f64]>, a: f64) {
    match center {
        None => {
            for (s, &v) in acc.iter_mut().zip(row) {
                *s += v as f64 * a;
            }
        }
        Some(m) => {
            for ((s, &v), &mv) in acc.iter_mut().zip(row).zip(m) {
                *s += (v as f64 - mv) * a;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sq_norm_avx2(row: &[f32], center: Option<&[f64]>) -> f64 {
    sq_norm_body(row, center)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(acc: &mut [f64], row: &[f32], center: Option<&[f64]>, a: f64) {
    axpy_body(acc, row, center, a)
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Σ_d (row_d − center_d)²` in f64 (`center` = 0 when `None`).
///
/// # Shapes
/// `row`: `[D]`, `center`: `[D]`.
pub fn sq_norm(row: &[f32], center: Option<&[f64]>) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { sq_norm_avx2(row, center) };
    }
    sq_norm_body(row, center)
}

/// `acc_d += a · (row_d − center_d)` in f64.
///
/// # Shapes
/// `acc`, `row`, `center`: `[D]`.
pub fn axpy(acc: &mut [f64], row: &[f32], center: Option<&[f64]>, a: f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { axpy_avx2(acc, row, center, a) };
    }
    axpy_body(acc, row, center, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scalar_definitions() {
        let row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let m: Vec<f64> = (0..37).map(|i| (i as f64 * 0.11).cos() * 0.1).collect();
        let want: f64 = row
            .iter()
            .zip(&m)
            .map(|(&v, &c)| (v as f64 - c).powi(2))
            .sum();
        assert!((sq_norm(&row, Some(&m)) - want).abs() < 1e-12);
        let want0: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((sq_norm(&row, None) - want0).abs() < 1e-12);
        assert!((sq_norm_body(&row, None) - want0).abs() < 1e-12);
        let mut acc = vec![1.0f64; 37];
        axpy(&mut acc, &row, Some(&m), 2.0);
        for d in 0..37 {
            assert!((acc[d] - (1.0 + 2.0 * (row[d] as f64 - m[d]))).abs() < 1e-12);
        }
    }
}
