#!/usr/bin/env bash
# The README's picture: a Kodak crop with level-4 noise (sRGB gamma, as a photo has it), jcd's decoded
# output at q4 with the default weights, and the clean original.
#   bash scripts/readme_figure.sh        # writes docs/images/kodim23-l4-q4.png with the shipped weights
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
src=../shared/data/kodak/kodim23.png
[ -f "$src" ] || { echo "readme_figure: $src not present" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p docs/images
.venv/bin/jcd noise "$src" --level 4 --seed 0 --depth 8 --gamma srgb -o "$tmp/noisy.png"
.venv/bin/jcd encode "$tmp/noisy.png" -q 4 -o "$tmp/out.jcd" --quiet
.venv/bin/jcd compare "$src" "$tmp/noisy.png" "$tmp/out.jcd" --labels "noisy input (level 4),jcd q4" \
  --visual docs/images/kodim23-l4-q4.png --crop 300,80,256,256
