#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with a GPU, CUDA and no network, within 7.5 minutes:
# unpack the carried Debian packages (when a folder is given), configure Release with the CUDA backend
# for sm_90 into build-gpu/, build, run the CUDA tests, then issue 10's performance lines on cuda:0
# against PyTorch on the same card in the same run (the Bibtex MLP step, the 17-layer conv net step on
# 64 patches, the FPI_NN steps of the Bibtex config at batch 40 and 1024 and of the denoising config at
# 64 patches, with host synchronisations per step), compute-sanitizer's memcheck and racecheck over a
# subset of the CUDA tests, then as time allows the rest of the build, bench_gpu_ops (with PyTorch on
# the same cases), bench_ops and the rest of the suite. Prints a summary table last. Exits non-zero when
# the build, a test or the sanitizer fails, and also when the CUDA tests skip (the point of the run is
# to execute them); a performance line that misses its target is reported, not failed.
#
#   bash tools/gpu_check.sh [DEPS]   DEPS: a folder with unpack-debs.sh and debs/*.deb (e.g. .gpu)
#
# The stages run in that order, each within its own limit and the overall deadline; a stage the
# deadline leaves too little time for is skipped and says so. Logs go to $OUT when it is set (else to
# build-gpu/logs), eight files at most (a device run returns no more); progress is printed as it goes.
# Settings, from the environment:
#   GPU_CHECK_JOBS=16          build parallelism
#   GPU_CHECK_DEADLINE=450     seconds for the whole check
#   GPU_CHECK_ROUNDS=3         interleaved rounds of each comparison with PyTorch
#   GPU_CHECK_SKIP=a,b         stages to leave out: perf, sanitizer, benches, other-tests
#   GPU_CHECK_SANITIZER_FILTER the gtest filter both compute-sanitizer tools run (default: below)
#   GPU_CHECK_DRY_RUN=1        the check's plumbing on a machine without a GPU: no configure or build (the
#                              programs of GPU_CHECK_BUILD, default build/, are used), the CUDA tests run
#                              (and skip), the performance lines run on the CPU in their --quick profile,
#                              compute-sanitizer only when present, benches and the rest of the suite skipped
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN="${GPU_CHECK_DRY_RUN:-0}"
if [[ "$DRY_RUN" == 1 ]]; then
  BUILD="$(cd "${GPU_CHECK_BUILD:-$ROOT/build}" && pwd)"
  DEVICE=cpu
  QUICK=(--quick)
  ROUNDS=1
else
  BUILD="$ROOT/build-gpu"
  DEVICE=cuda
  QUICK=()
  ROUNDS="${GPU_CHECK_ROUNDS:-3}"
