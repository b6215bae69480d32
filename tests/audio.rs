//! Audio input against the references of `tests/fixtures/audio`
//! (`scripts/gen_audio_fixtures.py`: librosa 0.11.0 / soundfile 0.14.0 /
//! soxr 1.1.0 loading, transformers 4.57.6 `WhisperFeatureExtractor` on its
//! torch path, called as `Qwen2_5OmniProcessor` calls it).
//!
//! Tolerances:
//! * decoding of 16 kHz PCM (8/16/24/32-bit int, float) and FLAC, and the
//!   44.1 kHz stereo mono mix: **exact** (SHA-256 of the f32 samples);
//! * log-mel features of the reference samples: max abs ≤ [`MEL_TOL`]
//!   (f32 rounding of torch's FFT and matmul) on every clip and case;
//! * 44.1 kHz → 16 kHz (rubato sinc vs soxr_hq), and MP3 / Vorbis (symphonia
//!   vs mpg123 / libvorbis, then the resampler): samples within
//!   [`RESAMPLE_MAX_TOL`] max abs and [`RESAMPLE_RMS_TOL`] RMS, features
//!   within [`RESAMPLED_MEL_TOL`] max abs and [`RESAMPLED_MEL_MEAN_TOL`] mean
//!   abs (measured: 2.1e-3 / 2.1e-4 and 4.3e-2 / 2.6e-4, see the docs of
//!   `geom::input::audio`), printed by
//!   `cargo test --test audio -- --nocapture resample`;
//! * every class of bad input: one error naming the file.

use std::path::{Path, PathBuf};

use geom::input::audio::{
    decode, load_audio, log_mel, resample, WhisperFeatureConfig, SAMPLE_RATE,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Max abs difference of features computed from the reference samples.
const MEL_TOL: f32 = 1e-4;
/// Max abs sample difference after resampling / lossy decoding.
const RESAMPLE_MAX_TOL: f32 = 3e-3;
/// RMS sample difference after resampling / lossy decoding.
const RESAMPLE_RMS_TOL: f32 = 3e-4;
/// Max abs feature difference after resampling / lossy decoding (in the
/// quietest time-frequency cells and the top mel bin, 7.9–8 kHz).
const RESAMPLED_MEL_TOL: f32 = 6e-2;
/// Mean abs feature difference after resampling / lossy decoding.
const RESAMPLED_MEL_MEAN_TOL: f32 = 1e-3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio")
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("index.json")).unwrap()).unwrap()
}

fn clips() -> Vec<Value> {
    index()["clips"].as_array().unwrap().clone()
}

fn clip(name: &str) -> Value {
    clips().into_iter().find(|c| c["name"] == name).unwrap()
}

/// A float32 tensor of `expected.safetensors`, with its shape.
fn tensor(key: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(root().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(key).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{key}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape().to_vec())
}

