#!/usr/bin/env python3
"""Reference fixtures of geom's video loading (src/input/video.rs, tests/video.rs).

LCO-Embedding reads videos with qwen_omni_utils.process_mm_info (qwen-omni-utils==0.0.4,
its Training/requirements.txt). Without decord/torchcodec that is fetch_video's torchvision
backend: torchvision.io.read_video(path, pts_unit="sec") over PyAV, smart_nframes,
torch.linspace(0, total - 1, n).round(), a bicubic antialiased resize, and the sample fps.
Audio (use_audio_in_video) is librosa.load(path, sr=16000).

This script
  1. makes tiny clips with the ffmpeg program (kept if already there: the committed clips are
     the inputs of the fixtures, and another FFmpeg build would encode different bytes);
  2. runs the reference on each and writes, in tests/fixtures/video/:
       expected.json      counts, fps, indices, sizes, SHA-256 of the frames, versions, and
                          smart_nframes / linspace cases beyond the clips;
       frames.safetensors the sampled frames as decoded (uint8 [n, h, w, 3], before the resize)
                          and the first second of the audio track (float32).

torchvision removed read_video in 0.26 (the pinned torchvision is 0.29). When it is missing, this
script downloads the torchvision 0.25.0 wheel (pip download --no-deps; ~8 MB, cached in
--cache) and runs its own pure-Python io/video.py and io/_video_opt.py, unmodified, as
torchvision.io.read_video: the function LCO's environment had.

Usage (Python 3.11, scripts/requirements-models.txt installed, ffmpeg on PATH):
    python3 scripts/gen_video_fixtures.py [--remake-clips]
"""

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "video"
LEGACY_TORCHVISION = "0.25.0"

# name -> ffmpeg arguments (after `ffmpeg -v error -y`, before the output file).
CLIPS = {
    # H.264 with B-frames (reordered timestamps) and a stereo AAC track whose channels differ
    # (the mono mix is their mean); 77 frames at 25 fps.
    "h264_aac.mp4": [
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
        "-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)|0.2*sin(2*PI*660*t):s=44100:d=3.08",
        "-t", "3.08", "-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-map", "0:v", "-map", "1:a",
    ],
    # VP9 in WebM at 29.97 fps (millisecond timestamps), 61 frames.
    "vp9.webm": [
        "-f", "lavfi", "-i", "mandelbrot=size=64x48:rate=30000/1001",
        "-frames:v", "61", "-c:v", "libvpx-vp9", "-crf", "45", "-b:v", "0",
    ],
    # MPEG-4 Part 2 with B-frames in AVI: packets without timestamps, 41 frames at 24 fps.
    "mpeg4_bframes.avi": [
        "-f", "lavfi", "-i", "testsrc=size=48x32:rate=24",
        "-frames:v", "41", "-c:v", "mpeg4", "-bf", "2", "-q:v", "4",
    ],
    # Variable frame rate: 1 s at 10 fps then 1.5 s at 30 fps (H.264). In MP4, whose
    # demuxer derives avg_frame_rate from the sample table; a VFR Matroska file has none, and
    # read_video then returns no video_fps (fetch_video fails; geom uses r_frame_rate).
    "h264_vfr.mp4": [
        "-f", "lavfi", "-i", "testsrc2=size=48x32:rate=10:duration=1",
        "-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30:duration=1.5",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p",
    ],
}
# An MP4 whose edit list starts mid-GOP (stream-copied from 0.5 s): the leading packets are
# decoded but flagged for discarding, with negative timestamps.
EDIT_LIST = ("edit_list.mp4", "h264_aac.mp4", ["-ss", "0.5", "-an", "-c", "copy"])

# smart_nframes cases beyond the clips: (total_frames, video_fps).
NFRAMES_CASES = [
    (1, 25.0), (2, 25.0), (3, 30.0), (4, 30.0), (5, 1.0), (7, 0.5), (10, 30.0), (59, 29.97),
    (300, 30000 / 1001), (1801, 24000 / 1001), (9000, 29.97), (23021, 30.0), (100000, 25.0),
    (5, 2.0), (17, 7.5),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ffmpeg_version():
    out = run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True).stdout
    return out.split("\n")[0]


def make_clips(remake):
    OUT.mkdir(parents=True, exist_ok=True)
    for name, args in CLIPS.items():
        if remake or not (OUT / name).exists():
            run(["ffmpeg", "-v", "error", "-y", *args, str(OUT / name)])
    name, src, args = EDIT_LIST
    if remake or not (OUT / name).exists():
        run(["ffmpeg", "-v", "error", "-y", *args[:2], "-i", str(OUT / src), *args[2:], str(OUT / name)])


