#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with a GPU, CUDA and no network: unpack the carried
# Debian packages (when a folder is given), configure Release with the CUDA backend for sm_90 into
# build-gpu/, build, run the CUDA tests and then the rest of the suite, time bench_gpu_ops (and
# PyTorch on the same cases when it is installed) and every op-table row with bench_ops, and print a
# summary table last. Exits non-zero when anything fails, and also when the CUDA tests skip (the point
# of the run is to execute them).
#
#   bash tools/gpu_check.sh [DEPS]   DEPS: a folder with unpack-debs.sh and debs/*.deb (e.g. .gpu)
#
# Every stage has a time limit and all of them together stay under 7.5 minutes. Logs go to $OUT when
# it is set (else to build-gpu/logs); progress is printed as it goes.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-gpu"
LOGS="${OUT:-$BUILD/logs}"
JOBS="${GPU_CHECK_JOBS:-16}"
DEADLINE=450
mkdir -p "$LOGS"
# Seven files at most: a device run returns no more than eight.
rm -f "$LOGS"/summary.txt "$LOGS"/*.log
: >"$LOGS/summary.txt"

say() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }
row() { printf '%-14s %s\n' "$1" "$2" | tee -a "$LOGS/summary.txt" >/dev/null; }
failed=0

# run_stage NAME LIMIT LOG CMD...: runs CMD with its output appended to LOG, within LIMIT seconds and
# the overall deadline; prints the log's tail when it fails.
run_stage() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((DEADLINE - SECONDS))
  ((left < limit)) && limit=$left
  if ((limit <= 0)); then
    say "$name: skipped, out of time"
    return 124
  fi
  say "$name (limit ${limit}s, log $(basename "$log"))"
  timeout "$limit" "$@" >>"$log" 2>&1
  local status=$?
  if ((status != 0)); then
    say "$name FAILED (exit $status); last lines of its log:"
    tail -n 40 "$log"
  fi
  return $status
}

# ---- environment -----------------------------------------------------------------------------------
if [[ $# -ge 1 ]]; then
  deps="$(cd "$1" && pwd)"
  say "unpacking $deps/debs into /tmp/deps"
  eval "$(bash "$deps/unpack-debs.sh" "$deps/debs" /tmp/deps)"
  # Debian reaches OpenBLAS's cblas.h through an alternatives link that dpkg-deb -x does not make.
  export CPATH="/tmp/deps/usr/include/x86_64-linux-gnu/openblas-pthread${CPATH:+:$CPATH}"
fi
export PATH="/usr/local/cuda/bin:$PATH"
# cuDNN may exist only inside PyTorch's Python environment, and unpack-debs.sh may have picked a
# libcudnn.so.9 that has no headers beside it: fall back to the nvidia-cudnn wheel's folder.
if [[ ! -f /usr/local/cuda/include/cudnn.h && ! -f "${FPI_CUDNN_ROOT:-/nonexistent}/include/cudnn.h" ]]; then
  wheel="$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)"
  if [[ -n "$wheel" && -f "$wheel/include/cudnn.h" ]]; then
    export FPI_CUDNN_ROOT="$wheel" LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
{
  echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "== nvcc"; nvcc --version 2>&1 | tail -2
  echo "== host compiler"; g++ --version 2>&1 | head -1
  echo "== cmake"; cmake --version 2>&1 | head -1
  echo "== FPI_CUDNN_ROOT=${FPI_CUDNN_ROOT:-unset}"
  echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
} >"$LOGS/env.log" 2>&1
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
say "GPU: ${gpu:-none found}; nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*'); FPI_CUDNN_ROOT=${FPI_CUDNN_ROOT:-unset}"
row "device" "${gpu:-no GPU visible to nvidia-smi}"

# ---- build -----------------------------------------------------------------------------------------
generator=(-G Ninja)
command -v ninja >/dev/null 2>&1 || generator=(-G "Unix Makefiles")
build_start=$SECONDS
if run_stage "configure" 120 "$LOGS/build.log" \
     cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFPI_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DFPI_BUILD_TESTS=ON -DFPI_BUILD_TOOLS=ON &&
   run_stage "build (-j$JOBS)" 300 "$LOGS/build.log" cmake --build "$BUILD" --parallel "$JOBS"; then
  row "build" "ok in $((SECONDS - build_start)) s ($(grep -m1 'fpi: CUDA backend' "$LOGS/build.log" | sed 's/^-- //'))"
  built=1
else
  row "build" "FAILED (see build.log)"
  built=0
  failed=1
fi

# ---- tests -----------------------------------------------------------------------------------------
# One line per test set: passed / failed / skipped, from ctest's own summary and its skip list.
test_row() {
  local label=$1 log=$2 status=$3
  local summary skipped
  summary="$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)"
  skipped="$(grep -cE '\(Skipped\)' "$log")"
  row "$label" "${summary:-no ctest summary (exit $status)}; $skipped skipped"
  echo "$skipped"
}

if ((built)); then
  "$BUILD/bin/fpi" info 2>&1 | tee -a "$LOGS/env.log" | sed 's/^/  /'
  run_stage "CUDA tests (ctest -R Cuda)" 200 "$LOGS/ctest_cuda.log" \
    ctest --test-dir "$BUILD" -R Cuda --output-on-failure --no-tests=error --timeout 120 -j 8
  status=$?
  skipped="$(test_row "CUDA tests" "$LOGS/ctest_cuda.log" $status | tail -1)"
  if ((status != 0 || skipped != 0)); then failed=1; fi
  run_stage "other tests (ctest -E Cuda)" 150 "$LOGS/ctest_other.log" \
    ctest --test-dir "$BUILD" -E Cuda --output-on-failure --no-tests=error --timeout 120 -j "$JOBS"
  status=$?
  test_row "other tests" "$LOGS/ctest_other.log" $status >/dev/null
  ((status != 0)) && failed=1

# ---- benchmarks --------------------------------------------------------------------------------------
  if run_stage "bench_gpu_ops" 120 "$LOGS/bench.log" "$BUILD/bin/bench_gpu_ops"; then
    cat "$LOGS/bench.log"
    while IFS= read -r line; do row "bench" "$line"; done <"$LOGS/bench.log"
  else
    row "bench" "bench_gpu_ops FAILED (see bench.log)"
    failed=1
  fi
  # Every row of the op table, forward and forward + backward, on cuda:0 and on the CPU. Its full table
  # is appended to bench.log (no new file: the run returns eight at most); the summary keeps one line
  # per row: cuda's fwd+bwd time and the CPU's time over it (the table's last column).
  ops_log="$BUILD/bench_ops.log"
  : >"$ops_log"
  if run_stage "bench_ops" 120 "$ops_log" "$BUILD/bin/bench_ops"; then
    awk 'NF > 6 && $(NF - 6) == "cuda:0" { printf "%-40s cuda fwd+bwd %10s ms, cpu/cuda %6s\n", $1, $(NF - 4), $NF }' \
      "$ops_log" >"$ops_log.rows"
    [[ -s "$ops_log.rows" ]] || echo "no row timed on cuda:0 (see bench.log)" >"$ops_log.rows"
    while IFS= read -r line; do row "ops" "$line"; done <"$ops_log.rows"
  else
    row "ops" "bench_ops FAILED (see bench.log)"
    failed=1
  fi
  cat "$ops_log" >>"$LOGS/bench.log"
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    if run_stage "PyTorch reference" 90 "$LOGS/bench_torch.log" python3 "$ROOT/tools/bench/gpu_ops_reference.py"; then
      cat "$LOGS/bench_torch.log"
      while IFS= read -r line; do row "reference" "$line"; done <"$LOGS/bench_torch.log"
    else
      row "reference" "PyTorch reference failed (see bench_torch.log); not counted as an fpi failure"
    fi
  else
    row "reference" "no PyTorch with CUDA here; skipped"
  fi
fi

row "time" "$SECONDS s"
row "result" "$( ((failed)) && echo FAIL || echo PASS)"
echo
echo "==== gpu_check summary ===="
cat "$LOGS/summary.txt"
exit $failed
