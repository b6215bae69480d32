//! `geom figure CONFIG.toml`: the paper's figures (and figures like them)
//! from a config naming checkpoints (or stores) and paired datasets —
//! `configs/figures/figure1.toml` (anisotropy, one panel per dataset),
//! `configs/figures/figure2.toml` (mutual-kNN alignment, one curve per
//! checkpoint), `configs/figures/demo.toml` (the embedded demo).
//!
//! Checkpoints are extracted into the cache on first use (as with
//! `--model`), so re-drawing a figure costs only the analysis.
//!
//! ```toml
//! title = "Vision–language alignment before and after text-only CL"
//! kind = "kernel-align"          # or "anisotropy"
//! pairs = "pixmo"                # one panel; or [[panels]] with pairs/title/modalities
//! layers = "all"
//! [[models]]
//! label = "Qwen2.5-VL-3B"
//! path = "${GEOM_MODELS}/Qwen2.5-VL-3B-Instruct"   # a checkpoint folder or a store .h5
//! group = "3B"                   # same colour for a model and its CL version
//! dashed = true                  # before CL
//! ```
//!
//! Paths take `${VAR}`, `$VAR` and `~/`; relative paths are relative to
//! the current folder, as on the command line; `demo:before` and
//! `demo:after` are the embedded demo's checkpoints.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::common::{report_written, synthetic_footnote, write_file};
use crate::error::{GeomError, Result};
use crate::layers::parse_layers;
use crate::metrics::anisotropy::{anisotropy, ZeroNorm};
use crate::metrics::{align, AlignOptions, Metric};
use crate::plot::{self, ImageFormat, LineFigure, Panel, Series};
use crate::report::{table, Format};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The figure config (see configs/figures/*.toml).
    config: PathBuf,
    /// Output stem (default: the config's `out`, else figures/<config name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device for checkpoint folders (overrides the config's): cpu, cpu:flex, cpu:ndarray, cuda, cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Cache of extracted stores (default $GEOM_CACHE, else $XDG_CACHE_HOME/geom, else ~/.cache/geom).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// table, json or csv on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// What a figure plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    /// Mean pairwise cosine per layer, one curve per modality × model.
    Anisotropy,
    /// Alignment of two modalities per layer, one curve per model.
    KernelAlign,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FigureConfig {
    title: Option<String>,
    kind: Kind,
    /// Shorthand for a single panel on these pairs.
    pairs: Option<String>,
    #[serde(default)]
    panels: Vec<PanelConfig>,
    #[serde(default = "all")]
    layers: String,
    #[serde(default = "mutual_knn")]
    metric: String,
    #[serde(default = "ten")]
    k: usize,
    a: Option<String>,
    b: Option<String>,
    out: Option<String>,
    #[serde(default = "svg_png")]
    formats: Vec<String>,
    #[serde(default = "cpu")]
    device: String,
    #[serde(default = "eight")]
    batch_size: usize,
    models: Vec<ModelConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelConfig {
    title: Option<String>,
    pairs: String,
    /// Anisotropy: the modalities to draw (default: all in the store).
    modalities: Option<Vec<String>>,
    /// Kernel alignment: the two modalities (default: the figure's, else image and text).
    a: Option<String>,
    b: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    label: String,
    path: String,
    group: Option<String>,
    #[serde(default)]
    dashed: bool,
}

fn all() -> String {
    "all".into()
}
fn mutual_knn() -> String {
    "mutual_knn".into()
}
fn ten() -> usize {
    10
}
fn eight() -> usize {
    8
}
fn cpu() -> String {
    "cpu".into()
}
fn svg_png() -> Vec<String> {
    vec!["svg".into(), "png".into()]
}

/// One curve of a panel.
struct Curve {
    label: String,
    group: String,
    dashed: bool,
    layers: Vec<usize>,
    values: Vec<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|source| GeomError::Io {
        path: args.config.clone(),
        source,
    })?;
    let cfg: FigureConfig = toml::from_str(&text).map_err(|e| GeomError::toml(&name, &text, &e))?;
    let panels = panels_of(&cfg, &name)?;
    if cfg.models.is_empty() {
        return Err(GeomError::invalid(format!("{name}: no [[models]]")).into());
    }
    let metric: Metric = cfg
        .metric
        .parse()
        .map_err(|e| GeomError::invalid(format!("{name}: metric: {e}")))?;
    let formats = cfg
        .formats
        .iter()
        .map(|f| ImageFormat::parse(f))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| GeomError::invalid(format!("{name}: formats: {e}")))?;
    let models: Vec<(ModelConfig, PathBuf)> = cfg
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Ok((
                m.clone(),
                expand_path(&m.path, &format!("{name}: models[{i}].path"))?,
            ))
        })
        .collect::<Result<_>>()?;
    let device = args.device.clone().unwrap_or_else(|| cfg.device.clone());

    let mut drawn = Vec::new();
    let mut all_stores = Vec::new();
    for p in &panels {
        let mut curves = Vec::new();
        for (m, path) in &models {
            let store_path = store_of(
                path,
                &m.label,
                &p.pairs,
                &device,
                cfg.batch_size,
                args.cache_dir.as_deref(),
            )?;
            let store = Store::open(&store_path)?;
            match cfg.kind {
                Kind::Anisotropy => {
                    let modalities = match &p.modalities {
                        Some(ms) => ms.clone(),
                        None => store.modality_names(),
                    };
                    for md in &modalities {
                        let info = store.modality(md)?;
                        let layers = parse_layers(&cfg.layers, info.n_layers)?;
                        let values = layers
                            .iter()
                            .map(|&l| anisotropy(store.read_layer(md, l)?.view(), ZeroNorm::Error))
                            .collect::<Result<Vec<_>>>()?;
                        curves.push(Curve {
                            label: format!("{md}, {}", m.label),
                            group: md.clone(),
                            dashed: m.dashed,
                            layers,
                            values,
                        });
                    }
                }
                Kind::KernelAlign => {
                    let (a, b) = pair_of(p, &cfg, &store)?;
                    let n_layers = store
                        .modality(&a)?
                        .n_layers
                        .min(store.modality(&b)?.n_layers);
                    let layers = parse_layers(&cfg.layers, n_layers)?;
                    let opts = AlignOptions {
                        k: cfg.k,
                        ..Default::default()
                    };
                    let values = layers
                        .iter()
                        .map(|&l| {
                            let (x, y) = (store.read_layer(&a, l)?, store.read_layer(&b, l)?);
                            align(metric, x.view(), y.view(), &opts)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    curves.push(Curve {
                        label: m.label.clone(),
                        group: m.group.clone().unwrap_or_else(|| m.label.clone()),
                        dashed: m.dashed,
                        layers,
                        values,
                    });
                }
            }
            all_stores.push((m.label.clone(), store));
        }
        drawn.push((p.clone(), curves));
    }

    // stdout: one table per panel (layers as rows, curves as columns).
    let j = json!({
        "config": name,
        "kind": match cfg.kind { Kind::Anisotropy => "anisotropy", Kind::KernelAlign => "kernel-align" },
        "metric": (cfg.kind == Kind::KernelAlign).then(|| metric.to_string()),
        "k": cfg.k,
        "panels": drawn.iter().map(|(p, curves)| json!({
            "title": panel_title(p),
            "pairs": p.pairs,
            "curves": curves.iter().map(|c| json!({
                "label": c.label, "layers": c.layers, "values": c.values,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut csv = String::from("panel,curve,layer,value\n");
    for (p, curves) in &drawn {
        for c in curves {
            for (l, v) in c.layers.iter().zip(&c.values) {
                csv.push_str(&format!(
                    "{},{},{l},{v}\n",
                    csv_field(&panel_title(p)),
                    csv_field(&c.label)
                ));
            }
        }
    }
    match args.format {
        Format::Json => println!("{j}"),
        Format::Csv => print!("{csv}"),
        Format::Table => {
            for (p, curves) in &drawn {
                println!("{}", panel_title(p));
                let max_layer = curves
                    .iter()
                    .flat_map(|c| c.layers.iter().copied())
                    .max()
                    .unwrap_or(0);
                let mut headers = vec!["layer".to_string()];
                headers.extend(curves.iter().map(|c| c.label.clone()));
                let rows: Vec<Vec<String>> = (0..=max_layer)
                    .filter(|l| curves.iter().any(|c| c.layers.contains(l)))
                    .map(|l| {
                        let mut r = vec![l.to_string()];
                        for c in curves {
                            r.push(match c.layers.iter().position(|&x| x == l) {
                                Some(i) => format!("{:.4}", c.values[i]),
                                None => String::new(),
                            });
                        }
                        r
                    })
                    .collect();
                print!("{}", table(&headers, &rows));
            }
        }
    }

    // Files: the figure, its numbers.
    let stem = match (&args.out, &cfg.out) {
        (Some(o), _) => o.clone(),
        (None, Some(o)) => expand_path(o, &format!("{name}: out"))?,
        (None, None) => PathBuf::from("figures").join(
            args.config
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "figure".into()),
        ),
    };
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| GeomError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let fig = LineFigure {
        title: cfg.title.clone(),
        x_label: "Layer".into(),
        y_label: match cfg.kind {
            Kind::Anisotropy => "Anisotropy (mean pairwise cosine)".into(),
            Kind::KernelAlign if metric == Metric::MutualKnn => {
                format!("Mutual kNN alignment (k = {})", cfg.k)
            }
            Kind::KernelAlign => format!("{metric} alignment"),
        },
        panels: drawn
            .iter()
            .map(|(p, curves)| Panel {
                title: if drawn.len() > 1 {
                    panel_title(p)
                } else {
                    String::new()
                },
                series: curves
                    .iter()
                    .map(|c| {
                        Series::new(c.label.clone(), c.layers.clone(), c.values.clone())
                            .with_group(c.group.clone())
                            .with_dashed(c.dashed)
                    })
                    .collect(),
            })
            .collect(),
        footnote: synthetic_footnote(&all_stores),
    };
    let mut written = plot::render_lines(&fig, &stem, &formats)?;
    let jp = ImageFormat::Svg.path_for(&stem).with_extension("json");
    let cp = jp.with_extension("csv");
    write_file(&jp, &serde_json::to_string_pretty(&j)?)?;
    write_file(&cp, &csv)?;
    written.extend([jp, cp]);
    report_written(&written);
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn panel_title(p: &PanelConfig) -> String {
    p.title.clone().unwrap_or_else(|| p.pairs.clone())
}

/// The config's panels: `[[panels]]`, or one from the top-level `pairs`.
fn panels_of(cfg: &FigureConfig, name: &str) -> Result<Vec<PanelConfig>> {
    match (&cfg.pairs, cfg.panels.is_empty()) {
        (Some(_), false) => Err(GeomError::invalid(format!(
            "{name}: give either `pairs` (one panel) or [[panels]], not both"
        ))),
        (None, true) => Err(GeomError::invalid(format!(
            "{name}: no data: give `pairs = \"pixmo\"` (a preset, manifest or store's dataset) or [[panels]]"
        ))),
        (Some(p), true) => Ok(vec![PanelConfig {
            title: None,
            pairs: p.clone(),
            modalities: None,
            a: None,
            b: None,
        }]),
        (None, false) => Ok(cfg.panels.clone()),
    }
}

/// The two modalities a kernel-alignment panel compares.
fn pair_of(p: &PanelConfig, cfg: &FigureConfig, store: &Store) -> Result<(String, String)> {
    let a = p.a.clone().or_else(|| cfg.a.clone());
    let b = p.b.clone().or_else(|| cfg.b.clone());
    match (a, b) {
        (Some(a), Some(b)) => Ok((a, b)),
        (None, None) => {
            let ms = store.modality_names();
            if ms.iter().any(|m| m == "image") && ms.iter().any(|m| m == "text") {
                Ok(("image".into(), "text".into()))
            } else if ms.len() >= 2 {
                Ok((ms[0].clone(), ms[1].clone()))
            } else {
                Err(GeomError::invalid(format!(
                    "{}: kernel alignment needs two modalities, the store has {}",
                    store.path().display(),
                    ms.join(", ")
                )))
            }
        }
        _ => Err(GeomError::invalid("give both `a` and `b`, or neither")),
    }
}

/// `${VAR}`, `$VAR` and a leading `~/` expanded; `what` names the field in errors.
fn expand_path(s: &str, what: &str) -> Result<PathBuf> {
    let mut out = String::new();
    let mut rest = s;
    if let Some(r) = rest.strip_prefix("~/") {
        let home = std::env::var("HOME").map_err(|_| {
            GeomError::invalid(format!("{what}: '{s}' starts with ~/ but HOME is not set"))
        })?;
        out.push_str(&home);
        out.push('/');
        rest = r;
    }
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (var, tail) = if let Some(b) = after.strip_prefix('{') {
            let end = b
                .find('}')
                .ok_or_else(|| GeomError::invalid(format!("{what}: '{s}' has an unclosed ${{")))?;
            (&b[..end], &b[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if var.is_empty() {
            return Err(GeomError::invalid(format!(
                "{what}: '{s}' has a '$' without a variable name"
            )));
        }
        let value = std::env::var(var).map_err(|_| {
            GeomError::invalid(format!(
                "{what}: '{s}' uses ${var}, which is not set (export {var}=/path/to/folder)"
            ))
        })?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

/// The store of one model on one panel's pairs: the path itself when it is
/// a store, else the checkpoint's cached extraction.
fn store_of(
    path: &Path,
    label: &str,
    pairs: &str,
    device: &str,
    batch_size: usize,
    cache: Option<&Path>,
) -> Result<PathBuf> {
    if path.extension().is_some_and(|e| e == "h5") {
        return Ok(path.to_path_buf());
    }
    checkpoint_store(path, label, pairs, device, batch_size, cache)
}

#[cfg(feature = "model")]
fn checkpoint_store(
    path: &Path,
    label: &str,
    pairs: &str,
    device: &str,
    batch_size: usize,
    cache: Option<&Path>,
) -> Result<PathBuf> {
    use crate::data::cache::{cached_store, CacheOptions};
    let s = path.to_string_lossy();
    let dir = match s.strip_prefix("demo:") {
        Some(which) => {
            let demo = crate::data::demo::Demo::materialize()?;
            match which {
                "before" => demo.before().0,
                "after" => demo.after().0,
                other => {
                    return Err(GeomError::invalid(format!(
                        "'{s}': the demo has 'demo:before' and 'demo:after', not '{other}'"
                    )))
                }
            }
        }
        None => path.to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(GeomError::invalid(format!(
            "{label}: {} is neither a checkpoint folder nor a store (.h5)",
            dir.display()
        )));
    }
    let opts = CacheOptions {
        device: device.parse()?,
        batch_size,
        cache_dir: cache.map(Path::to_path_buf),
        verbose: true,
    };
    cached_store(&dir, label, pairs, &opts)
}

#[cfg(not(feature = "model"))]
fn checkpoint_store(
    path: &Path,
    _label: &str,
    _pairs: &str,
    _device: &str,
    _batch_size: usize,
    _cache: Option<&Path>,
) -> Result<PathBuf> {
    Err(GeomError::invalid(format!(
        "{}: checkpoint folders need geom built with the `model` feature (the default)",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_variables_and_home() {
        std::env::set_var("GEOM_TEST_MODELS", "/m");
        assert_eq!(
            expand_path("${GEOM_TEST_MODELS}/3B", "x").unwrap(),
            PathBuf::from("/m/3B")
        );
        assert_eq!(
            expand_path("$GEOM_TEST_MODELS/7B-CL", "x").unwrap(),
            PathBuf::from("/m/7B-CL")
        );
        assert_eq!(
            expand_path("plain/dir", "x").unwrap(),
            PathBuf::from("plain/dir")
        );
        let e = expand_path("${GEOM_SURELY_UNSET_VAR}/x", "figure2.toml: models[0].path")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models[0].path") && e.contains("GEOM_SURELY_UNSET_VAR"),
            "{e}"
        );
        assert!(expand_path("${OPEN", "x").is_err());
    }

    #[test]
    fn the_shipped_configs_parse() {
        for f in ["figure1.toml", "figure2.toml", "demo.toml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("configs/figures")
                .join(f);
            let cfg: FigureConfig = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(!panels_of(&cfg, f).unwrap().is_empty());
            assert!(cfg.metric.parse::<Metric>().is_ok());
        }
    }
}
