#!/usr/bin/env python3
"""Reference fixture generator for the `geom` metric implementations.

Generates small, deterministic inputs and the expected values of the
representation-geometry metrics that the Rust crate reimplements, so that the
Rust test suite can compare against an independent Python (torch / numpy /
scikit-learn) implementation.

The reference *definitions* are those of

* minyoungg/platonic-rep ``metrics.py`` (class ``AlignmentMetrics``): mutual_knn,
  cycle_knn, lcs_knn, edit_distance_knn, jaccard_knn, cka, unbiased_cka,
  cknna, svcca, and the helpers ``compute_knn``, ``hsic_biased``,
  ``hsic_unbiased``, ``remove_outliers``;
* LCO-Embedding ``Analysis/anisotropy.py`` (mean pairwise cosine similarity);
* Kornblith et al. (2019) CKA demo notebook (the Kornblith check values).

The code below is an independent re-implementation written from those
definitions (it does not copy code from those repositories).

Outputs (written to ``tests/fixtures/metrics/`` relative to the repo root,
whatever the current working directory):

* ``aniso_x.npy``                 float32 300x48, anisotropy input
* ``a.npy``, ``b.npy``            float32 200x64 / 200x48, alignment inputs
* ``kornblith_x.npy``, ``kornblith_y.npy``  float64 100x10, Kornblith CKA demo
* ``knn_a_k10.npy``, ``knn_b_k10.npy``      int64 200x10, kNN of normalised a / b
* ``expected.json``               all expected metric values (full precision)

Run (from anywhere)::

    pip install -r scripts/requirements.txt
    python scripts/gen_metric_fixtures.py

Conventions shared by every kNN-based metric: the Gram matrix is computed in
float64 (float32 inputs cast to float64), its diagonal is set to -1e8 (self
excluded), and neighbours are ``torch.argsort(G, dim=1, descending=True,
stable=True)[:, :k]`` -- the stable descending sort breaks exact ties by the
lowest index.  The script verifies that apart from exact duplicate rows no two
candidate similarities in the top-(k+1) of any row are closer than 1e-6 (for
unnormalised inputs: 1e-6 relative to the row's top value), and that an
all-float32 computation yields the same neighbours; otherwise the inputs are
re-drawn with seed BASE_SEED + offset (the seed used is recorded).  This keeps
the fixture robust to float32 GEMM rounding on the consumer side.  Exact ties
only arise from exact duplicate rows and are broken by the lowest index.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy
import sklearn
import torch
from sklearn.cross_decomposition import CCA
from sklearn.metrics.pairwise import cosine_similarity

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "metrics"

BASE_SEED = 20251011
TIE_GAP = 1e-6  # minimum allowed gap between candidate similarities
NEAR_TIE = 1e-4  # deliberate near-tie gap between two neighbours

torch.set_num_threads(1)  # deterministic CPU reductions
DT = torch.float64


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def to64(x) -> torch.Tensor:
    """float32 (or float64) numpy array -> float64 torch tensor."""
    return torch.from_numpy(np.asarray(x)).to(DT)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation, x / max(||x||, 1e-12) (torch F.normalize)."""
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / torch.clamp(n, min=1e-12)


def clamp_quantile(x: torch.Tensor, q: float) -> tuple[torch.Tensor, int, float]:
    """platonic-rep ``remove_outliers`` (exact variant), applied BEFORE normalisation.

    qv = sort(|x|.flatten())[int(q * numel)]; x = clamp(x, -qv, qv).
    Returns (clamped x, index used, qv).
    """
    flat = torch.sort(x.abs().flatten()).values
    idx = int(q * x.numel())
    qv = flat[idx]
    return torch.clamp(x, -qv, qv), idx, float(qv)


def prep(x_np: np.ndarray, normalize_rows: bool, clamp_q: float | None) -> torch.Tensor:
    x = to64(x_np)
    if clamp_q is not None:
        x, _, _ = clamp_quantile(x, clamp_q)
    if normalize_rows:
        x = normalize(x)
    return x


