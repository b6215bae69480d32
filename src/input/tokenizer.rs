//! The checkpoint's tokenizer (`tokenizer.json`) and the placeholder
//! expansion of the Qwen2.5-VL processor.

use std::path::Path;

use crate::error::{GeomError, Result};

/// A tokenizer with the ids of the vision placeholders.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Loads `tokenizer.json` from a checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(GeomError::invalid(format!(
                "{}: no tokenizer.json",
                dir.display()
            )));
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| {
            GeomError::invalid(format!(
                "{}: cannot read the tokenizer: {e}",
                path.display()
            ))
        })?;
        Ok(Self { inner })
    }

    /// Token ids of `text` (special tokens written in the text are matched
    /// as special tokens, as transformers does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| GeomError::invalid(format!("cannot tokenize {text:?}: {e}")))
    }

    /// Id of a token (e.g. `<|image_pad|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Decodes ids back to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| GeomError::invalid(format!("cannot decode: {e}")))
    }
}

/// Replaces the i-th occurrence of `pad` in `prompt` by `counts[i]` copies of
/// it — one per merged patch (`t·h·w / merge²`) — as the Qwen2.5-VL
/// processor does before tokenizing.
pub fn expand_placeholders(prompt: &str, pad: &str, counts: &[usize]) -> Result<String> {
    let found = prompt.matches(pad).count();
    if found != counts.len() {
        return Err(GeomError::invalid(format!(
            "the prompt holds {found} '{pad}' placeholders but {} images/videos were given",
            counts.len()
        )));
    }
    let mut out = String::with_capacity(prompt.len());
    let mut rest = prompt;
    for &n in counts {
        let at = rest.find(pad).expect("counted above");
        out.push_str(&rest[..at]);
        for _ in 0..n {
            out.push_str(pad);
        }
        rest = &rest[at + pad.len()..];
    }
    out.push_str(rest);
    Ok(out)
}
