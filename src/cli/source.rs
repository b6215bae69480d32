//! `--model DIR --pairs P` on the analysis commands, and the embedded demo
//! when no store is given: checkpoints' hidden states, extracted once into
//! the cache ([`crate::data::cache`]) and reused.

use std::path::Path;

use super::common::StoreArg;
use crate::data::cache::{cached_store, CacheOptions};
use crate::data::demo::Demo;
use crate::error::{GeomError, Result};

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
        GeomError::invalid(
            "--model needs --pairs (a preset such as pixmo or demo, or a manifest .jsonl)",
        )
    })?;
    let opts = CacheOptions {
        device: device.parse()?,
        batch_size,
        cache_dir: cache.map(Path::to_path_buf),
        verbose: true,
    };
    models
        .iter()
        .map(|m| {
            Ok(StoreArg {
                label: m.label.clone(),
                path: cached_store(&m.path, &m.label, pairs, &opts)?,
            })
        })
        .collect()
}

/// The embedded demo's before/after stores (extracted on first use, on
/// `device`, into `cache` or the default cache folder).
pub fn demo_stores(device: &str, batch_size: usize, cache: Option<&Path>) -> Result<Vec<StoreArg>> {
    let demo = Demo::materialize_in(&crate::data::cache::cache_dir(cache))?;
    eprintln!(
        "note: no store or --model given; using the {}",
        demo.provenance()
    );
    let models: Vec<StoreArg> = [demo.before(), demo.after()]
        .into_iter()
        .map(|(path, c)| StoreArg {
            label: c.label.clone(),
            path,
        })
        .collect();
    model_stores(&models, Some("demo"), device, batch_size, cache)
}
