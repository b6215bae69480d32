//! One model type for every architecture geom implements, chosen from the
//! checkpoint's `config.json` ([`Architecture`]) — as transformers'
//! `AutoModel`. Everything that takes "a checkpoint folder" (`geom
//! extract`, `geom embed`, `--model`, [`crate::model::Embedder`],
//! `geom train-cl`) goes through it.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::batch::{ModelInputs, ModelOutput};
use super::capture::CaptureSpec;
use super::config::{Architecture, TextConfig, VisionConfig};
use super::layers::decoder::TextModel;
use super::qwen2_5_omni::Qwen2_5Omni;
use super::qwen2_5_vl::Qwen2_5Vl;
use crate::error::Result;

/// A loaded model of either architecture.
// One model per process, its weights on the heap: the size of the enum is
// of no consequence.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AutoModel<B: Backend> {
    /// Qwen2.5-VL.
    Qwen2_5Vl(Qwen2_5Vl<B>),
    /// Qwen2.5-Omni's thinker.
    Qwen2_5Omni(Qwen2_5Omni<B>),
}

impl<B: Backend> AutoModel<B> {
    /// Loads a checkpoint folder of any supported architecture; an
    /// unsupported one is an error naming its `model_type`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(match Architecture::of_dir(dir)? {
            Architecture::Qwen2_5Vl => Self::Qwen2_5Vl(Qwen2_5Vl::load(dir, device)?),
            Architecture::Qwen2_5Omni => Self::Qwen2_5Omni(Qwen2_5Omni::load(dir, device)?),
        })
    }

    /// Loads the language decoder only (media encoders left on disk).
    pub fn load_text_only(dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(match Architecture::of_dir(dir)? {
            Architecture::Qwen2_5Vl => Self::Qwen2_5Vl(Qwen2_5Vl::load_text_only(dir, device)?),
            Architecture::Qwen2_5Omni => {
                Self::Qwen2_5Omni(Qwen2_5Omni::load_text_only(dir, device)?)
            }
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        match self {
            Self::Qwen2_5Vl(_) => Architecture::Qwen2_5Vl,
            Self::Qwen2_5Omni(_) => Architecture::Qwen2_5Omni,
        }
    }

    /// The decoder's configuration.
    pub fn text_config(&self) -> &TextConfig {
        match self {
            Self::Qwen2_5Vl(m) => &m.config().text,
            Self::Qwen2_5Omni(m) => &m.config().text,
        }
    }

    /// The vision tower's configuration.
    pub fn vision_config(&self) -> &VisionConfig {
        match self {
            Self::Qwen2_5Vl(m) => &m.config().vision,
            Self::Qwen2_5Omni(m) => &m.config().vision,
        }
    }

    /// Number of hidden states `output_hidden_states` gives (layers + 1).
    pub fn n_hidden_states(&self) -> usize {
        self.text_config().num_hidden_layers + 1
    }

    /// The language decoder.
    pub fn text(&self) -> &TextModel<B> {
        match self {
            Self::Qwen2_5Vl(m) => &m.text,
            Self::Qwen2_5Omni(m) => &m.text,
        }
    }

    /// The language decoder, to attach adapters ([`super::layers::lora`]).
    pub fn text_mut(&mut self) -> &mut TextModel<B> {
        match self {
            Self::Qwen2_5Vl(m) => &mut m.text,
            Self::Qwen2_5Omni(m) => &mut m.text,
        }
    }

    /// Runs the model on a prepared batch (see each architecture's `forward`).
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        spec: &CaptureSpec,
        device: &B::Device,
    ) -> Result<ModelOutput<B>> {
        match self {
            Self::Qwen2_5Vl(m) => m.forward(inputs, spec, device),
            Self::Qwen2_5Omni(m) => m.forward(inputs, spec, device),
        }
    }
}
