//! Hidden-state extraction speed of the Burn Qwen2.5-VL (CPU `Flex` backend),
//! the geom half of `scripts/bench_model.py` (which builds the checkpoint and
//! the inputs, times transformers on the same inputs and compares).
//!
//! Usage (arguments after `--`):
//!
//! ```text
//! cargo bench --bench model -- [WORK_DIR] [--repeats 3] [--kinds text,image] [--breakdown]
//! ```
//!
//! `WORK_DIR` (or env `GEOM_BENCH_MODEL_DIR`, default `/tmp/geom-bench-model`)
//! holds `model/` (a `save_pretrained` checkpoint) and `inputs_{kind}.safetensors`
//! (`input_ids`, `attention_mask`, and for images `pixel_values`,
//! `image_grid_thw`). Threads: `RAYON_NUM_THREADS`.
//!
//! Per kind, one warm-up and `--repeats` timed runs of what extraction does:
//! `forward` with `CaptureSpec::hidden_states(L)`, then every captured layer
//! → `into_data().to_vec::<f32>()` → `pool(.., LastToken)`. Prints one JSON line
//! per kind on stdout:
//! `{"bench":"model","impl":"geom","kind":"text","batch":16,"seq_len":..,"ms_median":..,
//!   "runs_ms":[..],"cpu_ms_median":..,"samples_per_s":..,"peak_rss_mb":..}`
//! (`cpu_ms_median`: user + system CPU time of the process per run, all threads).
//! and writes the final hidden state (`[B, T, H]` f32, key `last_hidden_state`,
//! plus the pooled last-token vectors of every layer, `pooled_last_token`
//! `[L+1, B, H]`) of the last repeat to `WORK_DIR/geom_hidden_{kind}.safetensors`.
//!
//! `--ops` instead times the model's operations one by one at the benchmark's
//! shapes (one decoder layer at 16 x 90 and 4 x 316, one vision block on 4096
//! patches), plus alternatives (2-D GEMMs for the projections, Burn's fused
//! `module::attention`), as `{"bench":"model_op",...}` lines.
//!
//! `--breakdown` adds, per kind, the time of the vision tower alone and of the
//! decoder alone (same captures), median of the repeats, as
//! `{"bench":"model_breakdown",...}` lines.
//!
//! Without `--bench` among the arguments (i.e. under `cargo test --benches`)
//! or without a prepared work dir, it prints a note and exits successfully.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use geom::model::qwen2_5_vl::rope::{rope_index, VisualGrids};
use geom::model::{pool, CaptureSpec, Cpu, ModelInputs, Pooling, Qwen2_5Vl};
use safetensors::{Dtype, SafeTensors};

/// Peak resident set size (VmHWM) of this process, in MB (10^6 bytes).
fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:").map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// Current resident set size (VmRSS), in MB.
fn rss_mb() -> f64 {
    proc_status_kb("VmRSS:").map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

fn proc_status_kb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
}

/// CPU time (user + system, all threads) of this process so far, in seconds
/// (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len();
    if m == 0 {
        return f64::NAN;
    }
    if m % 2 == 1 {
        v[m / 2]
    } else {
        0.5 * (v[m / 2 - 1] + v[m / 2])
    }
}

fn ints(st: &SafeTensors, key: &str) -> Option<(Vec<i64>, Vec<usize>)> {
    let t = st.tensor(key).ok()?;
    let v = match t.dtype() {
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::I32 => t
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    };
    Some((v, t.shape().to_vec()))
}

fn floats(st: &SafeTensors, key: &str) -> Option<Vec<f32>> {
    let t = st.tensor(key).ok()?;
    Some(match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    })
}

fn read_inputs(file: &Path) -> ModelInputs {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (ids, shape) = ints(&st, "input_ids").expect("input_ids");
    let t = shape[1];
    let input_ids = ids
        .chunks(t)
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect();
    let attention_mask = ints(&st, "attention_mask").map(|(m, _)| {
        m.chunks(t)
            .map(|r| r.iter().map(|&x| x as u8).collect())
            .collect()
    });
    let image_grids = ints(&st, "image_grid_thw")
        .map(|(g, _)| {
            g.chunks(3)
                .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
                .collect()
        })
        .unwrap_or_default();
    ModelInputs {
        input_ids,
        attention_mask,
        pixel_values: floats(&st, "pixel_values").unwrap_or_default(),
        image_grids,
        ..Default::default()
    }
}

