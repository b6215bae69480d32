//! Criterion benchmarks of the metrics.
//!
//! * `mutual_knn/N/D` — `align(Metric::MutualKnn, a, b, k = 10)` on two
//!   independent random-normal `[N, D]` sides (normalisation included),
//!   N ∈ {1024, 4096} (+ 16384 with `GEOM_BENCH_LARGE=1`), D ∈ {2048, 3584};
//! * `anisotropy/37x1000x3584` — `anisotropy` of every layer of an in-memory
//!   `[37, 1000, 3584]` array (target: < 50 ms for all 37 layers);
//! * `gemm/4096x2048x4096` — `ndarray::linalg::general_mat_mul` (system
//!   OpenBLAS), the machine's raw f32 GEMM rate;
//! * `knn/4096x2048` — one side's `knn`, which does exactly the same GEMM
//!   (2·N²·D flops) plus top-k selection.
//!
//! After criterion's report, a summary with the derived numbers (GEMM
//! GFLOP/s, kNN effective GFLOP/s and its fraction of the GEMM rate) is
//! printed to stdout.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench metrics`.
//! Under `cargo test --benches` (no `--bench` flag) criterion runs every
//! benchmark once, and the sizes are shrunk so that this stays a smoke test.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use geom::metrics::{align, anisotropy, knn, AlignOptions, Metric, ZeroNorm};
use ndarray::{linalg::general_mat_mul, Array2, Array3, Axis};

mod common;
use common::{fill_randn, randn};

/// Per-iteration seconds of every benchmark, as measured inside `iter_custom`
/// (warm-up calls included; the summary uses the median).
static TIMES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, total: Duration, iters: u64) {
    let per = total.as_secs_f64() / iters.max(1) as f64;
    TIMES
        .lock()
        .unwrap()
        .entry(id.to_string())
        .or_default()
        .push(per);
}

fn median_of(id: &str) -> Option<f64> {
    let map = TIMES.lock().unwrap();
    let mut v = map.get(id)?.clone();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

struct Sizes {
    knn_ns: Vec<usize>,
    knn_ds: Vec<usize>,
    layers: usize,
    rows: usize,
    dim: usize,
    gemm: (usize, usize, usize),
}

fn sizes(bench_mode: bool) -> Sizes {
    if !bench_mode {
        // cargo test --benches: smoke sizes.
        return Sizes {
            knn_ns: vec![64],
            knn_ds: vec![16],
            layers: 3,
            rows: 50,
            dim: 32,
            gemm: (64, 32, 64),
        };
    }
    let mut knn_ns = vec![1024, 4096];
    if std::env::var("GEOM_BENCH_LARGE").is_ok_and(|v| v == "1") {
        knn_ns.push(16384);
    }
    Sizes {
        knn_ns,
        knn_ds: vec![2048, 3584],
        layers: 37,
        rows: 1000,
        dim: 3584,
        gemm: (4096, 2048, 4096),
    }
}

fn bench_gemm(c: &mut Criterion, s: &Sizes) {
    let (m, kd, n) = s.gemm;
    let a = randn(m, kd, 1);
    let b = randn(kd, n, 2);
    let mut out = Array2::<f32>::zeros((m, n));
    let id = format!("{m}x{kd}x{n}");
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements((2 * m * kd * n) as u64));
    g.bench_function(BenchmarkId::from_parameter(&id), |bch| {
        bch.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                general_mat_mul(1.0, &a, &b, 0.0, &mut out);
                black_box(&out);
            }
            let e = t.elapsed();
            record(&format!("gemm/{id}"), e, iters);
            e
        })
    });
    g.finish();
}

fn bench_knn_kernel(c: &mut Criterion, s: &Sizes) {
    // Same shape as the GEMM above: [N, D] × [D, N] with N = m, D = kd.
    let (n, d, _) = s.gemm;
    let x = geom::metrics::prep::l2_normalize(randn(n, d, 3).view());
    let id = format!("{n}x{d}");
    let mut g = c.benchmark_group("knn");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements((2 * n * n * d) as u64));
    g.bench_function(BenchmarkId::from_parameter(&id), |bch| {
        bch.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(knn(x.view(), 10).unwrap());
            }
            let e = t.elapsed();
            record(&format!("knn/{id}"), e, iters);
            e
        })
    });
    g.finish();
}

