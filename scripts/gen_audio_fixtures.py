#!/usr/bin/env python3
"""Reference fixtures for geom's audio input (src/input/audio): decoding,
resampling to 16 kHz and the Whisper log-mel front end of Qwen2.5-Omni.

Writes ``tests/fixtures/audio/`` (relative to the repo root, whatever the
current working directory):

* small synthetic clips (speech-like harmonics with formants, fricative noise
  bursts, an exact-zero gap; seeded), with odd lengths that are not multiples
  of the hop (160):

  - ``a_*``: 16 kHz mono, 0.3 s (4817 samples), one signal quantised five
    ways as WAV (8-bit unsigned, 16-bit, 24-bit and 32-bit int, 32-bit float)
    and as 16-bit and 24-bit FLAC;
  - ``b_pcm16.wav``: 16 kHz mono, 1.7 s (27213 samples);
  - ``c_pcm16.flac``: 16 kHz mono, 3.1 s (49613 samples), truncated by a 1 s
    ``chunk_length`` (100 frames: a 2 s chunk would double the fixture);
  - ``s_*``: 44.1 kHz stereo, 0.3 s (13231 frames, with content above 8 kHz),
    as 16-bit WAV and FLAC, MP3 and OGG/Vorbis (all written by soundfile /
    libsndfile);

* ``expected.safetensors`` + ``index.json``: what LCO-Embedding's pipeline
  makes of each clip:

  - samples: ``librosa.load(path, sr=16000)`` (soundfile decoding, mean of the
    channels, soxr_hq resampling). Where geom must reproduce them bit for bit
    (every 16 kHz PCM / FLAC clip, and the 44.1 kHz mono mix of the lossless
    stereo clip) ``index.json`` holds their SHA-256 (little-endian float32
    bytes) instead of the array; the arrays themselves are stored only for
    the resampled and the lossy clips (``samples/<sha16>``, named like the
    features below);
  - features: ``WhisperFeatureExtractor(feature_size=F, chunk_length=C)``
    called exactly as ``Qwen2_5OmniProcessor`` calls it (``sampling_rate=16000,
    padding="max_length", return_attention_mask=True``; truncation on, the
    default), on the torch path (``_torch_extract_fbank_features``, float32),
    keeping the valid frames only: ``mel/<sha16>/f<F>_c<C>`` (named by the
    first 16 hex digits of the samples' SHA-256, so a WAV and its FLAC share
    it) is ``[F, valid_frames]`` with ``valid_frames =
    feature_attention_mask.sum()``.

Every file is the same on every run except ``s.ogg``, whose stream serial
number libsndfile draws at random (its audio, and so every reference, does
not change). The script checks its own premises: the extractor takes its
torch path, PCM decoding is the exact integer scaling, the lossless stereo
WAV and FLAC decode identically, and a 300 s ``chunk_length`` gives the same
valid frames as 30 s.

Run (from anywhere)::

    pip install -r scripts/requirements-models.txt
    python scripts/gen_audio_fixtures.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch
import transformers
from safetensors.numpy import save_file
from transformers import WhisperFeatureExtractor
from transformers.utils import is_torch_available

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "audio"
SR = 16_000
SEED = 20251011


def speech_like(n: int, sr: int, rng: np.random.Generator, f0_base: float) -> np.ndarray:
    """A deterministic speech-like signal in [-0.7, 0.7]: a gliding harmonic
    voice shaped by three formants, syllable envelopes, high-passed noise
    bursts, and an exact-zero gap (silence hits the log floor)."""
    t = np.arange(n) / sr
    f0 = f0_base * (1.0 + 0.25 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0_base
        if fk > 0.45 * sr:
            break
        formants = sum(
            g * np.exp(-0.5 * ((fk - fc) / bw) ** 2)
            for fc, bw, g in ((600.0, 150.0, 1.0), (1700.0, 250.0, 0.5), (2800.0, 400.0, 0.3))
        )
        voice += (0.05 + formants) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    syllables = 0.5 * (1.0 - np.cos(2 * np.pi * 2.7 * t)) ** 1.5
    noise = np.diff(rng.standard_normal(n + 1))  # high-passed
    bursts = np.clip(np.sin(2 * np.pi * 1.9 * t + 1.0), 0.0, None) ** 4
    x = voice * syllables + 0.15 * noise * bursts + 0.002 * rng.standard_normal(n)
    gap = slice(int(0.55 * n), int(0.62 * n))
    x[gap] = 0.0
    return (0.7 * x / np.abs(x).max()).astype(np.float64)


def zero_peak_timestamp(path: Path) -> None:
    """libsndfile adds a PEAK chunk (with the time of writing) to float WAVs;
    zero its timestamp so the file is the same on every run."""
    data = bytearray(path.read_bytes())
    pos = 12
    while pos + 8 <= len(data):
        tag, size = bytes(data[pos : pos + 4]), int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == b"PEAK":
            data[pos + 12 : pos + 16] = bytes(4)  # version (u32), then timestamp (u32)
        pos += 8 + size + (size & 1)
    path.write_bytes(bytes(data))


def sha(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<f4").tobytes()).hexdigest()


def features(samples: np.ndarray, feature_size: int, chunk_length: int) -> tuple[np.ndarray, int, bool]:
    """The processor's features of one clip: valid frames only, [F, frames]."""
    fe = WhisperFeatureExtractor(feature_size=feature_size, chunk_length=chunk_length)
    out = fe(
        samples,
        sampling_rate=SR,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="np",
    )
    feats = out["input_features"][0]
    mask = out["attention_mask"][0]
    valid = int(mask.sum())
    assert feats.dtype == np.float32 and feats.shape == (feature_size, fe.nb_max_frames)
    assert mask[:valid].all() and not mask[valid:].any()
    return np.ascontiguousarray(feats[:, :valid]), valid, len(samples) > fe.n_samples