/// One extraction: forward with all hidden states, every capture to the host
/// and pooled. Returns the final hidden state `[B·T·H]` and the pooled
/// vectors `[L+1][B][H]`.
fn extract<B: Backend>(
    model: &Qwen2_5Vl<B>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &burn::tensor::Device<B>,
) -> (Vec<f32>, Vec<Vec<Vec<f32>>>) {
    let out = model.forward(inputs, spec, device).expect("forward");
    let mut pooled = Vec::with_capacity(out.captures.len());
    let mut last = Vec::new();
    for (_, t) in out.captures {
        let dims = t.dims();
        let data = t.into_data().to_vec::<f32>().expect("f32 capture");
        pooled.push(
            pool(
                &data,
                dims,
                inputs.attention_mask.as_deref(),
                Pooling::LastToken,
            )
            .expect("pool"),
        );
        last = data;
    }
    (last, pooled)
}

fn save_hidden(path: &Path, last: &[f32], dims: [usize; 3], pooled: &[Vec<Vec<f32>>]) {
    let bytes =
        |v: &mut dyn Iterator<Item = f32>| -> Vec<u8> { v.flat_map(f32::to_le_bytes).collect() };
    let last_b = bytes(&mut last.iter().copied());
    let pooled_b = bytes(&mut pooled.iter().flatten().flatten().copied());
    let l = pooled.len();
    let (b, h) = (dims[0], dims[2]);
    let views = vec![
        (
            "last_hidden_state".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F32, dims.to_vec(), &last_b).unwrap(),
        ),
        (
            "pooled_last_token".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F32, vec![l, b, h], &pooled_b).unwrap(),
        ),
    ];
    safetensors::tensor::serialize_to_file(views, None, path).unwrap();
}

struct Args {
    dir: PathBuf,
    repeats: usize,
    kinds: Vec<String>,
    breakdown: bool,
    ops: bool,
    bench: bool,
}

fn parse_args() -> Args {
    let mut dir = std::env::var_os("GEOM_BENCH_MODEL_DIR").map(PathBuf::from);
    let mut repeats = 3;
    let mut kinds = vec!["text".to_string(), "image".to_string()];
    let mut breakdown = false;
    let mut ops = false;
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => bench = true,
            "--breakdown" => breakdown = true,
            "--ops" => ops = true,
            "--repeats" => repeats = it.next().and_then(|v| v.parse().ok()).expect("--repeats N"),
            "--kinds" => {
                kinds = it
                    .next()
                    .expect("--kinds text,image")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            s if s.starts_with("--") => {} // harness flags cargo may pass
            s => dir = Some(PathBuf::from(s)),
        }
    }
    Args {
        dir: dir.unwrap_or_else(|| PathBuf::from("/tmp/geom-bench-model")),
        repeats: repeats.max(1),
        kinds,
        breakdown,
        ops,
        bench,
    }
}

fn main() {
    let args = parse_args();
    let model_dir = args.dir.join("model");
    if !args.bench || !model_dir.join("config.json").exists() {
        eprintln!(
            "model bench: skipped (needs `--bench` and a work dir prepared by scripts/bench_model.py; \
             looked in {})",
            args.dir.display()
        );
        return;
    }
    // GEOM_BENCH_BACKEND=ndarray times Burn's ndarray backend (OpenBLAS GEMMs)
    // instead of flex; --ops and --breakdown are flex-only.
    match std::env::var("GEOM_BENCH_BACKEND").as_deref() {
        Ok("ndarray") => run::<geom::model::NdArray>(&args, &model_dir, "geom-ndarray"),
        _ => run::<Cpu>(&args, &model_dir, "geom"),
    }
}

