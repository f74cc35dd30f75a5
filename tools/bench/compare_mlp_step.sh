#!/usr/bin/env bash
# fpi against PyTorch on one MLP training step (tools/bench/mlp_step.cpp, tools/bench/torch_mlp_step.py):
# runs both for several rounds, interleaved and alternating which goes first, so a neighbour's load
# hits both alike, and prints each setting's median ms/step over the rounds and the ratio fpi/torch.
#
# Both get the same two cores. fpi is measured in two settings:
#   fpi-p2        FPI_NUM_THREADS=2: fpi's pool runs the element-wise loops and shares large matrix
#                 products out as one single-threaded OpenBLAS call per thread (the main figure)
#   fpi-p1        FPI_NUM_THREADS=1: everything on one thread
# (fpi keeps OpenBLAS single-threaded itself, so OPENBLAS_NUM_THREADS does not apply to it.)
# torch is measured in the settings that matter here:
#   t1-ob2        torch.set_num_threads(1), OpenBLAS 2 threads (the fastest thread setting for linear nets)
#   t2-ob1        torch.set_num_threads(2), OpenBLAS 1 thread
#   t1-ob2-cache  t1-ob2 with glibc told never to return freed memory to the system
#                 (GLIBC_TUNABLES mmap_threshold and trim_threshold at 1 GiB). PyTorch's CPU tensors come
#                 from plain malloc, and by default glibc trims the freed 4.8 MB Adam temporaries off the
#                 heap after every step (measured: ~6 brk calls and ~1900 page faults per step), so the
#                 next step faults them in again. fpi's caching allocator avoids that by design; this
#                 setting gives torch the same advantage.
# The ratios are taken against the fastest torch setting, which is named.
#
#   bash tools/bench/compare_mlp_step.sh [--rounds N] [--quick]    (after building build/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FPI_BENCH="$ROOT/build/bin/bench_mlp_step"
TORCH_BENCH="$ROOT/tools/bench/torch_mlp_step.py"
PYTHON=/usr/bin/python3  # Debian's interpreter, the one that sees python3-torch
ROUNDS=5
QUICK=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "compare_mlp_step: --rounds needs a positive whole number" >&2; exit 2; }
      ROUNDS="$2"; shift 2 ;;
    --quick) QUICK=(--quick); ROUNDS=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare_mlp_step: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ -x "$FPI_BENCH" ]] || { echo "compare_mlp_step: $FPI_BENCH is missing; build first (bash tools/setup.sh)" >&2; exit 1; }
"$PYTHON" -c "import torch" 2>/dev/null ||
  { echo "compare_mlp_step: $PYTHON cannot import torch; install it with apt-get install python3-torch" >&2; exit 1; }

NO_TRIM="glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"
FPI_SETTINGS=(fpi-p2 fpi-p1)
TORCH_SETTINGS=(t1-ob2 t2-ob1 t1-ob2-cache)
SETTINGS=("${FPI_SETTINGS[@]}" "${TORCH_SETTINGS[@]}")

# Runs one setting and prints its median ms/step.
run_setting() {
  local output
  case "$1" in
    fpi-p2) output="$(FPI_NUM_THREADS=2 "$FPI_BENCH" "${QUICK[@]}")" ;;
    fpi-p1) output="$(FPI_NUM_THREADS=1 "$FPI_BENCH" "${QUICK[@]}")" ;;
    t1-ob2) output="$(OPENBLAS_NUM_THREADS=2 "$PYTHON" "$TORCH_BENCH" --threads 1 "${QUICK[@]}")" ;;
    t2-ob1) output="$(OPENBLAS_NUM_THREADS=1 "$PYTHON" "$TORCH_BENCH" --threads 2 "${QUICK[@]}")" ;;
    t1-ob2-cache)
      output="$(GLIBC_TUNABLES="$NO_TRIM" OPENBLAS_NUM_THREADS=2 "$PYTHON" "$TORCH_BENCH" --threads 1 "${QUICK[@]}")" ;;
  esac
  awk '/^ms\/step median/ { print $3 }' <<<"$output"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A TIMES
for ((round = 1; round <= ROUNDS; ++round)); do
  order=("${SETTINGS[@]}")
  # Odd rounds run the settings forwards, even rounds backwards.
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#SETTINGS[@]} - 1; i >= 0; --i)); do order+=("${SETTINGS[i]}"); done
  fi
  line="round $round:"
  for setting in "${order[@]}"; do
    ms="$(run_setting "$setting")"
    TIMES[$setting]+="$ms "
    line+=" $setting $ms"
  done
  echo "$line"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

median_of() { tr ' ' '\n' <<<"${TIMES[$1]}" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

best_setting="" best_ms=""
for setting in "${TORCH_SETTINGS[@]}"; do
  ms="$(median_of "$setting")"
  if [[ -z "$best_ms" ]] || awk -v a="$ms" -v b="$best_ms" 'BEGIN { exit !(a < b) }'; then
    best_setting="$setting" best_ms="$ms"
  fi
done
echo
printf "%-20s %12s\n" setting "median ms"
for setting in "${SETTINGS[@]}"; do
  [[ "$setting" == fpi-* ]] && label="$setting" || label="torch $setting"
  printf "%-20s %12.3f\n" "$label" "$(median_of "$setting")"
done
echo
for setting in "${FPI_SETTINGS[@]}"; do
  printf "fpi/torch, %s against torch's fastest setting (%s): %s  (below 1: fpi is faster)\n" "$setting" \
    "$best_setting" "$(ratio "$(median_of "$setting")" "$best_ms")"
done
