//! Qwen2.5-Omni's audio encoder (`Qwen2_5OmniAudioEncoder`, Whisper-style),
//! in Burn, generic over the backend.
//!
//! Follows transformers 4.57 `models/qwen2_5_omni/modeling_qwen2_5_omni.py`
//! (`Qwen2_5OmniAudioEncoder.forward`, `Qwen2_5OmniAudioEncoderLayer`,
//! `SinusoidsPositionEmbedding`) as the thinker calls it
//! (`get_audio_features`):
//!
//! 1. **Chunks** — each clip's valid mel frames are cut into chunks of
//!    `2·n_window` frames (the last one shorter); every chunk is encoded on
//!    its own up to the attention.
//! 2. **Convolutions** — `conv1` (kernel 3, padding 1) + GELU, then
//!    `conv2` (kernel 3, stride 2, padding 1) + GELU, both zero-padded at
//!    the chunk's edges (the reference pads chunks to a batch and masks
//!    after `conv1`, which is the same). A chunk of `L` frames gives
//!    `(L − 1) / 2 + 1` tokens. Each convolution is one matrix product of
//!    the three taps gathered side by side.
//! 3. **Positions** — the sinusoidal table (`max_timescale` 10000, sin then
//!    cos), computed, not stored, **restarting at 0 in every chunk**.
//! 4. **Layers** — pre-LayerNorm (eps 1e-5) Whisper layers: bidirectional
//!    attention **within each chunk** (block-diagonal, `cu_seqlens` of the
//!    chunks), `k_proj` without bias; an exact (erf) GELU MLP.
//! 5. **Pooling and projection** — per clip, the concatenated tokens of
//!    its chunks are averaged in pairs (`AvgPool1d(2, 2)`: a pair may
//!    straddle two chunks; an odd last token is dropped), then `ln_post`
//!    and `proj` into the decoder's width. A clip of `F` frames gives
//!    `((F − 1)/2 + 1 − 2)/2 + 1` audio tokens
//!    ([`output_tokens`]), one per `<|AUDIO|>` placeholder.
//!
//! `audio_bos_eos_token` is in every checkpoint but never used by the
//! thinker's forward: it is loaded (its shape checked) and ignored.

use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::config::AudioConfig;
use crate::checkpoint::load::WeightMap;
use crate::error::{GeomError, Result};
use crate::model::layers::decoder::{frozen, linear, take};
use crate::model::layers::vision::{index_tensor, segment_attention, Segments};

/// LayerNorm epsilon of the encoder (`nn.LayerNorm`'s default in the reference).
pub const AUDIO_NORM_EPS: f64 = 1e-5;

/// `max_timescale` of `SinusoidsPositionEmbedding`.
const MAX_TIMESCALE: f64 = 10_000.0;

/// Cap on the attention scores a layer holds at once, in floats (chunks are
/// at most `n_window` tokens, so this only matters for very long clips).
const SCORE_BUDGET: usize = 1 << 27;

/// Tokens after the two convolutions and after pooling, for a clip of
/// `frames` mel frames (`_get_feat_extract_output_lengths`).
pub fn output_tokens(frames: usize) -> (usize, usize) {
    let after_cnn = if frames == 0 { 0 } else { (frames - 1) / 2 + 1 };
    let pooled = if after_cnn < 2 {
        // The reference's (x − 2) // 2 + 1 on 1 gives 0 (floor of −1/2 is −1).
        0
    } else {
        (after_cnn - 2) / 2 + 1
    };
    (after_cnn, pooled)
}

/// One Whisper encoder layer.
#[derive(Debug)]
pub struct AudioLayer<B: Backend> {
    /// LayerNorm before attention.
    pub self_attn_layer_norm: LayerNorm<B>,
    /// Query projection (bias).
    pub q_proj: Linear<B>,
    /// Key projection (no bias).
    pub k_proj: Linear<B>,
    /// Value projection (bias).
    pub v_proj: Linear<B>,
    /// Output projection (bias).
    pub out_proj: Linear<B>,
    /// LayerNorm before the MLP.
    pub final_layer_norm: LayerNorm<B>,
    /// MLP up.
    pub fc1: Linear<B>,
    /// MLP down.
    pub fc2: Linear<B>,
    n_heads: usize,
    head_dim: usize,
}

