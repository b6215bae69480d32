//! Audio and video hidden-state extraction speed of the Burn Qwen2.5-Omni
//! thinker (CPU `Flex` backend), the geom half of `scripts/bench_omni.py`
//! (which builds the checkpoint and the inputs, times transformers on the
//! same inputs and compares).
//!
//! Usage (arguments after `--`):
//!
//! ```text
//! cargo bench --bench omni -- [WORK_DIR] [--repeats 3] [--kinds audio,video] [--breakdown]
//! ```
//!
//! `WORK_DIR` (or env `GEOM_BENCH_OMNI_DIR`, default `/tmp/geom-bench-omni`)
//! holds `model/` (a `save_pretrained` thinker checkpoint) and
//! `inputs_{kind}.safetensors`: `input_ids`, `attention_mask`, and for audio
//! `input_features_valid` (`[mels, Σ frames]`, the valid mel frames of every
//! clip) and `feature_lengths`, for video `pixel_values_videos`,
//! `video_grid_thw` and `video_second_per_grid`. Threads: `RAYON_NUM_THREADS`;
//! `GEOM_BENCH_BACKEND=ndarray` times Burn's ndarray backend instead of flex.
//!
//! Per kind, one warm-up and `--repeats` timed runs of what extraction does:
//! `Qwen2_5Omni::forward` with `CaptureSpec::hidden_states(L)`, then every
//! captured layer → `into_data().to_vec::<f32>()` → `pool(.., LastToken)`.
//! Prints one JSON line per kind on stdout
//! (`{"bench":"omni","impl":"geom","kind":"audio","ms_median":..,"runs_ms":[..],
//! "cpu_ms_median":..,"peak_rss_mb":..,..}`) and writes, from the last repeat,
//! the embeddings (`hidden_0`), the final hidden state (`last_hidden_state`,
//! both `[B, T, H]`) and the pooled last-token vectors of every layer
//! (`pooled_last_token`, `[L+1, B, H]`) to `WORK_DIR/geom_hidden_{kind}.safetensors`.
//!
//! `--breakdown` adds, per kind, the median time of the audio encoder alone,
//! the vision tower alone, and the decoder alone (positions + embedding +
//! scatter + layers + captures to the host), as a `{"bench":"omni_breakdown",..}` line.
//!
//! Without `--bench` among the arguments (i.e. under `cargo test --benches`)
//! or without a prepared work dir, it prints a note and exits successfully.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use geom::model::qwen2_5_omni::rope::{rope_index, MediaGrids};
use geom::model::{pool, CaptureSpec, Cpu, ModelInputs, Pooling, Qwen2_5Omni};
use safetensors::{Dtype, SafeTensors};

fn proc_status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// CPU time (user + system, all threads) of this process so far, in seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    (f.get(11).copied().unwrap_or(f64::NAN) + f.get(12).copied().unwrap_or(f64::NAN)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        m if m % 2 == 1 => v[m / 2],
        m => 0.5 * (v[m / 2 - 1] + v[m / 2]),
    }
}

fn ints(st: &SafeTensors, key: &str) -> Option<Vec<i64>> {
    let t = st.tensor(key).ok()?;
    Some(match t.dtype() {
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    })
}

