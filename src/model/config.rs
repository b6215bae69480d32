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

/// The language decoder (Qwen2).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextConfig {
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Split of the rotary half-dimension into (temporal, height, width) sections.
    pub mrope_section: Vec<usize>,
    /// Whether `lm_head` shares `embed_tokens`' weights.
    pub tie_word_embeddings: bool,
    /// Activation of the MLP (Qwen2.5-VL: `silu`).
    pub hidden_act: String,
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The vision tower (Qwen2.5-VL ViT with window attention).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VisionConfig {
    /// Number of vision blocks.
    pub depth: usize,
    /// Width of the vision blocks.
    pub hidden_size: usize,
    /// Width of the gated MLP of each block.
    pub intermediate_size: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// Input channels (3).
    pub in_channels: usize,
    /// Spatial patch size (14).
    pub patch_size: usize,
    /// Merge factor of the patch merger (2 → 2×2 patches per token).
    pub spatial_merge_size: usize,
    /// Frames per temporal patch (2).
    pub temporal_patch_size: usize,
    /// Temporal positions per second of video (M-RoPE).
    pub tokens_per_second: f64,
    /// Window size of window attention, in pixels (112).
    pub window_size: usize,
    /// Output width of the merger (= the decoder's hidden size).
    pub out_hidden_size: usize,
    /// Blocks that use full attention instead of window attention.
    pub fullatt_block_indexes: Vec<usize>,
    /// Activation of the blocks' MLP.
    pub hidden_act: String,
}

/// Everything geom reads from `config.json`.
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

impl Qwen2_5VlConfig {
    /// Reads `config.json` from a checkpoint folder (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| GeomError::Io {
            path: file.clone(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| GeomError::invalid(format!("{}: not valid JSON: {e}", file.display())))?;
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
        // Rope settings: transformers 5 `rope_parameters`, else `rope_scaling`, at either level.
        let rope = [
            t.get("rope_parameters"),
            t.get("rope_scaling"),
            root.get("rope_parameters"),
            root.get("rope_scaling"),
        ]
        .into_iter()
        .flatten()
        .find(|v| v.is_object());
        let mrope_section = rope
            .and_then(|r| r.get("mrope_section"))
            .and_then(|m| m.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|u| u as usize)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| GeomError::invalid("no mrope_section (expected rope_scaling.mrope_section or rope_parameters.mrope_section)"))?;
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .and_then(Value::as_f64)
            .or_else(|| f(t, "rope_theta"))
            .or_else(|| f(root, "rope_theta"))
            .unwrap_or(1_000_000.0);
        let text = TextConfig {
            vocab_size: u(t, "vocab_size")
                .or_else(|| u(root, "vocab_size"))
                .unwrap_or(152_064),
            hidden_size: u(t, "hidden_size").unwrap_or(8192),
            intermediate_size: u(t, "intermediate_size").unwrap_or(29_568),
            num_hidden_layers: u(t, "num_hidden_layers").unwrap_or(80),
            num_attention_heads: u(t, "num_attention_heads").unwrap_or(64),
            num_key_value_heads: u(t, "num_key_value_heads").unwrap_or(8),
            rms_norm_eps: f(t, "rms_norm_eps").unwrap_or(1e-5),
            rope_theta,
            mrope_section,
            tie_word_embeddings: b(t, "tie_word_embeddings")
                .or_else(|| b(root, "tie_word_embeddings"))
                .unwrap_or(false),
            hidden_act: s(t, "hidden_act").unwrap_or_else(|| "silu".into()),
        };
        let vz = root
            .get("vision_config")
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let vision = VisionConfig {
            depth: u(&vz, "depth").unwrap_or(32),
            hidden_size: u(&vz, "hidden_size").unwrap_or(3584),
            intermediate_size: u(&vz, "intermediate_size").unwrap_or(3420),
            num_heads: u(&vz, "num_heads").unwrap_or(16),
            in_channels: u(&vz, "in_channels")
                .or_else(|| u(&vz, "in_chans"))
                .unwrap_or(3),
            patch_size: u(&vz, "patch_size")
                .or_else(|| u(&vz, "spatial_patch_size"))
                .unwrap_or(14),
            spatial_merge_size: u(&vz, "spatial_merge_size").unwrap_or(2),
            temporal_patch_size: u(&vz, "temporal_patch_size").unwrap_or(2),
            tokens_per_second: f(&vz, "tokens_per_second").unwrap_or(4.0),
            window_size: u(&vz, "window_size").unwrap_or(112),
            out_hidden_size: u(&vz, "out_hidden_size").unwrap_or(3584),
            fullatt_block_indexes: vz
                .get("fullatt_block_indexes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().map(|v| v as usize))
                        .collect()
                })
                .unwrap_or_else(|| vec![7, 15, 23, 31]),
            hidden_act: s(&vz, "hidden_act").unwrap_or_else(|| "silu".into()),
        };
        let cfg = Self {
            image_token_id: u(root, "image_token_id").unwrap_or(151_655) as u32,
            video_token_id: u(root, "video_token_id").unwrap_or(151_656) as u32,
            vision_start_token_id: u(root, "vision_start_token_id").unwrap_or(151_652) as u32,
            vision_end_token_id: u(root, "vision_end_token_id").unwrap_or(151_653) as u32,
            text,
            vision,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations the architecture relies on.
    pub fn validate(&self) -> Result<()> {
        let t = &self.text;
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(GeomError::invalid(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            )));
        }
        if t.num_key_value_heads == 0
            || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads)
        {
            return Err(GeomError::invalid(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            )));
        }
        let half = t.head_dim() / 2;
        if t.mrope_section.len() != 3 || t.mrope_section.iter().sum::<usize>() != half {
            return Err(GeomError::invalid(format!(
                "mrope_section {:?} must have 3 entries summing to head_dim / 2 = {half}",
                t.mrope_section
            )));
        }
        if t.hidden_act != "silu" {
            return Err(GeomError::invalid(format!(
                "hidden_act '{}' is not supported (expected silu)",
                t.hidden_act
            )));
        }
        let v = &self.vision;
        if v.num_heads == 0 || !v.hidden_size.is_multiple_of(v.num_heads) {
            return Err(GeomError::invalid(format!(
                "vision hidden_size {} is not divisible by num_heads {}",
                v.hidden_size, v.num_heads
            )));
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(GeomError::invalid(format!(
                "vision out_hidden_size {} differs from the decoder's hidden_size {}",
                v.out_hidden_size, t.hidden_size
            )));
        }
        Ok(())
    }
}

fn u(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|x| x as usize)
}
fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}
fn b(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(Value::as_bool)
}
fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
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
