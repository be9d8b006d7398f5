#!/usr/bin/env bash
# Set up, then encode + decode + inspect the bundled noisy sample with the shipped weights.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
out=${1:-demo-out}
mkdir -p "$out"
.venv/bin/jcd encode samples/kodim23-crop-noisy-l3.png -q 4 -o "$out/sample.jcd"
.venv/bin/jcd decode "$out/sample.jcd" -o "$out/sample-clean.png"
.venv/bin/jcd info "$out/sample.jcd"
