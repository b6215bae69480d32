"""Generate the embedded demo stores: assets/demo/before.h5, assets/demo/after.h5.

These hold SYNTHETIC pooled hidden states, not a real model's: they stand in
for a real extraction until geom can run Qwen2.5-VL itself (issue 4 replaces
them). They are written with h5py in geom's store schema v1, which also shows
that stores written by other tools are analysable.

The generator mimics the qualitative picture of LCO-Emb's Figures 1-2 so the
demo curves are meaningful to look at:

* every row i of a pair shares a latent "content" vector z_i (16 topics), which
  both modalities express through their own random projection, so nearest
  neighbours partly agree across modalities (kernel alignment above chance);
* a direction common to all rows of a modality grows with depth, so anisotropy
  rises layer by layer ("before CL"); the "after CL" store shrinks that common
  direction in the upper layers for both modalities and strengthens the shared
  content, so anisotropy drops and alignment rises.

Run: python scripts/make_demo_store.py   (numpy + h5py, see requirements.txt)
"""

from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "demo"

N_LAYERS = 13  # embeddings + 11 decoder layers + final norm
N_ROWS = 256
DIM = 32
LATENT = 8
TOPICS = 16
SEED = 2510_11693


def layer_names(n):
    names = ["embeddings"] + [f"layers.{i}" for i in range(n - 2)] + [f"layers.{n - 2}.final_norm"]
    return names


def make(stage: str, rng_seed: int):
    rng = np.random.default_rng(rng_seed)
    topic_centres = rng.normal(size=(TOPICS, LATENT))
    topics = rng.integers(0, TOPICS, size=N_ROWS)
    z = topic_centres[topics] + 0.6 * rng.normal(size=(N_ROWS, LATENT))
    out = {}
    for m, common_scale in (("text", 1.0), ("image", 1.4)):
        mrng = np.random.default_rng(rng_seed + (1 if m == "text" else 2))
        mu = mrng.normal(size=DIM)
        mu /= np.linalg.norm(mu)
        proj0 = mrng.normal(size=(LATENT, DIM)) / np.sqrt(LATENT)
        hidden = np.empty((N_LAYERS, N_ROWS, DIM), dtype=np.float32)
        for layer in range(N_LAYERS):
            t = layer / (N_LAYERS - 1)
            drift = mrng.normal(size=(LATENT, DIM)) / np.sqrt(LATENT)
            proj = proj0 + 0.3 * t * drift
            content = (0.4 + 0.8 * np.sin(np.pi * min(t * 1.2, 1.0))) if stage == "before" else (0.6 + 1.1 * np.sin(np.pi * min(t * 1.1, 1.0)))
            common = common_scale * (0.8 + 11.0 * t**1.5)
            if stage == "after":
                common *= 1.0 - 0.7 * t  # CL flattens the upper layers' cone
            noise = mrng.normal(size=(N_ROWS, DIM)) * (1.0 + 0.3 * (1 - t))
            h = common * mu + content * (z @ proj) + noise
            if layer == N_LAYERS - 1:  # final RMSNorm-like rescale
                h = h / np.sqrt((h**2).mean(axis=1, keepdims=True))
            hidden[layer] = h.astype(np.float32)
        out[m] = hidden
    return out


def write(path: Path, stage: str, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    vlen = h5py.string_dtype("utf-8")
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["geom_store_version"] = np.uint32(1)
        f.attrs["model"] = f"synthetic demo states ({stage} CL), scripts/make_demo_store.py"
        f.attrs["model_fingerprint"] = f"synthetic-{stage}-{SEED}"
        f.attrs["dataset"] = "demo: synthetic text-image pairs"
        f.attrs["pooling"] = "last"
        f.attrs["created_by"] = "scripts/make_demo_store.py (h5py)"
        for m, hidden in data.items():
            g = f.create_group(m)
            g.create_dataset("hidden", data=hidden, chunks=(1, min(N_ROWS, 256), DIM))
            g.create_dataset("ids", data=np.array([f"demo-{i:04d}" for i in range(N_ROWS)], dtype=object), dtype=vlen)
            g.attrs["rows_done"] = np.uint64(N_ROWS)
            g.attrs.create("layer_names", np.array(layer_names(N_LAYERS), dtype=object), dtype=vlen)
            g.attrs["prompt"] = ""


def main():
    for stage, seed in (("before", SEED), ("after", SEED)):
        write(OUT / f"{stage}.h5", stage, make(stage, seed))
        print("wrote", OUT / f"{stage}.h5")


if __name__ == "__main__":
    main()
