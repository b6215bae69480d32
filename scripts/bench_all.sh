#!/usr/bin/env bash
# Side-by-side benchmark: geom vs a torch reference of platonic-rep's mutual kNN.
#
# Runs, in one go and on the same machine:
#   * mutual kNN (k = 10) on the N x D grid, geom (the `scale` bench binary, `--grid` mode)
#     and torch (scripts/bench_peer.py), interleaved point by point so that
#     background load affects both sides alike; median of $REPS runs each;
#   * the raw f32 GEMM rate 4096x2048 . 2048x4096 (geom: ndarray -> system
#     OpenBLAS; torch: its own BLAS), and geom's one-side kNN at N=4096, D=2048
#     (same GEMM + top-k selection) as a fraction of the GEMM rate;
#   * geom's kNN time split: blocked GEMMs alone vs the whole kNN;
#   * anisotropy of 37 layers x 1000 x 3584;
#   * the scale run: mutual kNN at N = 100,000, D = 256 with its peak RSS.
# and prints a markdown table (also written to $BENCH_OUT).
#
# Usage (from the repository root):
#   bash scripts/bench_all.sh            # full grid, N in {1024, 4096, 16384}
#   QUICK=1 bash scripts/bench_all.sh    # N in {1024, 4096} only
#
# Environment:
#   QUICK=1            skip N = 16384
#   REPS=3             repetitions per grid point (median reported)
#   REPS_LARGE=$REPS   repetitions at N >= 16384
#   PEER_TIMEOUT=1800  seconds before one torch grid point is declared "did not finish"
#   SKIP_SCALE=1       skip the N = 100,000 scale run
#   PYTHON=python3     interpreter with torch (scripts/requirements.txt)
#   CARGO_TARGET_DIR   default /tmp/bench-target
#   BENCH_OUT          default /tmp/bench_results.md
#   GEOM_REV           label of the measured geom version (default: git HEAD, "+dirty" if src/ differs)
set -uo pipefail

cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/bench-target}"
QUICK="${QUICK:-0}"
REPS="${REPS:-3}"
REPS_LARGE="${REPS_LARGE:-$REPS}"
PEER_TIMEOUT="${PEER_TIMEOUT:-1800}"
SKIP_SCALE="${SKIP_SCALE:-0}"
PYTHON="${PYTHON:-python3}"
BENCH_OUT="${BENCH_OUT:-/tmp/bench_results.md}"

DS=(2048 3584)
if [[ "$QUICK" == "1" ]]; then
    NS=(1024 4096)
else
    NS=(1024 4096 16384)
fi

WORK="$(mktemp -d /tmp/geom-bench.XXXXXX)"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
echo "bench_all: logs and raw JSON in $WORK" >&2

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

log "building the scale bench (release/bench profile, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
# Build once and run that executable, so that edits to the sources during the
# run cannot mix versions of geom within one table.
if ! cargo bench --no-default-features --bench scale --no-run --message-format=json >"$WORK/build.json" 2>"$WORK/build.log"; then
    cat "$WORK/build.log" >&2
    echo "bench_all: build failed" >&2
    exit 1
fi
GEOM_BIN="$("$PYTHON" -c '
import json, sys
exe = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "scale" and m.get("executable"):
        exe = m["executable"]
print(exe or "")
' "$WORK/build.json")"
if [[ -z "$GEOM_BIN" || ! -x "$GEOM_BIN" ]]; then
    echo "bench_all: could not find the scale bench executable (see $WORK/build.json)" >&2
    exit 1
fi
cp "$GEOM_BIN" "$WORK/scale-bench"
GEOM_BIN="$WORK/scale-bench"
if [[ -z "${GEOM_REV:-}" ]]; then
    GEOM_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if ! git diff --quiet HEAD -- src Cargo.toml 2>/dev/null; then GEOM_REV="$GEOM_REV+dirty"; fi
fi
log "geom $GEOM_REV: $GEOM_BIN"

