#!/usr/bin/env bash
# What data-parallel training costs and buys on this machine, the inputs of the scaling estimate in the
# README's "Data-parallel training": the all-reduce's latency and bandwidth on 2 ranks (bench_allreduce),
# then per config the seconds per epoch of 1 rank x 2 threads against 2 ranks x 1 thread, the latter
# with one all-reduce after the backward (--dist-bucket-mb 0), with the default 4 MB buckets started
# during the backward, and with 0.25 MB buckets (a bucket per parameter here, so the last layer's
# gradients reduce while the first layer's backward runs). From rank 0's metrics.jsonl: `after` is the
# share of the epoch in the collectives after the backward (train.dist.reduce_seconds: communication the
# backward did not hide, plus waiting for the slower rank), `hook` the share in the bucket hook inside
# the backward (packing, starting, progressing). Timings are ratios within one run: the machine may be
# shared.
#
#   bash tools/bench/dist_scaling.sh [BUILD_BIN_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${1:-build/bin}"
epochs="${2:-2}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mpi=(mpirun --oversubscribe --allow-run-as-root -x FPI_NUM_THREADS -np 2)

FPI_NUM_THREADS=1 "${mpi[@]}" "$bin/bench_allreduce"
echo

run() {  # NAME CONFIG ARGS...
  local name="$1" config="$2"
  shift 2
  local args=("models/$config.json" --epochs "$epochs" --quiet "$@")
  FPI_NUM_THREADS=2 "$bin/fpi" train "${args[@]}" --out "$out/$name-one" >/dev/null
  FPI_NUM_THREADS=1 "${mpi[@]}" "$bin/fpi" train "${args[@]}" --dist-bucket-mb 0 --out "$out/$name-whole" >/dev/null
  FPI_NUM_THREADS=1 "${mpi[@]}" "$bin/fpi" train "${args[@]}" --out "$out/$name-buckets" >/dev/null
  FPI_NUM_THREADS=1 "${mpi[@]}" "$bin/fpi" train "${args[@]}" --dist-bucket-mb 0.25 --out "$out/$name-small" \
    >/dev/null
}
run denoising denoising_fpi_nn --set data.patches_per_epoch=1280 --set data.validation_images=2 --set eval.every=1000
run bibtex_fpi_nn bibtex_fpi_nn --set eval.every=1000
run bibtex_feedforward bibtex_feedforward --set eval.every=1000

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def epochs(run):
    return [json.loads(line) for line in open(f"{out}/{run}/metrics.jsonl") if line.strip()]
def share(run, key):
    return f"{100 * run['train']['dist'][key] / run['seconds']:5.1f}%"
print("seconds of training per epoch: 1x2 = 1 rank x 2 threads; 2 ranks x 1 thread with one all-reduce after")
print("the backward (one), 4 MB buckets, 0.25 MB buckets; after = share of the epoch in the collectives after")
print("the backward, hook = share in the bucket hook during it, n = buckets")
print(f"{'config':19} {'ep':>2} {'1x2':>6} {'one':>6} {'after':>6} {'4 MB':>6} {'after':>6} {'hook':>6} {'n':>2}"
      f" {'0.25 MB':>7} {'after':>6} {'hook':>6} {'n':>2}")
for name in ["denoising", "bibtex_fpi_nn", "bibtex_feedforward"]:
    runs = zip(epochs(f"{name}-one"), epochs(f"{name}-whole"), epochs(f"{name}-buckets"), epochs(f"{name}-small"))
    for a, w, b, s in runs:
        print(f"{name:19} {a['epoch']:2d} {a['seconds']:6.2f} {w['seconds']:6.2f} {share(w, 'reduce_seconds')} "
              f"{b['seconds']:6.2f} {share(b, 'reduce_seconds')} {share(b, 'overlap_seconds')} "
              f"{b['train']['dist']['buckets']:2d} {s['seconds']:7.2f} {share(s, 'reduce_seconds')} "
              f"{share(s, 'overlap_seconds')} {s['train']['dist']['buckets']:2d}")
PY