fi
LOGS="${OUT:-$BUILD/logs}"
JOBS="${GPU_CHECK_JOBS:-16}"
DEADLINE="${GPU_CHECK_DEADLINE:-450}"
SKIP=",${GPU_CHECK_SKIP:-},"
# The CUDA suites except the op table's parity (one case per op) and the large-tensor test, which run
# long under the sanitizer; racecheck (shared-memory hazards) takes the suites whose kernels share memory.
MEMCHECK_FILTER="${GPU_CHECK_SANITIZER_FILTER:-Cuda.*:CudaConv.*:CudaSolve.*:CudaOptimizer.*:CudaFixedPoint*:-Cuda.Large*}"
RACECHECK_FILTER="${GPU_CHECK_SANITIZER_FILTER:-Cuda.Reduction*:Cuda.MatrixProducts*:CudaConv.*:CudaSolve.*}"
mkdir -p "$LOGS"
# Eight files at most: a device run returns no more than eight.
rm -f "$LOGS"/summary.txt "$LOGS"/*.log
: >"$LOGS/summary.txt"

say() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }
row() { printf '%-14s %s\n' "$1" "$2" | tee -a "$LOGS/summary.txt" >/dev/null; }
skipped_by_user() { [[ "$SKIP" == *",$1,"* ]]; }
failed=0

# run_stage NAME LIMIT LOG CMD...: runs CMD with its output appended to LOG, within LIMIT seconds and
# the overall deadline; prints the log's tail when it fails. A stage left with less than a third of its
# limit is skipped (status 125) rather than started to be killed.
run_stage() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((DEADLINE - SECONDS))
  if ((left * 3 < limit)); then
    say "$name: skipped, out of time (${left}s left)"
    return 125
  fi
  ((left < limit)) && limit=$left
  say "$name (limit ${limit}s, log $(basename "$log"))"
  echo "==== $name: $*" >>"$log"
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
# The Python that has PyTorch: the GPU machine's python3, or Debian's /usr/bin/python3 with python3-torch.
PYTHON=python3
python3 -c 'import torch' >/dev/null 2>&1 || PYTHON=/usr/bin/python3
export PYTHON
{
  echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "== nvcc"; nvcc --version 2>&1 | tail -2
  echo "== compute-sanitizer"; compute-sanitizer --version 2>&1 | tail -1
  echo "== host compiler"; g++ --version 2>&1 | head -1
  echo "== cmake"; cmake --version 2>&1 | head -1
  echo "== PyTorch ($PYTHON)"; "$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1 | tail -1
  echo "== FPI_CUDNN_ROOT=${FPI_CUDNN_ROOT:-unset}"
  echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
} >"$LOGS/env.log" 2>&1
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
torch_version="$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
say "GPU: ${gpu:-none found}; nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*'); PyTorch ${torch_version:-none}"
row "device" "${gpu:-no GPU visible to nvidia-smi}$([[ "$DRY_RUN" == 1 ]] && echo "; DRY RUN on the CPU, $BUILD")"
row "pytorch" "${torch_version:-not importable by $PYTHON} ($PYTHON)"

# ---- build -----------------------------------------------------------------------------------------
# What the CUDA tests, the performance lines and the sanitizer need comes first; the rest of the build
# (examples, the other benchmarks) waits until they have run.
FIRST_TARGETS=(fpi_tests fpi_cli bench_fpi_step bench_mlp_step bench_conv_net)
generator=(-G Ninja)
command -v ninja >/dev/null 2>&1 || generator=(-G "Unix Makefiles")
build_start=$SECONDS
if [[ "$DRY_RUN" == 1 ]]; then
  built=1
  for program in tests/fpi_tests bin/fpi bin/bench_fpi_step bin/bench_mlp_step bin/bench_conv_net; do
    [[ -x "$BUILD/$program" ]] || { say "dry run: $BUILD/$program is missing; build it first"; built=0; failed=1; }
  done
  row "build" "dry run: not built, the programs of $BUILD used"
elif run_stage "configure" 90 "$LOGS/build.log" \
     cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFPI_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DFPI_BUILD_TESTS=ON -DFPI_BUILD_TOOLS=ON &&
   run_stage "build tests and benchmarks (-j$JOBS)" 240 "$LOGS/build.log" \
     cmake --build "$BUILD" --parallel "$JOBS" --target "${FIRST_TARGETS[@]}"; then
  row "build" "ok in $((SECONDS - build_start)) s ($(grep -m1 'fpi: CUDA backend' "$LOGS/build.log" | sed 's/^-- //'))"
  built=1
else
  row "build" "FAILED (see build.log)"
  built=0
  failed=1
fi

# ---- CUDA tests ------------------------------------------------------------------------------------
# One line per test set: passed / failed / skipped, from ctest's own summary and its skip list.
test_row() {
  local label=$1 log=$2 status=$3
  local summary skipped
  summary="$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)"
  skipped="$(grep -cE '\(Skipped\)' "$log")"
  row "$label" "${summary:-no ctest summary (exit $status)}; $skipped skipped"
  echo "$skipped"
}

# gtest's totals ("passed 150 tests; skipped 8 tests") from its output, ctest's "N: " prefixes allowed.
gtest_counts() {
  sed -nE 's/^([0-9]+: )?\[  (PASSED|FAILED|SKIPPED) +\] ([0-9]+ tests?).*/\L\2\E \3/p' | paste -sd';' -
}

if ((built)); then
  "$BUILD/bin/fpi" info 2>&1 | tee -a "$LOGS/env.log" | sed 's/^/  /'
  run_stage "CUDA tests (ctest -R Cuda)" 120 "$LOGS/ctest_cuda.log" \
    ctest --test-dir "$BUILD" -R Cuda --verbose --no-tests=error --timeout 120 -j 8
  status=$?
  skipped="$(test_row "CUDA tests" "$LOGS/ctest_cuda.log" $status | tail -1)"
  gtest_counts="$(gtest_counts <"$LOGS/ctest_cuda.log")"
  [[ -n "$gtest_counts" ]] && row "CUDA tests" "gtest: $gtest_counts"
  if [[ "$DRY_RUN" != 1 ]] && ((status != 0 || skipped != 0)); then failed=1; fi
