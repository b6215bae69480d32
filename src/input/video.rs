//! Videos as LCO-Embedding's loader sees them: a video file decoded by
//! FFmpeg and sampled as `qwen_omni_utils.fetch_video` does, or a folder of
//! frame images.
//!
//! LCO-Emb reads a video with `qwen_omni_utils.process_mm_info` (pinned
//! `qwen-omni-utils==0.0.4`, `v2_5/vision_process.py`). Without decord or
//! torchcodec installed it takes the torchvision backend,
//! `torchvision.io.read_video(path, pts_unit="sec")` over PyAV, which geom
//! follows (LCO's training requirements pin the `[decord]` extra; decord
//! counts frames and reads `get_avg_fps` its own way, not checked here),
//! and then:
//!
//! 1. **Frame count** ([`smart_nframes`]): `total / video_fps · FPS`, clamped
//!    to `[FPS_MIN_FRAMES, min(FPS_MAX_FRAMES, total)]` (bounds rounded to
//!    `FRAME_FACTOR`), then floored to an even number; fewer than 2 is an
//!    error, as in the reference.
//! 2. **Indices** ([`sample_indices`]): `torch.linspace(0, total − 1, n)
//!    .round()`, reproduced in `f32` with PyTorch's CPU kernel (the first half
//!    `step·i`, the second `end − step·(n−1−i)`, each one fused
//!    multiply-add, as the AVX2 / AVX-512 builds compile it) and
//!    ties-to-even rounding. Plain `f64` arithmetic differs from PyTorch for
//!    long videos (about 75% of random cases with 1 600 – 400 000 frames).
//! 3. **Resize** ([`video_frame_size`]): `max_pixels = max(min(VIDEO_MAX_PIXELS,
//!    VIDEO_TOTAL_PIXELS / n · FRAME_FACTOR), ⌊1.05 · VIDEO_MIN_PIXELS⌋)`, then
//!    qwen_omni_utils' own `smart_resize` (not transformers': a real-valued
//!    `max_pixels`, `max(factor, round(side))` before the bounds, no
//!    `max(factor, ·)` after flooring), then torchvision's v1
//!    `transforms.functional.resize(…, BICUBIC, antialias=True)`, which on
//!    `uint8` runs in `float32` ([`resize_bicubic_float`]: identical to torch
//!    when enlarging, within one level on a few values in a million when
//!    shrinking). It is not the `uint8` kernel of
//!    [`crate::input::image::resize_antialias`] (transformers' fast
//!    processors, torchvision v2), which differs by up to 22 levels here.
//! 4. **Sample fps**: `n / total · video_fps`, which the processor turns into
//!    `second_per_grid_t = temporal_patch_size / fps`.
//!
//! # Decoding
//!
//! Files go through the `ffmpeg` and `ffprobe` programs (Debian's `ffmpeg`
//! package; `GEOM_FFMPEG` / `GEOM_FFPROBE` name other binaries). `ffprobe`
//! lists the packets' timestamps without decoding; `ffmpeg` then decodes the
//! first video stream once (`-copyts -noautorotate`, passthrough frame
//! timing) to raw `rgb24` on a pipe, and `showinfo` names each frame's
//! timestamp, so only the sampled frames are kept (resized as they arrive).
//!
//! torchvision's frame list is the decoded frames keyed by timestamp: sorted,
//! one per timestamp (the last decoded wins), negative timestamps dropped.
//! geom builds the same list from the decoded timestamps; when it differs
//! from the packet listing (frames without a timestamp, decoder drops) the
//! file is decoded a second time with the corrected list. `video_fps` is the
//! stream's `avg_frame_rate` (PyAV's `average_rate`); when the container has
//! none, geom uses `r_frame_rate` where LCO's loader would fail.
//!
//! Measured against PyAV 18.1 (FFmpeg 8.0 libraries) with torchvision
//! 0.25's `read_video`, decoding with Debian's FFmpeg 5.1: frame counts,
//! timestamps and `video_fps` are identical, and 8-bit sources (H.264
//! 4:2:0 / 4:2:2 / 4:4:4, full and limited range, BT.709 tags, VP9 with odd
//! sizes, MPEG-4 Part 2 with B-frames, MJPEG) decode to identical `rgb24`
//! pixels. 10-bit sources do not: swscale's high-bit-depth conversion
//! changed between the two FFmpeg versions (H.264 `yuv420p10le`: mean 1.7,
//! up to 67 levels). Rotated videos are not rotated (neither is PyAV); a
//! resolution change mid-stream is scaled to the first frame's size by
//! FFmpeg, where torchvision would fail to stack the frames.
//!
//! Audio ([`load_video_audio`]): LCO loads a video's audio track with
//! `librosa.load(path, sr=16000)` (FFmpeg through audioread as 16-bit PCM,
//! mean of the channels, soxr "HQ" resampling). geom asks FFmpeg for the
//! same in `f32`: `pan` to the mean of the channels, then
//! `aresample=16000:resampler=soxr` (libsoxr at 20-bit precision, like
//! soxr's HQ); measured max abs difference 1.8e-5 on AAC tracks (the
//! 16-bit quantisation librosa adds). The length is python-soxr's,
//! `ceil(n · 16000 / rate)` with zeros after what libsoxr produced (`astats`
//! reports `n`; FFmpeg's own output is one sample shorter). An FFmpeg
//! without libsoxr falls back to its own resampler (differences up to about
//! 7e-3).

