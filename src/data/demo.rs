//! The embedded default: `assets/demo/` compiled into the binary — a tiny
//! Qwen2.5-VL-architecture checkpoint pair ("before" and "after" text-only
//! contrastive learning) and a small paired image–caption sample — so
//! `geom anisotropy` with no argument runs the whole pipeline anywhere, with
//! no download.
//!
//! [`Demo::materialize`] writes the files once into the cache folder
//! (`geom-demo-<hash of the contents>`), atomically, and returns their
//! paths; `--pairs demo` resolves to its manifest.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cache::cache_dir;
use super::extract::Fnv;
use crate::error::{GeomError, Result};

include!(concat!(env!("OUT_DIR"), "/demo_files.rs"));

/// One checkpoint of the demo, as `assets/demo/demo.toml` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct DemoCheckpoint {
    /// Legend label (`before CL`).
    pub label: String,
    /// Where the weights come from (random, or the training run).
    pub weights: String,
}

#[derive(Debug, Clone, Deserialize)]
struct DemoToml {
    description: String,
    before: DemoCheckpoint,
    after: DemoCheckpoint,
}

/// The demo, written out on disk.
#[derive(Debug, Clone)]
pub struct Demo {
    root: PathBuf,
    meta: DemoToml,
}

impl Demo {
    /// Writes the embedded files into the default cache folder (once).
    pub fn materialize() -> Result<Self> {
        Self::materialize_in(&cache_dir(None))
    }

    /// Writes the embedded files into `cache` (once per content hash).
    pub fn materialize_in(cache: &Path) -> Result<Self> {
        if DEMO_FILES.is_empty() {
            return Err(GeomError::invalid(
                "the embedded demo needs geom built with the `model` feature (the default)",
            ));
        }
        let mut h = Fnv::default();
        for (name, bytes) in DEMO_FILES {
            h.write(name.as_bytes());
            h.write(&(bytes.len() as u64).to_le_bytes());
            h.write(bytes);
        }
        let root = cache.join(format!("geom-demo-{:016x}", h.0));
        if !root.join(".complete").exists() {
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| GeomError::Io { path, source }
            };
            let tmp = cache.join(format!("geom-demo-{:016x}.tmp-{}", h.0, std::process::id()));
            for (name, bytes) in DEMO_FILES {
                let p = tmp.join(name);
                std::fs::create_dir_all(p.parent().expect("a file in a folder")).map_err(io(&p))?;
                std::fs::write(&p, bytes).map_err(io(&p))?;
            }
            std::fs::write(tmp.join(".complete"), b"").map_err(io(&tmp))?;
            // Another process may have won the race: then its copy is used.
            if std::fs::rename(&tmp, &root).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
                if !root.join(".complete").exists() {
                    return Err(GeomError::invalid(format!(
                        "could not write the embedded demo into {}",
                        root.display()
                    )));
                }
            }
        }
        let toml_path = root.join("demo.toml");
        let text = std::fs::read_to_string(&toml_path).map_err(|source| GeomError::Io {
            path: toml_path.clone(),
            source,
        })?;
        let meta: DemoToml = toml::from_str(&text)
            .map_err(|e| GeomError::invalid(format!("{}: {e}", toml_path.display())))?;
        Ok(Self { root, meta })
    }

    /// The folder holding the demo's files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The paired sample's manifest.
    pub fn pairs(&self) -> PathBuf {
        self.root.join("pairs.jsonl")
    }

    /// The NLI-style text sample (anchor, positive, negative) for
    /// contrastive training.
    pub fn nli(&self) -> PathBuf {
        self.root.join("nli.jsonl")
    }

    /// One line about the paired sample.
    pub fn description(&self) -> &str {
        &self.meta.description
    }

    /// The checkpoint before contrastive learning: folder and description.
    pub fn before(&self) -> (PathBuf, &DemoCheckpoint) {
        (self.root.join("before"), &self.meta.before)
    }

    /// The checkpoint after contrastive learning: folder and description.
    pub fn after(&self) -> (PathBuf, &DemoCheckpoint) {
        (self.root.join("after"), &self.meta.after)
    }

    /// A one-line statement of what the demo's numbers are (for notes and
    /// figure footnotes).
    pub fn provenance(&self) -> String {
        format!(
            "embedded demo: tiny Qwen2.5-VL-architecture checkpoints on {}; {}: {}; {}: {}",
            self.meta.description,
            self.meta.before.label,
            self.meta.before.weights,
            self.meta.after.label,
            self.meta.after.weights
        )
    }
}

/// Whether a store's `model` attribute names a checkpoint of the
/// materialised demo.
pub fn is_demo_model(model: &str) -> bool {
    Path::new(model)
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with("geom-demo-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materialises_once_and_reads_its_description() {
        let dir = tempfile::tempdir().unwrap();
        let a = Demo::materialize_in(dir.path()).unwrap();
        let b = Demo::materialize_in(dir.path()).unwrap();
        assert_eq!(a.root(), b.root());
        assert!(a.pairs().is_file());
        assert!(a.before().0.join("config.json").is_file());
        assert!(a.after().0.join("model.safetensors").is_file());
        assert!(is_demo_model(&a.before().0.display().to_string()));
        assert!(!is_demo_model("/models/Qwen2.5-VL-3B-Instruct"));
        // Only the final folder is left, no temporary one.
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(n, 1);
    }
}
