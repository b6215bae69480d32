//! Image and video preprocessing against the transformers 4.57.6 processor
//! outputs stored in `tests/fixtures/qwen2_5_vl/cases` (see that folder's
//! README, points 8 and 9), plus `smart_resize`, config parsing and image
//! loading.
//!
//! Tolerance: **exact**. `pixel_values` (the fast processor, torchvision's
//! antialiased bicubic on `uint8`) and `pixel_values_videos` are reproduced
//! bit for bit on every case (measured max abs diff 0, so the check is
//! equality). Against the slow PIL processor (`pixel_values_slow`) the
//! measured max abs diff is 0.0150 (1 `u8` level) on `image_0..3` and
//! `batch_mixed` and 0.0900 (6 levels) on `two_images`, where Pillow 13 does
//! the vertical pass of 50×90 → 56×84 first; it is printed, and bounded by
//! 6 levels here.

use std::path::{Path, PathBuf};

use geom::input::image::{
    frame_paths, load_frames, load_image, preprocess_images, preprocess_video, smart_resize,
    ImageProcessorConfig, Pixels, Resample, CLIP_MEAN, CLIP_STD,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl")
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("cases/index.json")).unwrap())
        .unwrap()
}

/// A tensor of a case file as f64, flattened, with its shape.
fn tensor(file: &Path, key: &str) -> Option<(Vec<f64>, Vec<usize>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(key).ok()?;
    let v = match t.dtype() {
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    };
    Some((v, t.shape().to_vec()))
}

fn grids(file: &Path, key: &str) -> Vec<[usize; 3]> {
    let (v, _) = tensor(file, key).unwrap();
    v.chunks(3)
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect()
}

/// Max abs difference, in normalised units and in `u8` levels
/// (`|d| · 255 · std[channel]`; a row is (channel, temporal, py, px)).
fn max_diff(ours: &Pixels, reference: &[f64]) -> (f64, f64) {
    assert_eq!(ours.values.len(), reference.len());
    let per_channel = ours.dim / 3;
    let mut norm = 0.0f64;
    let mut levels = 0.0f64;
    for (i, (&a, &b)) in ours.values.iter().zip(reference).enumerate() {
        let d = (a as f64 - b).abs();
        let c = (i % ours.dim) / per_channel;
        norm = norm.max(d);
        levels = levels.max(d * 255.0 * CLIP_STD[c] as f64);
    }
    (norm, levels)
}

#[test]
fn images_match_the_fast_processor_on_every_case() {
    let cfg = ImageProcessorConfig::from_dir(&root().join("model")).unwrap();
    let mut checked = 0;
    for case in index()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let paths: Vec<PathBuf> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| root().join(p.as_str().unwrap()))
            .collect();
        if paths.is_empty() {
            continue;
        }
        let file = root().join(case["file"].as_str().unwrap());
        let images: Vec<_> = paths.iter().map(|p| load_image(p).unwrap()).collect();
        let px = preprocess_images(&images, &cfg).unwrap();

        assert_eq!(px.grids, grids(&file, "image_grid_thw"), "{name}: grids");
        let (fast, shape) = tensor(&file, "pixel_values").unwrap();
        assert_eq!(shape, [px.n_rows(), px.dim], "{name}: shape");
        let (d_fast, l_fast) = max_diff(&px, &fast);
        let (slow, _) = tensor(&file, "pixel_values_slow").unwrap();
        let (d_slow, l_slow) = max_diff(&px, &slow);
        println!(
            "{name}: vs fast {d_fast:.3e} ({l_fast:.2} levels), vs slow (PIL) {d_slow:.4} \
             ({l_slow:.2} levels)"
        );
        assert_eq!(d_fast, 0.0, "{name}: differs from pixel_values");
        assert!(l_slow <= 6.0 + 1e-3, "{name}: {l_slow} levels from PIL");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn videos_match_the_video_processor() {
    for dir in ["model", "model_sharded"] {
        // model_sharded has no video_preprocessor_config.json: the video
        // processor reads preprocessor_config.json (same result for 80×60).
        let cfg = ImageProcessorConfig::video_from_dir(&root().join(dir)).unwrap();
        for case in index()["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let frames = case["video_frames"].as_array().unwrap();
            if frames.is_empty() {
                continue;
            }
            let paths: Vec<PathBuf> = frames
                .iter()
                .map(|p| root().join(p.as_str().unwrap()))
                .collect();
            let file = root().join(case["file"].as_str().unwrap());
            let fps = case["processor_kwargs"].get("fps").and_then(Value::as_f64);
            let (px, spg) = preprocess_video(&load_frames(&paths).unwrap(), &cfg, fps).unwrap();

            assert_eq!(px.grids, grids(&file, "video_grid_thw"), "{name}");
            let (reference, _) = tensor(&file, "pixel_values_videos").unwrap();
            let (d, levels) = max_diff(&px, &reference);
            println!("{name} ({dir}): vs pixel_values_videos {d:.3e} ({levels:.2} levels)");
            assert_eq!(d, 0.0, "{name} ({dir})");
            let (s, _) = tensor(&file, "second_per_grid_ts").unwrap();
            assert_eq!(spg as f32 as f64, s[0], "{name}: second_per_grid_t");
        }
    }
}

