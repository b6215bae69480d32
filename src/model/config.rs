//! The configuration pieces both architectures share — the Qwen2 language
//! decoder ([`TextConfig`]) and the Qwen2.5 vision tower ([`VisionConfig`])
//! — their parsing from `config.json` objects, and the choice of
//! architecture from a checkpoint folder ([`Architecture`]).
//!
//! Unknown fields are ignored; missing fields take the defaults of the
//! transformers class the architecture's config module names; a field
//! present with the wrong JSON type is an error naming it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{GeomError, Result};

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

/// The model families geom implements, chosen from `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Qwen2.5-VL (`model_type` `qwen2_5_vl`).
    Qwen2_5Vl,
    /// Qwen2.5-Omni: the whole model (`qwen2_5_omni`, the hub layout, whose
    /// thinker geom runs) or the thinker saved alone (`qwen2_5_omni_thinker`).
    Qwen2_5Omni,
}

/// The `model_type`s geom reads, for error messages.
pub const SUPPORTED_MODEL_TYPES: &str = "qwen2_5_vl, qwen2_5_omni, qwen2_5_omni_thinker";

impl Architecture {
    /// The architecture of a parsed `config.json`: its `model_type`, else
    /// its `architectures` list.
    pub fn of_json(root: &Value) -> Result<Self> {
        let model_type = root.get("model_type").and_then(Value::as_str);
        let arch = root
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        match (model_type, arch) {
            (Some("qwen2_5_vl"), _) | (None, Some("Qwen2_5_VLForConditionalGeneration")) => {
                Ok(Self::Qwen2_5Vl)
            }
            (Some("qwen2_5_omni" | "qwen2_5_omni_thinker"), _)
            | (
                None,
                Some(
                    "Qwen2_5OmniModel"
                    | "Qwen2_5OmniForConditionalGeneration"
                    | "Qwen2_5OmniThinkerForConditionalGeneration",
                ),
            ) => Ok(Self::Qwen2_5Omni),
            // Old Qwen2.5-VL configs carry neither field but have the VL layout.
            (None, None) if root.get("vision_config").is_some() => Ok(Self::Qwen2_5Vl),
            (m, a) => Err(GeomError::invalid(format!(
                "unsupported architecture: model_type {} (architectures {}); geom reads {SUPPORTED_MODEL_TYPES}",
                m.map_or("absent".to_string(), |m| format!("'{m}'")),
                a.map_or("absent".to_string(), |a| format!("['{a}']")),
            ))),
        }
    }

    /// The architecture of a checkpoint folder (or its `config.json`).
    pub fn of_dir(path: &Path) -> Result<Self> {
        let (file, v) = read_json(path)?;
        Self::of_json(&v).map_err(|e| GeomError::invalid(format!("{}: {e}", file.display())))
    }
}

/// Reads `config.json` of a folder (or the file itself) as JSON.
pub fn read_json(path: &Path) -> Result<(PathBuf, Value)> {
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
    if !v.is_object() {
        return Err(GeomError::invalid(format!(
            "{}: config.json must hold a JSON object",
            file.display()
        )));
    }
    Ok((file, v))
}

/// Class defaults of a decoder config where a checkpoint leaves fields out.
#[derive(Debug, Clone)]
pub(crate) struct TextDefaults {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub rms_norm_eps: f64,
    /// `None`: `mrope_section` is required.
    pub mrope_section: Option<Vec<usize>>,
}

/// Parses a decoder config: fields of `t` first, then of `root` where the
/// flat layout keeps them (`vocab_size`, rope settings, tying).
pub(crate) fn parse_text(t: &Value, root: &Value, d: &TextDefaults) -> Result<TextConfig> {
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
    let mrope_section = match rope.and_then(|r| r.get("mrope_section")) {
        Some(m) => m
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().map(|u| u as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                GeomError::invalid(format!(
                    "mrope_section is {m}, expected a list of three non-negative integers"
                ))
            })?,
        None => d.mrope_section.clone().ok_or_else(|| {
            GeomError::invalid(
                "no mrope_section (expected rope_scaling.mrope_section or rope_parameters.mrope_section)",
            )
        })?,
    };
    let rope_theta = match rope.and_then(|r| r.get("rope_theta")) {
        Some(v) => Some(v.as_f64().ok_or_else(|| wrong("rope_theta", v, "a number"))?),
        None => f(t, "rope_theta")?.or(f(root, "rope_theta")?),
    }
    .unwrap_or(1_000_000.0);
    Ok(TextConfig {
        vocab_size: u(t, "vocab_size")?
            .or(u(root, "vocab_size")?)
            .unwrap_or(d.vocab_size),
        hidden_size: u(t, "hidden_size")?.unwrap_or(d.hidden_size),
        intermediate_size: u(t, "intermediate_size")?.unwrap_or(d.intermediate_size),
        num_hidden_layers: u(t, "num_hidden_layers")?.unwrap_or(d.num_hidden_layers),
        num_attention_heads: u(t, "num_attention_heads")?.unwrap_or(d.num_attention_heads),
        num_key_value_heads: u(t, "num_key_value_heads")?.unwrap_or(d.num_key_value_heads),
        rms_norm_eps: f(t, "rms_norm_eps")?.unwrap_or(d.rms_norm_eps),
        rope_theta,
        mrope_section,
        tie_word_embeddings: b(t, "tie_word_embeddings")?
            .or(b(root, "tie_word_embeddings")?)
            .unwrap_or(false),
        hidden_act: s(t, "hidden_act")?.unwrap_or_else(|| "silu".into()),
    })
}