use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;

use image::RgbImage;

use crate::error::{GeomError, Result};
use crate::input::image::load_frames;

mod ffmpeg;
mod resize;

pub use resize::resize_bicubic_float;

/// Frames sampled per second (`FPS`, qwen_omni_utils `vision_process.py`).
pub const FPS: f64 = 2.0;
/// The sampled frame count is a multiple of this (`FRAME_FACTOR`).
pub const FRAME_FACTOR: usize = 2;
/// Fewest frames sampled (`FPS_MIN_FRAMES`).
pub const FPS_MIN_FRAMES: usize = 4;
/// Most frames sampled (`FPS_MAX_FRAMES`).
pub const FPS_MAX_FRAMES: usize = 768;
/// Resized sides are multiples of this: patch 14 × spatial merge 2
/// (`IMAGE_FACTOR`).
pub const IMAGE_FACTOR: usize = 28;
/// Smallest frame size after resizing (`VIDEO_MIN_PIXELS = 128 * 28 * 28`).
pub const VIDEO_MIN_PIXELS: usize = 128 * 28 * 28;
/// Largest frame size after resizing (`VIDEO_MAX_PIXELS = 768 * 28 * 28`).
pub const VIDEO_MAX_PIXELS: usize = 768 * 28 * 28;
/// Pixel budget of all frames together (`VIDEO_TOTAL_PIXELS =
/// int(128000 * 28 * 28 * 0.9)`, 0.0.9's `MODEL_SEQ_LEN * 28 * 28 * 0.9`).
pub const VIDEO_TOTAL_PIXELS: usize = 90_316_800;
/// Largest aspect ratio `smart_resize` accepts (`MAX_RATIO`).
pub const MAX_RATIO: f64 = 200.0;
/// The fps of a folder of frames: the processor's default, as geom has
/// always used for frame folders (every frame is kept, none resized).
pub const FOLDER_FPS: f64 = 2.0;
/// Sample rate of [`load_video_audio`] (Whisper's, `librosa.load(sr=16000)`).
pub const AUDIO_SAMPLE_RATE: usize = 16_000;

/// Widest or tallest video frame accepted.
pub const MAX_VIDEO_EDGE: usize = 16_384;
/// Most frames a video may have (a 46-hour video at 60 fps).
pub const MAX_VIDEO_FRAMES: usize = 10_000_000;
/// Most memory the sampled frames may take (after resizing, if enabled).
pub const MAX_SAMPLED_BYTES: u64 = 4 << 30;
/// Longest audio track [`load_video_audio`] returns, in seconds.
pub const MAX_AUDIO_SECONDS: usize = 3600;

/// A decoded, sampled video: frames (RGB) and the fps of the sampled frames.
#[derive(Clone, Debug)]
pub struct SampledVideo {
    /// The sampled frames in order, resized if [`VideoSampling::resize`].
    pub frames: Vec<RgbImage>,
    /// Frames per second of `frames` (qwen_omni_utils' `sample_fps`; the
    /// processor's `fps`).
    pub fps: f64,
    /// Frames in the whole video (torchvision's count).
    pub total_frames: usize,
    /// The video's own frame rate (`avg_frame_rate`).
    pub source_fps: f64,
    /// Index of each sampled frame among the `total_frames`.
    pub indices: Vec<usize>,
}