# --------------------------------------------------------------------------
# kNN (platonic-rep metrics.py: compute_knn)
# --------------------------------------------------------------------------

def gram_self_excluded(x: torch.Tensor) -> torch.Tensor:
    g = x @ x.T
    g.fill_diagonal_(-1e8)
    return g


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N x k, int64) of the k nearest rows by inner product, self excluded,
    exact ties broken by lowest index (stable descending sort)."""
    g = gram_self_excluded(x)
    return torch.argsort(g, dim=1, descending=True, stable=True)[:, :k]


# --------------------------------------------------------------------------
# kNN alignment metrics (platonic-rep metrics.py)
# --------------------------------------------------------------------------

def mutual_knn(ka: np.ndarray, kb: np.ndarray) -> float:
    """platonic-rep ``mutual_knn``: mean_i |knnA(i) ∩ knnB(i)| / k."""
    k = ka.shape[1]
    return float(np.mean([len(set(r1) & set(r2)) / k for r1, r2 in zip(ka, kb)]))


def cycle_knn(ka: np.ndarray, kb: np.ndarray) -> float:
    """platonic-rep ``cycle_knn``: 1 if i ∈ ∪_{j∈knnB(i)} knnA(j), mean over i."""
    hits = [1.0 if i in set(ka[kb[i]].ravel().tolist()) else 0.0 for i in range(ka.shape[0])]
    return float(np.mean(hits))


def lcs_len(s: list[int], t: list[int]) -> int:
    dp = [[0] * (len(t) + 1) for _ in range(len(s) + 1)]
    for i in range(1, len(s) + 1):
        for j in range(1, len(t) + 1):
            if s[i - 1] == t[j - 1]:
                dp[i][j] = dp[i - 1][j - 1] + 1
            else:
                dp[i][j] = max(dp[i - 1][j], dp[i][j - 1])
    return dp[len(s)][len(t)]


def levenshtein(s: list[int], t: list[int]) -> int:
    prev = list(range(len(t) + 1))
    for i in range(1, len(s) + 1):
        cur = [i] + [0] * len(t)
        for j in range(1, len(t) + 1):
            cost = 0 if s[i - 1] == t[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        prev = cur
    return prev[len(t)]


def lcs_knn(ka: np.ndarray, kb: np.ndarray) -> float:
    """platonic-rep ``lcs_knn``: mean_i LCS length of the ordered lists (not / k)."""
    return float(np.mean([lcs_len(list(r1), list(r2)) for r1, r2 in zip(ka, kb)]))


def edit_distance_knn(ka: np.ndarray, kb: np.ndarray) -> float:
    """platonic-rep ``edit_distance_knn``: 1 - mean_i Levenshtein(knnA(i), knnB(i)) / k."""
    k = ka.shape[1]
    d = np.mean([levenshtein(list(r1), list(r2)) for r1, r2 in zip(ka, kb)])
    return float(1.0 - d / k)


def jaccard_knn(ka: np.ndarray, kb: np.ndarray) -> float:
    """platonic-rep ``jaccard_knn``: mean_i |∩| / |∪|."""
    vals = [len(set(r1) & set(r2)) / len(set(r1) | set(r2)) for r1, r2 in zip(ka, kb)]
    return float(np.mean(vals))


KNN_METRICS = {
    "mutual_knn": mutual_knn,
    "cycle_knn": cycle_knn,
    "lcs_knn": lcs_knn,
    "edit_distance_knn": edit_distance_knn,
    "jaccard_knn": jaccard_knn,
}


# --------------------------------------------------------------------------
# HSIC / CKA family (platonic-rep metrics.py: hsic_biased, hsic_unbiased,
# cka, unbiased_cka, cknna)
# --------------------------------------------------------------------------

def hsic_biased(K: torch.Tensor, L: torch.Tensor) -> float:
    """platonic-rep ``hsic_biased``: trace(K H L H), H = I - 1/n."""
    n = K.shape[0]
    H = torch.eye(n, dtype=DT) - 1.0 / n
    return float(torch.trace(K @ H @ L @ H))


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> float:
    """platonic-rep ``hsic_unbiased`` (Song et al. 2012 unbiased estimator)."""
    m = K.shape[0]
    Kt = K.clone()
    Kt.fill_diagonal_(0.0)
    Lt = L.clone()
    Lt.fill_diagonal_(0.0)
    v = (
        torch.sum(Kt * Lt.T)
        + torch.sum(Kt) * torch.sum(Lt) / ((m - 1) * (m - 2))
        - 2.0 * torch.sum(Kt @ Lt) / (m - 2)
    )
    return float(v / (m * (m - 3)))


def cka_from_kernels(K: torch.Tensor, L: torch.Tensor, hsic) -> float:
    return hsic(K, L) / (np.sqrt(hsic(K, K) * hsic(L, L)) + 1e-6)


def linear_kernel(x: torch.Tensor) -> torch.Tensor:
    return x @ x.T


def rbf_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||x_i - x_j||^2 / (2 sigma^2)), squared distances from explicit differences."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return torch.exp(-d2 / (2.0 * sigma**2))


def cka_linear(a: torch.Tensor, b: torch.Tensor) -> float:
    """platonic-rep ``cka`` (kernel_metric='ip', unbiased=False)."""
    return float(cka_from_kernels(linear_kernel(a), linear_kernel(b), hsic_biased))


def cka_rbf(a: torch.Tensor, b: torch.Tensor, sigma: float) -> float:
    """platonic-rep ``cka`` (kernel_metric='rbf', rbf_sigma=sigma, unbiased=False)."""
    return float(cka_from_kernels(rbf_kernel(a, sigma), rbf_kernel(b, sigma), hsic_biased))


def unbiased_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """platonic-rep ``unbiased_cka`` (linear kernel, hsic_unbiased)."""
    return float(cka_from_kernels(linear_kernel(a), linear_kernel(b), hsic_unbiased))


def topk_mask(K: torch.Tensor, k: int) -> torch.Tensor:
    Khat = K.clone()
    Khat.fill_diagonal_(float("-inf"))
    idx = torch.argsort(Khat, dim=1, descending=True, stable=True)[:, :k]
    mask = torch.zeros_like(K)
    mask.scatter_(1, idx, 1.0)
    return mask


def cknna(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """platonic-rep ``cknna`` (unbiased=True, the default)."""
    K = linear_kernel(a)
    L = linear_kernel(b)
    mK = topk_mask(K, k)
    mL = topk_mask(L, k)

    def sim(K1, L1, m1, m2):
        mask = m1 * m2
        return hsic_unbiased(mask * K1, mask * L1)

    s_kl = sim(K, L, mK, mL)
    s_kk = sim(K, K, mK, mK)
    s_ll = sim(L, L, mL, mL)
    return float(s_kl / (np.sqrt(s_kk * s_ll) + 1e-6))


# --------------------------------------------------------------------------
# SVCCA (platonic-rep metrics.py: svcca)
# --------------------------------------------------------------------------

def svcca(a: torch.Tensor, b: torch.Tensor, cca_dim: int) -> tuple[float, float]:
    """platonic-rep ``svcca``; returns (sklearn CCA value, closed-form value)."""

    def preprocess(x):
        x = x - x.mean(dim=0, keepdim=True)
        return x / (x.std(dim=0, correction=1, keepdim=True) + 1e-8)

    def top_left_singular(x):
        # NOTE: the reference uses a randomized low-rank SVD (torch.svd_lowrank);
        # we use the exact SVD so the fixture is deterministic.
        U, _, _ = torch.linalg.svd(x, full_matrices=False)
        return U[:, :cca_dim]

    U1 = top_left_singular(preprocess(a)).numpy()
    U2 = top_left_singular(preprocess(b)).numpy()

    cca = CCA(n_components=cca_dim, max_iter=5000, tol=1e-12)
    cca.fit(U1, U2)
    U1c, U2c = cca.transform(U1, U2)
    corrs = [np.corrcoef(U1c[:, i], U2c[:, i])[0, 1] for i in range(cca_dim)]
    value = float(np.mean(corrs))

    # Closed form: canonical correlations between two orthonormal bases are the
    # singular values of U1^T U2.
    sv = np.linalg.svd(U1.T @ U2, compute_uv=False)
    closed = float(np.mean(sv))
    return value, closed


# --------------------------------------------------------------------------
# Anisotropy (LCO-Embedding Analysis/anisotropy.py)
# --------------------------------------------------------------------------

def anisotropy_lco(x: np.ndarray) -> float:
    """LCO Analysis/anisotropy.py: mean of the non-zero strict lower triangle of
    the cosine-similarity matrix."""
    C = cosine_similarity(x, x)
    lower = np.tril(C, k=-1)
    return float(lower.sum() / np.count_nonzero(lower))


def anisotropy_all_pairs(x: np.ndarray) -> float:
    """Exact mean cosine over all ordered pairs i != j."""
    C = cosine_similarity(x, x)
    n = x.shape[0]
    return float((C.sum() - np.trace(C)) / (n * (n - 1)))


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_orthogonal_unit(rng, u: np.ndarray) -> np.ndarray:
    v = rng.standard_normal(u.shape[0])
    v = v - (v @ u) * u
    return unit(v)


def plant_neighbours(rng, x: np.ndarray, q: int, rows_cos: list[tuple[int, float]]) -> None:
    """Overwrite rows so that cos(x[q], x[row]) == c exactly (before float32 cast),
    with the same norm as x[q]."""
    u = unit(x[q])
    norm = np.linalg.norm(x[q])
    for row, c in rows_cos:
        v = random_orthogonal_unit(rng, u)
        x[row] = norm * (c * u + np.sqrt(1.0 - c * c) * v)


def make_inputs(seed: int):
    rng = np.random.default_rng(seed)

    # 1. anisotropy input: randn + shared offset (|offset| = 6 -> cos ~ 36/84).
    offset = 6.0 * unit(rng.standard_normal(48))
    aniso = rng.standard_normal((300, 48)) + offset[None, :]
    aniso[8] = aniso[7]
    aniso = aniso.astype(np.float32)

    # 2. alignment inputs.
    N, Da, Db = 200, 64, 48
    a = rng.standard_normal((N, Da))
    # Near-ties in a (j1 < j2, the higher index gets the larger cosine):
    #   query 3: rows 20 / 30 at ranks 1-2 (gap 1e-4)
    plant_neighbours(rng, a, 3, [(20, 0.90), (30, 0.90 + NEAR_TIE)])
    #   query 5: rows 60..63 ranks 1-4, rows 70 / 90 straddle the k=5 boundary
    plant_neighbours(
        rng, a, 5,
        [(60, 0.95), (61, 0.94), (62, 0.93), (63, 0.92), (70, 0.85), (90, 0.85 + NEAR_TIE)],
    )
    a[11] = a[10]  # exact duplicate (in a and b)
    a[50] = a[40]  # exact duplicate (in a only)
    W = rng.standard_normal((Da, Db))
    b = 0.5 * (a @ W) + NOISE_SCALE * rng.standard_normal((N, Db))
    # Near-ties in b:
    #   query 100: rows 120 / 130 at ranks 1-2
    plant_neighbours(rng, b, 100, [(120, 0.90), (130, 0.90 + NEAR_TIE)])
    #   query 150: rows 160..168 ranks 1-9, rows 170 / 180 straddle the k=10 boundary
    plant_neighbours(
        rng, b, 150,
        [(160 + i, 0.97 - 0.01 * i) for i in range(9)] + [(170, 0.85), (180, 0.85 + NEAR_TIE)],
    )
    b[11] = b[10]
    return aniso, a.astype(np.float32), b.astype(np.float32)


NOISE_SCALE = 1.0


def duplicate_pairs(x: np.ndarray) -> set[tuple[int, int]]:
    _, inv, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    pairs = set()
    for g in np.nonzero(counts > 1)[0]:
        rows = np.nonzero(inv == g)[0]
        for i in rows:
            for j in rows:
                if i != j:
                    pairs.add((int(i), int(j)))
    return pairs


def tie_violations(x_np: np.ndarray, normalize_rows: bool, clamp_q, kmax: int) -> list:
    """Rows whose top-(kmax+1) candidates contain two values closer than TIE_GAP
    (relative to the row's top value for unnormalised inputs), excluding exact
    duplicate rows.  Also asserts duplicate columns of the Gram are bitwise equal."""
    x = prep(x_np, normalize_rows, clamp_q)
    dups = duplicate_pairs(x.numpy())
    g = gram_self_excluded(x)
    for i, j in dups:
        col_i, col_j = g[:, i].clone(), g[:, j].clone()
        col_i[[i, j]] = 0
        col_j[[i, j]] = 0
        assert torch.equal(col_i, col_j), f"duplicate rows {i},{j} give different Gram columns"
    order = torch.argsort(g, dim=1, descending=True, stable=True)[:, : kmax + 1]
    vals = torch.gather(g, 1, order)
    bad = []
    for r in range(x.shape[0]):
        scale = 1.0 if normalize_rows else max(1.0, float(vals[r, 0].abs()))
        for t in range(kmax):
            gap = float(vals[r, t] - vals[r, t + 1])
            j1, j2 = int(order[r, t]), int(order[r, t + 1])
            if gap < TIE_GAP * scale and (j1, j2) not in dups:
                bad.append((r, t, j1, j2, gap))
    return bad


def knn_float32(x_np: np.ndarray, normalize_rows: bool, clamp_q, k: int) -> np.ndarray:
    """Same kNN computed entirely in float32 (a proxy for a float32 consumer)."""
    x = torch.from_numpy(np.asarray(x_np, dtype=np.float32))
    if clamp_q is not None:
        qv = torch.sort(x.abs().flatten()).values[int(clamp_q * x.numel())]
        x = torch.clamp(x, -qv, qv)
    if normalize_rows:
        x = x / torch.clamp(torch.linalg.vector_norm(x, dim=1, keepdim=True), min=1e-12)
    g = x @ x.T
    g.fill_diagonal_(-1e8)
    return torch.argsort(g, dim=1, descending=True, stable=True)[:, :k].numpy()


def min_gap_report(x_np, normalize_rows, clamp_q, kmax):
    x = prep(x_np, normalize_rows, clamp_q)
    dups = duplicate_pairs(x.numpy())
    g = gram_self_excluded(x)
    order = torch.argsort(g, dim=1, descending=True, stable=True)[:, : kmax + 1]
    vals = torch.gather(g, 1, order)
    best = (np.inf, None)
    for r in range(x.shape[0]):
        for t in range(kmax):
            gap = float(vals[r, t] - vals[r, t + 1])
            j1, j2 = int(order[r, t]), int(order[r, t + 1])
            if (j1, j2) in dups:
                continue
            if gap < best[0]:
                best = (gap, (r, t, j1, j2))
    return best


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    # ---- draw inputs, re-drawing with a seed offset if near-ties are too tight
    # (normalize, clamp_q) variants whose kNN enter the fixture
    variants = [(True, None), (True, 0.95), (False, None)]
    for seed_offset in range(100):
        seed = BASE_SEED + seed_offset
        aniso, a, b = make_inputs(seed)
        problems = []
        for name, x in (("a", a), ("b", b)):
            for norm, cq in variants:
                v = tie_violations(x, norm, cq, kmax=10)
                if v:
                    problems.append((name, norm, cq, v[:3]))
                for k in (5, 10):
                    k64 = knn(prep(x, norm, cq), k).numpy()
                    if not np.array_equal(k64, knn_float32(x, norm, cq, k)):
                        problems.append((name, norm, cq, f"float32 kNN differs (k={k})"))
        if not problems:
            break
        print(f"seed {seed}: near-tie violations {problems}; re-drawing", file=sys.stderr)
    else:
        raise RuntimeError("no seed offset in 0..99 satisfied the tie-gap check")
    print(f"seed used: {seed} (offset {seed_offset})")
    for name, x in (("a", a), ("b", b)):
        for norm, cq in variants:
            gap, where = min_gap_report(x, norm, cq, 10)
            print(f"  min top-11 gap {name} normalize={norm} clamp_q={cq}: {gap:.3e} at {where}")

    # Sanity: the planted near-ties are resolved as intended.
    ka10 = knn(prep(a, True, None), 10).numpy()
    kb10 = knn(prep(b, True, None), 10).numpy()
    ka5 = knn(prep(a, True, None), 5).numpy()
    assert list(ka10[3, :2]) == [30, 20], ka10[3]
    assert list(ka5[5]) == [60, 61, 62, 63, 90], ka5[5]
    assert list(kb10[100, :2]) == [130, 120], kb10[100]
    assert list(kb10[150]) == [160 + i for i in range(9)] + [180], kb10[150]
    assert ka10[10, 0] == 11 and ka10[11, 0] == 10
    assert kb10[10, 0] == 11 and kb10[11, 0] == 10
    assert ka10[40, 0] == 50 and ka10[50, 0] == 40

    # ---- Kornblith CKA demo
    np.random.seed(1337)
    kx = np.random.randn(100, 10)
    ky = kx + np.random.randn(100, 10)

    np.save(OUT_DIR / "aniso_x.npy", aniso)
    np.save(OUT_DIR / "a.npy", a)
    np.save(OUT_DIR / "b.npy", b)
    np.save(OUT_DIR / "kornblith_x.npy", kx)
    np.save(OUT_DIR / "kornblith_y.npy", ky)
    np.save(OUT_DIR / "knn_a_k10.npy", ka10.astype(np.int64))
    np.save(OUT_DIR / "knn_b_k10.npy", kb10.astype(np.int64))

    # ---- anisotropy (LCO-Embedding Analysis/anisotropy.py)
    ax = aniso.astype(np.float64)
    axc = ax - ax.mean(axis=0, keepdims=True)
    anis = {
        "lco": anisotropy_lco(ax),
        "all_pairs": anisotropy_all_pairs(ax),
        "centered": anisotropy_lco(axc),
        "centered_all_pairs": anisotropy_all_pairs(axc),
    }

    # ---- alignment metrics (platonic-rep metrics.py)
    alignment = []

    def add(entry):
        alignment.append(entry)
        extra = f" closed_form={entry['closed_form']!r}" if "closed_form" in entry else ""
        print(
            f"  {entry['metric']:<18} k={entry.get('k')!s:<4} normalize={entry['normalize']!s:<5} "
            f"clamp_q={entry['clamp_q']!s:<4} value={entry['value']!r}{extra}"
        )

    def knn_entry(metric, k, norm, cq):
        ka = knn(prep(a, norm, cq), k).numpy()
        kb = knn(prep(b, norm, cq), k).numpy()
        add({"metric": metric, "k": k, "normalize": norm, "clamp_q": cq,
             "value": KNN_METRICS[metric](ka, kb)})

    print("alignment:")
    for k in (5, 10):
        for metric in KNN_METRICS:
            knn_entry(metric, k, True, None)
    knn_entry("mutual_knn", 10, True, 0.95)
    knn_entry("jaccard_knn", 10, True, 0.95)
    knn_entry("mutual_knn", 10, False, None)

    for norm in (False, True):
        add({"metric": "cka", "normalize": norm, "clamp_q": None,
             "value": cka_linear(prep(a, norm, None), prep(b, norm, None))})
    add({"metric": "cka_rbf", "sigma": 1.0, "normalize": True, "clamp_q": None,
         "value": cka_rbf(prep(a, True, None), prep(b, True, None), 1.0)})
    for norm in (False, True):
        add({"metric": "unbiased_cka", "normalize": norm, "clamp_q": None,
             "value": unbiased_cka(prep(a, norm, None), prep(b, norm, None))})
    for norm in (True, False):
        add({"metric": "cknna", "k": 10, "normalize": norm, "clamp_q": None,
             "value": cknna(prep(a, norm, None), prep(b, norm, None), 10)})
    sv, sv_closed = svcca(prep(a, False, None), prep(b, False, None), 10)
    add({"metric": "svcca", "cca_dim": 10, "normalize": False, "clamp_q": None,
         "value": sv, "closed_form": sv_closed})
    print(f"svcca sklearn - closed_form = {sv - sv_closed:.3e}")

    # clamp thresholds, for information
    clamp_info = {}
    for name, x in (("a", a), ("b", b)):
        _, idx, qv = clamp_quantile(to64(x), 0.95)
        clamp_info[name] = {"q": 0.95, "index": idx, "value": qv}

    # ---- Kornblith check values
    kK = linear_kernel(to64(kx))
    kL = linear_kernel(to64(ky))
    korn = {
        "linear_cka": float(cka_from_kernels(kK, kL, hsic_biased)),
        "unbiased_cka": float(cka_from_kernels(kK, kL, hsic_unbiased)),
    }
    assert round(korn["linear_cka"], 5) == 0.55761, korn
    assert round(korn["unbiased_cka"], 5) == 0.51346, korn

    print("anisotropy:", json.dumps(anis))
    print("kornblith:", json.dumps(korn))

    for v in [*anis.values(), *korn.values(), *(e["value"] for e in alignment)]:
        assert np.isfinite(v), v

    expected = {
        "generator": "scripts/gen_metric_fixtures.py",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
        },
        "seed": seed,
        "seed_offset": seed_offset,
        "inputs": {
            "aniso_x": {"file": "aniso_x.npy", "shape": list(aniso.shape), "dtype": "float32",
                        "duplicate_rows": [[7, 8]]},
            "a": {"file": "a.npy", "shape": list(a.shape), "dtype": "float32",
                  "duplicate_rows": [[10, 11], [40, 50]]},
            "b": {"file": "b.npy", "shape": list(b.shape), "dtype": "float32",
                  "duplicate_rows": [[10, 11]]},
            "kornblith_x": {"file": "kornblith_x.npy", "shape": [100, 10], "dtype": "float64"},
            "kornblith_y": {"file": "kornblith_y.npy", "shape": [100, 10], "dtype": "float64"},
            "knn_a_k10": {"file": "knn_a_k10.npy", "of": "a", "normalize": True, "k": 10},
            "knn_b_k10": {"file": "knn_b_k10.npy", "of": "b", "normalize": True, "k": 10},
        },
        # planted near-ties (normalised cosine gap 1e-4; the higher index is closer)
        "near_ties": [
            {"matrix": "a", "query": 3, "rows": [20, 30], "expected_order": [30, 20],
             "note": "ranks 1-2"},
            {"matrix": "a", "query": 5, "rows": [70, 90], "expected_order": [90, 70],
             "note": "ranks 5-6, straddle the k=5 boundary (90 in, 70 out)"},
            {"matrix": "b", "query": 100, "rows": [120, 130], "expected_order": [130, 120],
             "note": "ranks 1-2"},
            {"matrix": "b", "query": 150, "rows": [170, 180], "expected_order": [180, 170],
             "note": "ranks 10-11, straddle the k=10 boundary (180 in, 170 out)"},
        ],
        "clamp": clamp_info,
        "anisotropy": anis,
        "alignment": alignment,
        "kornblith": korn,
    }
    with open(OUT_DIR / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
