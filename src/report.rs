//! Output of analysis results: readable tables, and the JSON / CSV formats
//! documented in the README (stable interfaces).

use serde_json::{json, Value};

use crate::metrics::modes::{AllPairs, Layerwise};

/// Output format of the analysis commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// One JSON object.
    Json,
    /// Long table `metric,modality_or_pair,layer,value`.
    Csv,
}

/// Per-layer anisotropy of several modalities.
#[derive(Debug, Clone, PartialEq)]
pub struct AnisotropyReport {
    /// Metric name (`anisotropy`, `anisotropy_centered`, `anisotropy_sampled`).
    pub metric: String,
    /// Layer indices.
    pub layers: Vec<usize>,
    /// Layer names (same length as `layers`).
    pub layer_names: Vec<String>,
    /// `(modality, values per layer, optional CI per layer)`.
    pub modalities: Vec<(String, Vec<f64>, Option<Vec<crate::metrics::stats::Ci>>)>,
}

impl AnisotropyReport {
    /// `{"metric":"anisotropy","layers":[...],"modalities":{"text":[...],...}}`
    /// (plus `"ci":{"text":[[lo,hi],...]}` when a bootstrap was run).
    pub fn to_json(&self) -> Value {
        let mut mods = serde_json::Map::new();
        let mut cis = serde_json::Map::new();
        for (m, v, ci) in &self.modalities {
            mods.insert(
                m.clone(),
                json!(v.iter().map(|x| num(*x)).collect::<Vec<_>>()),
            );
            if let Some(ci) = ci {
                cis.insert(
                    m.clone(),
                    json!(ci
                        .iter()
                        .map(|c| [num(c.lo), num(c.hi)])
                        .collect::<Vec<_>>()),
                );
            }
        }
        let mut o = json!({"metric": self.metric, "layers": self.layers, "modalities": mods});
        if !cis.is_empty() {
            o["ci"] = Value::Object(cis);
        }
        o
    }

    /// Long CSV with a header.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("metric,modality_or_pair,layer,value\n");
        for (m, v, _) in &self.modalities {
            for (l, x) in self.layers.iter().zip(v) {
                s.push_str(&format!("{},{},{},{}\n", self.metric, m, l, fmt_full(*x)));
            }
        }
        s
    }

    /// Aligned table, one row per layer, one column per modality.
    pub fn to_table(&self) -> String {
        let mut headers = vec!["layer".to_string(), "name".to_string()];
        headers.extend(self.modalities.iter().map(|(m, _, ci)| {
            if ci.is_some() {
                format!("{m} [CI]")
            } else {
                m.clone()
            }
        }));
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .enumerate()
            .map(|(r, l)| {
                let mut row = vec![
                    l.to_string(),
                    self.layer_names.get(r).cloned().unwrap_or_default(),
                ];
                for (_, v, ci) in &self.modalities {
                    row.push(match ci {
                        Some(ci) => format!("{:.4} [{:.4}, {:.4}]", v[r], ci[r].lo, ci[r].hi),
                        None => format!("{:.4}", v[r]),
                    });
                }
                row
            })
            .collect();
        table(&headers, &rows)
    }
}

/// A layerwise kernel-alignment result with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignReport {
    /// Metric name.
    pub metric: String,
    /// k, for the metrics that use it.
    pub k: Option<usize>,
    /// Modality of side a.
    pub a: String,
    /// Modality of side b.
    pub b: String,
    /// Layer names of the selected layers.
    pub layer_names: Vec<String>,
    /// The values and statistics.
    pub result: Layerwise,
}

impl AlignReport {
    /// `{"metric":"mutual_knn","k":10,"a":"image","b":"text","layers":[...],"values":[...]}`
    /// plus `chance`, `p_values`, `ci` when computed.
    pub fn to_json(&self) -> Value {
        let r = &self.result;
        let mut o = json!({"metric": self.metric});
        if let Some(k) = self.k {
            o["k"] = json!(k);
        }
        o["a"] = json!(self.a);
        o["b"] = json!(self.b);
        o["layers"] = json!(r.layers);
        o["values"] = json!(r.values.iter().map(|x| num(*x)).collect::<Vec<_>>());
        if let Some(c) = &r.chance {
            o["chance"] = json!(c.iter().map(|x| num(*x)).collect::<Vec<_>>());
        }
        if let Some(p) = &r.p_values {
            o["p_values"] = json!(p);
        }
        if let Some(ci) = &r.ci {
            o["ci"] = json!(ci
                .iter()
                .map(|c| [num(c.lo), num(c.hi)])
                .collect::<Vec<_>>());
        }
        o
    }

