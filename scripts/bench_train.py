#!/usr/bin/env python3
"""Contrastive LoRA training speed and memory: ``geom train-cl`` against
torch + peft, side by side in one run, on the realistic-width reduced-depth
Qwen2.5-VL of ``scripts/bench_model.py`` (3B width, 4 decoder layers; built
there under ``/tmp/geom-bench-model``), with the fixture tokenizer.

Both sides: the same 8 triplets per step from the demo's NLI sample (LCO text
prompt, chat template, left padding, last-token state, InfoNCE with in-batch
and hard negatives, τ 0.03), LoRA r 16 / α 32 on the seven decoder
projections, dropout 0, AdamW, f32, ``--threads`` CPU threads, each side in a
fresh process. Reported: seconds per optimiser step (median over the steps
after the first) and the peak resident memory of the process.

Run (needs scripts/requirements-models.txt and a built geom)::

    python3 scripts/bench_model.py --threads 2   # builds /tmp/geom-bench-model once
    cargo build
    python3 scripts/bench_train.py [--threads 2] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/fixtures/qwen2_5_vl/model"
NLI = ROOT / "assets/demo/nli.jsonl"
PROMPT = "{text}\nSummarize the above text in one word:"


def model_dir(work: Path, bench: Path) -> Path:
    """The bench weights with the fixture's tokenizer, template and processor files."""
    d = work / "model"
    d.mkdir(parents=True, exist_ok=True)
    for f in bench.iterdir():
        if not (d / f.name).exists():
            os.symlink(f, d / f.name)
    for f in FIXTURE.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json") and not (d / f.name).exists():
            shutil.copy(f, d / f.name)
    return d


def triplets(n: int) -> list[dict]:
    rows = [json.loads(l) for l in NLI.read_text().splitlines() if l.strip()]
    return [r for r in rows if r.get("negative")][:n]


def torch_side(args) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = Path(args.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(m, torch_dtype=torch.float32, attn_implementation="sdpa")
    proc = AutoProcessor.from_pretrained(m)
    proc.tokenizer.padding_side = "left"
    targets = r".*language_model\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|o_proj)|mlp\.(?:gate_proj|up_proj|down_proj))"
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = json.loads(args.data)
    texts = [t["anchor"] for t in data] + [t["positive"] for t in data] + [t["negative"] for t in data]
    msgs = [[{"role": "user", "content": [{"type": "text", "text": PROMPT.format(text=t)}]}] for t in texts]
    prompts = [proc.apply_chat_template(x, tokenize=False, add_generation_prompt=True) for x in msgs]
    batch = proc(text=prompts, padding=True, return_tensors="pt")
    n = len(data)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        # The base model (no lm_head: geom computes no logits either).
        out = model.base_model.model.model(**batch)
        z = torch.nn.functional.normalize(out.last_hidden_state[:, -1, :], dim=-1)
        logits = z[:n] @ z[n:].T / 0.03
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(n))
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step_s": times, "loss": float(loss), "peak_rss_mb": peak}))


def peak_child_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bench-model", default="/tmp/geom-bench-model/model")
    ap.add_argument("--torch-worker", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--data")
    args = ap.parse_args()
    if args.torch_worker:
        torch_side(args)
        return 0
    bench = Path(args.bench_model)
    if not (bench / "model.safetensors").exists():
        sys.exit(f"{bench}: run `python3 scripts/bench_model.py` first (it builds the model)")
    work = Path(tempfile.mkdtemp(prefix="geom-bench-train-"))
    model = model_dir(work, bench)
    data = triplets(8)
    data_file = work / "data.jsonl"
    data_file.write_text("".join(json.dumps(t) + "\n" for t in data))
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    results = {}
    # geom: one process, --steps optimiser steps over the same 8 triplets.
    out = work / "geom-run"
    cmd = [str(ROOT / "target/debug/geom"), "train-cl", "--model", str(model), "--data", str(data_file),
           "--out", str(out), "--r", "16", "--alpha", "32", "--lora-dropout", "0", "--batch-size", "8",
           "--max-steps", str(args.steps), "--warmup", "0", "--lr", "1e-4", "--max-grad-norm", "0"]
    before = peak_child_mb()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    el = [r["elapsed_s"] for r in log]
    steps = [el[0]] + [b - a for a, b in zip(el, el[1:])]
    results["geom"] = {"step_s": steps, "peak_rss_mb": peak_child_mb(), "loss": log[-1]["loss"]}
    # torch + peft in a fresh process.
    r = subprocess.run([sys.executable, __file__, "--torch-worker", "--threads", str(args.threads), "--steps",
                        str(args.steps), "--model", str(model), "--data", json.dumps(data)],
                       env=env, check=True, capture_output=True, text=True)
    t = json.loads(r.stdout.strip().splitlines()[-1])
    results["torch"] = {"step_s": t["step_s"], "peak_rss_mb": t["peak_rss_mb"], "loss": t["loss"]}
    del before

    def med(xs):
        xs = sorted(xs[1:] or xs)
        return xs[len(xs) // 2]

    g, p = results["geom"], results["torch"]
    print(f"8 triplets per step, LoRA r16, {args.threads} threads, model {bench} (3B width, 4 layers)")
    print(f"geom  : {med(g['step_s']):.2f} s/step, peak RSS {g['peak_rss_mb']:.0f} MB")
    print(f"torch : {med(p['step_s']):.2f} s/step, peak RSS {p['peak_rss_mb']:.0f} MB")
    print(f"geom speed / torch speed = {med(p['step_s']) / med(g['step_s']):.2f}x")
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"details: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
