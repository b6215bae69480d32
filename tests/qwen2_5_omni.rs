//! Qwen2.5-Omni (the thinker) against the reference fixtures of
//! `scripts/gen_qwen2_5_omni_fixtures.py`: a tiny random-weight thinker saved
//! in the hub layout (`thinker.*` keys, talker/token2wav stubs, bf16 shards)
//! and as transformers 5 saves the thinker alone, and transformers 4.57.6's
//! outputs on text, image, audio, video, audio-in-video, several media in
//! one prompt and a left-padded mixed batch.

mod common;

use std::path::PathBuf;

use common::{floats, floats_shaped, grids, ids_and_mask, ints, max_abs, state_err};
use geom::model::qwen2_5_omni::config::Qwen2_5OmniConfig;
use geom::model::qwen2_5_omni::rope::{rope_index, MediaGrids};
use geom::model::{CaptureSpec, Cpu, HookPoint, ModelInputs, Qwen2_5Omni};
use serde_json::Value;

const LAYOUTS: [&str; 2] = ["model_hub", "model_thinker"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_omni")
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("cases/index.json")).unwrap())
        .unwrap()
}

fn cases() -> Vec<Value> {
    index()["cases"].as_array().unwrap().clone()
}

/// The file holding `key` for a case (the generator stores tensors shared
/// between cases once, in the case named by `shared_keys`).
fn file_of(case: &Value, key: &str) -> (PathBuf, String) {
    if let Some(s) = case["shared_keys"].get(key) {
        let other = s["case"].as_str().unwrap();
        (
            root().join(format!("cases/{other}.safetensors")),
            s["key"].as_str().unwrap().to_string(),
        )
    } else {
        (root().join(case["file"].as_str().unwrap()), key.to_string())
    }
}

fn case_floats(case: &Value, key: &str) -> Option<(Vec<f64>, Vec<usize>)> {
    let (f, k) = file_of(case, key);
    floats_shaped(&f, &k)
}

fn use_audio_in_video(case: &Value) -> bool {
    case["model_kwargs"]["use_audio_in_video"]
        .as_bool()
        .unwrap_or(false)
}

/// The model inputs of a case, as the processor gave them.
fn case_inputs(case: &Value) -> ModelInputs {
    let file = root().join(case["file"].as_str().unwrap());
    let (input_ids, attention_mask) = ids_and_mask(&file);
    let f32s = |key: &str| -> Vec<f32> {
        case_floats(case, key)
            .map(|(v, _)| v.into_iter().map(|x| x as f32).collect())
            .unwrap_or_default()
    };
    ModelInputs {
        input_ids,
        attention_mask,
        pixel_values: f32s("pixel_values"),
        image_grids: grids(ints(&file, "image_grid_thw")),
        pixel_values_videos: f32s("pixel_values_videos"),
        video_grids: grids(ints(&file, "video_grid_thw")),
        second_per_grid_ts: floats(&file, "video_second_per_grid").unwrap_or_default(),
        input_features: f32s("input_features_valid"),
        audio_frames: ints(&file, "feature_lengths")
            .map(|(v, _)| v.into_iter().map(|x| x as usize).collect())
            .unwrap_or_default(),
        use_audio_in_video: use_audio_in_video(case),
    }
}

#[test]
fn both_layouts_give_the_same_configuration() {
    let hub = Qwen2_5OmniConfig::from_path(&root().join("model_hub")).unwrap();
    let mut thinker = Qwen2_5OmniConfig::from_path(&root().join("model_thinker")).unwrap();
    assert!(hub.hub_layout && !thinker.hub_layout);
    thinker.hub_layout = true;
    assert_eq!(hub, thinker);
    let idx = index();
    let ids = &idx["token_ids"];
    assert_eq!(hub.audio_token_id as u64, ids["<|AUDIO|>"].as_u64().unwrap());
    assert_eq!(hub.image_token_id as u64, ids["<|IMAGE|>"].as_u64().unwrap());
    assert_eq!(hub.video_token_id as u64, ids["<|VIDEO|>"].as_u64().unwrap());
    assert_eq!(
        hub.audio_start_token_id as u64,
        ids["<|audio_bos|>"].as_u64().unwrap()
    );
    assert_eq!(
        hub.vision_start_token_id as u64,
        ids["<|vision_bos|>"].as_u64().unwrap()
    );
    assert_eq!(
        hub.audio.n_window as u64,
        idx["config"]["n_window"].as_u64().unwrap()
    );
    for dir in LAYOUTS {
        assert_eq!(
            geom::model::Architecture::of_dir(&root().join(dir)).unwrap(),
            geom::model::Architecture::Qwen2_5Omni
        );
    }
}

