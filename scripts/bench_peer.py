#!/usr/bin/env python3
"""Peer timings for geom's benchmarks: a torch (CPU, float32) reference.

The mutual-kNN reference follows platonic-rep's definition (Huh et al. 2024),
written here from that definition:

* each side's rows are L2-normalised (``F.normalize``);
* the neighbours of row i are the k largest entries of row i of the full
  similarity matrix ``feats @ feats.T`` with the diagonal set to -1e8, found by
  a full descending ``argsort`` of every row, first k columns kept;
* each side's neighbour lists are scattered into a dense ``n x n`` 0/1 mask,
  and the score is the mean over rows of ``(mask_a * mask_b).sum(1) / k``.

So memory and time are dense in n x n, as in the reference.

Prints one JSON line per measurement (median of ``--reps`` runs, after a
warm-up on a tiny problem), in the same shape as
``cargo bench --bench scale -- --grid``.

Usage:
    python3 scripts/bench_peer.py --n 1024,4096 --d 2048,3584 [--reps 3] [--threads 2]
    python3 scripts/bench_peer.py --gemm
"""

import argparse
import json
import resource
import sys
import time


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def knn_reference(torch, F, feats, k):
    feats = F.normalize(feats, p=2, dim=-1)
    sim = feats @ feats.T
    sim.fill_diagonal_(-1e8)
    return sim.argsort(dim=1, descending=True)[:, :k]


def mutual_knn_reference(torch, F, a, b, k):
    n = a.shape[0]
    knn_a = knn_reference(torch, F, a, k)
    knn_b = knn_reference(torch, F, b, k)
    rows = torch.arange(n).unsqueeze(1)
    mask_a = torch.zeros(n, n)
    mask_b = torch.zeros(n, n)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    per_row = (mask_a * mask_b).sum(dim=1) / k
    return per_row.mean().item()


def median(xs):
    xs = sorted(xs)
    m = len(xs)
    return xs[m // 2] if m % 2 else 0.5 * (xs[m // 2 - 1] + xs[m // 2])


def emit(obj):
    print(json.dumps(obj), flush=True)


def run_grid(torch, F, ns, ds, k, reps):
    # Warm-up on a tiny problem (thread pools, lazy library initialisation).
    with torch.no_grad():
        mutual_knn_reference(torch, F, torch.randn(64, 16), torch.randn(64, 16), k)
    for d in ds:
        for n in ns:
            g = torch.Generator().manual_seed(1000 * n + d)
            a = torch.randn(n, d, generator=g, dtype=torch.float32)
            b = torch.randn(n, d, generator=g, dtype=torch.float32)
            runs = []
            score = float("nan")
            try:
                with torch.no_grad():
                    for _ in range(reps):
                        t = time.perf_counter()
                        score = mutual_knn_reference(torch, F, a, b, k)
                        runs.append(time.perf_counter() - t)
            except (RuntimeError, MemoryError) as e:  # allocation failures
                emit({
                    "bench": "mutual_knn", "impl": "torch", "n": n, "d": d, "k": k,
                    "status": "oom" if "memory" in str(e).lower() or isinstance(e, MemoryError) else "error",
                    "error": str(e)[:200], "runs_ms": [r * 1e3 for r in runs],
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                })
                continue
            ms = median(runs) * 1e3
            emit({
                "bench": "mutual_knn", "impl": "torch", "n": n, "d": d, "k": k,
                "status": "ok", "ms": round(ms, 2), "runs_ms": [round(r * 1e3, 2) for r in runs],
                "gflops": round(4.0 * n * n * d / (ms / 1e3) / 1e9, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1), "score": round(score, 6),
            })
            del a, b


def run_gemm(torch, reps):
    m, kd, n = 4096, 2048, 4096
    g = torch.Generator().manual_seed(1)
    a = torch.randn(m, kd, generator=g)
    b = torch.randn(kd, n, generator=g)
    with torch.no_grad():
        a @ b  # warm-up
        runs = []
        for _ in range(reps):
            t = time.perf_counter()
            c = a @ b
            runs.append(time.perf_counter() - t)
    s = median(runs)
    emit({
        "bench": "gemm", "impl": "torch", "m": m, "k": kd, "n": n,
        "ms": round(s * 1e3, 2), "runs_ms": [round(r * 1e3, 2) for r in runs],
        "gflops": round(2.0 * m * kd * n / s / 1e9, 1),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "torch": torch.__version__,
    })
    del c


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=ints, default=[1024, 4096, 16384])
    p.add_argument("--d", type=ints, default=[2048, 3584])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gemm", action="store_true", help="time the 4096x2048x4096 GEMM instead")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    if args.gemm:
        run_gemm(torch, max(args.reps, 3))
    else:
        run_grid(torch, F, args.n, args.d, args.k, max(args.reps, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
