//! Rotary embeddings applied as `x·cos + rotate_half(x)·sin`, laid out for
//! speed on the CPU backend.
//!
//! `rotate_half(x) = [−x₂, x₁]` is computed as one small matrix product
//! `x · R` with the constant signed permutation `R` (`head_dim × head_dim`,
//! entries 0 and ±1): every output is one input times ±1 plus exact zeros,
//! so the result is bit-identical to slicing and concatenating, without the
//! strided element-wise passes. `cos` and `sin` are expanded on the host to
//! one row per (token, head), matching the contiguous `[tokens·heads,
//! head_dim]` layout of the projections, and may carry a constant factor
//! (the attention scale, folded into the queries).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Expanded `cos`/`sin` tables for one projection.
pub(crate) struct Rotary<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    half_turn: Tensor<B, 2>,
}

impl<B: Backend> Rotary<B> {
    /// `angles` holds `rows × head_dim` angles (one row per token); each row
    /// is repeated for `heads` heads; the tables are multiplied by `factor`.
    pub(crate) fn new(
        angles: &[f32],
        head_dim: usize,
        heads: usize,
        factor: f32,
        device: &B::Device,
    ) -> Self {
        let rows = angles.len() / head_dim;
        let mut cos = Vec::with_capacity(rows * heads * head_dim);
        let mut sin = Vec::with_capacity(rows * heads * head_dim);
        for row in angles.chunks_exact(head_dim) {
            let c: Vec<f32> = row.iter().map(|a| a.cos()).collect();
            let s: Vec<f32> = row.iter().map(|a| a.sin()).collect();
            for _ in 0..heads {
                cos.extend(c.iter().map(|v| v * factor));
                sin.extend(s.iter().map(|v| v * factor));
            }
        }
        let n = rows * heads;
        let half = head_dim / 2;
        let mut r = vec![0f32; head_dim * head_dim];
        for j in 0..half {
            r[(j + half) * head_dim + j] = -1.0; // out[j] = −x[j + half]
            r[j * head_dim + j + half] = 1.0; // out[j + half] = x[j]
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [n, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [n, head_dim]), device),
            half_turn: Tensor::from_data(TensorData::new(r, [head_dim, head_dim]), device),
        }
    }

    /// Rotates `x`, `[tokens·heads, head_dim]` (rows in (token, head) order).
    pub(crate) fn apply(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let rotated = x.clone().matmul(self.half_turn.clone());
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}