# geom ARGS...: run the scale bench binary in the given mode; JSON lines to $RESULTS.
geom() {
    if ! "$GEOM_BIN" --bench "$@" >>"$RESULTS" 2>>"$WORK/geom.err"; then
        log "geom $* failed (see $WORK/geom.err)"
        echo "{\"bench\":\"error\",\"impl\":\"geom\",\"args\":\"$*\"}" >>"$RESULTS"
    fi
}

# peer N D REPS: one torch grid point, with a timeout and OOM detection.
peer() {
    local n="$1" d="$2" reps="$3" out rc t0
    out="$WORK/peer_${n}_${d}.jsonl"
    t0=$SECONDS
    timeout --signal=KILL "$PEER_TIMEOUT" "$PYTHON" scripts/bench_peer.py --n "$n" --d "$d" --reps "$reps" \
        >"$out" 2>"$WORK/peer_${n}_${d}.err"
    rc=$?
    if [[ $rc -eq 0 ]] && [[ -s "$out" ]]; then
        cat "$out" >>"$RESULTS"
        return
    fi
    local status
    if [[ $rc -eq 137 ]]; then
        # SIGKILL: our timeout, or (earlier than that) the kernel's OOM killer.
        if (( SECONDS - t0 >= PEER_TIMEOUT - 1 )); then
            status="timeout"
        else
            status="oom"
        fi
    else
        status="error rc=$rc"
    fi
    # Anything the script managed to print (e.g. a status line) still counts.
    cat "$out" >>"$RESULTS"
    echo "{\"bench\":\"mutual_knn\",\"impl\":\"torch\",\"n\":$n,\"d\":$d,\"status\":\"$status\",\"timeout_s\":$PEER_TIMEOUT}" >>"$RESULTS"
    log "torch N=$n D=$d: $status (see $WORK/peer_${n}_${d}.err)"
}

for d in "${DS[@]}"; do
    for n in "${NS[@]}"; do
        reps="$REPS"
        [[ "$n" -ge 16384 ]] && reps="$REPS_LARGE"
        log "mutual kNN N=$n D=$d: geom"
        geom --grid --n "$n" --d "$d" --reps "$reps"
        log "mutual kNN N=$n D=$d: torch"
        peer "$n" "$d" "$reps"
    done
done

log "GEMM 4096x2048x4096 + kNN kernel: geom"
geom --gemm --reps "$REPS"
log "GEMM 4096x2048x4096: torch"
"$PYTHON" scripts/bench_peer.py --gemm --reps "$REPS" >>"$RESULTS" 2>>"$WORK/peer_gemm.err" ||
    log "torch GEMM failed (see $WORK/peer_gemm.err)"

BD_NS="4096"
[[ "$QUICK" == "1" ]] || BD_NS="4096,16384"
log "kNN breakdown N=$BD_NS D=256,2048,3584: geom"
geom --breakdown --n "$BD_NS" --d 256,2048,3584 --reps "$REPS"

log "anisotropy 37 x 1000 x 3584: geom"
geom --anisotropy --reps 7

if [[ "$SKIP_SCALE" != "1" ]]; then
    log "scale: mutual kNN N=100000 D=256: geom"
    geom --scale
fi

"$PYTHON" - "$RESULTS" "$QUICK" "$GEOM_REV" <<'EOF' | tee "$BENCH_OUT"
import json, os, platform, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
quick = sys.argv[2] == "1"
rev = sys.argv[3]

def find(bench, impl=None, **kw):
    out = [r for r in rows if r.get("bench") == bench and (impl is None or r.get("impl") == impl)
           and all(r.get(k) == v for k, v in kw.items())]
    return out[-1] if out else None

def cpu():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"

print(f"## geom vs torch reference — mutual kNN (k = 10), float32, CPU")
print()
print(f"geom at `{rev}`. Machine: {cpu()}, {os.cpu_count()} cores; torch with `set_num_threads(2)`; "
      f"medians of the repetitions; {'QUICK run (N = 16384 skipped)' if quick else 'full grid'}.")
