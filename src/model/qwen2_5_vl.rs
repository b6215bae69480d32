//! The whole Qwen2.5-VL model: vision tower + language decoder, with the
//! image/video embeddings scattered into their placeholder tokens
//! (`Qwen2_5_VLModel.forward` of transformers 4.57).

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ndarray::Array3;

use super::capture::{CaptureSpec, HookPoint};
use super::config::Qwen2_5VlConfig;
use super::load::{Checkpoint, WeightMap};
use super::rope::{rope_index, VisualGrids};
use super::text::TextModel;
use super::vision::{index_tensor, VisionModel};
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
    /// M-RoPE position ids used, `[3, B, T]`.
    pub position_ids: Array3<i64>,
}

/// Qwen2.5-VL: vision tower and language decoder.
#[derive(Debug)]
pub struct Qwen2_5Vl<B: Backend> {
    /// The vision tower (`visual.*`); `None` when loaded text-only
    /// ([`Qwen2_5Vl::load_text_only`]).
    pub visual: Option<VisionModel<B>>,
    /// The language decoder (`model.*`).
    pub text: TextModel<B>,
    config: Qwen2_5VlConfig,
}

impl<B: Backend> Qwen2_5Vl<B> {
    /// Loads a checkpoint folder (`config.json` + safetensors, single or
    /// sharded, either key layout). Every tensor must be present with its
    /// configured shape and none may be left over (`lm_head.weight` aside).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = Qwen2_5VlConfig::from_path(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let mut w = WeightMap::new(&ckpt);
        let visual = VisionModel::load(&mut w, &config.vision, device);
        let text = TextModel::load(&mut w, &config.text, device);
        w.finish()?;
        Ok(Self {
            visual: Some(visual),
            text,
            config,
        })
    }

    /// Loads the language decoder only, leaving the vision tower on disk:
    /// for text-only work such as contrastive training, where the frozen
    /// tower (0.67 B parameters at 3B and 7B) would only take memory.
    /// Images and videos are then refused with an error.
    pub fn load_text_only(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = Qwen2_5VlConfig::from_path(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let mut w = WeightMap::new(&ckpt);
        w.skip_prefix("visual.");
        let text = TextModel::load(&mut w, &config.text, device);
        w.finish()?;
        Ok(Self {
            visual: None,
            text,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Qwen2_5VlConfig {
        &self.config
    }

    /// Number of hidden states `output_hidden_states` gives (layers + 1).
    pub fn n_hidden_states(&self) -> usize {
        self.config.text.num_hidden_layers + 1
    }

    /// Runs the model on a batch. With `spec` =
    /// [`CaptureSpec::hidden_states`] the captures are transformers'
    /// `output_hidden_states`.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        spec: &CaptureSpec,
        device: &B::Device,
    ) -> Result<ModelOutput<B>> {
        let b = inputs.input_ids.len();
        let t = inputs.input_ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 {
            return Err(GeomError::invalid("empty batch"));
        }
        let vocab = self.config.text.vocab_size;
        for (i, row) in inputs.input_ids.iter().enumerate() {
            if let Some(&bad) = row.iter().find(|&&id| id as usize >= vocab) {
                return Err(GeomError::invalid(format!(
                    "sample {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
        }
        let grids = VisualGrids {
            image: inputs.image_grids.clone(),
            video: inputs.video_grids.clone(),
            second_per_grid_ts: inputs.second_per_grid_ts.clone(),
        };
        let (position_ids, _) = rope_index(
            &self.config,
            &inputs.input_ids,
            inputs.attention_mask.as_deref(),
            &grids,
        )?;
        let ids: Vec<i64> = inputs
            .input_ids
            .iter()
            .flatten()
            .map(|&x| x as i64)
            .collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), device);
        let mut embeds = self.text.embed(ids);

        let blocks = spec.vision_blocks();
        let mut image_captures = Vec::new();
        let mut video_captures = Vec::new();
        let image = self.vision(
            &inputs.pixel_values,
            &inputs.image_grids,
            &blocks,
            &mut image_captures,
            "image",
            device,
        )?;
        let video = self.vision(
            &inputs.pixel_values_videos,
            &inputs.video_grids,
            &blocks,
            &mut video_captures,
            "video",
            device,
        )?;
        if image.is_some() || video.is_some() {
            embeds = self.scatter(embeds, &inputs.input_ids, image, video)?;
        }
        let out = self.text.forward(
            embeds,
            &position_ids,
            inputs.attention_mask.as_deref(),
            spec,
        );
        Ok(ModelOutput {
            last_hidden_state: out.last_hidden_state,
            captures: out.captures,
            image_captures,
            video_captures,
            position_ids,
        })
    }

    fn vision(
        &self,
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
        let c = &self.config.vision;
        let cols = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
        if !pixels.len().is_multiple_of(cols) {
            return Err(GeomError::invalid(format!(
                "{what} pixel values hold {} floats, not a multiple of the patch size {cols}",
                pixels.len()
            )));
        }
        let n = pixels.len() / cols;
        let x = Tensor::<B, 2>::from_data(TensorData::new(pixels.to_vec(), [n, cols]), device);
        let visual = self.visual.as_ref().ok_or_else(|| {
            GeomError::invalid(format!(
                "{what}: this model was loaded without its vision tower (text only); load it with Qwen2_5Vl::load"
            ))
        })?;
        let out = visual.forward(x, grids, blocks)?;
        captures.extend(
            out.blocks
                .into_iter()
                .map(|(i, t)| (HookPoint::VisionBlock(i), t)),
        );
        Ok(Some(out.embeds))
    }

    /// Replaces the `<|image_pad|>` / `<|video_pad|>` embeddings, in reading
    /// order, by the vision embeddings (`masked_scatter`).
    fn scatter(
        &self,
        embeds: Tensor<B, 3>,
        input_ids: &[Vec<u32>],
        image: Option<Tensor<B, 2>>,
        video: Option<Tensor<B, 2>>,
    ) -> Result<Tensor<B, 3>> {
        let device = embeds.device();
        let [b, t, h] = embeds.dims();
        let n_img = image.as_ref().map_or(0, |x| x.dims()[0]);
        let n_vid = video.as_ref().map_or(0, |x| x.dims()[0]);
        let (img_id, vid_id) = (self.config.image_token_id, self.config.video_token_id);
        let (mut next_img, mut next_vid) = (0usize, 0usize);
        let mut index = Vec::with_capacity(b * t);
        for (p, &id) in input_ids.iter().flatten().enumerate() {
            index.push(if id == img_id {
                next_img += 1;
                b * t + next_img - 1
            } else if id == vid_id {
                next_vid += 1;
                b * t + n_img + next_vid - 1
            } else {
                p
            });
        }
        for (what, tokens, features) in [("image", next_img, n_img), ("video", next_vid, n_vid)] {
            if tokens != features {
                return Err(GeomError::invalid(format!(
                    "{what} features and {what} tokens do not match: tokens: {tokens}, features: {features}"
                )));
            }
        }
        let mut table = vec![embeds.reshape([b * t, h])];
        table.extend(image);
        table.extend(video);
        let table = Tensor::cat(table, 0);
        Ok(table
            .select(0, index_tensor::<B>(&index, &device))
            .reshape([b, t, h]))
    }
}
