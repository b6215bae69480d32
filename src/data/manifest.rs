//! The paired-dataset manifest: JSONL, one pair per line (DESIGN.md).
//!
//! ```json
//! {"id": "pixmo-0001", "text": "a caption", "image": "images/0001.png"}
//! {"id": "clip-7", "text": "a man cooks", "video": "frames/clip-7/"}
//! ```
//!
//! `audio` is accepted in the format (for Qwen2.5-Omni) but not embedded by
//! the Qwen2.5-VL extractor. Relative paths resolve against the manifest's
//! folder. Blank lines are ignored. Every pair must have the same set of
//! modalities (rows with the same index are pairs in the store).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::error::{GeomError, Result};

/// One pair of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The pair id (unique in the manifest).
    pub id: String,
    /// 1-based line number in the manifest.
    pub line: usize,
    /// The caption.
    pub text: Option<String>,
    /// An image file.
    pub image: Option<PathBuf>,
    /// An audio file.
    pub audio: Option<PathBuf>,
    /// A video: a file, or a folder of frames.
    pub video: Option<PathBuf>,
}

impl Pair {
    /// The modalities this pair has, in store order.
    pub fn modalities(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.text.is_some() {
            m.push("text");
        }
        if self.image.is_some() {
            m.push("image");
        }
        if self.audio.is_some() {
            m.push("audio");
        }
        if self.video.is_some() {
            m.push("video");
        }
        m
    }
}

/// A loaded manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    /// The pairs, in file order.
    pub pairs: Vec<Pair>,
}

impl Manifest {
    /// Reads and checks a JSONL manifest. Errors name the file and line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| GeomError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let at = |line: usize, msg: String| {
            GeomError::invalid(format!("{}:{line}: {msg}", path.display()))
        };
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(raw)
                .map_err(|e| at(line, format!("not a JSON object ({e})")))?;
            let obj = v
                .as_object()
                .ok_or_else(|| at(line, "not a JSON object".to_string()))?;
            let id = match obj.get("id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(at(line, "missing \"id\" (a non-empty string)".to_string())),
            };
            if !seen.insert(id.clone()) {
                let first = pairs
                    .iter()
                    .find(|p: &&Pair| p.id == id)
                    .map_or(0, |p| p.line);
                return Err(at(
                    line,
                    format!("duplicate id '{id}' (first on line {first})"),
                ));
            }
            let string = |key: &str| -> Result<Option<String>> {
                match obj.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => {
                        Err(at(line, format!("\"{key}\" must be a string, not {other}")))
                    }
                }
            };
            let file = |key: &str| -> Result<Option<PathBuf>> {
                Ok(string(key)?.map(|s| {
                    let p = PathBuf::from(s);
                    if p.is_absolute() {
                        p
                    } else {
                        base.join(p)
                    }
                }))
            };
            let text = string("text")?;
            if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(at(line, format!("pair '{id}' has an empty caption")));
            }
            let pair = Pair {
                id,
                line,
                text,
                image: file("image")?,
                audio: file("audio")?,
                video: file("video")?,
            };
            if pair.modalities().is_empty() {
                return Err(at(
                    line,
                    format!("pair '{}' has none of text, image, audio, video", pair.id),
                ));
            }
            if let Some(first) = pairs.first() {
                let (a, b) = (Pair::modalities(first), pair.modalities());
                if a != b {
                    return Err(at(
                        line,
                        format!(
                            "pair '{}' has {} but line {} has {} (every pair needs the same modalities)",
                            pair.id,
                            b.join("+"),
                            first.line,
                            a.join("+")
                        ),
                    ));
                }
            }
            pairs.push(pair);
        }
        if pairs.is_empty() {
            return Err(GeomError::invalid(format!(
                "{}: no pairs (expected JSON lines like {{\"id\": \"1\", \"text\": \"...\", \"image\": \"a.png\"}})",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            pairs,
        })
    }

    /// The modalities of the pairs, in store order.
    pub fn modalities(&self) -> Vec<&'static str> {
        self.pairs[0].modalities()
    }

    /// Keeps the first `n` pairs.
    pub fn limit(mut self, n: usize) -> Self {
        self.pairs.truncate(n);
        self
    }

    /// Keeps a seeded random sample of `n` pairs (in manifest order); all of
    /// them when `n` is at least their number.
    pub fn sample(mut self, n: usize, seed: u64) -> Self {
        if n < self.pairs.len() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut keep = sample(&mut rng, self.pairs.len(), n).into_vec();
            keep.sort_unstable();
            self.pairs = keep.into_iter().map(|i| self.pairs[i].clone()).collect();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.jsonl");
        std::fs::write(&p, lines).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_pairs_and_resolves_paths() {
        let (dir, p) = write(
            "{\"id\": \"a\", \"text\": \"x\", \"image\": \"i/a.png\"}\n\n{\"id\": 2, \"text\": \"y\", \"image\": \"/abs/b.png\"}\n",
        );
        let m = Manifest::load(&p).unwrap();
        assert_eq!(m.pairs.len(), 2);
        assert_eq!(
            m.pairs[0].image.as_ref().unwrap(),
            &dir.path().join("i/a.png")
        );
        assert_eq!(m.pairs[1].id, "2");
        assert_eq!(m.pairs[1].line, 3);
        assert_eq!(m.modalities(), vec!["text", "image"]);
    }

    #[test]
    fn errors_name_the_line() {
        for (body, needle) in [
            ("{\"id\": \"a\", \"text\": \"x\"}\n{oops\n", ":2: not a JSON object"),
            ("{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n", ":2: duplicate id 'a' (first on line 1)"),
            ("{\"id\": \"a\", \"text\": \"  \"}\n", ":1: pair 'a' has an empty caption"),
            ("{\"text\": \"x\"}\n", ":1: missing \"id\""),
            ("{\"id\": \"a\", \"text\": \"x\", \"image\": \"a.png\"}\n{\"id\": \"b\", \"text\": \"y\"}\n", ":2: pair 'b' has text but line 1 has text+image"),
            ("\n", "no pairs"),
        ] {
            let (_d, p) = write(body);
            let e = Manifest::load(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
    }

    #[test]
    fn limit_and_seeded_sample() {
        let body: String = (0..50)
            .map(|i| format!("{{\"id\": \"{i}\", \"text\": \"t{i}\"}}\n"))
            .collect();
        let (_d, p) = write(&body);
        let m = Manifest::load(&p).unwrap();
        assert_eq!(m.clone().limit(3).pairs.len(), 3);
        let a = m.clone().sample(10, 7);
        let b = m.clone().sample(10, 7);
        assert_eq!(a.pairs, b.pairs);
        assert_eq!(a.pairs.len(), 10);
        assert!(a.pairs.windows(2).all(|w| w[0].line < w[1].line));
        assert_ne!(a.pairs, m.clone().sample(10, 8).pairs);
        assert_eq!(m.clone().sample(100, 1).pairs.len(), 50);
    }
}
