#!/usr/bin/env bash
# The shipped model's training run, resumable across sessions.
#   bash scripts/train_main.sh            # resume runs/main if its checkpoint exists, else start from the
#                                         # committed weights (models/jcd-n64.safetensors) or from scratch
#   bash scripts/train_main.sh export     # export runs/main/last.ckpt as models/jcd-n64 (the benchmark model)
# Background use: nohup bash scripts/train_main.sh > runs/main.out 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
RUN=runs/main
WEIGHTS=models/jcd-n64.safetensors
STEPS=${STEPS:-200000}
if [ "${1:-}" = "export" ]; then
  exec .venv/bin/jcd export "$RUN/last.ckpt" -o "$WEIGHTS" --name jcd-n64 \
    --data-note "../shared/data/train: 481 photos (CBSD432 + Wikipedia), 4 held out for validation; wide noise range"
fi
common=(--out "$RUN" --steps "$STEPS" --threads "${THREADS:-1}" --ckpt-every 500 --val-every 2000)
if [ -f "$RUN/last.ckpt" ]; then
  exec .venv/bin/jcd train --resume "${common[@]}"
fi
# A fresh run continues from the committed weights at the run's current learning rate (1e-4 since step 7,000);
# from scratch it starts at 3e-4.
init=(--lr 3e-4)
[ -f "$WEIGHTS" ] && init=(--init "$WEIGHTS" --lr "${LR:-1e-4}")
exec .venv/bin/jcd train "${common[@]}" "${init[@]}" -N 64 --quality 1-6 --patch 128 --batch 8 --wide-noise
