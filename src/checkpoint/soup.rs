//! Soups of LoRA adapters: one adapter whose merged update is the weighted
//! average of the inputs' merged updates.
//!
//! A model soup averages the weights of fine-tuned variants of one base
//! (LCO-Emb, Table 2). For adapters on that base, `W + Σ wᵢ·sᵢ·Bᵢ·Aᵢ` is the
//! average of the merged variants exactly, and it is itself a LoRA update of
//! rank `Σ rᵢ`: stack the `Aᵢ` as rows, the `wᵢ·sᵢ·Bᵢ` as columns (PEFT's
//! `add_weighted_adapter(…, combination_type="cat")`). Averaging the `A`s and
//! `B`s separately (PEFT's `linear`) is not the average of the updates, so
//! geom does not do it.

use std::collections::BTreeMap;

use serde_json::json;

use crate::model::layers::lora::{peft_module, Adapter, AdapterConfig, AdapterWeights};
use crate::error::{GeomError, Result};

/// The weighted soup of `adapters` (weights already normalised, one per
/// adapter): an adapter of rank `Σ rᵢ` per module, α equal to that rank
/// (scale 1; the inputs' scales are folded into `B`), no rsLoRA.
///
/// A module adapted by only some inputs gets zero blocks for the others (their
/// update there is zero). Every module must have the same shape in every input
/// that adapts it, else one error names the module and the two adapters.
pub fn soup_adapters(adapters: &[Adapter], weights: &[f64]) -> Result<Adapter> {
    assert_eq!(adapters.len(), weights.len(), "one weight per adapter");
    let first = adapters
        .first()
        .ok_or_else(|| GeomError::invalid("a soup needs at least one adapter"))?;
    // Every module, with its shape (checked across inputs).
    let mut shapes: BTreeMap<&str, (usize, usize, &str)> = BTreeMap::new();
    for ad in adapters {
        for (m, w) in &ad.modules {
            match shapes.get(m.as_str()) {
                Some(&(d_in, d_out, src)) if (d_in, d_out) != (w.d_in, w.d_out) => {
                    return Err(GeomError::invalid(format!(
                        "'{m}' is [{d_out}, {d_in}] in {src} but [{}, {}] in {}; a soup needs adapters of one base model",
                        w.d_out, w.d_in, ad.source
                    )));
                }
                Some(_) => {}
                None => {
                    shapes.insert(m, (w.d_in, w.d_out, &ad.source));
                }
            }
        }
    }
    let mut modules = BTreeMap::new();
    for (&m, &(d_in, d_out, _)) in &shapes {
        let rank = |ad: &Adapter| ad.modules.get(m).map_or(0, |w| w.r);
        let r: usize = adapters.iter().map(rank).sum();
        let mut a = Vec::with_capacity(r * d_in);
        let mut b = vec![0f32; d_out * r];
        let mut col = 0;
        for (ad, &wt) in adapters.iter().zip(weights) {
            let Some(w) = ad.modules.get(m) else { continue };
            a.extend_from_slice(&w.a);
            let s = wt * ad.scale_of(w.r);
            for o in 0..d_out {
                for k in 0..w.r {
                    b[o * r + col + k] = (w.b[o * w.r + k] as f64 * s) as f32;
                }
            }
            col += w.r;
        }
        modules.insert(
            m.to_string(),
            AdapterWeights {
                r,
                d_in,
                d_out,
                a,
                b,
            },
        );
    }
    // The commonest rank is the config's; other modules are in rank_pattern
    // (PEFT reads it; geom reads ranks from the shapes). α = r everywhere
    // would need alpha_pattern, so the scale r/α is folded into B instead.
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for w in modules.values() {
        *counts.entry(w.r).or_default() += 1;
    }
    let r = counts
        .iter()
        .max_by_key(|(r, n)| (**n, **r))
        .map(|(r, _)| *r)
        .unwrap_or(1);
    let mut rank_pattern = serde_json::Map::new();
    for (m, w) in modules.iter_mut() {
        if w.r != r {
            let fold = w.r as f32 / r as f32;
            w.b.iter_mut().for_each(|x| *x *= fold);
            rank_pattern.insert(peft_module(m, first.tree), json!(w.r));
        }
    }
    // Full module names: short names (`up_proj`) would also match the vision
    // tower's MLP when PEFT loads the adapter.
    let targets: Vec<String> = shapes.keys().map(|m| peft_module(m, first.tree)).collect();
    let sources: Vec<&str> = adapters.iter().map(|a| a.source.as_str()).collect();
    Ok(Adapter {
        config: AdapterConfig {
            r,
            lora_alpha: r as f64,
            use_rslora: false,
            target_modules: json!(targets),
            rank_pattern,
            ..first.config.clone()
        },
        modules,
        source: format!("soup of {}", sources.join(", ")),
        tree: first.tree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, r: usize, alpha: f64, rslora: bool, seed: u32) -> Adapter {
        let (d_in, d_out) = (3, 2);
        let v = |n: usize, k: u32| {
            (0..n)
                .map(|i| ((i as u32 * 7 + k * 13) % 11) as f32 / 5.0 - 1.0)
                .collect()
        };
        let mut modules = BTreeMap::new();
        for m in [
            "model.layers.0.self_attn.q_proj",
            "model.layers.0.mlp.up_proj",
        ] {
            modules.insert(
                m.to_string(),
                AdapterWeights {
                    r,
                    d_in,
                    d_out,
                    a: v(r * d_in, seed),
                    b: v(d_out * r, seed + 1),
                },
            );
        }
        Adapter {
            config: AdapterConfig {
                peft_type: "LORA".into(),
                r,
                lora_alpha: alpha,
                lora_dropout: 0.0,
                use_rslora: rslora,
                target_modules: json!(["q_proj", "up_proj"]),
                base_model_name_or_path: None,
                bias: "none".into(),
                fan_in_fan_out: false,
                use_dora: false,
                rank_pattern: Default::default(),
                alpha_pattern: Default::default(),
                task_type: None,
            },
            modules,
            source: name.into(),
            tree: Default::default(),
        }
    }

    #[test]
    fn the_soups_update_is_the_weighted_average_of_the_updates() {
        let x = adapter("x", 2, 4.0, false, 1);
        let mut y = adapter("y", 3, 6.0, true, 5);
        // y also adapts a module x does not.
        let extra = y.modules["model.layers.0.mlp.up_proj"].clone();
        y.modules.insert("model.layers.1.mlp.up_proj".into(), extra);
        let w = [0.25, 0.75];
        let s = soup_adapters(&[x.clone(), y.clone()], &w).unwrap();
        for (m, sw) in &s.modules {
            let got = sw.delta(s.scale_of(sw.r));
            let mut want = vec![0f64; sw.d_in * sw.d_out];
            for (ad, wt) in [(&x, w[0]), (&y, w[1])] {
                if let Some(aw) = ad.modules.get(m) {
                    for (acc, d) in want.iter_mut().zip(aw.delta(ad.scale_of(aw.r))) {
                        *acc += wt * d as f64;
                    }
                }
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5, "{m}: {g} vs {w}");
            }
        }
        // Rank 5 where both adapt, 3 where only y does (in rank_pattern).
        assert_eq!(s.config.r, 5);
        assert_eq!(s.modules["model.layers.1.mlp.up_proj"].r, 3);
        assert_eq!(s.config.rank_pattern.len(), 1);
        assert!(!s.config.use_rslora);
    }

    #[test]
    fn modules_of_other_shapes_are_refused_by_name() {
        let x = adapter("x", 2, 4.0, false, 1);
        let mut y = adapter("y", 2, 4.0, false, 2);
        let m = y.modules.get_mut("model.layers.0.mlp.up_proj").unwrap();
        m.d_in = 4;
        m.a = vec![0.0; 8];
        let e = soup_adapters(&[x, y], &[0.5, 0.5]).unwrap_err().to_string();
        assert!(
            e.contains("model.layers.0.mlp.up_proj") && e.contains("in x") && e.contains("in y"),
            "{e}"
        );
    }
}
