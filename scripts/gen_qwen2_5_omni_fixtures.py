#!/usr/bin/env python3
"""Parity fixtures for the Burn reimplementation of the Qwen2.5-Omni *thinker* (``geom``).

Builds, deterministically and from nothing but this script:

* a tiny byte-level BPE tokenizer (``tokenizers`` library) with all the added
  tokens of the real Qwen2.5-Omni tokenizer in their real order, and the stock
  Qwen2.5-Omni chat template (see ``QWEN2_5_OMNI_CHAT_TEMPLATE``);
* a tiny random-weight ``Qwen2_5OmniThinkerForConditionalGeneration`` (float32
  weights whose values are bf16-representable, eager attention) with a text
  model, a Qwen2.5-VL-style vision tower and a Whisper-style audio tower;
* two on-disk layouts of that model:
  ``model_hub/`` -- the layout of the hub repos Qwen/Qwen2.5-Omni-3B / -7B and
  LCO-Embedding-Omni (full ``qwen2_5_omni`` config with thinker / talker /
  token2wav sub-configs, bf16 shards with ``thinker.*`` keys plus stub
  ``talker.*`` / ``token2wav.*`` tensors, one merged ``preprocessor_config.json``,
  ``chat_template.json``) and ``model_thinker/`` -- what transformers 5.x
  ``save_pretrained`` writes for the thinker class after loading ``model_hub/``;
* procedurally drawn PNG images, a 5-frame PNG video, 16 kHz mono and 44.1 kHz
  stereo 16-bit WAV clips;
* the reference outputs of Hugging Face ``transformers`` for LCO-Emb style
  prompts: processor outputs, audio features, 3-D (TMRoPE) position ids, all
  hidden states, vision- and audio-tower intermediates, pooled vectors.

Reference implementation (pinned, see ``scripts/requirements-models.txt``):
``transformers==4.57.6`` (LCO-Embedding pins 4.57.1; 4.57.6 is the newest 4.x),
``transformers/models/qwen2_5_omni/modeling_qwen2_5_omni.py``
(``Qwen2_5OmniThinkerForConditionalGeneration``, ``Qwen2_5OmniAudioEncoder``,
``Qwen2_5OmniVisionEncoder``, ``get_rope_index``), ``processing_qwen2_5_omni.py``,
``transformers/models/whisper/feature_extraction_whisper.py``,
``transformers/models/qwen2_vl/{image_processing_qwen2_vl_fast,video_processing_qwen2_vl}.py``.
Audio files are read as LCO-Embedding does through ``qwen_omni_utils``:
``librosa.load(path, sr=16000)`` (mono mix-down, soxr_hq resampling).

transformers 5.x: if a Python with transformers 5 is available (default
``/tmp/tf5/bin/python``, override with ``QWEN_OMNI_TF5_PYTHON``; created with
``python3 -m venv --system-site-packages /tmp/tf5 && /tmp/tf5/bin/pip install transformers==5.23.0``),
this script runs itself there (``--tf5-stage``) to load ``model_hub/`` with
transformers 5, ``save_pretrained`` the thinker + processor to
``model_thinker/`` and recompute every case; the differences are recorded in
``cases/index.json["transformers_5"]``. Without it ``model_thinker/`` is not
regenerated (the committed copy is kept) and the script says so.

Outputs (relative to the repository root, whatever the current directory):
``tests/fixtures/qwen2_5_omni/`` -- see the hand-written README.md there (kept).

Run::

    pip install -r scripts/requirements-models.txt
    python scripts/gen_qwen2_5_omni_fixtures.py
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "qwen2_5_omni"
HUB_DIR = OUT / "model_hub"
THINKER_DIR = OUT / "model_thinker"

EXPECTED_TRANSFORMERS = "4.57.6"
SEED = 20250612
TF5_PYTHON = os.environ.get("QWEN_OMNI_TF5_PYTHON", "/tmp/tf5/bin/python")

# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

# Qwen2 pre-tokenisation regex (identical to the "Split" pre-tokenizer of the hub tokenizer.json files).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Added tokens of the real Qwen2.5-Omni tokenizer, in their order (ids 151643..151664 there; here they
# follow the 500 BPE entries, ids 500..521). Qwen2.5-Omni re-uses the Qwen2 added-token slots and renames
# seven of them: <|object_ref_start|> -> <|AUDIO|>, <|object_ref_end|> -> <|audio_bos|>,
# <|box_start|> -> <|audio_eos|>, <|vision_start|> -> <|vision_bos|>, <|vision_end|> -> <|vision_eos|>,
# <|image_pad|> -> <|IMAGE|>, <|video_pad|> -> <|VIDEO|>. The ids follow from the defaults of
# Qwen2_5OmniThinkerConfig / Qwen2_5OmniTalkerConfig (audio_token_index 151646, audio_start_token_id
# 151647, audio_end_token_id 151648, vision_start_token_id 151652, vision_end_token_id 151653,
# image_token_index 151655, video_token_index 151656) and from the expected input ids of transformers'
# Qwen2_5OmniModelIntegrationTest ([..., 151644, 872, 198, 151647, 151646, 151648] = "<|im_start|>user\n"
# "<|audio_bos|><|AUDIO|><|audio_eos|>").
ADDED_TOKENS = [
    ("<|endoftext|>", True),       # 151643
    ("<|im_start|>", True),        # 151644
    ("<|im_end|>", True),          # 151645
    ("<|AUDIO|>", True),           # 151646
    ("<|audio_bos|>", True),       # 151647
    ("<|audio_eos|>", True),       # 151648
    ("<|box_end|>", True),         # 151649
    ("<|quad_start|>", True),      # 151650
    ("<|quad_end|>", True),        # 151651
    ("<|vision_bos|>", True),      # 151652
    ("<|vision_eos|>", True),      # 151653
    ("<|vision_pad|>", True),      # 151654
    ("<|IMAGE|>", True),           # 151655
    ("<|VIDEO|>", True),           # 151656
    ("<tool_call>", False),        # 151657
    ("</tool_call>", False),       # 151658
    ("<|fim_prefix|>", False),     # 151659
    ("<|fim_middle|>", False),     # 151660
    ("<|fim_suffix|>", False),     # 151661
    ("<|fim_pad|>", False),        # 151662
    ("<|repo_name|>", False),      # 151663
    ("<|file_sep|>", False),       # 151664
]
ADDITIONAL_SPECIAL_TOKENS = [t for t, special in ADDED_TOKENS[1:] if special]
# Named special tokens the Qwen2_5OmniProcessor reads from its tokenizer (tokenizer.audio_token, ...).
OMNI_EXTRA_SPECIAL_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
BPE_VOCAB_SIZE = 500  # 256 byte symbols + 244 merges; + 22 added tokens = 522

# The stock Qwen2.5-Omni chat template (chat_template.json of Qwen/Qwen2.5-Omni-3B and -7B), verbatim. Source:
# transformers' tests/models/qwen2_5_omni/test_processing_qwen2_5_omni.py (prepare_processor_dict), which
# reproduces the hub file; the default system turn it inserts is "You are a helpful assistant.", confirmed by
# the expected input ids [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, ...] =
# "<|im_start|>system\nYou are a helpful assistant.<|im_end|>" and the decoded outputs
# "system\nYou are a helpful assistant.\nuser\n..." of transformers' Qwen2_5OmniModelIntegrationTest.
# NOT "You are Qwen, a virtual human developed by the Qwen Team, ..." -- that is the system prompt
# Qwen2_5OmniProcessor.apply_chat_template *warns* about (speech output needs it); it never inserts it.
QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio {{ audio_count.value }}: "
    "{% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# LCO-Emb prompts (LCO-Embedding README / Training/train_omni_any2any.py).
TEXT_PROMPT = "{text}\nSummarize the above text in one word:"
IMAGE_PROMPT = "\nSummarize the above image in one word:"
AUDIO_PROMPT = "\nSummarize the above audio in one word:"
VIDEO_PROMPT = "\nSummarize the above video in one word:"
INTERLEAVED_PROMPT = "\nSummarize the above in one word:"

COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "gray", "pink", "brown"]
SHAPES = ["square", "circle", "triangle", "star", "line", "dot", "rectangle", "ring"]
SIZES = ["small", "large", "tiny", "big"]
PLACES = ["on", "above", "below", "next to", "inside", "behind"]
SUBJECTS = ["A man", "A woman", "Two children", "A dog", "The cat", "An old man", "A young girl", "Some people",
            "A group of friends", "The teacher"]
VERBS = ["is playing", "is reading", "is eating", "is holding", "is watching", "is painting", "is carrying",
         "is looking at", "is singing", "is listening to"]
OBJECTS = ["a guitar", "a book", "an apple", "a red ball", "the sunset", "a small boat", "a blue kite",
           "a cup of tea", "the old map", "a wooden box", "a loud drum", "the radio"]
SCENES = ["in the park", "at the beach", "in a kitchen", "on the street", "near the river", "in the snow",
          "at night", "in a small room"]


def training_sentences() -> list[str]:
    rng = random.Random(SEED)
    out = []
    for _ in range(220):
        out.append(f"a {rng.choice(SIZES)} {rng.choice(COLORS)} {rng.choice(SHAPES)} "
                   f"{rng.choice(PLACES)} a {rng.choice(COLORS)} background")
    for _ in range(220):
        out.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(SCENES)}.")
        r = rng.random()
        if r < 0.33:
            out.append(f"{rng.choice(SUBJECTS)} is not {rng.choice(VERBS)[3:]} anything.")
        elif r < 0.66:
            out.append(f"Someone is outside, and it's {rng.choice(['sunny', 'cold', 'late', 'quiet', 'loud'])}.")
        else:
            out.append(f"There are {rng.randint(2, 19)} people {rng.choice(SCENES)}!")
    for _ in range(30):
        out.append("You are a helpful assistant.")
        for kind in ("text", "image", "audio", "video"):
            out.append(f"Summarize the above {kind} in one word:")
        out.append("Summarize the above in one word:")
        out.append("system user assistant")
    return out


def build_tokenizer():
    """The tiny byte-level BPE tokenizer (Qwen2TokenizerFast) with the Qwen2.5-Omni added tokens."""
    import tokenizers
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import Qwen2TokenizerFast

    tok = tokenizers.Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_sentences(), trainer=trainer)
    assert tok.get_vocab_size() == BPE_VOCAB_SIZE, tok.get_vocab_size()
    tok.add_tokens([tokenizers.AddedToken(t, special=s, normalized=False, lstrip=False, rstrip=False,
                                          single_word=False) for t, s in ADDED_TOKENS])
    fast = Qwen2TokenizerFast(
        tokenizer_object=tok,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=ADDITIONAL_SPECIAL_TOKENS,
        extra_special_tokens=dict(OMNI_EXTRA_SPECIAL_TOKENS),
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        add_prefix_space=False,
        padding_side="right",
    )
    fast.chat_template = QWEN2_5_OMNI_CHAT_TEMPLATE
    return fast


# --------------------------------------------------------------------------
# Media
# --------------------------------------------------------------------------

# (file name, width, height); with the hub image settings (min_pixels 3136, max_pixels 12845056, factor 28):
IMAGES = [
    ("img_150x60.png", 150, 60),  # -> 140x56, grid [1, 4, 10]: 2x5 merged units = two 112-px windows (4 + 1
                                  # wide) -> a non-trivial window permutation
    ("img_20x30.png", 20, 30),    # below min_pixels -> upscaled (ceil branch) to 56x84, grid [1, 6, 4]
    ("img_64x64.png", 64, 64),    # -> 56x56, grid [1, 4, 4]
]
VIDEO_FRAMES = 5                  # odd: the video processor repeats the last frame -> 6 frames, grid_t 3
VIDEO_W, VIDEO_H = 36, 36         # rounds to 28x28 < min_pixels -> upscaled to 56x56 (with VIDEO_SIZE below)
# The cases pass videos_kwargs={"size": VIDEO_SIZE}: Qwen2_5OmniProcessor's own defaults
# (shortest_edge 128*28*28, longest_edge 768*28*28) would upscale every frame to >= 100352 pixels
# (>= 128 merged tokens per temporal patch, ~0.5 MB of pixel values each) -- see processor_checks.
VIDEO_SIZE = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16}

SR = 16000
# (file name, sample rate, channels, number of samples per channel)
AUDIO_CLIPS = [
    ("aud_short_16k.wav", 16000, 1, 11687),  # 0.73 s -> 74 mel frames: shorter than one 100-frame encoder chunk
    ("aud_mid_16k.wav", 16000, 1, 36010),    # 2.25 s -> 226 frames: chunks 100 + 100 + 26 (odd tail after conv)
    ("aud_stereo_44k.wav", 44100, 2, 17640),  # 0.4 s stereo 44.1 kHz -> librosa.load(sr=16000): 6400 samples
]
# A second feature-extractor setting: chunk_length 1 s (n_samples 16000, nb_max_frames 100) -- the mid clip
# (2.25 s) is longer and gets truncated to exactly one encoder chunk (tail chunk length 100 % 100 == 0 -> 100).
SHORT_CHUNK_LENGTH = 1


def draw_image(w: int, h: int, k: int) -> Image.Image:
    rng = np.random.default_rng(SEED + 17 * k)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        127 + 120 * np.sin(xx / (5.0 + k) + k),
        127 + 120 * np.cos(yy / (7.0 + 2 * k)),
        127 + 120 * np.sin((xx + yy) / (9.0 + k)),
    ], axis=-1)
    base += rng.normal(0.0, 12.0, size=base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")
    d = ImageDraw.Draw(img)
    for j in range(3):
        x0, y0 = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        x1 = min(w - 1, x0 + int(rng.integers(4, max(5, w // 2))))
        y1 = min(h - 1, y0 + int(rng.integers(4, max(5, h // 2))))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if j % 2 == 0:
            d.rectangle([x0, y0, x1, y1], fill=color)
        else:
            d.ellipse([x0, y0, x1, y1], fill=color)
    return img


def draw_frame(t: int) -> Image.Image:
    img = Image.new("RGB", (VIDEO_W, VIDEO_H), (20 + 40 * t, 40, 90))
    d = ImageDraw.Draw(img)
    for x in range(0, VIDEO_W, 6):
        d.line([x, 0, x, VIDEO_H - 1], fill=(60, (60 + 9 * x) % 200, 60), width=1)
    cx, cy = 6 + 6 * t, 8 + 5 * t
    d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=(250, 200 - 40 * t, 30))
    d.rectangle([VIDEO_W - 12 - 3 * t, 22, VIDEO_W - 4 - 3 * t, 32], fill=(30, 220, 60 + 45 * t))
    return img


def synth_audio(n: int, sr: int, channels: int, k: int) -> np.ndarray:
    """Deterministic test signal, int16 [n, channels]: chirp + harmonics + noise bursts + a silent gap."""
    rng = np.random.default_rng(SEED + 101 * k)
    t = np.arange(n) / sr
    f0 = 180.0 + 90.0 * k
    sig = 0.35 * np.sin(2 * np.pi * (f0 * t + 400.0 * t * t))          # chirp
    sig += 0.2 * np.sin(2 * np.pi * 3.0 * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.7 * t))
    sig += 0.08 * rng.standard_normal(n) * (np.sin(2 * np.pi * 0.9 * t) > 0.3)  # noise bursts
    sig += 0.01 * rng.standard_normal(n)                                # broadband floor (all 128 mel bins)
    env = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (t[-1] - t) / 0.05 + 1e-9)
    sig *= env
    gap0, gap1 = int(0.42 * n), int(0.47 * n)                          # exact digital silence
    sig[gap0:gap1] = 0.0
    out = np.empty((n, channels))
    for c in range(channels):
        out[:, c] = sig * (1.0 if c == 0 else 0.6) + (0.0 if c == 0 else 0.1 * np.sin(2 * np.pi * 950.0 * t))
    return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, data: np.ndarray, sr: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(data.astype("<i2").tobytes())


def load_audio(path: Path) -> np.ndarray:
    """What qwen_omni_utils.process_audio_info does for a local file: librosa.load(path, sr=16000)."""
    import librosa
    return librosa.load(str(path), sr=SR, offset=0.0, duration=None)[0]


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


def token_ids(tok) -> dict[str, int]:
    return {t: tok.convert_tokens_to_ids(t) for t, _ in ADDED_TOKENS}


def thinker_config_dict(tok) -> dict:
    """The tiny thinker config (sub-config dicts in the keys / layout of the hub config.json)."""
    ids = token_ids(tok)
    text_config = dict(
        model_type="qwen2_5_omni_text",
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=32768,
        max_window_layers=28,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
        use_sliding_window=False,
        sliding_window=32768,
        attention_dropout=0.0,
        initializer_range=0.02,
        tie_word_embeddings=False,
        use_cache=True,
        torch_dtype="bfloat16",
    )
    vision_config = dict(
        model_type="qwen2_5_omni_vision_encoder",
        depth=3,
        embed_dim=32,            # hub key, unused by transformers (hidden_size is used)
        hidden_size=32,
        hidden_act="silu",
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        in_chans=3,              # hub key, unused
        patch_size=14,
        spatial_patch_size=14,   # hub key, unused
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=25,    # hub key, unused by the thinker (position_id_per_seconds is used)
        window_size=112,
        out_hidden_size=64,
        fullatt_block_indexes=[2],
        initializer_range=0.02,
        torch_dtype="bfloat16",
    )
    audio_config = dict(
        model_type="qwen2_5_omni_audio_encoder",
        num_mel_bins=128,
        d_model=32,
        encoder_layers=2,
        num_hidden_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=64,
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        encoder_layerdrop=0.0,
        scale_embedding=False,
        max_source_positions=1500,
        n_window=50,             # real models: 100 (chunks of 200 mel frames = 2 s); here 100 frames = 1 s
        output_dim=64,
        init_std=0.02,
        initializer_range=0.02,
        torch_dtype="bfloat16",
    )
    return dict(
        model_type="qwen2_5_omni_thinker",
        architectures=["Qwen2OmniNaViTThinkerForConditionalGeneration"],
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        vision_token_id=ids["<|vision_pad|>"],
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        user_token_id=tok.convert_tokens_to_ids(tok.tokenize("user")[0]) if len(tok.tokenize("user")) == 1 else 872,
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        ignore_index=-100,
        init_std=0.02,
        initializer_range=0.02,
        torch_dtype="bfloat16",
    )


def hub_config_dict(tok, thinker: dict) -> dict:
    """config.json as in Qwen/Qwen2.5-Omni-3B/-7B: model_type qwen2_5_omni, architectures Qwen2_5OmniModel,
    thinker_config + small talker_config / token2wav_config (only the thinker is loadable here)."""
    ids = token_ids(tok)
    talker = dict(
        model_type="qwen2_5_omni_talker",
        architectures=["Qwen2OmniTalkerForConditionalGeneration"],
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        vocab_size=40,
        embedding_size=64,       # = thinker hidden size
        hidden_size=16,
        head_dim=8,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        spatial_merge_size=2,
        tts_codec_start_token_id=33,
        tts_codec_end_token_id=34,
        tts_codec_pad_token_id=32,
        tts_codec_mask_token_id=36,
        tts_text_start_token_id=ids["<|fim_pad|>"],
        tts_text_end_token_id=ids["<|repo_name|>"],
        tts_text_pad_token_id=ids["<|fim_suffix|>"],
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=28,
        torch_dtype="bfloat16",
    )
    token2wav = dict(
        model_type="qwen2_5_omni_token2wav",
        dit_config=dict(model_type="qwen2_5_omni_dit", depth=1, dim=16, heads=2, head_dim=8, ff_mult=2,
                        mel_dim=8, num_embeds=40, emb_dim=8, repeats=2, enc_dim=8, enc_emb_dim=8,
                        enc_channels=[8, 8, 8, 8, 16], enc_kernel_sizes=[5, 3, 3, 3, 1],
                        enc_dilations=[1, 2, 3, 4, 1], enc_attention_channels=8, enc_res2net_scale=2,
                        enc_se_channels=8, block_size=4, look_ahead_layers=[0], look_backward_layers=[0]),
        bigvgan_config=dict(model_type="qwen2_5_omni_bigvgan", mel_dim=8, upsample_initial_channel=16,
                            resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]],
                            upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4]),
    )
    return dict(
        architectures=["Qwen2_5OmniModel"],
        model_type="qwen2_5_omni",
        enable_audio_output=True,
        enable_talker=True,
        thinker_config=thinker,
        talker_config=talker,
        token2wav_config=token2wav,
        torch_dtype="bfloat16",
        transformers_version="4.50.0.dev0",
    )


# Stub tensors of the talker / token2wav (real names from Qwen2.5-Omni checkpoints, tiny shapes): a thinker
# loader must skip every key that does not start with "thinker.".
STUB_TENSORS = [
    ("talker.codec_head.weight", (40, 16)),
    ("talker.model.embed_tokens.weight", (40, 64)),
    ("talker.model.layers.0.self_attn.q_proj.weight", (16, 16)),
    ("talker.model.layers.0.self_attn.q_proj.bias", (16,)),
    ("talker.model.norm.weight", (16,)),
    ("talker.thinker_to_talker_proj.weight", (16, 64)),
    ("talker.thinker_to_talker_proj.bias", (16,)),
    ("token2wav.code2wav_bigvgan_model.conv_pre.weight", (16, 8, 7)),
    ("token2wav.code2wav_dit_model.input_embed.proj.weight", (16, 40)),
    ("token2wav.code2wav_dit_model.norm_out.linear.weight", (32, 16)),
]


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = SEED) -> None:
    """Deterministic re-initialisation of *every* parameter, then rounding to bf16-representable values.

    The stock init would leave all biases at 0 and all norm gains at 1. Here: matrices / conv kernels
    ~ N(0, 1/fan_in), embeddings ~ N(0, 1), biases ~ N(0, 0.1^2) (q/k/v biases N(0, 0.5^2)), RMSNorm /
    LayerNorm gains ~ 1 + N(0, 0.2^2) (LayerNorm biases are biases). The final values are rounded to bf16 so
    that the bf16 hub checkpoint is lossless.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith(".bias"):
            std = 0.5 if any(k in name for k in ("q_proj", "k_proj", "v_proj", ".attn.q.", ".attn.k.", ".attn.v.")) \
                else 0.1
            p.copy_(std * torch.randn(p.shape, generator=g))
        elif name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                or name.endswith("ln_q.weight") or name.endswith("ln_post.weight") or "layer_norm" in name:
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        elif "embed_tokens" in name or "audio_bos_eos_token" in name:
            p.copy_(torch.randn(p.shape, generator=g))
        else:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        p.copy_(p.to(torch.bfloat16).to(torch.float32))


