#!/usr/bin/env python3
"""The embedded demo of ``geom`` (``assets/demo/``), built from nothing but this script.

A tiny "shapes world" and a tiny random-weight Qwen2.5-VL on which geom extracts
per-layer hidden states and computes anisotropy and mutual-kNN alignment
(LCO-Emb, arXiv 2510.11693) with no download:

* ``images/NNNN.png`` + ``pairs.jsonl``: 256 procedurally drawn 84x84 images
  (6x6 patches of 14 px; 1-3 shapes on a plain background) with captions that
  describe them truthfully;
* ``nli.jsonl``: NLI-style training triplets (sentence-transformers all-nli
  fields ``anchor`` / ``positive`` / ``negative``; some rows without
  ``negative``) about the same world, for a text-only contrastive LoRA;
* ``before/``: a tiny ``Qwen2_5_VLForConditionalGeneration`` checkpoint
  (float32 ``model.safetensors``, tokenizer, processor configs) with RANDOM
  weights (seed 0); the tokenizer is the byte-level BPE recipe of
  ``gen_qwen2_5_vl_fixtures.py`` trained on the demo's own sentences;
* ``after/`` (only with ``--random-after``): the same architecture with seed-1
  random weights, a placeholder. The committed ``after/`` is geom's own
  text-only contrastive LoRA run on ``nli.jsonl``, merged (``make demo-after``).

The tokenizer, config, init and chat messages are those of
``scripts/gen_qwen2_5_vl_fixtures.py`` (imported, not copied). The output is
byte-for-byte reproducible with the pinned environment
(``scripts/requirements-models.txt``). The script ends with a check of the
geometry in ``transformers``: per-layer anisotropy (mean pairwise cosine of
last-token states) of the first 64 captions and images.

Run (from any directory)::

    python3 scripts/make_demo_assets.py [--random-after]

It replaces ``images/``, ``pairs.jsonl``, ``nli.jsonl``, ``before/`` (and
``after/`` with the flag) under ``assets/demo/``; nothing else there
(README.md, other files) is touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import gen_qwen2_5_vl_fixtures as fx  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import (  # noqa: E402
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
)

OUT = fx.REPO_ROOT / "assets" / "demo"

N_PAIRS = 256
N_TRIPLETS = 600
N_NLI_PAIRS = 100  # rows with anchor and positive only
N_CHECK = 64  # pairs embedded by the final geometry check
SIZE = 84  # image edge: 84 = 3 * 28, kept as is by the processor (6x6 patches of 14 px)

SEED_IMAGES = 20251013
SEED_NLI = 20251014
SEED_BEFORE = 0
SEED_AFTER = 1

BPE_VOCAB_SIZE = 614  # 256 byte symbols + 358 merges (every merge the corpus allows); + 22 added tokens = 636
IMAGE_MIN_PIXELS = 56 * 56  # 3136
IMAGE_MAX_PIXELS = 112 * 112  # 12544

TEXT_OVERRIDES = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=8,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_window_layers=8,
    rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim / 2 = 8
    tie_word_embeddings=True,
)
VISION_OVERRIDES = dict(
    depth=4,
    hidden_size=32,
    num_heads=2,
    intermediate_size=64,
    out_hidden_size=64,
    patch_size=14,
    spatial_merge_size=2,
    window_size=56,
    fullatt_block_indexes=[1, 3],
)

# Init: fx.randomize_ (unit-variance matrices, N(0, 0.5^2) q/k/v biases, ...), then, in the decoder,
# every linear weight times DECODER_GAIN (sharper attention, content-dependent last token: anisotropy
# falls from 1.0 at the embeddings) and layer i's v_proj bias times 1 + (V_BIAS_LAST - 1) * (i / (L - 1))^2
# (a shared direction added by attention that grows with depth: anisotropy rises again in the late
# layers, the U shape of real LLMs). Without these the last-token states stay at cosine ~0.95-0.99.
# (Checked on seeds 0, 1 and 2: the same shape for each.)
DECODER_GAIN = 2.0
V_BIAS_LAST = 16.0

PROMPT_STRINGS = [
    "You are a helpful assistant.",
    "Summarize the above text in one word:",
    "Summarize the above image in one word:",
    "system user assistant",
]

# --------------------------------------------------------------------------
# The shapes world
# --------------------------------------------------------------------------

COLORS = {
    "red": (220, 30, 35),
    "green": (30, 150, 60),
    "blue": (35, 75, 215),
    "yellow": (245, 215, 35),
    "orange": (245, 135, 20),
    "purple": (135, 50, 175),
    "pink": (245, 150, 190),
    "brown": (125, 80, 40),
    "gray": (128, 128, 128),
    "cyan": (0, 185, 200),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon", "pentagon", "oval",
          "heart", "crescent"]
PLURAL = {s: (s + "es" if s.endswith("s") else s + "s") for s in SHAPES}
NUMBER = {1: "one", 2: "two", 3: "three"}
# single-shape positions: name -> (horizontal, vertical), each in {-1, 0, 1}
POSITIONS = {
    "centre": (0, 0), "left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1),
    "top left": (-1, -1), "top right": (1, -1), "bottom left": (-1, 1), "bottom right": (1, 1),
}


def position_phrases(pos: str) -> list[str]:
    if pos == "centre":
        return ["in the centre", "in the middle"]
    if pos in ("left", "right"):
        return [f"on the {pos}", f"on the {pos} side"]
    if pos in ("top", "bottom"):
        return [f"at the {pos}"]
    return [f"at the {pos}", f"in the {pos} corner"]


def position_components(pos: str) -> set[str]:
    return {"centre"} if pos == "centre" else set(pos.split())


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def sample_scene(rng: random.Random) -> dict:
    """A scene: background colour and 1-3 shapes (kind, colour, size, centre, radius)."""
    bg = rng.choice(COLOR_NAMES)
    others = [c for c in COLOR_NAMES if c != bg]
    u = rng.random()
    if u < 0.4:
        mode, n = "single", 1
    elif u < 0.65:
        mode, n = "same", rng.choice([2, 3])
    else:
        mode, n = "mixed", rng.choice([2, 3])
    shapes = []
    if mode == "single":
        pos = rng.choice(list(POSITIONS))
        size = rng.choice(["small", "large"])
        r = rng.randint(7, 9) if size == "small" else rng.randint(17, 21)
        hx, vy = POSITIONS[pos]
        lo, hi = 3 + r, SIZE - 4 - r  # lowest / highest centre coordinate
        def coord(d):
            if d == 0:
                return SIZE // 2 + rng.randint(-2, 2)
            c = lo + rng.randint(0, 3)
            return c if d < 0 else SIZE - 1 - c
        shapes.append(dict(kind=rng.choice(SHAPES), color=rng.choice(others), size=size,
                           cx=coord(hx), cy=coord(vy), r=r, pos=pos))
    else:
        quads = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], n)
        if mode == "same":
            kind, color, size = rng.choice(SHAPES), rng.choice(others), rng.choice(["small", "large"])
            specs = [(kind, color, size)] * n
        else:
            with_size = rng.random() < 0.5
            specs = []
            while len(specs) < n:
                s = (rng.choice(SHAPES), rng.choice(others), rng.choice(["small", "large"]))
                if all((s[0], s[1]) != (t[0], t[1]) for t in specs):
                    specs.append(s)
        for (qx, qy), (kind, color, size) in zip(quads, specs):
            r = rng.randint(6, 8) if size == "small" else rng.randint(14, 17)
            shapes.append(dict(kind=kind, color=color, size=size, r=r, pos=None,
                               cx=21 + 42 * qx + rng.randint(-3, 3), cy=21 + 42 * qy + rng.randint(-3, 3)))
    scene = dict(bg=bg, mode=mode, shapes=shapes)
    if mode == "mixed":
        scene["with_size"] = with_size
    return scene


def draw_scene(scene: dict) -> Image.Image:
    """A palette PNG image of the scene (flat colours, no anti-aliasing)."""
    palette_names = COLOR_NAMES
    img = Image.new("P", (SIZE, SIZE), palette_names.index(scene["bg"]))
    img.putpalette([v for name in palette_names for v in COLORS[name]])
    d = ImageDraw.Draw(img)
    # crescents first (left to right): the background-coloured disc that cuts one may reach into the
    # neighbouring quadrant, and every shape drawn after it paints over that
    for s in sorted(scene["shapes"], key=lambda s: (s["kind"] != "crescent", s["cx"], s["cy"])):
        fill = palette_names.index(s["color"])
        cx, cy, r, kind = s["cx"], s["cy"], s["r"], s["kind"]
        if kind == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif kind == "ring":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, round(r / 3)))
        elif kind == "square":
            h = round(0.85 * r)
            d.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
        elif kind == "triangle":
            d.polygon([(cx, cy - r), (cx + round(0.95 * r), cy + round(0.8 * r)),
                       (cx - round(0.95 * r), cy + round(0.8 * r))], fill=fill)
        elif kind == "diamond":
            d.polygon([(cx, cy - r), (cx + round(0.75 * r), cy), (cx, cy + r), (cx - round(0.75 * r), cy)], fill=fill)
        elif kind == "cross":
            t = max(2, round(0.3 * r))
            d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
            d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)
        elif kind in ("hexagon", "pentagon"):
            k = 6 if kind == "hexagon" else 5
            d.polygon([(round(cx + r * math.cos(-math.pi / 2 + 2 * math.pi * i / k)),
                        round(cy + r * math.sin(-math.pi / 2 + 2 * math.pi * i / k))) for i in range(k)], fill=fill)
        elif kind == "oval":
            d.ellipse([cx - r, cy - round(0.55 * r), cx + r, cy + round(0.55 * r)], fill=fill)
        elif kind == "heart":
            h = round(r / 2)
            d.ellipse([cx - r, cy - r + 2, cx, cy - r + 2 + r], fill=fill)
            d.ellipse([cx, cy - r + 2, cx + r, cy - r + 2 + r], fill=fill)
            d.polygon([(cx - r + 1, cy - h + 4), (cx + r - 1, cy - h + 4), (cx, cy + r)], fill=fill)
        elif kind == "crescent":
            # a disc, then a background-coloured disc shifted to the right
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            o = round(0.45 * r)
            d.ellipse([cx - r + o, cy - r, cx + r + o, cy + r], fill=palette_names.index(scene["bg"]))
        elif kind == "star":
            pts = []
            for i in range(10):
                rad = r if i % 2 == 0 else 0.42 * r
                a = -math.pi / 2 + i * math.pi / 5
                pts.append((round(cx + rad * math.cos(a)), round(cy + rad * math.sin(a))))
            d.polygon(pts, fill=fill)
        else:  # pragma: no cover
            raise ValueError(kind)
    return img


def noun_phrase(s: dict, with_size: bool = True) -> str:
    words = ([s["size"]] if with_size else []) + [s["color"], s["kind"]]
    return f"{article(words[0])} {' '.join(words)}"


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe(scene: dict, rng: random.Random) -> str:
    """A complete, true description (lower case, no final full stop), one of a few templates."""
    bg = scene["bg"]
    shapes = scene["shapes"]
    t = rng.randrange(3)
    if scene["mode"] == "single":
        s = shapes[0]
        np_, where = noun_phrase(s), rng.choice(position_phrases(s["pos"]))
        return [f"{np_} {where} of {article(bg)} {bg} background",
                f"{article(bg)} {bg} background with {np_} {where}",
                f"{np_} on {article(bg)} {bg} background, {where}"][t]
    if scene["mode"] == "same":
        s, n = shapes[0], NUMBER[len(shapes)]
        group = f"{n} {s['size']} {s['color']} {PLURAL[s['kind']]}"
        return [f"{group} on {article(bg)} {bg} background",
                f"{article(bg)} {bg} background with {group}",
                f"there are {group} on {article(bg)} {bg} background"][t]
    items = join_list([noun_phrase(s, scene["with_size"]) for s in shapes])
    return [f"{items} on {article(bg)} {bg} background",
            f"{article(bg)} {bg} background with {items}",
            f"{NUMBER[len(shapes)]} shapes on {article(bg)} {bg} background: {items}"][t]


# --------------------------------------------------------------------------
# NLI triplets
# --------------------------------------------------------------------------

ANCHOR_PREFIXES = ["This picture shows", "In this image we see", "The image shows", "Here we have",
                   "This drawing shows", "This illustration depicts", "The scene displays"]
PARAPHRASE_PREFIXES = ["The picture contains", "This image has", "We can see", "The drawing is of",
                       "It is a picture of", "Someone has drawn", "The image consists of", "The picture depicts"]


def sentence(prefix: str, desc: str) -> str:
    return f"{prefix} {desc.removeprefix('there are ')}."


HALF = {"top": "upper", "bottom": "lower", "left": "left", "right": "right"}
SIZE_SYNONYM = {"small": "little", "large": "big"}


def true_facts(scene: dict, rng: random.Random) -> list[str]:
    bg, shapes, n = scene["bg"], scene["shapes"], len(scene["shapes"])
    colors = {s["color"] for s in shapes}
    facts = [f"The background is {bg}.",
             "There is one shape in the picture." if n == 1 else f"There are {NUMBER[n]} shapes in the picture."]
    absent = [c for c in COLOR_NAMES if c not in colors and c != bg]
    facts += [f"There is nothing {rng.choice(absent)} in the picture.",
              f"None of the shapes is {rng.choice(absent)}.",
              f"The picture has {article(bg)} {bg} background.",
              f"The picture is mostly {bg}.",
              ("The shape is" if n == 1 else "The shapes are") + f" drawn on {article(bg)} {bg} background."]
    for s in shapes:
        facts += [f"There is {article(s['color'])} {s['color']} {s['kind']} in the picture.",
                  f"Something {s['color']} is on {article(bg)} {bg} background.",
                  f"At least one shape is {s['color']}.",
                  f"The picture contains {article(s['kind'])} {s['kind']}."]
    if scene["mode"] == "same":
        s = shapes[0]
        facts += [f"There are {NUMBER[n]} {PLURAL[s['kind']]}.", f"All the shapes are {s['color']}.",
                  f"All the {PLURAL[s['kind']]} are {s['size']}.", f"Every shape is {article(s['kind'])} {s['kind']}.",
                  f"The {PLURAL[s['kind']]} all have the same colour.",
                  f"The {PLURAL[s['kind']]} all have the same size.",
                  f"Exactly {NUMBER[n]} {s['color']} shapes are visible."]
    if scene["mode"] == "mixed":
        facts += ["The shapes are not all the same.", f"Exactly {NUMBER[n]} shapes are visible."]
    if scene["mode"] == "single":
        s = shapes[0]
        comps = position_components(s["pos"])
        for comp in sorted(comps) + [s["pos"]]:
            verb = rng.choice(["is", "is located", "sits", "lies", "appears"])
            facts.append(f"The {s['kind']} {verb} {rng.choice(position_phrases(comp))}.")
        for comp in sorted(comps & set(HALF)):
            facts.append(f"The {s['kind']} is in the {HALF[comp]} half of the picture.")
        if s["pos"] == "centre":
            facts.append(f"The {s['kind']} is near the middle of the picture.")
        other = rng.choice([c for c in COLOR_NAMES if c != s["color"]])
        facts += [f"The {s['kind']} is {s['size']}.", f"The {s['color']} shape is {s['size']}.",
                  f"The {s['kind']} is {SIZE_SYNONYM[s['size']]}.", f"The {s['kind']} is {s['color']}.",
                  f"The {s['kind']} is not {other}.", f"There is only one {s['kind']}."]
    return facts


def false_facts(scene: dict, rng: random.Random) -> list[str]:
    bg, shapes, n = scene["bg"], scene["shapes"], len(scene["shapes"])
    present = {(s["kind"], s["color"]) for s in shapes}
    facts = [f"The background is {rng.choice([c for c in COLOR_NAMES if c != bg])}.",
             f"The picture is mostly {rng.choice([c for c in COLOR_NAMES if c != bg])}.",
             "There are no shapes in the picture.", "The picture is empty."]
    m = rng.choice([k for k in (1, 2, 3, 4) if k != n])
    facts.append("There is only one shape in the picture." if m == 1
                 else f"There are {NUMBER.get(m, 'four')} shapes in the picture.")
    s = rng.choice(shapes)
    facts.append(f"There is no {s['color']} {s['kind']} in the picture.")
    while True:
        k, c = rng.choice(SHAPES), rng.choice([c for c in COLOR_NAMES if c != bg])
        if (k, c) not in present:
            break
    facts.append(f"There is {article(c)} {c} {k} in the picture.")
    other = rng.choice([c for c in COLOR_NAMES if c != s["color"] and c != bg])
    if scene["mode"] in ("same", "single"):
        facts += [f"The {s['kind']} is not {s['color']}.", f"Every shape is {other}."]
    if scene["mode"] == "same":
        facts += [f"There is only one {s['kind']}.", f"The {PLURAL[s['kind']]} have different colours.",
                  f"The {PLURAL[s['kind']]} have different sizes."]
    if scene["mode"] == "mixed":
        facts.append(f"Every shape is {article(s['kind'])} {s['kind']}.")
    if scene["mode"] == "single":
        comps = position_components(s["pos"])
        wrong = [p for p in POSITIONS if not position_components(p) <= comps and not comps <= position_components(p)]
        facts.append(f"The {s['kind']} is {rng.choice(position_phrases(rng.choice(wrong)))}.")
        opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
        for comp in sorted(comps & set(HALF)):
            facts.append(f"The {s['kind']} is in the {HALF[opposite[comp]]} half of the picture.")
        flip = "large" if s["size"] == "small" else "small"
        facts += [f"The {s['kind']} is {flip}.", f"The {s['kind']} is {SIZE_SYNONYM[flip]}.",
                  f"There are two {PLURAL[s['kind']]}."]
    return facts


def perturb(scene: dict, rng: random.Random) -> dict:
    """A scene whose complete description contradicts that of ``scene`` (one attribute changed)."""
    new = json.loads(json.dumps(scene))
    shapes = new["shapes"]
    options = ["bg", "color", "kind"]
    if scene["mode"] == "single":
        options += ["pos", "size"]
    if scene["mode"] == "same":
        options += ["count", "size"]
    what = rng.choice(options)
    if what == "bg":
        used = {s["color"] for s in shapes} | {new["bg"]}
        new["bg"] = rng.choice([c for c in COLOR_NAMES if c not in used])
    elif what in ("color", "kind"):
        targets = shapes if scene["mode"] == "same" else [rng.choice(shapes)]
        present = {(s["kind"], s["color"]) for s in shapes}
        pool = ([c for c in COLOR_NAMES if c != new["bg"] and c != targets[0]["color"]] if what == "color"
                else [k for k in SHAPES if k != targets[0]["kind"]])
        while True:
            v = rng.choice(pool)
            key = (targets[0]["kind"], v) if what == "color" else (v, targets[0]["color"])
            if scene["mode"] != "mixed" or key not in present:
                break
        for t in targets:
            t[what] = v
    elif what == "pos":
        comps = position_components(shapes[0]["pos"])
        shapes[0]["pos"] = rng.choice([p for p in POSITIONS if not position_components(p) <= comps
                                       and not comps <= position_components(p)])
    elif what == "size":
        for t in shapes:
            t["size"] = "large" if t["size"] == "small" else "small"
    else:  # count
        k = rng.choice([c for c in (1, 2, 3) if c != len(shapes)])
        if k == 1:
            new["mode"] = "single"
            new["shapes"] = [dict(shapes[0], pos=rng.choice(list(POSITIONS)))]
        else:
            new["shapes"] = [dict(shapes[0]) for _ in range(k)]
    return new


def nli_rows(captions: set[str]) -> list[dict]:
    rng = random.Random(SEED_NLI)
    rows = []
    n_total = N_TRIPLETS + N_NLI_PAIRS
    while len(rows) < n_total:
        scene = sample_scene(rng)
        desc = describe(scene, rng)
        anchor = sentence(rng.choice(ANCHOR_PREFIXES), desc)
        if rng.random() < 0.35:
            # paraphrase: another template, another lead-in
            other = desc
            for _ in range(10):
                other = describe(scene, rng)
                if other != desc:
                    break
            positive = sentence(rng.choice(PARAPHRASE_PREFIXES), other)
        else:
            positive = rng.choice(true_facts(scene, rng))
        row = {"anchor": anchor, "positive": positive}
        if len(rows) < N_TRIPLETS:
            if rng.random() < 0.4:
                row["negative"] = sentence(rng.choice(PARAPHRASE_PREFIXES + ANCHOR_PREFIXES),
                                           describe(perturb(scene, rng), rng))
            else:
                row["negative"] = rng.choice(false_facts(scene, rng))
        assert not set(row.values()) & captions
        rows.append(row)
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------


def tokenizer_corpus(captions: list[str], nli: list[dict]) -> list[str]:
    out = list(captions)
    for row in nli:
        out += list(row.values())
    for _ in range(30):
        out += PROMPT_STRINGS
    return out


def word_token_counts(tok, sentences: list[str]) -> dict[str, int]:
    """Number of BPE tokens of every pre-tokenized word (with its leading space) of ``sentences``."""
    backend = tok.backend_tokenizer
    counts = {}
    for s in sentences:
        for piece, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(s)):
            if piece not in counts:
                counts[piece] = len(backend.model.tokenize(piece))
    return counts


def build_processor(tok) -> Qwen2_5_VLProcessor:
    image_processor = Qwen2VLImageProcessor(
        min_pixels=IMAGE_MIN_PIXELS, max_pixels=IMAGE_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = fx.Qwen2VLVideoProcessor(
        min_pixels=IMAGE_MIN_PIXELS, max_pixels=IMAGE_MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                               chat_template=fx.QWEN2_VL_CHAT_TEMPLATE)


@torch.no_grad()
def shape_init_(model: Qwen2_5_VLForConditionalGeneration) -> None:
    """The decoder rescaling described at DECODER_GAIN / V_BIAS_LAST (after fx.randomize_)."""
    layers = model.model.language_model.layers
    for i, layer in enumerate(layers):
        a, mlp = layer.self_attn, layer.mlp
        for lin in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            lin.weight.mul_(DECODER_GAIN)
        a.v_proj.bias.mul_(1.0 + (V_BIAS_LAST - 1.0) * (i / (len(layers) - 1)) ** 2)


def write_checkpoint(out_dir: Path, tok, processor, seed: int) -> None:
    config = fx.build_config(tok, text_overrides=TEXT_OVERRIDES, vision_overrides=VISION_OVERRIDES)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="eager",
                                                           dtype=torch.float32)
    fx.randomize_(model, seed=seed)
    shape_init_(model)
    model.tie_weights()
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    # reload: the folder must give back the same parameters
    ref = model.state_dict()
    again = Qwen2_5_VLForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32).state_dict()
    assert again.keys() == ref.keys()
    for k in ref:
        assert torch.equal(again[k], ref[k]), k


# --------------------------------------------------------------------------
# Geometry check
# --------------------------------------------------------------------------


def anisotropy(x: torch.Tensor) -> float:
    """Mean pairwise cosine similarity (i != j) of the rows of ``x``."""
    u = torch.nn.functional.normalize(x.double(), dim=-1)
    g = u @ u.T
    n = x.shape[0]
    return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))


def mutual_knn(a: torch.Tensor, b: torch.Tensor, k: int = 5) -> float:
    """Mutual k-NN alignment (cosine neighbours, self excluded) of paired rows of ``a`` and ``b``."""
    def knn(x):
        u = torch.nn.functional.normalize(x.double(), dim=-1)
        s = u @ u.T
        s.fill_diagonal_(-float("inf"))
        return s.topk(k, dim=1).indices
    ia, ib = knn(a), knn(b)
    return float(np.mean([len(set(ia[i].tolist()) & set(ib[i].tolist())) / k for i in range(a.shape[0])]))


@torch.no_grad()
def last_token_states(model_dir: Path, pairs: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """[layers + 1, N, H] last-token hidden states of the text items and of the image items."""
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, attn_implementation="eager",
                                                               dtype=torch.float32).eval()
    text, image = [], []
    for p in pairs:
        for kind, msgs, kw in [
            ("text", fx.text_msg(p["text"]), {}),
            ("image", fx.image_msg([p["image"]]), {"images": [Image.open(OUT / p["image"]).convert("RGB")]}),
        ]:
            prompt = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            inputs = processor(text=[prompt], return_tensors="pt", **kw)
            if kind == "image":
                assert inputs["image_grid_thw"].tolist() == [[1, 6, 6]], inputs["image_grid_thw"]
            out = model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
            hs = torch.stack([h[0, -1] for h in out.hidden_states])  # [L+1, H]
            (text if kind == "text" else image).append(hs)
    return torch.stack(text, dim=1), torch.stack(image, dim=1)


def geometry_report(name: str, model_dir: Path, pairs: list[dict]) -> None:
    t, v = last_token_states(model_dir, pairs)
    print(f"\n{name}: last-token geometry of the first {len(pairs)} pairs "
          f"(layer 0 = embeddings; same last token everywhere, so 1.0 there)")
    print("layer  aniso_text  aniso_image  cos(text_i,image_i)  mknn_k5(text,image)")
    for layer in range(t.shape[0]):
        pc = torch.nn.functional.cosine_similarity(t[layer].double(), v[layer].double(), dim=-1).mean()
        print(f"{layer:5d}  {anisotropy(t[layer]):10.4f}  {anisotropy(v[layer]):11.4f}  {float(pc):19.4f}  "
              f"{mutual_knn(t[layer], v[layer]):19.4f}")


# --------------------------------------------------------------------------


def dir_size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--random-after", action="store_true",
                    help="also write after/: the same architecture with seed-1 random weights (a placeholder)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if transformers.__version__ != fx.EXPECTED_TRANSFORMERS:
        print(f"WARNING: transformers {transformers.__version__} != pinned {fx.EXPECTED_TRANSFORMERS}",
              file=sys.stderr)

    OUT.mkdir(parents=True, exist_ok=True)

    # ---- images and captions ---------------------------------------------
    if (OUT / "images").exists():
        shutil.rmtree(OUT / "images")
    (OUT / "images").mkdir()
    rng = random.Random(SEED_IMAGES)
    pairs, seen = [], set()
    while len(pairs) < N_PAIRS:
        scene = sample_scene(rng)
        caption = describe(scene, rng)
        if caption in seen:
            continue
        seen.add(caption)
        i = len(pairs)
        rel = f"images/{i:04d}.png"
        draw_scene(scene).save(OUT / rel, format="PNG", optimize=True)
        pairs.append({"id": f"demo-{i:04d}", "text": caption, "image": rel})
    with open(OUT / "pairs.jsonl", "w") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")

    # ---- NLI ---------------------------------------------------------------
    nli = nli_rows(seen)
    with open(OUT / "nli.jsonl", "w") as f:
        for row in nli:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    # ---- tokenizer / processor / checkpoints -------------------------------
    captions = [p["text"] for p in pairs]
    corpus = tokenizer_corpus(captions, nli)
    tok = fx.build_tokenizer(sentences=corpus, vocab_size=BPE_VOCAB_SIZE)
    processor = build_processor(tok)
    counts = word_token_counts(tok, corpus + [fx.TEXT_PROMPT.format(text=c) for c in captions])
    too_long = {w: n for w, n in counts.items() if n > 2}
    assert not too_long, f"words of more than 2 tokens: {too_long}"

    write_checkpoint(OUT / "before", tok, processor, SEED_BEFORE)
    if args.random_after:
        write_checkpoint(OUT / "after", tok, processor, SEED_AFTER)

    # ---- report --------------------------------------------------------------
    geometry_report("before (random, seed 0)", OUT / "before", pairs[:N_CHECK])
    if args.random_after:
        geometry_report("after (random placeholder, seed 1)", OUT / "after", pairs[:N_CHECK])

    cfg = json.loads((OUT / "before" / "config.json").read_text())
    hist = {n: sum(1 for v in counts.values() if v == n) for n in sorted(set(counts.values()))}
    print(f"\ntransformers {transformers.__version__}, torch {torch.__version__}")
    print(f"pairs: {len(pairs)}; nli rows: {len(nli)} ({sum('negative' in r for r in nli)} with negative)")
    print(f"tokenizer: {len(tok)} tokens ({BPE_VOCAB_SIZE} BPE + {len(fx.ADDED_TOKENS)} added); "
          f"tokens per word: {hist} over {len(counts)} distinct words")
    print(f"config: text {json.dumps(cfg['text_config'], sort_keys=True)}")
    print(f"        vision {json.dumps(cfg['vision_config'], sort_keys=True)}")
    image_bytes = dir_size(OUT / "images")
    print(f"images: {image_bytes} bytes in {N_PAIRS} files")
    assert image_bytes < 1_000_000
    for p in sorted(OUT.iterdir()):
        print(f"  {p.name:16s} {dir_size(p) / 1024:9.1f} KiB")
    for d in ("before", "after"):
        f = OUT / d / "model.safetensors"
        if f.exists():
            print(f"  {d}/model.safetensors {f.stat().st_size} bytes, sha256 "
                  f"{hashlib.sha256(f.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
