//! Reading Hugging Face safetensors checkpoints: one `model.safetensors` or
//! shards listed in `model.safetensors.index.json`; bf16 / f16 / f32 on disk,
//! f32 out.
//!
//! Files are memory-mapped and each tensor is converted when it is taken,
//! so loading holds the f32 weights being built plus one tensor — no second
//! full copy.
//!
//! Key layouts: hub checkpoints name the decoder `model.*` and the vision
//! tower `visual.*`; transformers ≥ 4.52 in memory (and some re-saved
//! checkpoints) use `model.language_model.*` and `model.visual.*`. geom's
//! canonical names are the hub ones; [`WeightMap`] maps the other layout
//! onto them. `lm_head.weight` is never needed (geom reads hidden states)
//! and is ignored when present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{GeomError, Result};

/// Keys present in checkpoints that geom deliberately does not use.
pub const UNUSED_KEYS: [&str; 1] = ["lm_head.weight"];

/// A checkpoint's tensors, memory-mapped.
pub struct Checkpoint {
    dir: PathBuf,
    shards: Vec<(PathBuf, Mmap)>,
    /// canonical key → (shard index, key as stored)
    keys: BTreeMap<String, (usize, String)>,
}

impl Checkpoint {
    /// Opens the safetensors of a checkpoint folder.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|source| GeomError::Io {
                path: index.clone(),
                source,
            })?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                GeomError::invalid(format!("{}: not valid JSON: {e}", index.display()))
            })?;
            let map = v["weight_map"].as_object().ok_or_else(|| {
                GeomError::invalid(format!("{}: no \"weight_map\" object", index.display()))
            })?;
            let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else if single.exists() {
            vec![single]
        } else {
            return Err(GeomError::invalid(format!(
                "{}: no model.safetensors or model.safetensors.index.json (geom reads safetensors checkpoints only)",
                dir.display()
            )));
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut keys = BTreeMap::new();
        for (si, path) in files.into_iter().enumerate() {
            let mmap = map_file(&path)?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| {
                GeomError::invalid(format!("{}: not a safetensors file: {e}", path.display()))
            })?;
            for name in st.names() {
                keys.insert(canonical_key(name), (si, name.to_string()));
            }
            drop(st);
            shards.push((path, mmap));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
            keys,
        })
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Canonical names of every tensor.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Shape of a tensor, by canonical name.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        let (si, stored) = self.keys.get(key)?;
        let st = SafeTensors::deserialize(&self.shards[*si].1).ok()?;
        st.tensor(stored).ok().map(|t| t.shape().to_vec())
    }

    /// A content sample of a tensor, for fingerprints: its dtype and
    /// shape, and its raw bytes when it is small (≤ 4 KiB), else 64 evenly
    /// spaced 64-byte windows. Any fine-tuning, merge or soup changes it;
    /// reading it touches a few pages of each tensor only.
    pub fn tensor_sample(&self, key: &str) -> Option<Vec<u8>> {
        let (si, stored) = self.keys.get(key)?;
        let st = SafeTensors::deserialize(&self.shards[*si].1).ok()?;
        let view = st.tensor(stored).ok()?;
        let mut out = format!("{:?}{:?}", view.dtype(), view.shape()).into_bytes();
        let bytes = view.data();
        const WINDOW: usize = 64;
        const WINDOWS: usize = 64;
        if bytes.len() <= WINDOW * WINDOWS {
            out.extend_from_slice(bytes);
        } else {
            let stride = (bytes.len() - WINDOW) / (WINDOWS - 1);
            for i in 0..WINDOWS {
                out.extend_from_slice(&bytes[i * stride..i * stride + WINDOW]);
            }
        }
        Some(out)
    }

    /// A tensor converted to f32, with its shape.
    pub fn tensor_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let (si, stored) = self.keys.get(key).ok_or_else(|| {
            GeomError::invalid(format!("{}: no tensor '{key}'", self.dir.display()))
        })?;
        let (path, mmap) = &self.shards[*si];
        let st = SafeTensors::deserialize(mmap)
            .map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))?;
        let view = st
            .tensor(stored)
            .map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))?;
        let bytes = view.data();
        let values = decode_f32(view.dtype(), bytes).ok_or_else(|| {
            GeomError::invalid(format!(
                "{}: tensor '{stored}' has dtype {:?} (expected F32, BF16 or F16)",
                path.display(),
                view.dtype()
            ))
        })?;
        // The f32 copy is what the model keeps: drop the file pages just read
        // from this process's resident set, so loading never holds the
        // checkpoint twice (peak ≈ f32 weights + one tensor).
        #[cfg(unix)]
        {
            let offset = bytes.as_ptr() as usize - mmap.as_ptr() as usize;
            // SAFETY: the mapping is a read-only, shared, file-backed map:
            // MADV_DONTNEED only evicts its pages from this process; a later
            // access faults them back in from the unchanged file.
            unsafe {
                let _ = mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    offset,
                    bytes.len(),
                );
            }
        }
        Ok((values, view.shape().to_vec()))
    }
}

