//! Qwen2.5-Omni's thinker: the audio encoder, the vision tower and the
//! language decoder, with audio, image and video embeddings scattered into
//! their placeholder tokens and TMRoPE positions
//! (`Qwen2_5OmniThinkerForConditionalGeneration.forward` of transformers
//! 4.57). The talker and token2wav (speech output) are never built: their
//! tensors stay on disk, counted ([`Qwen2_5Omni::skipped_tensors`]).
//!
//! * [`config`] — `config.json` in the hub layout (`thinker_config` beside
//!   `talker_config`) and the thinker's own;
//! * [`audio`] — the Whisper-style audio encoder;
//! * [`rope`] — TMRoPE position ids (`get_rope_index`).
//!
//! The vision tower and the decoder are [`crate::model::layers`]' — the
//! same code as Qwen2.5-VL's, which the tower reads with separate
//! `attn.q/k/v` here.

pub mod audio;
pub mod config;
pub mod rope;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::checkpoint::load::{Checkpoint, WeightMap};
use crate::error::{GeomError, Result};
use crate::model::batch::{embed_visuals, scatter_media, ModelInputs, ModelOutput};
use crate::model::capture::{CaptureSpec, HookPoint};
use crate::model::layers::decoder::TextModel;
use crate::model::layers::vision::VisionModel;
use audio::AudioEncoder;
use config::Qwen2_5OmniConfig;
use rope::{rope_index, MediaGrids};

/// Prefixes of the hub checkpoint's tensors that are not the thinker's.
pub const NOT_THINKER: [&str; 2] = ["talker.", "token2wav."];

/// Qwen2.5-Omni's thinker: audio encoder, vision tower, language decoder.
#[derive(Debug)]
pub struct Qwen2_5Omni<B: Backend> {
    /// The audio encoder (`audio_tower.*`); `None` when loaded text-only.
    pub audio: Option<AudioEncoder<B>>,
    /// The vision tower (`visual.*`); `None` when loaded text-only.
    pub visual: Option<VisionModel<B>>,
    /// The language decoder (`model.*`).
    pub text: TextModel<B>,
    config: Qwen2_5OmniConfig,
    skipped: usize,
}

impl<B: Backend> Qwen2_5Omni<B> {
    /// Loads a checkpoint folder in either layout (see [`config`]): every
    /// thinker tensor must be present with its configured shape; the
    /// talker's and token2wav's are skipped on purpose.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with(dir, device, true)
    }

    /// Loads the language decoder only, leaving the audio encoder and the
    /// vision tower on disk (text-only work such as contrastive training);
    /// audio, images and videos are then refused with an error.
    pub fn load_text_only(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with(dir, device, false)
    }

    fn load_with(dir: &Path, device: &B::Device, media: bool) -> Result<Self> {
        let config = Qwen2_5OmniConfig::from_path(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let mut w = WeightMap::new(&ckpt);
        for p in NOT_THINKER {
            w.skip_prefix(p);
        }
        let skipped = w.skipped_count();
        let (audio, visual) = if media {
            (
                Some(AudioEncoder::load(&mut w, &config.audio, device)),
                Some(VisionModel::load(&mut w, &config.vision, device)),
            )
        } else {
            w.skip_prefix("audio_tower.");
            w.skip_prefix("visual.");
            (None, None)
        };
        let text = TextModel::load(&mut w, &config.text, device);
        w.finish()?;
        Ok(Self {
            audio,
            visual,
            text,
            config,
            skipped,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Qwen2_5OmniConfig {
        &self.config
    }

    /// Number of hidden states `output_hidden_states` gives (layers + 1).
    pub fn n_hidden_states(&self) -> usize {
        self.config.text.num_hidden_layers + 1
    }

    /// How many tensors of the folder belong to the talker and token2wav
    /// (left on disk on purpose; 0 for a thinker saved alone).
    pub fn skipped_tensors(&self) -> usize {
        self.skipped
    }

    /// Runs the thinker on a batch. With `spec` =
    /// [`CaptureSpec::hidden_states`] the captures are transformers'
    /// `output_hidden_states`; `audio.layers.N` hook points capture the
    /// audio encoder.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        spec: &CaptureSpec,
        device: &B::Device,
    ) -> Result<ModelOutput<B>> {
        inputs.dims()?;
        inputs.check_vocab(self.config.text.vocab_size)?;
        let media = MediaGrids {
            image: inputs.image_grids.clone(),
            video: inputs.video_grids.clone(),
            video_second_per_grid: inputs.second_per_grid_ts.clone(),
            audio_frames: inputs.audio_frames.clone(),
            use_audio_in_video: inputs.use_audio_in_video,
        };
        let (position_ids, _) = rope_index(
            &self.config,
            &inputs.input_ids,
            inputs.attention_mask.as_deref(),
            &media,
        )?;
        let embeds = self.text.embed(inputs.ids_tensor(device)?);
        let mut audio_captures = Vec::new();
        let audio = if inputs.audio_frames.is_empty() {
            if !inputs.input_features.is_empty() {
                return Err(GeomError::invalid(
                    "audio features given without their frame counts",
                ));
            }
            None
        } else {
            let enc = self.audio.as_ref().ok_or_else(|| {
                GeomError::invalid(
                    "audio: this model was loaded without its audio encoder (text only); load it whole",
                )
            })?;
            let out = enc.forward(
                &inputs.input_features,
                &inputs.audio_frames,
                &spec.audio_layers(),
                device,
            )?;
            audio_captures.extend(
                out.layers
                    .into_iter()
                    .map(|(i, t)| (HookPoint::AudioLayer(i), t)),
            );
            Some(out.embeds)
        };
        let v = embed_visuals(self.visual.as_ref(), inputs, spec, device)?;
        let c = &self.config;
        let embeds = scatter_media(
            embeds,
            &inputs.input_ids,
            vec![
                (c.audio_token_id, "audio", audio),
                (c.image_token_id, "image", v.image),
                (c.video_token_id, "video", v.video),
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
            audio_captures,
            position_ids,
        })
    }
}
