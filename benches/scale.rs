//! Plain-`main` timing harness (no criterion), one JSON line per measurement.
//!
//! Modes (arguments after `--`, e.g. `cargo bench --bench scale -- --grid`):
//!
//! * (default, or `--scale`) mutual kNN at N = 100,000, D = 256, k = 10 on two
//!   independent random-normal sides, one run; prints
//!   `{"bench":"scale","n":..,"d":..,"k":..,"seconds":..,"peak_rss_mb":..}` with
//!   the peak RSS (VmHWM of /proc/self/status). Target: peak RSS < 2 GB.
//! * `--grid` mutual kNN (`align`, normalisation included) over the N × D grid,
//!   median of `--reps` runs (default 3) after a tiny warm-up; one line per point.
//! * `--gemm` raw f32 GEMM rate (`general_mat_mul` 4096×2048 · 2048×4096, system
//!   OpenBLAS) and one side's `knn` at N = 4096, D = 2048 (the same GEMM plus
//!   top-k selection), with the kNN's fraction of the GEMM rate.
//! * `--anisotropy` `anisotropy` over every layer of a `[37, 1000, 3584]` array.
//! * `--breakdown` where one side's `knn` spends its time: the blocked GEMMs
//!   alone (same block size as `knn`) vs the whole `knn`; plus the per-side
//!   preparation `align` does first (finiteness check, copy, normalisation).
//!
//! Options: `--n 1024,4096` and `--d 2048` (comma lists) override the sizes of
//! `--grid`, `--breakdown` and `--scale`; `--k 10`; `--reps 3`.
//!
//! Without `--bench` in the arguments (that is, under `cargo test --benches`)
//! the default mode runs a tiny smoke-size problem instead.

use std::hint::black_box;
use std::time::Instant;

use geom::metrics::{align, anisotropy, knn, AlignOptions, Metric, ZeroNorm};
use ndarray::{linalg::general_mat_mul, s, Array2, Array3, Axis};

mod common;
use common::{fill_randn, randn};

/// Peak resident set size (VmHWM) of this process, in MB (10^6 bytes).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb * 1024.0 / 1e6)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len();
    if m % 2 == 1 {
        v[m / 2]
    } else {
        0.5 * (v[m / 2 - 1] + v[m / 2])
    }
}

/// Times `f` `reps` times, returns the per-run seconds.
fn time_runs(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn fmt_runs(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("{:.2}", s * 1e3)).collect();
    format!("[{}]", parts.join(","))
}

struct Args {
    bench: bool,
    mode: String,
    ns: Option<Vec<usize>>,
    ds: Option<Vec<usize>>,
    k: usize,
    reps: usize,
}

fn parse_list(v: Option<String>, flag: &str) -> Vec<usize> {
    let v = v.unwrap_or_else(|| panic!("{flag} needs a value"));
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{flag}: bad number '{x}'"))
        })
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        bench: false,
        mode: "scale".into(),
        ns: None,
        ds: None,
        k: 10,
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => a.bench = true,
            "--scale" | "--grid" | "--gemm" | "--anisotropy" | "--breakdown" => {
                a.mode = arg[2..].to_string()
            }
            "--n" => a.ns = Some(parse_list(it.next(), "--n")),
            "--d" => a.ds = Some(parse_list(it.next(), "--d")),
            "--k" => a.k = parse_list(it.next(), "--k")[0],
            "--reps" => a.reps = parse_list(it.next(), "--reps")[0].max(1),
            // Ignore whatever else cargo or a filter passes (e.g. a bench-name filter).
            _ => {}
        }
    }
    a
}

fn mutual_knn(a: &Array2<f32>, b: &Array2<f32>, k: usize) -> f64 {
    let opts = AlignOptions {
        k,
        ..Default::default()
    };
    align(Metric::MutualKnn, a.view(), b.view(), &opts).expect("mutual kNN")
}

