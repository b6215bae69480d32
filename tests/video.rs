//! Video files against LCO-Embedding's loader (`qwen_omni_utils` 0.0.4
//! `fetch_video`, torchvision backend, and `librosa.load` for the audio
//! track), on the clips and outputs of `tests/fixtures/video`
//! (`scripts/gen_video_fixtures.py`), plus clips made on the fly with the
//! `ffmpeg` program and the error cases.
//!
//! Tolerances, measured with Debian's FFmpeg 5.1 against PyAV 18.1
//! (FFmpeg 8.0 libraries):
//! * frame counts, indices, `video_fps`, sample fps and sizes: **exact**;
//! * decoded pixels: identical (max abs diff 0). Lossy decoders may differ
//!   between FFmpeg builds (MPEG-4 Part 2's IDCT is not bit-exact by
//!   standard), so up to 3 levels, mean 0.25, are allowed and the measured
//!   difference is printed;
//! * the resize of the reference's decoded frames: **exact** (SHA-256); of
//!   synthetic frames: exact when enlarging, within one level on at most 1
//!   value in 10 000 when shrinking (see `input/video/resize.rs`);
//! * audio: max abs diff 1.8e-5 (librosa's 16-bit PCM step), so 5e-5.
//!
//! The tests need `ffmpeg` and `ffprobe` (`make test` installs them); set
//! `GEOM_SKIP_FFMPEG=1` to skip them on a machine without.

use std::path::{Path, PathBuf};
use std::process::Command;

use geom::input::video::{
    load_video, load_video_audio, resize_bicubic_float, sample_indices, smart_nframes,
    video_frame_size, SampledVideo, VideoSampling,
};
use image::RgbImage;
use safetensors::SafeTensors;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/video")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("expected.json")).unwrap()).unwrap()
}

/// Whether the FFmpeg programs are there; panics (with how to get them)
/// unless `GEOM_SKIP_FFMPEG` is set.
fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|p| {
        Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok && std::env::var("GEOM_SKIP_FFMPEG").is_err() {
        panic!(
            "ffmpeg and ffprobe are needed for the video tests (make test installs them; \
             set GEOM_SKIP_FFMPEG=1 to skip)"
        );
    }
    ok
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?} failed");
}

fn sha256(frames: &[RgbImage]) -> String {
    let mut h = Sha256::new();
    for f in frames {
        h.update(f.as_raw());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `(max, mean)` absolute difference of two equal-sized frame lists.
fn diff(a: &[RgbImage], b: &[RgbImage]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let (mut max, mut sum, mut n) = (0u8, 0u64, 0usize);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.dimensions(), y.dimensions());
        for (p, q) in x.as_raw().iter().zip(y.as_raw()) {
            let d = p.abs_diff(*q);
            max = max.max(d);
            sum += d as u64;
            n += 1;
        }
    }
    (max, sum as f64 / n.max(1) as f64)
}

/// The reference's sampled frames as decoded (`[n, h, w, 3]` uint8).
fn reference_frames(st: &SafeTensors, file: &str) -> Vec<RgbImage> {
    let t = st.tensor(&format!("{file}.frames")).unwrap();
    let [n, h, w, 3] = t.shape()[..] else {
        panic!("{file}: shape {:?}", t.shape())
    };
    t.data()
        .chunks_exact(h * w * 3)
        .take(n)
        .map(|c| RgbImage::from_raw(w as u32, h as u32, c.to_vec()).unwrap())
        .collect()
}

/// Equal floats, up to serde_json's number parsing (not correctly rounded
/// without its `float_roundtrip` feature: 1.9652478668872113 reads as
/// 1.965247866887211).
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 2.0 * f64::EPSILON * b.abs()
}

