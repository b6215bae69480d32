//! Qwen2.5-VL against the reference fixtures of
//! `scripts/gen_qwen2_5_vl_fixtures.py` (a tiny random-weight model saved by
//! transformers, and its outputs): configuration, checkpoint loading in both
//! the single-file and the sharded form, M-RoPE position ids.

mod common;

use std::path::{Path, PathBuf};

use common::{floats, grids, ints, max_abs, state_err};

use geom::model::qwen2_5_vl::config::Qwen2_5VlConfig;
use geom::checkpoint::load::{Checkpoint, WeightMap};
use geom::model::qwen2_5_vl::rope::{rope_index, VisualGrids};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl")
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("cases/index.json")).unwrap())
        .unwrap()
}

/// The token ids and attention mask of a case.
struct Tokens {
    b: usize,
    t: usize,
    ids: Vec<i64>,
    rows: Vec<Vec<u32>>,
    mask: Option<Vec<Vec<u8>>>,
}

fn tokens(file: &Path) -> Tokens {
    let (ids, shape) = ints(file, "input_ids").unwrap();
    let (b, t) = (shape[0], shape[1]);
    let rows = ids
        .chunks(t)
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect();
    let mask = ints(file, "attention_mask").map(|(m, _)| {
        m.chunks(t)
            .map(|r| r.iter().map(|&x| x as u8).collect())
            .collect()
    });
    Tokens {
        b,
        t,
        ids,
        rows,
        mask,
    }
}

#[test]
fn fixture_config_parses() {
    let c = Qwen2_5VlConfig::from_path(&root().join("model")).unwrap();
    assert_eq!(
        (
            c.text.hidden_size,
            c.text.num_hidden_layers,
            c.text.num_key_value_heads
        ),
        (64, 3, 2)
    );
    assert_eq!(c.text.mrope_section, vec![2, 3, 3]);
    assert!(c.text.tie_word_embeddings);
    assert_eq!(
        (
            c.vision.depth,
            c.vision.window_size,
            c.vision.fullatt_block_indexes.clone()
        ),
        (4, 56, vec![2])
    );
    assert_eq!(c.vision.tokens_per_second, 2.0);
}

#[test]
fn single_and_sharded_checkpoints_hold_the_same_tensors() {
    let a = Checkpoint::open(&root().join("model")).unwrap();
    let b = Checkpoint::open(&root().join("model_sharded")).unwrap();
    let ka: Vec<&str> = a.keys().collect();
    assert_eq!(ka, b.keys().collect::<Vec<_>>());
    assert!(ka.len() > 50, "{}", ka.len());
    for k in ka {
        assert_eq!(a.tensor_f32(k).unwrap(), b.tensor_f32(k).unwrap(), "{k}");
    }
}

