#!/usr/bin/env bash
# Runs one libFuzzer target of tools/fuzz/ for a while, from its seeds in tools/fuzz/corpus/TARGET/
# (and with the dictionary tools/fuzz/TARGET.dict where there is one).
#   bash tools/fuzz.sh TARGET SECONDS [libFuzzer flags...]   e.g. bash tools/fuzz.sh arff 300
#   bash tools/fuzz.sh all SECONDS                           every target, SECONDS each (for CI)
# The targets are built with clang in build-fuzz/, apart from the g++ build, with the library
# instrumented for coverage (-fsanitize=fuzzer-no-link) and AddressSanitizer and UBSan on. Inputs
# libFuzzer finds interesting go to a temporary folder, so the seed corpus in the repository never
# changes; an input that crashes, leaks or hangs is kept under build-fuzz/findings/TARGET/, its path is
# printed, and the exit status is non-zero. Replay one with build-fuzz/bin/fuzz_TARGET PATH.
set -euo pipefail

if [[ $# -lt 2 || ! "$2" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tools/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target="$1"
seconds="$2"
shift 2

source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
# clang alone does not pull in libFuzzer's runtime (libclang-rt-dev is only recommended, and deps.sh
# installs without recommends). The library's own dependencies come too, and CLI11 for fuzz_cli.
FPI_DEBIAN_PACKAGES=(cmake ninja-build clang libclang-rt-dev libopenblas-dev nlohmann-json3-dev libvalijson-dev
                     libcli11-dev libpng-dev)
fpi_ensure_deps

fuzz_dir="$FPI_ROOT/tools/fuzz"
build_dir="$FPI_ROOT/build-fuzz"
if [[ "$target" == all ]]; then
  targets=()
  for source in "$fuzz_dir"/*.cpp; do targets+=("$(basename "$source" .cpp)"); done
else
  [[ -f "$fuzz_dir/$target.cpp" ]] || { echo "fuzz.sh: no target '$target' (no tools/fuzz/$target.cpp)" >&2; exit 2; }
  targets=("$target")
fi

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$fuzz_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build_dir" --parallel "$FPI_JOBS" --target "${targets[@]/#/fuzz_}"

work="$(mktemp -d "${TMPDIR:-/tmp}/fpi_fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS=print_stacktrace=1
status=0
for name in "${targets[@]}"; do
  findings="$build_dir/findings/$name"
  mkdir -p "$work/$name" "$findings"
  before="$(ls -A "$findings")"
  echo "fuzz.sh: fuzz_$name for ${seconds}s"
  dict=()
  [[ -f "$fuzz_dir/$name.dict" ]] && dict=(-dict="$fuzz_dir/$name.dict")
  # The temporary folder comes first: libFuzzer writes new inputs only into its first corpus folder.
  # -timeout: an input that takes 10 s is a hang (a whole Bibtex-sized file parses in milliseconds).
  "$build_dir/bin/fuzz_$name" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$findings/" "$@" "$work/$name" "$fuzz_dir/corpus/$name" || status=$?
  for file in $(comm -13 <(echo "$before") <(ls -A "$findings")); do
    echo "fuzz.sh: fuzz_$name found an input that fails: $findings/$file" >&2
    echo "fuzz.sh: replay it with $build_dir/bin/fuzz_$name $findings/$file" >&2
    status=1
  done
done
exit "$status"
