//! `geom anisotropy`: mean pairwise cosine per layer and modality.

use std::path::PathBuf;

use anyhow::Context;

use super::common::{
    emit, open_stores, parse_modalities, report_written, slug, synthetic_footnote,
    warn_if_synthetic, write_results, ModelSource, StoreArg,
};
use crate::layers::parse_layers;
use crate::metrics::anisotropy::{anisotropy, anisotropy_centered, anisotropy_sampled, ZeroNorm};
use crate::metrics::stats::bootstrap_anisotropy;
use crate::plot::{self, ImageFormat, Panel, Series};
use crate::report::{AnisotropyReport, Format};

/// Which estimator of anisotropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// Exact mean cosine over all pairs i ≠ j (LCO-Emb's definition).
    Exact,
    /// Exact, after subtracting the mean embedding.
    Centered,
    /// Mean over --n-pairs random pairs (Ethayarajh's estimator), seeded.
    Sampled,
}

/// What to do with zero-norm rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroArg {
    /// Stop with an error naming the row.
    Error,
    /// Leave the row out.
    Skip,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Store(s) as [LABEL=]PATH; repeat for before/after or several datasets.
    /// Without --store, the embedded demo pair is used.
    #[arg(long = "store", value_name = "[LABEL=]PATH")]
    stores: Vec<StoreArg>,
    #[command(flatten)]
    source: ModelSource,
    /// Layers: all, a list 0,5,10, a range 0..12, negative -1 (last).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    layers: String,
    /// Modalities to include, comma-separated (default: all in the store).
    #[arg(long)]
    modality: Option<String>,
    /// Estimator.
    #[arg(long, value_enum, default_value_t = Variant::Exact)]
    variant: Variant,
    /// Number of random pairs for --variant sampled.
    #[arg(long, default_value_t = 100_000)]
    n_pairs: usize,
    /// Bootstrap resamples for a confidence interval (0 = none).
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Confidence level of the bootstrap interval.
    #[arg(long, default_value_t = 0.95)]
    ci: f64,
    /// Seed for sampling and bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Zero-norm rows: error (default) or skip.
    #[arg(long, value_enum, default_value_t = ZeroArg::Error)]
    zero_norm: ZeroArg,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Directory for anisotropy.json, anisotropy.csv and the Figure 1-style plot.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0 < args.ci && args.ci < 1.0) {
        return Err(
            crate::GeomError::invalid(format!("--ci {} must be in (0, 1)", args.ci)).into(),
        );
    }
    let zero = match args.zero_norm {
        ZeroArg::Error => ZeroNorm::Error,
        ZeroArg::Skip => ZeroNorm::Skip,
    };
    let metric = match args.variant {
        Variant::Exact => "anisotropy",
        Variant::Centered => "anisotropy_centered",
        Variant::Sampled => "anisotropy_sampled",
    };
    let stores = open_stores(
        &args.source.with_stores(&args.stores)?,
        &args.source.extraction,
    )?;
    let multi = stores.len() > 1;
    let mut reports = Vec::new();
    for (label, store) in &stores {
        warn_if_synthetic(label, store);
        let modalities = parse_modalities(args.modality.as_deref(), store)?;
        let first = store.modality(&modalities[0])?;
        let layers = parse_layers(&args.layers, first.n_layers)?;
        let mut cols = Vec::new();
        for m in &modalities {
            let info = store.modality(m)?;
            if info.n_layers != first.n_layers {
                return Err(crate::GeomError::invalid(format!(
                    "{}: '{m}' has {} layers but '{}' has {}",
                    store.path().display(),
                    info.n_layers,
                    first.name,
                    first.n_layers
                ))
                .into());
            }
            let mut values = Vec::with_capacity(layers.len());
            let mut cis = (args.bootstrap > 0).then(Vec::new);
            for &l in &layers {
                let x = store.read_layer(m, l)?;
                let what = || format!("{}: modality '{m}', layer {l}", store.path().display());
                let v = match args.variant {
                    Variant::Exact => anisotropy(x.view(), zero),
                    Variant::Centered => anisotropy_centered(x.view(), zero),
                    Variant::Sampled => anisotropy_sampled(x.view(), args.n_pairs, args.seed, zero),
                }
                .with_context(what)?;
                values.push(v);
                if let Some(c) = cis.as_mut() {
                    c.push(
                        bootstrap_anisotropy(
                            x.view(),
                            zero,
                            args.bootstrap,
                            args.seed.wrapping_add(l as u64),
                            args.ci,
                        )
                        .with_context(what)?,
                    );
                }
            }
            cols.push((m.clone(), values, cis));
        }
        let report = AnisotropyReport {
            metric: metric.to_string(),
            layer_names: layers
                .iter()
                .map(|&l| first.layer_names[l].clone())
                .collect(),
            layers,
            modalities: cols,
        };
        reports.push((label.clone(), store.meta().dataset.clone(), report));
    }
    // Output: one report per store (label-prefixed when several).
    for (label, _, r) in &reports {
        if multi && args.format == Format::Table {
            println!("== {label} ==");
        }
        if multi && args.format == Format::Json {
            let mut j = r.to_json();
            j["store"] = serde_json::json!(label);
            emit(args.format, String::new(), &j, String::new());
        } else {
            emit(args.format, r.to_table(), &r.to_json(), r.to_csv());
        }
    }
    if let Some(dir) = &args.out {
        let mut written = Vec::new();
        for (label, _, r) in &reports {
            let stem = if multi {
                format!("anisotropy-{}", slug(label))
            } else {
                "anisotropy".to_string()
            };
            written.extend(write_results(dir, &stem, &r.to_json(), &r.to_csv())?);
        }
        let mut fig = plot::figure1(figure1_panels(&reports));
        fig.footnote = synthetic_footnote(&stores);
        written.extend(plot::render_lines(
            &fig,
            &dir.join("figure1-anisotropy"),
            &[ImageFormat::Svg, ImageFormat::Png],
        )?);
        report_written(&written);
    }
    Ok(())
}

/// One panel per dataset; within it one line per modality × store, the first
/// store of a dataset dashed (the "before" checkpoint by convention).
pub fn figure1_panels(reports: &[(String, String, AnisotropyReport)]) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    let mut first_label: Vec<(String, String)> = Vec::new();
    for (label, dataset, r) in reports {
        let title = if dataset.is_empty() {
            "hidden states".to_string()
        } else {
            dataset.clone()
        };
        let idx = match panels.iter().position(|p| p.title == title) {
            Some(i) => i,
            None => {
                panels.push(Panel {
                    title: title.clone(),
                    series: Vec::new(),
                });
                first_label.push((title.clone(), label.clone()));
                panels.len() - 1
            }
        };
        let dashed = reports.len() > 1
            && first_label[idx].1 == *label
            && reports.iter().filter(|x| x.1 == *dataset).count() > 1;
        for (m, values, ci) in &r.modalities {
            panels[idx].series.push(Series {
                label: format!("{} ({label})", capitalise(m)),
                layers: r.layers.clone(),
                values: values.clone(),
                group: m.clone(),
                dashed,
                band: ci.as_ref().map(|c| {
                    (
                        c.iter().map(|x| x.lo).collect(),
                        c.iter().map(|x| x.hi).collect(),
                    )
                }),
            });
        }
    }
    panels
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
