//! Audio input of Qwen2.5-Omni: decoding, a mono mix at 16 kHz, and the
//! Whisper log-mel features, as LCO-Embedding gets them —
//! `librosa.load(path, sr=16000)`, then `Qwen2_5OmniProcessor` (transformers
//! 4.57.6) calling `WhisperFeatureExtractor` on its torch path.
//!
//! # Loading ([`load_audio`] = [`decode`] then [`resample`])
//!
//! * **Decoding** with symphonia: WAV (8-bit unsigned, 16/24/32-bit integer,
//!   32/64-bit float PCM), FLAC, MP3 and OGG/Vorbis. Integer PCM becomes
//!   `f32` as libsndfile (soundfile) makes it: `x / 2^(bits−1)` (8-bit:
//!   `(u − 128) / 128`), so 16 kHz mono PCM and FLAC come out **bit for bit**
//!   as librosa loads them, and need no resampler. MP3 is decoded gapless
//!   (the encoder delay and padding are trimmed, as libsndfile/mpg123 do).
//! * **Mono**: the float32 mean over the channels, in numpy's summation
//!   order (`librosa.to_mono`; bit-exact, also for 8 or more channels).
//! * **Resampling** to 16 kHz with rubato's band-limited sinc resampler
//!   ([`SINC_LEN`] = 768 taps, Blackman–Harris² window, cutoff
//!   [`SINC_CUTOFF`] = 0.956 of the lower Nyquist frequency, cubic
//!   interpolation of a [`SINC_OVERSAMPLING`] = 1024× table, in `f64`),
//!   aligned to the input to a small fraction of a sample (rubato only
//!   trims whole output samples of its delay; see `decode::resample`) and
//!   trimmed to librosa's length `ceil(n · 16000 / rate)`. As librosa does,
//!   when soxr's own output (`round(n · ratio)` samples) is one sample
//!   shorter than that, the last sample is a zero. librosa resamples with
//!   soxr (`soxr_hq`), a different filter, so the samples are not identical;
//!   the taps and cutoff are the best match to it among those tried (taps
//!   256–1024, cutoffs 0.90–0.975 and rubato's automatic one, three windows).
//!   On the 44.1 kHz stereo fixture (speech-like voices plus a chirp up to
//!   14 kHz and broadband noise, so a worst case for the 7–8 kHz transition
//!   band) the difference from librosa is **max abs 2.1e-3, RMS 2.1e-4**
//!   (signal RMS 0.106); on the log-mel features it is mean abs 2.6e-4, max
//!   abs 4.3e-2 (in the quietest time-frequency cells and the top mel bin).
//!   `tests/audio.rs` asserts 3e-3 / 3e-4 on the samples and 1e-3 / 6e-2 on
//!   the features; `cargo test --test audio -- --nocapture resample` prints
//!   the measurements.
//! * **Lossy codecs**: symphonia's MP3 and Vorbis decoders are not
//!   libsndfile's (mpg123, libvorbis), but on the fixtures they agree with
//!   them to max abs 3.6e-7 (MP3) and 8.9e-8 (Vorbis) before resampling;
//!   after it, MP3 and OGG are as close to librosa as the WAV (max abs
//!   2.2e-3 and 2.1e-3, RMS 2.1e-4).
//!
//! Every unusable file (missing, empty, not audio, corrupt, truncated, an
//! unsupported codec, zero samples, NaN or infinite samples) is one
//! [`GeomError`] whose message names the file, the problem and what was
//! expected. Decoding is strict: a packet that fails to decode, fewer frames
//! than the header declares (WAV, FLAC, OGG), or a FLAC whose MD5 does not
//! match fails the file (librosa would keep what libsndfile could read).
//!
//! # Features ([`log_mel`])
//!
//! Exactly the steps of `WhisperFeatureExtractor.__call__` with the
//! processor's arguments (`sampling_rate=16000, padding="max_length",
//! return_attention_mask=True`, truncation on):
//!
//! 1. pad with `padding_value` or truncate the clip to `n_samples =
//!    chunk_length · sampling_rate` (30 s in Whisper's config, 300 s in the
//!    hub's Omni configs);
//! 2. `torch.stft(n_fft=400, hop_length=160, window=hann_window(400))`:
//!    centred with reflect padding, periodic Hann; power spectrum
//!    `|X|²`, the last frame dropped;
//! 3. Slaney-normalised mel filters on the Slaney scale, 0–8 kHz,
//!    `feature_size` bins (128 for Omni);
//! 4. `log10(max(mel, 1e-10))`, then `max(x, max − 8)` where the maximum is
//!    over the **whole padded chunk** (including frames past the valid ones
//!    that still overlap the clip), then `(x + 4) / 4`.
//!
//! Only the valid frames are returned (`[n_mels, valid_frames]`), their
//! count being the processor's `feature_attention_mask.sum()`: the sample
//! mask taken every `hop_length` samples, i.e. `ceil(len / 160)` capped at
//! `n_samples / 160`. Frames made only of padding are all equal: one is
//! computed and stands for all of them (in the maximum), so a 300 s chunk
//! costs what the clip costs; the result is identical to the full
//! computation. Against the reference features the difference is at most
//! 1.4e-5 on every fixture clip (f32 rounding of torch's FFT and matmul;
//! `tests/audio.rs` asserts 1e-4).

