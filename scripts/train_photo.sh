#!/usr/bin/env bash
# The photo model: the shipped benchmark model fine-tuned on noise with the standard sRGB gamma.
# The reference noise's gamma pair brightens images, so a model trained on it darkens clean and
# real photos (benchmarks/tone.py measures it); this one keeps their brightness.
#   bash scripts/train_photo.sh            # resume runs/photo, else start from models/jcd-n64-srgb
#                                          # (or, the first time, from the benchmark model jcd-n64)
#   bash scripts/train_photo.sh export     # export runs/photo/last.ckpt as models/jcd-n64-srgb, the default
# Background use: nohup bash scripts/train_photo.sh > runs/photo.out 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
RUN=runs/photo
WEIGHTS=models/jcd-n64-srgb.safetensors
STEPS=${STEPS:-200000}
if [ "${1:-}" = "export" ]; then
  exec .venv/bin/jcd export "$RUN/last.ckpt" -o "$WEIGHTS" --name jcd-n64-srgb --default \
    --data-note "../shared/data/train: 481 photos (CBSD432 + Wikipedia), 4 held out for validation; wide noise range, sRGB gamma"
fi
common=(--out "$RUN" --steps "$STEPS" --threads "${THREADS:-1}" --ckpt-every 250 --val-every 1000)
if [ -f "$RUN/last.ckpt" ]; then
  exec .venv/bin/jcd train --resume "${common[@]}"
fi
init=${INIT:-models/jcd-n64.safetensors}
[ -f "$WEIGHTS" ] && [ -z "${INIT:-}" ] && init=$WEIGHTS
exec .venv/bin/jcd train "${common[@]}" --init "$init" --lr "${LR:-1e-4}" \
  -N 64 --quality 1-6 --patch 128 --batch 8 --wide-noise --gamma srgb
