//! `geom compare`: a checkpoint before and after (text-only CL), side by
//! side — anisotropy of every modality and the mutual-kNN alignment of two
//! modalities, per layer, with their differences; Figure 1 and Figure 2
//! style plots with `--out`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::common::{
    open_stores, report_written, synthetic_footnote, warn_if_synthetic, write_file, Extraction,
    StoreArg,
};
use crate::error::GeomError;
use crate::layers::parse_layers;
use crate::metrics::anisotropy::{anisotropy, ZeroNorm};
use crate::metrics::{align, AlignOptions, Metric};
use crate::plot::{self, ImageFormat, Panel, Series};
use crate::report::{table, Format};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint before: a store (.h5), or a checkpoint folder with --pairs.
    /// Without --before and --after, the embedded demo's pair.
    #[arg(long, value_name = "[LABEL=]PATH", requires = "after")]
    before: Option<StoreArg>,
    /// The checkpoint after, on the same pairs: a store, or a checkpoint folder with --pairs.
    #[arg(long, value_name = "[LABEL=]PATH", requires = "before")]
    after: Option<StoreArg>,
    #[command(flatten)]
    extraction: Extraction,
    /// Layers (all, 0,5,10, 0..12, -1).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    layers: String,
    /// The two modalities to align (default: image and text when present, else the first two).
    #[arg(long)]
    a: Option<String>,
    /// Second modality of the alignment.
    #[arg(long)]
    b: Option<String>,
    /// Neighbours for mutual kNN.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// table, json or csv.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Directory for compare.json, compare.csv and the two figures.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Per-layer values of one quantity, before and after.
