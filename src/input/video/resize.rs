//! The resize of `qwen_omni_utils.fetch_video`: torchvision's v1
//! `transforms.functional.resize(video, [h, w], BICUBIC, antialias=True)`
//! on a `uint8` tensor.
//!
//! torchvision's v1 tensor resize (`_functional_tensor.resize`, unchanged
//! from 0.2x to 0.29) casts `uint8` to `float32`, runs PyTorch's
//! `_upsample_bicubic2d_aa` in `float32`, clamps to `[0, 255]`, rounds
//! (half to even) and casts back. That is **not** the native `uint8` kernel
//! that transformers' fast processors reach through torchvision v2 and that
//! [`crate::input::image::resize_antialias`] reproduces: on 64×48 →
//! 392×280 test frames the two differ by up to 22 levels (the `uint8`
//! kernel rounds and clamps between its two passes, so bicubic overshoot at
//! sharp edges differs).
//!
//! The float kernel (PyTorch `UpSampleKernel.cpp`,
//! `separable_upsample_generic_Nd_kernel_impl` with `HelperInterpCubic`):
//! a horizontal pass, then a vertical one, each output
//! `Σ_j w_j · x[xmin + j]` over `[center − support, center + support)`,
//! with `scale = in / out`, `support = 2·scale` when shrinking (2 when
//! growing), Keys' cubic (a = −0.5) at `(j + xmin − center + 0.5) /
//! scale`, normalised to sum 1. Everything is `float32` with PyTorch's
//! mixed `float` / `double` intermediate steps, and the filter's
//! multiply-adds fused as the AVX2 / AVX-512 builds compile them (GCC
//! contracts `a * b + c`): the weights equal torch's bit for bit (read off
//! by resizing unit impulses).
//!
//! The sum over the taps is where PyTorch's compiled loops differ by code
//! path (vectorised or not, FMA chains kept or split). Measured against
//! torch 2.15 (AVX2 kernels) on the 26 resize cases of
//! `tests/fixtures/video`: fusing the multiply-adds on axes that grow and
//! not on axes that shrink gives **identical** frames whenever no axis
//! shrinks (every clip under 100 352 pixels, e.g. MSR-VTT's 320×240, is
//! enlarged), and off by one level on at most 3 of 1.7 million values when
//! one does (720p and 1080p to 1008×560; 8 values in all).

use image::RgbImage;

use crate::error::{GeomError, Result};

/// Keys' cubic convolution with a = −0.5 (PyTorch's `aa_filter` for
/// bicubic with antialiasing), in `f32` with fused multiply-adds.
fn cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0).mul_add(x, -(A + 3.0)) * x).mul_add(x, 1.0)
    } else if x < 2.0 {
        A.mul_add(x, -5.0 * A)
            .mul_add(x, 8.0 * A)
            .mul_add(x, -4.0 * A)
    } else {
        0.0
    }
}

/// One pass's source ranges and normalised weights, per output index.
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

/// `_compute_index_ranges_weights<float>` with antialiasing.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f32 / out_size as f32;
    let (support, invscale) = if scale >= 1.0 {
        ((2.0 * scale as f64) as f32, (1.0 / scale as f64) as f32)
    } else {
        (2.0f32, 1.0f32)
    };
    let ksize = support.ceil() as i64 * 2 + 1;
    let mut start = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let center = (scale as f64 * (i as f64 + 0.5)) as f32;
        // C++ casts truncate toward zero.
        let xmin = (((center - support) as f64 + 0.5) as i64).max(0);
        let xmax = (((center + support) as f64 + 0.5) as i64).min(in_size as i64);
        let xsize = (xmax - xmin).clamp(0, ksize);
        let mut w: Vec<f32> = (0..xsize)
            .map(|j| {
                let d = (j + xmin) as f32 - center;
                cubic(((d as f64 + 0.5) * invscale as f64) as f32)
            })
            .collect();
        let mut total = 0.0f32;
        for &v in &w {
            total += v;
        }
        if total != 0.0 {
            for v in &mut w {
                *v /= total;
            }
        }
        start.push(xmin as usize);
        weights.push(w);
    }
    Taps { start, weights }
}

