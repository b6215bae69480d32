//! The Qwen2 language decoder of Qwen2.5-VL, in Burn, generic over the backend.
//!
//! Follows transformers 4.57 `models/qwen2_5_vl/modeling_qwen2_5_vl.py`
//! (`Qwen2_5_VLTextModel`, `Qwen2_5_VLDecoderLayer`, `Qwen2_5_VLAttention`,
//! `Qwen2MLP`, `Qwen2_5_VLRotaryEmbedding`, `apply_multimodal_rotary_pos_emb`):
//! pre-norm layers `h = x + attn(rms(x)); y = h + mlp(rms(h))`, grouped-query
//! attention with biased q/k/v projections, SwiGLU MLP, final RMSNorm, and
//! M-RoPE: the rotary half-dimension is split into `mrope_section =
//! [t, h, w]` channel groups that rotate by the temporal, height and width
//! position ids respectively (the reference writes `mrope_section * 2`, which
//! is Python list repetition: the same split is applied to both halves).
//!
//! Field names follow the Hugging Face keys (`self_attn.q_proj`,
//! `mlp.gate_proj`, `input_layernorm`, ...).

use burn::module::{Param, ParamId};
use burn::nn::{Embedding, Linear, RmsNorm};

use super::lora::Proj;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ndarray::Array3;

use crate::model::capture::{CaptureSpec, HookPoint};
use crate::model::config::TextConfig;
use crate::checkpoint::load::WeightMap;
use super::rotary::Rotary;

/// Additive mask value for disallowed attention (finite, so a fully masked
/// row of padding attends uniformly, as in the reference, instead of NaN).
const MASKED: f32 = -1e30;

/// Grouped-query self-attention.
#[derive(Debug)]
pub struct Attention<B: Backend> {
    /// `[hidden, heads·head_dim]`, with bias.
    pub q_proj: Proj<B>,
    /// `[hidden, kv_heads·head_dim]`, with bias.
    pub k_proj: Proj<B>,
    /// `[hidden, kv_heads·head_dim]`, with bias.
    pub v_proj: Proj<B>,
    /// `[heads·head_dim, hidden]`, no bias.
    pub o_proj: Proj<B>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// SwiGLU MLP: `down(silu(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp<B: Backend> {
    /// `[hidden, intermediate]`.
    pub gate_proj: Proj<B>,
    /// `[hidden, intermediate]`.
    pub up_proj: Proj<B>,
    /// `[intermediate, hidden]`.
    pub down_proj: Proj<B>,
}

/// One pre-norm decoder layer.
#[derive(Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Attention block.
    pub self_attn: Attention<B>,
    /// MLP block.
    pub mlp: Mlp<B>,
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

/// The decoder: embeddings, layers, final norm.
#[derive(Debug)]
pub struct TextModel<B: Backend> {
    /// `[vocab, hidden]`.
    pub embed_tokens: Embedding<B>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    config: TextConfig,
}

/// What one forward pass returns.
#[derive(Debug)]
pub struct TextOutput<B: Backend> {
    /// Output of the final norm, `[B, T, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// The requested captures, in the spec's order, each `[B, T, hidden]`.
    pub captures: Vec<(HookPoint, Tensor<B, 3>)>,
}

