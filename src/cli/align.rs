//! `geom kernel-align`: kernel alignment between two modalities per layer.

use std::path::PathBuf;

use anyhow::Context;

use super::common::{
    emit, open_stores, report_written, slug, synthetic_footnote, warn_if_synthetic, write_results,
    ModelSource, StoreArg,
};
use crate::error::GeomError;
use crate::layers::parse_layers;
use crate::metrics::alignment::{AlignOptions, Metric};
use crate::metrics::modes::{all_pairs, layerwise, StatsOptions};
use crate::plot::{self, Heatmap, ImageFormat, Series};
use crate::report::{AlignReport, AllPairsReport, Format};

/// Layerwise (layer i vs layer i) or all pairs (every layer vs every layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Layer i of a against layer i of b (the paper's Figure 2).
    Layerwise,
    /// Every layer of a against every layer of b, with the best pair.
    AllPairs,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Store(s) as [LABEL=]PATH; repeat to compare checkpoints (one curve each).
    /// Without --store, the embedded demo pair is used.
    #[arg(long = "store", value_name = "[LABEL=]PATH")]
    stores: Vec<StoreArg>,
    #[command(flatten)]
    source: ModelSource,
    /// First modality.
    #[arg(long, default_value = "image")]
    a: String,
    /// Second modality.
    #[arg(long, default_value = "text")]
    b: String,
    /// Metric: mutual-knn, jaccard-knn, cycle-knn, lcs-knn, edit-distance-knn,
    /// cka, cka-rbf, unbiased-cka, cknna, svcca.
    #[arg(long, default_value = "mutual-knn")]
    metric: String,
    /// Neighbours per item (kNN family, cknna).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Layers: all, a list 0,5,10, a range 0..12, negative -1 (last).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    layers: String,
    /// Layers of b in all-pairs mode (default: same as --layers).
    #[arg(long, allow_hyphen_values = true)]
    layers_b: Option<String>,
    /// Layerwise or all-pairs.
    #[arg(long, value_enum, default_value_t = Mode::Layerwise)]
    mode: Mode,
    /// L2-normalise rows first (default: true for the kNN family, false otherwise).
    #[arg(long)]
    normalize: Option<bool>,
    /// Clamp |x| at this quantile before normalising (platonic-rep used 0.95).
    #[arg(long, value_name = "Q")]
    clamp: Option<f64>,
    /// RBF bandwidth for cka-rbf.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// Subspace dimension for svcca.
    #[arg(long, default_value_t = 10)]
    cca_dim: usize,
    /// Seeded permutations for a p-value per layer (kNN family; 0 = none).
    #[arg(long, default_value_t = 0)]
    permutations: usize,
    /// Bootstrap resamples for a confidence interval per layer (0 = none).
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Confidence level of the bootstrap interval.
    #[arg(long, default_value_t = 0.95)]
    ci: f64,
    /// Seed of permutations and bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Directory for results (<metric>.json/.csv) and the figure.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let metric: Metric = args.metric.parse()?;
    if !(0.0 < args.ci && args.ci < 1.0) {
        return Err(GeomError::invalid(format!("--ci {} must be in (0, 1)", args.ci)).into());
    }
    if let Some(q) = args.clamp {
        if !(0.0 < q && q <= 1.0) {
            return Err(GeomError::invalid(format!("--clamp {q} must be in (0, 1]")).into());
        }
    }
    let opts = AlignOptions {
        k: args.k,
        normalize: args.normalize,
        clamp_q: args.clamp,
        rbf_sigma: args.sigma,
        cca_dim: args.cca_dim,
    };
    let stats = StatsOptions {
        permutations: args.permutations,
        bootstrap: args.bootstrap,
        ci_level: args.ci,
        seed: args.seed,
    };
    let k = metric.uses_k().then_some(args.k);
    let stores = open_stores(
        &args.source.with_stores(&args.stores)?,
        &args.source.extraction,
    )?;
    let multi = stores.len() > 1;
    let mut written = Vec::new();
    let mut curves = Vec::new();
    for (label, store) in &stores {
        warn_if_synthetic(label, store);
        let (ia, ib) = (store.modality(&args.a)?, store.modality(&args.b)?);
        let side_a = format!("{}:{}", store.path().display(), args.a);
        GeomError::check_rows(&side_a, ia.rows_done, &args.b, ib.rows_done)?;
        if metric.uses_k() {
            crate::metrics::knn::check_k(args.k, ia.rows_done)?;
        }
        let layers_a = parse_layers(&args.layers, ia.n_layers)?;
        let load_a = |l: usize| store.read_layer(&args.a, l);
        let load_b = |l: usize| store.read_layer(&args.b, l);
        let ctx = || {
            format!(
                "{}: {} between '{}' and '{}'",
                store.path().display(),
                metric,
                args.a,
                args.b
            )
        };
        let bar = progress_bar(match args.mode {
            Mode::Layerwise => layers_a.len(),
            Mode::AllPairs => layers_a.len() * 2,
        });
        match args.mode {
            Mode::Layerwise => {
                for &l in &layers_a {
                    if l >= ib.n_layers {
                        return Err(GeomError::LayerOutOfRange {
                            layer: l as i64,
                            n_layers: ib.n_layers,
                        }
                        .into());
                    }
                }
                let result = layerwise(metric, &opts, &stats, &layers_a, load_a, load_b, |_| {
                    bar.inc(1)
                })
                .with_context(ctx)?;
                bar.finish_and_clear();
                let report = AlignReport {
                    metric: metric.name().to_string(),
                    k,
                    a: args.a.clone(),
                    b: args.b.clone(),
                    layer_names: layers_a
                        .iter()
                        .map(|&l| ia.layer_names[l].clone())
                        .collect(),
                    result,
                };
                let stem = stem(metric, multi, label);
                let (json, csv) = (report.to_json(), report.to_csv());
                written.extend(output(
                    &args,
                    multi,
                    label,
                    &stem,
                    report.to_table(),
                    json,
                    csv,
                )?);
                curves.push(Series {
                    label: label.clone(),
                    layers: report.result.layers.clone(),
                    values: report.result.values.clone(),
                    group: label.clone(),
                    dashed: false,
                    band: report.result.ci.as_ref().map(|c| {
                        (
                            c.iter().map(|x| x.lo).collect(),
                            c.iter().map(|x| x.hi).collect(),
                        )
                    }),
                });
            }
            Mode::AllPairs => {
                let layers_b = parse_layers(
                    args.layers_b.as_deref().unwrap_or(&args.layers),
                    ib.n_layers,
                )?;
                let result = all_pairs(metric, &opts, &layers_a, &layers_b, load_a, load_b, |_| {
                    bar.inc(1)
                })
                .with_context(ctx)?;
                bar.finish_and_clear();
                let report = AllPairsReport {
                    metric: metric.name().to_string(),
                    k,
                    a: args.a.clone(),
                    b: args.b.clone(),
                    result,
                };
                let s = stem(metric, multi, label) + "-all-pairs";
                let (json, csv) = (report.to_json(), report.to_csv());
                written.extend(output(
                    &args,
                    multi,
                    label,
                    &s,
                    report.to_table(),
                    json,
                    csv,
                )?);
                if let Some(dir) = &args.out {
                    let r = &report.result;
                    let hm = Heatmap {
                        title: format!(
                            "{} ({label}): {} layer × {} layer",
                            metric.name(),
                            args.a,
                            args.b
                        ),
                        a_label: format!("{} layer", args.a),
                        b_label: format!("{} layer", args.b),
                        a_layers: r.layers_a.clone(),
                        b_layers: r.layers_b.clone(),
                        matrix: r
                            .matrix
                            .rows()
                            .into_iter()
                            .map(|row| row.to_vec())
                            .collect(),
                        best: Some((
                            r.layers_a.iter().position(|&l| l == r.best.0).unwrap_or(0),
                            r.layers_b.iter().position(|&l| l == r.best.1).unwrap_or(0),
                        )),
                    };
                    written.extend(plot::render_heatmap(
                        &hm,
                        &dir.join(s),
                        &[ImageFormat::Svg, ImageFormat::Png],
                    )?);
                }
            }
        }
    }
    if let (Some(dir), false) = (&args.out, curves.is_empty()) {
        let label = match k {
            Some(k) => format!("{} (k = {k})", pretty(metric)),
            None => pretty(metric).to_string(),
        };
        let mut fig = plot::figure2(
            &format!("{} – {} alignment per layer", args.a, args.b),
            &label,
            curves,
        );
        fig.footnote = synthetic_footnote(&stores);
        written.extend(plot::render_lines(
            &fig,
            &dir.join(format!("figure2-{}", metric.name())),
            &[ImageFormat::Svg, ImageFormat::Png],
        )?);
    }
    report_written(&written);
    Ok(())
}