fn run<B: Backend>(args: &Args, model_dir: &Path, name: &str)
where
    B::Device: Default,
{
    let threads = rayon::current_num_threads();
    let device: burn::tensor::Device<B> = Default::default();
    let t0 = Instant::now();
    let model = Qwen2_5Vl::<B>::load(model_dir, &device).expect("load");
    let load_s = t0.elapsed().as_secs_f64();
    let n_layers = model.config().text.num_hidden_layers;
    println!(
        "{{\"bench\":\"model_load\",\"impl\":\"{name}\",\"load_s\":{load_s:.3},\"rss_mb\":{:.1},\"peak_rss_mb\":{:.1},\"threads\":{threads}}}",
        rss_mb(),
        peak_rss_mb()
    );
    let spec = CaptureSpec::hidden_states(n_layers);
    if args.ops || args.breakdown {
        let flex = std::any::TypeId::of::<B>() == std::any::TypeId::of::<Cpu>();
        assert!(flex, "--ops and --breakdown time the flex backend only");
    }
    if args.ops {
        let model = Qwen2_5Vl::<Cpu>::load(model_dir, &Default::default()).expect("load");
        // The benchmark batches' shapes: text 16 x 90, image batch decoder 4 x 316, 4096 patches.
        ops_decoder(&model, 16, 90, args.repeats, "decoder_layer_16x90");
        ops_decoder(&model, 4, 316, args.repeats, "decoder_layer_4x316");
        ops_vision(&model, 4096, args.repeats);
        return;
    }

    for kind in &args.kinds {
        let file = args.dir.join(format!("inputs_{kind}.safetensors"));
        let inputs = read_inputs(&file);
        let b = inputs.input_ids.len();
        let t = inputs.input_ids[0].len();
        let h = model.config().text.hidden_size;
        let n_tokens: usize = inputs
            .attention_mask
            .as_ref()
            .map_or(b * t, |m| m.iter().flatten().map(|&x| x as usize).sum());

        // Warm-up.
        let tw = Instant::now();
        let _ = extract(&model, &inputs, &spec, &device);
        let warm_ms = tw.elapsed().as_secs_f64() * 1e3;
        eprintln!("geom {kind}: warm-up {warm_ms:.0} ms");
        let mut runs = Vec::with_capacity(args.repeats);
        let mut cpu = Vec::with_capacity(args.repeats);
        let mut result = None;
        for _ in 0..args.repeats {
            let (t1, c1) = (Instant::now(), cpu_s());
            let r = extract(&model, &inputs, &spec, &device);
            runs.push(t1.elapsed().as_secs_f64());
            cpu.push(cpu_s() - c1);
            result = Some(r);
        }
        let ms = median(runs.clone()) * 1e3;
        let cpu_ms = median(cpu) * 1e3;
        let (last, pooled) = result.unwrap();
        save_hidden(
            &args.dir.join(format!("geom_hidden_{kind}.safetensors")),
            &last,
            [b, t, h],
            &pooled,
        );
        println!(
            "{{\"bench\":\"model\",\"impl\":\"{name}\",\"kind\":\"{kind}\",\"batch\":{b},\"seq_len\":{t},\"real_tokens\":{n_tokens},\
             \"image_patches\":{},\"threads\":{threads},\"warmup_ms\":{warm_ms:.1},\"ms_median\":{ms:.1},\"runs_ms\":[{}],\
             \"cpu_ms_median\":{cpu_ms:.0},\"samples_per_s\":{:.4},\"peak_rss_mb\":{:.1}}}",
            inputs.image_grids.iter().map(|g| g[0] * g[1] * g[2]).sum::<usize>(),
            runs.iter()
                .map(|r| format!("{:.1}", r * 1e3))
                .collect::<Vec<_>>()
                .join(","),
            b as f64 / (ms / 1e3),
            peak_rss_mb()
        );

        if args.breakdown {
            let flex = Qwen2_5Vl::<Cpu>::load(model_dir, &Default::default()).expect("load");
            breakdown(
                &flex,
                &inputs,
                &spec,
                &Default::default(),
                kind,
                args.repeats,
            );
        }
    }
}