mod decode;
mod mel;

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{GeomError, Result};

pub use decode::{SINC_CUTOFF, SINC_LEN, SINC_OVERSAMPLING};
pub use mel::{hann_window, hz_to_mel, mel_filter_bank, mel_to_hz};

/// The sample rate Qwen2.5-Omni's audio encoder takes (the processor's
/// `audio_kwargs` `sampling_rate: 16000`, `processing_qwen2_5_omni.py`).
pub const SAMPLE_RATE: u32 = 16_000;

/// Decodes an audio file, mixes it to mono and resamples it to
/// [`SAMPLE_RATE`]: `librosa.load(path, sr=16000)`. Errors name the file.
///
/// # Shapes
///
/// Returns `[n]` samples, `n = ceil(frames · 16000 / rate)`.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let (mono, rate) = decode(path)?;
    resample(&mono, rate, SAMPLE_RATE)
}

/// Decodes an audio file (WAV, FLAC, MP3, OGG/Vorbis) and mixes its channels
/// to mono (their mean), at the file's own sample rate.
///
/// # Shapes
///
/// Returns `([frames], rate)`.
pub fn decode(path: &Path) -> Result<(Vec<f32>, u32)> {
    decode::decode(path)
}

/// Resamples mono samples from `from` Hz to `to` Hz with a band-limited sinc
/// resampler; equal rates return the samples unchanged (no filtering).
///
/// # Shapes
///
/// `[n]` → `[ceil(n · to / from)]` (librosa's output length).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    decode::resample(samples, from, to)
}

/// The Whisper feature extractor's settings (`WhisperFeatureExtractor`,
/// transformers 4.57.6 `models/whisper/feature_extraction_whisper.py`).
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperFeatureConfig {
    /// Mel bins (`feature_size`; 80 by default, 128 for Qwen2.5-Omni).
    pub feature_size: usize,
    /// Sample rate the features are computed at (must be 16000).
    pub sampling_rate: u32,
    /// STFT hop in samples (160: 10 ms).
    pub hop_length: usize,
    /// FFT and window length in samples (400: 25 ms).
    pub n_fft: usize,
    /// Seconds every clip is padded or truncated to (30, or 300 for Omni).
    pub chunk_length: usize,
    /// `chunk_length · sampling_rate`: samples after padding / truncation.
    pub n_samples: usize,
    /// `n_samples / hop_length`: frames of the padded chunk.
    pub nb_max_frames: usize,
    /// The value the clip is padded with (0.0: silence).
    pub padding_value: f32,
    /// Gaussian dither (0.0; anything else is rejected by [`log_mel`]).
    pub dither: f32,
}

impl Default for WhisperFeatureConfig {
    /// `WhisperFeatureExtractor()`'s defaults.
    fn default() -> Self {
        Self::new(80, 30)
    }
}

/// Whisper's defaults (`WhisperFeatureExtractor.__init__`).
const DEFAULT_SAMPLING_RATE: u32 = 16_000;
const DEFAULT_HOP_LENGTH: usize = 160;
const DEFAULT_N_FFT: usize = 400;

impl WhisperFeatureConfig {
    /// Whisper's defaults with `feature_size` mel bins and a chunk of
    /// `chunk_length` seconds (`n_samples`, `nb_max_frames` derived).
    pub fn new(feature_size: usize, chunk_length: usize) -> Self {
        let mut cfg = Self {
            feature_size,
            sampling_rate: DEFAULT_SAMPLING_RATE,
            hop_length: DEFAULT_HOP_LENGTH,
            n_fft: DEFAULT_N_FFT,
            chunk_length,
            n_samples: 0,
            nb_max_frames: 0,
            padding_value: 0.0,
            dither: 0.0,
        };
        cfg.derive();
        cfg
    }

