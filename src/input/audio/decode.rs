//! Decoding (symphonia), the mono mix, and resampling to 16 kHz (rubato),
//! as `librosa.load(path, sr=16000)` does it; the module docs of [`super`]
//! say where the result is exact and how close it is elsewhere.

use std::fs::File;
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use symphonia::core::codecs::audio::well_known::{CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::error::{GeomError, Result};

/// What a readable audio file is, for error messages.
const EXPECTED: &str = "a WAV (8/16/24/32-bit int or float PCM), FLAC, MP3 or OGG/Vorbis file";

/// Length of the windowed-sinc interpolation filter, in input samples.
/// With [`SINC_CUTOFF`] and the Blackman–Harris² window this was the best
/// match to soxr_hq of the lengths tried (256–1024) on the 44.1 kHz chirp
/// fixture (see the module docs).
pub const SINC_LEN: usize = 768;
/// The sinc's cutoff relative to the lower Nyquist frequency. rubato's
/// automatic choice (0.98 for 768 taps) keeps more of the top band than
/// soxr_hq does; 0.956 (0.952–0.958 tried) matches soxr_hq best.
pub const SINC_CUTOFF: f32 = 0.956;
/// Points of the sinc table between two input samples (rubato's default is
/// 128). rubato times its output `1 / SINC_OVERSAMPLING` input samples late
/// (see the alignment in `resample`), so a fine table keeps that offset small.
pub const SINC_OVERSAMPLING: usize = 1024;
/// Input frames per resampler call (only the speed depends on it).
const RESAMPLE_CHUNK: usize = 4096;
/// numpy's pairwise summation works in blocks of this many values
/// (`PW_BLOCKSIZE`, `numpy/_core/src/umath/loops_utils.h.src`).
const NUMPY_PW_BLOCKSIZE: usize = 128;

/// One error for every way an audio file can be unusable: it names the
/// file, the problem and what was expected.
pub(super) fn bad_audio(path: &Path, problem: impl std::fmt::Display) -> GeomError {
    GeomError::invalid(format!(
        "{}: {problem} (expected {EXPECTED})",
        path.display()
    ))
}

/// Sum of `a` as numpy sums a float32 array (`pairwise_sum_FLOAT`): fewer
/// than 8 values one after the other from 0; up to the block size in 8
/// interleaved accumulators added as a tree; above it, halves recursively.
fn numpy_sum(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0f32, |acc, &x| acc + x)
    } else if n <= NUMPY_PW_BLOCKSIZE {
        let mut r = [0.0f32; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for block in a[8..full].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(block) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[full..] {
            res += x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        numpy_sum(&a[..half]) + numpy_sum(&a[half..])
    }
}

/// Appends the mono mix of `interleaved` frames of `channels` channels to
/// `out`: `librosa.to_mono`, the float32 mean over the channels.
fn mix_into(out: &mut Vec<f32>, interleaved: &[f32], channels: usize) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let c = channels as f32;
    out.extend(interleaved.chunks_exact(channels).map(|f| numpy_sum(f) / c));
}