/// How [`load_video`] samples and resizes a video file.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSampling {
    /// Frames sampled per second of video ([`FPS`]).
    pub fps: f64,
    /// Fewest frames ([`FPS_MIN_FRAMES`]).
    pub min_frames: usize,
    /// Most frames ([`FPS_MAX_FRAMES`]).
    pub max_frames: usize,
    /// The frame count is a multiple of this ([`FRAME_FACTOR`]).
    pub frame_factor: usize,
    /// Smallest resized frame, in pixels ([`VIDEO_MIN_PIXELS`]).
    pub min_pixels: usize,
    /// Largest resized frame, in pixels ([`VIDEO_MAX_PIXELS`]).
    pub max_pixels: usize,
    /// Pixel budget of all frames ([`VIDEO_TOTAL_PIXELS`]).
    pub total_pixels: usize,
    /// Whether to resize as `fetch_video` does (true); false keeps the
    /// decoded size.
    pub resize: bool,
}

impl Default for VideoSampling {
    /// qwen_omni_utils' constants.
    fn default() -> Self {
        Self {
            fps: FPS,
            min_frames: FPS_MIN_FRAMES,
            max_frames: FPS_MAX_FRAMES,
            frame_factor: FRAME_FACTOR,
            min_pixels: VIDEO_MIN_PIXELS,
            max_pixels: VIDEO_MAX_PIXELS,
            total_pixels: VIDEO_TOTAL_PIXELS,
            resize: true,
        }
    }
}

fn ceil_by(x: f64, f: usize) -> f64 {
    (x / f as f64).ceil() * f as f64
}

fn floor_by(x: f64, f: usize) -> f64 {
    (x / f as f64).floor() * f as f64
}

/// qwen_omni_utils' `smart_nframes` with `fps` (not `nframes`) given: the
/// number of frames to sample from `total_frames` frames at `video_fps`.
pub fn smart_nframes(total_frames: usize, video_fps: f64, s: &VideoSampling) -> Result<usize> {
    if !(video_fps.is_finite() && video_fps > 0.0 && s.fps.is_finite() && s.fps > 0.0) {
        return Err(GeomError::invalid(format!(
            "cannot sample a video at {} fps from {video_fps} fps (expected positive frame rates)",
            s.fps
        )));
    }
    if s.frame_factor == 0 {
        return Err(GeomError::invalid("frame_factor must be at least 1"));
    }
    let total = total_frames as f64;
    let min_frames = ceil_by(s.min_frames as f64, s.frame_factor);
    let max_frames = floor_by(s.max_frames.min(total_frames) as f64, s.frame_factor);
    let n = total / video_fps * s.fps;
    let n = floor_by(n.max(min_frames).min(max_frames).min(total), s.frame_factor);
    if !(s.frame_factor as f64 <= n && n <= total) {
        return Err(GeomError::invalid(format!(
            "{total_frames} frame(s) are too few to sample: qwen_omni_utils' smart_nframes needs \
             at least {} (it gives {n})",
            s.frame_factor
        )));
    }
    Ok(n as usize)
}

/// `torch.linspace(0, total − 1, n).round()` as PyTorch computes it on the
/// CPU in `float32`: `step = (total − 1) / (n − 1)`; index `i < n/2` is
/// `step·i`, the others `end − step·(n − 1 − i)` (one fused multiply-add
/// each); ties round to even.
pub fn sample_indices(total: usize, n: usize) -> Vec<usize> {
    if n <= 1 || total == 0 {
        return vec![0; n.min(total)];
    }
    let end = (total - 1) as f32;
    let step = end / (n - 1) as f32;
    (0..n)
        .map(|i| {
            let v = if i < n / 2 {
                step.mul_add(i as f32, 0.0)
            } else {
                (-step).mul_add((n - 1 - i) as f32, end)
            };
            v.round_ties_even() as usize
        })
        .collect()
}

/// The resized `(height, width)` of `nframes` sampled `height × width`
/// frames, as `fetch_video` computes it: the per-frame `max_pixels` shrinks
/// with the frame count ([`VideoSampling::total_pixels`]), then
/// qwen_omni_utils' `smart_resize` with factor [`IMAGE_FACTOR`].
pub fn video_frame_size(
    height: usize,
    width: usize,
    nframes: usize,
    s: &VideoSampling,
) -> Result<(usize, usize)> {
    let min_pixels = s.min_pixels as f64;
    let budget = s.total_pixels as f64 / nframes.max(1) as f64 * s.frame_factor as f64;
    let max_pixels = (s.max_pixels as f64)
        .min(budget)
        .max((min_pixels * 1.05).floor());
    omni_smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
}

