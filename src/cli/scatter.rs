//! `geom scatter`: the paper's Figure 3 as measured data — both modalities'
//! pooled hidden states at one layer, projected to a plane with PCA, before
//! and after CL side by side, with how well the plane keeps neighbourhoods
//! (trustworthiness) and how far apart the modalities sit (the gap).

use std::path::PathBuf;

use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use serde_json::{json, Value};

use super::common::{
    open_stores, report_written, synthetic_footnote, warn_if_synthetic, write_file, Extraction,
    StoreArg,
};
use crate::error::GeomError;
use crate::layers::resolve;
use crate::metrics::projection::{pca, trustworthiness};
use crate::plot::{self, ImageFormat, ScatterFigure, ScatterGroup, ScatterPanel};
use crate::report::{table, Format};
use crate::store::Store;

/// What `--help` says after the options: the quantities printed.
const AFTER_HELP: &str = "\
Printed per panel (and per modality with --basis separate):
  PC1, PC2   fraction of the variance of the fitted rows along each component
  trust (k)  trustworthiness of the plane (sklearn.manifold.trustworthiness, Euclidean):
             1 = every point's k nearest neighbours in the plane are among its nearest
             in the hidden space; about 0.5 for a random placement
  gap        distance between the two modalities' centroids in the plane, divided by
             the spread (root-mean-square distance of the points to their own modality's
             centroid): 0 = the clouds share a centre, above ~2 = two separate clouds.
             Joint basis only.";

/// Which rows the PCA basis is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Basis {
    /// One basis per panel fitted on both modalities together (the gap shows).
    Joint,
    /// One basis per modality (each cloud's own shape; no common plane, no gap).
    Separate,
}

