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
after the first) and the peak resident memory of the process; with
``--device cuda`` (geom built with ``--features cuda``) both sides run on the
GPU and the peak GPU memory of each process is reported too (polled with
``nvidia-smi``, the same way for both; torch's own allocator peak beside it).

Run (needs scripts/requirements-models.txt and a built geom)::

    python3 scripts/bench_model.py --threads 2   # builds /tmp/geom-bench-model once
    cargo build
    python3 scripts/bench_train.py [--threads 2] [--steps 4]
    # on a GPU machine:
    cargo build --release --features cuda
    python3 scripts/bench_train.py --device cuda --geom-bin target/release/geom
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
import threading
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
    dev = torch.device(args.device)
    m = Path(args.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(m, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.to(dev)
    proc = AutoProcessor.from_pretrained(m)
    proc.tokenizer.padding_side = "left"
    targets = r".*language_model\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|o_proj)|mlp\.(?:gate_proj|up_proj|down_proj))"
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = json.loads(args.data)
    texts = [t["anchor"] for t in data] + [t["positive"] for t in data] + [t["negative"] for t in data]
    msgs = [[{"role": "user", "content": [{"type": "text", "text": PROMPT.format(text=t)}]}] for t in texts]
    prompts = [proc.apply_chat_template(x, tokenize=False, add_generation_prompt=True) for x in msgs]
    batch = proc(text=prompts, padding=True, return_tensors="pt").to(dev)
    n = len(data)
    target = torch.arange(n, device=dev)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        # The base model (no lm_head: geom computes no logits either).
        out = model.base_model.model.model(**batch)
        z = torch.nn.functional.normalize(out.last_hidden_state[:, -1, :], dim=-1)
        logits = z[:n] @ z[n:].T / 0.03
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {"step_s": times, "loss": float(loss), "peak_rss_mb": peak}
    if dev.type == "cuda":
        res["torch_max_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    print(json.dumps(res))


class GpuPeak:
    """Peak GPU memory of one process, polled with nvidia-smi every 0.2 s."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb, self._stop = pid, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            q = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True)
            for line in q.stdout.splitlines():
                pid, _, mb = line.partition(",")
                if pid.strip() == str(self.pid):
                    self.peak_mb = max(self.peak_mb, float(mb))
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak_mb


def run_measured(cmd: list[str], env: dict, gpu: bool) -> tuple[str, float | None]:
    """Runs cmd to completion; its stdout and (on a GPU) its peak GPU memory in MB."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    poll = GpuPeak(p.pid) if gpu else None
    out, err = p.communicate()
    peak = poll.stop() if poll else None
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed ({p.returncode}):\n{err[-2000:]}")
    return out, peak


def peak_child_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bench-model", default="/tmp/geom-bench-model/model")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: both sides on the GPU (geom built with --features cuda)")
    ap.add_argument("--geom-bin", default=str(ROOT / "target/debug/geom"),
                    help="the geom executable (default target/debug/geom)")
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
    gpu = args.device == "cuda"
    cmd = [args.geom_bin, "train-cl", "--model", str(model), "--data", str(data_file),
           "--out", str(out), "--r", "16", "--alpha", "32", "--lora-dropout", "0", "--batch-size", "8",
           "--max-steps", str(args.steps), "--warmup", "0", "--lr", "1e-4", "--max-grad-norm", "0",
           "--device", args.device]
    _, geom_gpu = run_measured(cmd, env, gpu)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    el = [r["elapsed_s"] for r in log]
    steps = [el[0]] + [b - a for a, b in zip(el, el[1:])]
    results["geom"] = {"step_s": steps, "peak_rss_mb": peak_child_mb(), "loss": log[-1]["loss"],
                       "peak_gpu_mb": geom_gpu}
    # torch + peft in a fresh process (it reports its own peak RSS).
    stdout, torch_gpu = run_measured(
        [sys.executable, __file__, "--torch-worker", "--threads", str(args.threads), "--steps",
         str(args.steps), "--model", str(model), "--data", json.dumps(data), "--device", args.device],
        env, gpu)
    t = json.loads(stdout.strip().splitlines()[-1])
    results["torch"] = {"step_s": t["step_s"], "peak_rss_mb": t["peak_rss_mb"], "loss": t["loss"],
                        "peak_gpu_mb": torch_gpu, "torch_max_reserved_mb": t.get("torch_max_reserved_mb")}

    def med(xs):
        xs = sorted(xs[1:] or xs)
        return xs[len(xs) // 2]

    g, p = results["geom"], results["torch"]
    print(f"8 triplets per step, LoRA r16, {args.device}, {args.threads} threads, model {bench}")
    for name, r in (("geom ", g), ("torch", p)):
        gpu_mem = f", peak GPU {r['peak_gpu_mb']:.0f} MB" if r.get("peak_gpu_mb") is not None else ""
        print(f"{name} : {med(r['step_s']):.2f} s/step, peak RSS {r['peak_rss_mb']:.0f} MB{gpu_mem}")
    print(f"geom speed / torch speed = {med(p['step_s']) / med(g['step_s']):.2f}x")
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"details: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
