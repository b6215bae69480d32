//! Image and video preprocessing of Qwen2.5-VL, as the `transformers` 4.57
//! processors do it (`Qwen2VLImageProcessorFast`, the `AutoProcessor`
//! default whenever torchvision is installed, and `Qwen2VLVideoProcessor`).
//!
//! The steps, per image (or per video, all frames at once):
//!
//! 1. [`smart_resize`]: the target size, both sides multiples of
//!    `patch_size · merge_size` (28), pixel count within
//!    `[min_pixels, max_pixels]`, aspect ratio kept as well as possible.
//! 2. [`resize_antialias`]: bicubic resize with antialiasing on the `u8`
//!    pixels, **bit-exact** with torchvision's `resize(uint8 tensor,
//!    BICUBIC, antialias=True)` on CPU (PyTorch's `_upsample_bicubic2d_aa`
//!    for `uint8`, a port of Pillow-SIMD's fixed-point separable resampler):
//!    a horizontal pass then a vertical pass, each with its own `i16` weights
//!    and precision, rounding and clamping to `u8` after each pass.
//! 3. Rescale by `rescale_factor` (1/255) and normalise with
//!    `image_mean` / `image_std`, fused as transformers does:
//!    `(x - 255·mean) / (255·std)` in `f32`.
//! 4. An image is one frame repeated to `temporal_patch_size` (2) frames; a
//!    video's frames are padded to a multiple of it by repeating the last.
//! 5. Patches are flattened into rows of `C · T · P · P` = 3·2·14·14 = 1176
//!    values in `(channel, temporal, py, px)` order; rows come in
//!    `(t, h/merge, w/merge, merge_h, merge_w)` order (each 2×2 block of
//!    patches that the vision merger joins is contiguous).
//!
//! On the fixtures of `tests/fixtures/qwen2_5_vl` (`tests/image_preprocess.rs`)
//! the output equals `pixel_values` / `pixel_values_videos` of transformers
//! exactly (max abs diff 0); the resize alone was also checked against
//! torch 2.15 `interpolate(uint8, antialias=True)` on 300 random size pairs
//! (1–160 px, up- and down-scaling, bicubic and bilinear): identical. The
//! slow PIL processor (`Qwen2VLImageProcessor`, `pixel_values_slow`) is
//! within one `u8` level of both (Pillow keeps 22 fractional bits, PyTorch
//! at most 15), except by up to 6 levels on images where Pillow 13 does the
//! vertical pass first (e.g. 50×90 → 56×84).
//!
//! Loading: [`load_image`] decodes PNG or JPEG with the `image` crate (with
//! decompression-bomb limits) and converts to RGB like PIL's
//! `convert("RGB")`: alpha is dropped (not composited), grey is replicated.
//! No EXIF orientation is applied (neither does the processor; note that
//! `transformers.image_utils.load_image` would). 16-bit images are reduced
//! to 8 bits by the `image` crate (`round(v / 257)`). PNG decoding equals
//! PIL's; JPEG decoding (zune-jpeg) does not equal PIL's libjpeg-turbo bit
//! for bit (measured on synthetic JPEGs, quality 75–95, 4:4:4 to 4:2:0: up
//! to 3 `u8` levels, mean 0.02–0.3).

use std::path::{Path, PathBuf};

use image::{ImageDecoder, RgbImage};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{GeomError, Result};

/// CLIP's per-channel mean (`OPENAI_CLIP_MEAN`), the processor's default.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation (`OPENAI_CLIP_STD`).
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Largest width or height [`load_image`] accepts.
pub const MAX_IMAGE_EDGE: u32 = 20_000;
/// Largest pixel count [`load_image`] accepts: PIL's decompression-bomb
/// error threshold (2 × `Image.MAX_IMAGE_PIXELS`).
pub const MAX_IMAGE_PIXELS: u64 = 178_956_970;
/// Most memory the decoder may allocate for one image.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// The resampling filter (`resample` in the config, PIL's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// `resample: 2`, antialiased bilinear (triangle filter).
    Bilinear,
    /// `resample: 3` (the Qwen2.5-VL default), antialiased bicubic, a = −0.5.
    Bicubic,
}