/// Parses a vision-tower config (`tokens_per_second` is VL's; Omni passes
/// its `position_id_per_seconds`).
pub(crate) fn parse_vision(vz: &Value, tokens_per_second: f64) -> Result<VisionConfig> {
    Ok(VisionConfig {
        depth: u(vz, "depth")?.unwrap_or(32),
        hidden_size: u(vz, "hidden_size")?.unwrap_or(3584),
        intermediate_size: u(vz, "intermediate_size")?.unwrap_or(3420),
        num_heads: u(vz, "num_heads")?.unwrap_or(16),
        in_channels: u(vz, "in_channels")?.or(u(vz, "in_chans")?).unwrap_or(3),
        patch_size: u(vz, "patch_size")?
            .or(u(vz, "spatial_patch_size")?)
            .unwrap_or(14),
        spatial_merge_size: u(vz, "spatial_merge_size")?.unwrap_or(2),
        temporal_patch_size: u(vz, "temporal_patch_size")?.unwrap_or(2),
        tokens_per_second: f(vz, "tokens_per_second")?.unwrap_or(tokens_per_second),
        window_size: u(vz, "window_size")?.unwrap_or(112),
        out_hidden_size: u(vz, "out_hidden_size")?.unwrap_or(3584),
        fullatt_block_indexes: match vz.get("fullatt_block_indexes") {
            None => vec![7, 15, 23, 31],
            Some(v) => v
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_u64().map(|v| v as usize))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| wrong("fullatt_block_indexes", v, "a list of block indices"))?,
        },
        hidden_act: s(vz, "hidden_act")?.unwrap_or_else(|| "silu".into()),
    })
}

/// Checks the relations the decoder relies on.
pub(crate) fn validate_text(t: &TextConfig) -> Result<()> {
    if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
        return Err(GeomError::invalid(format!(
            "hidden_size {} is not divisible by num_attention_heads {}",
            t.hidden_size, t.num_attention_heads
        )));
    }
    if t.num_key_value_heads == 0 || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
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
    Ok(())
}

/// Checks the relations the vision tower relies on, and its fit to the decoder.
pub(crate) fn validate_vision(v: &VisionConfig, t: &TextConfig) -> Result<()> {
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

/// The error of a field present with the wrong JSON type.
pub(crate) fn wrong(key: &str, v: &Value, expected: &str) -> GeomError {
    GeomError::invalid(format!("field '{key}' is {v}, expected {expected}"))
}

/// An optional non-negative integer field.
pub(crate) fn u(v: &Value, k: &str) -> Result<Option<usize>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|x| Some(x as usize))
            .ok_or_else(|| wrong(k, x, "a non-negative integer")),
    }
}

/// An optional number field.
pub(crate) fn f(v: &Value, k: &str) -> Result<Option<f64>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong(k, x, "a number")),
    }
}

/// An optional boolean field.
pub(crate) fn b(v: &Value, k: &str) -> Result<Option<bool>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong(k, x, "true or false")),
    }
}

/// An optional string field.
pub(crate) fn s(v: &Value, k: &str) -> Result<Option<String>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| wrong(k, x, "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn architecture_from_model_type_or_architectures() {
        let a = |v: Value| Architecture::of_json(&v);
        assert_eq!(a(json!({"model_type": "qwen2_5_vl"})).unwrap(), Architecture::Qwen2_5Vl);
        assert_eq!(a(json!({"model_type": "qwen2_5_omni"})).unwrap(), Architecture::Qwen2_5Omni);
        assert_eq!(
            a(json!({"architectures": ["Qwen2_5OmniThinkerForConditionalGeneration"]})).unwrap(),
            Architecture::Qwen2_5Omni
        );
        let e = a(json!({"model_type": "llama"})).unwrap_err().to_string();
        assert!(e.contains("'llama'") && e.contains("qwen2_5_omni"), "{e}");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let d = TextDefaults {
            vocab_size: 1,
            hidden_size: 8,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 1,
            num_key_value_heads: 1,
            rms_norm_eps: 1e-6,
            mrope_section: Some(vec![1, 1, 2]),
        };
        let e = parse_text(&json!({"hidden_size": "wide"}), &json!({}), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_size") && e.contains("\"wide\""), "{e}");
    }
}
