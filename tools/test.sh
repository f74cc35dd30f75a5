#!/usr/bin/env bash
# Builds build/ (installing missing packages first, as tools/setup.sh does) and runs the whole test
# suite with ctest; the exit status is ctest's. CI runs exactly this (.ci/run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

fpi_ensure_deps
fpi_configure_and_build -DFPI_BUILD_TESTS=ON
# --no-tests=error: a build that lost its tests must fail, not pass with nothing run.
exec ctest --test-dir "$FPI_BUILD_DIR" --output-on-failure --no-tests=error -j "$FPI_JOBS"