fn bench_mutual_knn(c: &mut Criterion, s: &Sizes) {
    let opts = AlignOptions {
        k: 10,
        ..Default::default()
    };
    let mut g = c.benchmark_group("mutual_knn");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for &d in &s.knn_ds {
        for &n in &s.knn_ns {
            let a = randn(n, d, 10 + n as u64 + d as u64);
            let b = randn(n, d, 20 + n as u64 + d as u64);
            // One align costs 4·N²·D flops: budget ~10 flat samples of one
            // iteration each at a conservative 100 GFLOP/s, so that criterion
            // neither stretches nor warns much.
            let est = 4.0 * (n * n * d) as f64 / 100e9;
            g.warm_up_time(Duration::from_secs_f64(est.clamp(0.5, 3.0)))
                .measurement_time(Duration::from_secs_f64((10.5 * est).max(3.0)))
                .throughput(Throughput::Elements(n as u64));
            let id = format!("{n}/{d}");
            g.bench_function(BenchmarkId::from_parameter(&id), |bch| {
                bch.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(align(Metric::MutualKnn, a.view(), b.view(), &opts).unwrap());
                    }
                    let e = t.elapsed();
                    record(&format!("mutual_knn/{id}"), e, iters);
                    e
                })
            });
        }
    }
    g.finish();
}

fn bench_anisotropy(c: &mut Criterion, s: &Sizes) {
    let mut x = Array3::<f32>::zeros((s.layers, s.rows, s.dim));
    fill_randn(x.as_slice_mut().unwrap(), 42);
    // Hidden states are anisotropic: add a shared offset so the value is not ~0.
    x.mapv_inplace(|v| v + 0.5);
    let id = format!("{}x{}x{}", s.layers, s.rows, s.dim);
    let mut g = c.benchmark_group("anisotropy");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes((x.len() * 4) as u64));
    g.bench_function(BenchmarkId::from_parameter(&id), |bch| {
        bch.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                for layer in x.axis_iter(Axis(0)) {
                    black_box(anisotropy(layer, ZeroNorm::Error).unwrap());
                }
            }
            let e = t.elapsed();
            record(&format!("anisotropy/{id}"), e, iters);
            e
        })
    });
    g.finish();
}

fn print_summary(s: &Sizes) {
    println!("\n== geom bench summary (median per-iteration times from the runs above) ==");
    let (m, kd, n) = s.gemm;
    let gemm_flops = 2.0 * (m * kd * n) as f64;
    let gemm = median_of(&format!("gemm/{m}x{kd}x{n}"));
    if let Some(t) = gemm {
        println!(
            "SUMMARY gemm f32 {m}x{kd} . {kd}x{n} (ndarray general_mat_mul -> OpenBLAS): {:.1} ms, {:.1} GFLOP/s",
            t * 1e3,
            gemm_flops / t / 1e9
        );
    }
    let knn_flops = 2.0 * (m * m * kd) as f64;
    if let Some(t) = median_of(&format!("knn/{m}x{kd}")) {
        let rate = knn_flops / t / 1e9;
        let frac = gemm.map(|g| {
            format!(
                ", {:.0}% of the GEMM rate",
                100.0 * rate / (gemm_flops / g / 1e9)
            )
        });
        println!(
            "SUMMARY knn N={m} D={kd} k=10 (one side): {:.1} ms, effective {:.1} GFLOP/s (2*N^2*D){}",
            t * 1e3,
            rate,
            frac.unwrap_or_default()
        );
    }
    if let Some(t) = median_of(&format!("anisotropy/{}x{}x{}", s.layers, s.rows, s.dim)) {
        let target = if (s.layers, s.rows, s.dim) == (37, 1000, 3584) {
            if t < 0.05 {
                " (target < 50 ms: met)"
            } else {
                " (target < 50 ms: NOT met)"
            }
        } else {
            ""
        };
        println!(
            "SUMMARY anisotropy {} layers x {} x {}: {:.1} ms for all layers{target}",
            s.layers,
            s.rows,
            s.dim,
            t * 1e3
        );
    }
    for &d in &s.knn_ds {
        for &n in &s.knn_ns {
            if let Some(t) = median_of(&format!("mutual_knn/{n}/{d}")) {
                let rate = 4.0 * (n * n * d) as f64 / t / 1e9;
                println!("SUMMARY mutual_knn N={n} D={d} k=10: {:.1} ms, effective {:.1} GFLOP/s (4*N^2*D)", t * 1e3, rate);
            }
        }
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let s = sizes(bench_mode);
    let mut c = Criterion::default().configure_from_args();
    bench_gemm(&mut c, &s);
    bench_knn_kernel(&mut c, &s);
    bench_anisotropy(&mut c, &s);
    bench_mutual_knn(&mut c, &s);
    c.final_summary();
    print_summary(&s);
}