fn floats(st: &SafeTensors, key: &str) -> Option<Vec<f32>> {
    let t = st.tensor(key).ok()?;
    assert_eq!(t.dtype(), Dtype::F32, "{key}: expected f32");
    Some(
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

/// The saved processor outputs as geom's model inputs.
fn read_inputs(file: &Path) -> ModelInputs {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("input_ids").expect("input_ids").shape()[1];
    let rows = |key: &str| -> Option<Vec<Vec<i64>>> {
        ints(&st, key).map(|v| v.chunks(t).map(<[i64]>::to_vec).collect())
    };
    let grids = |key: &str| -> Vec<[usize; 3]> {
        ints(&st, key)
            .map(|g| {
                g.chunks(3)
                    .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
                    .collect()
            })
            .unwrap_or_default()
    };
    ModelInputs {
        input_ids: rows("input_ids")
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as u32).collect())
            .collect(),
        attention_mask: rows("attention_mask")
            .map(|m| m.into_iter().map(|r| r.into_iter().map(|x| x as u8).collect()).collect()),
        pixel_values_videos: floats(&st, "pixel_values_videos").unwrap_or_default(),
        video_grids: grids("video_grid_thw"),
        second_per_grid_ts: floats(&st, "video_second_per_grid")
            .map(|v| v.into_iter().map(f64::from).collect())
            .unwrap_or_default(),
        input_features: floats(&st, "input_features_valid").unwrap_or_default(),
        audio_frames: ints(&st, "feature_lengths")
            .map(|v| v.into_iter().map(|x| x as usize).collect())
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// What one extraction leaves on the host: the embeddings and the final
/// hidden state (`[B·T·H]`), and the pooled vectors `[L+1][B][H]`.
struct Extracted {
    first: Vec<f32>,
    last: Vec<f32>,
    pooled: Vec<Vec<Vec<f32>>>,
}

/// One extraction: forward with all hidden states, every capture to the
/// host and pooled (last token).
fn extract<B: Backend>(
    model: &Qwen2_5Omni<B>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &B::Device,
) -> Extracted {
    let out = model.forward(inputs, spec, device).expect("forward");
    let n = out.captures.len();
    let mut r = Extracted {
        first: Vec::new(),
        last: Vec::new(),
        pooled: Vec::with_capacity(n),
    };
    for (i, (_, t)) in out.captures.into_iter().enumerate() {
        let dims = t.dims();
        let data = t.into_data().to_vec::<f32>().expect("f32 capture");
        let mask = inputs.attention_mask.as_deref();
        r.pooled
            .push(pool(&data, dims, mask, Pooling::LastToken).expect("pool"));
        if i == 0 {
            r.first = data;
        } else if i + 1 == n {
            r.last = data;
        }
    }
    r
}

fn save_hidden(path: &Path, r: &Extracted, dims: [usize; 3]) {
    let bytes = |v: &mut dyn Iterator<Item = &f32>| -> Vec<u8> {
        v.flat_map(|x| x.to_le_bytes()).collect()
    };
    let first = bytes(&mut r.first.iter());
    let last = bytes(&mut r.last.iter());
    let pooled = bytes(&mut r.pooled.iter().flatten().flatten());
    let view = |shape: Vec<usize>, b| safetensors::tensor::TensorView::new(Dtype::F32, shape, b).unwrap();
    let views = vec![
        ("hidden_0".to_string(), view(dims.to_vec(), &first)),
        ("last_hidden_state".to_string(), view(dims.to_vec(), &last)),
        (
            "pooled_last_token".to_string(),
            view(vec![r.pooled.len(), dims[0], dims[2]], &pooled),
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
    let mut a = Args {
        dir: std::env::var_os("GEOM_BENCH_OMNI_DIR")
            .map_or_else(|| PathBuf::from("/tmp/geom-bench-omni"), PathBuf::from),
        repeats: 3,
        kinds: vec!["audio".into(), "video".into()],
        breakdown: false,
        bench: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--bench" => a.bench = true,
            "--breakdown" => a.breakdown = true,
            "--repeats" => {
                a.repeats = it.next().and_then(|v| v.parse().ok()).expect("--repeats N")
            }
            "--kinds" => {
                a.kinds = it
                    .next()
                    .expect("--kinds audio,video")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            s if s.starts_with("--") => {} // harness flags cargo may pass
            s => a.dir = PathBuf::from(s),
        }
    }
    a.repeats = a.repeats.max(1);
    a
}

fn main() {
    let args = parse_args();
    let model_dir = args.dir.join("model");
    if !args.bench || !model_dir.join("config.json").exists() {
        eprintln!(
            "omni bench: skipped (needs `--bench` and a work dir prepared by scripts/bench_omni.py; \
             looked in {})",
            args.dir.display()
        );
        return;
    }
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
    let device: B::Device = Default::default();
    let t0 = Instant::now();
    let model = Qwen2_5Omni::<B>::load(model_dir, &device).expect("load");
    println!(
        "{{\"bench\":\"omni_load\",\"impl\":\"{name}\",\"load_s\":{:.3},\"rss_mb\":{:.1},\"peak_rss_mb\":{:.1},\"threads\":{threads}}}",
        t0.elapsed().as_secs_f64(),
        proc_status_mb("VmRSS:"),
        proc_status_mb("VmHWM:")
    );
    let spec = CaptureSpec::hidden_states(model.config().text.num_hidden_layers);
    for kind in &args.kinds {
        let inputs = read_inputs(&args.dir.join(format!("inputs_{kind}.safetensors")));
        let (b, t) = (inputs.input_ids.len(), inputs.input_ids[0].len());
        let h = model.config().text.hidden_size;
        let real: usize = inputs
            .attention_mask
            .as_ref()
            .map_or(b * t, |m| m.iter().flatten().map(|&x| x as usize).sum());
        let tw = Instant::now();
        let _ = extract(&model, &inputs, &spec, &device);
        let warm_ms = tw.elapsed().as_secs_f64() * 1e3;
        eprintln!("{name} {kind}: warm-up {warm_ms:.0} ms");
        let (mut runs, mut cpu, mut result) = (Vec::new(), Vec::new(), None);
        for _ in 0..args.repeats {
            let (t1, c1) = (Instant::now(), cpu_s());
            result = Some(extract(&model, &inputs, &spec, &device));
            runs.push(t1.elapsed().as_secs_f64() * 1e3);
            cpu.push((cpu_s() - c1) * 1e3);
        }
        let ms = median(runs.clone());
        save_hidden(
            &args.dir.join(format!("geom_hidden_{kind}.safetensors")),
            &result.unwrap(),
            [b, t, h],
        );
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{{\"bench\":\"omni\",\"impl\":\"{name}\",\"kind\":\"{kind}\",\"batch\":{b},\"seq_len\":{t},\"real_tokens\":{real},\
             \"audio_frames\":{},\"video_patches\":{},\"threads\":{threads},\"warmup_ms\":{warm_ms:.1},\"ms_median\":{ms:.1},\
             \"runs_ms\":[{}],\"cpu_ms_median\":{:.0},\"samples_per_s\":{:.4},\"peak_rss_mb\":{:.1}}}",
            inputs.audio_frames.iter().sum::<usize>(),
            inputs.video_grids.iter().map(|g| g[0] * g[1] * g[2]).sum::<usize>(),
            fmt(&runs),
            median(cpu),
            b as f64 / (ms / 1e3),
            proc_status_mb("VmHWM:")
        );
        if args.breakdown {
            breakdown(&model, &inputs, &spec, &device, kind, args.repeats, name);
        }
    }
}

/// The audio encoder alone, the vision tower alone, and the decoder alone
/// (TMRoPE positions, embedding, scatter of the media features, layers,
/// captures to the host), median of `repeats` after one warm-up.
fn breakdown<B: Backend>(
    model: &Qwen2_5Omni<B>,
    inputs: &ModelInputs,
    spec: &CaptureSpec,
    device: &B::Device,
    kind: &str,
    repeats: usize,
    name: &str,
) {
    let cfg = model.config();
    let (b, t) = (inputs.input_ids.len(), inputs.input_ids[0].len());
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut timed = |key: &'static str, rep: usize, t1: Instant| {
        if rep > 0 {
            times
                .entry(key)
                .or_default()
                .push(t1.elapsed().as_secs_f64() * 1e3);
        }
    };
    // (placeholder id, features) of each medium present.
    let mut media: Vec<(u32, Tensor<B, 2>)> = Vec::new();
    if !inputs.audio_frames.is_empty() {
        let enc = model.audio.as_ref().expect("audio encoder");
        let mut out = None;
        for rep in 0..=repeats {
            let t1 = Instant::now();
            let o = enc
                .forward(&inputs.input_features, &inputs.audio_frames, &[], device)
                .expect("audio");
            let _ = o.embeds.clone().into_data(); // forces the computation
            timed("audio_encoder", rep, t1);
            out = Some(o.embeds);
        }
        media.push((cfg.audio_token_id, out.unwrap()));
    }
    if !inputs.video_grids.is_empty() {
        let v = &cfg.vision;
        let cols = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size;
        let n = inputs.pixel_values_videos.len() / cols;
        let tower = model.visual.as_ref().expect("vision tower");
        let mut out = None;
        for rep in 0..=repeats {
            let t1 = Instant::now();
            let x = Tensor::<B, 2>::from_data(
                TensorData::new(inputs.pixel_values_videos.clone(), [n, cols]),
                device,
            );
            let o = tower.forward(x, &inputs.video_grids, &[]).expect("vision");
            let _ = o.embeds.clone().into_data();
            timed("vision_tower", rep, t1);
            out = Some(o.embeds);
        }
        media.push((cfg.video_token_id, out.unwrap()));
    }
    // Lookup table [text embeddings; medium 0; medium 1; …] and the row of each position.
    let mut offsets = Vec::new();
    let mut off = b * t;
    for (_, f) in &media {
        offsets.push(off);
        off += f.dims()[0];
    }
    let mut next = vec![0usize; media.len()];
    let index: Vec<i64> = inputs
        .input_ids
        .iter()
        .flatten()
        .enumerate()
        .map(|(p, &id)| match media.iter().position(|(tok, _)| *tok == id) {
            Some(m) => {
                next[m] += 1;
                (offsets[m] + next[m] - 1) as i64
            }
            None => p as i64,
        })
        .collect();
    for rep in 0..=repeats {
        let t1 = Instant::now();
        let grids = MediaGrids {
            video: inputs.video_grids.clone(),
            video_second_per_grid: inputs.second_per_grid_ts.clone(),
            audio_frames: inputs.audio_frames.clone(),
            ..Default::default()
        };
        let (positions, _) = rope_index(
            cfg,
            &inputs.input_ids,
            inputs.attention_mask.as_deref(),
            &grids,
        )
        .expect("rope index");
        let ids: Vec<i64> = inputs.input_ids.iter().flatten().map(|&x| x as i64).collect();
        let e = model.text.embed(Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids, [b, t]),
            device,
        ));
        let h = e.dims()[2];
        let mut table = vec![e.reshape([b * t, h])];
        table.extend(media.iter().map(|(_, f)| f.clone()));
        let embeds = Tensor::cat(table, 0)
            .select(
                0,
                Tensor::from_data(TensorData::new(index.clone(), [b * t]), device),
            )
            .reshape([b, t, h]);
        let out = model
            .text
            .forward(embeds, &positions, inputs.attention_mask.as_deref(), spec);
        let t_fwd = Instant::now();
        let mut n = 0;
        for (_, c) in out.captures {
            n += c.into_data().to_vec::<f32>().unwrap().len();
        }
        std::hint::black_box(n);
        timed("decoder", rep, t1);
        timed("decoder_readback", rep, t_fwd);
    }
    let fields = times
        .iter()
        .map(|(k, v)| format!("\"{k}_ms\":{:.1}", median(v.clone())))
        .collect::<Vec<_>>()
        .join(",");
    println!("{{\"bench\":\"omni_breakdown\",\"impl\":\"{name}\",\"kind\":\"{kind}\",{fields}}}");
}