fn check_sampling(v: &SampledVideo, c: &Value, file: &str) {
    assert_eq!(
        v.total_frames as u64,
        c["total_frames"].as_u64().unwrap(),
        "{file}"
    );
    assert!(
        same(v.source_fps, c["video_fps"].as_f64().unwrap()),
        "{file}: {}",
        v.source_fps
    );
    assert!(
        same(v.fps, c["sample_fps"].as_f64().unwrap()),
        "{file}: {}",
        v.fps
    );
    let idx: Vec<usize> = c["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(v.indices, idx, "{file}");
    assert_eq!(v.frames.len(), idx.len(), "{file}");
}

#[test]
fn clips_match_fetch_video() {
    if !have_ffmpeg() {
        return;
    }
    let exp = expected();
    let bytes = std::fs::read(root().join("frames.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let raw = VideoSampling {
        resize: false,
        ..VideoSampling::default()
    };
    for c in exp["clips"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let path = root().join(file);
        let reference = reference_frames(&st, file);

        // Decoded frames, before the resize: counts exact, pixels within tolerance.
        let v = load_video(&path, &raw).unwrap();
        check_sampling(&v, c, file);
        let (max, mean) = diff(&v.frames, &reference);
        println!("{file}: decoded pixels vs PyAV: max abs diff {max}, mean {mean:.4}");
        assert!(max <= 3 && mean <= 0.25, "{file}: max {max}, mean {mean}");
        if max == 0 {
            assert_eq!(sha256(&v.frames), c["frames_sha256"].as_str().unwrap());
        }

        // The resize of the reference's own frames: exact.
        let (rh, rw) = (
            c["resized_height"].as_u64().unwrap() as usize,
            c["resized_width"].as_u64().unwrap() as usize,
        );
        let (h, w) = (
            reference[0].height() as usize,
            reference[0].width() as usize,
        );
        assert_eq!(
            video_frame_size(h, w, reference.len(), &VideoSampling::default()).unwrap(),
            (rh, rw),
            "{file}"
        );
        let resized: Vec<RgbImage> = reference
            .iter()
            .map(|f| resize_bicubic_float(f, rh, rw).unwrap())
            .collect();
        assert_eq!(
            sha256(&resized),
            c["resized_sha256"].as_str().unwrap(),
            "{file}"
        );

        // End to end, with the resize.
        let v = load_video(&path, &VideoSampling::default()).unwrap();
        check_sampling(&v, c, file);
        assert!(v
            .frames
            .iter()
            .all(|f| f.dimensions() == (rw as u32, rh as u32)));
        if max == 0 {
            assert_eq!(
                sha256(&v.frames),
                c["resized_sha256"].as_str().unwrap(),
                "{file}"
            );
        } else {
            let (m, a) = diff(&v.frames, &resized);
            assert!(m <= 3 && a <= 0.25, "{file}: resized max {m}, mean {a}");
        }
    }
}

/// The frame `scripts/gen_video_fixtures.py` makes with `synthetic()`:
/// hashed noise on a checkerboard of 8×8 cells, ramps on the others.
fn synthetic(h: u32, w: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb(std::array::from_fn(|c| {
            let c = c as u32;
            if (x / 8 + y / 8) % 2 == 0 {
                let v = x.wrapping_mul(73_856_093)
                    ^ y.wrapping_mul(19_349_663)
                    ^ c.wrapping_mul(83_492_791)
                    ^ seed.wrapping_mul(2_654_435_761);
                ((v >> 8) & 255) as u8
            } else {
                ((x * 255 / (w - 1).max(1) + y * 3 + c * 50) % 256) as u8
            }
        }))
    })
}

