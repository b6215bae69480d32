//! Qwen2.5-Omni configuration: the **thinker**'s (geom reads hidden states;
//! the talker and token2wav speak and are never built).
//!
//! Two layouts exist in the wild and both are read:
//!
//! * the **hub** layout of `Qwen/Qwen2.5-Omni-3B` / `-7B` and of
//!   LCO-Embedding-Omni: `model_type: "qwen2_5_omni"`, the thinker's
//!   settings under `thinker_config` (`text_config`, `vision_config`,
//!   `audio_config`, the Omni token ids, `position_id_per_seconds`,
//!   `seconds_per_chunk`) beside `talker_config` and `token2wav_config`;
//! * the **thinker alone**, as `Qwen2_5OmniThinkerForConditionalGeneration`
//!   saves itself (transformers 4.57 and 5): the thinker config at the top
//!   (`model_type: "qwen2_5_omni_thinker"`).
//!
//! Missing fields take the defaults of transformers 4.57's
//! `Qwen2_5OmniThinkerConfig`, `Qwen2_5OmniTextConfig` (note: unlike
//! Qwen2.5-VL, a missing `rope_scaling` means `mrope_section` [16, 24, 24]),
//! `Qwen2_5OmniVisionEncoderConfig` and `Qwen2_5OmniAudioEncoderConfig`
//! (`configuration_qwen2_5_omni.py`). Token ids are read under either name
//! transformers uses (`audio_token_index` in 4.57's files, `audio_token_id`
//! elsewhere).

use std::path::Path;

use serde_json::Value;

use crate::error::{GeomError, Result};
use crate::model::config::{
    f, parse_text, parse_vision, read_json, s, u, validate_text, validate_vision, wrong,
    TextConfig, TextDefaults, VisionConfig,
};

/// The audio encoder (`Qwen2_5OmniAudioEncoder`, Whisper-style).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioConfig {
    /// Mel bins of the input features (128).
    pub num_mel_bins: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Attention heads per layer.
    pub encoder_attention_heads: usize,
    /// Width of each layer's MLP.
    pub encoder_ffn_dim: usize,
    /// Width of the encoder.
    pub d_model: usize,
    /// MLP activation (`gelu`: exact, erf-based).
    pub activation_function: String,
    /// Length of the sinusoidal position table (positions restart in every chunk).
    pub max_source_positions: usize,
    /// Half a chunk, in mel frames: the encoder attends within chunks of
    /// `2·n_window` frames (100 → 2 s).
    pub n_window: usize,
    /// Output width (= the decoder's hidden size).
    pub output_dim: usize,
}

/// Everything geom reads from a Qwen2.5-Omni `config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Qwen2_5OmniConfig {
    /// Language decoder (`thinker.model`).
    pub text: TextConfig,
    /// Vision tower (`thinker.visual`).
    pub vision: VisionConfig,
    /// Audio encoder (`thinker.audio_tower`).
    pub audio: AudioConfig,
    /// `<|AUDIO|>`, one per audio token.
    pub audio_token_id: u32,
    /// `<|IMAGE|>`, one per merged image patch.
    pub image_token_id: u32,
    /// `<|VIDEO|>`, one per merged video patch.
    pub video_token_id: u32,
    /// `<|audio_bos|>`.
    pub audio_start_token_id: u32,
    /// `<|audio_eos|>`.
    pub audio_end_token_id: u32,
    /// `<|vision_bos|>`.
    pub vision_start_token_id: u32,
    /// `<|vision_eos|>`.
    pub vision_end_token_id: u32,
    /// TMRoPE: temporal positions per second of media (25).
    pub position_id_per_seconds: f64,
    /// TMRoPE: seconds per chunk when audio and video interleave (2).
    pub seconds_per_chunk: f64,
    /// Whether the file is the hub layout (keys prefixed `thinker.`, talker
    /// and token2wav beside).
    pub hub_layout: bool,
}

