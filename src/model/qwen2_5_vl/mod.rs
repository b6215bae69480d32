//! The whole Qwen2.5-VL model: vision tower + language decoder, with the
//! image/video embeddings scattered into their placeholder tokens
//! (`Qwen2_5_VLModel.forward` of transformers 4.57).
//!
//! * [`config`] — `config.json` in both layouts found in the wild;
//! * [`rope`] — M-RoPE position ids (`get_rope_index`).

pub mod config;
pub mod rope;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::checkpoint::load::{Checkpoint, WeightMap};
use crate::error::{GeomError, Result};
use crate::model::batch::{embed_visuals, scatter_media};
pub use crate::model::batch::{ModelInputs, ModelOutput};
use crate::model::capture::CaptureSpec;
use crate::model::layers::decoder::TextModel;
use crate::model::layers::vision::VisionModel;
use config::Qwen2_5VlConfig;
use rope::{rope_index, VisualGrids};

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
        inputs.dims()?;
        inputs.check_vocab(self.config.text.vocab_size)?;
        if !inputs.audio_frames.is_empty() || !inputs.input_features.is_empty() {
            return Err(GeomError::invalid(
                "Qwen2.5-VL has no audio encoder: audio needs a Qwen2.5-Omni checkpoint",
            ));
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
        let embeds = self.text.embed(inputs.ids_tensor(device)?);
        let v = embed_visuals(self.visual.as_ref(), inputs, spec, device)?;
        let embeds = scatter_media(
            embeds,
            &inputs.input_ids,
            vec![
                (self.config.image_token_id, "image", v.image),
                (self.config.video_token_id, "video", v.video),
            ],
        )?;
        let out = self.text.forward(
            embeds,
            &position_ids,
            inputs.attention_mask.as_deref(),
            spec,
        );
        Ok(ModelOutput {
            last_hidden_state: out.last_hidden_state,
            captures: out.captures,
            image_captures: v.image_captures,
            video_captures: v.video_captures,
            audio_captures: Vec::new(),
            position_ids,
        })
    }
}