impl<B: Backend> TextModel<B> {
    /// Builds the decoder from checkpoint weights (keys `model.*`).
    pub fn load(w: &mut WeightMap, cfg: &TextConfig, device: &B::Device) -> Self {
        let h = cfg.hidden_size;
        let hd = cfg.head_dim();
        let (nh, nkv, inter) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.intermediate_size,
        );
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                DecoderLayer {
                    self_attn: Attention {
                        q_proj: proj(
                            w,
                            &format!("{p}.self_attn.q_proj"),
                            h,
                            nh * hd,
                            true,
                            device,
                        ),
                        k_proj: proj(
                            w,
                            &format!("{p}.self_attn.k_proj"),
                            h,
                            nkv * hd,
                            true,
                            device,
                        ),
                        v_proj: proj(
                            w,
                            &format!("{p}.self_attn.v_proj"),
                            h,
                            nkv * hd,
                            true,
                            device,
                        ),
                        o_proj: proj(
                            w,
                            &format!("{p}.self_attn.o_proj"),
                            nh * hd,
                            h,
                            false,
                            device,
                        ),
                        n_heads: nh,
                        n_kv_heads: nkv,
                        head_dim: hd,
                    },
                    mlp: Mlp {
                        gate_proj: proj(w, &format!("{p}.mlp.gate_proj"), h, inter, false, device),
                        up_proj: proj(w, &format!("{p}.mlp.up_proj"), h, inter, false, device),
                        down_proj: proj(w, &format!("{p}.mlp.down_proj"), inter, h, false, device),
                    },
                    input_layernorm: rms_norm(
                        w,
                        &format!("{p}.input_layernorm.weight"),
                        h,
                        cfg.rms_norm_eps,
                        device,
                    ),
                    post_attention_layernorm: rms_norm(
                        w,
                        &format!("{p}.post_attention_layernorm.weight"),
                        h,
                        cfg.rms_norm_eps,
                        device,
                    ),
                }
            })
            .collect();
        let emb = take(w, "model.embed_tokens.weight", &[cfg.vocab_size, h]);
        Self {
            embed_tokens: Embedding {
                weight: frozen(tensor2(emb, [cfg.vocab_size, h], device)),
            },
            layers,
            norm: rms_norm(w, "model.norm.weight", h, cfg.rms_norm_eps, device),
            config: cfg.clone(),
        }
    }

    /// The configuration this decoder was built with.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Token embeddings.
    ///
    /// # Shapes
    /// `[B, T]` ids → `[B, T, hidden]`.
    pub fn embed(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_tokens.forward(input_ids)
    }

    /// Runs the decoder on embeddings.
    ///
    /// # Shapes
    /// * `embeds`: `[B, T, hidden]`;
    /// * `positions`: `[3, B, T]` M-RoPE ids (see [`crate::model::qwen2_5_vl::rope::rope_index`]);
    /// * `attention_mask`: `B` rows of `T` (1 = token, 0 = padding), or `None`.
    pub fn forward(
        &self,
        embeds: Tensor<B, 3>,
        positions: &Array3<i64>,
        attention_mask: Option<&[Vec<u8>]>,
        spec: &CaptureSpec,
    ) -> TextOutput<B> {
        let device = embeds.device();
        let [b, t, _] = embeds.dims();
        let rope = self.rope_tables(positions, &device);
        let mask = additive_mask::<B>(
            b,
            self.config.num_attention_heads,
            t,
            attention_mask,
            &device,
        );
        let mut captures = Vec::new();
        if spec.wants(HookPoint::Embeddings) {
            captures.push((HookPoint::Embeddings, embeds.clone()));
        }
        // The layers work on `[B·T, hidden]` rows: one large matrix product per
        // projection instead of B small ones.
        let h = self.config.hidden_size;
        let mut x = embeds.reshape([b * t, h]);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, [b, t], &rope, &mask);
            if spec.wants(HookPoint::ResidPost(i)) {
                captures.push((HookPoint::ResidPost(i), x.clone().reshape([b, t, h])));
            }
        }
        let out = self.norm.forward(x).reshape([b, t, h]);
        if spec.wants(HookPoint::FinalNorm) {
            captures.push((HookPoint::FinalNorm, out.clone()));
        }
        // Return captures in the spec's order.
        captures.sort_by_key(|(p, _)| spec.points.iter().position(|q| q == p));
        TextOutput {
            last_hidden_state: out,
            captures,
        }
    }

    /// M-RoPE for queries (with the attention scale folded in) and keys:
    /// channel `d` rotates with the position id of axis
    /// `section(d mod half)` at frequency `θ^(−2(d mod half)/head_dim)`,
    /// angles computed in f32 as the reference.
    fn rope_tables(&self, positions: &Array3<i64>, device: &B::Device) -> Rope<B> {
        let hd = self.config.head_dim();
        let half = hd / 2;
        let (_, b, t) = positions.dim();
        let theta = self.config.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|j| 1.0 / theta.powf((2 * j) as f32 / hd as f32))
            .collect();
        let mut axis = Vec::with_capacity(half);
        for (a, &n) in self.config.mrope_section.iter().enumerate() {
            axis.extend(std::iter::repeat_n(a, n));
        }
        let mut angles = Vec::with_capacity(b * t * hd);
        for bi in 0..b {
            for ti in 0..t {
                for d in 0..hd {
                    let j = d % half;
                    angles.push(positions[[axis[j], bi, ti]] as f32 * inv_freq[j]);
                }
            }
        }
        let scale = (hd as f32).powf(-0.5);
        Rope {
            q: Rotary::new(&angles, hd, self.config.num_attention_heads, scale, device),
            k: Rotary::new(&angles, hd, self.config.num_key_value_heads, 1.0, device),
        }
    }
}

/// Rotary tables of one forward pass.
struct Rope<B: Backend> {
    /// For the queries, times `head_dim^-0.5`.
    q: Rotary<B>,
    /// For the keys.
    k: Rotary<B>,
}

impl<B: Backend> DecoderLayer<B> {
    fn forward(
        &self,
        x: Tensor<B, 2>,
        bt: [usize; 2],
        rope: &Rope<B>,
        mask: &Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), bt, rope, mask);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