def preprocessor_config_dict() -> dict:
    """The merged preprocessor_config.json of Qwen/Qwen2.5-Omni-7B (same 21 keys and values; the -3B file is alike)."""
    return {
        "chunk_length": 300,
        "dither": 0.0,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": 128,
        "hop_length": 160,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "Qwen2VLImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "max_pixels": 12845056,
        "merge_size": 2,
        "min_pixels": 3136,
        "n_fft": 400,
        "n_samples": 4800000,
        "nb_max_frames": 30000,
        "padding_side": "right",
        "padding_value": 0.0,
        "patch_size": 14,
        "processor_class": "Qwen2_5OmniProcessor",
        "return_attention_mask": True,
        "sampling_rate": 16000,
        "temporal_patch_size": 2,
    }


def write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rel(p) -> str:
    return str(Path(p).relative_to(OUT))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

TEXTS = [
    "A man is playing a guitar in the park.",
    "Two kids hear the radio, and it's loud! (naïve café, 12)",
]
MIXED_TEXT = "The cat is watching the sunset."


def text_msg(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": TEXT_PROMPT.format(text=text)}]}]


def image_msg(paths: list[str]) -> list[dict]:
    content = [{"type": "image", "image": p} for p in paths]
    content.append({"type": "text", "text": IMAGE_PROMPT})
    return [{"role": "user", "content": content}]


def audio_msg(path: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio", "audio": path}, {"type": "text", "text": AUDIO_PROMPT}]}]


def video_msg(frames: list[str], prompt: str = VIDEO_PROMPT) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": prompt}]}]


def multi_msg(audio: str, image: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "image", "image": image},
                                         {"type": "text", "text": INTERLEAVED_PROMPT}]}]


