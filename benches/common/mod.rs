//! Helpers shared by the benchmark binaries.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Random standard-normal `[n, d]` f32 matrix (Box–Muller), deterministic in `seed`.
pub fn randn(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut x = Array2::<f32>::zeros((n, d));
    fill_randn(x.as_slice_mut().unwrap(), seed);
    x
}

pub fn fill_randn(buf: &mut [f32], seed: u64) {
    const CHUNK: usize = 1 << 16;
    buf.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c as u64);
            for pair in chunk.chunks_mut(2) {
                let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
                let u2: f64 = rng.random::<f64>();
                let r = (-2.0 * u1.ln()).sqrt();
                let t = std::f64::consts::TAU * u2;
                pair[0] = (r * t.cos()) as f32;
                if pair.len() > 1 {
                    pair[1] = (r * t.sin()) as f32;
                }
            }
        });
}
