//! A sweep over several checkpoints (or stores): per-layer text anisotropy
//! and image–text mutual-kNN alignment with chance level and bootstrap
//! intervals, one JSON file per checkpoint, and a combined Figure 2-style
//! plot.
//!
//! Run: `cargo run --example sweep -- OUT_DIR [--pairs P] [LABEL=PATH ...]`
//! where PATH is a checkpoint folder (its hidden states on the pairs are
//! extracted into geom's cache once, then reused) or a store `.h5`.
//! Default: the embedded demo's two checkpoints on its own pairs, into
//! `target/sweep`.

use std::path::PathBuf;

use geom::data::cache::{cached_store, CacheOptions};
use geom::data::demo::Demo;
use geom::metrics::modes::{layerwise, StatsOptions};
use geom::metrics::{anisotropy, AlignOptions, Metric, ZeroNorm};
use geom::plot::{figure2, render_lines, ImageFormat, Series};
use geom::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut pairs = None;
    if let Some(i) = args.iter().position(|a| a == "--pairs") {
        pairs = Some(args.get(i + 1).ok_or("--pairs needs a value")?.clone());
        args.drain(i..i + 2);
    }
    let mut args = args.into_iter();
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sweep"));
    let mut models: Vec<(String, PathBuf)> = args
        .map(|a| match a.split_once('=') {
            Some((l, p)) => (l.to_string(), PathBuf::from(p)),
            None => (a.clone(), PathBuf::from(&a)),
        })
        .collect();
    if models.is_empty() {
        let demo = Demo::materialize()?;
        println!("sweep over the {}", demo.provenance());
        for (path, c) in [demo.before(), demo.after()] {
            models.push((c.label.clone(), path));
        }
        pairs.get_or_insert_with(|| "demo".to_string());
    }
    // Checkpoint folders become their (cached) stores on the pairs.
    let mut stores = Vec::new();
    for (label, path) in models {
        let store = if path.is_dir() {
            let pairs = pairs.as_deref().ok_or("checkpoint folders need --pairs")?;
            cached_store(&path, &label, pairs, &CacheOptions::default())?
        } else {
            path
        };
        stores.push((label, store));
    }
    std::fs::create_dir_all(&out)?;
    let opts = AlignOptions {
        k: 10,
        ..Default::default()
    };
    let stats = StatsOptions {
        bootstrap: 100,
        seed: 7,
        ..Default::default()
    };
    let mut curves = Vec::new();
    for (label, path) in &stores {
        let store = Store::open(path)?;
        let layers: Vec<usize> = (0..store.modality("image")?.n_layers).collect();
        let aniso: Vec<f64> = layers
            .iter()
            .map(|&l| anisotropy(store.read_layer("text", l)?.view(), ZeroNorm::Error))
            .collect::<Result<_, _>>()?;
        let r = layerwise(
            Metric::MutualKnn,
            &opts,
            &stats,
            &layers,
            |l| store.read_layer("image", l),
            |l| store.read_layer("text", l),
            |_| {},
        )?;
        let file = out.join(format!("{}.json", label.replace(' ', "_")));
        let doc = serde_json::json!({"store": path, "label": label, "text_anisotropy": aniso, "mutual_knn": r});
        std::fs::write(&file, serde_json::to_string_pretty(&doc)?)?;
        println!(
            "{label}: peak mutual kNN {:.3}, wrote {}",
            r.values.iter().cloned().fold(f64::MIN, f64::max),
            file.display()
        );
        let band = r.ci.as_ref().map(|c| {
            (
                c.iter().map(|x| x.lo).collect(),
                c.iter().map(|x| x.hi).collect(),
            )
        });
        curves.push(Series {
            label: label.clone(),
            layers,
            values: r.values,
            group: label.clone(),
            dashed: false,
            band,
        });
    }
    let fig = figure2(
        "image – text alignment, sweep",
        "Mutual kNN alignment (k = 10)",
        curves,
    );
    for p in render_lines(
        &fig,
        &out.join("sweep"),
        &[ImageFormat::Svg, ImageFormat::Png],
    )? {
        println!("wrote {}", p.display());
    }
    Ok(())
}
