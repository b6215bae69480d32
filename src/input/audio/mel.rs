//! The Whisper log-mel front end, at parity with the torch path of
//! transformers 4.57.6 `WhisperFeatureExtractor._torch_extract_fbank_features`
//! (`models/whisper/feature_extraction_whisper.py`) as `Qwen2_5OmniProcessor`
//! calls it; the module docs of [`super`] list the steps.
//!
//! Precision: the window and the mel filters are the reference's `f32`
//! values; each frame is windowed in `f32` (as `torch.stft` does), then
//! transformed, squared and projected onto the mel filters in `f64`, and
//! rounded to `f32` before the log; clamping and scaling are `f32` again.
//! The reference runs the FFT and the projection in `f32`, so the two differ
//! by its rounding (measured on the fixtures: see `tests/audio.rs`).

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

use super::{AudioFeatures, WhisperFeatureConfig, SAMPLE_RATE};
use crate::error::{GeomError, Result};

/// Floor of the mel power before the log: `torch.clamp(mel_spec, min=1e-10)`
/// in `_torch_extract_fbank_features`.
pub const LOG_FLOOR: f32 = 1e-10;
/// Dynamic range kept below the clip's maximum log-mel value:
/// `torch.maximum(log_spec, max_val - 8.0)`.
pub const DYNAMIC_RANGE: f32 = 8.0;
/// Offset and scale of the final `(log_spec + 4.0) / 4.0`.
pub const LOG_OFFSET: f32 = 4.0;
/// Upper edge of the mel filter bank in Hz: `max_frequency=8000.0` in
/// `WhisperFeatureExtractor.__init__`.
pub const MEL_MAX_HZ: f64 = 8000.0;
/// Lower edge of the mel filter bank in Hz (`min_frequency=0.0`).
pub const MEL_MIN_HZ: f64 = 0.0;
/// Slaney mel scale: the linear region ends at this frequency
/// (`min_log_hertz` in `transformers/audio_utils.py` `hertz_to_mel`).
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
/// Slaney mel scale: mel value at [`SLANEY_MIN_LOG_HZ`] (`min_log_mel`).
const SLANEY_MIN_LOG_MEL: f64 = 15.0;
/// Frames per rayon task.
const FRAMES_PER_TASK: usize = 32;

/// Hertz to mels on the Slaney scale (`hertz_to_mel(freq, "slaney")`).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= SLANEY_MIN_LOG_HZ {
        // logstep = 27.0 / np.log(6.4)
        SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() * (27.0 / 6.4f64.ln())
    } else {
        3.0 * hz / 200.0
    }
}