def case_list(frames: list[str]) -> list[dict]:
    """Each case: messages (one conversation per batch row), media in prompt order, processor settings."""
    A_SHORT, A_MID, A_ST = "audio/aud_short_16k.wav", "audio/aud_mid_16k.wav", "audio/aud_stereo_44k.wav"
    return [
        dict(name="text_0", kind="text", messages=[text_msg(TEXTS[0])]),
        dict(name="text_1", kind="text", messages=[text_msg(TEXTS[1])]),
        dict(name="image_0", kind="image", messages=[image_msg(["images/img_150x60.png"])],
             images=["images/img_150x60.png"]),
        dict(name="image_1", kind="image", messages=[image_msg(["images/img_20x30.png", "images/img_64x64.png"])],
             images=["images/img_20x30.png", "images/img_64x64.png"]),
        dict(name="audio_0", kind="audio", messages=[audio_msg(A_SHORT)], audio=[A_SHORT]),
        dict(name="audio_1", kind="audio", messages=[audio_msg(A_MID)], audio=[A_MID]),
        dict(name="audio_2", kind="audio", messages=[audio_msg(A_MID)], audio=[A_MID],
             chunk_length=SHORT_CHUNK_LENGTH),
        dict(name="audio_3", kind="audio", messages=[audio_msg(A_ST)], audio=[A_ST]),
        dict(name="video_0", kind="video", messages=[video_msg(frames)], videos=[frames], fps=None),
        dict(name="video_1", kind="video", messages=[video_msg(frames)], videos=[frames], fps=3.0),
        dict(name="batch_mixed", kind="batch",
             messages=[text_msg(MIXED_TEXT), image_msg(["images/img_64x64.png"]), audio_msg(A_SHORT),
                       video_msg(frames)],
             images=["images/img_64x64.png"], audio=[A_SHORT], videos=[frames], fps=None),
        # the audio track of the video is given as a separate clip (as qwen_omni_utils extracts it)
        dict(name="audio_in_video", kind="audio_in_video", messages=[video_msg(frames)], videos=[frames],
             audio=[A_MID], fps=None, use_audio_in_video=True),
        dict(name="audio_image", kind="multi", messages=[multi_msg(A_SHORT, "images/img_64x64.png")],
             images=["images/img_64x64.png"], audio=[A_SHORT]),
    ]