impl Basis {
    fn name(self) -> &'static str {
        match self {
            Basis::Joint => "joint",
            Basis::Separate => "separate",
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The checkpoint before: a store (.h5), or a checkpoint folder with --pairs. With no
    /// --before/--after/--store: the embedded demo pair.
    #[arg(long, value_name = "[LABEL=]PATH", requires = "after")]
    before: Option<StoreArg>,
    /// The checkpoint after, on the same pairs: a store, or a checkpoint folder with --pairs.
    #[arg(long, value_name = "[LABEL=]PATH", requires = "before")]
    after: Option<StoreArg>,
    /// A single store (or checkpoint folder with --pairs): one panel.
    #[arg(long, value_name = "[LABEL=]PATH", conflicts_with_all = ["before", "after"])]
    store: Option<StoreArg>,
    #[command(flatten)]
    extraction: Extraction,
    /// Layer to project; negative counts from the end (-1: the last).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    layer: i64,
    /// First modality (default: image and text when present, else the first two).
    #[arg(long)]
    a: Option<String>,
    /// Second modality.
    #[arg(long)]
    b: Option<String>,
    /// Neighbours for trustworthiness (below half the points fitted together).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// At most this many rows per modality: a seeded random subset, the same rows (pairs) in every panel. 0: all.
    #[arg(long, default_value_t = 1000)]
    max_points: usize,
    /// Seed of the subset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// PCA basis: joint (both modalities together, per panel) or separate (one per modality).
    #[arg(long, value_enum, default_value_t = Basis::Joint)]
    basis: Basis,
    /// table, json or csv.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Directory for scatter.json and scatter_layerL.{svg,png}.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One PCA fit of a panel: both modalities (joint) or one (separate).
struct Fit {
    /// `"image+text"` or a modality.
    name: String,
    ratio: [f64; 2],
    trust: f64,
    gap: Option<f64>,
}

/// One panel: a store's two clouds in the plane.
struct PanelResult {
    label: String,
    store: PathBuf,
    fits: Vec<Fit>,
    /// `[m, 2]` coordinates of a's rows and of b's rows.
    coords: [Array2<f64>; 2],
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let given: Vec<StoreArg> = match (&args.store, &args.before, &args.after) {
        (Some(s), None, None) => vec![s.clone()],
        (None, Some(b), Some(a)) => vec![b.clone(), a.clone()],
        _ => Vec::new(),
    };
    if args.extraction.pairs.is_some() && !given.iter().any(|s| s.path.is_dir()) {
        return Err(GeomError::invalid(
            "--pairs applies to checkpoint folders, but every side given is a store (or none is given)",
        )
        .into());
    }
    let mut sides = Vec::new();
    for side in &given {
        if side.path.is_dir() {
            sides.extend(args.extraction.stores_of(std::slice::from_ref(side))?);
        } else {
            sides.push(side.clone());
        }
    }
    let stores = open_stores(&sides, &args.extraction)?;
    for (label, store) in &stores {
        warn_if_synthetic(label, store);
    }
    let (a, b) = modality_pair(&stores[0].1, args.a.as_deref(), args.b.as_deref())?;
    let (layer, layer_name, n) = check_stores(&stores, &a, &b, args.layer)?;
    let rows = subset(n, args.max_points, args.seed);
    let m = rows.len();
    let ids: Vec<String> = {
        let all = stores[0].1.ids(&a)?;
        rows.iter().map(|&r| all[r].clone()).collect()
    };
    let mut panels = Vec::new();
    for (label, store) in &stores {
        let read = |modality: &str| -> anyhow::Result<Array2<f32>> {
            Ok(store.read_layer(modality, layer)?.select(Axis(0), &rows))
        };
        let (xa, xb) = (read(&a)?, read(&b)?);
        let in_panel = |e: GeomError| anyhow::Error::from(e).context(format!("panel '{label}'"));
        let (fits, coords) = match args.basis {
            Basis::Joint => joint(&a, &b, xa.view(), xb.view(), args.k).map_err(in_panel)?,
            Basis::Separate => {
                let fa = single(&a, xa.view(), args.k).map_err(in_panel)?;
                let fb = single(&b, xb.view(), args.k).map_err(in_panel)?;
                (vec![fa.0, fb.0], [fa.1, fb.1])
            }
        };
        panels.push(PanelResult {
            label: label.clone(),
            store: store.path().to_path_buf(),
            fits,
            coords,
        });
    }

    // Outputs.
    let j = json!({
        "metric": "scatter",
        "basis": args.basis.name(),
        "layer": layer,
        "layer_name": layer_name,
        "a": a,
        "b": b,
        "k": args.k,
        "seed": args.seed,
        "rows": rows,
        "ids": ids,
        "panels": panels.iter().map(|p| json!({
            "label": p.label,
            "store": p.store,
            "fits": p.fits.iter().map(|f| json!({
                "fit": f.name,
                "explained_variance_ratio": [num(f.ratio[0]), num(f.ratio[1])],
                "trustworthiness": num(f.trust),
                "gap": f.gap.map_or(Value::Null, num),
            })).collect::<Vec<_>>(),
            "points": {
                a.as_str(): xy_json(&p.coords[0]),
                b.as_str(): xy_json(&p.coords[1]),
            },
        })).collect::<Vec<_>>(),
    });
    let headers: Vec<String> = [
        "panel",
        "layer",
        "fit",
        "rows",
        "PC1",
        "PC2",
        &format!("trust (k={})", args.k),
        "gap",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut table_rows = Vec::new();
    let mut csv = String::from("panel,layer,fit,rows,pc1_ratio,pc2_ratio,k,trustworthiness,gap\n");
    for p in &panels {
        for f in &p.fits {
            let gap = f.gap.map_or("-".to_string(), |g| format!("{g:.3}"));
            table_rows.push(vec![
                p.label.clone(),
                layer.to_string(),
                f.name.clone(),
                m.to_string(),
                format!("{:.4}", f.ratio[0]),
                format!("{:.4}", f.ratio[1]),
                format!("{:.4}", f.trust),
                gap,
            ]);
            csv.push_str(&format!(
                "{},{layer},{},{m},{},{},{},{},{}\n",
                csv_field(&p.label),
                f.name,
                f.ratio[0],
                f.ratio[1],
                args.k,
                f.trust,
                f.gap.map_or(String::new(), |g| g.to_string())
            ));
        }
    }
    match args.format {
        Format::Table => print!("{}", table(&headers, &table_rows)),
        Format::Json => println!("{j}"),
        Format::Csv => print!("{csv}"),
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| GeomError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut written = vec![dir.join("scatter.json")];
        write_file(&written[0], &serde_json::to_string_pretty(&j)?)?;
        let title = format!(
            "Layer {layer} ({layer_name}): {a} and {b}, PCA ({} basis)",
            args.basis.name()
        );
        let fig = ScatterFigure {
            title: Some(title),
            panels: panels
                .iter()
                .map(|p| figure_panel(p, &a, &b, args.k))
                .collect(),
            // Separate bases centre each cloud on its own origin: no centroid to show.
            centroids: args.basis == Basis::Joint,
            footnote: synthetic_footnote(&stores),
        };
        written.extend(plot::render_scatter(
            &fig,
            &dir.join(format!("scatter_layer{layer}")),
            &[ImageFormat::Svg, ImageFormat::Png],
        )?);
        report_written(&written);
    }
    Ok(())
}

/// The two modalities: both given, or image and text when present, else
/// the first two of the store.
fn modality_pair(
    store: &Store,
    a: Option<&str>,
    b: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let names = store.modality_names();
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a.to_string(), b.to_string()),
        (None, None) => {
            let has = |n: &str| names.iter().any(|m| m == n);
            if has("image") && has("text") {
                ("image".to_string(), "text".to_string())
            } else if names.len() >= 2 {
                (names[0].clone(), names[1].clone())
            } else {
                return Err(GeomError::invalid(format!(
                    "{} holds only {}; scatter draws two modalities",
                    store.path().display(),
                    names.join(", ")
                ))
                .into());
            }
        }
        _ => return Err(GeomError::invalid("give both --a and --b, or neither").into()),
    };
    if a == b {
        return Err(
            GeomError::invalid(format!("--a and --b are both '{a}'; give two modalities")).into(),
        );
    }
    Ok((a, b))
}

/// Checks that every store holds both modalities with the same depth and
/// the same paired rows; returns the resolved layer, its name and the rows.
fn check_stores(
    stores: &[(String, Store)],
    a: &str,
    b: &str,
    layer: i64,
) -> anyhow::Result<(usize, String, usize)> {
    let first = stores[0].1.modality(a)?;
    let l = resolve(layer, first.n_layers)?;
    for (label, store) in stores {
        let (x, y) = (store.modality(a)?, store.modality(b)?);
        if x.rows_done != y.rows_done {
            return Err(GeomError::invalid(format!(
                "'{a}' has {} rows but '{b}' has {} in {}; scatter draws paired rows \
                 (row i of both modalities is one pair)",
                x.rows_done,
                y.rows_done,
                store.path().display()
            ))
            .into());
        }
        for info in [x, y] {
            if info.n_layers != first.n_layers {
                return Err(GeomError::invalid(format!(
                    "'{}' has {} layers in {} but '{a}' has {} in {}; the panels need the same model depth",
                    info.name,
                    info.n_layers,
                    store.path().display(),
                    first.n_layers,
                    stores[0].1.path().display()
                ))
                .into());
            }
        }
        if x.rows_done != first.rows_done {
            return Err(GeomError::invalid(format!(
                "'{label}' ({}) has {} pairs but '{}' ({}) has {}; the panels must show the same pairs",
                store.path().display(),
                x.rows_done,
                stores[0].0,
                stores[0].1.path().display(),
                first.rows_done
            ))
            .into());
        }
    }
    Ok((l, first.layer_names[l].clone(), first.rows_done))
}

/// `max` of `n` row indices, a seeded random subset in increasing order
/// (all of them when `max` is 0 or at least `n`).
fn subset(n: usize, max: usize, seed: u64) -> Vec<usize> {
    if max == 0 || max >= n {
        return (0..n).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, n, max).into_vec();
    rows.sort_unstable();
    rows
}

/// Both modalities in one basis: stacked `[a; b]` rows, PCA, trustworthiness of
/// all points together, and the gap between the two centroids.
fn joint(
    a: &str,
    b: &str,
    xa: ArrayView2<f32>,
    xb: ArrayView2<f32>,
    k: usize,
) -> crate::Result<(Vec<Fit>, [Array2<f64>; 2])> {
    if xa.ncols() != xb.ncols() {
        return Err(GeomError::invalid(format!(
            "a joint basis needs equally wide hidden states, but '{a}' is {} wide and '{b}' {} \
             (use --basis separate)",
            xa.ncols(),
            xb.ncols()
        )));
    }
    let x = concatenate![Axis(0), xa, xb];
    let p = pca(x.view(), 2)?;
    let trust = trustworthiness(x.view(), p.coords.view(), k)?;
    let m = xa.nrows();
    let ca = p.coords.slice(ndarray::s![..m, ..]).to_owned();
    let cb = p.coords.slice(ndarray::s![m.., ..]).to_owned();
    let fit = Fit {
        name: format!("{a}+{b}"),
        ratio: [p.explained_variance_ratio[0], p.explained_variance_ratio[1]],
        trust,
        gap: Some(gap(ca.view(), cb.view())),
    };
    Ok((vec![fit], [ca, cb]))
}

/// One modality in its own basis.
fn single(name: &str, x: ArrayView2<f32>, k: usize) -> crate::Result<(Fit, Array2<f64>)> {
    let p = pca(x, 2)?;
    let trust = trustworthiness(x, p.coords.view(), k)?;
    let fit = Fit {
        name: name.to_string(),
        ratio: [p.explained_variance_ratio[0], p.explained_variance_ratio[1]],
        trust,
        gap: None,
    };
    Ok((fit, p.coords))
}

/// Distance between the centroids of two point sets in the plane, divided
/// by the root-mean-square distance of the points to their own centroid
/// (NaN when every point sits on its centroid).
pub fn gap(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let centroid = |p: ArrayView2<f64>| p.mean_axis(Axis(0)).expect("rows");
    let (ca, cb) = (centroid(a), centroid(b));
    let ss = |p: ArrayView2<f64>, c: &ndarray::Array1<f64>| -> f64 {
        p.axis_iter(Axis(0))
            .map(|r| {
                let d = &r - c;
                d.dot(&d)
            })
            .sum()
    };
    let spread = ((ss(a, &ca) + ss(b, &cb)) / (a.nrows() + b.nrows()) as f64).sqrt();
    let d = &ca - &cb;
    let dist = d.dot(&d).sqrt();
    if spread > 0.0 {
        dist / spread
    } else {
        f64::NAN
    }
}

/// The figure panel of a result: axis labels with the explained variance,
/// trustworthiness (and gap) in the subtitle.
fn figure_panel(p: &PanelResult, a: &str, b: &str, k: usize) -> ScatterPanel {
    let pct = |r: f64| format!("{:.1}%", 100.0 * r);
    let (x_label, y_label, subtitle) = match p.fits.as_slice() {
        [f] => (
            format!("PC1 ({})", pct(f.ratio[0])),
            format!("PC2 ({})", pct(f.ratio[1])),
            format!(
                "trustworthiness (k = {k}) = {:.3} · gap = {}",
                f.trust,
                f.gap.map_or("-".to_string(), |g| format!("{g:.2}"))
            ),
        ),
        fits => {
            let each = |c: usize| {
                fits.iter()
                    .map(|f| format!("{} {}", f.name, pct(f.ratio[c])))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let trust = fits
                .iter()
                .map(|f| format!("{} {:.3}", f.name, f.trust))
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!("PC1 ({})", each(0)),
                format!("PC2 ({})", each(1)),
                format!("trustworthiness (k = {k}): {trust}"),
            )
        }
    };
    let group = |name: &str, c: &Array2<f64>| {
        ScatterGroup::new(name, c.column(0).to_vec(), c.column(1).to_vec()).with_group(name)
    };
    ScatterPanel {
        title: p.label.clone(),
        subtitle,
        x_label,
        y_label,
        groups: vec![group(a, &p.coords[0]), group(b, &p.coords[1])],
    }
}

/// `{"x": [...], "y": [...]}` of `[m, 2]` coordinates.
fn xy_json(c: &Array2<f64>) -> Value {
    let col = |j: usize| c.column(j).iter().map(|&v| num(v)).collect::<Vec<_>>();
    json!({"x": col(0), "y": col(1)})
}

/// JSON number, with NaN / infinities as null.
fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// A CSV field, quoted when it holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn gap_is_centroid_distance_over_rms_spread() {
        // Two clouds of spread 1 (points at ±1 around each centre), centres 4 apart.
        let a = array![[-1.0, 0.0], [1.0, 0.0]];
        let b = array![[3.0, 0.0], [5.0, 0.0]];
        assert!((gap(a.view(), b.view()) - 4.0).abs() < 1e-12);
        // Same centre: 0. Every point on its centroid: undefined.
        assert_eq!(gap(a.view(), a.view()), 0.0);
        let p = array![[1.0, 1.0]];
        assert!(gap(p.view(), p.view()).is_nan());
    }

    #[test]
    fn subset_is_seeded_sorted_and_complete_when_small() {
        assert_eq!(subset(5, 0, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(subset(5, 9, 1), vec![0, 1, 2, 3, 4]);
        let s = subset(100, 10, 7);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s, subset(100, 10, 7));
        assert_ne!(s, subset(100, 10, 8));
    }
}