def install_legacy_read_video(cache):
    """torchvision.io.read_video from the torchvision 0.25.0 wheel, if this torchvision lacks it."""
    import torchvision.io

    if hasattr(torchvision.io, "read_video"):
        return f"torchvision {torchvision.__version__}"
    os.makedirs(cache, exist_ok=True)
    pattern = f"{cache}/torchvision-{LEGACY_TORCHVISION}-*.whl"
    if not glob.glob(pattern):
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
             f"torchvision=={LEGACY_TORCHVISION}", "-d", cache])
    wheel = zipfile.ZipFile(glob.glob(pattern)[0])
    for name, module in [("_video_opt", "torchvision.io._video_opt"),
                         ("video", "torchvision.io._legacy_video")]:
        path = os.path.join(cache, f"{name}.py")
        with open(path, "wb") as f:
            f.write(wheel.read(f"torchvision/io/{name}.py"))
        spec = importlib.util.spec_from_file_location(module, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        setattr(torchvision.io, module.rsplit(".", 1)[1], mod)
    torchvision.io.read_video = sys.modules["torchvision.io._legacy_video"].read_video
    return f"torchvision {LEGACY_TORCHVISION} io/video.py (read_video) on torchvision {torchvision.__version__}"


def synthetic(h, w, seed):
    """A test frame made the same way by tests/video.rs: hashed noise on a checkerboard of
    8x8 cells, ramps on the others (sharp edges and smooth areas)."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint32), np.arange(w, dtype=np.uint32),
                          np.arange(3, dtype=np.uint32), indexing="ij")
    noise = ((x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ (c * np.uint32(83492791))
             ^ np.uint32(seed * 2654435761 % 2**32)) >> np.uint32(8) & np.uint32(255)
    ramp = (x * 255 // max(w - 1, 1) + y * 3 + c * 50) % 256
    return np.where((x // 8 + y // 8) % 2 == 0, noise, ramp).astype(np.uint8)


def resize_cases(vp):
    """fetch_video's resize (torchvision v1 F.resize, bicubic, antialias) of synthetic frames:
    the sizes fetch_video picks for common video sizes, and random up- and down-scales."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    sizes = []
    for (h, w, n) in [(240, 320, 8), (360, 640, 30), (480, 640, 8), (720, 1280, 8),
                      (720, 1280, 766), (1080, 1920, 8), (256, 144, 40), (101, 77, 4)]:
        mx = max(min(vp.VIDEO_MAX_PIXELS, vp.VIDEO_TOTAL_PIXELS / n * vp.FRAME_FACTOR),
                 int(vp.VIDEO_MIN_PIXELS * 1.05))
        sizes.append((h, w, *vp.smart_resize(h, w, factor=28, min_pixels=vp.VIDEO_MIN_PIXELS,
                                              max_pixels=mx)))
    rng = np.random.default_rng(1)
    sizes += [tuple(int(v) for v in rng.integers(2, 300, 4)) for _ in range(16)]
    sizes += [(64, 48, 64, 20), (30, 90, 7, 90)]  # one axis only
    cases, tensors = [], {}
    for seed, (h, w, oh, ow) in enumerate(sizes):
        img = torch.from_numpy(synthetic(h, w, seed)).permute(2, 0, 1)[None]
        out = F.resize(img, [oh, ow], interpolation=InterpolationMode.BICUBIC, antialias=True)
        out = out[0].permute(1, 2, 0).contiguous().numpy()
        cases.append({"height": h, "width": w, "seed": seed, "resized_height": oh,
                      "resized_width": ow, "sha256": sha256(out), "sum": int(out.sum(dtype=np.int64))})
        # Shrinking is within a level of torch, not exact (src/input/video/resize.rs): keep the
        # small ones' pixels to measure it.
        if (oh < h or ow < w) and out.size <= 40_000:
            tensors[f"resize_{seed}"] = out
    return cases, tensors


def sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def reference_clip(path, vp):
    """fetch_video's steps on one clip, checked against fetch_video itself."""
    import torchvision.io

    ele = {"type": "video", "video": str(path)}
    full, _, info = torchvision.io.read_video(str(path), start_pts=0.0, end_pts=None,
                                              pts_unit="sec", output_format="TCHW")
    total, video_fps = full.size(0), info["video_fps"]
    nframes = vp.smart_nframes(ele, total_frames=total, video_fps=video_fps)
    idx = torch.linspace(0, total - 1, nframes).round().long()
    # The backend itself: the same frames and sample fps.
    sampled, sample_fps = vp._read_video_torchvision(ele)
    assert torch.equal(sampled, full[idx]), path
    assert sample_fps == nframes / max(total, 1e-6) * video_fps
    # fetch_video end to end: the resized frames.
    resized, fps2 = vp.fetch_video(ele, return_video_sample_fps=True)
    assert fps2 == sample_fps
    resized = resized.to(torch.uint8)  # integer-valued floats (uint8 resize, then .float())
    h, w = sampled.shape[2:]
    rh, rw = resized.shape[2:]
    raw = sampled.permute(0, 2, 3, 1).contiguous().numpy()  # [n, h, w, 3]
    res = resized.permute(0, 2, 3, 1).contiguous().numpy()
    return {
        "file": path.name,
        "total_frames": total,
        "video_fps": video_fps,
        "nframes": nframes,
        "indices": idx.tolist(),
        "sample_fps": sample_fps,
        "height": h, "width": w,
        "resized_height": rh, "resized_width": rw,
        "frames_sha256": sha256(raw),
        "resized_sha256": sha256(res),
    }, raw


def reference_audio(path):
    """process_audio_info with use_audio_in_video=True: librosa.load(path, sr=16000)."""
    from qwen_omni_utils import process_audio_info

    conv = [{"role": "user", "content": [{"type": "video", "video": str(path)}]}]
    return process_audio_info(conv, use_audio_in_video=True)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--remake-clips", action="store_true", help="re-encode the committed clips")
    ap.add_argument("--cache", default="/tmp/geom-torchvision-legacy")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    os.environ["FORCE_QWENVL_VIDEO_READER"] = "torchvision"
    make_clips(args.remake_clips)
    read_video = install_legacy_read_video(args.cache)
    from importlib.metadata import version

    from qwen_omni_utils.v2_5 import vision_process as vp
    from safetensors.numpy import save_file

    clips, tensors = [], {}
    for name in [*CLIPS, EDIT_LIST[0]]:
        meta, raw = reference_clip(OUT / name, vp)
        tensors[f"{name}.frames"] = raw
        audio = None
        try:
            audio = reference_audio(OUT / name)
        except AssertionError:  # "Video must has audio track when use_audio_in_video=True"
            pass
        meta["audio"] = None
        if audio is not None:
            tensors[f"{name}.audio_1s"] = np.ascontiguousarray(audio[:16000], dtype=np.float32)
            meta["audio"] = {"len": int(audio.shape[0]),
                             "sum": float(np.sum(audio, dtype=np.float64)),
                             "sum_sq": float(np.sum(np.square(audio, dtype=np.float64)))}
        clips.append(meta)
        print(f"{name}: {meta['total_frames']} frames at {meta['video_fps']:.4f} fps -> "
              f"{meta['nframes']} {meta['indices']} at {meta['sample_fps']:.4f} fps, "
              f"{meta['width']}x{meta['height']} -> {meta['resized_width']}x{meta['resized_height']}"
              + (f", audio {meta['audio']['len']} samples" if meta["audio"] else ""))

    nframes_cases = []
    for total, fps in NFRAMES_CASES:
        try:
            n = vp.smart_nframes({}, total_frames=total, video_fps=fps)
        except ValueError:
            n = None
        nframes_cases.append({"total_frames": total, "video_fps": fps, "nframes": n})
    # linspace cases where float32 rounding matters: the first seeded random (total, n) whose
    # torch indices differ from exactly rounded ones, plus the limits.
    rng = np.random.default_rng(0)
    linspace_cases = [(2, 2), (3, 2), (4, 4), (768, 768), (769, 768)]
    while len(linspace_cases) < 11:
        total, n = int(rng.integers(1600, 400000)), int(rng.integers(2, 385)) * 2
        torch_idx = torch.linspace(0, total - 1, n).round().long().numpy()
        exact = np.round((total - 1) * np.arange(n) / (n - 1)).astype(np.int64)
        if (torch_idx != exact).any():
            linspace_cases.append((total, n))
    linspace = [{"total_frames": t, "nframes": n,
                 "indices": torch.linspace(0, t - 1, n).round().long().tolist()}
                for t, n in linspace_cases]

    resize, resize_tensors = resize_cases(vp)
    tensors.update(resize_tensors)
    expected = {
        "generated_by": "scripts/gen_video_fixtures.py",
        "reference": {
            "qwen_omni_utils": version("qwen-omni-utils"),
            "read_video": read_video,
            "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "av": version("av"),
            "librosa": version("librosa"),
            "soxr": version("soxr"),
            "clips_encoded_with": ffmpeg_version(),
        },
        "clips": clips,
        "nframes_cases": nframes_cases,
        "linspace_cases": linspace,
        "resize_cases": resize,
    }
    text = json.dumps(expected, indent=1)
    # One line per list of numbers.
    text = re.sub(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    (OUT / "expected.json").write_text(text + "\n")
    save_file(tensors, str(OUT / "frames.safetensors"))
    os.chmod(OUT / "frames.safetensors", 0o644)
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