#[test]
fn weight_map_lists_every_problem() {
    let ck = Checkpoint::open(&root().join("model")).unwrap();
    // Take everything with its true shape: clean.
    let mut w = WeightMap::new(&ck);
    let keys: Vec<String> = ck.keys().map(str::to_string).collect();
    for k in &keys {
        let s = ck.shape(k).unwrap();
        assert!(w.take(k, &s).is_some());
    }
    w.finish().unwrap();
    // A wrong shape, a missing tensor, and everything else never asked for.
    let mut w = WeightMap::new(&ck);
    assert!(w.take("model.norm.weight", &[65]).is_none());
    assert!(w
        .take("model.layers.9.mlp.up_proj.weight", &[128, 64])
        .is_none());
    let e = w.finish().unwrap_err().to_string();
    assert!(e.contains("model.norm.weight: [64] (expected [65])"), "{e}");
    assert!(
        e.contains("1 missing: model.layers.9.mlp.up_proj.weight"),
        "{e}"
    );
    assert!(
        e.contains("unexpected: ") && e.contains("visual.merger.mlp.0.weight"),
        "{e}"
    );
    let e = Checkpoint::open(&root().join("images"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
}

#[test]
fn rope_index_matches_get_rope_index_on_every_case() {
    let cfg = Qwen2_5VlConfig::from_path(&root().join("model")).unwrap();
    let idx = index();
    let cases = idx["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let file = root().join(c["file"].as_str().unwrap());
        let name = c["name"].as_str().unwrap();
        let Tokens {
            b, t, rows, mask, ..
        } = tokens(&file);
        let g = VisualGrids {
            image: grids(ints(&file, "image_grid_thw")),
            video: grids(ints(&file, "video_grid_thw")),
            second_per_grid_ts: floats(&file, "second_per_grid_ts").unwrap_or_default(),
        };
        let (pos, deltas) =
            rope_index(&cfg, &rows, mask.as_deref(), &g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (want, wshape) = ints(&file, "position_ids").unwrap();
        assert_eq!(wshape, vec![3, b, t], "{name}");
        assert_eq!(
            pos.iter().copied().collect::<Vec<_>>(),
            want,
            "{name}: position ids"
        );
        let (wd, _) = ints(&file, "rope_deltas").unwrap();
        assert_eq!(deltas, wd, "{name}: rope deltas");
    }
}

/// Every hidden state of the text cases (single prompts and a left-padded
/// batch) within 1e-4 of transformers, at the real (unpadded) positions;
/// pooled last-token and mean vectors likewise.
#[test]
fn text_decoder_hidden_states_match_transformers() {
    use burn::tensor::{Int, Tensor, TensorData};
    use geom::model::{load_text_decoder, pool, CaptureSpec, Cpu, Pooling};

    let device = Default::default();
    let (cfg, model) = load_text_decoder::<Cpu>(&root().join("model"), &device).unwrap();
    let idx = index();
    let mut checked = 0;
    for c in idx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        if !(name.starts_with("text_") || name == "batch_text") {
            continue;
        }
        let file = root().join(c["file"].as_str().unwrap());
        let Tokens {
            b,
            t,
            ids,
            rows,
            mask,
        } = tokens(&file);
        let mask = mask.expect("text cases have an attention mask");
        let (pos, _) = rope_index(&cfg, &rows, Some(&mask), &VisualGrids::default()).unwrap();
        let id_tensor = Tensor::<Cpu, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&x| x as i32).collect::<Vec<_>>(), [b, t]),
            &device,
        );
        let spec = CaptureSpec::hidden_states(cfg.text.num_hidden_layers);
        let out = model.forward(model.embed(id_tensor), &pos, Some(&mask), &spec);
        let want = floats(&file, "hidden_states").unwrap();
        let h = cfg.text.hidden_size;
        assert_eq!(out.captures.len(), cfg.text.num_hidden_layers + 1);
        for (l, (point, state)) in out.captures.iter().enumerate() {
            let got: Vec<f32> = state.clone().into_data().to_vec().unwrap();
            let max_err = state_err(&got, &want, l, &mask, h);
            eprintln!("{name}: {point} max |geom - transformers| = {max_err:.2e}");
            assert!(max_err < 1e-4, "{name}: {point} differs by {max_err:e}");
        }
        // Pooling on the final state.
        let last: Vec<f32> = out.last_hidden_state.into_data().to_vec().unwrap();
        for (key, pooling) in [
            ("pooled_last_token", Pooling::LastToken),
            ("pooled_mean", Pooling::Mean),
        ] {
            let pooled = pool(&last, [b, t, h], Some(&mask), pooling).unwrap();
            let want = floats(&file, key).unwrap();
            let l = cfg.text.num_hidden_layers; // index of the final state in [L+1, B, H]
            for bi in 0..b {
                for d in 0..h {
                    let err = (pooled[bi][d] as f64 - want[(l * b + bi) * h + d]).abs();
                    assert!(
                        err < 1e-4,
                        "{name}: {key} sample {bi} dim {d} differs by {err:e}"
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 4, "{checked} text cases");
}

/// The checkpoint's chat template renders LCO-Emb's prompts exactly as the
/// transformers processor did, and tokenizing them (with each image/video
/// placeholder expanded to one token per merged patch) gives its input ids.
#[test]
fn chat_template_and_tokenizer_match_the_processor() {
    use geom::input::chat::ChatTemplate;
    use geom::input::prompt::{image_messages, text_messages, video_messages};
    use geom::input::tokenizer::{expand_placeholders, Tokenizer};

    let idx = index();
    let tok = Tokenizer::from_dir(&root().join("model")).unwrap();
    // Tokenizer alone, on the generator's probe strings.
    for probe in idx["tokenizer_checks"].as_array().unwrap() {
        let want: Vec<u32> = probe["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            tok.encode(probe["text"].as_str().unwrap()).unwrap(),
            want,
            "{}",
            probe["text"]
        );
    }
    for dir in ["model", "model_sharded"] {
        // chat_template.jinja in one folder, chat_template.json in the other.
        let tmpl = ChatTemplate::from_dir(&root().join(dir)).unwrap();
        for c in idx["cases"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let file = root().join(c["file"].as_str().unwrap());
            let Tokens { t, rows, mask, .. } = tokens(&file);
            let image_grids = grids(ints(&file, "image_grid_thw"));
            let video_grids = grids(ints(&file, "video_grid_thw"));
            let (mut next_image, mut next_video) = (0usize, 0usize);
            for (i, msgs) in c["messages"].as_array().unwrap().iter().enumerate() {
                let prompt = tmpl.render(msgs, true).unwrap();
                assert_eq!(
                    prompt,
                    c["prompts"][i].as_str().unwrap(),
                    "{dir}/{name}: rendered prompt"
                );
                // geom's own LCO prompt builders give the same messages.
                let content = msgs[0]["content"].as_array().unwrap();
                let n_img = content.iter().filter(|x| x["type"] == "image").count();
                let n_vid = content.iter().filter(|x| x["type"] == "video").count();
                let ours = if n_vid > 0 {
                    video_messages()
                } else if n_img > 0 {
                    image_messages(n_img)
                } else {
                    let text = content[0]["text"].as_str().unwrap();
                    text_messages(
                        text.strip_suffix("\nSummarize the above text in one word:")
                            .unwrap(),
                    )
                };
                assert_eq!(
                    tmpl.render(&ours, true).unwrap(),
                    prompt,
                    "{name}: LCO prompt builders"
                );
                // Placeholder expansion and tokenization.
                let per = |g: &[usize; 3]| g[0] * g[1] * g[2] / 4;
                let imgs: Vec<usize> = image_grids[next_image..next_image + n_img]
                    .iter()
                    .map(per)
                    .collect();
                let vids: Vec<usize> = video_grids[next_video..next_video + n_vid]
                    .iter()
                    .map(per)
                    .collect();
                next_image += n_img;
                next_video += n_vid;
                let expanded = expand_placeholders(&prompt, "<|image_pad|>", &imgs).unwrap();
                let expanded = expand_placeholders(&expanded, "<|video_pad|>", &vids).unwrap();
                let ids = tok.encode(&expanded).unwrap();
                let want: Vec<u32> = (0..t)
                    .filter(|&j| mask.as_ref().is_none_or(|m| m[i][j] == 1))
                    .map(|j| rows[i][j])
                    .collect();
                assert_eq!(ids, want, "{dir}/{name}: input ids of sample {i}");
            }
        }
    }
}

/// The processor outputs of a case as model inputs (the fixture's own
/// `pixel_values`, so that this checks the model alone).
fn case_inputs(file: &Path) -> geom::model::ModelInputs {
    let Tokens { rows, mask, .. } = tokens(file);
    let f32s = |key: &str| {
        floats(file, key)
            .map(|v| v.into_iter().map(|x| x as f32).collect())
            .unwrap_or_default()
    };
    geom::model::ModelInputs {
        input_ids: rows,
        attention_mask: mask,
        pixel_values: f32s("pixel_values"),
        image_grids: grids(ints(file, "image_grid_thw")),
        pixel_values_videos: f32s("pixel_values_videos"),
        video_grids: grids(ints(file, "video_grid_thw")),
        second_per_grid_ts: floats(file, "second_per_grid_ts").unwrap_or_default(),
        ..Default::default()
    }
}

/// The vision tower on every image/video case: window layout identical to
/// `get_window_index`, every block's output and the merged embeddings within
/// 1e-4 of transformers.
#[test]
fn vision_tower_matches_transformers() {
    use geom::model::layers::vision::VisionLayout;
    use geom::model::{CaptureSpec, Cpu, HookPoint, Qwen2_5Vl};

    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&root().join("model"), &device).unwrap();
    let vcfg = model.config().vision.clone();
    let idx = index();
    let mut checked = 0;
    for c in idx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let file = root().join(c["file"].as_str().unwrap());
        let inputs = case_inputs(&file);
        let (pixels, g) = if !inputs.image_grids.is_empty() {
            (inputs.pixel_values.clone(), inputs.image_grids.clone())
        } else if !inputs.video_grids.is_empty() {
            (
                inputs.pixel_values_videos.clone(),
                inputs.video_grids.clone(),
            )
        } else {
            continue;
        };
        // Layout.
        let layout = VisionLayout::new(&vcfg, &g).unwrap();
        let as_usize = |k: &str| -> Vec<usize> {
            ints(&file, k)
                .unwrap()
                .0
                .into_iter()
                .map(|x| x as usize)
                .collect()
        };
        assert_eq!(
            layout.window_index,
            as_usize("vision.window_index"),
            "{name}"
        );
        assert_eq!(
            layout.cu_window_seqlens,
            as_usize("vision.cu_window_seqlens"),
            "{name}"
        );
        assert_eq!(layout.cu_seqlens, as_usize("vision.cu_seqlens"), "{name}");
        let rot = floats(&file, "vision.rot_pos_emb").unwrap();
        assert!(
            max_abs(&layout.rotary, &rot) < 1e-5,
            "{name}: rotary angles"
        );
        // Forward, capturing every block.
        let n = layout.n_patches;
        let x = burn::tensor::Tensor::<Cpu, 2>::from_data(
            burn::tensor::TensorData::new(pixels, [n, 1176]),
            &device,
        );
        let all: Vec<usize> = (0..vcfg.depth).collect();
        let out = model.visual.as_ref().unwrap().forward(x, &g, &all).unwrap();
        // The reference's block outputs are in window order.
        let order = layout.patch_order();
        for (i, state) in &out.blocks {
            let got: Vec<f32> = state.clone().into_data().to_vec().unwrap();
            let want = floats(&file, &format!("vision.block_{i}")).unwrap();
            let d = vcfg.hidden_size;
            let mut err = 0f64;
            for (wrow, &p) in order.iter().enumerate() {
                for j in 0..d {
                    err = err.max((got[p * d + j] as f64 - want[wrow * d + j]).abs());
                }
            }
            eprintln!("{name}: visual.blocks.{i} max |geom - transformers| = {err:.2e}");
            assert!(err < 1e-4, "{name}: block {i} differs by {err:e}");
        }
        let got: Vec<f32> = out.embeds.into_data().to_vec().unwrap();
        let err = max_abs(&got, &floats(&file, "vision.output").unwrap());
        eprintln!("{name}: vision output max |geom - transformers| = {err:.2e}");
        assert!(err < 1e-4, "{name}: vision output differs by {err:e}");
        checked += 1;
        // The same captures through the whole model's forward.
        let spec = CaptureSpec {
            points: vec![HookPoint::VisionBlock(3)],
        };
        let full = model.forward(&inputs, &spec, &device).unwrap();
        let caps = if inputs.image_grids.is_empty() {
            &full.video_captures
        } else {
            &full.image_captures
        };
        assert_eq!(caps.len(), 1, "{name}");
        assert_eq!(caps[0].0, HookPoint::VisionBlock(3));
    }
    assert!(checked >= 7, "{checked} vision cases");
}

/// Every hidden state of every case — text, one image, several images in a
/// prompt, video at two frame rates, left-padded text and mixed batches —
/// within 1e-4 of transformers at the real positions, through the whole
/// model (vision embeddings scattered into the placeholders); pooled
/// vectors likewise.
#[test]
fn whole_model_hidden_states_match_transformers_on_every_case() {
    use geom::model::{pool, CaptureSpec, Cpu, Pooling, Qwen2_5Vl};

    let device = Default::default();
    for dir in ["model", "model_sharded"] {
        let model = Qwen2_5Vl::<Cpu>::load(&root().join(dir), &device).unwrap();
        let cfg = model.config().clone();
        let h = cfg.text.hidden_size;
        let l = cfg.text.num_hidden_layers;
        let spec = CaptureSpec::hidden_states(l);
        let idx = index();
        let mut worst = 0f64;
        for c in idx["cases"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let file = root().join(c["file"].as_str().unwrap());
            let inputs = case_inputs(&file);
            let Tokens { b, t, .. } = tokens(&file);
            let mask = inputs
                .attention_mask
                .clone()
                .unwrap_or_else(|| vec![vec![1; t]; b]);
            let out = model.forward(&inputs, &spec, &device).unwrap();
            let (want_pos, _) = ints(&file, "position_ids").unwrap();
            assert_eq!(
                out.position_ids.iter().copied().collect::<Vec<_>>(),
                want_pos,
                "{name}"
            );
            let want = floats(&file, "hidden_states").unwrap();
            assert_eq!(out.captures.len(), l + 1);
            for (li, (point, state)) in out.captures.iter().enumerate() {
                let got: Vec<f32> = state.clone().into_data().to_vec().unwrap();
                let err = state_err(&got, &want, li, &mask, h);
                worst = worst.max(err);
                assert!(err < 1e-4, "{dir}/{name}: {point} differs by {err:e}");
            }
            let last: Vec<f32> = out.last_hidden_state.into_data().to_vec().unwrap();
            for (key, pooling) in [
                ("pooled_last_token", Pooling::LastToken),
                ("pooled_mean", Pooling::Mean),
            ] {
                let pooled = pool(&last, [b, t, h], Some(&mask), pooling).unwrap();
                let want = floats(&file, key).unwrap();
                let flat: Vec<f32> = pooled.concat();
                let err = max_abs(&flat, &want[l * b * h..(l + 1) * b * h]);
                assert!(err < 1e-4, "{dir}/{name}: {key} differs by {err:e}");
            }
        }
        eprintln!("{dir}: worst hidden-state difference over all cases {worst:.2e}");
    }
}

/// A left-padded batch gives each sample the states it gets alone.
#[test]
fn padded_batch_equals_one_sample_at_a_time() {
    use geom::model::{CaptureSpec, Cpu, ModelInputs, Qwen2_5Vl};

    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&root().join("model"), &device).unwrap();
    let l = model.config().text.num_hidden_layers;
    let h = model.config().text.hidden_size;
    let spec = CaptureSpec::hidden_states(l);
    for case in ["batch_mixed", "batch_text"] {
        let file = root().join(format!("cases/{case}.safetensors"));
        let batch = case_inputs(&file);
        let Tokens { b, t, .. } = tokens(&file);
        let mask = batch.attention_mask.clone().unwrap();
        let together = model.forward(&batch, &spec, &device).unwrap();
        let mut image_rows = 0;
        for bi in 0..b {
            let real: Vec<usize> = (0..t).filter(|&j| mask[bi][j] == 1).collect();
            let ids: Vec<u32> = real.iter().map(|&j| batch.input_ids[bi][j]).collect();
            let n_img = ids
                .iter()
                .filter(|&&x| x == model.config().image_token_id)
                .count();
            let mut one = ModelInputs {
                input_ids: vec![ids],
                ..Default::default()
            };
            if n_img > 0 {
                // This fixture batch has one image, in sample 0.
                one.image_grids = batch.image_grids.clone();
                one.pixel_values = batch.pixel_values.clone();
                image_rows += 1;
            }
            let alone = model.forward(&one, &spec, &device).unwrap();
            for ((p, s_batch), (_, s_alone)) in together.captures.iter().zip(&alone.captures) {
                let gb: Vec<f32> = s_batch.clone().into_data().to_vec().unwrap();
                let ga: Vec<f32> = s_alone.clone().into_data().to_vec().unwrap();
                let mut err = 0f32;
                for (k, &j) in real.iter().enumerate() {
                    for d in 0..h {
                        err = err.max((gb[(bi * t + j) * h + d] - ga[k * h + d]).abs());
                    }
                }
                assert!(
                    err < 1e-5,
                    "{case}[{bi}] {p}: batch vs alone differ by {err:e}"
                );
            }
        }
        assert!(case != "batch_mixed" || image_rows == 1);
    }
}