/// Vision tower alone and decoder alone (embedding + layers + captures to the host).
fn breakdown(
    model: &Qwen2_5Vl<Cpu>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &burn::tensor::Device<Cpu>,
    kind: &str,
    repeats: usize,
) {
    let b = inputs.input_ids.len();
    let t = inputs.input_ids[0].len();
    let cfg = model.config();
    let mut times: HashMap<&str, Vec<f64>> = HashMap::new();
    // Vision tower.
    let mut vision_out: Option<Tensor<Cpu, 2>> = None;
    if !inputs.image_grids.is_empty() {
        let v = &cfg.vision;
        let cols = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size;
        let n = inputs.pixel_values.len() / cols;
        for rep in 0..=repeats {
            let t1 = Instant::now();
            let x = Tensor::<Cpu, 2>::from_data(
                TensorData::new(inputs.pixel_values.clone(), [n, cols]),
                device,
            );
            let out = model
                .visual
                .as_ref()
                .unwrap()
                .forward(x, &inputs.image_grids, &[])
                .unwrap();
            let data = out.embeds.clone().into_data(); // forces the computation
            if rep > 0 {
                times
                    .entry("vision")
                    .or_default()
                    .push(t1.elapsed().as_secs_f64());
            }
            drop(data);
            vision_out = Some(out.embeds);
        }
    }
    // Decoder on the (scattered) embeddings.
    let grids = VisualGrids {
        image: inputs.image_grids.clone(),
        ..Default::default()
    };
    let (positions, _) = rope_index(
        cfg,
        &inputs.input_ids,
        inputs.attention_mask.as_deref(),
        &grids,
    )
    .unwrap();
    let ids: Vec<i64> = inputs
        .input_ids
        .iter()
        .flatten()
        .map(|&x| x as i64)
        .collect();
    let embed = || {
        let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids.clone(), [b, t]), device);
        let e = model.text.embed(ids);
        match &vision_out {
            None => e,
            Some(v) => {
                let h = e.dims()[2];
                let n_img = v.dims()[0];
                let mut next = 0;
                let index: Vec<i64> = inputs
                    .input_ids
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(p, &id)| {
                        if id == cfg.image_token_id {
                            next += 1;
                            (b * t + next - 1) as i64
                        } else {
                            p as i64
                        }
                    })
                    .collect();
                assert_eq!(next, n_img);
                let table = Tensor::cat(vec![e.reshape([b * t, h]), v.clone()], 0);
                table
                    .select(
                        0,
                        Tensor::from_data(TensorData::new(index, [b * t]), device),
                    )
                    .reshape([b, t, h])
            }
        }
    };
    for rep in 0..=repeats {
        let t1 = Instant::now();
        let out = model
            .text
            .forward(embed(), &positions, inputs.attention_mask.as_deref(), spec);
        let t_fwd = Instant::now();
        let mut n = 0;
        for (_, c) in out.captures {
            n += c.into_data().to_vec::<f32>().unwrap().len();
        }
        let t_end = Instant::now();
        std::hint::black_box(n);
        if rep > 0 {
            times
                .entry("decoder")
                .or_default()
                .push((t_end - t1).as_secs_f64());
            times
                .entry("decoder_readback")
                .or_default()
                .push((t_end - t_fwd).as_secs_f64());
        }
    }
    let mut parts: Vec<_> = times.into_iter().collect();
    parts.sort_by(|a, b| a.0.cmp(b.0));
    let fields = parts
        .iter()
        .map(|(k, v)| format!("\"{k}_ms\":{:.1}", median(v.clone()) * 1e3))
        .collect::<Vec<_>>()
        .join(",");
    println!("{{\"bench\":\"model_breakdown\",\"impl\":\"geom\",\"kind\":\"{kind}\",{fields}}}");
}

// ---------------------------------------------------------------------------
// `--ops`: the model's operations one by one, at the benchmark's shapes
// ---------------------------------------------------------------------------
//
// The operations are written out here (same shapes, same Burn calls) rather
// than called through the model, whose internals are private; the weights
// of the Linear layers are the checkpoint's. Labels name what is computed;
// where the model's code has changed, both formulations are timed.

/// Accumulates per-operation timings (medians over repeats).
#[derive(Default)]
struct OpTimer {
    names: Vec<String>,
    runs: HashMap<String, Vec<f64>>,
    flops: HashMap<String, f64>,
}

impl OpTimer {
    fn t<R>(&mut self, name: &str, flops: f64, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        let s = t.elapsed().as_secs_f64();
        if !self.runs.contains_key(name) {
            self.names.push(name.to_string());
        }
        self.runs.entry(name.to_string()).or_default().push(s);
        if flops > 0.0 {
            self.flops.insert(name.to_string(), flops);
        }
        r
    }

