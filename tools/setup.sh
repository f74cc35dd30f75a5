#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to fpi's main job: installs the missing packages, builds
# Release into build/ with every core, then trains the paper's Bibtex FPI_NN layer (models/
# bibtex_fpi_nn.json) and its feed-forward twin (models/bibtex_feedforward.json) on a short schedule,
# picks each one's best epoch on the validation split, and prints their test F1 side by side.
#   bash tools/setup.sh               everything (the runs go to runs/quickstart/)
#   bash tools/setup.sh --epochs N    the same with N epochs each (default 8)
#   bash tools/setup.sh --deps        only install the packages
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

epochs=8
case "${1:-}" in
  "") ;;
  --deps) fpi_ensure_deps; exit ;;
  --epochs)
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "setup.sh: --epochs needs a whole number >= 1" >&2; exit 2; }
    epochs="$2" ;;
  *) echo "usage: bash tools/setup.sh [--deps | --epochs N]" >&2; exit 2 ;;
esac

fpi_ensure_deps
fpi_configure_and_build

cd "$FPI_ROOT"
fpi="$FPI_BUILD_DIR/bin/fpi"
runs="runs/quickstart"
models=(bibtex_fpi_nn bibtex_feedforward)
for model in "${models[@]}"; do
  echo
  "$fpi" train "models/$model.json" --epochs "$epochs" --out "$runs/$model" --force
done

echo
echo "Bibtex, example-based F1 on the test split; each model's epoch chosen on the validation split"
printf '%-20s %12s %12s %22s\n' model "test F1 (%)" "best epoch" "paper (full schedule)"
paper=(43.4 39.6)  # Table 2 of Jeon, Lee & Choi: FPI_NN and the feed-forward net
for i in "${!models[@]}"; do
  model="${models[$i]}"
  "$fpi" eval "$runs/$model" --split test --json "$runs/$model.test.json" >/dev/null
  f1="$(sed -n 's/^ *"f1": \([-0-9.e]*\).*/\1/p' "$runs/$model.test.json")"
  best="$(sed -n 's/^{"epoch":\([0-9]*\),.*"best":true.*/\1/p' "$runs/$model/metrics.jsonl" | tail -n 1)"
  printf '%-20s %12s %12s %22s\n' "$model" "$(awk -v f="$f1" 'BEGIN { printf "%.2f", 100 * f }')" \
    "$best of $epochs" "${paper[$i]}"
done