#[test]
fn mismatched_placeholders_and_features_are_an_error() {
    use geom::model::{CaptureSpec, Cpu, Qwen2_5Vl};
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&root().join("model"), &device).unwrap();
    let mut inputs = case_inputs(&root().join("cases/image_0.safetensors"));
    // One placeholder too few.
    let pos = inputs.input_ids[0]
        .iter()
        .position(|&x| x == model.config().image_token_id)
        .unwrap();
    inputs.input_ids[0].remove(pos);
    inputs.attention_mask = None;
    let e = model
        .forward(&inputs, &CaptureSpec::none(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("needs 4 consecutive placeholder tokens 512"),
        "{e}"
    );
    let mut inputs = case_inputs(&root().join("cases/image_0.safetensors"));
    inputs.pixel_values.truncate(1176 * 15);
    let e = model
        .forward(&inputs, &CaptureSpec::none(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[15, 1176]"), "{e}");
    inputs.input_ids[0][0] = 9999;
    let e = model
        .forward(&inputs, &CaptureSpec::none(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("token id 9999"), "{e}");
}

/// The public API end to end, from the raw files: each case's messages
/// become `Item`s (texts, image files, frame files with the case's fps),
/// the `Embedder` renders, tokenizes, preprocesses and left-pads them, and
/// every layer's pooled state matches transformers' (processor + model).
#[test]
fn embedder_from_raw_files_matches_transformers_on_every_case() {
    embedder_matches::<geom::model::Cpu>("flex");
}

/// The same on the other CPU backend (Burn `ndarray`, GEMMs in OpenBLAS).
#[test]
fn ndarray_backend_matches_transformers_too() {
    embedder_matches::<geom::model::NdArray>("ndarray");
}

/// The same on the GPU (`cargo test --features cuda --test qwen2_5_vl`, on a
/// machine with CUDA).
#[cfg(feature = "cuda")]
#[test]
fn cuda_backend_matches_transformers_too() {
    embedder_matches::<geom::model::device::Gpu>("cuda");
}

fn embedder_matches<B: burn::tensor::backend::Backend>(backend: &str) {
    use geom::model::{Embedder, Item, Pooling};

    let device = Default::default();
    let emb = Embedder::<B>::from_dir(&root().join("model"), &device).unwrap();
    let idx = index();
    let h = emb.model().text_config().hidden_size;
    let n_states = emb.model().n_hidden_states();
    for c in idx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let file = root().join(c["file"].as_str().unwrap());
        let fps = c["processor_kwargs"]["fps"].as_f64();
        let items: Vec<Item> = c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|msgs| {
                let content = msgs[0]["content"].as_array().unwrap();
                let images: Vec<_> = content
                    .iter()
                    .filter_map(|x| x["image"].as_str())
                    .map(|p| geom::input::image::load_image(&root().join(p)).unwrap())
                    .collect();
                if let Some(frames) = content.iter().find_map(|x| x["video"].as_array()) {
                    let paths: Vec<PathBuf> = frames
                        .iter()
                        .map(|f| root().join(f.as_str().unwrap()))
                        .collect();
                    Item::video_frames(&paths, fps).unwrap()
                } else if !images.is_empty() {
                    Item::Images(images)
                } else {
                    let text = content[0]["text"].as_str().unwrap();
                    Item::text(text.strip_suffix(geom::input::prompt::TEXT_SUFFIX).unwrap())
                }
            })
            .collect();
        // Inputs: the processor's ids, mask and grids exactly.
        let inputs = emb.prepare(&items).unwrap();
        let want = case_inputs(&file);
        assert_eq!(inputs.input_ids, want.input_ids, "{name}: input ids");
        assert_eq!(
            inputs.attention_mask.clone().unwrap(),
            want.attention_mask.clone().unwrap(),
            "{name}: mask"
        );
        assert_eq!(inputs.image_grids, want.image_grids, "{name}");
        assert_eq!(inputs.video_grids, want.video_grids, "{name}");
        for (a, b) in inputs
            .second_per_grid_ts
            .iter()
            .zip(&want.second_per_grid_ts)
        {
            assert!(
                (a - b).abs() < 1e-6,
                "{name}: second_per_grid_ts {a} vs {b}"
            );
        }
        // States: every layer, last-token pooled.
        let states = emb.pooled(&inputs, Pooling::LastToken).unwrap();
        assert_eq!(states.len(), n_states);
        let want = floats(&file, "pooled_last_token").unwrap();
        let b = inputs.input_ids.len();
        let mut err = 0f64;
        for (l, s) in states.iter().enumerate() {
            assert_eq!(s.dim(), (b, h));
            for bi in 0..b {
                for d in 0..h {
                    let w = want[(l * b + bi) * h + d];
                    err = err.max((s[[bi, d]] as f64 - w).abs());
                }
            }
        }
        eprintln!(
            "{backend} {name}: pooled states from raw files, max |geom - transformers| = {err:.2e}"
        );
        assert!(
            err < 1e-4,
            "{backend} {name}: pooled states differ by {err:e}"
        );
    }
}

/// The text-only load (contrastive training's) gives the same text states as
/// the whole model, and refuses an image with a message.
#[test]
fn text_only_load_embeds_texts_and_refuses_images() {
    use geom::model::{Cpu, Embedder, Item, Pooling};
    let device = Default::default();
    let full = Embedder::<Cpu>::from_dir(&root().join("model"), &device).unwrap();
    let text = Embedder::<Cpu>::from_dir_text_only(&root().join("model"), &device).unwrap();
    assert!(matches!(text.model(), geom::model::AutoModel::Qwen2_5Vl(m) if m.visual.is_none()));
    let items = [Item::text("a red circle"), Item::text("two blue squares")];
    let a = full
        .pooled(&full.prepare(&items).unwrap(), Pooling::LastToken)
        .unwrap();
    let b = text
        .pooled(&text.prepare(&items).unwrap(), Pooling::LastToken)
        .unwrap();
    assert_eq!(a, b);
    let img = geom::input::image::load_image(&root().join("images/img_20x30.png")).unwrap();
    let inputs = text.prepare(&[Item::Images(vec![img])]).unwrap();
    let err = text
        .pooled(&inputs, Pooling::LastToken)
        .unwrap_err()
        .to_string();
    assert!(err.contains("without its vision tower"), "{err}");
}

/// Vision attention in query row blocks (bounded memory for large images)
/// gives the outputs of the one-block computation, up to f32 rounding (the
/// matrix products are blocked differently).
#[test]
fn vision_attention_in_query_blocks_is_the_same() {
    use geom::model::{Cpu, Qwen2_5Vl};

    let device = Default::default();
    let mut model = Qwen2_5Vl::<Cpu>::load(&root().join("model"), &device).unwrap();
    for case in ["two_images", "video_0", "image_2"] {
        let inputs = case_inputs(&root().join(format!("cases/{case}.safetensors")));
        let (pixels, g) = if inputs.image_grids.is_empty() {
            (
                inputs.pixel_values_videos.clone(),
                inputs.video_grids.clone(),
            )
        } else {
            (inputs.pixel_values.clone(), inputs.image_grids.clone())
        };
        let n = pixels.len() / 1176;
        let run = |m: &Qwen2_5Vl<Cpu>| -> Vec<f32> {
            let x = burn::tensor::Tensor::<Cpu, 2>::from_data(
                burn::tensor::TensorData::new(pixels.clone(), [n, 1176]),
                &device,
            );
            let out = m.visual.as_ref().unwrap().forward(x, &g, &[]).unwrap();
            out.embeds.into_data().to_vec().unwrap()
        };
        model.visual.as_mut().unwrap().set_score_budget(usize::MAX);
        let whole = run(&model);
        // 2 heads × 5 query rows × (window 16 or frame 24..96 keys) per block.
        model.visual.as_mut().unwrap().set_score_budget(2 * 5 * 16);
        let blocked = run(&model);
        let err = whole
            .iter()
            .zip(&blocked)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "{case}: {err:e}");
        let want = floats(
            &root().join(format!("cases/{case}.safetensors")),
            "vision.output",
        )
        .unwrap();
        assert!(max_abs(&blocked, &want) < 1e-4, "{case}");
    }
}