    /// Prints one line per operation, the first (warm-up) run dropped.
    fn emit(&self, group: &str) {
        for n in &self.names {
            let runs = &self.runs[n];
            let ms = median(runs[1.min(runs.len() - 1)..].to_vec()) * 1e3;
            let gf = self.flops.get(n).map_or(String::new(), |f| {
                format!(",\"gflops\":{:.1}", f / (ms / 1e3) / 1e9)
            });
            println!(
                "{{\"bench\":\"model_op\",\"impl\":\"geom\",\"group\":\"{group}\",\"op\":\"{n}\",\"ms\":{ms:.2}{gf}}}"
            );
        }
    }
}

fn randn<const D: usize>(shape: [usize; D], device: &burn::tensor::Device<Cpu>) -> Tensor<Cpu, D> {
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device)
}

/// `x·cos + rotate_half(x)·sin` with slices and a concatenation (last dim),
/// the formulation of d303790.
fn rotate_slices<const D: usize>(
    x: Tensor<Cpu, D>,
    cos: &Tensor<Cpu, D>,
    sin: &Tensor<Cpu, D>,
) -> Tensor<Cpu, D> {
    let hd = x.dims()[D - 1];
    let half = hd / 2;
    let x1 = x.clone().narrow(D - 1, 0, half);
    let x2 = x.clone().narrow(D - 1, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], D - 1);
    x * cos.clone() + rotated * sin.clone()
}

/// The `rotate_half` signed permutation matrix `R` (`x·R = [−x₂, x₁]`).
fn half_turn(hd: usize, device: &burn::tensor::Device<Cpu>) -> Tensor<Cpu, 2> {
    let half = hd / 2;
    let mut r = vec![0f32; hd * hd];
    for j in 0..half {
        r[(j + half) * hd + j] = -1.0;
        r[j * hd + j + half] = 1.0;
    }
    Tensor::from_data(TensorData::new(r, [hd, hd]), device)
}

/// `x·cos + (x·R)·sin` on contiguous `[rows, hd]` with tables expanded to
/// the same shape (the formulation of f185820).
fn rotate_matmul(
    x: Tensor<Cpu, 2>,
    r: &Tensor<Cpu, 2>,
    cos: &Tensor<Cpu, 2>,
    sin: &Tensor<Cpu, 2>,
) -> Tensor<Cpu, 2> {
    let rotated = x.clone().matmul(r.clone());
    x * cos.clone() + rotated * sin.clone()
}

