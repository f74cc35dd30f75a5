#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running fpi: installs the missing packages, builds
# Release into build/ with every core, then runs the main job, `build/bin/fpi demo`: a small network
# trains on a built-in curve and prints its falling loss, which shows the whole stack works.
#   bash tools/setup.sh          everything
#   bash tools/setup.sh --deps   only install the packages
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

case "${1:-}" in
  "") ;;
  --deps) fpi_ensure_deps; exit ;;
  *) echo "usage: bash tools/setup.sh [--deps]" >&2; exit 2 ;;
esac

fpi_ensure_deps
fpi_configure_and_build
"$FPI_BUILD_DIR/bin/fpi" demo
