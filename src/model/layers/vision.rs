//! The Qwen2.5 vision tower (Qwen2.5-VL's and Qwen2.5-Omni's thinker's), in
//! Burn, generic over the backend.
//!
//! Follows transformers 4.57 `models/qwen2_5_vl/modeling_qwen2_5_vl.py`
//! (`Qwen2_5_VisionTransformerPretrainedModel` and its parts):
//!
//! 1. **Patch embedding** — a `Conv3d` with kernel = stride =
//!    `temporal_patch_size × patch × patch` and no bias, i.e. one matrix
//!    product of each flattened `(channel, t, y, x)` patch row with the
//!    reshaped kernel.
//! 2. **2-D rotary embedding** — per patch, `θ = 10000` frequencies over a
//!    quarter of the head dimension for its row id and for its column id,
//!    concatenated, then duplicated for `rotate_half`.
//! 3. **Window reordering** — the grid of merged units (2×2 patches) is cut
//!    into `window_size / merge / patch` square windows, row-major within
//!    each temporal slice; patches are permuted (in groups of `merge²`) so
//!    every window is contiguous (`get_window_index`).
//! 4. **Blocks** — pre-norm RMSNorm (eps 1e-6, hard-coded in the reference),
//!    bidirectional attention within each window (`cu_window_seqlens`), or
//!    within each image / video frame for the blocks in
//!    `fullatt_block_indexes` (`cu_seqlens`), SiLU-gated MLP with biases.
//! 5. **Patch merger** — RMSNorm, each `merge²` consecutive patches
//!    concatenated, `Linear → GELU (erf) → Linear` to the language width,
//!    then the window permutation undone.
//!
//! Variable-length attention is computed by gathering the segments into a
//! padded `[segments, longest, ·]` batch with a key mask, so windows of the
//! same size (nearly all of them) cost no padding at all.

use burn::nn::{Linear, RmsNorm};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::config::VisionConfig;
use crate::checkpoint::load::WeightMap;
use super::lora::Proj;
use super::rotary::Rotary;
use super::decoder::{frozen, linear, rms_norm, take, transposed, Mlp};
use crate::error::{GeomError, Result};

/// The vision RMSNorm epsilon (hard-coded in the reference, not configurable).
pub const VISION_NORM_EPS: f64 = 1e-6;

/// Rotary base of the vision tower.
const VISION_ROPE_THETA: f32 = 10_000.0;

/// Default cap on the attention scores a vision block holds at once:
/// 2^27 floats = 512 MB (e.g. 16 heads × 8192 query rows × 1024 keys).
pub const DEFAULT_SCORE_BUDGET: usize = 1 << 27;

/// Additive mask value for padded keys.
const MASKED: f32 = -1e30;

/// Bidirectional multi-head attention. Qwen2.5-VL's fused `attn.qkv`
/// (`[3·hidden, hidden]`, rows `(q|k|v, head, dim)`) is split into its three
/// projections at load, so no copy separates them at run time; Qwen2.5-Omni
/// stores them apart (`attn.q`, `attn.k`, `attn.v`) and they load as they are.
#[derive(Debug)]
pub struct VisionAttention<B: Backend> {
    /// Rows `0..hidden` of `attn.qkv`, `[hidden, hidden]`, with bias.
    pub q: Linear<B>,
    /// Rows `hidden..2·hidden` of `attn.qkv`.
    pub k: Linear<B>,
    /// Rows `2·hidden..3·hidden` of `attn.qkv`.
    pub v: Linear<B>,
    /// `[hidden, hidden]`, with bias.
    pub proj: Linear<B>,
    n_heads: usize,
    head_dim: usize,
    /// Most attention scores held at once (floats); see [`VisionModel::set_score_budget`].
    score_budget: usize,
}

/// One pre-norm vision block.
#[derive(Debug)]
pub struct VisionBlock<B: Backend> {
    /// RMSNorm before attention.
    pub norm1: RmsNorm<B>,
    /// RMSNorm before the MLP.
    pub norm2: RmsNorm<B>,
    /// Attention.
    pub attn: VisionAttention<B>,
    /// SiLU-gated MLP (the decoder's, here with biases).
    pub mlp: Mlp<B>,
}

/// The patch merger: `ln_q`, then `mlp.0 → GELU → mlp.2` on `merge²` patches at a time.
#[derive(Debug)]
pub struct PatchMerger<B: Backend> {
    /// RMSNorm over the vision width.
    pub ln_q: RmsNorm<B>,
    /// `mlp.0`: `[merge²·hidden, merge²·hidden]`.
    pub fc1: Linear<B>,
    /// `mlp.2`: `[merge²·hidden, out_hidden]`.
    pub fc2: Linear<B>,
}

