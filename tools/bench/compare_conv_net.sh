#!/usr/bin/env bash
# Runs bench_conv_net and its PyTorch twin on the same cores and prints fpi/torch for the step,
# forward and backward. Both sides get the same number of cores (default 2): torch through
# torch.set_num_threads with OpenBLAS at one thread (measured here: torch at 2 threads with OpenBLAS
# also at 2 oversubscribes the cores and runs the step 2x slower), fpi through its own pool
# (FPI_NUM_THREADS). fpi's convolutions do not call OpenBLAS, so OPENBLAS_NUM_THREADS does not
# change fpi's time; it is set to 1 too so that neither side keeps a second pool. Variables already
# set by the caller win.
#
#   tools/bench/compare_conv_net.sh [--threads N] [--runs R] [bench arguments, e.g. --quick]
#
# Run it on a quiet machine (no compile running); each side runs R times alternately and the
# reported numbers are medians over runs of each run's median step.
set -euo pipefail
cd "$(dirname "$0")/../.."

threads=2
runs=3
args=()
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

bench=build/bin/bench_conv_net
[[ -x $bench ]] || { echo "compare_conv_net: $bench not found; build first (ninja -C build)" >&2; exit 1; }
python=/usr/bin/python3
"$python" -c 'import torch' 2>/dev/null || {
  echo "compare_conv_net: $python cannot import torch; install it with apt-get install python3-torch" >&2; exit 1; }

export FPI_NUM_THREADS="${FPI_NUM_THREADS:-$threads}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

field() { awk -v key="$1" '$1 == key { print $2; exit }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A fpi torch
for ((r = 1; r <= runs; ++r)); do
  out=$("$bench" --no-layers "${args[@]}") ||
    { echo "$out"; echo "compare_conv_net: bench_conv_net failed" >&2; exit 1; }
  ((r == 1)) && echo "$out" | head -1
  for k in step forward backward; do fpi[$k]+="$(echo "$out" | field "$k") "; done
  out=$("$python" tools/bench/torch_conv_net.py --threads "$threads" --no-layers "${args[@]}") ||
    { echo "compare_conv_net: torch_conv_net.py failed" >&2; exit 1; }
  ((r == 1)) && echo "$out" | head -1
  for k in step forward backward; do torch[$k]+="$(echo "$out" | field "$k") "; done
  echo "run $r: step fpi $(awk '{print $NF}' <<<"${fpi[step]}") ms, torch $(awk '{print $NF}' <<<"${torch[step]}") ms"
done

printf '\n%-9s %12s %12s %8s   (median of %d runs, ms)\n' "" fpi torch fpi/torch "$runs"
for k in step forward backward; do
  f=$(tr ' ' '\n' <<<"${fpi[$k]}" | grep . | median)
  t=$(tr ' ' '\n' <<<"${torch[$k]}" | grep . | median)
  printf '%-9s %12.2f %12.2f %8.2f\n' "$k" "$f" "$t" "$(awk -v f="$f" -v t="$t" 'BEGIN { print f / t }')"
done