def main() -> None:
    assert is_torch_available(), "the reference is the extractor's torch path"
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix in {".wav", ".flac", ".mp3", ".ogg", ".safetensors", ".json"}:
            old.unlink()
    rng = np.random.default_rng(SEED)
    tensors: dict[str, np.ndarray] = {}
    clips: list[dict] = []

    def add_clip(name: str, file: str, exact: bool, cases: list[tuple[int, int]], note: str) -> np.ndarray:
        path = OUT / file
        y, sr = librosa.load(path, sr=SR)
        assert sr == SR and y.dtype == np.float32
        info = sf.info(path)
        entry = {
            "name": name,
            "file": file,
            "note": note,
            "native_rate": info.samplerate,
            "channels": info.channels,
            "native_frames": info.frames,
            "samples": {"len": len(y), "sha256": sha(y)},
            "cases": [],
        }
        if not exact:
            key = f"samples/{entry['samples']['sha256'][:16]}"
            tensors[key] = y
            entry["samples"]["key"] = key
        for feature_size, chunk_length in cases:
            feats, valid, truncated = features(y, feature_size, chunk_length)
            # Clips that decode to the same samples (a WAV and its FLAC) share one tensor.
            key = f"mel/{entry['samples']['sha256'][:16]}/f{feature_size}_c{chunk_length}"
            assert key not in tensors or np.array_equal(tensors[key], feats)
            tensors[key] = feats
            entry["cases"].append(
                {
                    "key": key,
                    "feature_size": feature_size,
                    "chunk_length": chunk_length,
                    "valid_frames": valid,
                    "truncated": truncated,
                }
            )
            if chunk_length == 30 and not truncated:
                # A 300 s chunk (the hub's Omni configs) changes nothing in the valid frames.
                long, valid_long, _ = features(y, feature_size, 300)
                assert valid_long == valid and np.array_equal(long, feats), name
        clips.append(entry)
        return y

    # --- a: 16 kHz mono, 0.3 s, five quantisations --------------------------------------------
    n_a = 4817
    xa = speech_like(n_a, SR, rng, 140.0)
    k16 = np.round(xa * 32767).astype(np.int16)
    k24 = np.round(xa * (2**23 - 1)).astype(np.int32)
    k32 = np.round(xa * (2**31 - 1)).astype(np.int64).astype(np.int32)
    k8 = np.round(xa * 127).astype(np.int16)
    xf = (xa + 1e-5 * rng.standard_normal(n_a)).astype(np.float32)

    # libsndfile writes integer data without rescaling: int16 -> 16 bit, the top 24 bits of
    # int32 -> 24 bit, int16 >> 8 (+128) -> unsigned 8 bit.
    sf.write(OUT / "a_pcm16.wav", k16, SR, subtype="PCM_16")
    sf.write(OUT / "a_pcm16.flac", k16, SR, subtype="PCM_16")
    sf.write(OUT / "a_pcm24.wav", k24 << 8, SR, subtype="PCM_24")
    sf.write(OUT / "a_pcm24.flac", k24 << 8, SR, subtype="PCM_24")
    sf.write(OUT / "a_pcm32.wav", k32, SR, subtype="PCM_32")
    sf.write(OUT / "a_float.wav", xf, SR, subtype="FLOAT")
    zero_peak_timestamp(OUT / "a_float.wav")
    sf.write(OUT / "a_pcm8.wav", (k8 << 8).astype(np.int16), SR, subtype="PCM_U8")

    expect = {
        "a_pcm16.wav": k16.astype(np.float32) / 32768,
        "a_pcm16.flac": k16.astype(np.float32) / 32768,
        "a_pcm24.wav": k24.astype(np.float32) / 2**23,
        "a_pcm24.flac": k24.astype(np.float32) / 2**23,
        "a_pcm32.wav": k32.astype(np.float32) / np.float32(2**31),
        "a_float.wav": xf,
        "a_pcm8.wav": k8.astype(np.float32) / 128,
    }
    for file, want in expect.items():
        name = file.replace(".", "_")
        y = add_clip(name, file, True, [(128, 30)], "16 kHz mono, 0.3 s")
        assert np.array_equal(y, want), f"{file}: librosa is not the exact integer scaling"
    # The Whisper default (80 bins) on one clip.
    a16 = expect["a_pcm16.wav"]
    feats80, valid80, _ = features(a16, 80, 30)
    key80 = f"mel/{sha(a16)[:16]}/f80_c30"
    tensors[key80] = feats80
    clips[0]["cases"].append(
        {"key": key80, "feature_size": 80, "chunk_length": 30, "valid_frames": valid80, "truncated": False}
    )

    # --- b: 16 kHz mono, 1.7 s; c: 3.1 s truncated by a 2 s chunk --------------------------------
    xb = speech_like(27213, SR, rng, 115.0)
    sf.write(OUT / "b_pcm16.wav", np.round(xb * 32767).astype(np.int16), SR, subtype="PCM_16")
    add_clip("b_pcm16_wav", "b_pcm16.wav", True, [(128, 30)], "16 kHz mono, 1.7 s")
    xc = speech_like(49613, SR, rng, 190.0)
    sf.write(OUT / "c_pcm16.flac", np.round(xc * 32767).astype(np.int16), SR, subtype="PCM_16")
    add_clip("c_pcm16_flac", "c_pcm16.flac", True, [(128, 1)], "16 kHz mono, 3.1 s, truncated at 1 s")

    # --- s: 44.1 kHz stereo, 0.3 s, with content above 8 kHz -----------------------------------
    sr_s, n_s = 44_100, 13231
    t = np.arange(n_s) / sr_s
    left = speech_like(n_s, sr_s, rng, 125.0)
    chirp = np.sin(2 * np.pi * (300.0 * t + 0.5 * (14_000.0 - 300.0) / t[-1] * t**2))
    right = 0.6 * speech_like(n_s, sr_s, rng, 210.0) + 0.15 * chirp + 0.01 * rng.standard_normal(n_s)
    stereo = np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    sf.write(OUT / "s_pcm16.wav", stereo, sr_s, subtype="PCM_16")
    sf.write(OUT / "s_pcm16.flac", stereo, sr_s, subtype="PCM_16")
    sf.write(OUT / "s.mp3", stereo.astype(np.float32) / 32768, sr_s, format="MP3")
    sf.write(OUT / "s.ogg", stereo.astype(np.float32) / 32768, sr_s, format="OGG", subtype="VORBIS")
    ys = add_clip("s_pcm16_wav", "s_pcm16.wav", False, [(128, 30)], "44.1 kHz stereo, 0.3 s")
    yf = add_clip("s_pcm16_flac", "s_pcm16.flac", False, [(128, 30)], "44.1 kHz stereo, 0.3 s (same samples as the WAV)")
    assert np.array_equal(ys, yf)
    add_clip("s_mp3", "s.mp3", False, [(128, 30)], "44.1 kHz stereo, 0.3 s, MP3 (libsndfile / LAME defaults)")
    add_clip("s_ogg", "s.ogg", False, [(128, 30)], "44.1 kHz stereo, 0.3 s, OGG/Vorbis (libsndfile defaults)")
    # The mono mix at 44.1 kHz before resampling: librosa.to_mono of soundfile's float32.
    native, _ = sf.read(OUT / "s_pcm16.wav", dtype="float32", always_2d=True)
    mix = librosa.to_mono(native.T)
    assert mix.dtype == np.float32
    for c in clips:
        if c["name"].startswith("s_pcm16"):
            c["native_mono_sha256"] = sha(mix)
    # soxr_hq is what librosa.load used (its default res_type). soxr returns round(n * ratio)
    # samples; librosa then zero-pads to ceil(n * ratio) (here 4800 -> 4801: the last sample is 0).
    soxr_out = soxr.resample(mix, sr_s, SR, quality="soxr_hq")
    assert len(soxr_out) == int(n_s * SR / sr_s + 0.5) and len(ys) == int(np.ceil(n_s * (SR / sr_s)))
    assert np.array_equal(ys[: len(soxr_out)], soxr_out) and not ys[len(soxr_out) :].any()

    save_file(tensors, str(OUT / "expected.safetensors"))
    index = {
        "generator": "scripts/gen_audio_fixtures.py",
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "librosa": librosa.__version__,
            "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__,
            "soxr": soxr.__version__,
            "numpy": np.__version__,
        },
        "sampling_rate": SR,
        "clips": clips,
    }
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(clips)} clips, {len(tensors)} tensors, {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
