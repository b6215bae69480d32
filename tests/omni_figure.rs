//! Qwen2.5-Omni end to end on the fixture checkpoints: `geom extract` of
//! text–audio and text–video pairs (clip files and frame folders), and
//! `geom figure` with the three panels of the paper's Figure 1
//! (text–image, text–audio, text–video) for a "before" and an "after"
//! checkpoint, as `configs/figures/figure1.toml` draws them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_omni")
}

fn geom(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .env("GEOM_CACHE", cache)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A manifest of `n` pairs of `media` (cycling through `files`) with captions.
fn manifest(dir: &Path, name: &str, media: &str, files: &[PathBuf], n: usize) -> PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("{name}-{i}"),
                "text": format!("Caption number {i}: something happens, {}.", ["loudly", "quietly", "slowly"][i % 3]),
                media: files[i % files.len()],
            })
            .to_string()
        })
        .collect();
    let p = dir.join(format!("{name}.jsonl"));
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn extract_audio_and_video_pairs_and_draw_figure_1() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let f = fixtures();
    let images: Vec<PathBuf> = ["img_64x64.png", "img_20x30.png", "img_150x60.png"]
        .iter()
        .map(|x| f.join("images").join(x))
        .collect();
    let clips: Vec<PathBuf> = ["aud_short_16k.wav", "aud_mid_16k.wav", "aud_stereo_44k.wav"]
        .iter()
        .map(|x| f.join("audio").join(x))
        .collect();
    let video = vec![f.join("video")];
    let pix = manifest(dir.path(), "pix", "image", &images, 6);
    let aud = manifest(dir.path(), "aud", "audio", &clips, 6);
    let vid = manifest(dir.path(), "vid", "video", &video, 4);

    // geom extract on audio pairs: both modalities, every layer.
    let store = dir.path().join("aud.h5");
    let hub = f.join("model_hub");
    ok(&geom(
        &[
            "extract",
            "--model",
            hub.to_str().unwrap(),
            "--pairs",
            aud.to_str().unwrap(),
            "--out",
            store.to_str().unwrap(),
            "--batch-size",
            "4",
        ],
        &cache,
    ));
    let out = ok(&geom(
        &["anisotropy", "--store", store.to_str().unwrap(), "--layers", "all", "--format", "json"],
        &cache,
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    for m in ["text", "audio"] {
        let curve = v["modalities"][m].as_array().unwrap();
        assert_eq!(curve.len(), 4, "{m}: embeddings + 3 layers");
    }

    // A Qwen2.5-VL checkpoint refuses audio pairs with a message, exit 2.
    let vl = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl/model");
    let o = geom(
        &[
            "extract",
            "--model",
            vl.to_str().unwrap(),
            "--pairs",
            aud.to_str().unwrap(),
            "--out",
            dir.path().join("no.h5").to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("audio") && err.contains("Qwen2.5-Omni"), "{err}");
    assert!(!dir.path().join("no.h5").exists());

    // Figure 1's three panels, "before" the hub layout, "after" the thinker layout.
    let cfg = dir.path().join("figure1.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"title = "Figure 1 on the fixture"
kind = "anisotropy"
layers = "all"
[[panels]]
title = "text–image"
pairs = "{}"
modalities = ["text", "image"]
[[panels]]
title = "text–audio"
pairs = "{}"
modalities = ["text", "audio"]
[[panels]]
title = "text–video"
pairs = "{}"
modalities = ["text", "video"]
[[models]]
label = "before"
path = "{}"
dashed = true
[[models]]
label = "after"
path = "{}"
"#,
            pix.display(),
            aud.display(),
            vid.display(),
            hub.display(),
            f.join("model_thinker").display()
        ),
    )
    .unwrap();
    let stem = dir.path().join("fig1");
    let out = ok(&geom(
        &[
            "figure",
            cfg.to_str().unwrap(),
            "--out",
            stem.to_str().unwrap(),
            "--format",
            "json",
        ],
        &cache,
    ));
    assert!(out.contains("audio") && out.contains("video"), "{out}");
    let written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fig1"))
        .collect();
    assert!(written.iter().any(|n| n.ends_with(".svg")), "{written:?}");
    assert!(written.iter().any(|n| n.ends_with(".png")), "{written:?}");
}

/// A checkpoint of an architecture geom does not implement is one error
/// naming its `model_type` and the supported ones (exit 2).
#[test]
fn an_unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("llama");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(
        model.join("config.json"),
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    let o = geom(
        &["embed", "--model", model.to_str().unwrap(), "--text", "hi"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'llama'") && err.contains("qwen2_5_vl") && err.contains("qwen2_5_omni"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
