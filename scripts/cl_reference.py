#!/usr/bin/env python3
"""Independent torch + peft reference of ``geom train-cl`` (text-only
contrastive LoRA training, LCO-Emb recipe) on the embedded demo checkpoint,
with the anisotropy of the text embeddings measured before and after.

Recipe (the same as ``src/train/contrastive.rs``):

* Embedding of a text ``t``: one user turn ``f"{t}\\nSummarize the above text
  in one word:"`` rendered with the checkpoint's chat template and the
  generation prompt, left padding, ``hidden_states[-1][:, -1, :]`` (the last
  token after the final RMSNorm), L2-normalised.
* InfoNCE over a batch of ``n`` rows of ``nli.jsonl``: anchors ``[n, d]``
  against the candidates (the ``n`` positives, then the negatives that
  exist), logits ``a @ c.T / τ``, target ``i``. Anchors, positives and
  negatives are embedded in one padded forward pass, as geom does.
* LoRA (peft) on the seven projections of every decoder layer of the
  language model (not the vision tower); AdamW; linear warmup then cosine
  decay to zero (transformers' ``get_cosine_schedule_with_warmup``);
  gradient clipping at a global norm.

Measured before and after training (and after every epoch): the
anisotropy (mean pairwise cosine over i != j) of the last-token state at
every layer (``hidden_states[0]`` = embeddings ... ``hidden_states[-1]`` =
after the final norm) for the first 256 unique NLI anchors and for the
first 256 demo captions (``pairs.jsonl``), and the InfoNCE loss and top-1
accuracy on a fixed eval batch (the first 32 rows of ``nli.jsonl``) and on
every full batch of the file in file order.

Run (needs scripts/requirements-models.txt: torch, transformers, peft)::

    python3 scripts/cl_reference.py                       # the demo-after recipe (make demo-after)
    python3 scripts/cl_reference.py --lr 4e-4 --epochs 2  # too short: anisotropy rises first
    python3 scripts/cl_reference.py --eval-only --model assets/demo/after   # measure a checkpoint
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets/demo"
TEXT_PROMPT = "{text}\nSummarize the above text in one word:"
# Every projection of every decoder layer of the language model; the vision
# tower's blocks (model.visual.blocks.N...) have other names (qkv, proj, ...)
# but are excluded explicitly anyway.
TARGETS = (r".*language_model\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|o_proj)"
           r"|mlp\.(?:gate_proj|up_proj|down_proj))")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first_unique(texts: list[str], n: int) -> list[str]:
    seen, out = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            out.append(t)
        if len(out) == n:
            break
    return out


# --------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------

def messages(text: str) -> list[dict]:
    """The chat messages of one text (as scripts/gen_qwen2_5_vl_fixtures.py's text_msg)."""
    return [{"role": "user", "content": [{"type": "text", "text": TEXT_PROMPT.format(text=text)}]}]


def encode(processor, texts: list[str]) -> dict:
    """Chat template with the generation prompt, tokenized, left-padded."""
    prompts = [processor.apply_chat_template(messages(t), tokenize=False, add_generation_prompt=True)
               for t in texts]
    enc = processor(text=prompts, return_tensors="pt", padding=True, padding_side="left")
    assert bool((enc["attention_mask"][:, -1] == 1).all()), "expected left padding"
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def hidden_states(model, enc: dict) -> tuple[torch.Tensor, ...]:
    """Every hidden state (L + 1) of a batch, each [B, T, d]."""
    out = model(**enc, output_hidden_states=True, use_cache=False, return_dict=True)
    return out.hidden_states


def embed(model, processor, texts: list[str]) -> torch.Tensor:
    """L2-normalised last-token final states [n, d] (differentiable)."""
    hs = hidden_states(model, encode(processor, texts))
    return F.normalize(hs[-1][:, -1, :], p=2, dim=-1)


# --------------------------------------------------------------------------
# Loss and metrics
# --------------------------------------------------------------------------

def batch_texts(rows: list[dict]) -> tuple[list[str], int]:
    """Anchors, positives, then the negatives that exist; and n."""
    texts = [r["anchor"] for r in rows] + [r["positive"] for r in rows]
    texts += [r["negative"] for r in rows if r.get("negative")]
    return texts, len(rows)


def info_nce(z: torch.Tensor, n: int, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean InfoNCE of anchors z[:n] against candidates z[n:]; and the logits."""
    logits = z[:n] @ z[n:].T / tau
    return F.cross_entropy(logits, torch.arange(n)), logits


@torch.no_grad()
def retrieval(model, processor, rows: list[dict], tau: float) -> tuple[float, float, float, float]:
    """InfoNCE loss and top-1 accuracy (anchor -> its own positive) of one batch; the
    chance loss ln(candidates) (uniform logits); and the cosine gap: mean cos(anchor, own
    positive) minus mean cos(anchor, other candidates)."""
    texts, n = batch_texts(rows)
    loss, logits = info_nce(embed(model, processor, texts), n, tau)
    acc = (logits.argmax(1) == torch.arange(n)).float().mean()
    cos = logits * tau
    own = torch.zeros_like(cos, dtype=torch.bool)
    own[torch.arange(n), torch.arange(n)] = True
    gap = cos[own].mean() - cos[~own].mean()
    return float(loss), float(acc), math.log(cos.shape[1]), float(gap)


@torch.no_grad()
def anisotropy_per_layer(model, processor, texts: list[str], batch: int = 64) -> list[float]:
    """Mean pairwise cosine (i != j) of the last-token state, per hidden state."""
    per_layer: list[list[torch.Tensor]] = []
    for s in range(0, len(texts), batch):
        hs = hidden_states(model, encode(processor, texts[s:s + batch]))
        if not per_layer:
            per_layer = [[] for _ in hs]
        for l, h in enumerate(hs):
            per_layer[l].append(h[:, -1, :].double())
    out = []
    for chunks in per_layer:
        h = F.normalize(torch.cat(chunks), dim=-1)
        n = h.shape[0]
        out.append(float(((h @ h.T).sum() - n) / (n * (n - 1))))
    return out


def evaluate(model, processor, sets: dict[str, list[str]], rows: list[dict], args, tag: str) -> dict:
    """Anisotropy of every text set at every layer, and the retrieval metrics."""
    was_training = model.training
    model.eval()  # no LoRA dropout while measuring
    res = {"tag": tag}
    for name, texts in sets.items():
        res[name] = anisotropy_per_layer(model, processor, texts)
    res["fixed_batch"] = retrieval(model, processor, rows[:args.batch_size], args.temperature)
    full = [retrieval(model, processor, rows[s:s + args.batch_size], args.temperature)
            for s in range(0, len(rows) - args.batch_size + 1, args.batch_size)]
    res["all_batches"] = tuple(sum(f[k] for f in full) / len(full) for k in range(4))
    model.train(was_training)
    print(f"== {tag}")
    for name in sets:
        layers = " ".join(f"{v:.3f}" for v in res[name])
        print(f"  anisotropy {name:8s} last {res[name][-1]:.4f}   per layer (emb..final) {layers}")
    print(f"  InfoNCE fixed batch (rows 0..{args.batch_size}): loss {res['fixed_batch'][0]:.4f} "
          f"top-1 {res['fixed_batch'][1]:.3f} (chance loss {res['fixed_batch'][2]:.3f}, cos gap "
          f"{res['fixed_batch'][3]:+.4f});  all {len(full)} batches in file order: loss "
          f"{res['all_batches'][0]:.4f} top-1 {res['all_batches'][1]:.3f} (chance loss "
          f"{res['all_batches'][2]:.3f}, cos gap {res['all_batches'][3]:+.4f})", flush=True)
    return res


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup from 0, then cosine to 0 (get_cosine_schedule_with_warmup)."""
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEMO / "before"))
    ap.add_argument("--data", default=str(DEMO / "nli.jsonl"))
    ap.add_argument("--pairs", default=str(DEMO / "pairs.jsonl"))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--temperature", type=float, default=0.03)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--n-eval", type=int, default=256, help="texts per anisotropy set")
    ap.add_argument("--eval-only", action="store_true", help="measure --model, do not train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the metrics and the loss curve as JSON here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="eager")
    processor = AutoProcessor.from_pretrained(args.model)
    rows = read_jsonl(Path(args.data))
    sets = {
        "anchors": first_unique([r["anchor"] for r in rows], args.n_eval),
        "captions": [r["text"] for r in read_jsonl(Path(args.pairs))][:args.n_eval],
    }
    # The prompt must be the LCO text prompt inside the Qwen chat template.
    p = processor.apply_chat_template(messages("x"), tokenize=False, add_generation_prompt=True)
    assert p == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                 "x\nSummarize the above text in one word:<|im_end|>\n<|im_start|>assistant\n"), p
    print(f"model {args.model}; {len(rows)} NLI rows; prompt {p!r}")

    history = [evaluate(model, processor, sets, rows, args, "before")]
    log = {"args": vars(args), "history": history, "losses": []}
    if args.eval_only:
        return finish(args, log)

    model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout,
                                             target_modules=TARGETS, bias="none"))
    adapted = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    assert all("language_model" in n and "visual" not in n for n in adapted)
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"LoRA r {args.r} alpha {args.alpha}: {len(adapted)} adapted modules, "
          f"{sum(p.numel() for p in params)} trainable parameters")
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    n, bs = len(rows), args.batch_size
    per_epoch = n // bs  # the last incomplete batch of each epoch is dropped
    total = args.epochs * per_epoch  # as geom's TrainOptions::total_steps
    print(f"{total} steps ({per_epoch} per epoch), warmup {args.warmup}, peak lr {args.lr}")
    model.train()
    orders: dict[int, list[int]] = {}
    t0 = time.time()
    for step in range(total):
        epoch, i = divmod(step, per_epoch)
        if epoch not in orders:  # one seeded permutation per epoch
            g = torch.Generator().manual_seed(args.seed + epoch)
            orders[epoch] = torch.randperm(n, generator=g).tolist()
        batch = [rows[j] for j in orders[epoch][i * bs:(i + 1) * bs]]
        lr = lr_at(step, total, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        texts, nb = batch_texts(batch)
        loss, _ = info_nce(embed(model, processor, texts), nb, args.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm) if args.max_grad_norm > 0 else \
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        opt.step()
        log["losses"].append(loss.item())
        print(f"step {step + 1:4d}/{total} epoch {epoch} loss {loss.item():.4f} lr {lr:.2e} "
              f"grad_norm {float(gnorm):.3f}  [{time.time() - t0:.0f}s]", flush=True)
        if (step + 1) % per_epoch == 0 and step + 1 < total:
            history.append(evaluate(model, processor, sets, rows, args, f"after epoch {epoch + 1}"))
    history.append(evaluate(model, processor, sets, rows, args, "after"))

    b, a = history[0], history[-1]
    print("== summary (last layer)")
    for name in sets:
        print(f"  anisotropy {name:8s}: {b[name][-1]:.4f} -> {a[name][-1]:.4f} "
              f"({'RAISED' if a[name][-1] > b[name][-1] else 'LOWERED'})")
    print(f"  loss fixed batch {b['fixed_batch'][0]:.4f} -> {a['fixed_batch'][0]:.4f}, "
          f"top-1 {b['fixed_batch'][1]:.3f} -> {a['fixed_batch'][1]:.3f}")
    return finish(args, log)


def finish(args, log: dict) -> int:
    if args.out:
        Path(args.out).write_text(json.dumps(log, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
