#!/usr/bin/env python3
"""Parity fixtures for the Burn reimplementation of Qwen2.5-VL (``geom``).

Builds, deterministically and from nothing but this script:

* a tiny byte-level BPE tokenizer (``tokenizers`` library, trained on a few
  hundred procedurally written English sentences) with the Qwen2 / Qwen2.5-VL
  added tokens and the real Qwen2-VL / Qwen2.5-VL chat template;
* a tiny random-weight ``Qwen2_5_VLForConditionalGeneration`` (float32, eager
  attention) saved as a single ``model.safetensors`` and as a sharded copy;
* a handful of procedurally drawn PNG images and a 4-frame PNG video;
* the reference outputs of Hugging Face ``transformers`` for a set of prompts
  (LCO-Emb style "Summarize ... in one word:" prompts): processor outputs,
  3-D M-RoPE position ids, all hidden states, vision-tower intermediates,
  pooled vectors.

Reference implementation (pinned, see ``scripts/requirements-models.txt``):

* ``transformers==4.57.6`` -- the newest 4.x release on PyPI; it has
  ``Qwen2_5_VLForConditionalGeneration`` and loads both the checkpoint layout it
  writes itself and the flat hub layout of the published Qwen2.5-VL repos (both
  are exercised here). The 5.x line was not used: it reorganised the config,
  checkpoint-loading and processor code;
* model code: ``transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py``
  (``Qwen2_5_VLForConditionalGeneration``, ``Qwen2_5_VLModel.get_rope_index``,
  ``Qwen2_5_VisionTransformerPretrainedModel``), processor code:
  ``transformers/models/qwen2_5_vl/processing_qwen2_5_vl.py``, image and video
  preprocessing: ``transformers/models/qwen2_vl/image_processing_qwen2_vl.py``,
  ``image_processing_qwen2_vl_fast.py``, ``video_processing_qwen2_vl.py``.

Outputs (relative to the repository root, whatever the current directory):
``tests/fixtures/qwen2_5_vl/`` -- see the README.md there (hand-written; this script
only replaces the generated sub-folders and leaves README.md alone).

Run::

    pip install -r scripts/requirements-models.txt
    python scripts/gen_qwen2_5_vl_fixtures.py

torchvision is needed: without it ``AutoProcessor`` silently falls back to
the slow (PIL) image processor and the video processor cannot be built at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

import tokenizers
import transformers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2TokenizerFast,
    Qwen2VLImageProcessor,
)

try:
    from transformers import Qwen2VLVideoProcessor
except ImportError:  # pragma: no cover
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "qwen2_5_vl"

EXPECTED_TRANSFORMERS = "4.57.6"
SEED = 20250611

# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

# Qwen2 pre-tokenisation regex (transformers/models/qwen2/tokenization_qwen2.py,
# identical to the "Split" pre-tokenizer in the hub tokenizer.json files).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Added tokens in the order (and with the special flag) of the real Qwen2.5-VL
# tokenizer.json (ids 151643..151664 there; here they follow the BPE vocab).
ADDED_TOKENS = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]
ADDITIONAL_SPECIAL_TOKENS = [t for t, special in ADDED_TOKENS[1:] if special]

BPE_VOCAB_SIZE = 500  # 256 byte symbols + 244 merges; + 22 added tokens = 522

# The chat template of Qwen/Qwen2-VL-*-Instruct and Qwen/Qwen2.5-VL-*-Instruct
# (chat_template.json on the hub), verbatim.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# LCO-Emb prompts.
TEXT_PROMPT = "{text}\nSummarize the above text in one word:"
IMAGE_PROMPT = "\nSummarize the above image in one word:"

COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "gray", "pink", "brown"]
SHAPES = ["square", "circle", "triangle", "star", "line", "dot", "rectangle", "ring"]
SIZES = ["small", "large", "tiny", "big"]
PLACES = ["on", "above", "below", "next to", "inside", "behind"]
SUBJECTS = ["A man", "A woman", "Two children", "A dog", "The cat", "An old man", "A young girl", "Some people",
            "A group of friends", "The teacher"]
VERBS = ["is playing", "is reading", "is eating", "is holding", "is watching", "is painting", "is carrying",
         "is looking at"]
OBJECTS = ["a guitar", "a book", "an apple", "a red ball", "the sunset", "a small boat", "a blue kite",
           "a cup of tea", "the old map", "a wooden box"]
SCENES = ["in the park", "at the beach", "in a kitchen", "on the street", "near the river", "in the snow",
          "at night", "in a small room"]


def training_sentences() -> list[str]:
    rng = random.Random(SEED)
    out = []
    for _ in range(220):
        out.append(f"a {rng.choice(SIZES)} {rng.choice(COLORS)} {rng.choice(SHAPES)} "
                   f"{rng.choice(PLACES)} a {rng.choice(COLORS)} background")
    for _ in range(220):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(SCENES)}."
        out.append(s)
        r = rng.random()
        if r < 0.33:
            out.append(f"{rng.choice(SUBJECTS)} is not {rng.choice(VERBS)[3:]} anything.")
        elif r < 0.66:
            out.append(f"Someone is outside, and it's {rng.choice(['sunny', 'cold', 'late', 'quiet'])}.")
        else:
            out.append(f"There are {rng.randint(2, 19)} people {rng.choice(SCENES)}!")
    for _ in range(30):
        out.append("You are a helpful assistant.")
        out.append("Summarize the above text in one word:")
        out.append("Summarize the above image in one word:")
        out.append("system user assistant")
    return out


def build_tokenizer(sentences: list[str] | None = None, vocab_size: int = BPE_VOCAB_SIZE) -> Qwen2TokenizerFast:
    """The tiny byte-level BPE tokenizer; by default trained on :func:`training_sentences`."""
    tok = tokenizers.Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_sentences() if sentences is None else sentences, trainer=trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    tok.add_tokens([tokenizers.AddedToken(t, special=s, normalized=False, lstrip=False, rstrip=False,
                                          single_word=False) for t, s in ADDED_TOKENS])
    fast = Qwen2TokenizerFast(
        tokenizer_object=tok,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=ADDITIONAL_SPECIAL_TOKENS,
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        add_prefix_space=False,
        padding_side="right",
    )
    fast.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return fast


# --------------------------------------------------------------------------
# Images / video
# --------------------------------------------------------------------------

# (file name, width, height) -- none is a multiple of 28.
IMAGES = [
    ("img_64x64.png", 64, 64),     # round -> 56x56, 2x2 merged units, one (padded) window
    ("img_120x70.png", 120, 70),   # 70/28 = 2.5: Python round() -> 2 (banker's); 2x4 merged units, 2 windows
    ("img_50x90.png", 50, 90),     # portrait, 3x2 merged units, windows of 4 and 2 units
    ("img_200x150.png", 200, 150),  # exceeds max_pixels -> the floor(.../beta) branch: 112x168
    ("img_20x30.png", 20, 30),     # below min_pixels -> the ceil(...*beta) branch: 84x56
]
VIDEO_FRAMES = 4
VIDEO_W, VIDEO_H = 80, 60

IMAGE_MIN_PIXELS = 56 * 56
IMAGE_MAX_PIXELS = 28 * 28 * 32
VIDEO_MIN_PIXELS = 56 * 56
VIDEO_MAX_PIXELS = 28 * 28 * 16


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
    img = Image.new("RGB", (VIDEO_W, VIDEO_H), (20 + 30 * t, 40, 90))
    d = ImageDraw.Draw(img)
    for x in range(0, VIDEO_W, 10):
        d.line([x, 0, x, VIDEO_H - 1], fill=(60, 60 + 5 * x % 150, 60), width=1)
    cx, cy = 12 + 16 * t, 15 + 8 * t
    d.ellipse([cx - 9, cy - 9, cx + 9, cy + 9], fill=(250, 200 - 40 * t, 30))
    d.rectangle([VIDEO_W - 20 - 5 * t, 40, VIDEO_W - 6 - 5 * t, 54], fill=(30, 220, 120 + 30 * t))
    return img


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


def build_config(tok: Qwen2TokenizerFast, text_overrides: dict | None = None,
                 vision_overrides: dict | None = None) -> Qwen2_5_VLConfig:
    """The tiny config; ``*_overrides`` replace keys of the text / vision sub-configs below."""
    ids = {t: tok.convert_tokens_to_ids(t) for t, _ in ADDED_TOKENS}
    text_config = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        use_sliding_window=False,
        max_window_layers=3,
        attention_dropout=0.0,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    vision_config = dict(
        depth=4,
        hidden_size=32,
        hidden_act="silu",
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        in_chans=3,  # the hub configs carry this (unused) key too
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=56,
        out_hidden_size=64,
        fullatt_block_indexes=[2],
        initializer_range=0.2,
    )
    text_config.update(text_overrides or {})
    vision_config.update(vision_overrides or {})
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )


def hub_style_flat_config(config: Qwen2_5_VLConfig, tok: Qwen2TokenizerFast) -> dict:
    """config.json in the layout of the published Qwen2.5-VL checkpoints (text keys at top level)."""
    t = config.text_config
    v = config.vision_config
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": t.attention_dropout,
        "bos_token_id": t.bos_token_id,
        "eos_token_id": t.eos_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
        "vision_token_id": tok.convert_tokens_to_ids("<|vision_pad|>"),
        "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id,
        "hidden_act": t.hidden_act,
        "hidden_size": t.hidden_size,
        "initializer_range": t.initializer_range,
        "intermediate_size": t.intermediate_size,
        "max_position_embeddings": t.max_position_embeddings,
        "max_window_layers": t.max_window_layers,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": t.num_attention_heads,
        "num_hidden_layers": t.num_hidden_layers,
        "num_key_value_heads": t.num_key_value_heads,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_theta,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": transformers.__version__,
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": v.depth,
            "hidden_act": v.hidden_act,
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "in_chans": 3,
            "out_hidden_size": v.out_hidden_size,
            "patch_size": v.patch_size,
            "spatial_merge_size": v.spatial_merge_size,
            "spatial_patch_size": v.patch_size,
            "window_size": v.window_size,
            "fullatt_block_indexes": list(v.fullatt_block_indexes),
            "tokens_per_second": v.tokens_per_second,
            "temporal_patch_size": v.temporal_patch_size,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": list(t.rope_scaling["mrope_section"])},
        "vocab_size": t.vocab_size,
    }


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = SEED) -> None:
    """Deterministic re-initialisation of *every* parameter.

    The stock init (normal(0, initializer_range) weights, zero biases, unit
    norm weights) would leave all biases at 0 and all RMSNorm gains at 1, so a
    reimplementation that dropped a bias or a norm weight would still match.
    Here: matrices ~ N(0, 1/fan_in) (unit-variance activations), embeddings
    ~ N(0, 1), biases ~ N(0, 0.1^2) (q/k/v biases N(0, 0.5^2): Qwen's are
    large), norm gains ~ 1 + N(0, 0.2^2).
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                or name.endswith("ln_q.weight") or "layernorm" in name:
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        elif name.endswith(".bias"):
            std = 0.5 if any(k in name for k in ("q_proj", "k_proj", "v_proj", ".qkv.")) else 0.1
            p.copy_(std * torch.randn(p.shape, generator=g))
        elif "embed_tokens" in name:
            p.copy_(torch.randn(p.shape, generator=g))
        else:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