impl Resample {
    fn from_pil(code: u64, source: &str) -> Result<Self> {
        match code {
            2 => Ok(Resample::Bilinear),
            3 => Ok(Resample::Bicubic),
            c => Err(GeomError::invalid(format!(
                "{source}: resample {c} is not supported (expected 2 = bilinear or 3 = bicubic)"
            ))),
        }
    }

    /// Filter support at scale 1 (half the number of taps).
    fn support(self) -> f64 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
        }
    }

    fn filter(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Resample::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Resample::Bicubic => {
                // Keys' cubic convolution with a = -0.5, written as PyTorch does.
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Settings of the image (or video) processor, from the checkpoint's
/// `preprocessor_config.json` / `video_preprocessor_config.json`.
///
/// Missing keys take the defaults of the transformers classes
/// (`Qwen2VLImageProcessorFast`, `Qwen2VLVideoProcessor`); unknown keys are
/// ignored. `min_pixels` / `max_pixels` take precedence over
/// `size.shortest_edge` / `size.longest_edge`, as in the fast processor.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessorConfig {
    /// Spatial patch size of the vision tower (14).
    pub patch_size: usize,
    /// Frames per temporal patch (2).
    pub temporal_patch_size: usize,
    /// Side of the block of patches the merger joins into one token (2).
    pub merge_size: usize,
    /// Smallest pixel count after resizing (images 56·56; videos 128·28·28).
    pub min_pixels: usize,
    /// Largest pixel count after resizing (images 28·28·1280; videos 28·28·768).
    pub max_pixels: usize,
    /// Per-channel mean subtracted after rescaling.
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub image_std: [f32; 3],
    /// Multiplier taking `u8` values to `[0, 1]` (1/255).
    pub rescale_factor: f64,
    /// Resampling filter (bicubic).
    pub resample: Resample,
    /// Whether to resize with [`smart_resize`] (true). When false every
    /// side must already be a multiple of `patch_size · merge_size`.
    pub do_resize: bool,
    /// Whether to multiply by `rescale_factor` (true).
    pub do_rescale: bool,
    /// Whether to normalise with `image_mean` / `image_std` (true).
    pub do_normalize: bool,
    /// Read for completeness: [`load_image`] always yields RGB.
    pub do_convert_rgb: bool,
    /// Video only: whether the processor would sample frames itself (false
    /// for Qwen2.5-VL). geom never samples; [`preprocess_video`] refuses a
    /// config with this set.
    pub do_sample_frames: bool,
}

impl Default for ImageProcessorConfig {
    /// The image processor's class defaults.
    fn default() -> Self {
        Self {
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            rescale_factor: 1.0 / 255.0,
            resample: Resample::Bicubic,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            do_convert_rgb: true,
            do_sample_frames: false,
        }
    }
}

/// One or three floats (`image_mean` / `image_std` may be a scalar).
#[derive(Deserialize)]
#[serde(untagged)]
enum PerChannel {
    One(f32),
    Three([f32; 3]),
}

impl PerChannel {
    fn get(self) -> [f32; 3] {
        match self {
            PerChannel::One(v) => [v; 3],
            PerChannel::Three(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct RawSize {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
}

/// `obj[key]` as a `T`; absent or `null` is `None`, a wrong type an error
/// naming the key.
fn field<T: serde::de::DeserializeOwned>(
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<T>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("'{key}': {e} (got {v})")),
    }
}

impl ImageProcessorConfig {
    /// The video processor's class defaults (`Qwen2VLVideoProcessor`): as
    /// for images but `min_pixels` 128·28·28 and `max_pixels` 28·28·768.
    pub fn video_default() -> Self {
        Self {
            min_pixels: 128 * 28 * 28,
            max_pixels: 28 * 28 * 768,
            ..Self::default()
        }
    }

    /// `patch_size · merge_size`, the multiple both resized sides must be.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Values per row of the output: `3 · temporal_patch_size · patch_size²`.
    pub fn row_len(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// The image processor settings of a checkpoint folder, as
    /// `AutoImageProcessor.from_pretrained` finds them:
    /// `preprocessor_config.json`, else `processor_config.json`; in either
    /// the settings may be nested under `"image_processor"` (transformers 5).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let files = ["preprocessor_config.json", "processor_config.json"];
        Self::from_first(dir, &files, "image_processor", Self::default())
    }

    /// The video processor settings, as `Qwen2VLVideoProcessor` finds them:
    /// `video_preprocessor_config.json`, else `preprocessor_config.json`,
    /// else `processor_config.json`, nested under `"video_processor"` or
    /// flat. Keys the file lacks take the *video* class defaults (so a
    /// `preprocessor_config.json` without `min_pixels` / `max_pixels` /
    /// `size` gives 100352 / 602112, not the image defaults).
    pub fn video_from_dir(dir: &Path) -> Result<Self> {
        let files = [
            "video_preprocessor_config.json",
            "preprocessor_config.json",
            "processor_config.json",
        ];
        Self::from_first(dir, &files, "video_processor", Self::video_default())
    }

    fn from_first(dir: &Path, files: &[&str], nest: &str, defaults: Self) -> Result<Self> {
        let Some(path) = files.iter().map(|f| dir.join(f)).find(|p| p.is_file()) else {
            return Err(GeomError::invalid(format!(
                "{}: no processor config (expected one of {})",
                dir.display(),
                files.join(", ")
            )));
        };
        let text = std::fs::read_to_string(&path).map_err(|source| GeomError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_json(&text, nest, defaults, &path.display().to_string())
    }

    /// Parses a processor config held in `text` (`source` names it in
    /// errors). `nest` is the key the settings may be nested under
    /// (`"image_processor"` or `"video_processor"`); `defaults` fills
    /// the keys the text lacks.
    pub fn from_json(text: &str, nest: &str, defaults: Self, source: &str) -> Result<Self> {
        let mut value: Value = serde_json::from_str(text).map_err(|e| {
            GeomError::invalid(format!(
                "{source}: not valid JSON ({e}); expected a processor config object such as \
                 preprocessor_config.json"
            ))
        })?;
        if !value.is_object() {
            return Err(GeomError::invalid(format!(
                "{source}: not a valid processor config (expected a JSON object)"
            )));
        }
        // transformers: `config_dict.get("image_processor", config_dict)`.
        if let Some(inner) = value.get_mut(nest) {
            value = inner.take();
        }
        let Value::Object(obj) = value else {
            return Err(GeomError::invalid(format!(
                "{source}: '{nest}' is not a JSON object"
            )));
        };
        let fail = |m: String| GeomError::invalid(format!("{source}: {m}"));
        let get_usize = |key: &str, default: usize| -> Result<usize> {
            Ok(field::<usize>(&obj, key).map_err(fail)?.unwrap_or(default))
        };
        let get_bool = |key: &str, default: bool| -> Result<bool> {
            Ok(field::<bool>(&obj, key).map_err(fail)?.unwrap_or(default))
        };
        let get_channels = |key: &str, default: [f32; 3]| -> Result<[f32; 3]> {
            Ok(field::<PerChannel>(&obj, key)
                .map_err(fail)?
                .map_or(default, PerChannel::get))
        };

        // Fast processor __init__: `size` (or the class default), then
        // min_pixels / max_pixels override its two keys; both must be there.
        let (size_min, size_max) = match field::<RawSize>(&obj, "size").map_err(fail)? {
            Some(s) => (s.shortest_edge, s.longest_edge),
            None => (Some(defaults.min_pixels), Some(defaults.max_pixels)),
        };
        let min_pixels = field::<usize>(&obj, "min_pixels")
            .map_err(fail)?
            .or(size_min);
        let max_pixels = field::<usize>(&obj, "max_pixels")
            .map_err(fail)?
            .or(size_max);
        let (Some(min_pixels), Some(max_pixels)) = (min_pixels, max_pixels) else {
            return Err(GeomError::invalid(format!(
                "{source}: size must contain 'shortest_edge' and 'longest_edge' \
                 (or give min_pixels and max_pixels)"
            )));
        };
        let cfg = Self {
            patch_size: get_usize("patch_size", defaults.patch_size)?,
            temporal_patch_size: get_usize("temporal_patch_size", defaults.temporal_patch_size)?,
            merge_size: get_usize("merge_size", defaults.merge_size)?,
            min_pixels,
            max_pixels,
            image_mean: get_channels("image_mean", defaults.image_mean)?,
            image_std: get_channels("image_std", defaults.image_std)?,
            rescale_factor: field::<f64>(&obj, "rescale_factor")
                .map_err(fail)?
                .unwrap_or(defaults.rescale_factor),
            resample: match field::<u64>(&obj, "resample").map_err(fail)? {
                Some(code) => Resample::from_pil(code, source)?,
                None => defaults.resample,
            },
            do_resize: get_bool("do_resize", defaults.do_resize)?,
            do_rescale: get_bool("do_rescale", defaults.do_rescale)?,
            do_normalize: get_bool("do_normalize", defaults.do_normalize)?,
            do_convert_rgb: get_bool("do_convert_rgb", defaults.do_convert_rgb)?,
            do_sample_frames: get_bool("do_sample_frames", defaults.do_sample_frames)?,
        };
        cfg.validate()
            .map_err(|m| GeomError::invalid(format!("{source}: {m}")))?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.patch_size == 0 || self.temporal_patch_size == 0 || self.merge_size == 0 {
            return Err(format!(
                "patch_size {}, temporal_patch_size {} and merge_size {} must all be positive",
                self.patch_size, self.temporal_patch_size, self.merge_size
            ));
        }
        if self.do_normalize && self.image_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(format!(
                "image_std {:?} must be finite and non-zero",
                self.image_std
            ));
        }
        if self.do_rescale && (self.rescale_factor == 0.0 || !self.rescale_factor.is_finite()) {
            return Err(format!(
                "rescale_factor {} must be finite and non-zero",
                self.rescale_factor
            ));
        }
        Ok(())
    }
}

/// The processor's output for a list of images or one video.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    /// `[N, dim]` row-major: one row per patch, in the processor's order
    /// (images concatenated in order).
    pub values: Vec<f32>,
    /// `dim = 3 · temporal_patch_size · patch_size²` (1176).
    pub dim: usize,
    /// `[t, h, w]` in patches, one per image (or the video).
    pub grids: Vec<[usize; 3]>,
}

impl Pixels {
    /// Number of rows (patches).
    pub fn n_rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }
}

/// Target `(height, width)` of the Qwen2-VL processor (`smart_resize` of
/// `image_processing_qwen2_vl.py`): both multiples of `factor`, the pixel
/// count within `[min_pixels, max_pixels]`, the aspect ratio nearly kept.
///
/// `round(h / factor) · factor` uses Python's `round`, i.e. ties to even
/// (70 px → 56 for factor 28). Above `max_pixels` both sides shrink by
/// `β = √(h·w / max_pixels)` and are floored to the factor (at least
/// `factor`); below `min_pixels` they grow by `β = √(min_pixels / (h·w))`
/// and are ceiled. Fails like the reference when the aspect ratio exceeds
/// 200, and on an empty image or a result with a zero side.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 || factor == 0 {
        return Err(GeomError::invalid(format!(
            "cannot resize a {width}x{height} image with factor {factor} (expected positive sizes)"
        )));
    }
    let ratio = height.max(width) as f64 / height.min(width) as f64;
    if ratio > 200.0 {
        return Err(GeomError::invalid(format!(
            "a {width}x{height} image has aspect ratio {ratio}; it must be at most 200"
        )));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if h_bar * w_bar > max_pixels {
        let beta = ((height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (height * width) as f64).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    if h_bar == 0 || w_bar == 0 {
        return Err(GeomError::invalid(format!(
            "a {width}x{height} image resizes to {w_bar}x{h_bar} with min_pixels {min_pixels}, \
             max_pixels {max_pixels} (expected a non-empty size)"
        )));
    }
    Ok((h_bar, w_bar))
}

/// Fixed-point weights of one resampling pass: for output index `i`, taps
/// `weights[i*ksize .. i*ksize + len[i]]` applied from input index `start[i]`.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    ksize: usize,
    weights: Vec<i32>,
    precision: u32,
}

/// PyTorch's `_compute_index_ranges_int16_weights` (Pillow's coefficients,
/// then the largest precision that keeps every weight within `i16`).
fn taps(in_size: usize, out_size: usize, filter: Resample) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let (support, invscale) = if scale >= 1.0 {
        (filter.support() * scale, 1.0 / scale)
    } else {
        (filter.support(), 1.0)
    };
    let ksize = support.ceil() as usize * 2 + 1;
    let mut start = Vec::with_capacity(out_size);
    let mut len = Vec::with_capacity(out_size);
    let mut wf = vec![0.0f64; out_size * ksize];
    let mut wt_max = 0.0f64;
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        // C++ casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let xsize = (xmax - xmin).clamp(0, ksize as i64) as usize;
        let w = &mut wf[i * ksize..i * ksize + xsize];
        let mut total = 0.0;
        for (j, wj) in w.iter_mut().enumerate() {
            *wj = filter.filter(((j as i64 + xmin) as f64 - center + 0.5) * invscale);
            total += *wj;
        }
        if total != 0.0 {
            for wj in w.iter_mut() {
                *wj /= total;
                wt_max = wt_max.max(*wj);
            }
        }
        start.push(xmin as usize);
        len.push(xsize);
    }
    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wt_max * (1u64 << (precision + 1)) as f64) as i64;
        if next >= 1 << 15 {
            break;
        }
        precision += 1;
    }
    let one = (1u64 << precision) as f64;
    let weights = wf
        .iter()
        .map(|&w| {
            let v = w * one;
            if v < 0.0 {
                (-0.5 + v) as i32
            } else {
                (0.5 + v) as i32
            }
        })
        .collect();
    Taps {
        start,
        len,
        ksize,
        weights,
        precision,
    }
}

