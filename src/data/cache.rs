//! The cache of extracted stores: `geom anisotropy --model DIR --pairs P`
//! (and the embedded demo) extract a checkpoint's hidden states once and
//! reuse them.
//!
//! A cached store is keyed by the model fingerprint, the manifest (path and
//! contents) and the pair selection; pooling is last-token and the prompts
//! LCO-Emb's. A partial file (an interrupted run) is resumed, and a file
//! made with other prompts is refused rather than reused (the extractor
//! checks the stored prompt on resume). Two processes asking for the same
//! store take turns (a file lock), so the second one reuses the first one's
//! work instead of writing the same file.

use std::path::{Path, PathBuf};

/// Where extracted stores (and the materialised demo) are cached:
/// `arg` (`--cache-dir`), else `$GEOM_CACHE`, else `$XDG_CACHE_HOME/geom`,
/// else `~/.cache/geom`, else `./.geom-cache`.
pub fn cache_dir(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("GEOM_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("geom");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/geom"))
        .unwrap_or_else(|| PathBuf::from(".geom-cache"))
}

#[cfg(feature = "model")]
pub use with_model::*;

#[cfg(feature = "model")]
mod with_model {
    use std::path::{Path, PathBuf};

    use super::cache_dir;
    use crate::data::extract::{extract, model_fingerprint, ExtractOptions, Fnv};
    use crate::data::preset::resolve_pairs;
    use crate::data::Manifest;
    use crate::error::{GeomError, Result};
    use crate::model::{DeviceSpec, Embedder, Pooling};
    use crate::store::Store;

    /// How [`cached_store`] extracts on a cache miss.
    #[derive(Debug, Clone)]
    pub struct CacheOptions {
        /// Device of the forward passes.
        pub device: DeviceSpec,
        /// Items per forward pass.
        pub batch_size: usize,
        /// The cache folder (`None`: [`cache_dir`]'s default).
        pub cache_dir: Option<PathBuf>,
        /// Say on stderr whether the cache was used, and draw a progress bar.
        pub verbose: bool,
    }

    impl Default for CacheOptions {
        fn default() -> Self {
            Self {
                device: DeviceSpec::Cpu,
                batch_size: 8,
                cache_dir: None,
                verbose: true,
            }
        }
    }

    /// The store of checkpoint `model` on `pairs` (a preset name, a manifest
    /// or a preset file, as `--pairs` takes), extracted into the cache unless
    /// it is there already. `label` names the checkpoint in messages.
    pub fn cached_store(
        model: &Path,
        label: &str,
        pairs: &str,
        opts: &CacheOptions,
    ) -> Result<PathBuf> {
        let resolved = resolve_pairs(pairs)?;
        let mut manifest = Manifest::load(&resolved.manifest)?;
        if let Some(n) = resolved.limit {
            manifest = manifest.limit(n);
        }
        let manifest_bytes = std::fs::read(&resolved.manifest).map_err(|source| GeomError::Io {
            path: resolved.manifest.clone(),
            source,
        })?;
        let dir = cache_dir(opts.cache_dir.as_deref());
        std::fs::create_dir_all(&dir).map_err(|source| GeomError::Io {
            path: dir.clone(),
            source,
        })?;
        let fp = model_fingerprint(model)?;
        let mut key = Fnv::default();
        key.write(fp.as_bytes());
        key.write(
            resolved
                .manifest
                .canonicalize()
                .unwrap_or_default()
                .to_string_lossy()
                .as_bytes(),
        );
        key.write(&manifest_bytes);
        key.write(format!("{}|{:?}|last", manifest.pairs.len(), resolved.limit).as_bytes());
        let path = dir.join(format!("{fp}-{}-{:016x}.h5", resolved.dataset, key.0));
        // One extraction per store at a time, across processes.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|source| GeomError::Io {
            path: lock_path.clone(),
            source,
        })?;
        lock.lock().map_err(|source| GeomError::Io {
            path: lock_path.clone(),
            source,
        })?;
        if is_complete(&path) {
            if opts.verbose {
                eprintln!("{label}: using the cached hidden states {}", path.display());
            }
        } else {
            if opts.verbose {
                eprintln!(
                    "{label}: extracting {} pairs of {} into {}",
                    manifest.pairs.len(),
                    resolved.dataset,
                    path.display()
                );
            }
            let xopts = ExtractOptions {
                batch_size: opts.batch_size,
                pooling: Pooling::LastToken,
                skip_bad: false,
                resume: true,
                progress: opts.verbose,
                audio_in_video: false,
            };
            crate::with_backend!(opts.device, |B, dev| {
                let emb = Embedder::<B>::from_dir(model, &dev)?;
                extract(&emb, model, &manifest, &resolved.dataset, &path, &xopts)?
            });
        }
        drop(lock);
        Ok(path)
    }

    fn is_complete(path: &Path) -> bool {
        Store::open(path).is_ok_and(|s| s.modalities().iter().all(|m| m.rows_done == m.n_rows))
    }
}
