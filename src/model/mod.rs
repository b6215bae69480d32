//! Model reimplementations in Burn, generic over the backend: one room per
//! architecture, the shared pieces in their own.
//!
//! * [`layers`] — the decoder, the vision tower, rotary embeddings, LoRA
//!   projections: the pieces both architectures call;
//! * [`qwen2_5_vl`] — Qwen2.5-VL: its config, M-RoPE positions, the model;
//! * [`qwen2_5_omni`] — Qwen2.5-Omni's thinker: its config, the audio
//!   encoder, TMRoPE positions, the model;
//! * [`config`] — the config pieces both share, and the choice of
//!   architecture from `config.json` ([`config::Architecture`]);
//! * [`capture`] — hook points, capture specs, pooling;
//! * [`embed`] — the public entry point: every layer's pooled state of a
//!   list of texts, images, audio clips and videos ([`embed::Embedder`]),
//!   for a checkpoint of either architecture;
//! * [`auto`] — [`AutoModel`]: either architecture, chosen from `config.json`;
//! * [`batch`] — the prepared batch and a forward pass's output;
//! * [`device`] — `--device cpu|cuda:N` and the backend dispatch.
//!
//! Checkpoint reading and writing (safetensors, merges, soups) live in
//! [`crate::checkpoint`].

pub mod auto;
pub mod batch;
pub mod capture;
pub mod config;
pub mod device;
pub mod embed;
pub mod layers;
pub mod qwen2_5_omni;
pub mod qwen2_5_vl;

use std::path::Path;

use burn::tensor::backend::Backend;

pub use capture::{CaptureSpec, HookPoint, Pooling};
pub use config::{Architecture, TextConfig, VisionConfig};
pub use qwen2_5_vl::config::Qwen2_5VlConfig;
pub use device::DeviceSpec;
pub use embed::{Embedder, Item, Prompts};
pub use auto::AutoModel;
pub use batch::{ModelInputs, ModelOutput};
pub use qwen2_5_omni::{config::Qwen2_5OmniConfig, Qwen2_5Omni};
pub use qwen2_5_vl::Qwen2_5Vl;

use crate::error::{GeomError, Result};

/// Burn's `flex` CPU backend (GEMMs in the `gemm` crate).
pub type Flex = burn::backend::Flex;

/// Burn's `ndarray` CPU backend with GEMMs in the system OpenBLAS.
pub type NdArray = burn_ndarray::NdArray<f32>;

/// The default CPU backend (`--device cpu`).
pub type Cpu = Flex;

/// Loads the language decoder of a Qwen2.5-VL checkpoint folder; the vision
/// tower's tensors (`visual.*`) are skipped on purpose, every other tensor
/// must be present with the configured shape.
pub fn load_text_decoder<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Qwen2_5VlConfig, layers::decoder::TextModel<B>)> {
    let cfg = Qwen2_5VlConfig::from_path(dir)?;
    let ckpt = crate::checkpoint::load::Checkpoint::open(dir)?;
    let mut w = crate::checkpoint::load::WeightMap::new(&ckpt);
    w.skip_prefix("visual.");
    let model = layers::decoder::TextModel::load(&mut w, &cfg.text, device);
    w.finish()?;
    Ok((cfg, model))
}

/// Pools `[B, T, H]` token states into `[B, H]` vectors.
///
/// `mask` marks real tokens (1) and padding (0); `None` = no padding.
pub fn pool(
    states: &[f32],
    dims: [usize; 3],
    mask: Option<&[Vec<u8>]>,
    pooling: Pooling,
) -> Result<Vec<Vec<f32>>> {
    let [b, t, h] = dims;
    if states.len() != b * t * h {
        return Err(GeomError::invalid(format!(
            "pool: {} values for shape [{b}, {t}, {h}]",
            states.len()
        )));
    }
    let real = |bi: usize| -> Vec<usize> {
        (0..t)
            .filter(|&j| mask.is_none_or(|m| m[bi][j] != 0))
            .collect()
    };
    (0..b)
        .map(|bi| {
            let idx = real(bi);
            if idx.is_empty() {
                return Err(GeomError::invalid(format!(
                    "pool: sample {bi} has no real token"
                )));
            }
            let row = |j: usize| &states[(bi * t + j) * h..(bi * t + j + 1) * h];
            Ok(match pooling {
                Pooling::LastToken => row(*idx.last().expect("non-empty")).to_vec(),
                Pooling::Position(p) => {
                    let n = idx.len() as i64;
                    let k = if p < 0 { n + p } else { p };
                    if !(0..n).contains(&k) {
                        return Err(GeomError::invalid(format!(
                            "pool: position {p} is outside the {n} tokens of sample {bi}"
                        )));
                    }
                    row(idx[k as usize]).to_vec()
                }
                Pooling::Mean => {
                    let mut acc = vec![0f64; h];
                    for &j in &idx {
                        for (a, &v) in acc.iter_mut().zip(row(j)) {
                            *a += v as f64;
                        }
                    }
                    acc.iter().map(|a| (a / idx.len() as f64) as f32).collect()
                }
            })
        })
        .collect()
}