/// See [`super::decode`].
pub(super) fn decode(path: &Path) -> Result<(Vec<f32>, u32)> {
    let file = File::open(path).map_err(|e| bad_audio(path, format!("cannot open: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| bad_audio(path, format!("unrecognised or corrupt container ({e})")))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| bad_audio(path, "no audio track"))?;
    let track_id = track.id;
    // The frame count in the header: exact for WAV (data size), FLAC
    // (STREAMINFO) and OGG (last granule position); an MP3 without a Xing /
    // LAME header only has an estimate, so it is not checked.
    let declared = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| bad_audio(path, "the audio track has no codec parameters"))?
        .clone();
    let exact_count = ![CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3].contains(&params.codec);
    // Gapless on (the default): encoder delay and padding are trimmed, as
    // libsndfile's MP3 reader does. Verification: FLAC's MD5 of the samples.
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default().verify(true))
        .map_err(|e| bad_audio(path, format!("unsupported codec ({e})")))?;

    let mut rate = params.sample_rate;
    let mut channels: Option<usize> = None;
    let mut mono = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    let mut frames: u64 = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                return Err(bad_audio(path, "chained streams are not supported"))
            }
            Err(e) => return Err(bad_audio(path, format!("corrupt or truncated ({e})"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder
            .decode(&packet)
            .map_err(|e| bad_audio(path, format!("corrupt audio data ({e})")))?;
        if buf.frames() == 0 {
            continue;
        }
        let spec = buf.spec();
        let (r, c) = (spec.rate(), spec.channels().count());
        if c == 0 || r == 0 {
            return Err(bad_audio(path, "zero channels or a zero sample rate"));
        }
        if channels.is_some_and(|prev| prev != c) || rate.is_some_and(|prev| prev != r) {
            return Err(bad_audio(
                path,
                "the channel count or sample rate changes mid-stream",
            ));
        }
        (channels, rate) = (Some(c), Some(r));
        frames += buf.frames() as u64;
        buf.copy_to_vec_interleaved(&mut scratch);
        mix_into(&mut mono, &scratch, c);
    }
    if decoder.finalize().verify_ok == Some(false) {
        return Err(bad_audio(
            path,
            "corrupt: the decoded audio fails the file's checksum",
        ));
    }
    if let Some(n) = declared.filter(|&n| exact_count && frames < n) {
        return Err(bad_audio(
            path,
            format!("truncated or corrupt: decoded {frames} of the {n} frames its header declares"),
        ));
    }
    if mono.is_empty() {
        return Err(bad_audio(path, "no audio samples (zero length)"));
    }
    let rate = rate
        .filter(|&r| r > 0)
        .ok_or_else(|| bad_audio(path, "no sample rate"))?;
    if let Some(i) = mono.iter().position(|s| !s.is_finite()) {
        return Err(bad_audio(
            path,
            format!("sample {i} is {} (expected finite samples)", mono[i]),
        ));
    }
    Ok((mono, rate))
}

/// The number of samples soxr returns: `round(n · to / from)`, half up.
fn soxr_len(n: usize, from: u32, to: u32) -> usize {
    let (n, from, to) = (n as u128, u128::from(from), u128::from(to));
    ((2 * n * to + from) / (2 * from)) as usize
}

/// See [`super::resample`].
pub(super) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(GeomError::invalid(format!(
            "cannot resample from {from} Hz to {to} Hz (expected positive sample rates)"
        )));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    // librosa.resample: ratio = float(target_sr) / orig_sr,
    // n_samples = int(np.ceil(n * ratio)); soxr's own output is shorter by
    // one sample when n · ratio is not an integer and rounds down, and
    // `fix_length` then pads it with a zero.
    let ratio = f64::from(to) / f64::from(from);
    let out_len = (samples.len() as f64 * ratio).ceil() as usize;
    let live = soxr_len(samples.len(), from, to).min(out_len);

    let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
        .f_cutoff(SINC_CUTOFF)
        .oversampling_factor(SINC_OVERSAMPLING)
        .interpolation(SincInterpolationType::Cubic);
    let fail = |e: &dyn std::fmt::Display| {
        GeomError::invalid(format!("resampling {from} Hz -> {to} Hz failed: {e}"))
    };
    let mut resampler =
        Async::<f64>::new_sinc(ratio, 1.0, &params, RESAMPLE_CHUNK, 1, FixedAsync::Input)
            .map_err(|e| fail(&e))?;

    // Alignment. rubato's k-th raw output (before `process_all` drops
    // `output_delay()` of them) is the input at time
    //     (k + 1) / ratio − SINC_LEN / 2 + 1 / SINC_OVERSAMPLING
    // (its first index is −(SINC_LEN − 1), each output advances 1 / ratio,
    // and its sinc table peaks 1 / oversampling past the window centre), but
    // the delay it trims is an integer number of outputs: the rest, up to one
    // output sample, would stay as a shift (0.67 samples for 48 → 16 kHz).
    // Prepending `lead` zeros moves the input by whole samples; among the
    // `from / gcd` distinct choices, take the one that puts output j closest
    // to input time j / ratio, and read output j from raw output j + k.
    let period_in = (from / gcd(from, to)) as usize;
    let period_out = i64::from(to / gcd(from, to));
    let centre = SINC_LEN as f64 / 2.0 - 1.0 / SINC_OVERSAMPLING as f64;
    let misfit = |lead: usize| {
        let v = ratio * (centre + lead as f64);
        (v - v.round()).abs()
    };
    let mut lead = (0..period_in)
        .min_by(|&a, &b| misfit(a).total_cmp(&misfit(b)))
        .unwrap_or(0);
    let mut k = (ratio * (centre + lead as f64)).round() as i64 - 1;
    let trimmed = resampler.output_delay() as i64;
    while k < trimmed {
        lead += period_in;
        k += period_out;
    }
    let mut input = vec![0.0f64; lead];
    input.extend(samples.iter().map(|&s| f64::from(s)));
    // Zeros past the end so the last outputs see the whole filter.
    input.resize(input.len() + SINC_LEN, 0.0);
    let adapter = InterleavedSlice::new(&input, 1, input.len()).map_err(|e| fail(&e))?;
    let data = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| fail(&e))?
        .take_data();
    let offset = (k - trimmed) as usize;
    let Some(kept) = data.get(offset..offset + live) else {
        return Err(fail(&"rubato returned too few samples"));
    };
    let mut res: Vec<f32> = kept.iter().map(|&s| s as f32).collect();
    res.resize(out_len, 0.0);
    Ok(res)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_mean_order() {
        // numpy's float32 sums: sequential below 8 values, 8 accumulators
        // above. On [2^24, 1 × 9] numpy gives 2^24 + 8 (np.sum, numpy 2.4),
        // a sequential sum 2^24 (each +1 rounds back to even).
        let mut a = [1.0f32; 10];
        a[0] = 16_777_216.0;
        assert_eq!(a.iter().fold(0.0f32, |s, &x| s + x), 16_777_216.0);
        assert_eq!(numpy_sum(&a), 16_777_224.0);
        assert_eq!(numpy_sum(&[0.25, 0.5, 0.125]), 0.875);
        let mut out = Vec::new();
        mix_into(&mut out, &[0.5, 0.25, -1.0, 1.0], 2);
        assert_eq!(out, [0.375, 0.0]);
    }

    #[test]
    fn soxr_and_librosa_lengths() {
        // Measured with soxr 1.1.0 / librosa 0.11.0.
        assert_eq!(soxr_len(13_231, 44_100, 16_000), 4800);
        assert_eq!(soxr_len(132_317, 44_100, 16_000), 48_006);
        let out = resample(&vec![0.1; 13_231], 44_100, 16_000).unwrap();
        assert_eq!(out.len(), 4801);
        assert_eq!(out[4800], 0.0);
        assert_eq!(
            resample(&vec![0.1; 74_970], 44_100, 16_000).unwrap().len(),
            27_200
        );
    }

    #[test]
    fn same_rate_is_identity() {
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
        assert!(resample(&x, 0, 16_000).is_err());
    }

    #[test]
    fn resampled_tone_is_aligned() {
        // A 1 kHz tone resampled to 16 kHz: same amplitude and phase (the
        // fractional delay is compensated). The bound is the 1/1024-sample
        // residual offset: 0.5 · 2π · 1000 / rate / 1024 (≤ 4e-4 at 8 kHz).
        let tone = |sr: f64, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0.5 * (std::f64::consts::TAU * 1000.0 * i as f64 / sr).sin()) as f32)
                .collect()
        };
        let want = tone(16_000.0, 16_000);
        for from in [48_000u32, 44_100, 22_050, 8_000] {
            let out = resample(&tone(f64::from(from), from as usize), from, 16_000).unwrap();
            assert_eq!(out.len(), 16_000);
            let err = out[400..15_600]
                .iter()
                .zip(&want[400..15_600])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let bound = 0.5 * std::f32::consts::TAU * 1000.0 / from as f32 / 1024.0 + 3e-5;
            assert!(err < bound, "{from}: {err} >= {bound}");
        }
    }
}