/// The audio encoder (`audio_tower.*`).
#[derive(Debug)]
pub struct AudioEncoder<B: Backend> {
    /// `conv1` as `[3·mels, d]` rows `(tap, mel)`, and its bias `[d]`.
    conv1: (Tensor<B, 2>, Tensor<B, 1>),
    /// `conv2` as `[3·d, d]` rows `(tap, channel)`, and its bias `[d]`.
    conv2: (Tensor<B, 2>, Tensor<B, 1>),
    /// The encoder layers.
    pub layers: Vec<AudioLayer<B>>,
    /// LayerNorm after the layers (after pooling).
    pub ln_post: LayerNorm<B>,
    /// Projection into the decoder's width.
    pub proj: Linear<B>,
    /// Sinusoidal positions `[n_window, d]` (one chunk's worth).
    positions: Vec<f32>,
    config: AudioConfig,
}

/// What the encoder returns.
#[derive(Debug)]
pub struct AudioOutput<B: Backend> {
    /// Audio tokens of every clip, concatenated: `[Σ tokens, output_dim]`.
    pub embeds: Tensor<B, 2>,
    /// Captured layer outputs `(i, [Σ after-cnn tokens, d_model])`, rows in
    /// clip then chunk order.
    pub layers: Vec<(usize, Tensor<B, 2>)>,
    /// Audio tokens per clip.
    pub tokens: Vec<usize>,
}

fn layer_norm<B: Backend>(w: &mut WeightMap, prefix: &str, d: usize, device: &B::Device) -> LayerNorm<B> {
    let mut ln = LayerNormConfig::new(d)
        .with_epsilon(AUDIO_NORM_EPS)
        .init(device);
    let g = take(w, &format!("{prefix}.weight"), &[d]);
    let b = take(w, &format!("{prefix}.bias"), &[d]);
    ln.gamma = frozen(Tensor::from_data(TensorData::new(g, [d]), device));
    ln.beta = Some(frozen(Tensor::from_data(TensorData::new(b, [d]), device)));
    ln
}

/// A PyTorch `Conv1d` weight `[out, in, 3]` as `[3·in, out]` with rows
/// `(tap, in)`, so that gathered taps `[rows, 3·in]` times it is the convolution.
fn conv_taps<B: Backend>(
    w: &mut WeightMap,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let k = take(w, &format!("{prefix}.weight"), &[d_out, d_in, 3]);
    let mut t = vec![0f32; 3 * d_in * d_out];
    for o in 0..d_out {
        for c in 0..d_in {
            for j in 0..3 {
                t[(j * d_in + c) * d_out + o] = k[(o * d_in + c) * 3 + j];
            }
        }
    }
    let bias = take(w, &format!("{prefix}.bias"), &[d_out]);
    (
        Tensor::from_data(TensorData::new(t, [3 * d_in, d_out]), device),
        Tensor::from_data(TensorData::new(bias, [d_out]), device),
    )
}

/// `SinusoidsPositionEmbedding(length, channels)`, in f32 as the reference:
/// row `t` = `[sin(t·e^{−i·c}), cos(t·e^{−i·c})]`, `c = ln(10000)/(channels/2 − 1)`.
pub fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let inc = (MAX_TIMESCALE.ln() / (half as f64 - 1.0)) as f32;
    let inv: Vec<f32> = (0..half).map(|i| (-inc * i as f32).exp()).collect();
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        let row: Vec<f32> = inv.iter().map(|&v| t as f32 * v).collect();
        out.extend(row.iter().map(|x| x.sin()));
        out.extend(row.iter().map(|x| x.cos()));
    }
    out
}