/// `Qwen2_5OmniTextConfig`'s defaults (transformers 4.57).
fn text_defaults() -> TextDefaults {
    TextDefaults {
        vocab_size: 152_064,
        hidden_size: 3584,
        intermediate_size: 18_944,
        num_hidden_layers: 28,
        num_attention_heads: 28,
        num_key_value_heads: 4,
        rms_norm_eps: 1e-6,
        mrope_section: Some(vec![16, 24, 24]),
    }
}

impl Qwen2_5OmniConfig {
    /// Reads `config.json` from a checkpoint folder (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self> {
        let (file, v) = read_json(path)?;
        Self::from_json(&v).map_err(|e| GeomError::invalid(format!("{}: {e}", file.display())))
    }

    /// Parses either layout (see the module docs).
    pub fn from_json(root: &Value) -> Result<Self> {
        let hub_layout = root.get("thinker_config").is_some();
        let th = match root.get("thinker_config") {
            Some(v) if v.is_object() => v,
            Some(v) => return Err(wrong("thinker_config", v, "an object")),
            None => root,
        };
        let empty = Value::Object(Default::default());
        let sub = |k: &str| -> Result<&Value> {
            match th.get(k) {
                None | Some(Value::Null) => Ok(&empty),
                Some(v) if v.is_object() => Ok(v),
                Some(v) => Err(wrong(k, v, "an object")),
            }
        };
        let text = parse_text(sub("text_config")?, th, &text_defaults())?;
        let position_id_per_seconds = f(th, "position_id_per_seconds")?.unwrap_or(25.0);
        let vision = parse_vision(sub("vision_config")?, position_id_per_seconds)?;
        let a = sub("audio_config")?;
        let audio = AudioConfig {
            num_mel_bins: u(a, "num_mel_bins")?.unwrap_or(128),
            encoder_layers: u(a, "encoder_layers")?.unwrap_or(32),
            encoder_attention_heads: u(a, "encoder_attention_heads")?.unwrap_or(20),
            encoder_ffn_dim: u(a, "encoder_ffn_dim")?.unwrap_or(5120),
            d_model: u(a, "d_model")?.unwrap_or(1280),
            activation_function: s(a, "activation_function")?.unwrap_or_else(|| "gelu".into()),
            max_source_positions: u(a, "max_source_positions")?.unwrap_or(1500),
            n_window: u(a, "n_window")?.unwrap_or(100),
            output_dim: u(a, "output_dim")?.unwrap_or(3584),
        };
        // 4.57 writes `*_token_index` (its attribute_map aliases `*_token_id`).
        let id = |names: &[&str], d: u32| -> Result<u32> {
            for k in names {
                if let Some(x) = u(th, k)? {
                    return Ok(x as u32);
                }
            }
            Ok(d)
        };
        let cfg = Self {
            audio_token_id: id(&["audio_token_index", "audio_token_id"], 151_646)?,
            image_token_id: id(&["image_token_index", "image_token_id"], 151_655)?,
            video_token_id: id(&["video_token_index", "video_token_id"], 151_656)?,
            audio_start_token_id: id(&["audio_start_token_id"], 151_647)?,
            audio_end_token_id: id(&["audio_end_token_id"], 151_648)?,
            vision_start_token_id: id(&["vision_start_token_id"], 151_652)?,
            vision_end_token_id: id(&["vision_end_token_id"], 151_653)?,
            position_id_per_seconds,
            seconds_per_chunk: f(th, "seconds_per_chunk")?.unwrap_or(2.0),
            text,
            vision,
            audio,
            hub_layout,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations the architecture relies on.
    pub fn validate(&self) -> Result<()> {
        validate_text(&self.text)?;
        validate_vision(&self.vision, &self.text)?;
        let a = &self.audio;
        if a.encoder_attention_heads == 0 || !a.d_model.is_multiple_of(a.encoder_attention_heads) {
            return Err(GeomError::invalid(format!(
                "audio d_model {} is not divisible by encoder_attention_heads {}",
                a.d_model, a.encoder_attention_heads
            )));
        }
        if !a.d_model.is_multiple_of(2) || a.d_model < 4 {
            return Err(GeomError::invalid(format!(
                "audio d_model {} must be even (sinusoidal positions)",
                a.d_model
            )));
        }
        if a.n_window == 0 {
            return Err(GeomError::invalid("audio n_window must be positive"));
        }
        if a.output_dim != self.text.hidden_size {
            return Err(GeomError::invalid(format!(
                "audio output_dim {} differs from the decoder's hidden_size {}",
                a.output_dim, self.text.hidden_size
            )));
        }
        if a.activation_function != "gelu" {
            return Err(GeomError::invalid(format!(
                "audio activation_function '{}' is not supported (expected gelu)",
                a.activation_function
            )));
        }
        if self.position_id_per_seconds <= 0.0 || self.seconds_per_chunk <= 0.0 {
            return Err(GeomError::invalid(format!(
                "position_id_per_seconds {} and seconds_per_chunk {} must be positive",
                self.position_id_per_seconds, self.seconds_per_chunk
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The 3B hub config, abridged to the fields that matter.
    fn hub_3b() -> Value {
        json!({
            "architectures": ["Qwen2_5OmniModel"], "model_type": "qwen2_5_omni",
            "enable_audio_output": true,
            "thinker_config": {
                "model_type": "qwen2_5_omni_thinker",
                "audio_token_index": 151646, "image_token_index": 151655, "video_token_index": 151656,
                "audio_start_token_id": 151647, "audio_end_token_id": 151648,
                "vision_start_token_id": 151652, "vision_end_token_id": 151653,
                "position_id_per_seconds": 25, "seconds_per_chunk": 2,
                "audio_config": {"d_model": 1280, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                    "encoder_layers": 32, "num_mel_bins": 128, "n_window": 100, "output_dim": 2048,
                    "max_source_positions": 1500},
                "text_config": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                    "num_attention_heads": 16, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                    "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
                    "rope_theta": 1000000.0, "vocab_size": 151936, "tie_word_embeddings": false},
                "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 5120,
                    "num_heads": 16, "out_hidden_size": 2048, "fullatt_block_indexes": [7, 15, 23, 31]}
            },
            "talker_config": {"model_type": "qwen2_5_omni_talker"},
            "token2wav_config": {}
        })
    }

    #[test]
    fn hub_layout() {
        let c = Qwen2_5OmniConfig::from_json(&hub_3b()).unwrap();
        assert!(c.hub_layout);
        assert_eq!(c.text.hidden_size, 2048);
        assert_eq!(c.text.num_hidden_layers, 36);
        assert_eq!(c.audio.output_dim, 2048);
        assert_eq!(c.audio_token_id, 151_646);
        assert_eq!(c.position_id_per_seconds, 25.0);
        assert_eq!(c.vision.hidden_size, 1280);
    }

    #[test]
    fn thinker_alone_is_the_same_model() {
        let th = hub_3b()["thinker_config"].clone();
        let mut a = Qwen2_5OmniConfig::from_json(&hub_3b()).unwrap();
        let b = Qwen2_5OmniConfig::from_json(&th).unwrap();
        assert!(!b.hub_layout);
        a.hub_layout = false;
        assert_eq!(a, b);
    }

    #[test]
    fn missing_rope_scaling_takes_the_omni_default() {
        let mut v = hub_3b();
        v["thinker_config"]["text_config"]
            .as_object_mut()
            .unwrap()
            .remove("rope_scaling");
        let c = Qwen2_5OmniConfig::from_json(&v).unwrap();
        assert_eq!(c.text.mrope_section, vec![16, 24, 24]);
    }

    #[test]
    fn wrong_types_and_bad_sizes_are_named() {
        let mut v = hub_3b();
        v["thinker_config"]["audio_config"]["n_window"] = json!("long");
        let e = Qwen2_5OmniConfig::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("n_window") && e.contains("\"long\""), "{e}");
        let mut v = hub_3b();
        v["thinker_config"]["audio_config"]["output_dim"] = json!(3584);
        let e = Qwen2_5OmniConfig::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("output_dim"), "{e}");
    }
}