/// Little-endian F32, BF16 or F16 bytes as f32 values (`None` for any
/// other dtype): the one conversion of checkpoint, adapter and rewrite code.
pub fn decode_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Maps every key layout onto geom's canonical names: `model.*` (decoder),
/// `visual.*`, `audio_tower.*`, `lm_head.weight`, and `talker.*` /
/// `token2wav.*` as they are.
///
/// * Qwen2.5-VL as transformers ≥ 4.52 holds it in memory (and some
///   re-saved checkpoints): `model.language_model.*`, `model.visual.*`;
/// * Qwen2.5-Omni's hub layout: the thinker under `thinker.` (`thinker.model.*`,
///   `thinker.visual.*`, `thinker.audio_tower.*`, `thinker.lm_head.weight`);
/// * both at once, and `model.audio_tower.*`, as transformers 5 may nest them.
pub fn canonical_key(name: &str) -> String {
    let name = name.strip_prefix("thinker.").unwrap_or(name);
    if let Some(rest) = name.strip_prefix("model.audio_tower.") {
        format!("audio_tower.{rest}")
    } else if let Some(rest) = name.strip_prefix("model.language_model.") {
        format!("model.{rest}")
    } else if let Some(rest) = name.strip_prefix("model.visual.") {
        format!("visual.{rest}")
    } else {
        name.to_string()
    }
}

/// Takes tensors out of a checkpoint by canonical name and expected shape,
/// remembering what was missing, misshapen or never asked for, so that one
/// error can list every problem at once.
pub struct WeightMap<'a> {
    ckpt: &'a Checkpoint,
    skipped: Vec<String>,
    taken: BTreeSet<String>,
    missing: Vec<String>,
    misshapen: Vec<String>,
}

impl<'a> WeightMap<'a> {
    /// Starts taking weights from `ckpt`.
    pub fn new(ckpt: &'a Checkpoint) -> Self {
        Self {
            ckpt,
            skipped: Vec::new(),
            taken: BTreeSet::new(),
            missing: Vec::new(),
            misshapen: Vec::new(),
        }
    }

    /// Declares every tensor under `prefix` deliberately unused (e.g.
    /// `visual.` when only the language decoder is built).
    pub fn skip_prefix(&mut self, prefix: &str) {
        self.skipped.push(prefix.to_string());
    }

    /// Whether the checkpoint holds `key` (to tell layouts apart).
    pub fn contains(&self, key: &str) -> bool {
        self.ckpt.keys.contains_key(key)
    }

    /// How many tensors fall under the skipped prefixes (e.g. the
    /// talker and token2wav of a Qwen2.5-Omni checkpoint, left on disk).
    pub fn skipped_count(&self) -> usize {
        self.ckpt
            .keys()
            .filter(|k| self.skipped.iter().any(|p| k.starts_with(p.as_str())))
            .count()
    }

    /// The tensor `key` as f32 if it exists with shape `shape`; otherwise
    /// records the problem and returns `None` (call [`WeightMap::finish`]).
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Option<Vec<f32>> {
        self.taken.insert(key.to_string());
        match self.ckpt.shape(key) {
            None => {
                self.missing.push(key.to_string());
                None
            }
            Some(s) if s != shape => {
                self.misshapen
                    .push(format!("{key}: {s:?} (expected {shape:?})"));
                None
            }
            Some(_) => match self.ckpt.tensor_f32(key) {
                Ok((v, _)) => Some(v),
                Err(e) => {
                    self.misshapen.push(format!("{key}: {e}"));
                    None
                }
            },
        }
    }

    /// Fails with every missing, misshapen and unexpected tensor listed
    /// (nothing is ever left randomly initialised).
    pub fn finish(self) -> Result<()> {
        let unexpected: Vec<&str> = self
            .ckpt
            .keys()
            .filter(|k| !self.taken.contains(*k) && !UNUSED_KEYS.contains(k))
            .filter(|k| !self.skipped.iter().any(|p| k.starts_with(p.as_str())))
            .collect();
        if self.missing.is_empty() && self.misshapen.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let list = |v: &[String]| v.join(", ");
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing: {}",
                self.missing.len(),
                list(&self.missing)
            ));
        }
        if !self.misshapen.is_empty() {
            parts.push(format!(
                "{} with the wrong shape: {}",
                self.misshapen.len(),
                list(&self.misshapen)
            ));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected: {}",
                unexpected.len(),
                unexpected.join(", ")
            ));
        }
        Err(GeomError::invalid(format!(
            "{}: the checkpoint does not match the configured architecture; {}",
            self.ckpt.dir().display(),
            parts.join("; ")
        )))
    }
}

/// A read-only memory map of a safetensors file.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let io = |source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the file is opened read-only and not modified while mapped
    // (geom never writes a checkpoint in place; a checkpoint rewritten by
    // another program under a running geom is outside the contract).
    unsafe { Mmap::map(&file) }.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys() {
        assert_eq!(
            canonical_key("model.language_model.layers.0.mlp.up_proj.weight"),
            "model.layers.0.mlp.up_proj.weight"
        );
        assert_eq!(
            canonical_key("model.visual.blocks.1.attn.qkv.bias"),
            "visual.blocks.1.attn.qkv.bias"
        );
        assert_eq!(
            canonical_key("visual.merger.mlp.0.weight"),
            "visual.merger.mlp.0.weight"
        );
        assert_eq!(canonical_key("lm_head.weight"), "lm_head.weight");
        assert_eq!(
            canonical_key("thinker.model.layers.0.mlp.up_proj.weight"),
            "model.layers.0.mlp.up_proj.weight"
        );
        assert_eq!(
            canonical_key("thinker.audio_tower.layers.1.fc1.weight"),
            "audio_tower.layers.1.fc1.weight"
        );
        assert_eq!(canonical_key("thinker.lm_head.weight"), "lm_head.weight");
        assert_eq!(
            canonical_key("talker.model.layers.0.mlp.up_proj.weight"),
            "talker.model.layers.0.mlp.up_proj.weight"
        );
    }
}
