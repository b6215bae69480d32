//! A sweep over several stores (checkpoints): per-layer anisotropy and
//! mutual-kNN alignment with chance level and bootstrap intervals, one JSON
//! file per store, and a combined Figure 2-style plot.
//!
//! Run: `cargo run --example sweep -- OUT_DIR [LABEL=STORE.h5 ...]`
//! (default: the demo's before/after stores, into `target/sweep`).

use std::path::PathBuf;

use geom::metrics::modes::{layerwise, StatsOptions};
use geom::metrics::{anisotropy, AlignOptions, Metric, ZeroNorm};
use geom::plot::{figure2, render_lines, ImageFormat, Series};
use geom::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sweep"));
    let mut stores: Vec<(String, PathBuf)> = args
        .map(|a| match a.split_once('=') {
            Some((l, p)) => (l.to_string(), PathBuf::from(p)),
            None => (a.clone(), PathBuf::from(&a)),
        })
        .collect();
    if stores.is_empty() {
        stores = vec![
            ("before CL".into(), root.join("assets/demo/before.h5")),
            ("after CL".into(), root.join("assets/demo/after.h5")),
        ];
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
