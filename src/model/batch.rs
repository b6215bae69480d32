//! A prepared batch (what the reference processor returns) and what one
//! forward pass returns, for either architecture, and the glue both use:
//! checking token ids, running the vision tower, scattering media
//! embeddings into their placeholder tokens.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ndarray::Array3;

use super::capture::{CaptureSpec, HookPoint};
use super::layers::vision::{index_tensor, VisionModel};
use crate::error::{GeomError, Result};

/// A tokenized, preprocessed batch — what the transformers processor returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInputs {
    /// `B` rows of `T` token ids (placeholders already expanded, batch padded).
    pub input_ids: Vec<Vec<u32>>,
    /// `B` rows of `T`: 1 = token, 0 = padding; `None` = no padding.
    pub attention_mask: Option<Vec<Vec<u8>>>,
    /// `[patches, C·T·P·P]` of all images, concatenated in order (row-major).
    pub pixel_values: Vec<f32>,
    /// `(t, h, w)` patch grid of each image.
    pub image_grids: Vec<[usize; 3]>,
    /// `[patches, C·T·P·P]` of all videos.
    pub pixel_values_videos: Vec<f32>,
    /// `(t, h, w)` patch grid of each video.
    pub video_grids: Vec<[usize; 3]>,
    /// Seconds per temporal patch of each video (`temporal_patch_size / fps`).
    pub second_per_grid_ts: Vec<f64>,
    /// Qwen2.5-Omni: `[mels, Σ frames]` row-major — the valid log-mel
    /// frames of every audio clip, concatenated in order (the thinker's
    /// `input_features` selected by `feature_attention_mask`).
    pub input_features: Vec<f32>,
    /// Qwen2.5-Omni: valid mel frames of each clip
    /// (`feature_attention_mask.sum(-1)`).
    pub audio_frames: Vec<usize>,
    /// Qwen2.5-Omni: each video's audio track is interleaved with it
    /// (`use_audio_in_video`); its clip is then among the audio clips.
    pub use_audio_in_video: bool,
}

impl ModelInputs {
    /// Batch size and sequence length, or an error for an empty or ragged batch.
    pub(crate) fn dims(&self) -> Result<(usize, usize)> {
        let b = self.input_ids.len();
        let t = self.input_ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 {
            return Err(GeomError::invalid("empty batch"));
        }
        Ok((b, t))
    }

