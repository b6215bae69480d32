//! Comparing two modalities across layers: layerwise (layer i of a with
//! layer i of b, the paper's Figure 2) and all pairs (every layer of a with
//! every layer of b, platonic-rep's `compute_score`, which keeps the best).
//!
//! Layers are loaded through closures, so the same code runs on a store
//! (one layer read at a time) or on arrays in memory.

use ndarray::Array2;
use rayon::prelude::*;

use super::alignment::{knn_item_scores, mean, prepare, score, AlignOptions, Metric, Prepared};
use super::stats::{bootstrap_alignment, chance_level, p_value, permutation_null, Ci};
use crate::error::{GeomError, Result};

/// Which statistics to compute beside each value.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsOptions {
    /// Permutations for the p-value (kNN family); 0 = no test.
    pub permutations: usize,
    /// Bootstrap resamples for the confidence interval; 0 = none.
    pub bootstrap: usize,
    /// Confidence level of the interval.
    pub ci_level: f64,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            permutations: 0,
            bootstrap: 0,
            ci_level: 0.95,
            seed: 0,
        }
    }
}

/// Result of a layerwise comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layerwise {
    /// Layer indices compared.
    pub layers: Vec<usize>,
    /// Metric value per layer.
    pub values: Vec<f64>,
    /// Chance level per layer (kNN family only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chance: Option<Vec<f64>>,
    /// Permutation p-value per layer (when requested, kNN family only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_values: Option<Vec<f64>>,
    /// Bootstrap confidence interval per layer (when requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<Vec<Ci>>,
}

/// Result of an all-pairs comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct AllPairs {
    /// Layers of side a (matrix rows).
    pub layers_a: Vec<usize>,
    /// Layers of side b (matrix columns).
    pub layers_b: Vec<usize>,
    /// `[layers_a, layers_b]` metric values.
    pub matrix: Array2<f64>,
    /// The highest value: (a layer, b layer, value); first in row-major order on ties.
    pub best: (usize, usize, f64),
}

/// Layer i of a against layer i of b, for every selected layer.
///
/// `load_a(l)` / `load_b(l)` return layer `l` as `[N, D]`.
pub fn layerwise(
    metric: Metric,
    opts: &AlignOptions,
    stats: &StatsOptions,
    layers: &[usize],
    mut load_a: impl FnMut(usize) -> Result<Array2<f32>>,
    mut load_b: impl FnMut(usize) -> Result<Array2<f32>>,
    mut progress: impl FnMut(usize),
) -> Result<Layerwise> {
    let mut out = Layerwise {
        layers: layers.to_vec(),
        values: Vec::with_capacity(layers.len()),
        chance: metric.is_knn().then(Vec::new),
        p_values: (metric.is_knn() && stats.permutations > 0).then(Vec::new),
        ci: (stats.bootstrap > 0).then(Vec::new),
    };
    for &l in layers {
        let (a, b) = (load_a(l)?, load_b(l)?);
        GeomError::check_rows("a", a.nrows(), "b", b.nrows())?;
        let (pa, pb) = rayon::join(
            || prepare(metric, a.view(), opts),
            || prepare(metric, b.view(), opts),
        );
        let (pa, pb) = (pa?, pb?);
        let v = score(metric, &pa, &pb)?;
        out.values.push(v);
        if let (Prepared::Knn(ga), Prepared::Knn(gb)) = (&pa, &pb) {
            let seed = stats.seed.wrapping_add(l as u64);
            if let Some(c) = out.chance.as_mut() {
                c.push(chance_level(metric, ga, gb, seed));
            }
            if let Some(p) = out.p_values.as_mut() {
                p.push(p_value(
                    v,
                    &permutation_null(metric, ga, gb, stats.permutations, seed),
                ));
            }
        } else if matches!(pa, Prepared::Degenerate(_)) || matches!(pb, Prepared::Degenerate(_)) {
            // No neighbours at this layer: no chance level or p-value either.
            out.chance.iter_mut().for_each(|c| c.push(f64::NAN));
            out.p_values.iter_mut().for_each(|p| p.push(f64::NAN));
        }
        if let Some(ci) = out.ci.as_mut() {
            let seed = stats.seed.wrapping_add(l as u64);
            ci.push(bootstrap_alignment(
                metric,
                &pa,
                &pb,
                a.view(),
                b.view(),
                opts,
                stats.bootstrap,
                seed,
                stats.ci_level,
            )?);
        }
        progress(l);
    }
    Ok(out)
}

/// Every selected layer of a against every selected layer of b.
///
/// Each layer is loaded and prepared once (kNN graphs, kernels), then all
/// `|layers_a| × |layers_b|` scores are computed from the prepared forms.
/// Memory: one prepared form per layer — O(N·k) for the kNN family, O(N²)
/// for the CKA family.
pub fn all_pairs(
    metric: Metric,
    opts: &AlignOptions,
    layers_a: &[usize],
    layers_b: &[usize],
    mut load_a: impl FnMut(usize) -> Result<Array2<f32>>,
    mut load_b: impl FnMut(usize) -> Result<Array2<f32>>,
    mut progress: impl FnMut(usize),
) -> Result<AllPairs> {
    let mut prep_a = Vec::with_capacity(layers_a.len());
    for &l in layers_a {
        prep_a.push(prepare(metric, load_a(l)?.view(), opts)?);
        progress(l);
    }
    let mut prep_b = Vec::with_capacity(layers_b.len());
    for &l in layers_b {
        prep_b.push(prepare(metric, load_b(l)?.view(), opts)?);
        progress(l);
    }
    if let (Some(a), Some(b)) = (prep_a.first(), prep_b.first()) {
        GeomError::check_rows("a", a.n(), "b", b.n())?;
    }
    let cells: Vec<(usize, usize)> = (0..layers_a.len())
        .flat_map(|i| (0..layers_b.len()).map(move |j| (i, j)))
        .collect();
    let vals: Vec<f64> = cells
        .par_iter()
        .map(|&(i, j)| match (&prep_a[i], &prep_b[j]) {
            (Prepared::Knn(ga), Prepared::Knn(gb)) => Ok(mean(&knn_item_scores(metric, ga, gb))),
            (pa, pb) => score(metric, pa, pb),
        })
        .collect::<Result<_>>()?;
    let matrix = Array2::from_shape_vec((layers_a.len(), layers_b.len()), vals)
        .expect("cells fill the matrix");
    let mut best = (layers_a[0], layers_b[0], f64::NEG_INFINITY);
    for ((i, j), &v) in matrix.indexed_iter() {
        if v > best.2 {
            best = (layers_a[i], layers_b[j], v);
        }
    }
    Ok(AllPairs {
        layers_a: layers_a.to_vec(),
        layers_b: layers_b.to_vec(),
        matrix,
        best,
    })
}
