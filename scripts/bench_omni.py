#!/usr/bin/env python3
"""Side-by-side speed of Qwen2.5-Omni (thinker) hidden-state extraction on audio and
video: geom (Burn, CPU ``Flex`` backend, ``benches/omni.rs``) vs Hugging Face
transformers 4.57 (torch, CPU, float32), same checkpoint, same inputs, same threads.
The machinery (child processes, CPU and background-load accounting, the geom
build) is ``scripts/bench_model.py``'s.

The checkpoint is a random-weight ``Qwen2_5OmniThinkerForConditionalGeneration`` at
the width of Qwen2.5-Omni-3B and reduced depth (text: hidden 2048, 16 heads, 2 KV
heads, MLP 11008, **4 layers**, vocab 151936, untied LM head; vision: hidden 1280,
16 heads, MLP 5120, **depth 4**, full attention in block 3, window 112 px, merger
to 2048; audio: d_model 1280, 20 heads, FFN 5120, **4 layers**, n_window 100,
128 mels, output 2048). Weights N(0, 0.02) (biases too), norm gains 1 and
LayerNorm biases 0, saved in bfloat16 with ``save_pretrained`` (the thinker-alone
layout; both sides load bf16 -> f32). Built once and cached under ``--work-dir``
(default ``/tmp/geom-bench-omni``), with the benchmark inputs, made by
``Qwen2_5OmniProcessor`` (Whisper feature extractor with the hub's
``chunk_length`` 300, the processor's default Omni video size
128·28²..768·28² pixels per frame) on LCO-Emb prompts
("\\nSummarize the above audio in one word:" / "... video ..."), in the stock
chat template (default system turn), left-padded:

* ``inputs_audio.safetensors``: 4 clips of 10, 10, 10 and 7.3 s (16 kHz; AudioCaps
  clips are 10 s) of synthetic sound -> 1000/1000/1000/730 mel frames,
  250/250/250/183 audio tokens;
* ``inputs_video.safetensors``: 2 videos of 8 frames of 320x240 px (MSR-VTT's
  size; 4 s at 2 fps, ``fps=2`` -> 1 s per temporal patch) -> each frame
  upscaled to 392x280, grid [4, 20, 28] = 2240 patches, 560 video tokens each.

The prompts are tokenized by the tiny BPE tokenizer of the Omni parity fixtures
(``tests/fixtures/qwen2_5_omni/model_hub``; no real tokenizer is needed offline),
whose 22 added tokens are then mapped to the real Qwen2.5-Omni ids
(151643..151664), so the placeholders, their expansion and the chat framing are
the processor's, and the ~33 text tokens per prompt are about what the real
tokenizer gives.

What is timed, per batch kind, in ``--rounds`` rounds (each round runs both sides,
each in a fresh process; the side that starts alternates between rounds, so slow
drifts in the background load hit both alike), warm-up 1 then ``--repeats`` runs:

* transformers: ``model(**inputs, output_hidden_states=True, use_cache=False)``
  under ``torch.inference_mode()`` with ``torch.set_num_threads(T)``, then the
  last-token vector of every hidden state. The thinker has no
  ``logits_to_keep``: its LM head is wrapped to run on the last position only
  (hidden-state extraction needs no logits; over every position the
  2048x151936 head would add ~2·T·2048·151936 FLOPs to the torch side only,
  ~0.7 TFLOP on the audio batch) -- ``--full-lm-head`` keeps it as shipped.
  ``attn_implementation="sdpa"`` (the default). Its peak RSS (``ru_maxrss``) is
  that of its own process;
* geom: the ``omni`` bench binary (``cargo bench --bench omni``, built once and
  copied, run with ``RAYON_NUM_THREADS=T``): ``Qwen2_5Omni::forward`` with
  ``CaptureSpec::hidden_states(L)``, every capture to the host and
  ``pool(.., LastToken)``; peak RSS = VmHWM.

Reported: median wall time per batch over every timed run of every round, the
CPU time per run (user + system, all threads), the time ratio transformers /
geom (> 1: geom faster; the median of the per-round ratios, each from the two
sides' runs of one round), peak RSS, the background load (cores used by other
processes while a side ran), and the numeric agreement: max |geom - torch| of the
pooled last-token vectors of every layer, relative to max |torch| of that layer,
of the final hidden state over real positions, and of the media features
(hidden state 0 at the audio / video placeholders). A relative difference above
``--tolerance`` (1e-3) is reported as a disagreement (exit status 2).
``--breakdown`` adds the audio encoder alone, the vision tower alone and the
decoder alone (positions + embedding + scatter + layers) on both sides, in the
first round.

Usage (repository root)::

    python3 scripts/bench_omni.py [--threads 2] [--repeats 3] [--rounds 3] [--kinds audio,video]
                                  [--breakdown] [--full-lm-head] [--work-dir /tmp/geom-bench-omni]
                                  [--rebuild] [--geom-bin PATH] [--skip-geom] [--skip-torch]

The running interpreter runs the transformers side (pinned environment:
``scripts/requirements-models.txt``); ``CARGO_TARGET_DIR`` is honoured by cargo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_model import REPO_ROOT, build_geom, cpu_name, geom_rev, log, median, peak_rss_mb, rss_mb, run_child

SEED = 20250613
FIXTURE_HUB = REPO_ROOT / "tests" / "fixtures" / "qwen2_5_omni" / "model_hub"
FIRST_ADDED_ID = 151643  # <|endoftext|> of the real tokenizer; the 22 added tokens follow in order

TEXT_CONFIG = dict(
    model_type="qwen2_5_omni_text", vocab_size=151936, hidden_size=2048, intermediate_size=11008,
    num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=2, hidden_act="silu",
    max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
    rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
    use_sliding_window=False, sliding_window=32768, max_window_layers=28, attention_dropout=0.0,
    initializer_range=0.02, tie_word_embeddings=False,
)
VISION_CONFIG = dict(
    model_type="qwen2_5_omni_vision_encoder", depth=4, hidden_size=1280, hidden_act="silu",
    intermediate_size=5120, num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2,
    temporal_patch_size=2, window_size=112, out_hidden_size=2048, fullatt_block_indexes=[3],
    initializer_range=0.02,
)
AUDIO_CONFIG = dict(
    model_type="qwen2_5_omni_audio_encoder", num_mel_bins=128, d_model=1280, encoder_layers=4,
    encoder_attention_heads=20, encoder_ffn_dim=5120, activation_function="gelu", max_source_positions=1500,
    n_window=100, output_dim=2048, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    scale_embedding=False, init_std=0.02, initializer_range=0.02,
)
TOP_CONFIG = dict(
    audio_token_index=151646, image_token_index=151655, video_token_index=151656,
    audio_start_token_id=151647, audio_end_token_id=151648, vision_start_token_id=151652,
    vision_end_token_id=151653, position_id_per_seconds=25, seconds_per_chunk=2,
    pad_token_id=151643, eos_token_id=151645, initializer_range=0.02,
)
AUDIO_SECONDS = [10.0, 10.0, 10.0, 7.3]
N_VIDEOS, VIDEO_FRAMES, VIDEO_FPS, FRAME_W, FRAME_H = 2, 8, 2.0, 320, 240
CHUNK_LENGTH = 300  # the hub feature extractor's (30000 frames of padding per clip)
# Bump when the model or the inputs change: the cache is rebuilt.
FINGERPRINT = {"version": 1, "text": TEXT_CONFIG, "vision": VISION_CONFIG, "audio": AUDIO_CONFIG, "top": TOP_CONFIG,
               "seed": SEED, "dtype": "bfloat16", "init_std": 0.02, "audio_s": AUDIO_SECONDS,
               "video": [N_VIDEOS, VIDEO_FRAMES, VIDEO_FPS, FRAME_W, FRAME_H], "chunk_length": CHUNK_LENGTH}
# What each side reads from inputs_{kind}.safetensors (geom: benches/omni.rs).
TORCH_KEYS = {
    "audio": ["input_ids", "attention_mask", "input_features", "feature_attention_mask"],
    "video": ["input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "video_second_per_grid"],
}


# --------------------------------------------------------------------------
# Checkpoint and inputs
# --------------------------------------------------------------------------


def build_model(model_dir: Path) -> None:
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    config = Qwen2_5OmniThinkerConfig(text_config=dict(TEXT_CONFIG), vision_config=dict(VISION_CONFIG),
                                      audio_config=dict(AUDIO_CONFIG), **TOP_CONFIG)
    t0 = time.perf_counter()
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1 and ("norm" in name or "ln_" in name):
                p.fill_(1.0 if name.endswith(".weight") else 0.0)
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"built random-weight Qwen2.5-Omni thinker ({n_params / 1e6:.0f} M parameters) in "
        f"{time.perf_counter() - t0:.1f} s; saving in bfloat16 to {model_dir}")
    model.to(torch.bfloat16).save_pretrained(model_dir, safe_serialization=True)


def draw_video(k: int) -> list:
    """VIDEO_FRAMES frames of FRAME_W x FRAME_H: a textured background and shapes moving across it."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(SEED + 31 * k)
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
    frames = []
    for t in range(VIDEO_FRAMES):
        base = np.stack([127 + 110 * np.sin((xx + 9 * t) / (11.0 + k)), 127 + 110 * np.cos((yy - 5 * t) / 17.0),
                         127 + 110 * np.sin((xx + yy) / (23.0 + 3 * k) + 0.3 * t)], axis=-1)
        base += rng.normal(0.0, 10.0, size=base.shape)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")
        d = ImageDraw.Draw(img)
        cx, cy = 30 + 30 * t + 20 * k, 60 + 12 * t
        d.ellipse([cx - 25, cy - 25, cx + 25, cy + 25], fill=(240, 200 - 20 * t, 40))
        d.rectangle([FRAME_W - 90 - 20 * t, 150, FRAME_W - 30 - 20 * t, 210], fill=(30, 200, 60 + 20 * t))
        frames.append(img)
    return frames