def processor_call_kwargs(case: dict) -> dict:
    """The kwargs of processor(...) besides text/images/videos/audio (recorded in index.json)."""
    # NB: once a videos_kwargs dict is passed, transformers 4.57 silently ignores *flat* video kwargs
    # (fps=..., use_audio_in_video=...): they must go inside the dict.
    kw = {"return_tensors": "pt", "padding": True, "padding_side": "left"}
    if case.get("videos"):
        kw["videos_kwargs"] = {"size": dict(VIDEO_SIZE)}
        if case.get("fps") is not None:
            kw["videos_kwargs"]["fps"] = case["fps"]
        if case.get("use_audio_in_video"):
            kw["videos_kwargs"]["use_audio_in_video"] = True
    return kw


def load_case_media(case: dict):
    images = [Image.open(OUT / p).convert("RGB") for p in case.get("images", [])]
    videos = [[Image.open(OUT / f).convert("RGB") for f in v] for v in case.get("videos", [])]
    audio = [load_audio(OUT / p) for p in case.get("audio", [])]
    return images, videos, audio


def load_case_tensors(name: str, index: dict) -> dict:
    """A case's tensors, with the big tensors it shares with an earlier case (index "shared_keys") filled in."""
    from safetensors.torch import load_file
    entry = next(c for c in index["cases"] if c["name"] == name)
    t = load_file(str(OUT / entry["file"]))
    for key, src in entry.get("shared_keys", {}).items():
        t[key] = load_file(str(OUT / "cases" / f"{src['case']}.safetensors"))[src["key"]]
        assert list(t[key].shape) == src["shape"]
    return t


def run_processor(processor, case: dict, tf5: bool = False):
    images, videos, audio = load_case_media(case)
    prompts = [processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               for m in case["messages"]]
    kw = dict(text=prompts, **copy.deepcopy(processor_call_kwargs(case)))
    if tf5 and case.get("use_audio_in_video"):
        # transformers 5: use_audio_in_video is deprecated for load_audio_from_video, and audio given
        # alongside must say which video it belongs to (else it is decoded from the video file itself)
        kw["videos_kwargs"].pop("use_audio_in_video")
        kw["load_audio_from_video"] = True
        kw["audio_from_video_indices"] = [0]
    if images:
        kw["images"] = images
    if videos:
        kw["videos"] = videos
    if audio:
        kw["audio"] = audio
    inputs = processor(**kw)
    return prompts, dict(inputs.items()), audio


# --------------------------------------------------------------------------
# transformers 5 stage (runs in the tf5 interpreter)
# --------------------------------------------------------------------------


