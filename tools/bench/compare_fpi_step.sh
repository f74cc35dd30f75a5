#!/usr/bin/env bash
# fpi against PyTorch on one FPI_NN training step (tools/bench/fpi_step.cpp, tools/bench/torch_fpi_step.py):
# the Bibtex layer of models/bibtex_fpi_nn.json at batch 40 and 1024 and the denoising layer of
# models/denoising_fpi_nn.json at 64 patches. bench_fpi_step first writes each case's batch, initial
# weights and solver settings (--save), and the PyTorch twin loads them, so both sides start from the
# same weights on the same data and iterate alike (the iteration columns show whether they did). Then
# both run for several rounds, interleaved and alternating which goes first, so a neighbour's load hits
# both alike; the table gives each side's median ms/step over the rounds, the ratio fpi/torch (below 1:
# fpi is faster), the mean forward / backward FPI iterations and the host synchronisations per step.
#
# Threads: on the CPU both sides get --threads N cores (default 2): fpi through FPI_NUM_THREADS (it keeps
# OpenBLAS single-threaded itself), torch in its fastest setting per case (BUILD-NOTES): for the Bibtex
# cases, whose work is matrix products through OpenBLAS, torch at 1 thread and OpenBLAS at N; for the
# convolutions, torch at N and OpenBLAS at 1. Each case runs in a process of its own. On cuda:0 fpi's
# thread count is left alone and torch's too.
# Python: $PYTHON when set, else /usr/bin/python3 when it can import torch (Debian's python3-torch),
# else python3 (the GPU machine's). Without PyTorch only fpi's side runs and the torch columns read "-".
# Each "summary" line at the end is one case, for scripts (tools/gpu_check.sh reads them).
#
#   bash tools/bench/compare_fpi_step.sh [--device cpu|cuda] [--case all|bibtex40|bibtex1024|denoise64]
#                                        [--rounds N] [--threads N] [--build DIR] [--quick]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build"
TORCH_BENCH="$ROOT/tools/bench/torch_fpi_step.py"
DEVICE=cpu
CASE=all
ROUNDS=3
THREADS=2
QUICK=()

usage_error() { echo "compare_fpi_step: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device)
      [[ "${2:-}" == cpu || "${2:-}" == cuda ]] || usage_error "--device needs cpu or cuda"
      DEVICE="$2"; shift 2 ;;
    --case)
      [[ "${2:-}" =~ ^(all|bibtex40|bibtex1024|denoise64)$ ]] ||
        usage_error "--case needs all, bibtex40, bibtex1024 or denoise64"
      CASE="$2"; shift 2 ;;
    --rounds)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "--rounds needs a positive whole number"
      ROUNDS="$2"; shift 2 ;;
    --threads)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "--threads needs a positive whole number"
      THREADS="$2"; shift 2 ;;
    --build)
      [[ -n "${2:-}" ]] || usage_error "--build needs a folder"
      BUILD="$(cd "$2" && pwd)"; shift 2 ;;
    --quick) QUICK=(--quick); ROUNDS=1; shift ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown option '$1' (see --help)" ;;
  esac
done

FPI_BENCH="$BUILD/bin/bench_fpi_step"
[[ -x "$FPI_BENCH" ]] || { echo "compare_fpi_step: $FPI_BENCH is missing; build it first" >&2; exit 1; }
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  /usr/bin/python3 -c "import torch" 2>/dev/null && PYTHON=/usr/bin/python3
fi
HAVE_TORCH=1
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "compare_fpi_step: $PYTHON cannot import torch; timing fpi alone" >&2
  HAVE_TORCH=0
fi

SAVED="$(mktemp -d)"
trap 'rm -rf "$SAVED"' EXIT
CASES=()
for name in bibtex40 bibtex1024 denoise64; do [[ "$CASE" == all || "$CASE" == "$name" ]] && CASES+=("$name"); done
[[ "$DEVICE" == cpu ]] && export FPI_NUM_THREADS="$THREADS"
# The first training batch and the config's initial weights, written before any step is taken.
"$FPI_BENCH" --device "$DEVICE" --case "$CASE" --save "$SAVED" --repeat 1 --steps 1 --warmup 0 >/dev/null

# torch's thread setting for a case on the CPU: its linear layers call OpenBLAS, fastest with torch at one
# thread and OpenBLAS at N; its convolutions (oneDNN) use torch's own N threads, OpenBLAS then at one.
torch_threads() {
  if [[ "$DEVICE" != cpu ]]; then
    echo "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}"
  elif [[ "$1" == bibtex* ]]; then
    echo "OPENBLAS_NUM_THREADS=$THREADS --threads 1"
  else
    echo "OPENBLAS_NUM_THREADS=1 --threads $THREADS"
  fi
}

declare -A VALUES  # "side case field" -> the rounds' values, space-separated
# Runs one side on one case and files its "result CASE key value ..." line.
run_side() {
  local side=$1 name=$2 output setting rest pairs i
  if [[ "$side" == fpi ]]; then
    output="$("$FPI_BENCH" --device "$DEVICE" --case "$name" "${QUICK[@]}")"
  else
    read -r setting rest <<<"$(torch_threads "$name")"
    read -r -a pairs <<<"$rest"
    output="$(env "$setting" "$PYTHON" "$TORCH_BENCH" --device "$DEVICE" --case "$name" --load "$SAVED" \
      "${pairs[@]}" "${QUICK[@]}")"
  fi
  while read -r _ name rest; do
    read -r -a pairs <<<"$rest"
    for ((i = 0; i + 1 < ${#pairs[@]}; i += 2)); do VALUES["$side $name ${pairs[i]}"]+="${pairs[i + 1]} "; done
    printf ' %s %s ms' "$side" "${pairs[1]}"
  done < <(grep '^result ' <<<"$output")
}

sides=(fpi)
((HAVE_TORCH)) && sides+=(torch)
echo "device $DEVICE; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; ++round)); do
  order=("${sides[@]}")
  if ((round % 2 == 0 && ${#sides[@]} == 2)); then order=(torch fpi); fi
  for name in "${CASES[@]}"; do
    printf 'round %d, %s:' "$round" "$name"
    for side in "${order[@]}"; do run_side "$side" "$name"; done
    echo
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
value() { median <<<"${VALUES["$1 $2 $3"]:-}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b }'; }

echo
printf '%-11s %10s %10s %9s %13s %13s %11s %11s\n' case "fpi ms" "torch ms" fpi/torch "fpi fwd/bwd" "torch fwd/bwd" \
  "fpi syncs" "torch syncs"
summaries=()
for name in "${CASES[@]}"; do
  f_ms="$(value fpi "$name" ms)" t_ms="$(value torch "$name" ms)"
  r="$(ratio "$f_ms" "$t_ms")"
  f_it="$(value fpi "$name" fwd)/$(value fpi "$name" bwd)" t_it="$(value torch "$name" fwd)/$(value torch "$name" bwd)"
  f_sync="$(value fpi "$name" syncs)" t_sync="$(value torch "$name" syncs)"
  printf '%-11s %10s %10s %9s %13s %13s %11s %11s\n' "$name" "$f_ms" "$t_ms" "$r" "$f_it" "$t_it" "$f_sync" "$t_sync"
  summaries+=("summary $name ratio $r fpi_ms $f_ms torch_ms $t_ms fpi_iters $f_it torch_iters $t_it \
fpi_syncs $f_sync torch_syncs $t_sync")
done
echo
printf '%s\n' "${summaries[@]}"