#[test]
fn talker_and_token2wav_are_skipped_and_counted() {
    let device = Default::default();
    let hub = Qwen2_5Omni::<Cpu>::load(&root().join("model_hub"), &device).unwrap();
    let thinker = Qwen2_5Omni::<Cpu>::load(&root().join("model_thinker"), &device).unwrap();
    assert!(hub.skipped_tensors() > 0, "the hub fixture holds talker/token2wav stubs");
    assert_eq!(thinker.skipped_tensors(), 0);
}

#[test]
fn rope_index_matches_get_rope_index_on_every_case() {
    let cfg = Qwen2_5OmniConfig::from_path(&root().join("model_hub")).unwrap();
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let inputs = case_inputs(&c);
        let media = MediaGrids {
            image: inputs.image_grids.clone(),
            video: inputs.video_grids.clone(),
            video_second_per_grid: inputs.second_per_grid_ts.clone(),
            audio_frames: inputs.audio_frames.clone(),
            use_audio_in_video: inputs.use_audio_in_video,
        };
        let (pos, deltas) = rope_index(
            &cfg,
            &inputs.input_ids,
            inputs.attention_mask.as_deref(),
            &media,
        )
        .unwrap();
        let file = root().join(c["file"].as_str().unwrap());
        let (want, _) = ints(&file, "position_ids").unwrap();
        assert_eq!(pos.iter().copied().collect::<Vec<_>>(), want, "{name}: position ids");
        // The thinker returns get_rope_index's deltas minus the padding count.
        let (want_d, _) = ints(&file, "rope_deltas").unwrap();
        let mask = inputs.attention_mask.clone().unwrap();
        for (i, (&d, &w)) in deltas.iter().zip(&want_d).enumerate() {
            let pad = mask[i].iter().filter(|&&m| m == 0).count() as i64;
            assert_eq!(d - pad, w, "{name}: rope delta of sample {i}");
        }
    }
}

/// The audio encoder on every audio case: each layer's output and the
/// final features within 1e-4 of transformers.
#[test]
fn audio_encoder_matches_transformers() {
    let device = Default::default();
    let model = Qwen2_5Omni::<Cpu>::load(&root().join("model_hub"), &device).unwrap();
    let enc = model.audio.as_ref().unwrap();
    let n_layers = enc.config().encoder_layers;
    let mut checked = 0;
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let Some((_, _)) = case_floats(&c, "audio.output") else {
            continue;
        };
        let inputs = case_inputs(&c);
        let layers: Vec<usize> = (0..n_layers).collect();
        let out = enc
            .forward(&inputs.input_features, &inputs.audio_frames, &layers, &device)
            .unwrap();
        for (i, t) in &out.layers {
            let (want, shape) = case_floats(&c, &format!("audio.layer_{i}")).unwrap();
            assert_eq!(t.dims().to_vec(), shape, "{name}: audio.layer_{i} shape");
            let got: Vec<f32> = t.clone().into_data().to_vec().unwrap();
            let err = max_abs(&got, &want);
            assert!(err < 1e-4, "{name}: audio.layer_{i} differs by {err:e}");
        }
        let (want, shape) = case_floats(&c, "audio.output").unwrap();
        assert_eq!(out.embeds.dims().to_vec(), shape, "{name}: audio output shape");
        let got: Vec<f32> = out.embeds.into_data().to_vec().unwrap();
        let err = max_abs(&got, &want);
        eprintln!("{name}: audio tower output max |geom - transformers| = {err:.2e}");
        assert!(err < 1e-4, "{name}: audio output differs by {err:e}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} audio cases checked");
}