def tf5_stage(report_path: str) -> int:
    import transformers
    from transformers import Qwen2_5OmniProcessor, Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    report = {"transformers_version": transformers.__version__, "torch_version": torch.__version__.split("+")[0]}
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        HUB_DIR, dtype=torch.float32, attn_implementation="eager").eval()
    processor = Qwen2_5OmniProcessor.from_pretrained(HUB_DIR)
    report["processor_classes"] = {
        "image_processor": type(processor.image_processor).__name__,
        "video_processor": type(processor.video_processor).__name__,
        "feature_extractor": type(processor.feature_extractor).__name__,
        "tokenizer": type(processor.tokenizer).__name__,
    }
    if THINKER_DIR.exists():
        shutil.rmtree(THINKER_DIR)
    model.save_pretrained(THINKER_DIR)
    processor.save_pretrained(THINKER_DIR)
    report["model_thinker_files"] = sorted(p.name for p in THINKER_DIR.iterdir())
    # reload what was just written; everything below uses it
    model2 = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        THINKER_DIR, dtype=torch.float32, attn_implementation="eager").eval()
    sd1, sd2 = model.state_dict(), model2.state_dict()
    assert sd1.keys() == sd2.keys()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    processor2 = Qwen2_5OmniProcessor.from_pretrained(THINKER_DIR)
    report["reload_model_thinker_identical_weights"] = True
    index = json.loads((OUT / "cases" / "index.json").read_text())
    frames = index["video"]["frames"]
    results = {}
    for case in case_list(frames):
        ref = load_case_tensors(case["name"], index)
        if case.get("chunk_length"):
            processor2.feature_extractor = type(processor2.feature_extractor).from_pretrained(
                THINKER_DIR, chunk_length=case["chunk_length"])
        try:
            prompts, inputs, _ = run_processor(processor2, case, tf5=True)
        finally:
            processor2.feature_extractor = type(processor2.feature_extractor).from_pretrained(THINKER_DIR)
        r = {"prompts_equal": prompts == next(c for c in index["cases"] if c["name"] == case["name"])["prompts"]}
        r["input_ids_equal"] = bool(torch.equal(inputs["input_ids"], ref["input_ids"]))
        r["attention_mask_equal"] = bool(torch.equal(inputs["attention_mask"].long(), ref["attention_mask"]))
        for k_in, k_ref in (("pixel_values", "pixel_values"), ("pixel_values_videos", "pixel_values_videos")):
            if k_in in inputs and k_ref in ref:
                r[f"{k_in}_max_abs_diff"] = float((inputs[k_in].float() - ref[k_ref]).abs().max())
        if "input_features" in inputs:
            m = inputs["feature_attention_mask"].bool()
            feats = inputs["input_features"].permute(0, 2, 1)[m].permute(1, 0)
            r["feature_lengths_equal"] = bool(torch.equal(inputs["feature_attention_mask"].sum(-1).long(),
                                                          ref["feature_lengths"]))
            if feats.shape == ref["input_features_valid"].shape:
                r["input_features_valid_max_abs_diff"] = float((feats - ref["input_features_valid"]).abs().max())
        r["input_keys"] = sorted(inputs.keys())
        if r["input_ids_equal"]:
            with torch.no_grad():
                out = model2(**inputs, use_audio_in_video=bool(case.get("use_audio_in_video")),
                             output_hidden_states=True, use_cache=False, return_dict=True)
            hs = torch.stack(out.hidden_states, 0)
            valid = ref["attention_mask"].bool()
            r["hidden_states_max_abs_diff_valid"] = float(max((a[valid] - b[valid]).abs().max()
                                                              for a, b in zip(hs, ref["hidden_states"])))
            r["hidden_states_max_abs_diff_all"] = float((hs - ref["hidden_states"]).abs().max())
            pos, deltas = model2.get_rope_index(
                inputs["input_ids"], inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                inputs["attention_mask"], bool(case.get("use_audio_in_video")),
                inputs["feature_attention_mask"].sum(-1) if "feature_attention_mask" in inputs else None,
                inputs.get("video_second_per_grid"))
            r["position_ids_equal"] = bool(torch.equal(pos.long(), ref["position_ids"]))
        results[case["name"]] = r
    report["cases"] = results
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
    return 0


# --------------------------------------------------------------------------
# main (transformers 4.57.6)
# --------------------------------------------------------------------------