fn run_scale(args: &Args) {
    let (n, d) = if args.bench {
        (100_000, 256)
    } else {
        (2_000, 32)
    };
    let n = args.ns.as_ref().map_or(n, |v| v[0]);
    let d = args.ds.as_ref().map_or(d, |v| v[0]);
    let a = randn(n, d, 1);
    let b = randn(n, d, 2);
    let t = Instant::now();
    let score = mutual_knn(&a, &b, args.k);
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    println!(
        "{{\"bench\":\"scale\",\"n\":{n},\"d\":{d},\"k\":{},\"seconds\":{secs:.3},\"peak_rss_mb\":{rss:.1},\"score\":{score:.6},\"input_mb\":{:.1}}}",
        args.k,
        (2 * n * d * 4) as f64 / 1e6
    );
}

fn run_grid(args: &Args) {
    let ns = args.ns.clone().unwrap_or_else(|| vec![1024, 4096, 16384]);
    let ds = args.ds.clone().unwrap_or_else(|| vec![2048, 3584]);
    // Warm-up on a tiny problem (thread pools).
    black_box(mutual_knn(
        &randn(64, 16, 3),
        &randn(64, 16, 4),
        args.k.min(63),
    ));
    for &d in &ds {
        for &n in &ns {
            let a = randn(n, d, 10 + n as u64 + d as u64);
            let b = randn(n, d, 20 + n as u64 + d as u64);
            let mut score = 0.0;
            let runs = time_runs(args.reps, || score = black_box(mutual_knn(&a, &b, args.k)));
            let ms = median(runs.clone()) * 1e3;
            println!(
                "{{\"bench\":\"mutual_knn\",\"impl\":\"geom\",\"n\":{n},\"d\":{d},\"k\":{},\"ms\":{ms:.2},\"runs_ms\":{},\"gflops\":{:.1},\"peak_rss_mb\":{:.1},\"score\":{score:.6}}}",
                args.k,
                fmt_runs(&runs),
                4.0 * (n * n * d) as f64 / (ms / 1e3) / 1e9,
                peak_rss_mb()
            );
        }
    }
}

fn run_gemm(args: &Args) {
    let (m, kd, n) = if args.bench {
        (4096, 2048, 4096)
    } else {
        (64, 32, 64)
    };
    let a = randn(m, kd, 1);
    let b = randn(kd, n, 2);
    let mut c = Array2::<f32>::zeros((m, n));
    general_mat_mul(1.0, &a, &b, 0.0, &mut c); // warm-up (thread pool start)
    let runs = time_runs(args.reps, || {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        black_box(&c);
    });
    let gemm_s = median(runs.clone());
    let flops = 2.0 * (m * kd * n) as f64;
    let gemm_rate = flops / gemm_s / 1e9;
    println!(
        "{{\"bench\":\"gemm\",\"impl\":\"geom-openblas\",\"m\":{m},\"k\":{kd},\"n\":{n},\"ms\":{:.2},\"runs_ms\":{},\"gflops\":{gemm_rate:.1}}}",
        gemm_s * 1e3,
        fmt_runs(&runs)
    );
    // One side's kNN over the same GEMM shape: [N, D] x [D, N], N = m, D = kd.
    let x = geom::metrics::prep::l2_normalize(randn(m, kd, 3).view());
    black_box(knn(x.view(), args.k).unwrap());
    let runs = time_runs(args.reps, || {
        black_box(knn(x.view(), args.k).unwrap());
    });
    let knn_s = median(runs.clone());
    let knn_rate = 2.0 * (m * m * kd) as f64 / knn_s / 1e9;
    println!(
        "{{\"bench\":\"knn_kernel\",\"impl\":\"geom\",\"n\":{m},\"d\":{kd},\"k\":{},\"ms\":{:.2},\"runs_ms\":{},\"gflops\":{knn_rate:.1},\"fraction_of_gemm\":{:.3}}}",
        args.k,
        knn_s * 1e3,
        fmt_runs(&runs),
        knn_rate / gemm_rate
    );
}