/// Every hidden state of every case within 1e-4 of transformers at the
/// real positions, in both checkpoint layouts; pooled vectors likewise.
#[test]
fn thinker_hidden_states_match_transformers_on_every_case() {
    use geom::model::{pool, Pooling};

    let device = Default::default();
    for dir in LAYOUTS {
        let model = Qwen2_5Omni::<Cpu>::load(&root().join(dir), &device).unwrap();
        let h = model.config().text.hidden_size;
        let l = model.config().text.num_hidden_layers;
        let spec = CaptureSpec::hidden_states(l);
        let mut worst = 0f64;
        for c in cases() {
            let name = c["name"].as_str().unwrap();
            let file = root().join(c["file"].as_str().unwrap());
            let inputs = case_inputs(&c);
            let (b, t) = (inputs.input_ids.len(), inputs.input_ids[0].len());
            let mask = inputs.attention_mask.clone().unwrap();
            let out = model.forward(&inputs, &spec, &device).unwrap();
            let (want_pos, _) = ints(&file, "position_ids").unwrap();
            assert_eq!(
                out.position_ids.iter().copied().collect::<Vec<_>>(),
                want_pos,
                "{dir}/{name}: position ids"
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
                let err = max_abs(&pooled.concat(), &want[l * b * h..(l + 1) * b * h]);
                assert!(err < 1e-4, "{dir}/{name}: {key} differs by {err:e}");
            }
        }
        eprintln!("{dir}: worst hidden-state difference over all cases {worst:.2e}");
    }
}

/// The audio encoder's layers are hook points (`audio.layers.N`).
#[test]
fn audio_layers_are_captured_by_name() {
    let device = Default::default();
    let model = Qwen2_5Omni::<Cpu>::load(&root().join("model_thinker"), &device).unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "audio_1")
        .unwrap();
    let spec = CaptureSpec {
        points: vec!["audio.layers.1".parse::<HookPoint>().unwrap()],
    };
    let out = model.forward(&case_inputs(&c), &spec, &device).unwrap();
    assert_eq!(out.audio_captures.len(), 1);
    let (want, _) = case_floats(&c, "audio.layer_1").unwrap();
    let got: Vec<f32> = out.audio_captures[0].1.clone().into_data().to_vec().unwrap();
    assert!(max_abs(&got, &want) < 1e-4);
}

/// A left-padded mixed batch gives each sample the states it gets alone.
#[test]
fn padded_batch_equals_one_sample_at_a_time() {
    let device = Default::default();
    let model = Qwen2_5Omni::<Cpu>::load(&root().join("model_thinker"), &device).unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "batch_mixed")
        .unwrap();
    let batch = case_inputs(&c);
    let cfg = model.config().clone();
    let spec = CaptureSpec::hidden_states(cfg.text.num_hidden_layers);
    let together = model.forward(&batch, &spec, &device).unwrap();
    let mask = batch.attention_mask.clone().unwrap();
    let (t, h) = (batch.input_ids[0].len(), cfg.text.hidden_size);
    let mut worst = 0f32;
    for (bi, row) in batch.input_ids.iter().enumerate() {
        let real: Vec<usize> = (0..t).filter(|&j| mask[bi][j] == 1).collect();
        let ids: Vec<u32> = real.iter().map(|&j| row[j]).collect();
        let has = |tok: u32| ids.contains(&tok);
        let mut one = ModelInputs {
            input_ids: vec![ids.clone()],
            ..Default::default()
        };
        // The fixture batch holds at most one medium of each kind.
        if has(cfg.image_token_id) {
            one.image_grids = batch.image_grids.clone();
            one.pixel_values = batch.pixel_values.clone();
        }
        if has(cfg.video_token_id) {
            one.video_grids = batch.video_grids.clone();
            one.pixel_values_videos = batch.pixel_values_videos.clone();
            one.second_per_grid_ts = batch.second_per_grid_ts.clone();
        }
        if has(cfg.audio_token_id) {
            one.audio_frames = batch.audio_frames.clone();
            one.input_features = batch.input_features.clone();
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
            assert!(err < 1e-4, "sample {bi}: {p} batch vs alone {err:e}");
            worst = worst.max(err);
        }
    }
    eprintln!("mixed batch vs one sample at a time: max difference {worst:.2e}");
}