/// qwen_omni_utils' `smart_resize` (`vision_process.py`), which differs
/// from transformers' [`crate::input::image::smart_resize`] in three ways:
/// `max_pixels` is a real number, each side is at least `factor` before the
/// bounds are checked, and a side floored to 0 stays 0 (an error here; the
/// reference would fail in the resize).
fn omni_smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: f64,
    max_pixels: f64,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(GeomError::invalid(format!(
            "cannot resize an empty {width}x{height} frame"
        )));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_RATIO {
        return Err(GeomError::invalid(format!(
            "a {width}x{height} video has aspect ratio {ratio}; it must be at most {MAX_RATIO}"
        )));
    }
    let mut h_bar = f.max((h / f).round_ties_even() * f);
    let mut w_bar = f.max((w / f).round_ties_even() * f);
    if h_bar * w_bar > max_pixels {
        let beta = (h * w / max_pixels).sqrt();
        h_bar = (h / beta / f).floor() * f;
        w_bar = (w / beta / f).floor() * f;
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    if h_bar < 1.0 || w_bar < 1.0 {
        return Err(GeomError::invalid(format!(
            "a {width}x{height} video resizes to {w_bar}x{h_bar} with max_pixels {max_pixels} \
             (expected a non-empty size; the aspect ratio is too extreme)"
        )));
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// Loads a video: a file decoded with FFmpeg and sampled as LCO-Emb's
/// loader does (see the module docs), or a folder of frame images, of which
/// every frame is kept as it is, at [`FOLDER_FPS`].
///
/// Errors name the file: missing, empty, not a decodable video, without a
/// video stream, too short to sample (fewer than 2 frames), or too large
/// ([`MAX_VIDEO_EDGE`], [`MAX_VIDEO_FRAMES`], [`MAX_SAMPLED_BYTES`]); and
/// the `ffmpeg` program missing, with how to install it.
pub fn load_video(path: &Path, sampling: &VideoSampling) -> Result<SampledVideo> {
    if path.is_dir() {
        let frames = load_frames(&[path])?;
        let n = frames.len();
        return Ok(SampledVideo {
            frames,
            fps: FOLDER_FPS,
            total_frames: n,
            source_fps: FOLDER_FPS,
            indices: (0..n).collect(),
        });
    }
    ffmpeg::check_file(path)?;
    let probe = ffmpeg::probe_video(path)?;
    let mut timestamps = probe.timestamps;
    // The packets predict the frame list; if decoding finds another one,
    // sample again from what was decoded (a second, final pass).
    for pass in 0..2 {
        let total = timestamps.len();
        if total == 0 {
            return Err(ffmpeg::bad(path, "it has no decodable video frames"));
        }
        let n = smart_nframes(total, probe.fps, sampling).map_err(|e| in_file(path, e))?;
        let indices = sample_indices(total, n);
        let wanted: HashSet<i64> = indices.iter().map(|&i| timestamps[i]).collect();
        let target = Cell::new(None);
        let first = |w: usize, h: usize| {
            let (th, tw) = if sampling.resize {
                video_frame_size(h, w, n, sampling).map_err(|e| in_file(path, e))?
            } else {
                (h, w)
            };
            if (th * tw * 3) as u64 * n as u64 > MAX_SAMPLED_BYTES {
                return Err(ffmpeg::bad(
                    path,
                    &format!(
                        "{n} sampled {tw}x{th} frames need more than the {MAX_SAMPLED_BYTES} \
                         bytes allowed"
                    ),
                ));
            }
            target.set(Some((th, tw)));
            Ok(())
        };
        let decoded = ffmpeg::decode_frames(path, &wanted, first, |frame| match target.get() {
            Some((h, w)) if (h, w) != (frame.height() as usize, frame.width() as usize) => {
                resize_bicubic_float(&frame, h, w)
            }
            _ => Ok(frame),
        })?;
        if decoded.timestamps != timestamps {
            if pass == 0 {
                timestamps = decoded.timestamps;
                continue;
            }
            return Err(ffmpeg::bad(path, "two decodes of it gave different frames"));
        }
        let frames = indices
            .iter()
            .map(|i| decoded.kept[&timestamps[*i]].clone())
            .collect();
        return Ok(SampledVideo {
            frames,
            fps: n as f64 / total as f64 * probe.fps,
            total_frames: total,
            source_fps: probe.fps,
            indices,
        });
    }
    unreachable!("the second pass returns")
}

/// The clip's audio track, mono 16 kHz f32 (ffmpeg resampling), for
/// `use_audio_in_video`; `None` if the file has no audio stream (and for a
/// folder of frames).
///
/// The mean of the channels resampled with soxr, as `librosa.load(path,
/// sr=16000)` (module docs). Longer than [`MAX_AUDIO_SECONDS`] is an error.
pub fn load_video_audio(path: &Path) -> Result<Option<Vec<f32>>> {
    if path.is_dir() {
        return Ok(None);
    }
    ffmpeg::check_file(path)?;
    ffmpeg::decode_audio(path)
}

fn in_file(path: &Path, e: GeomError) -> GeomError {
    GeomError::invalid(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nframes(total: usize, fps: f64) -> Result<usize> {
        smart_nframes(total, fps, &VideoSampling::default())
    }

    #[test]
    fn smart_nframes_matches_the_reference_formula() {
        // 77 frames at 25 fps: 77/25·2 = 6.16 → 6.
        assert_eq!(nframes(77, 25.0).unwrap(), 6);
        // 61 frames at 29.97 fps: 4.07 → 4.
        assert_eq!(nframes(61, 30000.0 / 1001.0).unwrap(), 4);
        // Short clips get at least FPS_MIN_FRAMES...
        assert_eq!(nframes(10, 30.0).unwrap(), 4);
        // ...but never more than the (even) frame count.
        assert_eq!(nframes(3, 30.0).unwrap(), 2);
        assert_eq!(nframes(5, 1.0).unwrap(), 4);
        // An odd result is floored to even; 2 fps of a 1 fps video is capped at total.
        assert_eq!(nframes(7, 0.5).unwrap(), 6);
        // Long videos are capped at FPS_MAX_FRAMES.
        assert_eq!(nframes(100_000, 25.0).unwrap(), 768);
        assert_eq!(nframes(30 * 383, 30.0).unwrap(), 766);
        // One frame cannot be sampled (the reference raises ValueError).
        assert!(nframes(1, 25.0).is_err());
        assert!(nframes(0, 25.0).is_err());
        assert!(nframes(10, 0.0).is_err());
        let custom = VideoSampling {
            fps: 1.0,
            min_frames: 3,
            max_frames: 9,
            ..VideoSampling::default()
        };
        // min 3 → 4, max 9 → 8.
        assert_eq!(smart_nframes(1000, 10.0, &custom).unwrap(), 8);
        assert_eq!(smart_nframes(20, 10.0, &custom).unwrap(), 4);
    }

    #[test]
    fn indices_follow_torch_linspace() {
        assert_eq!(sample_indices(77, 6), vec![0, 15, 30, 46, 61, 76]);
        assert_eq!(sample_indices(4, 4), vec![0, 1, 2, 3]);
        assert_eq!(sample_indices(3, 2), vec![0, 2]);
        // (137346, 526) and (203579, 768) are cases where the unfused f32
        // formula differs from torch (checked with torch 2.15 on AVX2).
        let idx = sample_indices(203_579, 768);
        assert_eq!(idx.len(), 768);
        assert_eq!((idx[0], idx[767]), (0, 203_578));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn resize_follows_fetch_video() {
        let s = VideoSampling::default();
        // 64x48 grows to at least VIDEO_MIN_PIXELS.
        assert_eq!(video_frame_size(48, 64, 6, &s).unwrap(), (280, 392));
        // 1920x1080 shrinks to VIDEO_MAX_PIXELS.
        assert_eq!(video_frame_size(1080, 1920, 8, &s).unwrap(), (560, 1008));
        // 768 frames: max_pixels = 90316800 / 768 · 2 = 235200.
        assert_eq!(video_frame_size(1080, 1920, 768, &s).unwrap(), (336, 644));
        // 766 frames: a fractional max_pixels (235814.099…).
        assert_eq!(video_frame_size(720, 1280, 766, &s).unwrap(), (364, 644));
        // Sides under 14 px count as 28 before the bounds.
        assert_eq!(video_frame_size(14, 2100, 2, &s).unwrap(), (28, 3892));
        assert_eq!(
            omni_smart_resize(10, 100, 28, 1000.0, 100_000.0).unwrap(),
            (28, 112)
        );
        // Aspect ratio over 200 (the reference raises ValueError).
        assert!(video_frame_size(10, 2100, 2, &s).is_err());
    }
}