/// The vision tower.
#[derive(Debug)]
pub struct VisionModel<B: Backend> {
    /// `patch_embed.proj` as a matrix `[C·T·P·P, hidden]` (no bias).
    pub patch_embed: Linear<B>,
    /// The blocks.
    pub blocks: Vec<VisionBlock<B>>,
    /// The merger.
    pub merger: PatchMerger<B>,
    config: VisionConfig,
}

/// The host-side layout of a batch of images/videos: rotary angles, the
/// window permutation and the attention segments.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionLayout {
    /// Number of patches.
    pub n_patches: usize,
    /// `[n_patches, head_dim/2]` rotary angles, in processor order.
    pub rotary: Vec<f32>,
    /// For each merged unit in window order, its index in processor order.
    pub window_index: Vec<usize>,
    /// Window boundaries in patches (window order), after dropping empty windows.
    pub cu_window_seqlens: Vec<usize>,
    /// Boundaries of each image / video frame, for the full-attention blocks.
    pub cu_seqlens: Vec<usize>,
}

/// What the vision tower returns.
#[derive(Debug)]
pub struct VisionOutput<B: Backend> {
    /// `[n_patches / merge², out_hidden]`, in processor order: the embeddings
    /// that replace the image/video placeholder tokens.
    pub embeds: Tensor<B, 2>,
    /// Each block's output `[n_patches, hidden]`, in processor order, for the
    /// blocks asked for.
    pub blocks: Vec<(usize, Tensor<B, 2>)>,
}

impl VisionLayout {
    /// Computes the layout of `grids` (`(t, h, w)` in patches, one per image
    /// or video) — `rot_pos_emb`, `get_window_index` and `cu_seqlens` of the
    /// reference.
    pub fn new(cfg: &VisionConfig, grids: &[[usize; 3]]) -> Result<Self> {
        let m = cfg.spatial_merge_size;
        let unit = m * m;
        let head_dim = cfg.hidden_size / cfg.num_heads;
        let quarter = head_dim / 4;
        let inv_freq: Vec<f32> = (0..quarter)
            .map(|j| 1.0 / VISION_ROPE_THETA.powf((2 * j) as f32 / (head_dim / 2) as f32))
            .collect();
        let win = cfg.window_size / m / cfg.patch_size;
        if win == 0 {
            return Err(GeomError::invalid(format!(
                "vision window_size {} is smaller than one merged unit ({} px)",
                cfg.window_size,
                m * cfg.patch_size
            )));
        }
        let mut rotary = Vec::new();
        let mut window_index = Vec::new();
        let mut cu_window = vec![0usize];
        let mut cu_seqlens = vec![0usize];
        let mut offset = 0usize; // merged units so far
        for (i, &[t, h, w]) in grids.iter().enumerate() {
            if t == 0 || h == 0 || w == 0 || h % m != 0 || w % m != 0 {
                return Err(GeomError::invalid(format!(
                    "grid {i} is {t}×{h}×{w} patches; h and w must be positive multiples of the merge size {m}"
                )));
            }
            // Rotary angles in processor (merge-block) order: (t, h/m, w/m, m, m).
            let mut one = Vec::with_capacity(h * w * 2 * quarter);
            for bh in 0..h / m {
                for bw in 0..w / m {
                    for ih in 0..m {
                        for iw in 0..m {
                            let (row, col) = ((bh * m + ih) as f32, (bw * m + iw) as f32);
                            one.extend(inv_freq.iter().map(|f| row * f));
                            one.extend(inv_freq.iter().map(|f| col * f));
                        }
                    }
                }
            }
            for _ in 0..t {
                rotary.extend_from_slice(&one);
                cu_seqlens.push(cu_seqlens.last().unwrap() + h * w);
            }
            // Windows of `win × win` merged units, row-major, per temporal slice.
            let (lh, lw) = (h / m, w / m);
            let (nwh, nww) = (lh / win + 1, lw / win + 1); // the reference always pads
            for ti in 0..t {
                for wy in 0..nwh {
                    for wx in 0..nww {
                        let mut n = 0;
                        for y in wy * win..((wy + 1) * win).min(lh) {
                            for x in wx * win..((wx + 1) * win).min(lw) {
                                window_index.push(offset + (ti * lh + y) * lw + x);
                                n += 1;
                            }
                        }
                        // Empty windows vanish (`unique_consecutive`).
                        if n > 0 {
                            cu_window.push(cu_window.last().unwrap() + n * unit);
                        }
                    }
                }
            }
            offset += t * lh * lw;
        }
        Ok(Self {
            n_patches: offset * unit,
            rotary,
            window_index,
            cu_window_seqlens: cu_window,
            cu_seqlens,
        })
    }

