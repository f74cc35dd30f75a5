#!/usr/bin/env bash
# Builds fpi (installing missing packages first, as tools/setup.sh does) and runs the whole test suite
# with ctest; the exit status is ctest's. CI runs both forms (.ci/run).
#   bash tools/test.sh             the Release build in build/
#   bash tools/test.sh --sanitize  the same suite built with AddressSanitizer and UndefinedBehaviorSanitizer
#                                  in build-sanitize/ (CPU backend only): any finding stops its test and
#                                  fails the run
set -euo pipefail

sanitize=false
case "${1:-}" in
  "") ;;
  --sanitize) sanitize=true ;;
  *) echo "usage: bash tools/test.sh [--sanitize]" >&2; exit 2 ;;
esac

source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
fpi_ensure_deps
if $sanitize; then
  FPI_BUILD_DIR="$FPI_ROOT/build-sanitize"
  # nvcc's host code is not instrumented, so the sanitizer build leaves the CUDA backend out. GCC's manual
  # warns that sanitizers raise the rate of false -Wmaybe-uninitialized reports; GCC 12 printed 14 of them
  # from std::regex inside valijson here. The plain build keeps the warning.
  flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -Wno-maybe-uninitialized"
  fpi_configure_and_build -DFPI_BUILD_TESTS=ON -DFPI_CUDA=OFF "-DCMAKE_CXX_FLAGS=$flags" \
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
  export UBSAN_OPTIONS=print_stacktrace=1
else
  fpi_configure_and_build -DFPI_BUILD_TESTS=ON
fi
# --no-tests=error: a build that lost its tests must fail, not pass with nothing run.
# The CUDA tests are one ctest entry (CudaSuite) that skips as a whole where no GPU is usable; say why once.
if [[ -x "$FPI_BUILD_DIR/bin/fpi" ]]; then
  echo "fpi: $("$FPI_BUILD_DIR/bin/fpi" info 2>&1 | grep '^CUDA backend' || echo 'CUDA backend status unknown')"
fi
exec ctest --test-dir "$FPI_BUILD_DIR" --output-on-failure --no-tests=error -j "$FPI_JOBS"