impl<B: Backend> AudioEncoder<B> {
    /// Builds the encoder from checkpoint weights (keys `audio_tower.*`).
    pub fn load(w: &mut WeightMap, cfg: &AudioConfig, device: &B::Device) -> Self {
        let d = cfg.d_model;
        let lin = |w: &mut WeightMap, k: &str, i: usize, o: usize, bias: bool| {
            linear(w, &format!("audio_tower.{k}"), i, o, bias, device)
        };
        let layers = (0..cfg.encoder_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                AudioLayer {
                    self_attn_layer_norm: layer_norm(
                        w,
                        &format!("audio_tower.{p}.self_attn_layer_norm"),
                        d,
                        device,
                    ),
                    q_proj: lin(w, &format!("{p}.self_attn.q_proj"), d, d, true),
                    k_proj: lin(w, &format!("{p}.self_attn.k_proj"), d, d, false),
                    v_proj: lin(w, &format!("{p}.self_attn.v_proj"), d, d, true),
                    out_proj: lin(w, &format!("{p}.self_attn.out_proj"), d, d, true),
                    final_layer_norm: layer_norm(
                        w,
                        &format!("audio_tower.{p}.final_layer_norm"),
                        d,
                        device,
                    ),
                    fc1: lin(w, &format!("{p}.fc1"), d, cfg.encoder_ffn_dim, true),
                    fc2: lin(w, &format!("{p}.fc2"), cfg.encoder_ffn_dim, d, true),
                    n_heads: cfg.encoder_attention_heads,
                    head_dim: d / cfg.encoder_attention_heads,
                }
            })
            .collect();
        // Present in every checkpoint, unused by the forward pass.
        let _ = w.take("audio_tower.audio_bos_eos_token.weight", &[2, cfg.output_dim]);
        Self {
            conv1: conv_taps(w, "audio_tower.conv1", cfg.num_mel_bins, d, device),
            conv2: conv_taps(w, "audio_tower.conv2", d, d, device),
            layers,
            ln_post: layer_norm(w, "audio_tower.ln_post", d, device),
            proj: lin(w, "proj", d, cfg.output_dim, true),
            positions: sinusoids(cfg.n_window.min(cfg.max_source_positions), d),
            config: cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// Encodes clips.
    ///
    /// # Shapes
    /// * `features`: `[mels, Σ frames]` row-major — every clip's valid mel
    ///   frames, concatenated in order (the thinker's
    ///   `input_features[feature_attention_mask]`);
    /// * `frames`: mel frames per clip;
    /// * `capture_layers`: indices of the layers whose outputs to return.
    pub fn forward(
        &self,
        features: &[f32],
        frames: &[usize],
        capture_layers: &[usize],
        device: &B::Device,
    ) -> Result<AudioOutput<B>> {
        let c = &self.config;
        let (mels, d) = (c.num_mel_bins, c.d_model);
        let total: usize = frames.iter().sum();
        if features.len() != mels * total {
            return Err(GeomError::invalid(format!(
                "audio features hold {} floats; {} clips of {frames:?} frames need {mels} × {total}",
                features.len(),
                frames.len()
            )));
        }
        if let Some(i) = frames.iter().position(|&f| output_tokens(f).1 == 0) {
            return Err(GeomError::invalid(format!(
                "audio clip {i} has {} mel frames: too short for one audio token (at least 3 frames = 30 ms are needed)",
                frames[i]
            )));
        }
        // Chunks of 2·n_window frames per clip: (first frame, length).
        let size = 2 * c.n_window;
        let mut chunks = Vec::new();
        let mut start = 0;
        for &f in frames {
            let mut off = 0;
            while off < f {
                let len = size.min(f - off);
                chunks.push((start + off, len));
                off += len;
            }
            start += f;
        }
        // conv1: taps gathered from the frame rows `[Σ frames, mels]` and one
        // zero row (index `total`) standing for the padding.
        let mut rows_t = vec![0f32; (total + 1) * mels];
        for m in 0..mels {
            for t in 0..total {
                rows_t[t * mels + m] = features[m * total + t];
            }
        }
        let x = Tensor::<B, 2>::from_data(TensorData::new(rows_t, [total + 1, mels]), device);
        let (idx1, _) = taps(&chunks, total, 1);
        let h = self.conv(x, &idx1, &self.conv1, mels);
        // conv2 on conv1's outputs (same row order), stride 2.
        let h = Tensor::cat(vec![h, Tensor::zeros([1, d], device)], 0);
        let (idx2, out_chunks) = taps(&chunks, total, 2);
        let h = self.conv(h, &idx2, &self.conv2, d);
        // Positions restart in every chunk.
        let n2: usize = out_chunks.iter().sum();
        let table_len = self.positions.len() / d;
        let mut pos = Vec::with_capacity(n2);
        for &l in &out_chunks {
            if l > table_len {
                return Err(GeomError::invalid(format!(
                    "an audio chunk of {l} tokens exceeds the {table_len} positions (n_window {}, max_source_positions {})",
                    c.n_window, c.max_source_positions
                )));
            }
            pos.extend(0..l);
        }
        let table = Tensor::<B, 2>::from_data(
            TensorData::new(self.positions.clone(), [table_len, d]),
            device,
        );
        let mut x = h + table.select(0, index_tensor::<B>(&pos, device));
        // Layers, attention within each chunk.
        let mut cu = vec![0usize];
        for &l in &out_chunks {
            cu.push(cu.last().copied().unwrap_or(0) + l);
        }
        let seg = Segments::new(&cu, device);
        let mut captured = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &seg);
            if capture_layers.contains(&i) {
                captured.push((i, x.clone()));
            }
        }
        // Per clip: pairs averaged (odd last token dropped), ln_post, proj.
        let mut even = Vec::new();
        let mut odd = Vec::new();
        let mut tokens = Vec::with_capacity(frames.len());
        let mut start = 0;
        for &f in frames {
            let (after_cnn, pooled) = output_tokens(f);
            for p in 0..pooled {
                even.push(start + 2 * p);
                odd.push(start + 2 * p + 1);
            }
            tokens.push(pooled);
            start += after_cnn;
        }
        let pooled = (x.clone().select(0, index_tensor::<B>(&even, device))
            + x.select(0, index_tensor::<B>(&odd, device)))
            / 2.0;
        let embeds = self.proj.forward(self.ln_post.forward(pooled));
        Ok(AudioOutput {
            embeds,
            layers: captured,
            tokens,
        })
    }

    /// A kernel-3 convolution as one matrix product of gathered taps, + GELU.
    fn conv(
        &self,
        rows: Tensor<B, 2>,
        index: &[usize],
        (w, b): &(Tensor<B, 2>, Tensor<B, 1>),
        d_in: usize,
    ) -> Tensor<B, 2> {
        let device = rows.device();
        let n = index.len() / 3;
        let gathered = rows
            .select(0, index_tensor::<B>(index, &device))
            .reshape([n, 3 * d_in]);
        gelu(gathered.matmul(w.clone()) + b.clone().unsqueeze())
    }
}