def save_hub_checkpoint(model, tok, thinker_cfg: dict) -> None:
    """model_hub/: bf16 shards with thinker.* keys + stub talker/token2wav tensors, hub config and files."""
    from safetensors.torch import save_file

    HUB_DIR.mkdir(parents=True)
    sd = {f"thinker.{k}": v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(SEED + 5)
    for name, shape in STUB_TENSORS:
        sd[name] = (0.05 * torch.randn(shape, generator=g)).to(torch.bfloat16)
    # shard 1: text model; shard 2: audio + vision towers, lm_head, talker, token2wav (the hub repos are
    # ordered like this too: no assumption about which shard holds what is allowed)
    keys = sorted(sd)
    shard1 = [k for k in keys if k.startswith("thinker.model.")]
    shard2 = [k for k in keys if k not in shard1]
    weight_map, total = {}, 0
    for i, ks in enumerate((shard1, shard2), start=1):
        fname = f"model-0000{i}-of-00002.safetensors"
        save_file({k: sd[k] for k in ks}, str(HUB_DIR / fname), metadata={"format": "pt"})
        for k in ks:
            weight_map[k] = fname
            total += sd[k].numel() * sd[k].element_size()
    write_json(HUB_DIR / "model.safetensors.index.json",
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    write_json(HUB_DIR / "config.json", hub_config_dict(tok, thinker_cfg))
    write_json(HUB_DIR / "generation_config.json", {"_from_model_config": True, "transformers_version": "4.50.0.dev0"})
    write_json(HUB_DIR / "preprocessor_config.json", preprocessor_config_dict())
    write_json(HUB_DIR / "chat_template.json", {"chat_template": QWEN2_5_OMNI_CHAT_TEMPLATE})
    tok.save_pretrained(HUB_DIR, save_jinja_files=False)
    # the hub tokenizer_config.json does not carry the chat template (chat_template.json does)
    tc = json.loads((HUB_DIR / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    # no padding_side in the file: a saved padding_side would override the processor's default text
    # padding_side ("left", Qwen2_5OmniProcessorKwargs._defaults) whenever the caller passes none
    tc.pop("padding_side", None)
    write_json(HUB_DIR / "tokenizer_config.json", tc)
    if (HUB_DIR / "chat_template.jinja").exists():
        (HUB_DIR / "chat_template.jinja").unlink()


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--tf5-stage":
        return tf5_stage(sys.argv[2])

    import tokenizers
    import transformers
    from safetensors.torch import save_file
    from transformers import (Qwen2_5OmniConfig, Qwen2_5OmniProcessor, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor)

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    if transformers.__version__ != EXPECTED_TRANSFORMERS:
        print(f"WARNING: transformers {transformers.__version__} != pinned {EXPECTED_TRANSFORMERS}", file=sys.stderr)
    from transformers.utils import is_torchvision_available
    if not is_torchvision_available():
        raise SystemExit("torchvision is required (fast image processor + video processor)")
    import librosa
    import soundfile
    import soxr

    # Remove what this script generates; README.md (hand-written) and, when transformers 5 is not available,
    # model_thinker/ are kept.
    have_tf5 = Path(TF5_PYTHON).exists()
    old_tf5_report = None
    if not have_tf5 and (OUT / "cases" / "index.json").exists():
        old_tf5_report = json.loads((OUT / "cases" / "index.json").read_text()).get("transformers_5")
    for sub in ("images", "video", "audio", "cases", "model_hub") + (("model_thinker",) if have_tf5 else ()):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)
    for sub in ("images", "video", "audio", "cases"):
        (OUT / sub).mkdir(parents=True)

    # ---- inputs -----------------------------------------------------------
    for k, (fname, w, h) in enumerate(IMAGES):
        draw_image(w, h, k).save(OUT / "images" / fname, format="PNG", optimize=False, compress_level=9)
    frames = []
    for t in range(VIDEO_FRAMES):
        p = OUT / "video" / f"frame_{t:03d}.png"
        draw_frame(t).save(p, format="PNG", optimize=False, compress_level=9)
        frames.append(rel(p))
    for k, (fname, sr, ch, n) in enumerate(AUDIO_CLIPS):
        write_wav(OUT / "audio" / fname, synth_audio(n, sr, ch, k), sr)

    # ---- tokenizer / model ------------------------------------------------
    tok = build_tokenizer()
    ids = token_ids(tok)
    thinker_cfg = thinker_config_dict(tok)
    config = Qwen2_5OmniThinkerConfig(**copy.deepcopy(thinker_cfg))
    model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(config, attn_implementation="eager",
                                                                    dtype=torch.float32)
    randomize_(model)
    model.eval()
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    ref_sd = {k: v.clone() for k, v in model.state_dict().items()}
    save_hub_checkpoint(model, tok, thinker_cfg)

    # ---- reload from disk (4.57.6); everything below uses the reloaded objects ----
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        HUB_DIR, dtype=torch.float32, attn_implementation="eager").eval()
    sd = model.state_dict()
    assert sd.keys() == ref_sd.keys(), sorted(set(sd) ^ set(ref_sd))
    for k in ref_sd:
        assert torch.equal(sd[k], ref_sd[k]), k
    full_cfg = Qwen2_5OmniConfig.from_pretrained(HUB_DIR)   # the whole hub config parses too
    assert full_cfg.thinker_config.audio_config.n_window == 50
    processor = Qwen2_5OmniProcessor.from_pretrained(HUB_DIR)
    assert processor.chat_template == QWEN2_5_OMNI_CHAT_TEMPLATE
    assert processor.feature_extractor.chunk_length == 300 and processor.feature_extractor.n_samples == 4800000
    fe_short = WhisperFeatureExtractor.from_pretrained(HUB_DIR, chunk_length=SHORT_CHUNK_LENGTH)
    assert fe_short.n_samples == SHORT_CHUNK_LENGTH * SR and fe_short.nb_max_frames == SHORT_CHUNK_LENGTH * 100
    fe_hub = processor.feature_extractor
    print(f"processor: {type(processor).__name__}, image: {type(processor.image_processor).__name__}, "
          f"video: {type(processor.video_processor).__name__}, audio: {type(processor.feature_extractor).__name__}")

    audio_tower, visual = model.audio_tower, model.visual
    n_layers = model.config.text_config.num_hidden_layers

    # what transformers 4.57.6 itself writes for the thinker class (not committed: recorded in index.json)
    import tempfile
    from safetensors import safe_open
    with tempfile.TemporaryDirectory() as td:
        model.save_pretrained(td)
        with safe_open(str(Path(td) / "model.safetensors"), "pt") as f_:
            keys_457 = sorted(f_.keys())
        saved_457 = {"files": sorted(p.name for p in Path(td).iterdir()),
                     "key_prefixes": sorted({k.split(".")[0] for k in keys_457}),
                     "num_keys": len(keys_457),
                     "config_json": json.loads((Path(td) / "config.json").read_text())}

    # ---- hooks --------------------------------------------------------------
    cap: dict = {"vision": [], "audio": []}

    def hook_visual_pre(_m, _a, kwargs):
        cap["vision"].append({"grid_thw": kwargs["grid_thw"].clone(), "blocks": []})

    visual.register_forward_pre_hook(hook_visual_pre, with_kwargs=True)
    visual.patch_embed.register_forward_hook(lambda _m, _a, o: cap["vision"][-1].__setitem__("patch_embed", o.clone()))
    for blk in visual.blocks:
        blk.register_forward_hook(lambda _m, _a, o: cap["vision"][-1]["blocks"].append(o.clone()))
    visual.merger.register_forward_hook(lambda _m, _a, o: cap["vision"][-1].__setitem__("merger", o.clone()))
    visual.register_forward_hook(lambda _m, _a, o: cap["vision"][-1].__setitem__("out", o.clone()))

    def hook_audio_pre(_m, args, kwargs):
        cap["audio"].append({"feature_lens": kwargs["feature_lens"].clone(),
                             "aftercnn_lens": kwargs["aftercnn_lens"].clone(), "layers": [], "ln_post": []})

    def hook_layer0_pre(_m, args, kwargs):
        cap["audio"][-1]["conv_out"] = args[0].clone()
        cap["audio"][-1]["cu_seqlens"] = kwargs["cu_seqlens"].clone()

    audio_tower.register_forward_pre_hook(hook_audio_pre, with_kwargs=True)
    audio_tower.layers[0].register_forward_pre_hook(hook_layer0_pre, with_kwargs=True)
    for layer in audio_tower.layers:
        layer.register_forward_hook(lambda _m, _a, o: cap["audio"][-1]["layers"].append(o[0].clone()))
    audio_tower.ln_post.register_forward_hook(lambda _m, _a, o: cap["audio"][-1]["ln_post"].append(o.clone()))
    audio_tower.register_forward_hook(lambda _m, _a, o: cap["audio"][-1].__setitem__("out", o.last_hidden_state.clone()))

    index = {
        "generator": "scripts/gen_qwen2_5_omni_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "tokenizers_version": tokenizers.__version__,
        "librosa_version": librosa.__version__,
        "soxr_version": soxr.__version__,
        "soundfile_version": soundfile.__version__,
        "model_dirs": {"hub": "model_hub", "thinker": "model_thinker"},
        "chat_template": QWEN2_5_OMNI_CHAT_TEMPLATE,
        "prompts": {"text": TEXT_PROMPT, "image": IMAGE_PROMPT, "audio": AUDIO_PROMPT, "video": VIDEO_PROMPT,
                    "interleaved": INTERLEAVED_PROMPT},
        "token_ids": ids,
        "config": {
            "n_window": model.config.audio_config.n_window,
            "position_id_per_seconds": model.config.position_id_per_seconds,
            "seconds_per_chunk": model.config.seconds_per_chunk,
            "window_size": model.config.vision_config.window_size,
            "mrope_section": model.config.text_config.rope_scaling["mrope_section"],
        },
        "processor": {
            "classes": {"image_processor": type(processor.image_processor).__name__,
                        "video_processor": type(processor.video_processor).__name__,
                        "feature_extractor": type(processor.feature_extractor).__name__,
                        "tokenizer": type(processor.tokenizer).__name__},
            "padding_side": "left",
            "feature_extractor_hub": {"chunk_length": fe_hub.chunk_length, "n_samples": fe_hub.n_samples,
                                      "nb_max_frames": fe_hub.nb_max_frames},
            "feature_extractor_short": {"chunk_length": fe_short.chunk_length, "n_samples": fe_short.n_samples,
                                        "nb_max_frames": fe_short.nb_max_frames},
            "video_size_used_by_cases": VIDEO_SIZE,
        },
        "images": {f: {"path": f"images/{f}", "width": w, "height": h, "sha256": sha256(OUT / "images" / f)}
                   for f, w, h in IMAGES},
        "video": {"frames": frames, "width": VIDEO_W, "height": VIDEO_H,
                  "sha256": [sha256(OUT / f) for f in frames]},
        "audio": {f: {"path": f"audio/{f}", "sample_rate": sr, "channels": ch, "num_samples": n,
                      "sha256": sha256(OUT / "audio" / f)} for f, sr, ch, n in AUDIO_CLIPS},
        "transformers_4_57_thinker_save_pretrained": saved_457,
        "tokenizer_checks": [],
        "processor_checks": {},
        "cases": [],
    }

    for s in ["Hello world!", "A man's dog isn't 42 years old.\n\nTabs\tand  spaces", "naïve café — ü",
              "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|><|vision_bos|><|IMAGE|><|VIDEO|><|vision_eos|>"
              "<|im_end|>"]:
        enc = processor.tokenizer(s)["input_ids"]
        index["tokenizer_checks"].append({"text": s, "input_ids": enc,
                                          "decoded": processor.tokenizer.decode(enc, skip_special_tokens=False)})

    # ---- processor-only checks (no model): the defaults a reimplementation must reproduce ----
    pc = index["processor_checks"]
    # (a) audio token counts: the processor's count ((n-1)//2+1 - 2)//2+1 over feature frames ceil(samples/160)
    pc["audio_lengths"] = []
    for n in [1, 159, 160, 161, 320, 3200, 3201, 16000, 16159, 36010]:
        wav = np.zeros(n, dtype=np.float32)
        wav[::7] = 0.1
        out = processor(text=["<|audio_bos|><|AUDIO|><|audio_eos|>"], audio=[wav], return_tensors="pt")
        fl = int(out["feature_attention_mask"].sum())
        n_tok = int((out["input_ids"] == ids["<|AUDIO|>"]).sum())
        after_cnn = (fl - 1) // 2 + 1
        assert n_tok == (after_cnn - 2) // 2 + 1
        pc["audio_lengths"].append({"num_samples": n, "feature_frames": fl, "after_cnn": after_cnn,
                                    "audio_tokens": n_tok})
    # (b) video grids with Qwen2_5OmniProcessor's own defaults (no size passed) vs the cases' VIDEO_SIZE
    pc["video_grids"] = []
    for (nf, w, h) in [(5, 36, 36), (4, 80, 60), (2, 640, 360), (3, 1280, 720)]:
        vid = [Image.new("RGB", (w, h), (10 * i, 50, 90)) for i in range(nf)]
        for label, kw in (("omni_processor_defaults", {}), ("cases_video_size", {"videos_kwargs": {"size": VIDEO_SIZE}})):
            out = processor(text=["<|vision_bos|><|VIDEO|><|vision_eos|>"], videos=[vid], return_tensors="pt",
                            **copy.deepcopy(kw))
            pc["video_grids"].append({"frames": nf, "width": w, "height": h, "setting": label,
                                      "video_grid_thw": out["video_grid_thw"][0].tolist(),
                                      "video_tokens": int((out["input_ids"] == ids["<|VIDEO|>"]).sum()),
                                      "video_second_per_grid": float(out["video_second_per_grid"][0])})
    # (c) image grids with the hub preprocessor_config.json (min_pixels 3136, max_pixels 12845056)
    pc["image_grids"] = []
    for (w, h) in [(20, 30), (64, 64), (150, 60), (70, 70), (1000, 10), (1000, 4), (4000, 4000), (5000, 3000)]:
        img = Image.new("RGB", (w, h), (200, 30, 90))
        try:
            out = processor(text=["<|vision_bos|><|IMAGE|><|vision_eos|>"], images=[img], return_tensors="pt")
            pc["image_grids"].append({"width": w, "height": h, "image_grid_thw": out["image_grid_thw"][0].tolist()})
        except ValueError as e:  # smart_resize rejects aspect ratios > 200
            pc["image_grids"].append({"width": w, "height": h, "error": f"ValueError: {e}"})

    # (d) text padding side when the caller passes none (Qwen2_5OmniProcessorKwargs default "left"; a
    # padding_side saved in tokenizer_config.json would override it -- the hub file has none)
    out = processor(text=["hi", "a longer prompt here"], padding=True, return_tensors="pt")
    pc["default_padding_side"] = "left" if int(out["attention_mask"][0, 0]) == 0 else "right"
    assert pc["default_padding_side"] == "left"

    # ---- cases --------------------------------------------------------------
    stored: dict = {}   # sha of (dtype, shape, bytes) -> (case, key) holding it (big identical tensors are shared)
    summary = []
    cases = case_list(frames)
    for case in cases:
        cap["vision"].clear()
        cap["audio"].clear()
        processor.feature_extractor = fe_short if case.get("chunk_length") else fe_hub
        prompts, inputs, waveforms = run_processor(processor, case)
        processor.feature_extractor = fe_hub
        use_aiv = bool(case.get("use_audio_in_video"))
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        B, T = input_ids.shape
        fam = inputs.get("feature_attention_mask")
        with torch.no_grad():
            position_ids, rope_deltas_idx = model.get_rope_index(
                input_ids, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), attention_mask, use_aiv,
                fam.sum(-1) if fam is not None else None, inputs.get("video_second_per_grid"))
            out = model(**inputs, use_audio_in_video=use_aiv, output_hidden_states=True, use_cache=False,
                        return_dict=True)
        hs = torch.stack(out.hidden_states, dim=0)  # [L+1, B, T, H]
        assert hs.shape == (n_layers + 1, B, T, 64), hs.shape
        n_pad = (1 - attention_mask).sum(-1, keepdim=True)
        assert torch.equal(out.rope_deltas, rope_deltas_idx.reshape(B, 1) - n_pad)
        mask = attention_mask.to(hs.dtype)
        pooled_mean = (hs * mask[None, :, :, None]).sum(2) / mask.sum(1)[None, :, None]
        tensors = {
            "input_ids": input_ids.to(torch.int64),
            "attention_mask": attention_mask.to(torch.int64),
            "position_ids": position_ids.to(torch.int64),
            "rope_deltas": out.rope_deltas.to(torch.int64).reshape(B, 1),
            "hidden_states": hs.float(),
            "pooled_last_token": hs[:, :, -1, :].float(),
            "pooled_mean": pooled_mean.float(),
            "logits_last": out.logits[:, -1, :].float(),
        }
        if "pixel_values" in inputs:
            tensors["pixel_values"] = inputs["pixel_values"].float()
            tensors["image_grid_thw"] = inputs["image_grid_thw"].to(torch.int64)
        if "pixel_values_videos" in inputs:
            tensors["pixel_values_videos"] = inputs["pixel_values_videos"].float()
            tensors["video_grid_thw"] = inputs["video_grid_thw"].to(torch.int64)
            tensors["video_second_per_grid"] = torch.as_tensor(inputs["video_second_per_grid"], dtype=torch.float32)
        if fam is not None:
            valid = inputs["input_features"].permute(0, 2, 1)[fam.bool()].permute(1, 0)
            tensors["input_features_valid"] = valid.float().contiguous()
            tensors["feature_lengths"] = fam.sum(-1).to(torch.int64)
            assert inputs["input_features"].shape[-1] == (fe_short if case.get("chunk_length") else fe_hub).nb_max_frames
            if any(OUT.joinpath(p).name == "aud_stereo_44k.wav" for p in case.get("audio", [])):
                tensors["waveform_16k"] = torch.from_numpy(np.concatenate(waveforms)).float()
            # the audio tower: one call with all clips of the batch
            assert len(cap["audio"]) == 1
            c = cap["audio"][0]
            tensors["audio.feature_lens"] = c["feature_lens"].to(torch.int64)
            tensors["audio.aftercnn_lens"] = c["aftercnn_lens"].to(torch.int64)
            tensors["audio.cu_seqlens"] = c["cu_seqlens"].to(torch.int64)
            tensors["audio.conv_out"] = c["conv_out"].float()
            for i, h_ in enumerate(c["layers"]):
                tensors[f"audio.layer_{i}"] = h_.float()
            tensors["audio.ln_post"] = torch.cat(c["ln_post"], 0).float()
            tensors["audio.output"] = c["out"].float()
            sel = input_ids == ids["<|AUDIO|>"]
            assert hs[0][sel].shape == c["out"].shape and torch.equal(hs[0][sel], c["out"]), (
                case["name"], hs[0][sel].shape, c["out"].shape)
        assert len(cap["vision"]) == ("pixel_values" in inputs) + ("pixel_values_videos" in inputs)
        # one vision call per modality: images first (prefix "vision."), then videos ("vision." when the case has
        # no image, else "vision_video.")
        kinds = (["image"] if "pixel_values" in inputs else []) + (["video"] if "pixel_values_videos" in inputs else [])
        for c, kind_ in zip(cap["vision"], kinds):
            is_image = kind_ == "image"
            pre = "vision" if c is cap["vision"][0] else "vision_video"
            grid = c["grid_thw"]
            window_index, cu_window_seqlens = visual.get_window_index(grid)
            tensors[f"{pre}.rot_pos_emb"] = visual.rot_pos_emb(grid).float()
            tensors[f"{pre}.window_index"] = window_index.to(torch.int64)
            tensors[f"{pre}.cu_window_seqlens"] = torch.unique_consecutive(
                torch.tensor(cu_window_seqlens, dtype=torch.int64))
            tensors[f"{pre}.cu_seqlens"] = torch.nn.functional.pad(
                torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0]).cumsum(0), (1, 0)).to(torch.int64)
            tensors[f"{pre}.patch_embed"] = c["patch_embed"].float()
            for i, b_ in enumerate(c["blocks"]):
                tensors[f"{pre}.block_{i}"] = b_.float()
            tensors[f"{pre}.merger_window_order"] = c["merger"].float()
            tensors[f"{pre}.output"] = c["out"].float()
            tok_id = ids["<|IMAGE|>"] if is_image else ids["<|VIDEO|>"]
            assert torch.equal(hs[0][input_ids == tok_id], c["out"]), "vision output != scattered embeddings"

        # a tensor (>= 1 KiB) bit-identical to one already stored by an earlier case (under any key) is stored
        # only there: index.json "shared_keys" maps key -> {"case", "key", "shape", "dtype"}
        shared = {}
        for key in list(tensors):
            t_ = tensors[key].contiguous()
            if t_.numel() * t_.element_size() < 1024:
                continue
            h_ = hashlib.sha256(str(t_.dtype).encode() + str(list(t_.shape)).encode() + t_.numpy().tobytes()).hexdigest()
            if h_ in stored:
                shared[key] = {"case": stored[h_][0], "key": stored[h_][1], "shape": list(t_.shape),
                               "dtype": str(t_.dtype).replace("torch.", "")}
                del tensors[key]
            else:
                stored[h_] = (case["name"], key)
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        case_file = OUT / "cases" / f"{case['name']}.safetensors"
        save_file(tensors, str(case_file), metadata={"case": case["name"]})

        entry = {
            "name": case["name"],
            "kind": case["kind"],
            "file": rel(case_file),
            "batch_size": B,
            "seq_len": T,
            "num_tokens": attention_mask.sum(1).tolist(),
            "prompts": prompts,
            "messages": case["messages"],
            "images": case.get("images", []),
            "videos": case.get("videos", []),
            "audio": case.get("audio", []),
            "audio_loading": "librosa.load(path, sr=16000) (mono, soxr_hq)" if case.get("audio") else None,
            "processor_kwargs": processor_call_kwargs(case),
            "feature_extractor": {"chunk_length": case.get("chunk_length", 300)} if case.get("audio") else None,
            "model_kwargs": {"use_audio_in_video": use_aiv, "output_hidden_states": True, "use_cache": False},
            "shared_keys": shared,
            "keys": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                     for k, v in sorted(tensors.items())},
        }
        if "video_second_per_grid" in tensors:
            entry["video_second_per_grid"] = tensors["video_second_per_grid"].tolist()
        if fam is not None:
            # the Whisper clamp max(log_mel, max - 8) takes the max over all nb_max_frames frames of the padded
            # signal; record whether it lies in the valid frames (else the 1-2 frames after them set it)
            lm = inputs["input_features"]
            entry["feature_max_in_valid_frames"] = [
                bool(lm[i][:, : int(fam[i].sum())].max() == lm[i].max()) for i in range(lm.shape[0])]
            entry["feature_lengths"] = tensors["feature_lengths"].tolist()
            entry["audio_tokens"] = [int(x) for x in (((tensors["feature_lengths"] - 1) // 2 + 1 - 2) // 2 + 1)]
        index["cases"].append(entry)
        m_ = attention_mask.bool()
        summary.append((case["name"], B, T, attention_mask.sum(1).tolist(),
                        [float(h_[m_].norm(dim=-1).mean()) for h_ in hs],
                        [float(h_[m_].std(dim=0).mean()) for h_ in hs]))

        if case["name"] in ("batch_mixed", "audio_in_video"):
            model.set_attn_implementation("sdpa")
            with torch.no_grad():
                out2 = model(**inputs, use_audio_in_video=use_aiv, output_hidden_states=True, use_cache=False,
                             return_dict=True)
            model.set_attn_implementation("eager")
            d = max(float((a[m_] - b[m_]).abs().max()) for a, b in zip(out.hidden_states, out2.hidden_states))
            index.setdefault("eager_vs_sdpa_max_abs_diff_valid_positions", {})[case["name"]] = d

    # audio_in_video without the model flag (what a caller that forwards only the processor outputs gets)
    case = next(c for c in cases if c["name"] == "audio_in_video")
    _, inputs, _ = run_processor(processor, case)
    try:
        with torch.no_grad():
            pos_nf, _ = model.get_rope_index(inputs["input_ids"], None, inputs["video_grid_thw"],
                                             inputs["attention_mask"], False,
                                             inputs["feature_attention_mask"].sum(-1), inputs["video_second_per_grid"])
        ref_pos = load_case_tensors("audio_in_video", index)["position_ids"]
        index["audio_in_video_without_model_flag"] = {
            "position_ids_equal_to_flagged": bool(torch.equal(pos_nf, ref_pos)),
            "position_ids_t_row": pos_nf[0, 0].tolist()}
    except Exception as e:  # noqa: BLE001
        index["audio_in_video_without_model_flag"] = {"error": f"{type(e).__name__}: {e}"}

    with open(OUT / "cases" / "index.json", "w") as f:
        json.dump(index, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # ---- transformers 5: model_thinker/ + comparison --------------------------
    if have_tf5:
        report_path = OUT / "cases" / "_tf5_report.json"
        subprocess.run([TF5_PYTHON, str(Path(__file__).resolve()), "--tf5-stage", str(report_path)], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
        report = json.loads(report_path.read_text())
        report_path.unlink()
        # can 4.57.6 read the transformers-5 layout?
        try:
            m5 = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
                THINKER_DIR, dtype=torch.float32, attn_implementation="eager").eval()
            sd5 = m5.state_dict()
            report["transformers_4_57_loads_model_thinker"] = bool(
                sd5.keys() == ref_sd.keys() and all(torch.equal(sd5[k], ref_sd[k]) for k in ref_sd))
        except Exception as e:  # noqa: BLE001
            report["transformers_4_57_loads_model_thinker"] = f"{type(e).__name__}: {e}"
        try:
            p5 = Qwen2_5OmniProcessor.from_pretrained(THINKER_DIR)
            report["transformers_4_57_loads_model_thinker_processor"] = bool(p5.chat_template == QWEN2_5_OMNI_CHAT_TEMPLATE)
        except Exception as e:  # noqa: BLE001
            cause = e.__context__ or e.__cause__
            report["transformers_4_57_loads_model_thinker_processor"] = (
                f"{type(e).__name__}: {str(e).strip()[:120]}" + (f" (raised while handling {type(cause).__name__}: "
                                                                  f"{cause})" if cause is not None else ""))
        index["transformers_5"] = report
    else:
        print(f"NOTE: {TF5_PYTHON} not found: model_thinker/ kept as committed, transformers 5 not compared",
              file=sys.stderr)
        index["transformers_5"] = (dict(old_tf5_report, note=f"{TF5_PYTHON} not found: report carried over from "
                                                             "the previous run, model_thinker/ not regenerated")
                                   if old_tf5_report and "cases" in old_tf5_report
                                   else {"skipped": f"{TF5_PYTHON} not found"})
    if THINKER_DIR.exists():
        index["model_thinker_files"] = sorted(p.name for p in THINKER_DIR.iterdir())
    with open(OUT / "cases" / "index.json", "w") as f:
        json.dump(index, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # ---- summary -----------------------------------------------------------
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, tokenizers {tokenizers.__version__}, "
          f"librosa {librosa.__version__}, soxr {soxr.__version__}")
    print("tokenizer: " + ", ".join(f"{t}={i}" for t, i in ids.items() if i < 514))
    print("case              B   T  tokens             |h| per layer (mean L2)           per-dim std per layer")
    for name, B, T, n_tok, mags, stds in summary:
        print(f"{name:16s} {B:2d} {T:3d}  {str(n_tok):18s} {' '.join(f'{x:7.3f}' for x in mags)}   "
              f"{' '.join(f'{x:6.3f}' for x in stds)}")
    if "eager_vs_sdpa_max_abs_diff_valid_positions" in index:
        print("eager vs sdpa (valid positions):", index["eager_vs_sdpa_max_abs_diff_valid_positions"])
    t5 = index.get("transformers_5", {})
    if "cases" in t5:
        worst = max((r.get("hidden_states_max_abs_diff_valid", float("nan")) for r in t5["cases"].values()),
                    default=float("nan"))
        print(f"transformers {t5['transformers_version']}: max |Δhidden| (valid positions) over cases = {worst:.3g}; "
              f"all input_ids equal: {all(r['input_ids_equal'] for r in t5['cases'].values())}")
    total = 0
    for d in sorted(x for x in OUT.iterdir() if x.is_dir()):
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        total += size
        print(f"  {rel(d):16s} {size / 1024:9.1f} KiB")
    total += sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"total {total / 1024 / 1024:.2f} MiB")
    assert total < 5_000_000, "fixtures exceed 5 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