    /// `n_samples = chunk_length · sampling_rate`,
    /// `nb_max_frames = n_samples / hop_length`, as `__init__` sets them.
    fn derive(&mut self) {
        self.n_samples = self.chunk_length * self.sampling_rate as usize;
        self.nb_max_frames = self.n_samples / self.hop_length.max(1);
    }

    /// From a checkpoint folder: `preprocessor_config.json` (the hub's Omni
    /// repos merge Whisper fields and image fields in this one file) or,
    /// transformers-5 style, the `feature_extractor` object of
    /// `processor_config.json`. Missing fields take WhisperFeatureExtractor's
    /// defaults; a field of the wrong type is an error naming it.
    /// `n_samples` and `nb_max_frames` are always derived from
    /// `chunk_length`, as `__init__` does (values in the file are ignored).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        const FILES: [&str; 2] = ["preprocessor_config.json", "processor_config.json"];
        let mut seen = Vec::new();
        for file in FILES {
            let path = dir.join(file);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| GeomError::Io {
                path: path.clone(),
                source,
            })?;
            let source = path.display().to_string();
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| GeomError::invalid(format!("{source}: not valid JSON ({e})")))?;
            // transformers 5: config_dict.get("feature_extractor", config_dict)
            let obj = match value.get("feature_extractor").unwrap_or(&value) {
                Value::Object(o) => o,
                _ => {
                    return Err(GeomError::invalid(format!(
                        "{source}: expected a JSON object (or a 'feature_extractor' object)"
                    )))
                }
            };
            if is_whisper(obj, &source)? {
                return Self::from_map(obj, &source);
            }
            seen.push(file);
        }
        Err(GeomError::invalid(format!(
            "{}: no Whisper feature-extractor settings (expected 'feature_size' or \
             \"feature_extractor_type\": \"WhisperFeatureExtractor\" in preprocessor_config.json, \
             or a 'feature_extractor' object in processor_config.json; found {})",
            dir.display(),
            if seen.is_empty() {
                "neither file".to_string()
            } else {
                format!("only other settings in {}", seen.join(", "))
            }
        )))
    }

    /// Parses the Whisper fields of one config object (`source` names it in
    /// errors); fields it lacks take the defaults.
    fn from_map(obj: &Map<String, Value>, source: &str) -> Result<Self> {
        let d = Self::default();
        let fail = |key: &str, want: &str, got: &Value| {
            GeomError::invalid(format!(
                "{source}: field '{key}' must be {want}, found {got}"
            ))
        };
        let uint = |key: &str, default: usize| -> Result<usize> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or_else(|| fail(key, "a non-negative integer", v)),
            }
        };
        let float = |key: &str, default: f32| -> Result<f32> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| fail(key, "a number", v)),
            }
        };
        let rate = uint("sampling_rate", d.sampling_rate as usize)?;
        let mut cfg = Self {
            feature_size: uint("feature_size", d.feature_size)?,
            sampling_rate: u32::try_from(rate).map_err(|_| {
                fail(
                    "sampling_rate",
                    "a 32-bit sample rate",
                    &obj["sampling_rate"],
                )
            })?,
            hop_length: uint("hop_length", d.hop_length)?,
            n_fft: uint("n_fft", d.n_fft)?,
            chunk_length: uint("chunk_length", d.chunk_length)?,
            n_samples: 0,
            nb_max_frames: 0,
            padding_value: float("padding_value", d.padding_value)?,
            dither: float("dither", d.dither)?,
        };
        // Type-check the derived fields too, though __init__ overwrites them.
        uint("n_samples", 0)?;
        uint("nb_max_frames", 0)?;
        if cfg.feature_size == 0 || cfg.hop_length == 0 || cfg.n_fft < 2 || cfg.chunk_length == 0 {
            return Err(GeomError::invalid(format!(
                "{source}: feature_size ({}), hop_length ({}) and chunk_length ({}) must be \
                 positive and n_fft ({}) at least 2",
                cfg.feature_size, cfg.hop_length, cfg.chunk_length, cfg.n_fft
            )));
        }
        cfg.derive();
        Ok(cfg)
    }
}