/// Placeholders and media that do not match are one clear error.
#[test]
fn mismatched_audio_placeholders_are_an_error() {
    let device = Default::default();
    let model = Qwen2_5Omni::<Cpu>::load(&root().join("model_thinker"), &device).unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "audio_0")
        .unwrap();
    let mut inputs = case_inputs(&c);
    let audio = model.config().audio_token_id;
    let at = inputs.input_ids[0].iter().position(|&x| x == audio).unwrap();
    inputs.input_ids[0].remove(at);
    inputs.attention_mask.as_mut().unwrap()[0].remove(at);
    let e = model
        .forward(&inputs, &CaptureSpec::none(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("audio") && e.contains("tokens"), "{e}");
    // Audio given to a text-only load is refused with a message.
    let text_only =
        Qwen2_5Omni::<Cpu>::load_text_only(&root().join("model_thinker"), &device).unwrap();
    let e = text_only
        .forward(&case_inputs(&c), &CaptureSpec::none(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("without its audio encoder"), "{e}");
}

/// From raw files (WAV, PNG frames, PNG images) through geom's own
/// processor: the rendered prompts and input ids equal the processor's,
/// the mel features the feature extractor's (1e-4), and the pooled states
/// transformers' (1e-4), on every case.
#[test]
fn embedder_from_raw_files_matches_transformers_on_every_case() {
    use geom::input::audio;
    use geom::model::{Embedder, Item, Pooling};

    let device = Default::default();
    let idx = index();
    let vsize = &idx["processor"]["video_size_used_by_cases"];
    for dir in LAYOUTS {
        let mut emb = Embedder::<Cpu>::from_dir(&root().join(dir), &device).unwrap();
        let hub_features = emb.audio_features_mut().unwrap().clone();
        let h = emb.model().text_config().hidden_size;
        for c in cases() {
            let name = c["name"].as_str().unwrap();
            let file = root().join(c["file"].as_str().unwrap());
            // The processor settings this case used.
            {
                let f = emb.audio_features_mut().unwrap();
                *f = hub_features.clone();
                if let Some(chunk) = c["feature_extractor"]["chunk_length"].as_u64() {
                    f.chunk_length = chunk as usize;
                    f.n_samples = f.chunk_length * f.sampling_rate as usize;
                    f.nb_max_frames = f.n_samples / f.hop_length;
                }
            }
            if let Some(size) = c["processor_kwargs"]["videos_kwargs"].get("size") {
                let v = emb.video_config_mut();
                v.min_pixels = size["shortest_edge"].as_u64().unwrap() as usize;
                v.max_pixels = size["longest_edge"].as_u64().unwrap() as usize;
            } else {
                let v = emb.video_config_mut();
                v.min_pixels = vsize["shortest_edge"].as_u64().unwrap() as usize;
                v.max_pixels = vsize["longest_edge"].as_u64().unwrap() as usize;
            }
            let fps = c["processor_kwargs"]["videos_kwargs"]["fps"].as_f64();
            let in_video = use_audio_in_video(&c);
            let mut audio_files = c["audio"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_else(Vec::<String>::new)
                .into_iter();
            let load_clip = |p: &str| -> Vec<f32> {
                // The 44.1 kHz clip: librosa's (soxr) 16 kHz samples, so that
                // this test checks the processor, not the resampler (that
                // tolerance is tests/audio.rs').
                match case_floats(&c, "waveform_16k") {
                    Some((w, _)) if p.contains("44k") => w.into_iter().map(|x| x as f32).collect(),
                    _ => audio::load_audio(&root().join(p)).unwrap(),
                }
            };
            let mut items = Vec::new();
            let mut prompts = Vec::new();
            for msgs in c["messages"].as_array().unwrap() {
                let content = msgs[0]["content"].as_array().unwrap();
                let kinds: Vec<&str> = content.iter().map(|x| x["type"].as_str().unwrap()).collect();
                let suffix = content.last().unwrap()["text"].as_str().unwrap().to_string();
                let item = match kinds.as_slice() {
                    ["text"] => Item::text(
                        suffix
                            .strip_suffix(geom::input::prompt::TEXT_SUFFIX)
                            .unwrap(),
                    ),
                    ["audio", "text"] => Item::Audio(load_clip(&audio_files.next().unwrap())),
                    ["video", "text"] => {
                        let frames: Vec<PathBuf> = content[0]["video"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| root().join(f.as_str().unwrap()))
                            .collect();
                        let mut v = Item::video_frames(&frames, fps).unwrap();
                        if in_video {
                            if let Item::Video { audio, .. } = &mut v {
                                *audio = Some(load_clip(&audio_files.next().unwrap()));
                            }
                        }
                        v
                    }
                    _ if kinds.iter().all(|k| *k == "image" || *k == "text") => Item::Images(
                        content
                            .iter()
                            .filter_map(|x| x["image"].as_str())
                            .map(|p| geom::input::image::load_image(&root().join(p)).unwrap())
                            .collect(),
                    ),
                    other => {
                        // Several kinds of media in one prompt (audio + image):
                        // checked at the model level above, not through Item.
                        eprintln!("{name}: {other:?} is not an Item; skipped here");
                        items.clear();
                        break;
                    }
                };
                prompts.push(suffix);
                items.push(item);
            }
            if items.is_empty() {
                continue;
            }
            // Prompts: the embedding suffixes as the case's.
            let mut p = geom::model::Prompts::default();
            for (item, suffix) in items.iter().zip(&prompts) {
                match item {
                    Item::Images(_) => p.image = suffix.clone(),
                    Item::Audio(_) => p.audio = suffix.clone(),
                    Item::Video { .. } => p.video = suffix.clone(),
                    _ => {}
                }
            }
            emb = emb.with_prompts(p);
            let rendered: Vec<String> = items.iter().map(|i| emb.render(i).unwrap()).collect();
            let want_prompts: Vec<String> = c["prompts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            assert_eq!(rendered, want_prompts, "{dir}/{name}: rendered prompts");
            let inputs = emb.prepare(&items).unwrap();
            let want = case_inputs(&c);
            assert_eq!(inputs.input_ids, want.input_ids, "{dir}/{name}: input ids");
            assert_eq!(inputs.attention_mask, want.attention_mask, "{dir}/{name}: mask");
            assert_eq!(inputs.image_grids, want.image_grids, "{dir}/{name}");
            assert_eq!(inputs.video_grids, want.video_grids, "{dir}/{name}");
            assert_eq!(inputs.audio_frames, want.audio_frames, "{dir}/{name}: mel frames");
            assert_eq!(inputs.use_audio_in_video, want.use_audio_in_video, "{dir}/{name}");
            for (a, b) in inputs.second_per_grid_ts.iter().zip(&want.second_per_grid_ts) {
                assert!((a - b).abs() < 1e-6, "{dir}/{name}: second per grid {a} vs {b}");
            }
            if !want.input_features.is_empty() {
                let wf: Vec<f64> = want.input_features.iter().map(|&x| x as f64).collect();
                let err = max_abs(&inputs.input_features, &wf);
                assert!(err < 1e-4, "{dir}/{name}: mel features differ by {err:e}");
            }
            let states = emb.pooled(&inputs, Pooling::LastToken).unwrap();
            let want = floats(&file, "pooled_last_token").unwrap();
            let b = inputs.input_ids.len();
            let mut err = 0f64;
            for (l, s) in states.iter().enumerate() {
                for bi in 0..b {
                    for d in 0..h {
                        err = err.max((s[[bi, d]] as f64 - want[(l * b + bi) * h + d]).abs());
                    }
                }
            }
            eprintln!("{dir}/{name}: pooled states from raw files, max |geom - transformers| = {err:.2e}");
            assert!(err < 1e-4, "{dir}/{name}: pooled states differ by {err:e}");
        }
    }
}