/// One decoder layer's operations at `[b, t]`.
fn ops_decoder(model: &Qwen2_5Vl<Cpu>, b: usize, t: usize, repeats: usize, group: &str) {
    use burn::tensor::activation::{silu, softmax};
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    let device = Default::default();
    let cfg = &model.config().text;
    let (h, nh, nkv, hd, inter) = (
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim(),
        cfg.intermediate_size,
    );
    let layer = &model.text.layers[0];
    let (att, mlp) = (&layer.self_attn, &layer.mlp);
    let bt = (b * t) as f64;
    let (qf, kf, mf) = (
        2.0 * bt * (h * nh * hd) as f64,
        2.0 * bt * (h * nkv * hd) as f64,
        2.0 * bt * (h * inter) as f64,
    );
    let r = half_turn(hd, &device);
    let mut tm = OpTimer::default();
    for _ in 0..=repeats {
        let x = randn([b, t, h], &device);
        let cos = randn([b, 1, t, hd], &device);
        let sin = randn([b, 1, t, hd], &device);
        let mask = randn([b, 1, t, t], &device);
        let xn = tm.t("rms_norm [B,T,H]", 0.0, || {
            layer.input_layernorm.forward(x.clone())
        });
        // Projections on the 3-D input (batched GEMM, the weight broadcast over B)
        // and on the flattened [B·T, H] input (one 2-D GEMM).
        let q3 = tm.t("q_proj on 3-D [B,T,H]", qf, || {
            att.q_proj.linear.forward(xn.clone())
        });
        let k3 = tm.t("k_proj on 3-D [B,T,H]", kf, || {
            att.k_proj.linear.forward(xn.clone())
        });
        let v3 = att.v_proj.linear.forward(xn.clone());
        let _ = tm.t("q_proj on 2-D [B·T,H]", qf, || {
            att.q_proj.linear.forward(xn.clone().reshape([b * t, h]))
        });
        // Rotary, three formulations.
        let heads = |y: Tensor<Cpu, 3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let _ = tm.t(
            "rotate q,k: slices+cat on [B,nh,T,hd] views, cos [B,1,T,hd] broadcast (d303790)",
            0.0,
            || {
                (
                    rotate_slices(heads(q3.clone(), nh), &cos, &sin),
                    rotate_slices(heads(k3.clone(), nkv), &cos, &sin),
                )
            },
        );
        let rows = |y: Tensor<Cpu, 3>, n: usize| y.reshape([b * t * n, hd]);
        let cq = randn([b * t * nh, hd], &device);
        let sq = randn([b * t * nh, hd], &device);
        let ck = randn([b * t * nkv, hd], &device);
        let sk = randn([b * t * nkv, hd], &device);
        let _ = tm.t(
            "rotate q,k: slices+cat on contiguous rows, tables expanded per (token, head)",
            0.0,
            || {
                (
                    rotate_slices(rows(q3.clone(), nh), &cq, &sq),
                    rotate_slices(rows(k3.clone(), nkv), &ck, &sk),
                )
            },
        );
        let (q, k) = tm.t(
            "rotate q,k: x·cos + (x·R)·sin on contiguous rows (f185820)",
            0.0,
            || {
                (
                    rotate_matmul(rows(q3.clone(), nh), &r, &cq, &sq),
                    rotate_matmul(rows(k3.clone(), nkv), &r, &ck, &sk),
                )
            },
        );
        let _ = tm.t("  of which x·R (q, [B·T·nh,hd]x[hd,hd])", 0.0, || {
            rows(q3.clone(), nh).matmul(r.clone())
        });
        let q = q.reshape([b, t, nh, hd]).swap_dims(1, 2);
        let k = k.reshape([b, t, nkv, hd]).swap_dims(1, 2);
        let v = v3.reshape([b, t, nkv, hd]).swap_dims(1, 2);
        let rep = nh / nkv;
        let expand = |y: Tensor<Cpu, 4>| {
            y.unsqueeze_dim::<5>(2)
                .repeat_dim(2, rep)
                .reshape([b, nh, t, hd])
        };
        let (k, v) = tm.t("GQA expand k,v (repeat_dim)", 0.0, || {
            (expand(k), expand(v))
        });
        let scale = (hd as f64).powf(-0.5);
        let attn_flops = 2.0 * (b * nh * t * t * hd) as f64;
        let scores = tm.t("scores q·kᵀ", attn_flops, || {
            q.clone().matmul(k.clone().swap_dims(2, 3))
        });
        let _ = tm.t(
            "scores ·scale + mask [B,1,T,T] broadcast (d303790)",
            0.0,
            || scores.clone() * scale + mask.clone(),
        );
        let _ = tm.t(
            "scores + mask [B,1,T,T] broadcast (scale in q)",
            0.0,
            || scores.clone() + mask.clone(),
        );
        let mask_full = mask.clone().repeat_dim(1, nh);
        let scores = tm.t("scores + mask expanded to [B,nh,T,T]", 0.0, || {
            scores + mask_full.clone()
        });
        let p = tm.t("softmax [B,nh,T,T]", 0.0, || softmax(scores, 3));
        let o = tm.t("probs·v", attn_flops, || p.matmul(v.clone()));
        let o = tm.t("merge heads (swap_dims+reshape, copy)", 0.0, || {
            o.swap_dims(1, 2).reshape([b, t, nh * hd])
        });
        let _ = tm.t(
            "fused attention (burn module::attention, mask as bias)",
            2.0 * attn_flops,
            || {
                attention(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    None,
                    Some(mask.clone().expand([b, nh, t, t])),
                    AttentionModuleOptions {
                        scale: Some(scale),
                        ..Default::default()
                    },
                )
            },
        );
        let y = tm.t("o_proj on 3-D [B,T,H]", qf, || att.o_proj.linear.forward(o));
        let hres = tm.t("residual add", 0.0, || x + y);
        let hn = layer.post_attention_layernorm.forward(hres.clone());
        let g = tm.t("gate_proj on 3-D [B,T,H]", mf, || {
            mlp.gate_proj.linear.forward(hn.clone())
        });
        let u = tm.t("up_proj on 3-D [B,T,H]", mf, || {
            mlp.up_proj.linear.forward(hn.clone())
        });
        let _ = tm.t("silu(gate) alone (burn: x·sigmoid(x))", 0.0, || {
            silu(g.clone())
        });
        let _ = tm.t("silu as x / (1 + exp(−x))", 0.0, || {
            g.clone() / (g.clone().neg().exp() + 1.0)
        });
        let _ = tm.t("·up alone (same shape)", 0.0, || g.clone() * u.clone());
        let a = tm.t("silu(gate)·up [B,T,I]", 0.0, || silu(g) * u);
        let d = tm.t("down_proj on 3-D [B,T,I]", mf, || {
            mlp.down_proj.linear.forward(a)
        });
        let _ = tm.t("gate_proj on 2-D [B·T,H]", mf, || {
            mlp.gate_proj.linear.forward(hn.clone().reshape([b * t, h]))
        });
        let _ = tm.t("whole MLP on 3-D [B,T,H]", 3.0 * mf, || {
            mlp.down_proj.linear.forward(
                silu(mlp.gate_proj.linear.forward(hn.clone()))
                    * mlp.up_proj.linear.forward(hn.clone()),
            )
        });
        let _ = tm.t("whole MLP on 2-D [B·T,H]", 3.0 * mf, || {
            let x2 = hn.clone().reshape([b * t, h]);
            mlp.down_proj
                .forward(
                    silu(mlp.gate_proj.linear.forward(x2.clone())) * mlp.up_proj.linear.forward(x2),
                )
                .reshape([b, t, h])
        });
        std::hint::black_box(hres + d);
    }
    tm.emit(group);
}