    /// Long CSV with a header; the pair is written `a-b`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("metric,modality_or_pair,layer,value\n");
        for (l, v) in self.result.layers.iter().zip(&self.result.values) {
            s.push_str(&format!(
                "{},{}-{},{},{}\n",
                self.metric,
                self.a,
                self.b,
                l,
                fmt_full(*v)
            ));
        }
        s
    }

    /// Aligned table with the statistics that were computed.
    pub fn to_table(&self) -> String {
        let r = &self.result;
        let mut headers = vec!["layer".to_string(), "name".to_string(), self.metric.clone()];
        if r.chance.is_some() {
            headers.push("chance".into());
        }
        if r.p_values.is_some() {
            headers.push("p".into());
        }
        if r.ci.is_some() {
            headers.push("CI".into());
        }
        let rows: Vec<Vec<String>> = (0..r.layers.len())
            .map(|i| {
                let mut row = vec![
                    r.layers[i].to_string(),
                    self.layer_names.get(i).cloned().unwrap_or_default(),
                    format!("{:.4}", r.values[i]),
                ];
                if let Some(c) = &r.chance {
                    row.push(format!("{:.4}", c[i]));
                }
                if let Some(p) = &r.p_values {
                    row.push(format!("{:.4}", p[i]));
                }
                if let Some(ci) = &r.ci {
                    row.push(format!("[{:.4}, {:.4}]", ci[i].lo, ci[i].hi));
                }
                row
            })
            .collect();
        table(&headers, &rows)
    }
}

/// An all-pairs result with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct AllPairsReport {
    /// Metric name.
    pub metric: String,
    /// k, for the metrics that use it.
    pub k: Option<usize>,
    /// Modality of side a (matrix rows).
    pub a: String,
    /// Modality of side b (matrix columns).
    pub b: String,
    /// The matrix and best pair.
    pub result: AllPairs,
}

impl AllPairsReport {
    /// The layerwise JSON (diagonal, over layers present on both sides) plus
    /// `"matrix"` (rows = layers of a) and `"best":{"a_layer","b_layer","value"}`,
    /// and `"layers_a"`/`"layers_b"`.
    pub fn to_json(&self) -> Value {
        let r = &self.result;
        let mut o = json!({"metric": self.metric});
        if let Some(k) = self.k {
            o["k"] = json!(k);
        }
        o["a"] = json!(self.a);
        o["b"] = json!(self.b);
        let (layers, values) = self.diagonal();
        o["layers"] = json!(layers);
        o["values"] = json!(values.iter().map(|x| num(*x)).collect::<Vec<_>>());
        o["layers_a"] = json!(r.layers_a);
        o["layers_b"] = json!(r.layers_b);
        o["matrix"] = json!(r
            .matrix
            .rows()
            .into_iter()
            .map(|row| row.iter().map(|x| num(*x)).collect::<Vec<_>>())
            .collect::<Vec<_>>());
        o["best"] = json!({"a_layer": r.best.0, "b_layer": r.best.1, "value": num(r.best.2)});
        o
    }

    /// Layers present on both sides and their same-layer values.
    pub fn diagonal(&self) -> (Vec<usize>, Vec<f64>) {
        let r = &self.result;
        let mut layers = Vec::new();
        let mut values = Vec::new();
        for (i, la) in r.layers_a.iter().enumerate() {
            if let Some(j) = r.layers_b.iter().position(|lb| lb == la) {
                layers.push(*la);
                values.push(r.matrix[[i, j]]);
            }
        }
        (layers, values)
    }

    /// Long CSV: one line per cell, `modality_or_pair` = `a:LA-b:LB`, layer = a's layer.
    pub fn to_csv(&self) -> String {
        let r = &self.result;
        let mut s = String::from("metric,modality_or_pair,layer,value\n");
        for (i, la) in r.layers_a.iter().enumerate() {
            for (j, lb) in r.layers_b.iter().enumerate() {
                s.push_str(&format!(
                    "{},{}:{}-{}:{},{},{}\n",
                    self.metric,
                    self.a,
                    la,
                    self.b,
                    lb,
                    la,
                    fmt_full(r.matrix[[i, j]])
                ));
            }
        }
        s
    }

    /// The matrix as a table, plus the best pair.
    pub fn to_table(&self) -> String {
        let r = &self.result;
        let mut headers = vec![format!("{} \\ {}", self.a, self.b)];
        headers.extend(r.layers_b.iter().map(|l| l.to_string()));
        let rows: Vec<Vec<String>> = r
            .layers_a
            .iter()
            .enumerate()
            .map(|(i, la)| {
                let mut row = vec![la.to_string()];
                row.extend(r.matrix.row(i).iter().map(|v| format!("{v:.3}")));
                row
            })
            .collect();
        format!(
            "{}best: {} layer {} vs {} layer {}: {:.4}\n",
            table(&headers, &rows),
            self.a,
            r.best.0,
            self.b,
            r.best.1,
            r.best.2
        )
    }
}

/// JSON number, with NaN / infinities as null (JSON has no NaN).
fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Shortest representation that round-trips.
fn fmt_full(x: f64) -> String {
    format!("{x}")
}

/// Right-aligned table with a header rule.
pub fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut s = line(headers);
    s.push('\n');
    s.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    s.push('\n');
    for row in rows {
        s.push_str(&line(row));
        s.push('\n');
    }
    s
}