    /// Every token id must index the vocabulary.
    pub(crate) fn check_vocab(&self, vocab: usize) -> Result<()> {
        for (i, row) in self.input_ids.iter().enumerate() {
            if let Some(&bad) = row.iter().find(|&&id| id as usize >= vocab) {
                return Err(GeomError::invalid(format!(
                    "sample {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
        }
        Ok(())
    }

    /// The ids as a `[B, T]` tensor.
    pub(crate) fn ids_tensor<B: Backend>(&self, device: &B::Device) -> Result<Tensor<B, 2, Int>> {
        let (b, t) = self.dims()?;
        let ids: Vec<i64> = self.input_ids.iter().flatten().map(|&x| x as i64).collect();
        Ok(Tensor::from_data(TensorData::new(ids, [b, t]), device))
    }
}

/// What one forward pass returns.
#[derive(Debug)]
pub struct ModelOutput<B: Backend> {
    /// Output of the final norm, `[B, T, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// Decoder captures in the spec's order, each `[B, T, hidden]`.
    pub captures: Vec<(HookPoint, Tensor<B, 3>)>,
    /// Vision-block captures of the images, each `[image patches, vision hidden]`.
    pub image_captures: Vec<(HookPoint, Tensor<B, 2>)>,
    /// Vision-block captures of the videos, each `[video patches, vision hidden]`.
    pub video_captures: Vec<(HookPoint, Tensor<B, 2>)>,
    /// Audio-encoder layer captures (Qwen2.5-Omni), each
    /// `[Σ tokens after the convolutions, audio d_model]`, rows in clip then
    /// chunk order.
    pub audio_captures: Vec<(HookPoint, Tensor<B, 2>)>,
    /// M-RoPE / TMRoPE position ids used, `[3, B, T]`.
    pub position_ids: Array3<i64>,
}

/// Runs the vision tower on one modality's flattened patches, when there
/// are any; the blocks in `blocks` are captured into `captures`.
fn run_vision<B: Backend>(
    visual: Option<&VisionModel<B>>,
    pixels: &[f32],
    grids: &[[usize; 3]],
    blocks: &[usize],
    captures: &mut Vec<(HookPoint, Tensor<B, 2>)>,
    what: &str,
    device: &B::Device,
) -> Result<Option<Tensor<B, 2>>> {
    if grids.is_empty() {
        if !pixels.is_empty() {
            return Err(GeomError::invalid(format!(
                "{what} pixel values given without their grids"
            )));
        }
        return Ok(None);
    }
    let visual = visual.ok_or_else(|| {
        GeomError::invalid(format!(
            "{what}: this model was loaded without its vision tower (text only); load it whole"
        ))
    })?;
    let c = visual.config();
    let cols = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
    if !pixels.len().is_multiple_of(cols) {
        return Err(GeomError::invalid(format!(
            "{what} pixel values hold {} floats, not a multiple of the patch size {cols}",
            pixels.len()
        )));
    }
    let n = pixels.len() / cols;
    let x = Tensor::<B, 2>::from_data(TensorData::new(pixels.to_vec(), [n, cols]), device);
    let out = visual.forward(x, grids, blocks)?;
    captures.extend(
        out.blocks
            .into_iter()
            .map(|(i, t)| (HookPoint::VisionBlock(i), t)),
    );
    Ok(Some(out.embeds))
}

/// The vision tower's embeddings of a batch's images and videos (each
/// `None` when the batch has none), and the captures of `spec`'s vision blocks.
pub(crate) struct VisualEmbeds<B: Backend> {
    pub image: Option<Tensor<B, 2>>,
    pub video: Option<Tensor<B, 2>>,
    pub image_captures: Vec<(HookPoint, Tensor<B, 2>)>,
    pub video_captures: Vec<(HookPoint, Tensor<B, 2>)>,
}

/// Runs the vision tower on a batch's images, then on its videos.
pub(crate) fn embed_visuals<B: Backend>(
    visual: Option<&VisionModel<B>>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &B::Device,
) -> Result<VisualEmbeds<B>> {
    let blocks = spec.vision_blocks();
    let (mut image_captures, mut video_captures) = (Vec::new(), Vec::new());
    let image = run_vision(
        visual,
        &inputs.pixel_values,
        &inputs.image_grids,
        &blocks,
        &mut image_captures,
        "image",
        device,
    )?;
    let video = run_vision(
        visual,
        &inputs.pixel_values_videos,
        &inputs.video_grids,
        &blocks,
        &mut video_captures,
        "video",
        device,
    )?;
    Ok(VisualEmbeds {
        image,
        video,
        image_captures,
        video_captures,
    })
}

/// Replaces the embeddings of each medium's placeholder token, in reading
/// order, by that medium's features (`masked_scatter`); `media` is
/// `(placeholder id, name, features [n, hidden])`. The number of
/// placeholders must equal the number of feature rows.
pub(crate) fn scatter_media<B: Backend>(
    embeds: Tensor<B, 3>,
    input_ids: &[Vec<u32>],
    media: Vec<(u32, &str, Option<Tensor<B, 2>>)>,
) -> Result<Tensor<B, 3>> {
    if media.iter().all(|(_, _, f)| f.is_none()) {
        return Ok(embeds);
    }
    let device = embeds.device();
    let [b, t, h] = embeds.dims();
    // Row of the lookup table [text embeddings; medium 0; medium 1; …] for
    // each position.
    let mut offsets = Vec::with_capacity(media.len());
    let mut off = b * t;
    for (_, _, f) in &media {
        offsets.push(off);
        off += f.as_ref().map_or(0, |x| x.dims()[0]);
    }
    let mut next = vec![0usize; media.len()];
    let mut index = Vec::with_capacity(b * t);
    for (p, &id) in input_ids.iter().flatten().enumerate() {
        match media.iter().position(|(tok, _, _)| *tok == id) {
            Some(m) => {
                index.push(offsets[m] + next[m]);
                next[m] += 1;
            }
            None => index.push(p),
        }
    }
    for (m, (_, what, f)) in media.iter().enumerate() {
        let features = f.as_ref().map_or(0, |x| x.dims()[0]);
        if next[m] != features {
            return Err(GeomError::invalid(format!(
                "{what} features and {what} tokens do not match: tokens: {}, features: {features}",
                next[m]
            )));
        }
    }
    let mut table = vec![embeds.reshape([b * t, h])];
    table.extend(media.into_iter().filter_map(|(_, _, f)| f));
    let table = Tensor::cat(table, 0);
    Ok(table
        .select(0, index_tensor::<B>(&index, &device))
        .reshape([b, t, h]))
}
