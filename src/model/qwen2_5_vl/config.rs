//! Qwen2.5-VL configuration from a checkpoint's `config.json`.
//!
//! Two layouts exist in the wild and both are read:
//!
//! * the **flat** layout of hub checkpoints (`Qwen/Qwen2.5-VL-3B-Instruct`):
//!   text fields at the top level, `vision_config` nested,
//!   `rope_scaling = {"type": "mrope", "mrope_section": [...]}`, `rope_theta` at the top;
//! * the **nested** layout written by transformers 5: `text_config` and
//!   `vision_config` sub-objects, rope settings in
//!   `text_config.rope_parameters = {"rope_type", "rope_theta", "mrope_section"}`.
//!
//! Unknown fields are ignored; missing fields take the defaults of the
//! transformers classes `Qwen2_5_VLTextConfig` / `Qwen2_5_VLVisionConfig`
//! (transformers 4.57, `configuration_qwen2_5_vl.py`), except
//! `mrope_section`, without which the reference cannot run either.

use std::path::Path;

use serde_json::Value;

use crate::error::{GeomError, Result};
use crate::model::config::{
    parse_text, parse_vision, read_json, u, validate_text, validate_vision, TextConfig,
    TextDefaults, VisionConfig,
};

/// Everything geom reads from a Qwen2.5-VL `config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Qwen2_5VlConfig {
    /// Language decoder.
    pub text: TextConfig,
    /// Vision tower.
    pub vision: VisionConfig,
    /// Placeholder token of image patches.
    pub image_token_id: u32,
    /// Placeholder token of video patches.
    pub video_token_id: u32,
    /// `<|vision_start|>`.
    pub vision_start_token_id: u32,
    /// `<|vision_end|>`.
    pub vision_end_token_id: u32,
}

/// `Qwen2_5_VLTextConfig`'s defaults (transformers 4.57).
fn text_defaults() -> TextDefaults {
    TextDefaults {
        vocab_size: 152_064,
        hidden_size: 8192,
        intermediate_size: 29_568,
        num_hidden_layers: 80,
        num_attention_heads: 64,
        num_key_value_heads: 8,
        rms_norm_eps: 1e-5,
        mrope_section: None,
    }
}

impl Qwen2_5VlConfig {
    /// Reads `config.json` from a checkpoint folder (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self> {
        let (file, v) = read_json(path)?;
        Self::from_json(&v).map_err(|e| GeomError::invalid(format!("{}: {e}", file.display())))
    }

    /// Parses either layout (see the module docs).
    pub fn from_json(root: &Value) -> Result<Self> {
        if !root.is_object() {
            return Err(GeomError::invalid("config.json must hold a JSON object"));
        }
        let t = root
            .get("text_config")
            .filter(|v| v.is_object())
            .unwrap_or(root);
        let text = parse_text(t, root, &text_defaults())?;
        let empty = Value::Object(Default::default());
        let vz = root
            .get("vision_config")
            .filter(|v| v.is_object())
            .unwrap_or(&empty);
        let vision = parse_vision(vz, 4.0)?;
        let id = |k: &str, d: u32| -> Result<u32> { Ok(u(root, k)?.map_or(d, |x| x as u32)) };
        let cfg = Self {
            image_token_id: id("image_token_id", 151_655)?,
            video_token_id: id("video_token_id", 151_656)?,
            vision_start_token_id: id("vision_start_token_id", 151_652)?,
            vision_end_token_id: id("vision_end_token_id", 151_653)?,
            text,
            vision,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations the architecture relies on.
    pub fn validate(&self) -> Result<()> {
        validate_text(&self.text)?;
        validate_vision(&self.vision, &self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The 3B hub config (abridged to the fields that matter).
    fn flat_3b() -> Value {
        json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"],
            "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
            "num_attention_heads": 16, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "tie_word_embeddings": true, "vocab_size": 151936,
            "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
                "tokens_per_second": 2, "hidden_act": "silu"}
        })
    }

    #[test]
    fn flat_hub_layout() {
        let c = Qwen2_5VlConfig::from_json(&flat_3b()).unwrap();
        assert_eq!(c.text.hidden_size, 2048);
        assert_eq!(c.text.head_dim(), 128);
        assert_eq!(c.text.mrope_section, vec![16, 24, 24]);
        assert!(c.text.tie_word_embeddings);
        assert_eq!(c.vision.tokens_per_second, 2.0);
        assert_eq!(c.vision.fullatt_block_indexes, vec![7, 15, 23, 31]);
        assert_eq!(
            c.vision_end_token_id, 151_653,
            "missing fields take the class default"
        );
    }

    #[test]
    fn nested_transformers5_layout_is_equivalent() {
        let flat = flat_3b();
        let mut text = flat.as_object().unwrap().clone();
        let vision = text.remove("vision_config").unwrap();
        text.remove("rope_scaling");
        let theta = text.remove("rope_theta").unwrap();
        text.insert(
            "rope_parameters".into(),
            json!({"rope_type": "default", "rope_theta": theta, "mrope_section": [16, 24, 24]}),
        );
        let nested = json!({"text_config": text, "vision_config": vision, "image_token_id": 151655,
            "video_token_id": 151656, "vision_start_token_id": 151652, "unknown_field": {"ignored": true}});
        assert_eq!(
            Qwen2_5VlConfig::from_json(&nested).unwrap(),
            Qwen2_5VlConfig::from_json(&flat).unwrap()
        );
    }

    #[test]
    fn bad_configs_are_named() {
        let mut v = flat_3b();
        v["rope_scaling"] = json!({"type": "mrope", "mrope_section": [16, 24, 23]});
        let e = Qwen2_5VlConfig::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("[16, 24, 23]") && e.contains("64"), "{e}");
        v.as_object_mut().unwrap().remove("rope_scaling");
        assert!(Qwen2_5VlConfig::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("mrope_section"));
        let mut w = flat_3b();
        w["num_key_value_heads"] = json!(3);
        assert!(Qwen2_5VlConfig::from_json(&w).is_err());
    }
}