fi

# ---- issue 10's performance lines ------------------------------------------------------------------
declare -A FPI_MS TORCH_MS FPI_SYNCS TORCH_SYNCS ITERS
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# begin_stage NAME LIMIT LOG: for a stage made of several commands, each run through `timed`, which
# gives it what is left of the stage's limit. Returns 125 (skipped) as run_stage does.
begin_stage() {
  local name=$1 limit=$2 log=$3
  local left=$((DEADLINE - SECONDS))
  if ((left * 3 < limit)); then
    say "$name: skipped, out of time (${left}s left)"
    return 125
  fi
  ((left < limit)) && limit=$left
  STAGE_END=$((SECONDS + limit))
  say "$name (limit ${limit}s, log $(basename "$log"))"
}
timed() {
  local left=$((STAGE_END - SECONDS))
  ((left > 0)) || return 124
  timeout "$left" "$@"
}

# compare_pair KEY LOG MS_AWK FPI_ARRAY TORCH_ARRAY: ROUNDS interleaved runs of the two commands (the
# order alternating), each side's median ms/step (MS_AWK extracts it from the output) and its last
# host-syncs-per-step figure. A torch run that fails leaves fpi's figures standing.
compare_pair() {
  local key=$1 log=$2 ms_awk=$3
  local -n fpi_cmd=$4 torch_cmd=$5
  local fpi_times="" torch_times="" out round side status=0
  for ((round = 1; round <= ROUNDS; ++round)); do
    local order=(fpi torch)
    ((round % 2 == 0)) && order=(torch fpi)
    for side in "${order[@]}"; do
      if [[ $side == fpi ]]; then
        # A failing run (a system allocation after warm-up, say) still reports its time.
        out="$(timed "${fpi_cmd[@]}" 2>&1)" || status=$?
        ((status == 124)) && { echo "$out" >>"$log"; break 2; }
        fpi_times+="$(awk "$ms_awk" <<<"$out") "
        FPI_SYNCS[$key]="$(awk '/^host syncs per step/ { print $5 }' <<<"$out")"
      else
        if ! out="$(timed "${torch_cmd[@]}" 2>&1)"; then
          echo "$out" >>"$log"
          echo "$key: the torch side failed" >>"$log"
          continue
        fi
        torch_times+="$(awk "$ms_awk" <<<"$out") "
        TORCH_SYNCS[$key]="$(awk '/^host syncs per step/ { print $5 }' <<<"$out")"
      fi
      echo "$out" >>"$log"
    done
  done
  FPI_MS[$key]="$(median <<<"$fpi_times")"
  TORCH_MS[$key]="$(median <<<"$torch_times")"
  echo "$key: fpi ms ${fpi_times}| torch ms $torch_times" >>"$log"
  ((status == 0 || status == 124)) || say "$key: the fpi side failed (exit $status); see $(basename "$log")"
  ((status == 124)) && say "$key: out of time; the medians are over the rounds that finished"
  ((status == 0 || status == 124))
}

