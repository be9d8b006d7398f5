#!/usr/bin/env bash
# The shipped models' training runs, resumable across sessions.
#   bash scripts/train.sh main           # jcd-n64, the benchmark model (reference noise): resume runs/main, else
#                                        # continue from the committed weights (or start from scratch)
#   bash scripts/train.sh photo          # jcd-n64-srgb: the benchmark model fine-tuned on sRGB-gamma
#                                        # noise (the reference gamma pair brightens images, so a model trained
#                                        # only on it darkens real photos; benchmarks/tone.py measures it).
#                                        # Resumes runs/photo, else starts from models/jcd-n64-srgb, or from
#                                        # INIT=models/jcd-n64.safetensors to refresh it from the newest benchmark
#   bash scripts/train.sh camera         # jcd-n64-camera (the default until 2026-11-26): the photo model fine-tuned on camera-like
#                                        # noise mixed with its sRGB read+shot noise, half the batches each
#   bash scripts/train.sh base128        # stage one of the paper's recipe at N=128: a plain Cheng2020 codec on
#                                        # clean crops (no denoisers, no extra branches), cheng-n128
#   bash scripts/train.sh joint128       # stage two: the full joint model at N=128 from the stage-one codec
#                                        # (denoisers added with their gates open, noisy input), jcd-n128
#   bash scripts/train.sh camera128      # jcd-n128-camera, the default: the N=128 model fine-tuned like the camera model (sRGB
#                                        # gamma, half the batches camera-like noise), 2,000 steps with the lr
#                                        # decayed at 80 % and 95 %; from models/jcd-n128 (or INIT=...). The
#                                        # shipped default (seventh version) is the fifth (STEPS=2400 UPSCALE=0.5
#                                        # THREADS=2 from jcd-n128's eighth version) trained further, first with
#                                        # INIT=models/jcd-n128-camera.safetensors LR=5e-5 STEPS=2400 UPSCALE=0.5,
#                                        # resumed with STEPS=3600 (the sixth), then from the sixth with LR=5e-5
#                                        # STEPS=1800 UPSCALE=0.5 PATCH=256 BATCH=4 SEED=28 (docs/training.md,
#                                        # "Larger crops for the default")
#   bash scripts/train.sh MODEL export   # export runs/<model>/last.ckpt into models/ (fp16 + manifest)
#   (a leg of the default is measured against it first: bash scripts/measure_leg.sh RUN_DIR)
# Environment: THREADS (default auto: the cores other work leaves idle, one at the least; 4 with GPU=1), LR (default 1e-4 when starting from weights, else 3e-4),
# STEPS (default 200000; camera128 2000), UPSCALE (camera128: --upscale, the fraction of crops enlarged), DETACH=1 (joint128: --detach-guidance), GPU=1 (the CUDA profile: crops of 256, batches of 16 or GPU_BATCH, noise made on the GPU; also when
# resuming a run begun on a CPU), PATCH and BATCH (CPU crops and batch, default 128 and 8;
# joint128 256 and 4, which trained jcd-n128 faster per CPU hour, docs/training.md; a resumed run keeps its own
# steps, crops and batch unless STEPS, PATCH, BATCH or GPU=1 say otherwise), RUN_DIR (instead of runs/MODEL), SEED (a new run's --seed: another order of crops and noise than the last leg's), WARMUP (--warmup: steps of lr warm-up, default 500; a new leg from exported weights at LR=5e-5 on a slow CPU may take WARMUP=100, and a resume with it shortens the run's), DRY_RUN=1 (print the training command instead of running it).
# Background use: nohup bash scripts/train.sh main > runs/main.out 2>&1 &  (echo auto > runs/main/threads: from
# the next step on, the cores other work leaves idle; echo 1 or 2: that many threads)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-}
# What the caller asked for, before the profiles fill in their defaults: a resumed run keeps its own steps, crops
# and batch (its checkpoint holds them) unless asked otherwise, so a plain resume continues the leg as begun.
ASKED_STEPS=${STEPS:-} ASKED_PATCH=${PATCH:-} ASKED_BATCH=${BATCH:-}
case "$which" in
  main)
    RUN=runs/main NAME=jcd-n64 EVERY=(--ckpt-every 500 --val-every 2000) DEFAULT=() PURPOSE=()
    NOTE="wide noise range"
    INIT_FROM=${INIT:-models/jcd-n64.safetensors}
    ARGS=(-N 64 --quality 1-6 --wide-noise --gamma reference) ;;
  photo)
    RUN=runs/photo NAME=jcd-n64-srgb EVERY=(--ckpt-every 250 --val-every 1000) DEFAULT=() PURPOSE=()
    NOTE="wide noise range, sRGB gamma"
    INIT_FROM=${INIT:-models/jcd-n64-srgb.safetensors}
    [ -f "$INIT_FROM" ] || INIT_FROM=models/jcd-n64.safetensors
    ARGS=(-N 64 --quality 1-6 --wide-noise --gamma srgb) ;;
  camera)
    RUN=runs/camera NAME=jcd-n64-camera EVERY=(--ckpt-every 250 --val-every 1000) DEFAULT=() PURPOSE=()
    NOTE="wide noise range, sRGB gamma; half the batches camera-like noise (raw sensor noise developed through demosaicking, colour, tone, and JPEG on half of those)"
    INIT_FROM=${INIT:-models/jcd-n64-srgb.safetensors}
    ARGS=(-N 64 --quality 1-6 --wide-noise --gamma srgb --noise mix) ;;
  base128)
    RUN=runs/base128 NAME=cheng-n128 EVERY=(--ckpt-every 250 --val-every 2000) DEFAULT=()
    PURPOSE=(--purpose "training only: stage one of the N=128 model (plain Cheng2020 on clean images; does not denoise)"
             --no-synthesis)
    NOTE="clean crops: stage one (plain Cheng2020) of the paper's two-stage recipe"
    INIT_FROM=${INIT:-models/cheng-n128.safetensors}
    ARGS=(--preset cheng2020 --clean-input -N 128 --quality 1-6) ;;
  joint128)
    # A full model (with its synthesis file) since it beat jcd-n64 at every level (session 12, docs/training.md).
    RUN=runs/joint128 NAME=jcd-n128 EVERY=(--ckpt-every 250 --val-every 2000) DEFAULT=() PURPOSE=()
    NOTE="wide noise range; stage two, from the stage-one codec cheng-n128"
    # Continues its own exported weights when the run folder is gone (a new machine), else starts stage two
    # from the stage-one codec.
    INIT_FROM=${INIT:-models/jcd-n128.safetensors}
    [ -f "$INIT_FROM" ] || INIT_FROM=models/cheng-n128.safetensors
    [ -f "$INIT_FROM" ] || [ -f "$RUN/last.ckpt" ] || { echo "joint128 starts from $INIT_FROM: train base128 first" >&2; exit 1; }
    # Without the contrastive branch since step 4,093: at equal steps it trained better without it, 10 % faster
    # (docs/training.md). runs/joint128 was switched with `jcd train --resume --no-contrastive`; its checkpoint
    # keeps the switch, so resuming needs nothing more. Likewise lr 1e-4 since step 6,349 (`--resume --lr 1e-4`;
    # starting from the exported weights uses 1e-4 by default).
    ARGS=(-N 128 --quality 1-6 --wide-noise --gamma reference --gate-init 2 --denoiser-scale --no-contrastive
          ${DETACH:+--detach-guidance})
    # Crops of 256 in batches of 4 on the CPU since session 18: more gain per CPU hour than 8 crops of 128
    # (docs/training.md, "Larger crops and a higher rate"); lr 5e-5 is in the run's checkpoint.
    # A resume passes them too: a leg begun on a GPU (batches of 16) continues on a CPU at the CPU's size.
    PATCH=${PATCH:-256} BATCH=${BATCH:-4}; ASKED_PATCH=$PATCH ASKED_BATCH=$BATCH ;;
  camera128)
    RUN=runs/camera128 NAME=jcd-n128-camera EVERY=(--ckpt-every 250 --val-every 1000) DEFAULT=(--default) PURPOSE=()
    NOTE="wide noise range, sRGB gamma; half the batches camera-like noise (raw sensor noise developed through demosaicking, colour, tone, and JPEG on half of those); fine-tuned from jcd-n128"
    INIT_FROM=${INIT:-models/jcd-n128.safetensors} STEPS=${STEPS:-2000}
    ARGS=(-N 128 --quality 1-6 --wide-noise --gamma srgb --noise mix --denoiser-scale --no-contrastive
          ${UPSCALE:+--upscale "$UPSCALE"}) ;;
  *) echo "usage: bash scripts/train.sh main|photo|camera|base128|joint128|camera128 [export]" >&2; exit 2 ;;
