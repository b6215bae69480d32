//! `geom plot`: figures from results written by `--format json` or `--out`.
//!
//! * anisotropy results → a Figure 1-style plot (one panel per file, or one
//!   panel for all files with `--one-panel`), one line per modality;
//! * layerwise alignment results → a Figure 2-style plot, one line per file;
//! * all-pairs results (with `"matrix"`) → a layer × layer heatmap.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::common::report_written;
use crate::error::GeomError;
use crate::plot::{self, Heatmap, ImageFormat, Panel, Series};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Result files as [LABEL=]FILE.json (the label names the line / panel).
    #[arg(required = true, value_name = "[LABEL=]FILE")]
    inputs: Vec<String>,
    /// Output path without extension; .svg and .png are written.
    #[arg(long)]
    out: PathBuf,
    /// Draw every anisotropy file in one panel (lines labelled by file).
    #[arg(long)]
    one_panel: bool,
    /// Mark the first anisotropy file's lines dashed (the "before" checkpoint).
    #[arg(long)]
    first_dashed: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    for item in &args.inputs {
        let (label, path) = match item.split_once('=') {
            Some((l, p)) if !l.contains('/') => (l.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(item);
                (
                    p.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    p,
                )
            }
        };
        docs.push((label, read_json(&path)?, path));
    }
    let formats = [ImageFormat::Svg, ImageFormat::Png];
    let kinds: Vec<&str> = docs.iter().map(|(_, d, _)| kind(d)).collect();
    if kinds.iter().any(|k| *k != kinds[0]) {
        return Err(GeomError::invalid(format!(
            "cannot draw different kinds of results in one figure ({}); plot them separately",
            docs.iter()
                .zip(&kinds)
                .map(|((_, _, p), k)| format!("{}: {k}", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let written = match kinds[0] {
        "anisotropy" => {
            let mut panels: Vec<Panel> = Vec::new();
            for (i, (label, d, path)) in docs.iter().enumerate() {
                let layers = usizes(&d["layers"], path, "layers")?;
                let mods = d["modalities"]
                    .as_object()
                    .ok_or_else(|| bad(path, "'modalities' is not an object"))?;
                let series: Vec<Series> = mods
                    .iter()
                    .map(|(m, v)| {
                        Ok(Series {
                            label: if args.one_panel {
                                format!("{m} ({label})")
                            } else {
                                m.clone()
                            },
                            layers: layers.clone(),
                            values: floats(v, path, m)?,
                            group: m.clone(),
                            dashed: args.first_dashed && i == 0,
                            band: None,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
                if args.one_panel && !panels.is_empty() {
                    panels[0].series.extend(series);
                } else {
                    panels.push(Panel {
                        title: if args.one_panel {
                            String::new()
                        } else {
                            label.clone()
                        },
                        series,
                    });
                }
            }
            plot::render_lines(&plot::figure1(panels), &args.out, &formats)?
        }
        "layerwise" => {
            let metric = docs[0].1["metric"]
                .as_str()
                .unwrap_or("alignment")
                .to_string();
            let series = docs
                .iter()
                .map(|(label, d, path)| {
                    Ok(Series {
                        label: label.clone(),
                        layers: usizes(&d["layers"], path, "layers")?,
                        values: floats(&d["values"], path, "values")?,
                        group: label.clone(),
                        dashed: false,
                        band: None,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let d = &docs[0].1;
            let title = format!(
                "{} – {} alignment per layer",
                d["a"].as_str().unwrap_or("a"),
                d["b"].as_str().unwrap_or("b")
            );
            let ylabel = match d["k"].as_u64() {
                Some(k) => format!("{metric} (k = {k})"),
                None => metric,
            };
            plot::render_lines(&plot::figure2(&title, &ylabel, series), &args.out, &formats)?
        }
        _ => {
            if docs.len() != 1 {
                return Err(GeomError::invalid("give one all-pairs result per heatmap").into());
            }
            let (label, d, path) = &docs[0];
            let matrix = d["matrix"]
                .as_array()
                .ok_or_else(|| bad(path, "'matrix' is not an array"))?
                .iter()
                .map(|row| floats(row, path, "matrix"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let layers_a = usizes(&d["layers_a"], path, "layers_a")?;
            let layers_b = usizes(&d["layers_b"], path, "layers_b")?;
            let best = d["best"].as_object().and_then(|b| {
                let a = b.get("a_layer")?.as_u64()? as usize;
                let bl = b.get("b_layer")?.as_u64()? as usize;
                Some((
                    layers_a.iter().position(|&l| l == a)?,
                    layers_b.iter().position(|&l| l == bl)?,
                ))
            });
            let (a, b) = (
                d["a"].as_str().unwrap_or("a"),
                d["b"].as_str().unwrap_or("b"),
            );
            let hm = Heatmap {
                title: format!("{} ({label})", d["metric"].as_str().unwrap_or("alignment")),
                a_label: format!("{a} layer"),
                b_label: format!("{b} layer"),
                a_layers: layers_a,
                b_layers: layers_b,
                matrix,
                best,
            };
            plot::render_heatmap(&hm, &args.out, &formats)?
        }
    };
    report_written(&written);
    Ok(())
}

fn kind(d: &Value) -> &'static str {
    if d.get("matrix").is_some() {
        "all-pairs"
    } else if d.get("modalities").is_some() {
        "anisotropy"
    } else {
        "layerwise"
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, &format!("not JSON: {e}")))?;
    if !v.is_object() || v.get("layers").is_none() && v.get("matrix").is_none() {
        return Err(bad(
            path,
            "not a geom result (expected an object with \"layers\")",
        )
        .into());
    }
    Ok(v)
}

fn bad(path: &Path, msg: &str) -> GeomError {
    GeomError::invalid(format!("{}: {msg}", path.display()))
}

fn usizes(v: &Value, path: &Path, key: &str) -> anyhow::Result<Vec<usize>> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().map(|u| u as usize))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| bad(path, &format!("'{key}' is not a list of layer indices")).into())
}

fn floats(v: &Value, path: &Path, key: &str) -> anyhow::Result<Vec<f64>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .ok_or_else(|| bad(path, &format!("'{key}' is not a list of numbers")).into())
}
