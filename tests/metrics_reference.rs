//! Every metric against the reference values of
//! `scripts/gen_metric_fixtures.py` (platonic-rep definitions in torch, LCO
//! anisotropy through sklearn), and Kornblith's CKA demo.

use std::path::PathBuf;

use geom::metrics::alignment::{align, AlignOptions, Metric};
use geom::metrics::anisotropy::{anisotropy, anisotropy_centered, ZeroNorm};
use geom::metrics::knn::knn;
use geom::metrics::prep::l2_normalize;
use ndarray::{Array2, Ix2};
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn f32_npy(name: &str) -> Array2<f32> {
    let f = std::fs::File::open(dir().join(name)).unwrap();
    Array2::<f32>::read_npy(f).unwrap()
}

fn f64_as_f32(name: &str) -> Array2<f32> {
    let f = std::fs::File::open(dir().join(name)).unwrap();
    ndarray::Array::<f64, Ix2>::read_npy(f)
        .unwrap()
        .mapv(|v| v as f32)
}

#[test]
fn anisotropy_matches_lco_script() {
    let e = expected();
    let x = f32_npy("aniso_x.npy");
    let got = anisotropy(x.view(), ZeroNorm::Error).unwrap();
    let want = e["anisotropy"]["lco"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "anisotropy {got} vs LCO {want}");
    let got_c = anisotropy_centered(x.view(), ZeroNorm::Error).unwrap();
    let want_c = e["anisotropy"]["centered"].as_f64().unwrap();
    assert!((got_c - want_c).abs() < 1e-6, "centred {got_c} vs {want_c}");
}

#[test]
fn knn_indices_match_reference_including_ties() {
    for side in ["a", "b"] {
        let x = l2_normalize(f32_npy(&format!("{side}.npy")).view());
        let f = std::fs::File::open(dir().join(format!("knn_{side}_k10.npy"))).unwrap();
        let want = ndarray::Array2::<i64>::read_npy(f).unwrap();
        let g = knn(x.view(), 10).unwrap();
        for i in 0..x.nrows() {
            let w: Vec<u32> = want.row(i).iter().map(|&v| v as u32).collect();
            assert_eq!(g.row(i), &w[..], "{side}: neighbours of row {i}");
        }
    }
}

#[test]
fn every_alignment_metric_matches_platonic_rep() {
    let e = expected();
    let a = f32_npy("a.npy");
    let b = f32_npy("b.npy");
    let cases = e["alignment"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut checked = std::collections::BTreeSet::new();
    for c in cases {
        let metric: Metric = c["metric"].as_str().unwrap().parse().unwrap();
        let opts = AlignOptions {
            k: c["k"].as_u64().unwrap_or(10) as usize,
            normalize: c["normalize"].as_bool(),
            clamp_q: c["clamp_q"].as_f64(),
            rbf_sigma: c["sigma"].as_f64().unwrap_or(1.0),
            cca_dim: c["cca_dim"].as_u64().unwrap_or(10) as usize,
        };
        let want = c["value"].as_f64().unwrap();
        let got = align(metric, a.view(), b.view(), &opts).unwrap();
        assert!(
            (got - want).abs() < 1e-5,
            "{metric} {opts:?}: geom {got} vs reference {want}"
        );
        checked.insert(metric.name());
    }
    // Every metric geom offers is covered by the fixture.
    for m in Metric::ALL {
        assert!(checked.contains(m.name()), "{m} has no reference case");
    }
}

#[test]
fn svcca_closed_form_equals_iterative_cca() {
    let e = expected();
    let c = e["alignment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "svcca")
        .unwrap();
    let (v, cf) = (
        c["value"].as_f64().unwrap(),
        c["closed_form"].as_f64().unwrap(),
    );
    assert!((v - cf).abs() < 1e-9);
}

#[test]
fn kornblith_cka_demo() {
    // numpy seed 1337, X = randn(100, 10), Y = X + randn(100, 10).
    let x = f64_as_f32("kornblith_x.npy");
    let y = f64_as_f32("kornblith_y.npy");
    let opts = AlignOptions::default();
    let lin = align(Metric::Cka, x.view(), y.view(), &opts).unwrap();
    let unb = align(Metric::UnbiasedCka, x.view(), y.view(), &opts).unwrap();
    assert!((lin - 0.55761).abs() < 5e-6, "linear CKA {lin}");
    assert!((unb - 0.51346).abs() < 5e-6, "debiased CKA {unb}");
}