fn stem(metric: Metric, multi: bool, label: &str) -> String {
    if multi {
        format!("{}-{}", metric.name(), slug(label))
    } else {
        metric.name().to_string()
    }
}

/// Prints one store's result and, with `--out`, writes `<stem>.json/.csv`.
fn output(
    args: &Args,
    multi: bool,
    label: &str,
    stem: &str,
    table: String,
    mut json: serde_json::Value,
    csv: String,
) -> anyhow::Result<Vec<PathBuf>> {
    if multi && args.format == Format::Table {
        println!("== {label} ==");
    }
    if multi {
        json["store"] = serde_json::json!(label);
    }
    let written = match &args.out {
        Some(dir) => write_results(dir, stem, &json, &csv)?,
        None => Vec::new(),
    };
    emit(args.format, table, &json, csv);
    Ok(written)
}

fn pretty(metric: Metric) -> &'static str {
    match metric {
        Metric::MutualKnn => "Mutual kNN alignment",
        Metric::JaccardKnn => "Jaccard kNN alignment",
        Metric::CycleKnn => "Cycle kNN alignment",
        Metric::LcsKnn => "LCS kNN alignment",
        Metric::EditDistanceKnn => "Edit-distance kNN alignment",
        Metric::Cka => "Linear CKA",
        Metric::CkaRbf => "RBF CKA",
        Metric::UnbiasedCka => "Unbiased CKA",
        Metric::Cknna => "CKNNA",
        Metric::Svcca => "SVCCA",
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} layers {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
