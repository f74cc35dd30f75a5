#!/usr/bin/env bash
# Data-parallel training on the denoising config (models/denoising_fpi_nn.json): the time per epoch of
# `mpirun -np 2` with one thread per rank against one process with two threads, and the share of rank
# 0's training time spent in the all-reduces (metrics.jsonl train.dist.reduce_seconds, which includes
# waiting for the slower rank). On a 2-core machine this can only show whether 2 ranks x 1 thread keep
# up with 1 rank x 2 threads; the numbers are ratios within one run (the machine may be shared).
#
#   bash tools/bench/dist_denoise.sh [FPI_BINARY] [EPOCHS] [PATCHES_PER_EPOCH]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
fpi="${1:-build/bin/fpi}"
epochs="${2:-2}"
patches="${3:-640}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
args=(models/denoising_fpi_nn.json --epochs "$epochs" --quiet --set "data.patches_per_epoch=$patches"
      --set data.validation_images=2 --set eval.every=1000)

FPI_NUM_THREADS=2 "$fpi" train "${args[@]}" --out "$out/one" >/dev/null
FPI_NUM_THREADS=1 mpirun --oversubscribe --allow-run-as-root -x FPI_NUM_THREADS -np 2 \
  "$fpi" train "${args[@]}" --out "$out/two" >/dev/null

/usr/bin/python3 - "$out" "$patches" <<'PY'
import json, sys
out, patches = sys.argv[1], sys.argv[2]
def epochs(run):
    return [json.loads(line) for line in open(f"{out}/{run}/metrics.jsonl") if line.strip()]
one, two = epochs("one"), epochs("two")
print(f"denoising_fpi_nn, {patches} patches per epoch, global batch 32; seconds of training per epoch")
print("epoch  1 rank x 2 threads  2 ranks x 1 thread  ratio  all-reduce share (2 ranks)")
for a, b in zip(one, two):
    share = b["train"]["dist"]["reduce_seconds"] / b["seconds"]
    ratio = b["seconds"] / a["seconds"]
    print(f"{a['epoch']:5d}  {a['seconds']:18.2f}  {b['seconds']:18.2f}  {ratio:5.2f}  {100 * share:5.1f}%")
PY