/// torchvision's v1 bicubic antialiased resize of `uint8` frames, as
/// fetch_video runs it: exact when no axis shrinks; when one does, within
/// one level on at most 1 value in 10 000 (measured: 8 values in all).
#[test]
fn resize_matches_torchvision_v1() {
    let exp = expected();
    let bytes = std::fs::read(root().join("frames.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for c in exp["resize_cases"].as_array().unwrap() {
        let get = |k: &str| c[k].as_u64().unwrap() as u32;
        let (h, w, seed) = (get("height"), get("width"), get("seed"));
        let (oh, ow) = (get("resized_height"), get("resized_width"));
        let what = format!("{w}x{h} -> {ow}x{oh}");
        let out = resize_bicubic_float(&synthetic(h, w, seed), oh as usize, ow as usize).unwrap();
        if oh >= h && ow >= w {
            assert_eq!(sha256(&[out]), c["sha256"].as_str().unwrap(), "{what}");
            continue;
        }
        let n = out.as_raw().len() as u64;
        let sum: u64 = out.as_raw().iter().map(|&v| v as u64).sum();
        let want = c["sum"].as_u64().unwrap();
        println!("{what}: sum of values {sum} vs torch {want}");
        assert!(
            sum.abs_diff(want) <= n / 10_000 + 1,
            "{what}: sum {sum} vs {want}"
        );
        if let Ok(t) = st.tensor(&format!("resize_{seed}")) {
            let reference = RgbImage::from_raw(ow, oh, t.data().to_vec()).unwrap();
            let (max, mean) = diff(&[out], &[reference]);
            println!("{what}: max abs diff {max}, mean {mean:.6}");
            assert!(max <= 1 && mean <= 1e-4, "{what}: max {max}, mean {mean}");
        }
    }
}

#[test]
fn audio_track_matches_librosa() {
    if !have_ffmpeg() {
        return;
    }
    let exp = expected();
    let bytes = std::fs::read(root().join("frames.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for c in exp["clips"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let audio = load_video_audio(&root().join(file)).unwrap();
        let Some(meta) = c["audio"].as_object() else {
            assert!(audio.is_none(), "{file} has no audio track");
            continue;
        };
        let audio = audio.unwrap_or_else(|| panic!("{file} has an audio track"));
        assert_eq!(audio.len() as u64, meta["len"].as_u64().unwrap(), "{file}");
        let t = st.tensor(&format!("{file}.audio_1s")).unwrap();
        let reference: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let max = reference
            .iter()
            .zip(&audio)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{file}: audio vs librosa: max abs diff {max:.2e} over the first second");
        assert!(max <= 5e-5, "{file}: {max}");
        let sum_sq: f64 = audio.iter().map(|&x| x as f64 * x as f64).sum();
        let want = meta["sum_sq"].as_f64().unwrap();
        assert!(
            (sum_sq - want).abs() <= 1e-4 * want,
            "{file}: {sum_sq} vs {want}"
        );
    }
}

#[test]
fn sampling_formulas_match_the_reference() {
    let exp = expected();
    for c in exp["nframes_cases"].as_array().unwrap() {
        let total = c["total_frames"].as_u64().unwrap() as usize;
        let fps = c["video_fps"].as_f64().unwrap();
        let got = smart_nframes(total, fps, &VideoSampling::default()).ok();
        assert_eq!(
            got.map(|n| n as u64),
            c["nframes"].as_u64(),
            "{total} frames at {fps} fps"
        );
    }
    for c in exp["linspace_cases"].as_array().unwrap() {
        let total = c["total_frames"].as_u64().unwrap() as usize;
        let n = c["nframes"].as_u64().unwrap() as usize;
        let want: Vec<usize> = c["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            sample_indices(total, n),
            want,
            "linspace(0, {total} - 1, {n})"
        );
    }
}

/// Odd frame rates and counts made here: the frames kept are exactly the
/// sampled indices of a plain full decode.
#[test]
fn odd_rates_and_counts_select_the_right_frames() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (rate, frames, ext) in [
        ("30000/1001", "89", "mp4"),
        ("25", "101", "mkv"),
        ("24000/1001", "47", "webm"),
    ] {
        let path = dir.path().join(format!("clip.{ext}"));
        let src = format!("testsrc2=size=40x30:rate={rate}");
        ffmpeg(&["-f", "lavfi", "-i", &src, "-frames:v", frames], &path);
        let all = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .output()
            .unwrap()
            .stdout;
        let total: usize = frames.parse().unwrap();
        assert_eq!(all.len(), total * 40 * 30 * 3, "{ext}");
        let s = VideoSampling {
            resize: false,
            ..VideoSampling::default()
        };
        let v = load_video(&path, &s).unwrap();
        let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
        let fps = num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap();
        assert_eq!(v.total_frames, total, "{ext}");
        assert_eq!(v.source_fps, fps, "{ext}");
        let n = smart_nframes(total, fps, &s).unwrap();
        assert_eq!(v.indices, sample_indices(total, n), "{ext}");
        assert_eq!(v.fps, n as f64 / total as f64 * fps);
        for (f, &i) in v.frames.iter().zip(&v.indices) {
            assert_eq!(
                f.as_raw()[..],
                all[i * 3600..(i + 1) * 3600],
                "{ext} frame {i}"
            );
        }
    }
}

/// A VFR Matroska file has no average frame rate (the reference fails);
/// geom falls back to `r_frame_rate`.
#[test]
fn vfr_matroska_uses_r_frame_rate() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vfr.mkv");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=32x24:rate=10:duration=1",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=32x24:rate=30:duration=1",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-fps_mode",
            "vfr",
        ],
        &path,
    );
    let v = load_video(&path, &VideoSampling::default()).unwrap();
    assert_eq!((v.total_frames, v.source_fps), (40, 30.0));
    assert_eq!(v.frames.len(), 4);
}