fn round_bias(precision: u32) -> i32 {
    if precision > 0 {
        1 << (precision - 1)
    } else {
        0
    }
}

/// Horizontal pass over interleaved RGB rows of `in_w` pixels.
fn pass_horizontal(src: &[u8], in_w: usize, rows: usize, taps: &Taps, out_w: usize) -> Vec<u8> {
    let mut dst = vec![0u8; rows * out_w * 3];
    let round = round_bias(taps.precision);
    for (line, out) in src
        .chunks_exact(in_w * 3)
        .zip(dst.chunks_exact_mut(out_w * 3))
    {
        for (i, px) in out.chunks_exact_mut(3).enumerate() {
            let w = &taps.weights[i * taps.ksize..i * taps.ksize + taps.len[i]];
            let from = &line[taps.start[i] * 3..(taps.start[i] + w.len()) * 3];
            let mut acc = [round; 3];
            for (&wk, p) in w.iter().zip(from.chunks_exact(3)) {
                for c in 0..3 {
                    acc[c] += p[c] as i32 * wk;
                }
            }
            for c in 0..3 {
                px[c] = (acc[c] >> taps.precision).clamp(0, 255) as u8;
            }
        }
    }
    debug_assert_eq!(src.len(), rows * in_w * 3);
    dst
}