def build_inputs(work: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file
    from transformers import Qwen2_5OmniProcessor
    from gen_qwen2_5_omni_fixtures import ADDED_TOKENS, AUDIO_PROMPT, VIDEO_PROMPT, synth_audio

    processor = Qwen2_5OmniProcessor.from_pretrained(FIXTURE_HUB)
    fe = processor.feature_extractor
    assert fe.chunk_length == CHUNK_LENGTH and fe.sampling_rate == 16000, (fe.chunk_length, fe.sampling_rate)
    tok = processor.tokenizer
    tiny = [tok.convert_tokens_to_ids(t) for t, _ in ADDED_TOKENS]
    first = tiny[0]
    assert tiny == list(range(first, first + len(tiny))), tiny

    def real_ids(ids):
        # The added tokens to the real ids; the BPE ids (< first) stay (they are valid ids of the real vocab).
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(ids >= first, ids - first + FIRST_ADDED_ID, ids)

    def prompt(kind: str, text: str) -> str:
        msgs = [{"role": "user", "content": [{"type": kind, kind: f"{kind}.bin"}, {"type": "text", "text": text}]}]
        return processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    # Audio.
    clips = [synth_audio(int(round(s * 16000)), 16000, 1, k)[:, 0].astype(np.float32) / 32768.0
             for k, s in enumerate(AUDIO_SECONDS)]
    out = processor(text=[prompt("audio", AUDIO_PROMPT)] * len(clips), audio=clips, return_tensors="pt",
                    padding=True)
    fam = np.asarray(out["feature_attention_mask"], dtype=np.int64)
    feats = np.asarray(out["input_features"], dtype=np.float32)
    lengths = fam.sum(-1)
    valid = np.ascontiguousarray(np.concatenate([feats[i][:, : int(n)] for i, n in enumerate(lengths)], axis=1))
    assert all(fam[i, : int(n)].all() and not fam[i, int(n):].any() for i, n in enumerate(lengths))
    ids = real_ids(out["input_ids"])
    n_audio_tokens = int((ids == TOP_CONFIG["audio_token_index"]).sum())
    save_file({"input_ids": ids, "attention_mask": np.asarray(out["attention_mask"], dtype=np.int64),
               "input_features": np.ascontiguousarray(feats), "feature_attention_mask": fam,
               "input_features_valid": valid, "feature_lengths": lengths.astype(np.int64)},
              str(work / "inputs_audio.safetensors"))
    log(f"audio batch: {ids.shape[0]} x {ids.shape[1]}, mel frames {lengths.tolist()} (padded to {feats.shape[-1]}), "
        f"{n_audio_tokens} audio tokens")

    # Video.
    videos = [draw_video(k) for k in range(N_VIDEOS)]
    out = processor(text=[prompt("video", VIDEO_PROMPT)] * N_VIDEOS, videos=videos, return_tensors="pt",
                    padding=True, videos_kwargs={"fps": VIDEO_FPS})
    ids = real_ids(out["input_ids"])
    grid = np.asarray(out["video_grid_thw"], dtype=np.int64)
    spg = np.asarray(out["video_second_per_grid"], dtype=np.float32)
    pixels = np.ascontiguousarray(out["pixel_values_videos"], dtype=np.float32)
    assert int((ids == TOP_CONFIG["video_token_index"]).sum()) * 4 == pixels.shape[0] == int(grid.prod(1).sum())
    save_file({"input_ids": ids, "attention_mask": np.asarray(out["attention_mask"], dtype=np.int64),
               "pixel_values_videos": pixels, "video_grid_thw": grid, "video_second_per_grid": spg},
              str(work / "inputs_video.safetensors"))
    log(f"video batch: {ids.shape[0]} x {ids.shape[1]}, grids {grid.tolist()}, seconds per grid {spg.tolist()}, "
        f"pixel_values_videos {list(pixels.shape)}")


def ensure_work_dir(work: Path, rebuild: bool) -> None:
    stamp = work / "fingerprint.json"
    want = json.dumps(FINGERPRINT, sort_keys=True)
    if not rebuild and stamp.exists() and stamp.read_text() == want and (work / "model" / "config.json").exists():
        log(f"using the cached checkpoint and inputs in {work}")
        return
    if work.exists():
        shutil.rmtree(work)
    (work / "model").mkdir(parents=True)
    # In a child process: the parent stays small and the model memory is returned.
    subprocess.run([sys.executable, __file__, "--_build", "--work-dir", str(work)], check=True)
    stamp.write_text(want)


# --------------------------------------------------------------------------
# transformers side (child process)
# --------------------------------------------------------------------------


def torch_worker(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    t0 = time.perf_counter()
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        work / "model", dtype=torch.float32, attn_implementation="sdpa").eval()
    load_s = time.perf_counter() - t0

    class LastPositionHead(torch.nn.Module):
        """The LM head on the last position only (= logits_to_keep=1, which the thinker lacks)."""

        def __init__(self, head):
            super().__init__()
            self.head = head

        def forward(self, h):
            return self.head(h[:, -1:, :])

    if not args.full_lm_head:
        model.lm_head = LastPositionHead(model.lm_head)
    print(json.dumps({"bench": "omni_load", "impl": "torch", "load_s": round(load_s, 3),
                      "rss_mb": round(rss_mb(), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "transformers": transformers.__version__}), flush=True)
    name = "torch-sdpa" + ("-full-lm-head" if args.full_lm_head else "")
    for kind in args.kinds:
        saved = load_file(str(work / f"inputs_{kind}.safetensors"))
        inputs = {k: saved[k] for k in TORCH_KEYS[kind]}
        b, t = inputs["input_ids"].shape

        def run():
            out = model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
            hs = out.hidden_states
            return hs[0], hs[-1], torch.stack([h[:, -1, :] for h in hs])  # left padding: the last real token

        with torch.inference_mode():
            tw = time.perf_counter()
            run()
            warm_ms = (time.perf_counter() - tw) * 1e3
            log(f"{name} {kind}: warm-up {warm_ms:.0f} ms")
            runs, cpu = [], []
            for _ in range(args.repeats):
                t1, c1 = time.perf_counter(), time.process_time()
                first, last, pooled = run()
                runs.append((time.perf_counter() - t1) * 1e3)
                cpu.append((time.process_time() - c1) * 1e3)
        save_file({"hidden_0": first.contiguous().float(), "last_hidden_state": last.contiguous().float(),
                   "pooled_last_token": pooled.contiguous().float()}, str(work / f"torch_hidden_{kind}.safetensors"))
        ms = median(runs)
        print(json.dumps({
            "bench": "omni", "impl": name, "kind": kind, "batch": int(b), "seq_len": int(t),
            "real_tokens": int(inputs["attention_mask"].sum()),
            "audio_frames": int(saved["feature_lengths"].sum()) if "feature_lengths" in saved else 0,
            "video_patches": int(saved["video_grid_thw"].prod(dim=1).sum()) if "video_grid_thw" in saved else 0,
            "threads": torch.get_num_threads(), "warmup_ms": round(warm_ms, 1), "ms_median": round(ms, 1),
            "runs_ms": [round(r, 1) for r in runs], "cpu_ms_median": round(median(cpu)),
            "samples_per_s": round(b / (ms / 1e3), 4), "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)
        if args.breakdown:
            print(json.dumps(dict(torch_breakdown(model, inputs, args.repeats), bench="omni_breakdown", impl=name,
                                  kind=kind)), flush=True)
    return 0


def torch_breakdown(model, inputs: dict, repeats: int) -> dict:
    """The audio encoder / vision tower alone, and the decoder alone (positions, embedding, scatter, layers)."""
    import torch

    times: dict[str, list[float]] = {}

    def timed(key, fn):
        fn()
        for _ in range(repeats):
            t1 = time.perf_counter()
            fn()
            times.setdefault(key, []).append((time.perf_counter() - t1) * 1e3)

    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    fam = inputs.get("feature_attention_mask")
    grid, spg = inputs.get("video_grid_thw"), inputs.get("video_second_per_grid")
    with torch.inference_mode():
        feats = {}
        if fam is not None:
            timed("audio_encoder", lambda: model.get_audio_features(inputs["input_features"], feature_attention_mask=fam))
            feats[model.config.audio_token_index] = model.get_audio_features(
                inputs["input_features"], feature_attention_mask=fam)
        if grid is not None:
            timed("vision_tower", lambda: model.get_video_features(inputs["pixel_values_videos"], grid))
            feats[model.config.video_token_index] = model.get_video_features(inputs["pixel_values_videos"], grid)

        def decoder():
            pos, _ = model.get_rope_index(ids, None, grid, mask, False, fam.sum(-1) if fam is not None else None, spg)
            emb = model.get_input_embeddings()(ids)
            for tok_id, f in feats.items():
                emb = emb.masked_scatter((ids == tok_id).unsqueeze(-1).expand_as(emb), f)
            out = model.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False,
                              output_hidden_states=True, return_dict=True)
            model.lm_head(out.last_hidden_state)
            return torch.stack([h[:, -1, :] for h in out.hidden_states])

        timed("decoder", decoder)
    return {f"{k}_ms": round(median(v), 1) for k, v in times.items()}


# --------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------


def run_side(args, exe: Path | None, side: str, kind: str, rnd: int) -> list[dict]:
    breakdown = args.breakdown and rnd == 0
    if side == "geom":
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), GEOM_BENCH_BACKEND="flex")
        cmd = [str(exe), str(args.work_dir), "--bench", "--repeats", str(args.repeats), "--kinds", kind] \
            + (["--breakdown"] if breakdown else [])
    else:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, __file__, "--_torch", "--work-dir", str(args.work_dir), "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--kinds", kind] + (["--breakdown"] if breakdown else []) \
            + (["--full-lm-head"] if args.full_lm_head else [])
    log(f"round {rnd + 1}/{args.rounds}, {kind}, {side}: " + " ".join(cmd[1:] if side == "torch" else cmd))
    proc, bg = run_child(cmd, env)
    rows = [dict(json.loads(l), round=rnd, **bg) for l in proc.stdout.splitlines() if l.strip().startswith("{")]
    if proc.returncode != 0:
        rows.append({"bench": "error", "impl": side, "kind": kind, "round": rnd, "rc": proc.returncode})
        log(f"{side} side failed on {kind} (rc {proc.returncode})")
    return rows


def agreement(work: Path, kind: str) -> dict | None:
    import numpy as np
    from safetensors.numpy import load_file

    g_file, t_file = work / f"geom_hidden_{kind}.safetensors", work / f"torch_hidden_{kind}.safetensors"
    if not (g_file.exists() and t_file.exists()):
        return None
    g, t = load_file(str(g_file)), load_file(str(t_file))
    inputs = load_file(str(work / f"inputs_{kind}.safetensors"))
    mask = inputs["attention_mask"].astype(bool)
    media = np.isin(inputs["input_ids"], [TOP_CONFIG["audio_token_index"], TOP_CONFIG["video_token_index"]])
    out = {}
    for key in ("hidden_0", "last_hidden_state", "pooled_last_token"):
        if g[key].shape != t[key].shape:
            return {"error": f"{key}: shapes differ: geom {g[key].shape}, torch {t[key].shape}"}
    rel = lambda a, b: float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))  # noqa: E731
    gl, tl = g["last_hidden_state"].astype(np.float64), t["last_hidden_state"].astype(np.float64)
    out["last_hidden_max_abs_diff"] = float(np.abs(gl[mask] - tl[mask]).max())
    out["last_hidden_max_abs"] = float(np.abs(tl[mask]).max())
    out["last_hidden_rel_diff"] = rel(gl[mask], tl[mask])
    out["media_features_rel_diff"] = rel(g["hidden_0"][media].astype(np.float64), t["hidden_0"][media].astype(np.float64))
    gp, tp = g["pooled_last_token"].astype(np.float64), t["pooled_last_token"].astype(np.float64)
    out["pooled_rel_diff_per_layer"] = [rel(a, b) for a, b in zip(gp, tp)]
    out["pooled_rel_diff_max"] = max(out["pooled_rel_diff_per_layer"])
    out["finite"] = bool(np.isfinite(gl).all() and np.isfinite(tl).all())
    return out