esac
RUN=${RUN_DIR:-$RUN}  # another run folder (scripts/gpu_run.sh: the machine's own)
if [ "${GPU:-0}" = 1 ]; then
  SIZE=(--patch 256 --batch "${GPU_BATCH:-16}") THREADS=${THREADS:-4}
else
  SIZE=(--patch "${PATCH:-128}" --batch "${BATCH:-8}")  # PATCH=256 BATCH=4: larger crops, twice the pixels a step
fi
run() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "$@"; else exec "$@"; fi; }
[ "${DRY_RUN:-0}" = 1 ] || bash scripts/setup.sh
export PYTHONWARNINGS=ignore
if [ "${2:-}" = "export" ]; then
  run .venv/bin/jcd export "$RUN/last.ckpt" -o "models/$NAME.safetensors" --name "$NAME" "${DEFAULT[@]}" "${PURPOSE[@]}" \
    --data-note "../shared/data/train: 481 photos (CBSD432 + Wikipedia), 4 held out for validation; $NOTE"
  exit
fi
common=(--out "$RUN" --steps "${STEPS:-200000}" --threads "${THREADS:-auto}" "${SIZE[@]}" "${EVERY[@]}")
if [ -f "$RUN/last.ckpt" ]; then
  if [ "${GPU:-0}" = 1 ]; then asked=("${SIZE[@]}")  # the GPU profile's crops replace a CPU run's
  else asked=(${ASKED_PATCH:+--patch "$ASKED_PATCH"} ${ASKED_BATCH:+--batch "$ASKED_BATCH"}); fi
  run .venv/bin/jcd train --resume --out "$RUN" ${ASKED_STEPS:+--steps "$ASKED_STEPS"} --threads "${THREADS:-auto}" \
    ${asked[@]+"${asked[@]}"} "${EVERY[@]}" ${LR:+--lr "$LR"} ${WARMUP:+--warmup "$WARMUP"}
  exit
fi
init=(--lr "${LR:-3e-4}")  # from scratch
[ -f "$INIT_FROM" ] && init=(--init "$INIT_FROM" --lr "${LR:-1e-4}")
run .venv/bin/jcd train "${common[@]}" "${init[@]}" ${SEED:+--seed "$SEED"} ${WARMUP:+--warmup "$WARMUP"} "${ARGS[@]}"