/// One vision block's operations on `n` patches: window attention in
/// `n / 64` windows of 64 patches (the benchmark's 448×448 images) and full
/// attention in 4 frames of `n / 4`; plus the merger.
fn ops_vision(model: &Qwen2_5Vl<Cpu>, n: usize, repeats: usize) {
    use burn::tensor::activation::{gelu, silu, softmax};
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    let device = Default::default();
    let cfg = &model.config().vision;
    let (d, nh, inter) = (cfg.hidden_size, cfg.num_heads, cfg.intermediate_size);
    let hd = d / nh;
    let blk = &model.visual.as_ref().unwrap().blocks[0];
    let nf = n as f64;
    let r = half_turn(hd, &device);
    let mut tm = OpTimer::default();
    let perm: Vec<i64> = (0..n as i64).rev().collect();
    let perm = Tensor::<Cpu, 1, Int>::from_data(TensorData::new(perm, [n]), &device);
    for _ in 0..=repeats {
        let pix = randn([n, 1176], &device);
        let x = tm.t(
            "patch_embed [N,1176]x[1176,D]",
            2.0 * nf * (1176 * d) as f64,
            || model.visual.as_ref().unwrap().patch_embed.forward(pix),
        );
        let x = tm.t("select rows (window permutation)", 0.0, || {
            x.select(0, perm.clone())
        });
        let xn = tm.t("rms_norm [N,D]", 0.0, || blk.norm1.forward(x.clone()));
        // q, k, v as three [N,D]x[D,D] projections (a [D,3D] Linear costs the same).
        let w = randn([d, d], &device);
        let (q, k, v) = tm.t(
            "q,k,v projections 3×[N,D]x[D,D]",
            3.0 * 2.0 * nf * (d * d) as f64,
            || {
                let p = |x: Tensor<Cpu, 2>| x.matmul(w.clone());
                (p(xn.clone()), p(xn.clone()), p(xn.clone()))
            },
        );
        let cos = randn([n, 1, hd], &device);
        let sin = randn([n, 1, hd], &device);
        let _ = tm.t(
            "rotate q,k: slices+cat, cos [N,1,hd] broadcast (d303790)",
            0.0,
            || {
                (
                    rotate_slices(q.clone().reshape([n, nh, hd]), &cos, &sin),
                    rotate_slices(k.clone().reshape([n, nh, hd]), &cos, &sin),
                )
            },
        );
        let cf = randn([n * nh, hd], &device);
        let sf = randn([n * nh, hd], &device);
        let _ = tm.t(
            "rotate q,k: slices+cat, tables expanded to [N·nh,hd]",
            0.0,
            || {
                (
                    rotate_slices(q.clone().reshape([n * nh, hd]), &cf, &sf),
                    rotate_slices(k.clone().reshape([n * nh, hd]), &cf, &sf),
                )
            },
        );
        let (q, k) = tm.t(
            "rotate q,k: x·cos + (x·R)·sin on [N·nh,hd] (f185820)",
            0.0,
            || {
                (
                    rotate_matmul(q.reshape([n * nh, hd]), &r, &cf, &sf),
                    rotate_matmul(k.reshape([n * nh, hd]), &r, &cf, &sf),
                )
            },
        );
        let (q, k, v) = (
            q.reshape([n, nh, hd]),
            k.reshape([n, nh, hd]),
            v.reshape([n, nh, hd]),
        );
        let scale = (hd as f64).powf(-0.5);
        for (label, s) in [("window 64x64", n / 64), ("full 4x1024", 4usize)] {
            let l = n / s;
            let gather: Vec<i64> = (0..n as i64).collect();
            let gather = Tensor::<Cpu, 1, Int>::from_data(TensorData::new(gather, [n]), &device);
            let pad = |y: Tensor<Cpu, 3>| {
                y.select(0, gather.clone())
                    .reshape([s, l, nh, hd])
                    .swap_dims(1, 2)
            };
            let af = 2.0 * (s * nh * l * l * hd) as f64;
            let (qs, ks, vs) = tm.t(
                &format!("{label}: gather q,k,v (select+reshape+swap)"),
                0.0,
                || (pad(q.clone()), pad(k.clone()), pad(v.clone())),
            );
            let sc = tm.t(&format!("{label}: scores q·kᵀ"), af, || {
                qs.clone().matmul(ks.clone().swap_dims(2, 3))
            });
            let p = tm.t(&format!("{label}: softmax"), 0.0, || softmax(sc, 3));
            let o = tm.t(&format!("{label}: probs·v"), af, || p.matmul(vs.clone()));
            let _ = tm.t(&format!("{label}: merge heads (swap+reshape)"), 0.0, || {
                o.swap_dims(1, 2).reshape([s * l, d])
            });
            let _ = tm.t(
                &format!("{label}: fused attention (burn module::attention)"),
                2.0 * af,
                || {
                    attention(
                        qs.clone(),
                        ks.clone(),
                        vs.clone(),
                        None,
                        None,
                        AttentionModuleOptions {
                            scale: Some(scale),
                            ..Default::default()
                        },
                    )
                },
            );
        }
        let y = tm.t("proj [N,D]x[D,D]", 2.0 * nf * (d * d) as f64, || {
            blk.attn.proj.forward(xn.clone())
        });
        let hres = tm.t("residual add [N,D]", 0.0, || x + y);
        let hn = blk.norm2.forward(hres.clone());
        let mf = 2.0 * nf * (d * inter) as f64;
        let g = tm.t("gate_proj [N,D]x[D,I]", mf, || {
            blk.mlp.gate_proj.linear.forward(hn.clone())
        });
        let u = blk.mlp.up_proj.linear.forward(hn.clone());
        let a = tm.t("silu(gate)·up [N,I]", 0.0, || silu(g) * u);
        let dn = tm.t("down_proj [N,I]x[I,D]", mf, || {
            blk.mlp.down_proj.linear.forward(a)
        });
        let out = hres + dn;
        let m = &model.visual.as_ref().unwrap().merger;
        let y = m.ln_q.forward(out).reshape([n / 4, 4 * d]);
        let y = tm.t(
            "merger fc1 [N/4,4D]x[4D,4D]",
            2.0 * (n / 4) as f64 * (16 * d * d) as f64,
            || m.fc1.forward(y),
        );
        let y = tm.t("merger gelu", 0.0, || gelu(y));
        let y = tm.t(
            "merger fc2 [N/4,4D]x[4D,out]",
            2.0 * (n / 4) as f64 * (4 * d * cfg.out_hidden_size) as f64,
            || m.fc2.forward(y),
        );
        std::hint::black_box(y);
    }
    tm.emit("vision_block");
}