fn sha(samples: &[f32]) -> String {
    let mut h = Sha256::new();
    for s in samples {
        h.update(s.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rms(a: &[f32], b: &[f32]) -> f32 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (s / a.len() as f64).sqrt() as f32
}

/// The reference samples of a clip: the stored array, or (for exact clips)
/// our own decoding after checking it against the stored SHA-256.
fn reference_samples(c: &Value) -> Vec<f32> {
    match c["samples"]["key"].as_str() {
        Some(key) => tensor(key).0,
        None => {
            let y = load_audio(&root().join(c["file"].as_str().unwrap())).unwrap();
            assert_eq!(sha(&y), c["samples"]["sha256"], "{}", c["name"]);
            y
        }
    }
}

#[test]
fn lossless_16k_decodes_exactly() {
    let mut checked = 0;
    for c in clips() {
        if c["native_rate"] != 16_000 {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        let path = root().join(c["file"].as_str().unwrap());
        let (mono, rate) = decode(&path).unwrap();
        assert_eq!(rate, SAMPLE_RATE, "{name}");
        assert_eq!(
            mono.len() as u64,
            c["samples"]["len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            sha(&mono),
            c["samples"]["sha256"],
            "{name}: not librosa's samples"
        );
        // 16 kHz input needs no resampler: load_audio passes it through.
        assert_eq!(load_audio(&path).unwrap(), mono, "{name}");
        checked += 1;
    }
    // a: PCM 8/16/24/32-bit, float, FLAC 16/24-bit; b: PCM16; c: FLAC.
    assert_eq!(checked, 9);
}

#[test]
fn pcm16_is_int16_over_32768() {
    let path = root().join("a_pcm16.wav");
    let (mono, _) = decode(&path).unwrap();
    // The 16-bit samples straight from the data chunk (44-byte header).
    let bytes = std::fs::read(&path).unwrap();
    let data = &bytes[bytes.len() - 2 * mono.len()..];
    for (i, (s, b)) in mono.iter().zip(data.chunks_exact(2)).enumerate() {
        let v = i16::from_le_bytes([b[0], b[1]]);
        assert_eq!(*s, f32::from(v) / 32768.0, "sample {i}");
    }
}

#[test]
fn stereo_mono_mix_is_exact() {
    for name in ["s_pcm16_wav", "s_pcm16_flac"] {
        let c = clip(name);
        let (mono, rate) = decode(&root().join(c["file"].as_str().unwrap())).unwrap();
        assert_eq!((rate, c["channels"].as_u64()), (44_100, Some(2)));
        assert_eq!(mono.len() as u64, c["native_frames"].as_u64().unwrap());
        assert_eq!(sha(&mono), c["native_mono_sha256"], "{name}");
    }
}

#[test]
fn features_match_the_processor() {
    let mut cases = 0;
    for c in clips() {
        let name = c["name"].as_str().unwrap();
        let samples = reference_samples(&c);
        for case in c["cases"].as_array().unwrap() {
            let key = case["key"].as_str().unwrap();
            let f = case["feature_size"].as_u64().unwrap() as usize;
            let chunk = case["chunk_length"].as_u64().unwrap() as usize;
            let (want, shape) = tensor(key);
            let got = log_mel(&samples, &WhisperFeatureConfig::new(f, chunk)).unwrap();
            let valid = case["valid_frames"].as_u64().unwrap() as usize;
            assert_eq!(shape, [f, valid], "{name} {key}");
            assert_eq!((got.n_mels, got.valid_frames), (f, valid), "{name} {key}");
            assert_eq!(
                got.truncated,
                case["truncated"].as_bool().unwrap(),
                "{name}"
            );
            let d = max_abs(&got.features, &want);
            println!("{name:14} F={f:3} chunk={chunk:2}s frames={valid:3}: max abs {d:.2e}");
            assert!(d <= MEL_TOL, "{name} {key}: max abs {d}");
            cases += 1;
        }
    }
    assert_eq!(cases, 14);
}

#[test]
fn chunk_300_equals_chunk_30() {
    // The hub's Omni configs pad to 300 s; the valid frames do not change.
    let c = clip("b_pcm16_wav");
    let y = reference_samples(&c);
    let a = log_mel(&y, &WhisperFeatureConfig::new(128, 30)).unwrap();
    let b = log_mel(&y, &WhisperFeatureConfig::new(128, 300)).unwrap();
    assert_eq!(a.valid_frames, b.valid_frames);
    assert_eq!(a.features, b.features);
}

#[test]
fn resample_and_lossy_within_tolerance() {
    let mut worst = Vec::new();
    for name in ["s_pcm16_wav", "s_pcm16_flac", "s_mp3", "s_ogg"] {
        let c = clip(name);
        let want = tensor(c["samples"]["key"].as_str().unwrap()).0;
        let got = load_audio(&root().join(c["file"].as_str().unwrap())).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        let (d, r) = (max_abs(&got, &want), rms(&got, &want));
        let level = rms(&want, &vec![0.0; want.len()]);
        let case = &c["cases"][0];
        let (mel, _) = tensor(case["key"].as_str().unwrap());
        let feats = log_mel(&got, &WhisperFeatureConfig::new(128, 30)).unwrap();
        assert_eq!(
            feats.valid_frames as u64,
            case["valid_frames"].as_u64().unwrap()
        );
        let dm = max_abs(&feats.features, &mel);
        let mm = feats
            .features
            .iter()
            .zip(&mel)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / mel.len() as f32;
        println!(
            "resample {name:12}: samples max abs {d:.2e}, RMS {r:.2e} (signal RMS {level:.3}); \
             features max abs {dm:.2e}, mean abs {mm:.2e}"
        );
        worst.push((name, d, r, dm, mm));
    }
    for (name, d, r, dm, mm) in worst {
        assert!(d <= RESAMPLE_MAX_TOL, "{name}: max abs {d}");
        assert!(r <= RESAMPLE_RMS_TOL, "{name}: RMS {r}");
        assert!(dm <= RESAMPLED_MEL_TOL, "{name}: features max abs {dm}");
        assert!(
            mm <= RESAMPLED_MEL_MEAN_TOL,
            "{name}: features mean abs {mm}"
        );
    }
}

#[test]
fn resample_from_the_mix_equals_load_audio() {
    let path = root().join("s_pcm16.wav");
    let (mono, rate) = decode(&path).unwrap();
    assert_eq!(
        resample(&mono, rate, SAMPLE_RATE).unwrap(),
        load_audio(&path).unwrap()
    );
}

/// A RIFF/WAVE file: `fmt ` chunk with `tag`, then `data`.
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    wav_with(tag, channels, rate, block, bits, &[], data)
}

/// A RIFF/WAVE file with a given block size and `fmt ` extension bytes.
fn wav_with(
    tag: u16,
    channels: u16,
    rate: u32,
    block: u16,
    bits: u16,
    ext: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut fmt = Vec::new();
    fmt.extend(tag.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * u32::from(block)).to_le_bytes());
    fmt.extend(block.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    fmt.extend(ext);
    let mut out = b"RIFF".to_vec();
    out.extend((4 + 8 + fmt.len() as u32 + 8 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVE");
    out.extend(b"fmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn bad_audio_is_one_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let flac = std::fs::read(root().join("a_pcm16.flac")).unwrap();
    let mut corrupt_flac = flac.clone();
    let mid = corrupt_flac.len() / 2;
    for b in &mut corrupt_flac[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let pcm16: Vec<u8> = (0..1000i16).flat_map(|i| (i * 20).to_le_bytes()).collect();
    let full = wav(1, 1, 16_000, 16, &pcm16);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.wav", vec![], "empty file"),
        (
            "text.wav",
            b"hello, not audio at all\n".repeat(20),
            "not audio",
        ),
        ("zero.wav", wav(1, 1, 16_000, 16, &[]), "zero samples"),
        (
            "nan.wav",
            wav(3, 1, 16_000, 32, &floats(&[0.1, f32::NAN, 0.2])),
            "NaN",
        ),
        (
            "inf.wav",
            wav(3, 1, 16_000, 32, &floats(&[0.1, 0.2, f32::INFINITY])),
            "inf",
        ),
        // IMA ADPCM (0x11; cbSize 2, 505 samples per 256-byte block): a
        // codec this build does not decode.
        (
            "ima_adpcm.wav",
            wav_with(0x11, 1, 16_000, 256, 4, &[2, 0, 0xf9, 0x01], &[0u8; 512]),
            "unsupported codec",
        ),
        (
            "cut_data.wav",
            full[..full.len() - 700].to_vec(),
            "cut in its data",
        ),
        (
            "truncated.flac",
            flac[..flac.len() / 3].to_vec(),
            "truncated FLAC",
        ),
        ("corrupt.flac", corrupt_flac, "corrupt FLAC"),
        ("cut_header.wav", full[..30].to_vec(), "cut in its header"),
    ];
    for (file, bytes, what) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        let err = load_audio(&path).expect_err(what).to_string();
        assert!(err.contains(&path.display().to_string()), "{what}: {err}");
        assert!(err.contains("expected"), "{what}: {err}");
        println!("{what}: {err}");
    }
    let missing = dir.path().join("missing.mp3");
    let err = load_audio(&missing).unwrap_err().to_string();
    assert!(
        err.contains("missing.mp3") && err.contains("cannot open"),
        "{err}"
    );
    assert!(decode(Path::new("/nonexistent/x.ogg")).is_err());
}