/// The rows each output row of a kernel-3, padding-1 convolution reads,
/// three per output row (`zero` for the padding beyond a chunk's edge),
/// and the output length of every chunk.
///
/// `chunks` are `(first row, length)` in the input; with `stride` 2 the
/// input rows of a chunk are the stride-1 outputs, which keep the chunks'
/// row positions (conv1 maps every frame to one row).
fn taps(chunks: &[(usize, usize)], zero: usize, stride: usize) -> (Vec<usize>, Vec<usize>) {
    let mut index = Vec::new();
    let mut lens = Vec::with_capacity(chunks.len());
    for &(first, len) in chunks {
        let out = (len - 1) / stride + 1;
        for t in 0..out {
            for j in 0..3 {
                let src = (stride * t + j) as isize - 1;
                index.push(if src >= 0 && (src as usize) < len {
                    first + src as usize
                } else {
                    zero
                });
            }
        }
        lens.push(out);
    }
    (index, lens)
}

impl<B: Backend> AudioLayer<B> {
    /// # Shapes
    /// `x`: `[n, d_model]` rows in chunk order → `[n, d_model]`.
    fn forward(&self, x: Tensor<B, 2>, seg: &Segments<B>) -> Tensor<B, 2> {
        let [n, _] = x.dims();
        let (nh, hd) = (self.n_heads, self.head_dim);
        let y = self.self_attn_layer_norm.forward(x.clone());
        let scale = (hd as f32).powf(-0.5);
        let q = (self.q_proj.forward(y.clone()) * scale).reshape([n, nh, hd]);
        let k = self.k_proj.forward(y.clone()).reshape([n, nh, hd]);
        let v = self.v_proj.forward(y).reshape([n, nh, hd]);
        let h = x + self
            .out_proj
            .forward(segment_attention(q, k, v, seg, SCORE_BUDGET));
        let y = self.final_layer_norm.forward(h.clone());
        h + self.fc2.forward(gelu(self.fc1.forward(y)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_follow_the_reference() {
        // (F − 1)//2 + 1, then (x − 2)//2 + 1.
        assert_eq!(output_tokens(200), (100, 50));
        assert_eq!(output_tokens(3000), (1500, 750));
        assert_eq!(output_tokens(3), (2, 1));
        assert_eq!(output_tokens(2), (1, 0));
        assert_eq!(output_tokens(301), (151, 75));
    }

    #[test]
    fn taps_pad_each_chunk_with_zeros() {
        // Two chunks: rows 0..3 and 3..5; zero row 5.
        let (idx, lens) = taps(&[(0, 3), (3, 2)], 5, 1);
        assert_eq!(lens, vec![3, 2]);
        assert_eq!(idx, vec![5, 0, 1, 0, 1, 2, 1, 2, 5, 5, 3, 4, 3, 4, 5]);
        let (idx, lens) = taps(&[(0, 5)], 9, 2);
        assert_eq!(lens, vec![3]);
        assert_eq!(idx, vec![9, 0, 1, 1, 2, 3, 3, 4, 9]);
    }

    #[test]
    fn sinusoids_start_with_zero_sines_and_unit_cosines() {
        let p = sinusoids(3, 8);
        assert_eq!(&p[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert!((p[8] - 1f32.sin()).abs() < 1e-7);
    }
}
