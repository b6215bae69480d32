//! `--model DIR --pairs P` on the analysis commands: the checkpoint's hidden
//! states of the pairs, extracted once into a cache and reused.
//!
//! The cache file is keyed by the model fingerprint, the manifest (path and
//! contents) and the pair selection; pooling is last-token and the prompts
//! LCO-Emb's. A partial file (an interrupted run) is resumed, and a file
//! made with other prompts is refused rather than reused (the extractor
//! checks the stored prompt on resume).

use std::path::{Path, PathBuf};

use super::common::StoreArg;
use crate::data::extract::{extract, model_fingerprint, ExtractOptions, Fnv};
use crate::data::preset::resolve_pairs;
use crate::data::Manifest;
use crate::error::{GeomError, Result};
use crate::model::{DeviceSpec, Embedder, Pooling};
use crate::store::Store;

/// Where extracted stores are cached: `--cache-dir`, else `$GEOM_CACHE`,
/// else `$XDG_CACHE_HOME/geom`, else `~/.cache/geom`.
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

/// The stores of `models` (`[LABEL=]DIR`) on `pairs`, extracting what the
/// cache does not hold yet.
pub fn model_stores(
    models: &[StoreArg],
    pairs: Option<&str>,
    device: &str,
    batch_size: usize,
    cache: Option<&Path>,
) -> Result<Vec<StoreArg>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let pairs = pairs.ok_or_else(|| {
        GeomError::invalid("--model needs --pairs (a preset such as pixmo, or a manifest .jsonl)")
    })?;
    let device: DeviceSpec = device.parse()?;
    let resolved = resolve_pairs(pairs)?;
    let mut manifest = Manifest::load(&resolved.manifest)?;
    if let Some(n) = resolved.limit {
        manifest = manifest.limit(n);
    }
    let manifest_bytes = std::fs::read(&resolved.manifest).map_err(|source| GeomError::Io {
        path: resolved.manifest.clone(),
        source,
    })?;
    let dir = cache_dir(cache);
    std::fs::create_dir_all(&dir).map_err(|source| GeomError::Io {
        path: dir.clone(),
        source,
    })?;
    let opts = ExtractOptions {
        batch_size,
        pooling: Pooling::LastToken,
        skip_bad: false,
        resume: true,
        progress: true,
    };
    let mut out = Vec::new();
    for m in models {
        let fp = model_fingerprint(&m.path)?;
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
        if is_complete(&path) {
            eprintln!(
                "{}: using the cached hidden states {}",
                m.label,
                path.display()
            );
        } else {
            eprintln!(
                "{}: extracting {} pairs of {} into {}",
                m.label,
                manifest.pairs.len(),
                resolved.dataset,
                path.display()
            );
            crate::with_backend!(device, |B, dev| {
                let emb = Embedder::<B>::from_dir(&m.path, &dev)?;
                extract(&emb, &m.path, &manifest, &resolved.dataset, &path, &opts)?
            });
        }
        out.push(StoreArg {
            label: m.label.clone(),
            path,
        });
    }
    Ok(out)
}

fn is_complete(path: &Path) -> bool {
    Store::open(path).is_ok_and(|s| s.modalities().iter().all(|m| m.rows_done == m.n_rows))
}