/// `Σ_j w_j · x_j` as PyTorch's `interpolate_aa_single_dim`: the first
/// product, then one multiply-add per further tap, fused (`fused`) or not.
fn dot(w: &[f32], x: impl Fn(usize) -> f32, fused: bool) -> f32 {
    let Some((&w0, rest)) = w.split_first() else {
        return 0.0;
    };
    let mut acc = x(0) * w0;
    for (j, &wj) in rest.iter().enumerate() {
        acc = if fused {
            x(j + 1).mul_add(wj, acc)
        } else {
            acc + x(j + 1) * wj
        };
    }
    acc
}

/// Resizes an RGB frame to `height × width` as
/// `torchvision.transforms.functional.resize(uint8 tensor, [height, width],
/// InterpolationMode.BICUBIC, antialias=True)` does (module docs). An
/// unchanged size is returned as a copy.
pub fn resize_bicubic_float(img: &RgbImage, height: usize, width: usize) -> Result<RgbImage> {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    if height == 0 || width == 0 || in_w == 0 || in_h == 0 {
        return Err(GeomError::invalid(format!(
            "cannot resize a {in_w}x{in_h} frame to {width}x{height} (expected non-empty sizes)"
        )));
    }
    let (Ok(w32), Ok(h32)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(GeomError::invalid(format!(
            "resize target {width}x{height} is too large"
        )));
    };
    let mut cur: Vec<f32> = img.as_raw().iter().map(|&v| v as f32).collect();
    let mut cur_w = in_w;
    if width != in_w {
        let t = taps(in_w, width);
        let mut out = vec![0.0f32; in_h * width * 3];
        for (src, dst) in cur
            .chunks_exact(in_w * 3)
            .zip(out.chunks_exact_mut(width * 3))
        {
            for (x, px) in dst.chunks_exact_mut(3).enumerate() {
                let s = t.start[x];
                for (c, v) in px.iter_mut().enumerate() {
                    *v = dot(&t.weights[x], |j| src[(s + j) * 3 + c], width > in_w);
                }
            }
        }
        cur = out;
        cur_w = width;
    }
    if height != in_h {
        let t = taps(in_h, height);
        let row = cur_w * 3;
        let mut out = vec![0.0f32; height * row];
        for (y, dst) in out.chunks_exact_mut(row).enumerate() {
            let s = t.start[y];
            for (k, v) in dst.iter_mut().enumerate() {
                *v = dot(&t.weights[y], |j| cur[(s + j) * row + k], height > in_h);
            }
        }
        cur = out;
    }
    let bytes = cur
        .iter()
        .map(|&v| v.clamp(0.0, 255.0).round_ties_even() as u8)
        .collect();
    Ok(RgbImage::from_raw(w32, h32, bytes).expect("buffer size matches the dimensions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_cover_the_input() {
        for (i, o) in [(48, 280), (64, 392), (300, 140), (7, 200), (100, 57)] {
            let t = taps(i, o);
            for (s, w) in t.start.iter().zip(&t.weights) {
                let sum: f32 = w.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{i}->{o}: {sum}");
                assert!(s + w.len() <= i);
            }
        }
    }

    #[test]
    fn constant_frames_stay_constant() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([200, 3, 97]));
        let out = resize_bicubic_float(&img, 280, 392).unwrap();
        assert!(out.pixels().all(|p| p.0 == [200, 3, 97]));
        let out = resize_bicubic_float(&img, 3, 5).unwrap();
        assert!(out.pixels().all(|p| p.0 == [200, 3, 97]));
        assert_eq!(resize_bicubic_float(&img, 7, 13).unwrap(), img);
    }
}