PERF_LOG="$LOGS/perf.log"
if ((built)) && ! skipped_by_user perf; then
  # The command arrays are read through compare_pair's name references.
  # shellcheck disable=SC2034
  if [[ "$DEVICE" == cpu ]]; then
    mlp_fpi=("$BUILD/bin/bench_mlp_step" --device cpu "${QUICK[@]}")
    mlp_torch=("$PYTHON" "$ROOT/tools/bench/torch_mlp_step.py" --device cpu "${QUICK[@]}")
    conv_args=(--quick --no-layers --device cpu)
  else
    mlp_fpi=("$BUILD/bin/bench_mlp_step" --device cuda --repeat 7 --steps 40 --warmup 20)
    mlp_torch=("$PYTHON" "$ROOT/tools/bench/torch_mlp_step.py" --device cuda --repeat 7 --steps 40 --warmup 20)
    conv_args=(--batch 64 --size 40 --width 64 --depth 17 --repeat 20 --warmup 3 --no-layers --device cuda)
  fi
  # shellcheck disable=SC2034
  conv_fpi=("$BUILD/bin/bench_conv_net" "${conv_args[@]}")
  # shellcheck disable=SC2034
  conv_torch=("$PYTHON" "$ROOT/tools/bench/torch_conv_net.py" "${conv_args[@]}")
  run_stage "FPI_NN steps against PyTorch (compare_fpi_step.sh)" 120 "$PERF_LOG" \
    bash "$ROOT/tools/bench/compare_fpi_step.sh" --device "$DEVICE" --rounds "$ROUNDS" --build "$BUILD" "${QUICK[@]}"
  status=$?
  while read -r _ name _ _ _ f_ms _ t_ms _ f_it _ t_it _ f_sync _ t_sync; do
    FPI_MS[$name]=$f_ms TORCH_MS[$name]=$t_ms FPI_SYNCS[$name]=$f_sync TORCH_SYNCS[$name]=$t_sync
    ITERS[$name]="$f_it | $t_it"
  done < <(grep '^summary ' "$PERF_LOG")
  if ((status != 0 && status != 125)); then
    row "perf" "compare_fpi_step.sh did not finish (exit $status, see perf.log)"
    ((status != 124)) && failed=1
  fi
  # shellcheck disable=SC2016  # awk programs
  if begin_stage "MLP step against PyTorch" 50 "$PERF_LOG"; then
    compare_pair mlp "$PERF_LOG" '/^ms\/step median/ { print $3 }' mlp_fpi mlp_torch || failed=1
  fi
  # shellcheck disable=SC2016  # awk programs
  if begin_stage "conv-net step against PyTorch" 60 "$PERF_LOG"; then
    compare_pair conv "$PERF_LOG" '$1 == "step" { print $2 }' conv_fpi conv_torch || failed=1
  fi
fi

# ---- compute-sanitizer ----------------------------------------------------------------------------
SAN_LOG="$LOGS/sanitizer.log"
# sanitize TOOL LIMIT FILTER: one tool over a subset of the CUDA tests; its row says how many tests ran
# and what the tool found, or why it could not run.
sanitize() {
  local tool=$1 limit=$2 filter=$3 mark status summary tests
  : >>"$SAN_LOG"
  mark=$(wc -l <"$SAN_LOG")
  run_stage "compute-sanitizer --tool $tool" "$limit" "$SAN_LOG" \
    compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 20 \
    "$BUILD/tests/fpi_tests" --gtest_filter="$filter" --gtest_brief=1
  status=$?
  local out
  out="$(tail -n +"$((mark + 1))" "$SAN_LOG")"
  summary="$(grep -oE '(ERROR|RACECHECK) SUMMARY: .*' <<<"$out" | tail -1)"
  tests="$(gtest_counts <<<"$out")"
  if ((status == 125)); then
    row "$tool" "skipped, out of time"
  elif grep -qiE 'device not supported|unable to find injection|not supported on this' <<<"$out"; then
    row "$tool" "could not run on this machine: $(grep -m1 -iE 'not supported|injection' <<<"$out")"
  elif ((status == 124)); then
    row "$tool" "timed out after ${limit}s (inconclusive); ${tests:-no gtest summary}"
  else
    row "$tool" "$( ((status == 0)) && echo clean || echo "FAILED (exit $status)"): ${summary:-no summary}; ${tests:-no gtest summary}; filter $filter"
    ((status != 0)) && failed=1
  fi
}
if ((built)) && ! skipped_by_user sanitizer; then
  if command -v compute-sanitizer >/dev/null 2>&1; then
    sanitize memcheck 75 "$MEMCHECK_FILTER"
    sanitize racecheck 60 "$RACECHECK_FILTER"
  else
    row "sanitizer" "compute-sanitizer not found on PATH; not run"
  fi
fi