    /// The patch permutation into window order: entry `i` is the processor
    /// index of the `i`-th patch in window order.
    pub fn patch_order(&self) -> Vec<usize> {
        let unit = self.n_patches / self.window_index.len().max(1);
        self.window_index
            .iter()
            .flat_map(|&g| (0..unit).map(move |j| g * unit + j))
            .collect()
    }
}

impl<B: Backend> VisionModel<B> {
    /// Builds the tower from checkpoint weights (keys `visual.*`).
    pub fn load(w: &mut WeightMap, cfg: &VisionConfig, device: &B::Device) -> Self {
        let d = cfg.hidden_size;
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        let patch_in = c * t * p * p;
        let kernel = w
            .take("visual.patch_embed.proj.weight", &[d, c, t, p, p])
            .unwrap_or_else(|| vec![0.0; d * patch_in]);
        let patch_embed = Linear {
            weight: frozen(transposed(&kernel, d, patch_in, device)),
            bias: None,
        };
        let inter = cfg.intermediate_size;
        let blocks = (0..cfg.depth)
            .map(|i| {
                let pre = format!("visual.blocks.{i}");
                let lin = |w: &mut WeightMap, name: &str, i: usize, o: usize| {
                    linear(w, &format!("{pre}.{name}"), i, o, true, device)
                };
                // Qwen2.5-VL stores a fused `attn.qkv`, Qwen2.5-Omni separate `attn.q/k/v`.
                let qkv = if w.contains(&format!("{pre}.attn.qkv.weight")) {
                    split_qkv(w, &format!("{pre}.attn.qkv"), d, device)
                } else {
                    ["q", "k", "v"].map(|x| lin(w, &format!("attn.{x}"), d, d))
                };
                VisionBlock {
                    norm1: rms_norm(
                        w,
                        &format!("{pre}.norm1.weight"),
                        d,
                        VISION_NORM_EPS,
                        device,
                    ),
                    norm2: rms_norm(
                        w,
                        &format!("{pre}.norm2.weight"),
                        d,
                        VISION_NORM_EPS,
                        device,
                    ),
                    attn: VisionAttention {
                        q: qkv[0].clone(),
                        k: qkv[1].clone(),
                        v: qkv[2].clone(),
                        proj: lin(w, "attn.proj", d, d),
                        n_heads: cfg.num_heads,
                        head_dim: d / cfg.num_heads,
                        score_budget: DEFAULT_SCORE_BUDGET,
                    },
                    mlp: Mlp {
                        gate_proj: Proj::new(lin(w, "mlp.gate_proj", d, inter)),
                        up_proj: Proj::new(lin(w, "mlp.up_proj", d, inter)),
                        down_proj: Proj::new(lin(w, "mlp.down_proj", inter, d)),
                    },
                }
            })
            .collect();
        let merged = d * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let merger = PatchMerger {
            ln_q: rms_norm(w, "visual.merger.ln_q.weight", d, VISION_NORM_EPS, device),
            fc1: linear(w, "visual.merger.mlp.0", merged, merged, true, device),
            fc2: linear(
                w,
                "visual.merger.mlp.2",
                merged,
                cfg.out_hidden_size,
                true,
                device,
            ),
        };
        Self {
            patch_embed,
            blocks,
            merger,
            config: cfg.clone(),
        }
    }

