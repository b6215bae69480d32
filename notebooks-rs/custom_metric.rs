//! A custom per-layer metric over a store, next to a built-in one.
//!
//! Computes, for every layer of each modality, the *effective rank* of the
//! embeddings (exp of the entropy of the normalised singular-value spectrum,
//! Roy & Vetterli 2007) beside geom's anisotropy, and writes one JSON object.
//!
//! Run: `cargo run --example custom_metric -- [STORE.h5]` (default: the
//! embedded demo's "before" checkpoint on its pairs, extracted into geom's
//! cache on first use).

use std::path::PathBuf;

use geom::data::cache::{cached_store, CacheOptions};
use geom::data::demo::Demo;
use geom::metrics::{anisotropy, ZeroNorm};
use geom::store::Store;
use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array2, Axis};

/// exp(H(p)), p_i = σ_i / Σσ, from the eigenvalues of the centred covariance.
fn effective_rank(x: &Array2<f32>) -> f64 {
    let mut a = x.mapv(|v| v as f64);
    let mean = a.mean_axis(Axis(0)).expect("non-empty");
    a -= &mean;
    let cov = a.t().dot(&a);
    let d = cov.nrows();
    let eig = SymmetricEigen::new(DMatrix::from_row_slice(
        d,
        d,
        cov.as_slice().expect("contiguous"),
    ));
    let sv: Vec<f64> = eig.eigenvalues.iter().map(|l| l.max(0.0).sqrt()).collect();
    let total: f64 = sv.iter().sum();
    let h: f64 = sv
        .iter()
        .filter(|s| **s > 0.0)
        .map(|s| s / total)
        .map(|p| -p * p.ln())
        .sum();
    h.exp()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => PathBuf::from(p),
        None => {
            let demo = Demo::materialize()?;
            let (dir, c) = demo.before();
            cached_store(&dir, &c.label, "demo", &CacheOptions::default())?
        }
    };
    let store = Store::open(&path)?;
    let mut out = serde_json::Map::new();
    for m in store.modalities() {
        let mut rows = Vec::new();
        for layer in 0..m.n_layers {
            let x = store.read_layer(&m.name, layer)?;
            rows.push(serde_json::json!({
                "layer": layer,
                "anisotropy": anisotropy(x.view(), ZeroNorm::Error)?,
                "effective_rank": effective_rank(&x),
            }));
        }
        out.insert(m.name.clone(), rows.into());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"store": path, "modalities": out}))?
    );
    Ok(())
}