/// Whether a config object holds Whisper feature-extractor settings; a
/// `feature_extractor_type` naming another extractor is an error.
fn is_whisper(obj: &Map<String, Value>, source: &str) -> Result<bool> {
    match obj.get("feature_extractor_type") {
        Some(Value::String(t)) if t == "WhisperFeatureExtractor" => Ok(true),
        Some(other) if !other.is_null() => Err(GeomError::invalid(format!(
            "{source}: feature_extractor_type is {other} (expected \"WhisperFeatureExtractor\", \
             the audio front end of Qwen2.5-Omni)"
        ))),
        _ => Ok(obj.contains_key("feature_size")),
    }
}

/// The processor's log-mel features of one clip.
#[derive(Debug, Clone)]
pub struct AudioFeatures {
    /// `[n_mels, valid_frames]` row-major: only the frames the model consumes.
    pub features: Vec<f32>,
    /// Mel bins (the config's `feature_size`).
    pub n_mels: usize,
    /// Frames the processor's `feature_attention_mask` marks valid.
    pub valid_frames: usize,
    /// Whether the clip was longer than `n_samples` and was cut.
    pub truncated: bool,
}

/// The processor's features of one clip (16 kHz mono samples): what
/// `Qwen2_5OmniProcessor` puts in `input_features[i, :, :valid]`.
///
/// # Shapes
///
/// `samples`: `[n]` at 16 kHz → `features`: `[feature_size, valid_frames]`,
/// `valid_frames = min(ceil(n / hop_length), n_samples / hop_length)`.
pub fn log_mel(samples: &[f32], cfg: &WhisperFeatureConfig) -> Result<AudioFeatures> {
    mel::log_mel(samples, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn config_from_omni_preprocessor() {
        // The hub's Qwen2.5-Omni preprocessor_config.json (abridged): image
        // and Whisper fields in one object, stale n_samples ignored.
        let d = dir_with(&[(
            "preprocessor_config.json",
            r#"{"chunk_length": 300, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
                "feature_size": 128, "hop_length": 160, "image_mean": [0.48, 0.45, 0.40],
                "max_pixels": 12845056, "n_fft": 400, "n_samples": 4800000, "nb_max_frames": 30000,
                "padding_side": "right", "padding_value": 0.0, "patch_size": 14,
                "processor_class": "Qwen2_5OmniProcessor", "return_attention_mask": true,
                "sampling_rate": 16000}"#,
        )]);
        let c = WhisperFeatureConfig::from_dir(d.path()).unwrap();
        assert_eq!(c, WhisperFeatureConfig::new(128, 300));
        assert_eq!((c.n_samples, c.nb_max_frames), (4_800_000, 30_000));
    }

    #[test]
    fn config_from_processor_config_and_defaults() {
        let d = dir_with(&[
            (
                "preprocessor_config.json",
                r#"{"patch_size": 14, "min_pixels": 3136}"#,
            ),
            (
                "processor_config.json",
                r#"{"feature_extractor": {"feature_size": 128, "n_samples": 1}}"#,
            ),
        ]);
        let c = WhisperFeatureConfig::from_dir(d.path()).unwrap();
        assert_eq!(c, WhisperFeatureConfig::new(128, 30));
        assert_eq!(WhisperFeatureConfig::default().feature_size, 80);
    }

    #[test]
    fn config_errors_name_the_problem() {
        let d = dir_with(&[("preprocessor_config.json", r#"{"feature_size": "128"}"#)]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("preprocessor_config.json") && e.contains("'feature_size'"),
            "{e}"
        );
        let d = dir_with(&[(
            "preprocessor_config.json",
            r#"{"feature_size": 128, "chunk_length": 30.5}"#,
        )]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'chunk_length'") && e.contains("30.5"), "{e}");
        let d = dir_with(&[(
            "preprocessor_config.json",
            r#"{"feature_size": 128, "dither": "no"}"#,
        )]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'dither'"), "{e}");
        let d = dir_with(&[(
            "preprocessor_config.json",
            r#"{"feature_extractor_type": "Wav2Vec2FeatureExtractor"}"#,
        )]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("Wav2Vec2FeatureExtractor"), "{e}");
        let d = dir_with(&[("preprocessor_config.json", r#"{"patch_size": 14}"#)]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Whisper feature-extractor settings"), "{e}");
        let d = dir_with(&[]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither file"), "{e}");
        let d = dir_with(&[("preprocessor_config.json", "{not json")]);
        let e = WhisperFeatureConfig::from_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
