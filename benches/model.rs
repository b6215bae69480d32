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
//! `--breakdown` adds, per kind, the time of the vision tower alone and of the
//! decoder alone (same captures), median of the repeats, as
//! `{"bench":"model_breakdown",...}` lines.
//!
//! Without `--bench` among the arguments (i.e. under `cargo test --benches`)
//! or without a prepared work dir, it prints a note and exits successfully.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use geom::model::rope::{rope_index, VisualGrids};
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
fn extract(
    model: &Qwen2_5Vl<Cpu>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &burn::tensor::Device<Cpu>,
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
    bench: bool,
}

fn parse_args() -> Args {
    let mut dir = std::env::var_os("GEOM_BENCH_MODEL_DIR").map(PathBuf::from);
    let mut repeats = 3;
    let mut kinds = vec!["text".to_string(), "image".to_string()];
    let mut breakdown = false;
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => bench = true,
            "--breakdown" => breakdown = true,
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
    let threads = rayon::current_num_threads();
    let device = Default::default();
    let t0 = Instant::now();
    let model = Qwen2_5Vl::<Cpu>::load(&model_dir, &device).expect("load");
    let load_s = t0.elapsed().as_secs_f64();
    let n_layers = model.config().text.num_hidden_layers;
    println!(
        "{{\"bench\":\"model_load\",\"impl\":\"geom\",\"load_s\":{load_s:.3},\"rss_mb\":{:.1},\"peak_rss_mb\":{:.1},\"threads\":{threads}}}",
        rss_mb(),
        peak_rss_mb()
    );
    let spec = CaptureSpec::hidden_states(n_layers);

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
            "{{\"bench\":\"model\",\"impl\":\"geom\",\"kind\":\"{kind}\",\"batch\":{b},\"seq_len\":{t},\"real_tokens\":{n_tokens},\
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
            breakdown(&model, &inputs, &spec, &device, kind, args.repeats);
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
            let out = model.visual.forward(x, &inputs.image_grids, &[]).unwrap();
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