/// Mels to hertz on the Slaney scale (`mel_to_hertz(mels, "slaney")`).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= SLANEY_MIN_LOG_MEL {
        // logstep = np.log(6.4) / 27.0
        SLANEY_MIN_LOG_HZ * ((6.4f64.ln() / 27.0) * (mel - SLANEY_MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// `np.linspace(start, stop, num)` (endpoint included), computed as numpy
/// does: `arange(num) * step + start`, the last value set to `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// The Slaney-normalised triangular mel filter bank of transformers'
/// `mel_filter_bank(num_frequency_bins, num_mel_filters, 0.0, 8000.0,
/// sampling_rate, norm="slaney", mel_scale="slaney")`, in `f64`.
///
/// # Shapes
///
/// Returns `[n_bins, n_mels]` row-major (`n_bins = n_fft / 2 + 1`), like the
/// reference's `(num_frequency_bins, num_mel_filters)` array.
pub fn mel_filter_bank(n_bins: usize, n_mels: usize, sampling_rate: u32) -> Vec<f64> {
    let mel_freqs = linspace(hz_to_mel(MEL_MIN_HZ), hz_to_mel(MEL_MAX_HZ), n_mels + 2);
    let filter_freqs: Vec<f64> = mel_freqs.iter().map(|&m| mel_to_hz(m)).collect();
    // np.linspace(0, sampling_rate // 2, num_frequency_bins)
    let fft_freqs = linspace(0.0, f64::from(sampling_rate / 2), n_bins);
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut bank = vec![0.0; n_bins * n_mels];
    for (i, &f) in fft_freqs.iter().enumerate() {
        for m in 0..n_mels {
            // _create_triangular_filter_bank: slopes = filter_freqs - fft_freqs
            let down = -(filter_freqs[m] - f) / diff[m];
            let up = (filter_freqs[m + 2] - f) / diff[m + 1];
            let tri = 0.0f64.max(down.min(up));
            // Slaney norm: enorm = 2 / (f[m + 2] - f[m])
            bank[i * n_mels + m] = tri * (2.0 / (filter_freqs[m + 2] - filter_freqs[m]));
        }
    }
    bank
}

/// The periodic Hann window of `torch.hann_window(n)` in `f32`, computed in
/// torch's order (`arange · (2π/n)` in `f32`, `cos`, `· −0.5 + 0.5`); the
/// cosine is rounded from `f64`, so a value may differ from torch's
/// vectorised `f32` cosine by one ulp (12 of 400 values, ≤ 6e-8, for n = 400).
///
/// # Shapes
///
/// Returns `[n]`.
pub fn hann_window(n: usize) -> Vec<f32> {
    let step = (std::f64::consts::PI * 2.0 / n as f64) as f32;
    (0..n)
        .map(|i| {
            let theta = i as f32 * step;
            (f64::from(theta).cos() as f32) * -0.5 + 0.5
        })
        .collect()
}

/// One mel filter's nonzero weights: `weights[j]` applies to FFT bin
/// `first + j`. Skipping the zero weights changes no sum.
struct Filter {
    first: usize,
    weights: Vec<f64>,
}

/// The precomputed pieces of the front end for one configuration.
struct FrontEnd {
    n_fft: usize,
    n_mels: usize,
    window: Vec<f32>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl FrontEnd {
    fn new(cfg: &WhisperFeatureConfig) -> Self {
        let n_bins = cfg.n_fft / 2 + 1;
        let bank = mel_filter_bank(n_bins, cfg.feature_size, cfg.sampling_rate);
        let filters = (0..cfg.feature_size)
            .map(|m| {
                // The reference casts the float64 bank to float32.
                let col: Vec<f64> = (0..n_bins)
                    .map(|i| f64::from(bank[i * cfg.feature_size + m] as f32))
                    .collect();
                let first = col.iter().position(|&w| w != 0.0).unwrap_or(n_bins);
                let last = col.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                Filter {
                    first,
                    weights: col[first..last].to_vec(),
                }
            })
            .collect();
        FrontEnd {
            n_fft: cfg.n_fft,
            n_mels: cfg.feature_size,
            window: hann_window(cfg.n_fft),
            filters,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(cfg.n_fft),
        }
    }

    /// `log10(max(mel, 1e-10))` of one frame, into `out` (`[n_mels]`);
    /// `frame(k)` gives the `k`-th sample of the centred frame.
    fn log_mel_frame(
        &self,
        frame: impl Fn(usize) -> f32,
        buf: &mut Bufs,
        out: &mut [f32],
    ) -> Result<()> {
        for (k, x) in buf.input.iter_mut().enumerate() {
            // torch.stft multiplies frame and window in the input dtype (f32).
            *x = f64::from(frame(k) * self.window[k]);
        }
        self.fft
            .process_with_scratch(&mut buf.input, &mut buf.spectrum, &mut buf.scratch)
            .map_err(|e| GeomError::invalid(format!("log-mel FFT failed: {e}")))?;
        for (p, c) in buf.power.iter_mut().zip(&buf.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        for (o, f) in out.iter_mut().zip(&self.filters) {
            let mel: f64 = f
                .weights
                .iter()
                .zip(&buf.power[f.first..])
                .map(|(w, p)| w * p)
                .sum();
            *o = f64::from((mel as f32).max(LOG_FLOOR)).log10() as f32;
        }
        Ok(())
    }
}

/// Per-thread FFT buffers.
struct Bufs {
    input: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
}

impl Bufs {
    fn new(fe: &FrontEnd) -> Self {
        Bufs {
            input: fe.fft.make_input_vec(),
            spectrum: fe.fft.make_output_vec(),
            scratch: fe.fft.make_scratch_vec(),
            power: vec![0.0; fe.n_fft / 2 + 1],
        }
    }
}

/// Checks the settings `log_mel` relies on (the same as the reference's
/// preconditions, or what it cannot reproduce).
fn check(cfg: &WhisperFeatureConfig) -> Result<()> {
    let bad = |m: String| Err(GeomError::invalid(format!("Whisper feature config: {m}")));
    if cfg.sampling_rate != SAMPLE_RATE {
        // The processor passes sampling_rate=16000, and the extractor
        // raises unless its own sampling_rate equals it.
        return bad(format!(
            "sampling_rate {} is not {SAMPLE_RATE} (Qwen2.5-Omni's processor only accepts 16 kHz)",
            cfg.sampling_rate
        ));
    }
    if cfg.feature_size == 0 || cfg.hop_length == 0 || cfg.n_fft < 2 {
        return bad(format!(
            "feature_size {}, hop_length {} must be positive and n_fft {} at least 2",
            cfg.feature_size, cfg.hop_length, cfg.n_fft
        ));
    }
    if cfg.n_samples <= cfg.n_fft / 2 {
        // torch.stft's reflect padding needs pad < input length.
        return bad(format!(
            "n_samples {} (chunk_length · sampling_rate) must exceed n_fft / 2 = {}",
            cfg.n_samples,
            cfg.n_fft / 2
        ));
    }
    if cfg.dither != 0.0 {
        return bad(format!(
            "dither {} is not supported (expected 0.0: torch's random noise cannot be reproduced)",
            cfg.dither
        ));
    }
    if !cfg.padding_value.is_finite() {
        return bad(format!("padding_value {} is not finite", cfg.padding_value));
    }
    Ok(())
}

/// See [`super::log_mel`].
pub(super) fn log_mel(samples: &[f32], cfg: &WhisperFeatureConfig) -> Result<AudioFeatures> {
    check(cfg)?;
    if samples.is_empty() {
        return Err(GeomError::invalid(
            "log-mel of an empty clip (expected at least one sample)",
        ));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(GeomError::invalid(format!(
            "log-mel: sample {i} is {} (expected finite samples)",
            samples[i]
        )));
    }
    let fe = FrontEnd::new(cfg);
    let n = cfg.n_samples as i64;
    let (hop, n_fft) = (cfg.hop_length as i64, cfg.n_fft as i64);
    let pad = n_fft / 2;
    // The processor pads (padding_value) or truncates every clip to n_samples.
    let truncated = samples.len() > cfg.n_samples;
    let len = samples.len().min(cfg.n_samples) as i64;
    let clip = &samples[..len as usize];
    let value = |i: i64| -> f32 {
        // Centred reflect padding of torch.stft, then the padded clip.
        let i = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        if i < len {
            clip[i as usize]
        } else {
            cfg.padding_value
        }
    };
    // torch.stft frames, less the last one that the extractor drops.
    let frames = ((n + 2 * pad - n_fft) / hop) as usize;
    // Frames whose every sample is padding (no clip sample, even reflected)
    // are all equal: t in [t0, t1].
    let t0 = (len + pad + hop - 1) / hop;
    let t1_num = 2 * (n - 1) - len + pad - n_fft + 1;
    let t1 = if t1_num >= 0 { t1_num / hop } else { -1 };
    let (t0, t1) = (t0 as usize, t1.min(frames as i64 - 1));
    let has_padding_frames = t1 >= t0 as i64;
    let explicit: Vec<usize> = if has_padding_frames {
        (0..t0).chain(t1 as usize + 1..frames).collect()
    } else {
        (0..frames).collect()
    };

    let n_mels = fe.n_mels;
    let mut cols = vec![0.0f32; explicit.len() * n_mels];
    cols.par_chunks_mut(FRAMES_PER_TASK * n_mels)
        .zip(explicit.par_chunks(FRAMES_PER_TASK))
        .try_for_each(|(out, ts)| -> Result<()> {
            let mut bufs = Bufs::new(&fe);
            for (o, &t) in out.chunks_mut(n_mels).zip(ts) {
                let start = t as i64 * hop - pad;
                fe.log_mel_frame(|k| value(start + k as i64), &mut bufs, o)?;
            }
            Ok(())
        })?;
    let mut max = cols.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if has_padding_frames {
        let mut col = vec![0.0f32; n_mels];
        fe.log_mel_frame(|_| cfg.padding_value, &mut Bufs::new(&fe), &mut col)?;
        max = col.iter().copied().fold(max, f32::max);
    }

    // feature_attention_mask: the sample mask taken every hop_length, less its
    // last entry when n_samples is not a multiple of hop_length.
    let mask_len = cfg.n_samples / cfg.hop_length;
    let valid = (len as usize)
        .div_ceil(cfg.hop_length)
        .min(mask_len)
        .min(frames);
    let floor = max - DYNAMIC_RANGE;
    let mut features = vec![0.0f32; n_mels * valid];
    // Valid frames precede t0, so they are the first `valid` explicit ones.
    for (t, col) in cols.chunks(n_mels).take(valid).enumerate() {
        for (m, &v) in col.iter().enumerate() {
            features[m * valid + t] = (v.max(floor) + LOG_OFFSET) / LOG_OFFSET;
        }
    }
    Ok(AudioFeatures {
        features,
        n_mels,
        valid_frames: valid,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_matches_torch() {
        // torch.hann_window(400) (periodic, float32), torch 2.15.
        let w = hann_window(400);
        let torch = [
            (0, 0.0f32),
            (1, 6.169_081e-5),
            (57, 0.187_378_7),
            (100, 0.5),
            (133, 0.747_729_4),
            (200, 1.0),
            (399, 6.169_081e-5),
        ];
        for (i, v) in torch {
            assert!((w[i] - v).abs() <= 6e-8, "w[{i}] = {} vs {v}", w[i]);
        }
        // Periodic: symmetric about n/2 (up to the f32 rounding of the angle,
        // as in torch), not about (n-1)/2.
        for i in 1..200 {
            assert!((w[i] - w[400 - i]).abs() <= 3e-7, "{i}");
        }
        assert!((w[1] - w[398]).abs() > 1e-4);
    }

    #[test]
    fn slaney_scale_round_trips() {
        assert_eq!(hz_to_mel(0.0), 0.0);
        assert_eq!(hz_to_mel(1000.0), 15.0);
        assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-12);
        for hz in [0.0, 440.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9 * hz.max(1.0));
        }
    }

    #[test]
    fn mel_bank_matches_transformers() {
        // transformers 4.57.6 mel_filter_bank(201, F, 0.0, 8000.0, 16000,
        // norm="slaney", mel_scale="slaney"): entries and column sums.
        let b = mel_filter_bank(201, 128, 16_000);
        let at = |i: usize, m: usize| b[i * 128 + m];
        let close = |a: f64, e: f64| (a - e).abs() <= 1e-12 * e.abs().max(1e-3);
        assert!(close(at(1, 0), 0.012_373_986_332_636_965));
        assert!(close(at(199, 127), 0.001_114_280_198_753_211));
        assert_eq!(at(0, 0), 0.0);
        assert_eq!(at(200, 127), 0.0);
        assert_eq!(at(2, 1), 0.0);
        let col_sum = |m: usize| (0..201).map(|i| at(i, m)).sum::<f64>();
        assert!(close(col_sum(5), 0.012_373_986_332_636_974));
        assert!(close(col_sum(64), 0.024_841_200_325_741_553));
        assert!(close(col_sum(127), 0.024_936_043_883_767_283));
        let total: f64 = b.iter().sum();
        assert!(close(total, 3.190_985_528_540_699_6));
        // Every filter has a nonzero weight (the reference warns otherwise),
        // within bins 1..=199 (nothing at DC or at 8 kHz).
        for m in 0..128 {
            assert!((1..200).any(|i| at(i, m) > 0.0), "filter {m} is empty");
        }

        // The Whisper default, 80 filters.
        let b80 = mel_filter_bank(201, 80, 16_000);
        assert!(close(b80[80], 0.024_862_593_984_176_087));
        assert!(close(b80[2 * 80 + 1], 0.022_871_772_096_078_023));
        assert!(close(b80[199 * 80 + 79], 0.000_448_759_027_589_055_84));
        assert!(close(b80.iter().sum(), 1.999_024_102_917_858));
    }

    fn cfg(chunk_length: usize) -> WhisperFeatureConfig {
        WhisperFeatureConfig::new(128, chunk_length)
    }

    fn chirp(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.5 * (std::f32::consts::TAU * (200.0 + 3000.0 * t) * t).sin()
            })
            .collect()
    }

    #[test]
    fn long_chunks_skip_padding_without_changing_the_result() {
        let x = chirp(20_017);
        let a = log_mel(&x, &cfg(30)).unwrap();
        let b = log_mel(&x, &cfg(300)).unwrap();
        assert_eq!(a.valid_frames, 126); // ceil(20017 / 160)
        assert_eq!(a.valid_frames, b.valid_frames);
        assert_eq!(a.features, b.features);
        assert!(!a.truncated);
    }

    #[test]
    fn padding_frames_equal_the_direct_computation() {
        // A nonzero padding_value makes the padding frames non-silent: the
        // shortcut (one representative frame) must give the value every such
        // frame has, including through the maximum.
        let mut c = cfg(1);
        c.padding_value = 0.9;
        let x = vec![0.01f32; 1601];
        let fast = log_mel(&x, &c).unwrap();
        // The same clip padded by hand to n_samples with the padding value:
        // no padding frames remain, every frame is computed directly.
        let mut full = x.clone();
        full.resize(c.n_samples, 0.9);
        let direct = log_mel(&full, &c).unwrap();
        assert_eq!(fast.valid_frames, 11);
        assert_eq!(direct.valid_frames, 100);
        for m in 0..128 {
            assert_eq!(
                &fast.features[m * 11..(m + 1) * 11],
                &direct.features[m * 100..m * 100 + 11]
            );
        }
    }

    #[test]
    fn truncation_and_valid_frames() {
        let c = cfg(1);
        let long = chirp(16_000 + 321);
        let f = log_mel(&long, &c).unwrap();
        assert!(f.truncated);
        assert_eq!(f.valid_frames, 100);
        assert_eq!(f.features.len(), 128 * 100);
        let exact = log_mel(&long[..16_000], &c).unwrap();
        assert!(!exact.truncated);
        assert_eq!(f.features, exact.features);
        for (len, want) in [(1, 1), (160, 1), (161, 2), (4817, 31)] {
            assert_eq!(
                log_mel(&chirp(len), &c).unwrap().valid_frames,
                want,
                "{len}"
            );
        }
    }

    #[test]
    fn silence_is_the_floor() {
        let f = log_mel(&[0.0; 500], &cfg(30)).unwrap();
        // log10(1e-10) = -10 everywhere; (-10 + 4) / 4.
        assert!(f.features.iter().all(|&v| v == -1.5));
    }

    #[test]
    fn rejects_what_it_cannot_reproduce() {
        let mut c = cfg(30);
        c.dither = 1e-4;
        assert!(log_mel(&[0.1], &c)
            .unwrap_err()
            .to_string()
            .contains("dither"));
        let c = cfg(30);
        assert!(log_mel(&[], &c).unwrap_err().to_string().contains("empty"));
        let e = log_mel(&[0.0, f32::NAN], &c).unwrap_err().to_string();
        assert!(e.contains("sample 1 is NaN"), "{e}");
        let mut c = cfg(30);
        c.sampling_rate = 22_050;
        assert!(log_mel(&[0.1], &c)
            .unwrap_err()
            .to_string()
            .contains("22050"));
    }
}