fn run_anisotropy(args: &Args) {
    let (l, n, d) = if args.bench {
        (37, 1000, 3584)
    } else {
        (3, 50, 32)
    };
    let mut x = Array3::<f32>::zeros((l, n, d));
    fill_randn(x.as_slice_mut().unwrap(), 42);
    x.mapv_inplace(|v| v + 0.5);
    let all = |x: &Array3<f32>| {
        for layer in x.axis_iter(Axis(0)) {
            black_box(anisotropy(layer, ZeroNorm::Error).unwrap());
        }
    };
    all(&x); // warm-up
    let runs = time_runs(args.reps.max(5), || all(&x));
    let ms = median(runs.clone()) * 1e3;
    println!(
        "{{\"bench\":\"anisotropy\",\"impl\":\"geom\",\"layers\":{l},\"n\":{n},\"d\":{d},\"ms\":{ms:.2},\"runs_ms\":{},\"gb_per_s\":{:.1},\"target_ms\":50,\"met\":{}}}",
        fmt_runs(&runs),
        (x.len() * 4) as f64 / (ms / 1e3) / 1e9,
        ms < 50.0
    );
}

/// One side's `knn` vs the same blocked GEMMs alone: the difference is the
/// selection (and the thread hand-overs between OpenBLAS and rayon).
fn run_breakdown(args: &Args) {
    let ns = args.ns.clone().unwrap_or_else(|| vec![4096]);
    let ds = args.ds.clone().unwrap_or_else(|| vec![2048]);
    for &d in &ds {
        for &n in &ns {
            let x = geom::metrics::prep::l2_normalize(randn(n, d, 7).view());
            let block = geom::metrics::knn::block_rows(n).min(n);
            let mut sims = Array2::<f32>::zeros((block, n));
            let mut gemm_only = || {
                for start in (0..n).step_by(block) {
                    let end = (start + block).min(n);
                    let mut sb = sims.slice_mut(s![..end - start, ..]);
                    general_mat_mul(1.0, &x.slice(s![start..end, ..]), &x.t(), 0.0, &mut sb);
                }
                black_box(&sims);
            };
            gemm_only();
            black_box(knn(x.view(), args.k).unwrap());
            // Interleaved, so that background load hits both alike.
            let (mut gs, mut ts) = (Vec::new(), Vec::new());
            for _ in 0..args.reps {
                gs.extend(time_runs(1, &mut gemm_only));
                ts.extend(time_runs(1, || {
                    black_box(knn(x.view(), args.k).unwrap());
                }));
            }
            let (g, t) = (median(gs), median(ts));
            // `knn` allocates its [block, N] buffer on every call: first-touch
            // page faults are part of its "rest".
            let alloc = median(time_runs(args.reps, || {
                let mut b = Array2::<f32>::zeros((block, n));
                b.fill(1.0);
                black_box(&b);
            }));
            // What `align` does to each side before its kNN: finiteness check,
            // copy, L2 normalisation.
            let raw = randn(n, d, 8);
            let p = median(time_runs(args.reps, || {
                geom::metrics::prep::check_finite(raw.view(), "x").unwrap();
                black_box(geom::metrics::prep::prepare(raw.view(), None, true).unwrap());
            }));
            println!(
                "{{\"bench\":\"knn_breakdown\",\"impl\":\"geom\",\"n\":{n},\"d\":{d},\"k\":{},\"block_rows\":{block},\"block_alloc_touch_ms\":{:.2},\"prep_ms\":{:.2},\"knn_ms\":{:.2},\"gemm_ms\":{:.2},\"rest_ms\":{:.2},\"rest_share\":{:.3},\"gemm_gflops\":{:.1}}}",
                args.k,
                alloc * 1e3,
                p * 1e3,
                t * 1e3,
                g * 1e3,
                (t - g) * 1e3,
                (t - g) / t,
                2.0 * (n * n * d) as f64 / g / 1e9
            );
        }
    }
}

fn main() {
    let args = parse_args();
    match args.mode.as_str() {
        "grid" => run_grid(&args),
        "gemm" => run_gemm(&args),
        "anisotropy" => run_anisotropy(&args),
        "breakdown" => run_breakdown(&args),
        _ => run_scale(&args),
    }
}