/// Vertical pass over interleaved RGB rows of `width` pixels.
fn pass_vertical(src: &[u8], width: usize, taps: &Taps, out_h: usize) -> Vec<u8> {
    let row = width * 3;
    let mut dst = vec![0u8; out_h * row];
    let round = round_bias(taps.precision);
    let mut acc = vec![0i32; row];
    for (i, out) in dst.chunks_exact_mut(row).enumerate() {
        acc.fill(round);
        let w = &taps.weights[i * taps.ksize..i * taps.ksize + taps.len[i]];
        for (k, &wk) in w.iter().enumerate() {
            let y = taps.start[i] + k;
            for (a, &v) in acc.iter_mut().zip(&src[y * row..(y + 1) * row]) {
                *a += v as i32 * wk;
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = (a >> taps.precision).clamp(0, 255) as u8;
        }
    }
    dst
}

/// Resizes an RGB image to `height × width` with an antialiased filter,
/// reproducing torchvision's `F.resize(uint8 tensor, [height, width],
/// interpolation, antialias=True)` on CPU bit for bit (PyTorch's `uint8`
/// AVX2 path, `upsample_avx_bilinear_bicubic_uint8`; torchvision only takes
/// the native `uint8` route for bilinear on AVX2 / arm64 CPUs, always for
/// bicubic).
///
/// The algorithm is Pillow-SIMD's: for each axis whose size changes
/// (horizontal first, then vertical), weights `filter((j - center + 0.5) /
/// scale)` over `[center - support, center + support)` (support 2·scale
/// when shrinking), normalised to sum 1, converted to `i16` with the largest
/// precision (≤ 22 bits) that keeps the largest weight below 2¹⁵; each
/// output is `clamp((2^(p-1) + Σ w·x) >> p, 0, 255)`. An unchanged size is
/// returned as a copy.
pub fn resize_antialias(
    img: &RgbImage,
    height: usize,
    width: usize,
    filter: Resample,
) -> Result<RgbImage> {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    if height == 0 || width == 0 || in_w == 0 || in_h == 0 {
        return Err(GeomError::invalid(format!(
            "cannot resize a {in_w}x{in_h} image to {width}x{height} (expected non-empty sizes)"
        )));
    }
    let (Ok(w32), Ok(h32)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(GeomError::invalid(format!(
            "resize target {width}x{height} is too large"
        )));
    };
    let mut cur: Vec<u8> = img.as_raw().clone();
    let mut cur_w = in_w;
    if width != in_w {
        cur = pass_horizontal(&cur, in_w, in_h, &taps(in_w, width, filter), width);
        cur_w = width;
    }
    if height != in_h {
        cur = pass_vertical(&cur, cur_w, &taps(in_h, height, filter), height);
    }
    Ok(RgbImage::from_raw(w32, h32, cur).expect("buffer size matches the dimensions"))
}

/// `[frame][y][x][c]` values after rescale and normalisation, as the fast
/// processor computes them (fused: `(x - mean/rescale) / (std/rescale)` in
/// `f32`).
fn normalise(frame: &RgbImage, cfg: &ImageProcessorConfig) -> Vec<f32> {
    let raw = frame.as_raw();
    match (cfg.do_rescale, cfg.do_normalize) {
        (true, true) => {
            let inv = (1.0 / cfg.rescale_factor) as f32;
            let m: [f32; 3] = std::array::from_fn(|c| cfg.image_mean[c] * inv);
            let s: [f32; 3] = std::array::from_fn(|c| cfg.image_std[c] * inv);
            raw.iter()
                .enumerate()
                .map(|(i, &v)| (v as f32 - m[i % 3]) / s[i % 3])
                .collect()
        }
        (false, true) => raw
            .iter()
            .enumerate()
            .map(|(i, &v)| (v as f32 - cfg.image_mean[i % 3]) / cfg.image_std[i % 3])
            .collect(),
        (true, false) => {
            let r = cfg.rescale_factor as f32;
            raw.iter().map(|&v| v as f32 * r).collect()
        }
        (false, false) => raw.iter().map(|&v| v as f32).collect(),
    }
}

/// Resizes (if configured) a group of same-sized frames; returns the frames
/// and their size.
fn resize_frames(
    frames: &[&RgbImage],
    cfg: &ImageProcessorConfig,
    what: &str,
) -> Result<(Vec<RgbImage>, usize, usize)> {
    let (h, w) = (frames[0].height() as usize, frames[0].width() as usize);
    let (nh, nw) = if cfg.do_resize {
        smart_resize(h, w, cfg.factor(), cfg.min_pixels, cfg.max_pixels)
            .map_err(|e| GeomError::invalid(format!("{what}: {e}")))?
    } else {
        if h % cfg.factor() != 0 || w % cfg.factor() != 0 {
            return Err(GeomError::invalid(format!(
                "{what}: {w}x{h} is not a multiple of {} and do_resize is false",
                cfg.factor()
            )));
        }
        (h, w)
    };
    let out = frames
        .iter()
        .map(|f| {
            if (nh, nw) == (h, w) {
                Ok((*f).clone())
            } else {
                resize_antialias(f, nh, nw, cfg.resample)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, nh, nw))
}

/// Appends the patch rows of `frames` (already padded to a multiple of
/// `temporal_patch_size`, all `height × width`) to `out`; returns the grid.
fn patchify(
    frames: &[&[f32]],
    height: usize,
    width: usize,
    cfg: &ImageProcessorConfig,
    out: &mut Vec<f32>,
) -> [usize; 3] {
    let (p, tp, m) = (cfg.patch_size, cfg.temporal_patch_size, cfg.merge_size);
    let (gt, gh, gw) = (frames.len() / tp, height / p, width / p);
    out.reserve(gt * gh * gw * cfg.row_len());
    for t in 0..gt {
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        for c in 0..3 {
                            for f in &frames[t * tp..(t + 1) * tp] {
                                for y in y0..y0 + p {
                                    let row = (y * width + x0) * 3 + c;
                                    out.extend((0..p).map(|x| f[row + 3 * x]));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    [gt, gh, gw]
}

/// The image processor on a list of images (`pixel_values`,
/// `image_grid_thw`): each image resized on its own ([`smart_resize`] then
/// [`resize_antialias`]), rescaled, normalised, repeated to
/// `temporal_patch_size` frames and cut into patch rows; the images' rows
/// are concatenated in order.
pub fn preprocess_images(images: &[RgbImage], cfg: &ImageProcessorConfig) -> Result<Pixels> {
    cfg.validate().map_err(GeomError::invalid)?;
    let mut values = Vec::new();
    let mut grids = Vec::with_capacity(images.len());
    for (i, img) in images.iter().enumerate() {
        let what = format!("image {i} ({}x{})", img.width(), img.height());
        let (resized, h, w) = resize_frames(&[img], cfg, &what)?;
        let norm = normalise(&resized[0], cfg);
        let frames = vec![norm.as_slice(); cfg.temporal_patch_size];
        grids.push(patchify(&frames, h, w, cfg, &mut values));
    }
    Ok(Pixels {
        values,
        dim: cfg.row_len(),
        grids,
    })
}

/// The video processor on one video (`pixel_values_videos`,
/// `video_grid_thw`, `second_per_grid_ts`).
///
/// Frames: **every frame given is used, in order** — no sampling, as
/// `Qwen2VLVideoProcessor` with `do_sample_frames: false` (the Qwen2.5-VL
/// setting; choose the frames before calling, e.g. with [`load_frames`]).
/// The frame count is padded to a multiple of `temporal_patch_size` by
/// repeating the last frame (transformers appends `temporal_patch_size - 1`
/// copies, which is the same for the usual 2). All frames must have the same
/// size (transformers stacks them); one [`smart_resize`] of that size, with
/// the video `min_pixels` / `max_pixels`, applies to all.
///
/// `fps` only sets the time step: `second_per_grid_t = temporal_patch_size /
/// fps`, with `fps` 2.0 when `None` (the processor's default), as
/// `Qwen2_5_VLProcessor` does.
pub fn preprocess_video(
    frames: &[RgbImage],
    cfg: &ImageProcessorConfig,
    fps: Option<f64>,
) -> Result<(Pixels, f64)> {
    cfg.validate().map_err(GeomError::invalid)?;
    if cfg.do_sample_frames {
        return Err(GeomError::invalid(
            "the video processor config has do_sample_frames: true, but geom uses every frame \
             it is given; pick the frames yourself and set do_sample_frames to false",
        ));
    }
    let fps = fps.unwrap_or(2.0);
    if !(fps.is_finite() && fps > 0.0) {
        return Err(GeomError::invalid(format!(
            "fps {fps} must be a positive number"
        )));
    }
    let Some(first) = frames.first() else {
        return Err(GeomError::invalid("a video needs at least one frame"));
    };
    let dims = first.dimensions();
    if let Some((i, f)) = frames
        .iter()
        .enumerate()
        .find(|(_, f)| f.dimensions() != dims)
    {
        return Err(GeomError::invalid(format!(
            "video frame {i} is {}x{} but frame 0 is {}x{} (all frames must have the same size)",
            f.width(),
            f.height(),
            dims.0,
            dims.1
        )));
    }
    let what = format!("video ({}x{}, {} frames)", dims.0, dims.1, frames.len());
    let refs: Vec<&RgbImage> = frames.iter().collect();
    let (resized, h, w) = resize_frames(&refs, cfg, &what)?;
    let norm: Vec<Vec<f32>> = resized.iter().map(|f| normalise(f, cfg)).collect();
    let mut seq: Vec<&[f32]> = norm.iter().map(Vec::as_slice).collect();
    let last = seq[seq.len() - 1];
    while !seq.len().is_multiple_of(cfg.temporal_patch_size) {
        seq.push(last);
    }
    let mut values = Vec::new();
    let grid = patchify(&seq, h, w, cfg, &mut values);
    let second_per_grid_t = cfg.temporal_patch_size as f64 / fps;
    Ok((
        Pixels {
            values,
            dim: cfg.row_len(),
            grids: vec![grid],
        },
        second_per_grid_t,
    ))
}

/// Decodes a PNG or JPEG file to 8-bit RGB, like PIL's
/// `Image.open(path).convert("RGB")`: alpha dropped, grey replicated,
/// palette expanded; no EXIF rotation.
///
/// Refuses images wider or taller than [`MAX_IMAGE_EDGE`], with more than
/// [`MAX_IMAGE_PIXELS`] pixels, or whose decoding would allocate more than
/// [`MAX_DECODE_BYTES`]. Errors name the file.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let io = |source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_EDGE);
    limits.max_image_height = Some(MAX_IMAGE_EDGE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let bad = |e: image::ImageError| {
        GeomError::invalid(format!(
            "{}: cannot decode the image ({e}); expected a PNG or JPEG file of at most \
             {MAX_IMAGE_EDGE}x{MAX_IMAGE_EDGE} and {MAX_IMAGE_PIXELS} pixels",
            path.display()
        ))
    };
    let decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(GeomError::invalid(format!(
            "{}: {w}x{h} is {} pixels, more than the {MAX_IMAGE_PIXELS} allowed \
             (a possible decompression bomb)",
            path.display(),
            w as u64 * h as u64
        )));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(GeomError::invalid(format!(
            "{}: the image is empty ({}x{})",
            path.display(),
            img.width(),
            img.height()
        )));
    }
    Ok(img.into_rgb8())
}

/// Whether a file name has an image extension [`load_frames`] picks up in a
/// folder (`png`, `jpg`, `jpeg`, any case).
fn is_image_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The image files (`.png`, `.jpg`, `.jpeg`) of a folder, sorted by file
/// name (byte order: name frames with zero-padded numbers, `frame_002.png`).
pub fn frame_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| GeomError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| GeomError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        if is_image_file(&p) {
            paths.push(p);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

/// Loads video frames with [`load_image`]: each path that is a folder
/// stands for its image files sorted by name ([`frame_paths`]), each file is
/// taken as given, in order. Fails when no frame is found.
pub fn load_frames<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<RgbImage>> {
    let mut files = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            files.extend(frame_paths(p)?);
        } else {
            files.push(p.to_path_buf());
        }
    }
    if files.is_empty() {
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        return Err(GeomError::invalid(format!(
            "no video frames in [{}] (expected .png / .jpg / .jpeg files or folders of them)",
            names.join(", ")
        )));
    }
    files.iter().map(|f| load_image(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (a, b) in [(64, 56), (50, 56), (200, 28), (1, 56), (90, 84)] {
            let t = taps(a, b, Resample::Bicubic);
            for i in 0..b {
                let s: i32 = t.weights[i * t.ksize..i * t.ksize + t.len[i]].iter().sum();
                let one = 1i32 << t.precision;
                assert!(
                    (s - one).abs() <= t.len[i] as i32,
                    "{a}->{b} at {i}: {s} vs {one}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 10, 255]));
        for (h, w) in [(56, 56), (14, 84), (23, 5)] {
            let r = resize_antialias(&img, h, w, Resample::Bicubic).unwrap();
            assert!(r.pixels().all(|p| p.0 == [200, 10, 255]), "{h}x{w}");
        }
    }
}