print()
print("| N | D | geom ms | torch ms | speed-up (torch/geom) | geom peak RSS MB | torch peak RSS MB |")
print("|---:|---:|---:|---:|---:|---:|---:|")
pts = sorted({(r["n"], r["d"]) for r in rows if r.get("bench") == "mutual_knn"}, key=lambda p: (p[1], p[0]))
for n, d in pts:
    g = find("mutual_knn", "geom", n=n, d=d)
    t = find("mutual_knn", "torch", n=n, d=d)
    gms = f"{g['ms']:.1f}" if g else "failed"
    if t is None:
        tms, ratio, trss = "missing", "–", "–"
    elif t.get("status") == "ok":
        tms = f"{t['ms']:.1f}"
        ratio = f"{t['ms'] / g['ms']:.2f}×" if g else "–"
        trss = f"{t['peak_rss_mb']:.0f}"
    else:
        st = t.get("status", "?")
        label = {"oom": "out of memory", "timeout": f"did not finish (> {t.get('timeout_s')} s)"}.get(st, st)
        tms, ratio, trss = label, "–", f"{t['peak_rss_mb']:.0f}" if "peak_rss_mb" in t else "–"
    grss = f"{g['peak_rss_mb']:.0f}" if g else "–"
    print(f"| {n} | {d} | {gms} | {tms} | {ratio} | {grss} | {trss} |")
print()
print("Peak RSS is per process (VmHWM / ru_maxrss) and includes the two random inputs; "
      "the torch process also holds the torch libraries (~0.5 GB).")
print()

print("| other measurement | value |")
print("|---|---|")
a = find("anisotropy", "geom")
if a:
    print(f"| anisotropy, {a['layers']} layers × {a['n']} × {a['d']} (all layers) | "
          f"{a['ms']:.1f} ms ({a['gb_per_s']:.1f} GB/s; target < 50 ms: {'met' if a['met'] else 'NOT met'}) |")
gg = find("gemm", "geom-openblas")
tg = find("gemm", "torch")
if gg:
    print(f"| GEMM f32 4096×2048·2048×4096, geom (ndarray → system OpenBLAS) | "
          f"{gg['gflops']:.1f} GFLOP/s ({gg['ms']:.0f} ms) |")
if tg:
    print(f"| GEMM f32 4096×2048·2048×4096, torch {tg['torch']} ({tg['blas']}) | "
          f"{tg['gflops']:.1f} GFLOP/s ({tg['ms']:.0f} ms) |")
kk = find("knn_kernel", "geom")
if kk:
    print(f"| geom `knn` one side N=4096 D=2048 (2·N²·D flops) | {kk['gflops']:.1f} GFLOP/s "
          f"({kk['ms']:.0f} ms) = {100 * kk['fraction_of_gemm']:.0f}% of the OpenBLAS GEMM rate |")
for b in [r for r in rows if r.get("bench") == "knn_breakdown"]:
    print(f"| geom `knn` N={b['n']} D={b['d']}: blocked GEMMs alone vs whole kNN "
          f"(block {b['block_rows']} rows) | GEMM {b['gemm_ms']:.0f} ms ({b['gemm_gflops']:.0f} GFLOP/s) of "
          f"{b['knn_ms']:.0f} ms; selection + rest {b['rest_ms']:.0f} ms ({100 * b['rest_share']:.0f}%, of which "
          f"~{b['block_alloc_touch_ms']:.0f} ms first-touch of the fresh block buffer); "
          f"`align`'s per-side prep (check + copy + normalise) {b['prep_ms']:.0f} ms |")
sc = find("scale", "geom") or find("scale")
if sc:
    print(f"| scale: mutual kNN N={sc['n']:,} D={sc['d']} k={sc['k']} (two sides) | "
          f"{sc['seconds']:.1f} s, peak RSS {sc['peak_rss_mb']:.0f} MB "
          f"(target < 2 GB: {'met' if sc['peak_rss_mb'] < 2000 else 'NOT met'}) |")
errs = [r for r in rows if r.get("bench") == "error"]
for e in errs:
    print(f"| geom run failed | `{e['args']}` |")
print()
if sc:
    print("Scale run JSON: `" + json.dumps({k: sc[k] for k in ("n", "d", "k", "seconds", "peak_rss_mb")}) + "`")
EOF
echo "bench_all: table written to $BENCH_OUT" >&2