#[test]
fn video_folder_and_padding() {
    let dir = root().join("video");
    let names: Vec<String> = frame_paths(&dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "frame_000.png",
            "frame_001.png",
            "frame_002.png",
            "frame_003.png"
        ]
    );
    let frames = load_frames(&[&dir]).unwrap();
    let cfg = ImageProcessorConfig::video_from_dir(&root().join("model")).unwrap();
    // 3 frames are padded to 4 by repeating the last: the second temporal
    // patch is frame 2 twice.
    let (three, _) = preprocess_video(&frames[..3], &cfg, None).unwrap();
    let padded = [
        frames[0].clone(),
        frames[1].clone(),
        frames[2].clone(),
        frames[2].clone(),
    ];
    let (four, _) = preprocess_video(&padded, &cfg, None).unwrap();
    assert_eq!(three, four);
    assert_eq!(three.grids, [[2, 4, 6]]);

    let mut odd = frames.clone();
    odd[1] = image::RgbImage::new(10, 10);
    let e = preprocess_video(&odd, &cfg, None).unwrap_err().to_string();
    assert!(e.contains("frame 1") && e.contains("same size"), "{e}");
    assert!(preprocess_video(&[], &cfg, None).is_err());
    assert!(preprocess_video(&frames, &cfg, Some(0.0)).is_err());
}

#[test]
fn smart_resize_matches_the_reference() {
    let s = |h, w| smart_resize(h, w, 28, 3136, 25088);
    // Python round is round-half-to-even: 70/28 = 2.5 → 2, 42/28 = 1.5 → 2.
    assert_eq!(s(70, 120).unwrap(), (56, 112));
    assert_eq!(s(42, 98).unwrap(), (56, 112));
    assert_eq!(s(64, 64).unwrap(), (56, 56));
    // Over max_pixels: floor after scaling by sqrt(h·w / max).
    assert_eq!(s(150, 200).unwrap(), (112, 168));
    // Under min_pixels: ceil after scaling by sqrt(min / (h·w)).
    assert_eq!(s(30, 20).unwrap(), (84, 56));
    assert_eq!(s(1, 1).unwrap(), (56, 56));
    // The default max_pixels of the image processor.
    assert_eq!(
        smart_resize(3000, 4000, 28, 3136, 1_003_520).unwrap(),
        (840, 1148)
    );
    // Aspect ratio: 200 is allowed, more is an error.
    assert_eq!(s(1, 200).unwrap(), (28, 812));
    let e = s(1, 201).unwrap_err().to_string();
    assert!(e.contains("aspect ratio") && e.contains("200"), "{e}");
    assert!(s(0, 10).is_err());
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn config_from_the_fixture_checkpoints() {
    let image = ImageProcessorConfig::from_dir(&root().join("model")).unwrap();
    assert_eq!((image.min_pixels, image.max_pixels), (3136, 25088));
    assert_eq!(
        (
            image.patch_size,
            image.temporal_patch_size,
            image.merge_size
        ),
        (14, 2, 2)
    );
    assert_eq!(image.image_mean, CLIP_MEAN);
    assert_eq!(image.image_std, CLIP_STD);
    assert_eq!(image.resample, Resample::Bicubic);
    assert_eq!(image.row_len(), 1176);
    let video = ImageProcessorConfig::video_from_dir(&root().join("model")).unwrap();
    assert_eq!((video.min_pixels, video.max_pixels), (3136, 12544));
    // No video_preprocessor_config.json: preprocessor_config.json's values.
    let video = ImageProcessorConfig::video_from_dir(&root().join("model_sharded")).unwrap();
    assert_eq!((video.min_pixels, video.max_pixels), (3136, 25088));
    assert_eq!(
        ImageProcessorConfig::from_dir(&root().join("model_sharded")).unwrap(),
        image
    );
}

#[test]
fn config_flat_nested_defaults_and_precedence() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // Flat processor_config.json (no preprocessor_config.json); missing keys
    // take the class defaults; unknown keys are ignored.
    write(
        d,
        "processor_config.json",
        r#"{"min_pixels": 1000, "max_pixels": 2000, "image_mean": 0.5, "what": [1, 2]}"#,
    );
    let c = ImageProcessorConfig::from_dir(d).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (1000, 2000));
    assert_eq!(c.image_mean, [0.5; 3]);
    assert_eq!(c.image_std, CLIP_STD);
    assert_eq!(c.patch_size, 14);
    // The video processor reads the same flat file, with video defaults for
    // what it lacks.
    let v = ImageProcessorConfig::video_from_dir(d).unwrap();
    assert_eq!((v.min_pixels, v.max_pixels), (1000, 2000));

    // Nested (transformers 5): settings under "image_processor" /
    // "video_processor"; min_pixels / max_pixels win over size.
    write(
        d,
        "processor_config.json",
        r#"{"processor_class": "Qwen2_5_VLProcessor",
            "image_processor": {"size": {"shortest_edge": 10, "longest_edge": 20},
                                "max_pixels": 30, "patch_size": 16, "resample": 2},
            "video_processor": {"size": {"shortest_edge": 40, "longest_edge": 50}}}"#,
    );
    let c = ImageProcessorConfig::from_dir(d).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (10, 30));
    assert_eq!(c.patch_size, 16);
    assert_eq!(c.resample, Resample::Bilinear);
    let v = ImageProcessorConfig::video_from_dir(d).unwrap();
    assert_eq!((v.min_pixels, v.max_pixels), (40, 50));

    // A nested file without "video_processor": the video processor sees the
    // top level, i.e. nothing it knows → the video class defaults.
    write(
        d,
        "processor_config.json",
        r#"{"image_processor": {"min_pixels": 5, "max_pixels": 6}}"#,
    );
    let v = ImageProcessorConfig::video_from_dir(d).unwrap();
    assert_eq!(v, ImageProcessorConfig::video_default());
    assert_eq!((v.min_pixels, v.max_pixels), (100_352, 602_112));

    // preprocessor_config.json comes first; size alone gives the bounds.
    write(
        d,
        "preprocessor_config.json",
        r#"{"size": {"shortest_edge": 7, "longest_edge": 8}}"#,
    );
    let c = ImageProcessorConfig::from_dir(d).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (7, 8));
    // An empty file: all class defaults.
    write(d, "preprocessor_config.json", "{}");
    assert_eq!(
        ImageProcessorConfig::from_dir(d).unwrap(),
        ImageProcessorConfig::default()
    );
    // A size without both keys (and no min/max_pixels) is refused.
    write(
        d,
        "preprocessor_config.json",
        r#"{"size": {"height": 224, "width": 224}}"#,
    );
    let e = ImageProcessorConfig::from_dir(d).unwrap_err().to_string();
    assert!(e.contains("shortest_edge"), "{e}");
}