struct Curve {
    name: String,
    before: Vec<f64>,
    after: Vec<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Checkpoint folders are extracted (or found in the cache) first.
    let mut sides = Vec::new();
    if let (Some(before), Some(after)) = (&args.before, &args.after) {
        if args.extraction.pairs.is_some() && !before.path.is_dir() && !after.path.is_dir() {
            return Err(GeomError::invalid(
                "--pairs applies to checkpoint folders, but --before and --after are stores",
            )
            .into());
        }
        for side in [before, after] {
            if side.path.is_dir() {
                sides.extend(args.extraction.stores_of(std::slice::from_ref(side))?);
            } else {
                sides.push(side.clone());
            }
        }
    } else if args.extraction.pairs.is_some() {
        return Err(GeomError::invalid(
            "--pairs needs --before and --after checkpoint folders (without them, the embedded demo is compared)",
        )
        .into());
    }
    let stores = open_stores(&sides, &args.extraction)?;
    let (before, after) = (&stores[0].1, &stores[1].1);
    for (label, store) in &stores {
        warn_if_synthetic(label, store);
    }
    let modalities = before.modality_names();
    if modalities != after.modality_names() {
        return Err(GeomError::invalid(format!(
            "the stores hold different modalities: {} has {}, {} has {}",
            before.path().display(),
            modalities.join(", "),
            after.path().display(),
            after.modality_names().join(", ")
        ))
        .into());
    }
    let first = before.modality(&modalities[0])?;
    for m in &modalities {
        let (x, y) = (before.modality(m)?, after.modality(m)?);
        if x.n_layers != y.n_layers || x.rows_done != y.rows_done {
            return Err(GeomError::invalid(format!(
                "'{m}' is [{} layers, {} rows] in {} but [{} layers, {} rows] in {}; compare needs the same model depth and pairs",
                x.n_layers,
                x.rows_done,
                before.path().display(),
                y.n_layers,
                y.rows_done,
                after.path().display()
            ))
            .into());
        }
    }
    let layers = parse_layers(&args.layers, first.n_layers)?;
    let mut curves = Vec::new();
    for m in &modalities {
        let f = |s: &Store| -> anyhow::Result<Vec<f64>> {
            layers
                .iter()
                .map(|&l| {
                    let x = s.read_layer(m, l)?;
                    anisotropy(x.view(), ZeroNorm::Error).with_context(|| {
                        format!("{}: modality '{m}', layer {l}", s.path().display())
                    })
                })
                .collect()
        };
        curves.push(Curve {
            name: format!("anisotropy {m}"),
            before: f(before)?,
            after: f(after)?,
        });
    }
    let pair = match (&args.a, &args.b) {
        (Some(a), Some(b)) => Some((a.clone(), b.clone())),
        (None, None) if modalities.len() >= 2 => {
            let has = |n: &str| modalities.iter().any(|m| m == n);
            Some(if has("image") && has("text") {
                ("image".to_string(), "text".to_string())
            } else {
                (modalities[0].clone(), modalities[1].clone())
            })
        }
        (None, None) => None,
        _ => return Err(GeomError::invalid("give both --a and --b, or neither").into()),
    };
    if let Some((a, b)) = &pair {
        let opts = AlignOptions {
            k: args.k,
            ..Default::default()
        };
        let f = |s: &Store| -> anyhow::Result<Vec<f64>> {
            layers
                .iter()
                .map(|&l| {
                    let (x, y) = (s.read_layer(a, l)?, s.read_layer(b, l)?);
                    Ok(align(Metric::MutualKnn, x.view(), y.view(), &opts)?)
                })
                .collect()
        };
        curves.push(Curve {
            name: format!("mutual_knn {a}-{b}"),
            before: f(before)?,
            after: f(after)?,
        });
    }
    // Outputs.
    let (lb, la) = (&stores[0].0, &stores[1].0);
    let names: Vec<String> = layers
        .iter()
        .map(|&l| first.layer_names[l].clone())
        .collect();
    let j = json!({
        "metric": "compare",
        "before": lb,
        "after": la,
        "k": args.k,
        "layers": layers,
        "layer_names": names,
        "curves": curves.iter().map(|c| json!({
            "name": c.name,
            "before": c.before,
            "after": c.after,
            "delta": c.after.iter().zip(&c.before).map(|(a, b)| a - b).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut csv = String::from("quantity,layer,before,after,delta\n");
    for c in &curves {
        for (i, &l) in layers.iter().enumerate() {
            csv.push_str(&format!(
                "{},{l},{},{},{}\n",
                c.name,
                c.before[i],
                c.after[i],
                c.after[i] - c.before[i]
            ));
        }
    }
    let mut headers = vec!["layer".to_string(), "name".to_string()];
    for c in &curves {
        headers.push(format!("{} {lb}", c.name));
        headers.push(la.to_string());
        headers.push("Δ".to_string());
    }
    let rows: Vec<Vec<String>> = layers
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let mut r = vec![l.to_string(), names[i].clone()];
            for c in &curves {
                r.push(format!("{:.4}", c.before[i]));
                r.push(format!("{:.4}", c.after[i]));
                r.push(format!("{:+.4}", c.after[i] - c.before[i]));
            }
            r
        })
        .collect();
    match args.format {
        Format::Table => print!("{}", table(&headers, &rows)),
        Format::Json => println!("{j}"),
        Format::Csv => print!("{csv}"),
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| GeomError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut written = vec![dir.join("compare.json"), dir.join("compare.csv")];
        write_file(&written[0], &serde_json::to_string_pretty(&j)?)?;
        write_file(&written[1], &csv)?;
        let line = |label: &str, c: &Curve, values: &[f64], dashed: bool| {
            Series::new(label, layers.clone(), values.to_vec())
                .with_group(c.name.clone())
                .with_dashed(dashed)
        };
        let aniso: Vec<Series> = curves
            .iter()
            .filter(|c| c.name.starts_with("anisotropy"))
            .flat_map(|c| {
                let m = c.name.trim_start_matches("anisotropy ");
                [
                    line(&format!("{m}, {lb}"), c, &c.before, true),
                    line(&format!("{m}, {la}"), c, &c.after, false),
                ]
            })
            .collect();
        let title = if before.meta().dataset.is_empty() {
            "hidden states".to_string()
        } else {
            before.meta().dataset.clone()
        };
        let mut fig = plot::figure1(vec![Panel {
            title,
            series: aniso,
        }]);
        fig.footnote = synthetic_footnote(&stores);
        written.extend(plot::render_lines(
            &fig,
            &dir.join("compare-anisotropy"),
            &[ImageFormat::Svg, ImageFormat::Png],
        )?);
        if let Some(c) = curves.iter().find(|c| c.name.starts_with("mutual_knn")) {
            let mut fig = plot::figure2(
                &format!(
                    "Kernel alignment, {}",
                    c.name.trim_start_matches("mutual_knn ")
                ),
                &format!("Mutual kNN alignment (k = {})", args.k),
                vec![
                    Series::new(lb.as_str(), layers.clone(), c.before.clone()).with_dashed(true),
                    Series::new(la.as_str(), layers.clone(), c.after.clone()),
                ],
            );
            fig.footnote = synthetic_footnote(&stores);
            written.extend(plot::render_lines(
                &fig,
                &dir.join("compare-alignment"),
                &[ImageFormat::Svg, ImageFormat::Png],
            )?);
        }
        report_written(&written);
    }
    Ok(())
}