    /// Caps the attention scores a block holds at once (in floats, per
    /// segment batch): queries are processed in row blocks beyond it. The
    /// outputs depend on it only through f32 rounding (≈1e-6); memory and
    /// speed do.
    pub fn set_score_budget(&mut self, floats: usize) {
        for b in &mut self.blocks {
            b.attn.score_budget = floats.max(1);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Runs the tower on flattened patches.
    ///
    /// # Shapes
    /// * `pixels`: `[n_patches, C·T·P·P]` in processor order (rows as the
    ///   image processor writes them);
    /// * `grids`: the `(t, h, w)` patch grid of each image/video, in order;
    /// * `capture_blocks`: indices of the blocks whose outputs to return.
    pub fn forward(
        &self,
        pixels: Tensor<B, 2>,
        grids: &[[usize; 3]],
        capture_blocks: &[usize],
    ) -> Result<VisionOutput<B>> {
        let device = pixels.device();
        let layout = VisionLayout::new(&self.config, grids)?;
        let [n, cols] = pixels.dims();
        let c = &self.config;
        let want_cols = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
        if n != layout.n_patches || cols != want_cols {
            return Err(GeomError::invalid(format!(
                "pixel values are [{n}, {cols}] but the grids {grids:?} need [{}, {want_cols}]",
                layout.n_patches
            )));
        }
        let unit = c.spatial_merge_size * c.spatial_merge_size;
        let order = layout.patch_order();
        let order_t = index_tensor::<B>(&order, &device);
        // Into window order.
        let mut x = self.patch_embed.forward(pixels).select(0, order_t);
        // Angles per patch in window order, duplicated for `rotate_half`.
        let half = layout.rotary.len() / n.max(1);
        let mut angles = Vec::with_capacity(2 * layout.rotary.len());
        for &p in &order {
            let a = &layout.rotary[p * half..(p + 1) * half];
            angles.extend_from_slice(a);
            angles.extend_from_slice(a);
        }
        let head_dim = c.hidden_size / c.num_heads;
        let scale = (head_dim as f32).powf(-0.5);
        let rope_q = Rotary::new(&angles, head_dim, c.num_heads, scale, &device);
        let rope_k = Rotary::new(&angles, head_dim, c.num_heads, 1.0, &device);
        let windows = Segments::new(&layout.cu_window_seqlens, &device);
        let frames = Segments::new(&layout.cu_seqlens, &device);
        // Undo the window permutation of block outputs (argsort of `order`).
        let mut inverse = vec![0usize; n];
        for (i, &p) in order.iter().enumerate() {
            inverse[p] = i;
        }
        let inverse_t = index_tensor::<B>(&inverse, &device);
        let mut blocks = Vec::new();
        for (i, blk) in self.blocks.iter().enumerate() {
            let seg = if c.fullatt_block_indexes.contains(&i) {
                &frames
            } else {
                &windows
            };
            x = blk.forward(x, &rope_q, &rope_k, seg);
            if capture_blocks.contains(&i) {
                blocks.push((i, x.clone().select(0, inverse_t.clone())));
            }
        }
        let merged = self.merger.forward(x, unit);
        let mut inv_units = vec![0usize; layout.window_index.len()];
        for (i, &g) in layout.window_index.iter().enumerate() {
            inv_units[g] = i;
        }
        let embeds = merged.select(0, index_tensor::<B>(&inv_units, &device));
        Ok(VisionOutput { embeds, blocks })
    }
}

impl<B: Backend> VisionBlock<B> {
    fn forward(
        &self,
        x: Tensor<B, 2>,
        rope_q: &Rotary<B>,
        rope_k: &Rotary<B>,
        seg: &Segments<B>,
    ) -> Tensor<B, 2> {
        let h = x.clone()
            + self
                .attn
                .forward(self.norm1.forward(x), rope_q, rope_k, seg);
        h.clone() + self.mlp.forward(self.norm2.forward(h))
    }
}

impl<B: Backend> PatchMerger<B> {
    fn forward(&self, x: Tensor<B, 2>, unit: usize) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let y = self.ln_q.forward(x).reshape([n / unit, d * unit]);
        self.fc2.forward(gelu(self.fc1.forward(y)))
    }
}

impl<B: Backend> VisionAttention<B> {
    /// # Shapes
    /// `x`: `[n, hidden]`; the query tables carry the scale `head_dim^-0.5`.
    fn forward(
        &self,
        x: Tensor<B, 2>,
        rope_q: &Rotary<B>,
        rope_k: &Rotary<B>,
        seg: &Segments<B>,
    ) -> Tensor<B, 2> {
        let [n, _] = x.dims();
        let (nh, hd) = (self.n_heads, self.head_dim);
        let rows = |y: Tensor<B, 2>| y.reshape([n * nh, hd]);
        let q = rope_q
            .apply(rows(self.q.forward(x.clone())))
            .reshape([n, nh, hd]);
        let k = rope_k
            .apply(rows(self.k.forward(x.clone())))
            .reshape([n, nh, hd]);
        let v = self.v.forward(x).reshape([n, nh, hd]);
        self.proj
            .forward(segment_attention(q, k, v, seg, self.score_budget))
    }
}

/// Bidirectional attention within segments (windows, frames, audio chunks):
/// each row attends to the rows of its own segment only.
///
/// # Shapes
/// `q`, `k`, `v`: `[n, heads, head_dim]`, rows in segment order, the
/// attention scale already folded into `q`; returns `[n, heads·head_dim]`.
///
/// Queries run in row blocks so the scores never exceed `score_budget`
/// floats (a full-attention block over one large image would otherwise hold
/// heads × patches² of them). Each query row's softmax is over all keys
/// either way: the result is the same up to f32 rounding of the differently
/// blocked matrix products.
pub(crate) fn segment_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    seg: &Segments<B>,
    score_budget: usize,
) -> Tensor<B, 2> {
    let [_, nh, hd] = q.dims();
    // Gather into padded segments: [s, nh, l, hd].
    let (s, l) = (seg.count, seg.longest);
    let pad = |y: Tensor<B, 3>| {
        y.select(0, seg.gather.clone())
            .reshape([s, l, nh, hd])
            .swap_dims(1, 2)
    };
    let (q, kt, v) = (pad(q), pad(k).swap_dims(2, 3), pad(v));
    let rows = (score_budget / (s * nh * l).max(1)).clamp(1, l);
    let attend = |q: Tensor<B, 4>| {
        let mut scores = q.matmul(kt.clone());
        if let Some(mask) = &seg.key_mask {
            scores = scores + mask.clone();
        }
        softmax(scores, 3).matmul(v.clone())
    };
    let out = if rows >= l {
        attend(q) // [s, nh, l, hd]
    } else {
        let blocks = (0..l)
            .step_by(rows)
            .map(|r| attend(q.clone().narrow(2, r, rows.min(l - r))))
            .collect();
        Tensor::cat(blocks, 2)
    };
    let out = out.swap_dims(1, 2).reshape([s * l, nh * hd]);
    if seg.key_mask.is_some() {
        out.select(0, seg.scatter.clone())
    } else {
        out
    }
}