# ---- the rest: the whole build, op benchmarks, the other tests -------------------------------------
if ((built)) && [[ "$DRY_RUN" != 1 ]]; then
  run_stage "build the rest (-j$JOBS)" 120 "$LOGS/build.log" cmake --build "$BUILD" --parallel "$JOBS"
  rest_built=$?
  if ((rest_built != 0 && rest_built != 125)); then row "build" "the rest FAILED (see build.log)"; failed=1; fi
  if ((rest_built == 0)) && ! skipped_by_user benches; then
    if run_stage "bench_gpu_ops" 60 "$LOGS/bench.log" "$BUILD/bin/bench_gpu_ops"; then
      while IFS= read -r line; do row "bench" "$line"; done < <(grep -E '^ *(matmul|conv|fpi)' "$LOGS/bench.log")
    else
      row "bench" "bench_gpu_ops did not finish (see bench.log)"
    fi
    # Every row of the op table: the summary keeps cuda's fwd+bwd time and the CPU's time over it.
    ops_log="$BUILD/bench_ops.log"
    : >"$ops_log"
    if run_stage "bench_ops" 60 "$ops_log" "$BUILD/bin/bench_ops"; then
      awk 'NF > 6 && $(NF - 6) == "cuda:0" { printf "%-40s cuda fwd+bwd %10s ms, cpu/cuda %6s\n", $1, $(NF - 4), $NF }' \
        "$ops_log" | while IFS= read -r line; do row "ops" "$line"; done
    else
      row "ops" "bench_ops did not finish (see bench.log)"
    fi
    cat "$ops_log" >>"$LOGS/bench.log"
    if "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
      run_stage "PyTorch reference for bench_gpu_ops" 45 "$LOGS/bench.log" \
        "$PYTHON" "$ROOT/tools/bench/gpu_ops_reference.py" || row "reference" "gpu_ops_reference.py did not finish"
    fi
  fi
  if ((rest_built == 0)) && ! skipped_by_user other-tests; then
    run_stage "other tests (ctest -E Cuda)" 300 "$LOGS/ctest_other.log" \
      ctest --test-dir "$BUILD" -E Cuda --output-on-failure --no-tests=error --timeout 120 -j "$JOBS"
    status=$?
    if ((status == 125)); then
      row "other tests" "skipped, out of time (CI runs them on the CPU)"
    else
      test_row "other tests" "$LOGS/ctest_other.log" $status >/dev/null
      ((status != 0)) && failed=1
    fi
  fi
fi

# ---- the table -------------------------------------------------------------------------------------
# ratio_of FPI TORCH, and whether it meets TARGET ("<=1.2", "<1" or "-").
verdict() {
  awk -v f="$1" -v t="$2" -v target="$3" 'BEGIN {
    if (f == "" || t == "" || f == "-" || t == "-" || t + 0 == 0) { printf "%-9s %s", "-", "no comparison"; exit }
    r = f / t
    if (target == "<=1.2") ok = r <= 1.2; else if (target == "<1") ok = r < 1; else ok = -1
    printf "%-9.3f %s", r, ok == -1 ? "reported" : ok ? "met" : "NOT met" }'
}
perf_row() {
  local key=$1 label=$2 target=$3
  row "perf" "$(printf '%-34s %-6s %9s %9s %s  syncs/step fpi %-6s torch %-6s%s' "$label" "$target" "${FPI_MS[$key]:--}" \
    "${TORCH_MS[$key]:--}" "$(verdict "${FPI_MS[$key]:-}" "${TORCH_MS[$key]:-}" "$target")" "${FPI_SYNCS[$key]:--}" \
    "${TORCH_SYNCS[$key]:--}" "${ITERS[$key]:+  iterations fwd/bwd fpi | torch ${ITERS[$key]}}")"
}
if ((built)) && ! skipped_by_user perf; then
  row "perf" "$(printf '%-34s %-6s %9s %9s %-9s %s' "issue 10 line, $DEVICE, median of $ROUNDS" target "fpi ms" \
    "torch ms" fpi/torch verdict)"
  perf_row mlp "MLP step 1995-600-159, b40, Adam" "<=1.2"
  perf_row conv "conv net 17x64 3x3, 64 of 40x40" "<=1.2"
  perf_row bibtex40 "FPI_NN Bibtex step, b40" "<1"
  perf_row bibtex1024 "FPI_NN Bibtex step, b1024" "<1"
  perf_row denoise64 "FPI_NN denoising step, b64" "-"
fi

row "time" "$SECONDS s"
row "result" "$( ((failed)) && echo FAIL || echo PASS)"
echo
echo "==== gpu_check summary ===="
cat "$LOGS/summary.txt"
exit $failed
