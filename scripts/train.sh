#!/usr/bin/env bash
# The shipped models' training runs, resumable across sessions.
#   bash scripts/train.sh main           # jcd-n64, the benchmark model (reference noise): resume runs/main, else
#                                        # continue from the committed weights (or start from scratch)
#   bash scripts/train.sh photo          # jcd-n64-srgb, the default: the benchmark model fine-tuned on sRGB-gamma
#                                        # noise (the reference gamma pair brightens images, so a model trained
#                                        # only on it darkens real photos; benchmarks/tone.py measures it).
#                                        # Resumes runs/photo, else starts from models/jcd-n64-srgb, or from
#                                        # INIT=models/jcd-n64.safetensors to refresh it from the newest benchmark
#   bash scripts/train.sh base128        # stage one of the paper's recipe at N=128: a plain Cheng2020 codec on
#                                        # clean crops (no denoisers, no extra branches), cheng-n128
#   bash scripts/train.sh main|photo|base128 export   # export runs/<model>/last.ckpt into models/ (fp16 + manifest)
# Environment: THREADS (default 1), LR (default 1e-4 when starting from weights), STEPS (default 200000).
# Background use: nohup bash scripts/train.sh main > runs/main.out 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-}
case "$which" in
  main)
    RUN=runs/main NAME=jcd-n64 EVERY=(--ckpt-every 500 --val-every 2000) DEFAULT=()
    NOTE="wide noise range"
    INIT_FROM=${INIT:-models/jcd-n64.safetensors}
    ARGS=(-N 64 --quality 1-6 --patch 128 --batch 8 --wide-noise --gamma reference) ;;
  photo)
    RUN=runs/photo NAME=jcd-n64-srgb EVERY=(--ckpt-every 250 --val-every 1000) DEFAULT=(--default)
    NOTE="wide noise range, sRGB gamma"
    INIT_FROM=${INIT:-models/jcd-n64-srgb.safetensors}
    [ -f "$INIT_FROM" ] || INIT_FROM=models/jcd-n64.safetensors
    ARGS=(-N 64 --quality 1-6 --patch 128 --batch 8 --wide-noise --gamma srgb) ;;
  base128)
    RUN=runs/base128 NAME=cheng-n128 EVERY=(--ckpt-every 250 --val-every 2000) DEFAULT=()
    NOTE="clean crops: stage one (plain Cheng2020) of the paper's two-stage recipe"
    INIT_FROM=${INIT:-models/cheng-n128.safetensors}
    ARGS=(--preset cheng2020 --clean-input -N 128 --quality 1-6 --patch 128 --batch 8) ;;
  *) echo "usage: bash scripts/train.sh main|photo|base128 [export]" >&2; exit 2 ;;
esac
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
if [ "${2:-}" = "export" ]; then
  exec .venv/bin/jcd export "$RUN/last.ckpt" -o "models/$NAME.safetensors" --name "$NAME" "${DEFAULT[@]}" \
    --data-note "../shared/data/train: 481 photos (CBSD432 + Wikipedia), 4 held out for validation; $NOTE"
fi
common=(--out "$RUN" --steps "${STEPS:-200000}" --threads "${THREADS:-1}" "${EVERY[@]}")
if [ -f "$RUN/last.ckpt" ]; then
  exec .venv/bin/jcd train --resume "${common[@]}" ${LR:+--lr "$LR"}
fi
init=(--lr "${LR:-3e-4}")  # from scratch
[ -f "$INIT_FROM" ] && init=(--init "$INIT_FROM" --lr "${LR:-1e-4}")
exec .venv/bin/jcd train "${common[@]}" "${init[@]}" "${ARGS[@]}"