/// Reads a fused `[3·d, d]` projection (and bias) and splits it into its
/// q, k, v row blocks.
fn split_qkv<B: Backend>(
    w: &mut WeightMap,
    prefix: &str,
    d: usize,
    device: &B::Device,
) -> [Linear<B>; 3] {
    let weight = take(w, &format!("{prefix}.weight"), &[3 * d, d]);
    let bias = take(w, &format!("{prefix}.bias"), &[3 * d]);
    [0, 1, 2].map(|i| Linear {
        weight: frozen(transposed(
            &weight[i * d * d..(i + 1) * d * d],
            d,
            d,
            device,
        )),
        bias: Some(frozen(Tensor::from_data(
            TensorData::new(bias[i * d..(i + 1) * d].to_vec(), [d]),
            device,
        ))),
    })
}

/// Attention segments laid out as a padded batch.
pub(crate) struct Segments<B: Backend> {
    count: usize,
    longest: usize,
    /// Row of the input for each padded slot (`count·longest`; pads read row 0).
    gather: Tensor<B, 1, Int>,
    /// Padded slot of each input row (`n`).
    scatter: Tensor<B, 1, Int>,
    /// `[count, 1, 1, longest]` additive key mask, when any segment is
    /// short (and only then are there padded slots to drop).
    key_mask: Option<Tensor<B, 4>>,
}

impl<B: Backend> Segments<B> {
    /// Segments `cu[i]..cu[i+1]` of the rows (cumulative lengths from 0).
    pub(crate) fn new(cu: &[usize], device: &B::Device) -> Self {
        let lens: Vec<usize> = cu.windows(2).map(|w| w[1] - w[0]).collect();
        let count = lens.len();
        let longest = lens.iter().copied().max().unwrap_or(0);
        let padded = lens.iter().any(|&l| l != longest);
        let mut gather = vec![0usize; count * longest];
        let mut scatter = vec![0usize; *cu.last().unwrap_or(&0)];
        let mut mask = vec![0f32; count * longest];
        for (s, (&start, &len)) in cu.iter().zip(&lens).enumerate() {
            for j in 0..longest {
                if j < len {
                    gather[s * longest + j] = start + j;
                    scatter[start + j] = s * longest + j;
                } else {
                    mask[s * longest + j] = MASKED;
                }
            }
        }
        Self {
            count,
            longest,
            gather: index_tensor(&gather, device),
            scatter: index_tensor(&scatter, device),
            key_mask: padded
                .then(|| Tensor::from_data(TensorData::new(mask, [count, 1, 1, longest]), device)),
        }
    }
}

pub(crate) fn index_tensor<B: Backend>(idx: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [idx.len()]), device)
}