def report(args, rows: list[dict], meta: dict) -> int:
    work = Path(args.work_dir)
    tname = "torch-sdpa" + ("-full-lm-head" if args.full_lm_head else "")
    pick = lambda impl, kind, bench="omni": [r for r in rows if r.get("bench") == bench and r.get("impl") == impl  # noqa
                                             and r.get("kind") == kind]
    tload = next((r for r in rows if r.get("bench") == "omni_load" and r.get("impl") == "torch"), {})
    summary = {"meta": dict(meta, torch=tload.get("torch"), transformers=tload.get("transformers")), "kinds": {}}
    print()
    print("## Qwen2.5-Omni audio and video extraction, geom (Burn Flex, CPU) vs transformers (torch CPU, float32)")
    print()
    print(f"geom at `{meta['geom_rev']}`, torch {tload.get('torch')}, transformers {tload.get('transformers')}. "
          f"Random-weight Qwen2.5-Omni thinker, 3B width, 4 text layers + 4 vision blocks + 4 audio layers, bf16 "
          f"checkpoint loaded as f32. {meta['cpu']}, {meta['cores']} cores, {args.threads} threads each side "
          f"(RAYON_NUM_THREADS / torch.set_num_threads), all hidden states, last-token pooled to the host; "
          f"{args.rounds} rounds x {args.repeats} timed runs per side after 1 warm-up, fresh process per side, kind "
          f"and round, the starting side alternating; medians (CPU ms = user + system time of the process per run); "
          f"transformers' LM head on the last position only{' NOT (--full-lm-head)' if args.full_lm_head else ''}; "
          f"load average {meta['loadavg_start']} -> {meta['loadavg_end']}.")
    print()
    print("| batch | B x T (real tokens) | media | geom ms (CPU ms) | transformers ms (CPU ms) | transformers / geom "
          "time (per-round) | geom peak RSS MB | transformers peak RSS MB | pooled rel. diff (max over layers) | "
          "media features rel. diff | background cores (geom / torch) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    bad = []
    for kind in args.kinds:
        g, t = pick("geom", kind), pick(tname, kind)
        agree = agreement(work, kind)
        ref = (g or t or [None])[0]
        shape = f"{ref['batch']} x {ref['seq_len']} ({ref['real_tokens']})" if ref else "?"
        med = (f"{ref['audio_frames']} mel frames" if kind == "audio" else f"{ref['video_patches']} patches") \
            if ref else "?"
        wall = lambda rs: median([x for r in rs for x in r["runs_ms"]]) if rs else None  # noqa: E731
        cpu = lambda rs: median([r["cpu_ms_median"] for r in rs]) if rs else None  # noqa: E731
        per_round = [tr["ms_median"] / gr["ms_median"] for gr in g for tr in t if tr["round"] == gr["round"]]
        ratio = median(per_round) if per_round else None
        bgc = lambda rs: median([r["background_cores"] for r in rs]) if rs else float("nan")  # noqa: E731
        rss = lambda rs: max(r["peak_rss_mb"] for r in rs) if rs else None  # noqa: E731
        fmt_t = lambda rs: f"{wall(rs):.0f} ({cpu(rs):.0f})" if rs else "failed"  # noqa: E731
        if agree and "error" not in agree:
            diff = f"{agree['pooled_rel_diff_max']:.1e}"
            mdiff = f"{agree['media_features_rel_diff']:.1e}"
            worst = max(agree["pooled_rel_diff_max"], agree["last_hidden_rel_diff"], agree["media_features_rel_diff"])
            if worst > args.tolerance or not agree["finite"]:
                bad.append(f"{kind}: geom and transformers disagree (max rel. diff {worst:.2e} > {args.tolerance:g})")
        else:
            diff = mdiff = (agree or {}).get("error", "–")
        print(f"| {kind} | {shape} | {med} | {fmt_t(g)} | {fmt_t(t)} | "
              f"{f'{ratio:.2f}x' if ratio else '–'} ({', '.join(f'{x:.2f}' for x in per_round)}) | "
              f"{rss(g) or 0:.0f} | {rss(t) or 0:.0f} | {diff} | {mdiff} | {bgc(g):.2f} / {bgc(t):.2f} |")
        summary["kinds"][kind] = {
            "geom_ms_median": wall(g), "torch_ms_median": wall(t), "geom_cpu_ms": cpu(g), "torch_cpu_ms": cpu(t),
            "ratio_torch_over_geom": ratio, "ratios_per_round": per_round,
            "geom_peak_rss_mb": rss(g), "torch_peak_rss_mb": rss(t), "agreement": agree,
            "geom_runs": g, "torch_runs": t,
            "breakdown_geom": (pick("geom", kind, "omni_breakdown") or [None])[0],
            "breakdown_torch": (pick(tname, kind, "omni_breakdown") or [None])[0],
        }
    print()
    for kind in args.kinds:
        s = summary["kinds"][kind]
        for side in ("geom", "torch"):
            bd = s[f"breakdown_{side}"]
            if bd:
                parts = ", ".join(f"{k[:-3].replace('_', ' ')} {v:.0f} ms" for k, v in bd.items() if k.endswith("_ms"))
                print(f"* {side} breakdown, {kind}: {parts}")
        a = s["agreement"]
        if a and "error" not in a:
            print(f"* agreement, {kind}: final hidden state max |diff| {a['last_hidden_max_abs_diff']:.2e} over real "
                  f"positions (max |h| {a['last_hidden_max_abs']:.2f}, rel. {a['last_hidden_rel_diff']:.1e}); media "
                  f"features (hidden state 0 at the placeholders) rel. {a['media_features_rel_diff']:.1e}; pooled "
                  "last-token rel. diff per layer " + ", ".join(f"{x:.1e}" for x in a["pooled_rel_diff_per_layer"]))
    for side, impl in (("geom", "geom"), ("torch", "torch")):
        ld = next((r for r in rows if r.get("bench") == "omni_load" and r.get("impl") == impl), None)
        if ld:
            print(f"* {side} load: {ld['load_s']:.1f} s, RSS after load {ld['rss_mb']:.0f} MB")
    errs = [r for r in rows if r.get("bench") == "error"]
    for r in errs:
        print(f"* {r['impl']} run failed on {r.get('kind')} in round {r['round'] + 1} (rc {r['rc']})")
    for w in bad:
        print(f"* DISAGREEMENT {w}")
    summary["errors"], summary["disagreements"] = errs, bad
    out = work / "bench_omni_results.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    log(f"results written to {out}")
    return 1 if errs else 2 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side, kind and round (after 1 warm-up)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (geom, transformers) per kind, alternating")
    p.add_argument("--work-dir", default="/tmp/geom-bench-omni")
    p.add_argument("--kinds", type=lambda s: [k for k in s.split(",") if k], default=["audio", "video"])
    p.add_argument("--breakdown", action="store_true",
                   help="also time the audio encoder, the vision tower and the decoder alone (both sides, round 1)")
    p.add_argument("--full-lm-head", action="store_true",
                   help="run transformers' LM head over every position, as the thinker ships")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest relative difference taken as agreement")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached checkpoint and inputs")
    p.add_argument("--geom-bin", help="use this omni bench executable instead of building one")
    p.add_argument("--skip-geom", action="store_true")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--_build", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_torch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.repeats, args.rounds = max(args.repeats, 1), max(args.rounds, 1)
    work = Path(args.work_dir)
    if args._build:
        build_model(work / "model")
        build_inputs(work)
        return 0
    if args._torch:
        return torch_worker(args)

    ensure_work_dir(work, args.rebuild)
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "repeats": args.repeats,
            "rounds": args.rounds, "loadavg_start": " ".join(open("/proc/loadavg").read().split()[:3]),
            "geom_rev": geom_rev()}
    exe = None if args.skip_geom else build_geom(work, args.geom_bin, "omni")
    sides = ([] if args.skip_geom else ["geom"]) + ([] if args.skip_torch else ["torch"])
    rows: list[dict] = []
    for rnd in range(args.rounds):
        for kind in args.kinds:
            for side in (sides if rnd % 2 == 0 else sides[::-1]):
                rows += run_side(args, exe, side, kind, rnd)
    meta["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    with open(work / "bench_omni_rows.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return report(args, rows, meta)


if __name__ == "__main__":
    sys.exit(main())
