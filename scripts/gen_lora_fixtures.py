#!/usr/bin/env python3
"""Reference fixtures for geom's LoRA importer / merger and its InfoNCE (contrastive) loss.

Base model: the tiny random-weight Qwen2.5-VL checkpoint ``tests/fixtures/qwen2_5_vl/model/`` written by
``scripts/gen_qwen2_5_vl_fixtures.py`` (float32, eager attention). Its processor, chat template and the
LCO-Emb text prompt (``TEXT_PROMPT`` / ``text_msg``) are imported from that script.

Writes, into ``tests/fixtures/lora/`` (see the README.md there, hand-written; this script leaves it alone):

* ``adapter/``         -- PEFT LoRA adapter (``save_pretrained``): r=4, alpha=8 (scale alpha/r = 2), all seven
                          linear layers of every language-decoder layer; lora_A and lora_B both ~ N(0, 0.05^2)
                          from a seeded generator (PEFT's default init has B = 0, which would make a merge test
                          vacuous);
* ``adapter_rslora/``  -- the same with ``use_rslora=True`` (scale alpha/sqrt(r) = 4), q_proj and v_proj only;
* ``merged.safetensors`` / ``merged_rslora.safetensors`` -- the adapted weights after ``merge_and_unload()``,
                          keyed with the base checkpoint's own (flat hub) naming, e.g.
                          ``model.layers.0.self_attn.q_proj.weight``;
* ``infonce.safetensors`` + ``infonce.json`` -- an LCO-Emb style text-only InfoNCE loss on 3 (anchor, positive,
                          hard negative) triplets through base + ``adapter/``: loss, pooled embeddings, logits,
                          inputs and the gradient of the loss w.r.t. every lora_A / lora_B weight; computed in
                          float64 (with the float32 casts inside the Hugging Face RMSNorm / softmax / RoPE code
                          lifted) and stored as float32, plus the max float32-vs-float64 differences.

Deterministic: seeded, single-threaded, deterministic algorithms; a rerun writes identical tensors.

Run::

    pip install -r scripts/requirements-models.txt
    python3 scripts/gen_lora_fixtures.py
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2 import modeling_qwen2
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_qwen2_5_vl_fixtures as qfix  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_DIR = REPO_ROOT / "tests" / "fixtures" / "qwen2_5_vl" / "model"
OUT = REPO_ROOT / "tests" / "fixtures" / "lora"

EXPECTED_PEFT = "0.21.2"
SEED = 20250712
LORA_INIT_STD = 0.05

# Only the language decoder: its layers live under `...layers.<i>.` (`model.language_model.layers.<i>` in
# transformers >= 4.52, `model.layers.<i>` before); the vision tower's blocks are `visual.blocks.<i>` (their
# mlp.gate_proj/up_proj/down_proj must not be adapted). PEFT applies a string target_modules with re.fullmatch.
TARGETS_ALL = r".*\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|o_proj)|mlp\.(?:gate_proj|up_proj|down_proj))"
TARGETS_QV = r".*\.layers\.\d+\.self_attn\.(?:q_proj|v_proj)"

ADAPTERS = {
    # name: (directory, merged file, LoraConfig kwargs, init seed)
    "lora": ("adapter", "merged.safetensors",
             dict(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", target_modules=TARGETS_ALL), SEED + 1),
    "rslora": ("adapter_rslora", "merged_rslora.safetensors",
               dict(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", target_modules=TARGETS_QV, use_rslora=True),
               SEED + 2),
}

# 3 (anchor, positive, hard negative) triplets, written with the fixture tokenizer's training vocabulary.
TRIPLETS = [
    ("A man is playing a guitar in the park.",
     "An old man is playing a guitar near the river.",
     "The cat is watching the sunset at night."),
    ("A young girl is reading a book in a small room.",
     "A woman is reading the old map in a kitchen.",
     "Two children are eating an apple at the beach, and it's sunny!"),
    ("a small red square on a blue background",
     "a tiny red square above a blue background",
     "a large green circle inside a black background"),
]
TAU = 0.03


# --------------------------------------------------------------------------
# A genuine float64 forward for the f64 cross-check
# --------------------------------------------------------------------------
# The Hugging Face code computes RMSNorm, the attention softmax and the RoPE tables in float32 whatever the
# model dtype. For the float64 reference run these three are replaced by float64 versions (the originals are
# called unchanged for any other dtype, and everything is restored on exit).

@contextlib.contextmanager
def true_float64():
    orig_norm = modeling_qwen2.Qwen2RMSNorm.forward
    orig_eager = modeling_qwen2_5_vl.eager_attention_forward
    orig_rope = modeling_qwen2_5_vl.Qwen2_5_VLRotaryEmbedding.forward

    def norm_forward(self, hidden_states):
        if hidden_states.dtype != torch.float64:
            return orig_norm(self, hidden_states)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    def eager_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if query.dtype != torch.float64:
            return orig_eager(module, query, key, value, attention_mask, scaling, dropout=dropout, **kwargs)
        key_states = modeling_qwen2_5_vl.repeat_kv(key, module.num_key_value_groups)
        value_states = modeling_qwen2_5_vl.repeat_kv(value, module.num_key_value_groups)
        attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask[:, :, :, : key_states.shape[-2]]
        attn_weights = F.softmax(attn_weights, dim=-1)
        attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
        attn_output = torch.matmul(attn_weights, value_states).transpose(1, 2).contiguous()
        return attn_output, attn_weights

    @torch.no_grad()
    def rope_forward(self, x, position_ids):
        if x.dtype != torch.float64:
            return orig_rope(self, x, position_ids)
        cfg = self.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        assert torch.allclose(inv_freq, self.inv_freq.double(), rtol=1e-6, atol=0)
        inv_freq_expanded = inv_freq[None, None, :, None].expand(3, position_ids.shape[1], -1, 1)
        freqs = (inv_freq_expanded @ position_ids[:, :, None, :].double()).transpose(2, 3)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling

    modeling_qwen2.Qwen2RMSNorm.forward = norm_forward
    modeling_qwen2_5_vl.eager_attention_forward = eager_forward
    modeling_qwen2_5_vl.Qwen2_5_VLRotaryEmbedding.forward = rope_forward
    try:
        yield
    finally:
        modeling_qwen2.Qwen2RMSNorm.forward = orig_norm
        modeling_qwen2_5_vl.eager_attention_forward = orig_eager
        modeling_qwen2_5_vl.Qwen2_5_VLRotaryEmbedding.forward = orig_rope


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def load_base() -> Qwen2_5_VLForConditionalGeneration:
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(
        BASE_DIR, attn_implementation="eager", dtype=torch.float32).eval()


def lora_params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}


def adapter_key(param_name: str, adapter_name: str = "default") -> str:
    """PEFT parameter name -> key in adapter_model.safetensors (the adapter name is dropped)."""
    key = param_name.replace(f".{adapter_name}.", ".")
    assert key != param_name, param_name
    return key


@torch.no_grad()
def init_lora_(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    params = lora_params(model)
    assert params
    for name in sorted(params):
        p = params[name]
        p.copy_((LORA_INIT_STD * torch.randn(p.shape, generator=g, dtype=torch.float64)).to(p.dtype))


def checkpoint_key(module_name: str) -> str:
    """Module name in transformers 4.57 (model.language_model.layers.N...) -> base checkpoint naming."""
    return re.sub(r"^model\.language_model\.", "model.", module_name) + ".weight"


def tokenize(processor):
    sentences = [t[0] for t in TRIPLETS] + [t[1] for t in TRIPLETS] + [t[2] for t in TRIPLETS]
    prompts = [processor.apply_chat_template(qfix.text_msg(s), tokenize=False, add_generation_prompt=True)
               for s in sentences]
    for s, p in zip(sentences, prompts):
        assert qfix.TEXT_PROMPT.format(text=s) == f"{s}\nSummarize the above text in one word:"
        assert p == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                     f"{s}\nSummarize the above text in one word:<|im_end|>\n<|im_start|>assistant\n"), p
    processor.tokenizer.padding_side = "left"
    enc = processor(text=prompts, return_tensors="pt", padding=True)
    input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
    assert bool((attention_mask[:, -1] == 1).all()), "expected left padding"
    assert len(set(attention_mask.sum(1).tolist())) > 1, "expected sentences of different lengths"
    return sentences, prompts, input_ids, attention_mask


def infonce(model, input_ids, attention_mask, n: int, with_negatives: bool = True):
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                use_cache=False, return_dict=True)
    emb = F.normalize(out.hidden_states[-1][:, -1, :], p=2, dim=-1)
    anchors, positives, negatives = emb[:n], emb[n:2 * n], emb[2 * n:3 * n]
    cands = torch.cat([positives, negatives], 0) if with_negatives else positives
    logits = anchors @ cands.T / TAU
    labels = torch.arange(n)
    loss = F.cross_entropy(logits, labels, reduction="mean")
    return loss, emb, logits


def loss_and_grads(model, input_ids, attention_mask, n):
    model.zero_grad(set_to_none=True)
    loss, emb, logits = infonce(model, input_ids, attention_mask, n)
    loss.backward()
    grads = {adapter_key(name): p.grad.detach().clone() for name, p in lora_params(model).items()}
    with torch.no_grad():
        loss_pairs, _, logits_pairs = infonce(model, input_ids, attention_mask, n, with_negatives=False)
    return dict(loss=loss.detach(), emb=emb.detach(), logits=logits.detach(), grads=grads,
                loss_pairs=loss_pairs, logits_pairs=logits_pairs)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def rel_path(p: Path) -> str:
    return str(p.relative_to(REPO_ROOT))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main() -> int:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if transformers.__version__ != qfix.EXPECTED_TRANSFORMERS:
        print(f"WARNING: transformers {transformers.__version__} != pinned {qfix.EXPECTED_TRANSFORMERS}",
              file=sys.stderr)
    if peft.__version__ != EXPECTED_PEFT:
        print(f"WARNING: peft {peft.__version__} != pinned {EXPECTED_PEFT}", file=sys.stderr)
    if not (BASE_DIR / "model.safetensors").exists():
        raise SystemExit(f"{BASE_DIR} missing: run scripts/gen_qwen2_5_vl_fixtures.py first")

    # Remove what this script generates; README.md (hand-written) is kept.
    OUT.mkdir(parents=True, exist_ok=True)
    for d, merged, _, _ in ADAPTERS.values():
        if (OUT / d).exists():
            shutil.rmtree(OUT / d)
        (OUT / merged).unlink(missing_ok=True)
    for f in ("infonce.safetensors", "infonce.json"):
        (OUT / f).unlink(missing_ok=True)

    ckpt = load_file(str(BASE_DIR / "model.safetensors"))
    processor = AutoProcessor.from_pretrained(BASE_DIR)
    sentences, prompts, input_ids, attention_mask = tokenize(processor)
    n = len(TRIPLETS)

    adapter_info = {}
    peft_models = {}
    for name, (dirname, merged_name, cfg_kwargs, seed) in ADAPTERS.items():
        adapter_dir = OUT / dirname
        config = LoraConfig(**cfg_kwargs)
        pm = get_peft_model(load_base(), config)
        pm.peft_config["default"].base_model_name_or_path = rel_path(BASE_DIR)
        init_lora_(pm, seed)
        pm.eval()

        # which modules were adapted: every one a language-decoder linear layer, none in the vision tower
        lora_modules = {m_name: m for m_name, m in pm.base_model.model.named_modules()
                        if isinstance(m, peft.tuners.lora.LoraLayer)}
        assert lora_modules and not any("visual" in k for k in lora_modules), sorted(lora_modules)
        wanted = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj") \
            if name == "lora" else ("q_proj", "v_proj")
        n_layers = pm.base_model.model.config.text_config.num_hidden_layers
        assert len(lora_modules) == n_layers * len(wanted), sorted(lora_modules)
        assert all(k.split(".")[-1] in wanted and k.startswith("model.language_model.layers.")
                   for k in lora_modules)

        r, alpha = config.r, config.lora_alpha
        scale = alpha / math.sqrt(r) if config.use_rslora else alpha / r
        for m in lora_modules.values():
            assert m.scaling["default"] == scale, (m.scaling, scale)

        pm.save_pretrained(adapter_dir, safe_serialization=True)
        (adapter_dir / "README.md").unlink(missing_ok=True)  # PEFT's model-card stub
        saved = load_file(str(adapter_dir / "adapter_model.safetensors"))
        params = lora_params(pm)
        assert sorted(saved) == sorted(adapter_key(k) for k in params), (sorted(saved)[:4], sorted(params)[:4])
        assert not any("visual" in k for k in saved)
        for k, p in params.items():
            assert torch.equal(saved[adapter_key(k)], p.detach()), k
            assert bool((p != 0).all()), k

        # merged weights: merge_and_unload() on a copy, checked against W0 + scale * B @ A by hand
        expected = {}
        for m_name, m in lora_modules.items():
            w0 = m.base_layer.weight.detach().double()
            ck = checkpoint_key(m_name)
            assert ck in ckpt and torch.equal(ckpt[ck], m.base_layer.weight.detach()), ck
            a = m.lora_A["default"].weight.detach().double()
            b = m.lora_B["default"].weight.detach().double()
            expected[ck] = w0 + scale * (b @ a)
        merged_model = copy.deepcopy(pm).merge_and_unload()
        merged_sd = merged_model.state_dict()
        merged = {}
        for m_name in lora_modules:
            ck = checkpoint_key(m_name)
            w = merged_sd[m_name + ".weight"].detach().clone().contiguous()
            err = max_abs(w, expected[ck])
            assert err < 1e-6, (ck, err)
            assert max_abs(w, ckpt[ck]) > 1e-3, ck  # the merge is not a no-op
            merged[ck] = w
        save_file(dict(sorted(merged.items())), str(OUT / merged_name),
                  # one metadata entry only: safetensors writes a multi-entry metadata map in hash order
                  metadata={"info": f"adapter={dirname} scale={scale!r} naming=base checkpoint (flat hub)"})

        adapter_info[name] = {
            "dir": dirname,
            "merged_file": merged_name,
            "r": r, "lora_alpha": alpha, "use_rslora": bool(config.use_rslora), "scale": scale,
            "scale_formula": "lora_alpha / sqrt(r)" if config.use_rslora else "lora_alpha / r",
            "target_modules_regex": cfg_kwargs["target_modules"],
            "init": {"distribution": "normal", "std": LORA_INIT_STD, "seed": seed,
                     "order": "sorted PEFT parameter names, lora_A and lora_B alike"},
            "adapted_modules": sorted(lora_modules),
            "adapter_keys": sorted(saved),
            "merged_keys": sorted(merged),
            "merge_vs_hand_max_abs_diff": max(max_abs(merged[k], expected[k]) for k in merged),
        }
        peft_models[name] = pm

    # ---- InfoNCE ---------------------------------------------------------
    pm = peft_models["lora"]
    res32 = loss_and_grads(pm, input_ids, attention_mask, n)

    # train() mode gives the same loss (no dropout anywhere)
    pm.train()
    with torch.no_grad():
        loss_train, _, _ = infonce(pm, input_ids, attention_mask, n)
    pm.eval()
    assert torch.equal(loss_train, res32["loss"]), (float(loss_train), float(res32["loss"]))

    # reload the saved adapter into a fresh base: same loss and gradients
    re_pm = PeftModel.from_pretrained(load_base(), OUT / "adapter", is_trainable=True).eval()
    res_re = loss_and_grads(re_pm, input_ids, attention_mask, n)
    assert res_re["grads"].keys() == res32["grads"].keys()
    d_reload = max([abs(float(res_re["loss"] - res32["loss"]))]
                   + [max_abs(res_re["grads"][k], res32["grads"][k]) for k in res32["grads"]])
    assert d_reload < 1e-6, d_reload

    # the same with the merged weights (no LoRA modules): same loss
    merged_model = copy.deepcopy(pm).merge_and_unload()
    with torch.no_grad():
        loss_merged, _, _ = infonce(merged_model, input_ids, attention_mask, n)
    d_merged = abs(float(loss_merged - res32["loss"]))
    assert d_merged < 1e-4, d_merged

    # float64 reference
    pm64 = copy.deepcopy(pm).double()
    with true_float64():
        res64 = loss_and_grads(pm64, input_ids, attention_mask, n)

    grad_keys = sorted(res64["grads"])
    diffs = {
        "loss": abs(float(res32["loss"].double() - res64["loss"])),
        "loss_pairs": abs(float(res32["loss_pairs"].double() - res64["loss_pairs"])),
        "embeddings": max_abs(res32["emb"], res64["emb"]),
        "logits": max_abs(res32["logits"], res64["logits"]),
        "grad_max_abs": max(max_abs(res32["grads"][k], res64["grads"][k]) for k in grad_keys),
        "grad_max_abs_over_max_abs_grad": max(
            max_abs(res32["grads"][k], res64["grads"][k]) / float(res64["grads"][k].abs().max())
            for k in grad_keys),
    }
    grad_stats = {"max_abs_grad": max(float(res64["grads"][k].abs().max()) for k in grad_keys),
                  "min_over_tensors_of_max_abs_grad": min(float(res64["grads"][k].abs().max()) for k in grad_keys)}

    tensors = {
        "loss": res64["loss"].float().reshape(()),
        "loss_f64": res64["loss"].reshape(()),
        "loss_pairs": res64["loss_pairs"].float().reshape(()),
        "loss_pairs_f64": res64["loss_pairs"].reshape(()),
        "embeddings": res64["emb"].float(),
        "logits": res64["logits"].float(),
        "logits_pairs": res64["logits_pairs"].float(),
        "input_ids": input_ids.to(torch.int64),
        "attention_mask": attention_mask.to(torch.int64),
        "labels": torch.arange(n, dtype=torch.int64),
    }
    for k in grad_keys:
        tensors[f"grad.{k}"] = res64["grads"][k].float()
    tensors = {k: v.contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, str(OUT / "infonce.safetensors"), metadata={"generator": "scripts/gen_lora_fixtures.py"})

    meta = {
        "generator": "scripts/gen_lora_fixtures.py",
        "versions": {"transformers": transformers.__version__, "peft": peft.__version__,
                     "torch": torch.__version__.split("+")[0]},
        "base_model": rel_path(BASE_DIR),
        "base_checkpoint_naming": "flat hub naming of model.safetensors: model.layers.<i>.self_attn.q_proj.weight, "
                                  "model.layers.<i>.mlp.gate_proj.weight, visual.blocks.<i>...",
        "peft_module_naming": "transformers 4.57 module tree: model.language_model.layers.<i>...; adapter keys are "
                              "'base_model.model.' + module name + '.lora_A.weight' / '.lora_B.weight'",
        "adapters": adapter_info,
        "infonce": {
            "adapter": "adapter",
            "triplets": [{"anchor": a, "positive": p, "negative": ng} for a, p, ng in TRIPLETS],
            "batch_order": "anchors, positives, negatives (rows 0-2, 3-5, 6-8)",
            "sentences": sentences,
            "text_prompt": qfix.TEXT_PROMPT,
            "messages": [qfix.text_msg(s) for s in sentences],
            "prompts": prompts,
            "chat_template": "fixture processor's (Qwen2.5-VL) template, add_generation_prompt=True, adds the "
                             "default system prompt",
            "padding": True,
            "padding_side": "left",
            "num_tokens": attention_mask.sum(1).tolist(),
            "seq_len": int(input_ids.shape[1]),
            "pooling": "hidden_states[-1][:, -1, :] (after the final RMSNorm, last position = last token with "
                       "left padding)",
            "normalize": "L2",
            "temperature": TAU,
            "logits": "A @ C.T / temperature; A = 3 anchors, C = [3 positives; 3 negatives] (6 candidates)",
            "labels": list(range(n)),
            "loss": "cross-entropy, mean over anchors",
            "pairs_variant": "C = 3 positives only (no negatives); loss_pairs, logits_pairs (3x3)",
            "dropout": "none (lora_dropout 0, attention_dropout 0); train()/eval() give the same loss",
            "model_dtype_of_stored_values": "float64 forward/backward (model cast to double; HF's float32 casts "
                                            "in RMSNorm, attention softmax and RoPE lifted), stored as float32 "
                                            "(loss_f64 / loss_pairs_f64 as float64)",
            "loss_value": float(res64["loss"]),
            "loss_pairs_value": float(res64["loss_pairs"]),
            "loss_value_f32_run": float(res32["loss"]),
            "loss_pairs_value_f32_run": float(res32["loss_pairs"]),
            "f32_vs_f64_max_abs_diff": diffs,
            "grad_magnitudes": grad_stats,
            "check_reloaded_adapter_max_abs_diff_f32": d_reload,
            "check_merged_model_loss_abs_diff_f32": d_merged,
            "grad_keys": ["grad." + k for k in grad_keys],
        },
        "keys": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                 for k, v in tensors.items()},
    }
    with open(OUT / "infonce.json", "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # ---- summary -----------------------------------------------------------
    print(f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}")
    for name, info in adapter_info.items():
        print(f"{name}: scale {info['scale']}, {len(info['adapter_keys'])} adapter tensors, e.g. "
              f"{info['adapter_keys'][0]}; merged e.g. {info['merged_keys'][0]}; "
              f"merge vs hand {info['merge_vs_hand_max_abs_diff']:.3g}")
    print(f"tokens per sentence: {attention_mask.sum(1).tolist()} (seq_len {input_ids.shape[1]})")
    print(f"loss (f64) {float(res64['loss']):.10f}  (f32 run {float(res32['loss']):.10f}); "
          f"loss_pairs (f64) {float(res64['loss_pairs']):.10f}")
    print("f32 vs f64:", json.dumps(diffs))
    print("grad magnitudes:", json.dumps(grad_stats))
    print(f"reloaded adapter diff {d_reload:.3g}; merged-model loss diff {d_merged:.3g}")
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"  {rel_path(p):60s} {p.stat().st_size / 1024:8.1f} KiB")
    print(f"total {total / 1024:.1f} KiB")
    assert total < 1.5 * 1024 * 1024, "fixtures exceed 1.5 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