#[test]
fn config_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let e = ImageProcessorConfig::from_dir(d).unwrap_err().to_string();
    assert!(e.contains("preprocessor_config.json"), "{e}");

    write(d, "preprocessor_config.json", "{\"min_pixels\": 3136,");
    let e = ImageProcessorConfig::from_dir(d).unwrap_err().to_string();
    assert!(
        e.contains(&d.join("preprocessor_config.json").display().to_string()),
        "{e}"
    );
    write(d, "preprocessor_config.json", r#"{"min_pixels": "many"}"#);
    let e = ImageProcessorConfig::from_dir(d).unwrap_err().to_string();
    assert!(
        e.contains("preprocessor_config.json") && e.contains("min_pixels"),
        "{e}"
    );
    write(d, "preprocessor_config.json", r#"{"resample": 0}"#);
    let e = ImageProcessorConfig::from_dir(d).unwrap_err().to_string();
    assert!(e.contains("resample 0"), "{e}");
    write(d, "preprocessor_config.json", "[1, 2]");
    assert!(ImageProcessorConfig::from_dir(d).is_err());
}

#[test]
fn load_image_converts_like_pil_and_rejects_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // RGBA: alpha is dropped, not composited (PIL convert("RGB")).
    let rgba = image::RgbaImage::from_fn(4, 3, |x, y| image::Rgba([x as u8 * 60, y as u8, 7, 0]));
    let p = d.join("rgba.png");
    rgba.save(&p).unwrap();
    let rgb = load_image(&p).unwrap();
    assert_eq!(rgb.dimensions(), (4, 3));
    assert_eq!(rgb.get_pixel(3, 2).0, [180, 2, 7]);
    // Grey is replicated.
    let grey = image::GrayImage::from_pixel(2, 2, image::Luma([77]));
    let p = d.join("grey.png");
    grey.save(&p).unwrap();
    assert!(load_image(&p).unwrap().pixels().all(|px| px.0 == [77; 3]));

    // A truncated PNG.
    let bytes = std::fs::read(root().join("images/img_64x64.png")).unwrap();
    let p = d.join("truncated.png");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_image(&p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string()) && e.contains("PNG"),
        "{e}"
    );
    // A text file named .png.
    let p = d.join("notes.png");
    std::fs::write(&p, "not an image\n").unwrap();
    let e = load_image(&p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string()) && e.contains("PNG or JPEG"),
        "{e}"
    );
    // A missing file.
    let p = d.join("missing.png");
    let e = load_image(&p).unwrap_err().to_string();
    assert!(e.contains("missing.png"), "{e}");
    // No frames in a folder.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = load_frames(&[&empty]).unwrap_err().to_string();
    assert!(e.contains("no video frames"), "{e}");
}