#[test]
fn frame_folders_keep_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3u8 {
        RgbImage::from_pixel(20, 10, image::Rgb([i, 0, 0]))
            .save(dir.path().join(format!("f{i:03}.png")))
            .unwrap();
    }
    let v = load_video(dir.path(), &VideoSampling::default()).unwrap();
    assert_eq!((v.frames.len(), v.total_frames, v.fps), (3, 3, 2.0));
    assert_eq!(v.frames[2].get_pixel(0, 0).0, [2, 0, 0]);
    assert_eq!(v.frames[0].dimensions(), (20, 10));
    assert_eq!(load_video_audio(dir.path()).unwrap(), None);
}

/// Each bad input is one error naming the file and what was expected.
#[test]
fn bad_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.mp4");
    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let corrupt = d.join("corrupt.mp4");
    let mut junk = b"\x00\x00\x00\x18ftypmp42".to_vec();
    junk.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&corrupt, &junk).unwrap();
    let text = d.join("notes.webm");
    std::fs::write(&text, "not a video\n").unwrap();
    let mut cases = vec![
        (missing, "cannot read it"),
        (empty, "empty"),
        (corrupt.clone(), ""),
        (text, ""),
    ];
    let ffmpeg_there = have_ffmpeg();
    if ffmpeg_there {
        let wav = d.join("tone.wav");
        ffmpeg(&["-f", "lavfi", "-i", "sine=duration=0.2"], &wav);
        cases.push((wav, "no video stream"));
        let one = d.join("one.mp4");
        ffmpeg(
            &["-f", "lavfi", "-i", "testsrc2=size=32x24", "-frames:v", "1"],
            &one,
        );
        cases.push((one, "too few to sample"));
    }
    for (path, why) in cases {
        if !ffmpeg_there && why.is_empty() {
            continue;
        }
        let e = load_video(&path, &VideoSampling::default())
            .unwrap_err()
            .to_string();
        println!("{e}");
        assert!(e.contains(&*path.to_string_lossy()), "{e}");
        assert!(e.contains(why), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        if why != "too few to sample" {
            assert!(e.contains("expected a video file"), "{e}");
        }
    }
    if ffmpeg_there {
        let e = load_video_audio(&corrupt).unwrap_err().to_string();
        assert!(
            e.contains("corrupt.mp4") && e.contains("expected a video file"),
            "{e}"
        );
    }
}

/// Without the FFmpeg programs, a video file is one error saying how to
/// install them (run in a child process with `GEOM_FFPROBE` /
/// `GEOM_FFMPEG` pointing nowhere, so other tests keep their environment).
#[test]
fn missing_ffmpeg_is_a_clear_error() {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["missing_ffmpeg_child", "--exact", "--ignored", "--quiet"])
        .env("GEOM_FFPROBE", "/nonexistent/geom/ffprobe")
        .env("GEOM_FFMPEG", "/nonexistent/geom/ffmpeg")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
#[ignore = "run by missing_ffmpeg_is_a_clear_error with the programs hidden"]
fn missing_ffmpeg_child() {
    let path = root().join("vp9.webm");
    for e in [
        load_video(&path, &VideoSampling::default()).unwrap_err(),
        load_video_audio(&path).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(e.contains("/nonexistent/geom/ffprobe"), "{e}");
        assert!(e.contains("apt-get install ffmpeg"), "{e}");
    }
}