impl<B: Backend> Mlp<B> {
    /// `[rows, hidden]` → `[rows, hidden]`.
    pub(crate) fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.down_proj
            .forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `x`: `[B·T, hidden]` with `bt = [B, T]`; `mask`: `[B, heads, T, T]`.
    ///
    /// The scale `head_dim^-0.5` is applied to the rotated queries (folded
    /// into their rotary tables) rather than to the scores: the same
    /// product up to f32 rounding, one pass fewer over `[B, heads, T, T]`.
    fn forward(
        &self,
        x: Tensor<B, 2>,
        [b, t]: [usize; 2],
        rope: &Rope<B>,
        mask: &Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        // Projections are contiguous [B·T·heads, head_dim] rows: rotate there,
        // then split the heads out.
        let rows = |y: Tensor<B, 2>, n: usize| y.reshape([b * t * n, hd]);
        let heads = |y: Tensor<B, 2>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let q = heads(rope.q.apply(rows(self.q_proj.forward(x.clone()), nh)), nh);
        let k = heads(rope.k.apply(rows(self.k_proj.forward(x.clone()), nkv)), nkv);
        let v = self
            .v_proj
            .forward(x)
            .reshape([b, t, nkv, hd])
            .swap_dims(1, 2);
        // Grouped-query attention: each KV head serves `nh / nkv` query heads.
        let rep = nh / nkv;
        let expand = |y: Tensor<B, 4>| {
            y.unsqueeze_dim::<5>(2)
                .repeat_dim(2, rep)
                .reshape([b, nh, t, hd])
        };
        let (k, v) = (expand(k), expand(v));
        let scores = q.matmul(k.swap_dims(2, 3)) + mask.clone();
        let attn = softmax(scores, 3).matmul(v);
        self.o_proj
            .forward(attn.swap_dims(1, 2).reshape([b * t, nh * hd]))
    }
}

/// Causal + key-padding mask, additive, `[B, heads, T, T]` (materialised
/// per head: adding a broadcast mask is a slow path on the CPU backend).
fn additive_mask<B: Backend>(
    b: usize,
    heads: usize,
    t: usize,
    attention_mask: Option<&[Vec<u8>]>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut m = vec![0f32; b * heads * t * t];
    for bi in 0..b {
        let block = &mut m[bi * heads * t * t..(bi + 1) * heads * t * t];
        let (first, rest) = block.split_at_mut(t * t);
        for i in 0..t {
            for j in 0..t {
                let pad = attention_mask.is_some_and(|am| am[bi][j] == 0);
                if j > i || pad {
                    first[i * t + j] = MASKED;
                }
            }
        }
        for head in rest.chunks_exact_mut(t * t) {
            head.copy_from_slice(first);
        }
    }
    Tensor::from_data(TensorData::new(m, [b, heads, t, t]), device)
}

/// A loaded weight as a parameter that does not require gradients: under
/// an autodiff backend only what is marked trainable (the LoRA adapters)
/// gets gradients; on the others it is the same tensor.
pub(crate) fn frozen<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::initialized(ParamId::new(), t)
}

/// Takes a tensor (zeros when it is missing: [`WeightMap::finish`] then
/// fails, so placeholder values never escape).
pub(crate) fn take(w: &mut WeightMap, key: &str, shape: &[usize]) -> Vec<f32> {
    w.take(key, shape)
        .unwrap_or_else(|| vec![0.0; shape.iter().product()])
}

fn tensor2<B: Backend>(v: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A Burn `Linear` from a PyTorch `[out, in]` weight (transposed on the host
/// to Burn's `[in, out]`) and optional bias.
pub(crate) fn linear<B: Backend>(
    w: &mut WeightMap,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &B::Device,
) -> Linear<B> {
    let weight = take(w, &format!("{prefix}.weight"), &[d_out, d_in]);
    Linear {
        weight: frozen(transposed(&weight, d_out, d_in, device)),
        bias: bias.then(|| {
            let v = take(w, &format!("{prefix}.bias"), &[d_out]);
            frozen(Tensor::from_data(TensorData::new(v, [d_out]), device))
        }),
    }
}

/// [`linear`] as a projection that can take a LoRA adapter.
pub(crate) fn proj<B: Backend>(
    w: &mut WeightMap,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &B::Device,
) -> Proj<B> {
    Proj::new(linear(w, prefix, d_in, d_out, bias, device))
}

/// A PyTorch `[out, in]` row-major matrix as Burn's `[in, out]`.
pub(crate) fn transposed<B: Backend>(
    w: &[f32],
    out: usize,
    inp: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut t = vec![0f32; w.len()];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = w[o * inp + i];
        }
    }
    tensor2(t, [inp, out], device)
}

pub(crate) fn rms_norm<B: Backend>(
    w: &mut WeightMap,
    key: &str,
    d: usize,
    eps: f64,
    device: &B::Device,
) -> RmsNorm<B> {
    let v = take(w, key, &[d]);
    RmsNorm {
        gamma: frozen(Tensor::from_data(TensorData::new(v, [d]), device)),
        epsilon: eps,
    }
}