TEXTS = [
    "A man is playing a guitar in the park.",
    "Two children are eating an apple at the beach, and it's sunny!",
    "a small red square on a blue background",
]
BATCH_TEXTS = [
    "The cat is watching the sunset.",
    "A group of friends is carrying a wooden box near the river at night, and there are 12 people in the snow.",
]
MIXED_TEXT = ("An old man is reading the old map in a small room, while a young girl is painting a blue kite "
              "on the street in the snow.")


def text_msg(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": TEXT_PROMPT.format(text=text)}]}]


def image_msg(paths: list[str]) -> list[dict]:
    content = [{"type": "image", "image": p} for p in paths]
    content.append({"type": "text", "text": IMAGE_PROMPT})
    return [{"role": "user", "content": content}]


def video_msg(paths: list[str]) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video", "video": paths},
                                         {"type": "text", "text": "\nSummarize the above video in one word:"}]}]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    if transformers.__version__ != EXPECTED_TRANSFORMERS:
        print(f"WARNING: transformers {transformers.__version__} != pinned {EXPECTED_TRANSFORMERS}", file=sys.stderr)
    from transformers.utils import is_torchvision_available
    if not is_torchvision_available():
        raise SystemExit("torchvision is required (fast image processor + video processor)")

    # Remove what this script generates; README.md (hand-written) is kept.
    for sub in ("images", "video", "cases", "model", "model_sharded"):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)
    (OUT / "images").mkdir(parents=True)
    (OUT / "video").mkdir(parents=True)
    (OUT / "cases").mkdir(parents=True)
    model_dir = OUT / "model"
    sharded_dir = OUT / "model_sharded"

    # ---- inputs -----------------------------------------------------------
    image_paths = {}
    for k, (fname, w, h) in enumerate(IMAGES):
        p = OUT / "images" / fname
        draw_image(w, h, k).save(p, format="PNG", optimize=False, compress_level=9)
        image_paths[fname] = p
    frame_paths = []
    for t in range(VIDEO_FRAMES):
        p = OUT / "video" / f"frame_{t:03d}.png"
        draw_frame(t).save(p, format="PNG", optimize=False, compress_level=9)
        frame_paths.append(p)

    # ---- tokenizer / processor ------------------------------------------
    tok = build_tokenizer()
    image_processor = Qwen2VLImageProcessor(
        min_pixels=IMAGE_MIN_PIXELS, max_pixels=IMAGE_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=VIDEO_MIN_PIXELS, max_pixels=VIDEO_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                                    chat_template=QWEN2_VL_CHAT_TEMPLATE)

    # ---- model ------------------------------------------------------------
    config = build_config(tok)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="eager",
                                                           dtype=torch.float32)
    randomize_(model)
    model.tie_weights()
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()

    # model/: modern layout (chat_template.jinja);
    # model_sharded/: legacy hub layout (chat_template.json + chat_template inside tokenizer_config.json)
    model.save_pretrained(model_dir, safe_serialization=True)
    processor.save_pretrained(model_dir)
    model.save_pretrained(sharded_dir, safe_serialization=True, max_shard_size="400KB")
    processor.save_pretrained(sharded_dir, save_jinja_files=False)
    # Make model_sharded/ look like the Qwen/Qwen2.5-VL-*-Instruct hub repos: flat (pre-4.50 style)
    # config.json with rope_scaling.type == "mrope", and no video_preprocessor_config.json (the video
    # processor then reads preprocessor_config.json). transformers 4.57 loads both layouts.
    with open(sharded_dir / "config.json", "w") as f:
        json.dump(hub_style_flat_config(config, tok), f, indent=2, sort_keys=False)
        f.write("\n")
    (sharded_dir / "video_preprocessor_config.json").unlink()

    # ---- reload from disk; everything below uses the reloaded objects ----
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, attn_implementation="eager",
                                                               dtype=torch.float32).eval()
    model_sh = Qwen2_5_VLForConditionalGeneration.from_pretrained(sharded_dir, attn_implementation="eager",
                                                                  dtype=torch.float32).eval()
    for m in (model, model_sh):
        sd = m.state_dict()
        assert sd.keys() == ref.keys()
        for k in ref:
            assert torch.equal(sd[k], ref[k]), k
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rms_norm_eps", "rope_theta", "rope_scaling", "vocab_size",
                "tie_word_embeddings", "sliding_window", "use_sliding_window"):
        a, b = getattr(model.config.text_config, key), getattr(model_sh.config.text_config, key)
        assert a == b, (key, a, b)
    for key in ("depth", "hidden_size", "hidden_act", "intermediate_size", "num_heads", "in_channels",
                "patch_size", "spatial_merge_size", "temporal_patch_size", "tokens_per_second", "window_size",
                "out_hidden_size", "fullatt_block_indexes"):
        a, b = getattr(model.config.vision_config, key), getattr(model_sh.config.vision_config, key)
        assert a == b, (key, a, b)
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        assert getattr(model.config, key) == getattr(model_sh.config, key), key
    processor = AutoProcessor.from_pretrained(model_dir)
    processor_legacy = AutoProcessor.from_pretrained(sharded_dir)
    assert processor.chat_template == QWEN2_VL_CHAT_TEMPLATE
    assert processor_legacy.chat_template == QWEN2_VL_CHAT_TEMPLATE
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    slow_image_processor = Qwen2VLImageProcessor.from_pretrained(model_dir)
    print(f"processor: {type(processor).__name__}, image: {type(processor.image_processor).__name__} "
          f"(slow reference: {type(slow_image_processor).__name__}), video: {type(processor.video_processor).__name__}")

    visual = model.model.visual
    n_layers = model.config.text_config.num_hidden_layers

    # Vision-tower hooks (called once per get_image_features / get_video_features).
    captured: list[dict] = []

    def hook_visual_pre(_mod, args, kwargs):
        captured.append({"grid_thw": kwargs["grid_thw"].clone(), "blocks": []})

    def hook_patch_embed(_mod, _args, out):
        captured[-1]["patch_embed"] = out.detach().clone()

    def hook_block(_mod, _args, out):
        captured[-1]["blocks"].append(out.detach().clone())

    def hook_merger(_mod, _args, out):
        captured[-1]["merger_window_order"] = out.detach().clone()

    def hook_visual(_mod, _args, out):
        captured[-1]["out"] = out.detach().clone()

    visual.register_forward_pre_hook(hook_visual_pre, with_kwargs=True)
    visual.patch_embed.register_forward_hook(hook_patch_embed)
    for blk in visual.blocks:
        blk.register_forward_hook(hook_block)
    visual.merger.register_forward_hook(hook_merger)
    visual.register_forward_hook(hook_visual)

    img = {fname: Image.open(p).convert("RGB") for fname, p in image_paths.items()}
    frames = [Image.open(p).convert("RGB") for p in frame_paths]
    rel = lambda p: str(Path(p).relative_to(OUT))  # noqa: E731

    cases = []
    cases += [dict(name=f"text_{i}", kind="text", messages=[text_msg(t)], texts=[t]) for i, t in enumerate(TEXTS)]
    cases += [
        dict(name="image_0", kind="image", messages=[image_msg(["images/img_64x64.png"])],
             images=["img_64x64.png"]),
        dict(name="image_1", kind="image", messages=[image_msg(["images/img_120x70.png"])],
             images=["img_120x70.png"]),
        dict(name="image_2", kind="image", messages=[image_msg(["images/img_200x150.png"])],
             images=["img_200x150.png"]),
        dict(name="image_3", kind="image", messages=[image_msg(["images/img_20x30.png"])],
             images=["img_20x30.png"]),
        dict(name="two_images", kind="image",
             messages=[image_msg(["images/img_50x90.png", "images/img_64x64.png"])],
             images=["img_50x90.png", "img_64x64.png"]),
        dict(name="video_0", kind="video", messages=[video_msg([rel(p) for p in frame_paths])], fps=None),
        dict(name="video_1", kind="video", messages=[video_msg([rel(p) for p in frame_paths])], fps=3.0),
        dict(name="batch_text", kind="batch", messages=[text_msg(t) for t in BATCH_TEXTS], texts=BATCH_TEXTS),
        dict(name="batch_mixed", kind="batch",
             messages=[image_msg(["images/img_120x70.png"]), text_msg(MIXED_TEXT)],
             images=["img_120x70.png"], texts=[None, MIXED_TEXT]),
        # every modality in one left-padded batch: a text, an image, a video
        dict(name="batch_all", kind="batch",
             messages=[text_msg(MIXED_TEXT), image_msg(["images/img_120x70.png"]),
                       video_msg([rel(p) for p in frame_paths])],
             images=["img_120x70.png"], texts=[MIXED_TEXT, None, None], with_video=True, fps=None),
    ]

    index = {
        "generator": "scripts/gen_qwen2_5_vl_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "tokenizers_version": tokenizers.__version__,
        "model_dir": "model",
        "sharded_model_dir": "model_sharded",
        "chat_template": QWEN2_VL_CHAT_TEMPLATE,
        "text_prompt": TEXT_PROMPT,
        "image_prompt": IMAGE_PROMPT,
        "processor": {
            "image_processor_class": type(processor.image_processor).__name__,
            "video_processor_class": type(processor.video_processor).__name__,
            "image_min_pixels": IMAGE_MIN_PIXELS, "image_max_pixels": IMAGE_MAX_PIXELS,
            "video_min_pixels": VIDEO_MIN_PIXELS, "video_max_pixels": VIDEO_MAX_PIXELS,
            "padding_side": "left",
        },
        "images": {f: {"path": rel(p), "width": w, "height": h, "sha256": sha256(p)}
                   for (f, w, h), p in zip(IMAGES, image_paths.values())},
        "video": {"frames": [rel(p) for p in frame_paths], "width": VIDEO_W, "height": VIDEO_H,
                  "sha256": [sha256(p) for p in frame_paths]},
        "tokenizer_checks": [],
        "cases": [],
    }

    # tokenizer round-trip checks (no chat template)
    for s in ["Hello world!", "A man's dog isn't 42 years old.\n\nTabs\tand  spaces", "naïve café — ü",
              "<|im_start|>user\nhi<|im_end|>"]:
        enc = processor.tokenizer(s)["input_ids"]
        index["tokenizer_checks"].append({"text": s, "input_ids": enc,
                                          "decoded": processor.tokenizer.decode(enc, skip_special_tokens=False)})

    summary = []
    for case in cases:
        captured.clear()
        prompts = [processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                   for m in case["messages"]]
        kwargs = dict(text=prompts, return_tensors="pt", padding=True, padding_side="left")
        images = [img[f] for f in case.get("images", [])]
        if images:
            kwargs["images"] = images
        if case["kind"] == "video" or case.get("with_video"):
            kwargs["videos"] = [frames]
            if case["fps"] is not None:
                kwargs["fps"] = case["fps"]
        inputs = processor(**kwargs)
        inputs = {k: v for k, v in inputs.items()}
        # the legacy-layout copy (flat config, chat_template.json, no video_preprocessor_config.json)
        # must give bit-identical processor outputs and hidden states
        prompts_legacy = [processor_legacy.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                          for m in case["messages"]]
        assert prompts_legacy == prompts
        inputs_legacy = processor_legacy(**kwargs)
        assert inputs_legacy.keys() == inputs.keys()
        for k in inputs:
            assert torch.equal(torch.as_tensor(inputs_legacy[k]), torch.as_tensor(inputs[k])), k
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        B, T = input_ids.shape

        with torch.no_grad():
            position_ids, rope_deltas = model.model.get_rope_index(
                input_ids, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                second_per_grid_ts=inputs.get("second_per_grid_ts"), attention_mask=attention_mask)
            out = model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
            out_sh = model_sh(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)  # no hooks
        for a, b in zip(out.hidden_states, out_sh.hidden_states):
            assert torch.equal(a, b), "sharded / flat-config copy differs"
        hs = torch.stack(out.hidden_states, dim=0)  # [L+1, B, T, H]
        assert hs.shape == (n_layers + 1, B, T, 64), hs.shape
        assert torch.equal(out.rope_deltas, rope_deltas)
        mask = attention_mask.to(hs.dtype)
        pooled_mean = (hs * mask[None, :, :, None]).sum(2) / mask.sum(1)[None, :, None]
        pooled_last = hs[:, :, -1, :]

        tensors = {
            "input_ids": input_ids.to(torch.int64),
            "attention_mask": attention_mask.to(torch.int64),
            "position_ids": position_ids.to(torch.int64),
            "rope_deltas": rope_deltas.to(torch.int64).reshape(B, 1),
            "hidden_states": hs.float(),
            "pooled_last_token": pooled_last.float(),
            "pooled_mean": pooled_mean.float(),
            "logits_last": out.logits[:, -1, :].float(),
        }
        if "pixel_values" in inputs:
            tensors["pixel_values"] = inputs["pixel_values"].float()
            tensors["image_grid_thw"] = inputs["image_grid_thw"].to(torch.int64)
            slow = slow_image_processor(images=images, return_tensors="pt")
            assert torch.equal(slow["image_grid_thw"], inputs["image_grid_thw"])
            tensors["pixel_values_slow"] = slow["pixel_values"].float()
            case["pixel_values_fast_vs_slow_max_abs_diff"] = float(
                (slow["pixel_values"] - inputs["pixel_values"]).abs().max())
        if "pixel_values_videos" in inputs:
            tensors["pixel_values_videos"] = inputs["pixel_values_videos"].float()
            tensors["video_grid_thw"] = inputs["video_grid_thw"].to(torch.int64)
            tensors["second_per_grid_ts"] = torch.as_tensor(inputs["second_per_grid_ts"], dtype=torch.float32)

        # vision tower intermediates
        # one vision call per modality, images first; the vision.* keys describe the first
        assert len(captured) == ("pixel_values" in inputs) + ("pixel_values_videos" in inputs)
        if captured:
            c = captured[0]
            grid = c["grid_thw"]
            window_index, cu_window_seqlens = visual.get_window_index(grid)
            cu_window = torch.unique_consecutive(torch.tensor(cu_window_seqlens, dtype=torch.int64))
            cu_full = torch.nn.functional.pad(
                torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0]).cumsum(0), (1, 0)).to(torch.int64)
            tensors["vision.rot_pos_emb"] = visual.rot_pos_emb(grid).float()
            tensors["vision.window_index"] = window_index.to(torch.int64)
            tensors["vision.cu_window_seqlens"] = cu_window
            tensors["vision.cu_seqlens"] = cu_full
            tensors["vision.patch_embed"] = c["patch_embed"].float()
            for i, b in enumerate(c["blocks"]):
                tensors[f"vision.block_{i}"] = b.float()
            tensors["vision.merger_window_order"] = c["merger_window_order"].float()
            tensors["vision.output"] = c["out"].float()
            # the merged embeddings must be exactly what was scattered into the placeholder positions
            key = "image" if "pixel_values" in inputs else "video"
            tok_id = model.config.image_token_id if key == "image" else model.config.video_token_id
            sel = input_ids == tok_id
            assert torch.equal(hs[0][sel], c["out"]), "vision output != scattered embeddings"

        tensors = {k: v.contiguous() for k, v in tensors.items()}
        case_file = OUT / "cases" / f"{case['name']}.safetensors"
        save_file(tensors, str(case_file), metadata={"case": case["name"]})

        n_tokens = attention_mask.sum(1).tolist()
        entry = {
            "name": case["name"],
            "kind": case["kind"],
            "file": rel(case_file),
            "batch_size": B,
            "seq_len": T,
            "num_tokens": n_tokens,
            "prompts": prompts,
            "messages": case["messages"],
            "texts": case.get("texts"),
            "images": [rel(image_paths[f]) for f in case.get("images", [])],
            "video_frames": [rel(p) for p in frame_paths]
            if case["kind"] == "video" or case.get("with_video") else [],
            "processor_kwargs": {"padding": True, "padding_side": "left",
                                 **({"fps": case["fps"]} if case.get("fps") is not None else {})},
            "keys": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                     for k, v in sorted(tensors.items())},
        }
        if "pixel_values_fast_vs_slow_max_abs_diff" in case:
            entry["pixel_values_fast_vs_slow_max_abs_diff"] = case["pixel_values_fast_vs_slow_max_abs_diff"]
        if "second_per_grid_ts" in tensors:
            entry["second_per_grid_ts"] = tensors["second_per_grid_ts"].tolist()
        index["cases"].append(entry)

        # diagnostics
        m = attention_mask.bool()
        mags = [float(h[m].norm(dim=-1).mean()) for h in hs]
        stds = [float(h[m].std(dim=0).mean()) for h in hs]
        summary.append((case["name"], B, T, n_tokens, mags, stds,
                        tensors.get("image_grid_thw", tensors.get("video_grid_thw"))))

        # eager vs sdpa on the valid positions (information only)
        if case["name"] in ("batch_mixed", "video_0"):
            model.set_attn_implementation("sdpa")
            with torch.no_grad():
                out2 = model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
            model.set_attn_implementation("eager")
            d = max(float((a[m] - b[m]).abs().max()) for a, b in zip(out.hidden_states, out2.hidden_states))
            index.setdefault("eager_vs_sdpa_max_abs_diff_valid_positions", {})[case["name"]] = d

    with open(OUT / "cases" / "index.json", "w") as f:
        json.dump(index, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # self-check: reload one case file
    t0 = load_file(str(OUT / "cases" / "batch_mixed.safetensors"))
    assert t0["hidden_states"].shape[0] == n_layers + 1

    # ---- summary -----------------------------------------------------------
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, tokenizers {tokenizers.__version__}")
    print(f"tokenizer: {len(tok)} tokens; ids: " + ", ".join(
        f"{t}={tok.convert_tokens_to_ids(t)}" for t in
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
         "<|video_pad|>"]))
    print("case            B   T  tokens      grid_thw                 |h| per layer (mean L2 norm)      "
          "per-dim std per layer")
    for name, B, T, n_tok, mags, stds, grid in summary:
        g = "" if grid is None else str(grid.tolist())
        print(f"{name:14s} {B:2d} {T:3d}  {str(n_tok):10s}  {g:24s} "
              f"{' '.join(f'{x:7.3f}' for x in mags)}   {' '.join(f'{x:6.3f}' for x in stds)}")
    if "eager_vs_sdpa_max_abs_diff_valid_positions" in index:
        print("eager vs sdpa (valid positions):", index["eager_vs_sdpa_max_abs_diff_valid_positions"])
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
    for d in sorted(x for x in OUT.iterdir() if x.is_dir()):
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        print(f"  {rel(d):16s} {size / 1024:9.1f} KiB")
    print(f"total {total / 1024 / 1024:.2f} MiB")
    assert total < 10 * 1024 * 1024, "fixtures exceed 10 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
