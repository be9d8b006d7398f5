#!/usr/bin/env bash
# A training run on a borrowed GPU machine, after scripts/gpu_pack.sh here (carry .gpu and .whl):
#   bash scripts/gpu_run.sh MODEL SECONDS   # MODEL as in scripts/train.sh (joint128, camera128, ...)
# Installs the carried wheels, trains MODEL's profile with GPU=1 (crops of 256 in batches of 16) from
# .gpu/start.safetensors on .gpu/train for SECONDS (a second call on the same machine resumes /tmp/run), then
# leaves in $OUT what may come back (8 files of at most 16 MiB): the fp16 export in 15 MiB parts, the run's
# config.json and log.jsonl. Back here: `cat DIR/w.part.* > runs/gpu/NAME.safetensors`, copy config.json
# beside it, and `jcd export runs/gpu/NAME.safetensors -o models/NAME.safetensors` lists it in the manifest.
# Environment: PY (a Python with torch and jcd's needs: skips the wheels), RUN (default /tmp/run), PACKED (the
# packed folder, default .gpu), GPU_BATCH (crops of 256 per step, default 16; `benchmarks/train_speed.py --batch
# 16,32,64 --only bf16 --steps 10` on the machine says whether more buy pixels per second), DRY_RUN=1.
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:?usage: bash scripts/gpu_run.sh MODEL SECONDS}
seconds=${2:?usage: bash scripts/gpu_run.sh MODEL SECONDS}
out=${OUT:?OUT: the folder whose files come back}
py=${PY:-python3}
if [ -z "${PY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
run=${RUN:-/tmp/run}
packed=${PACKED:-.gpu}
if [ -f "$run/last.ckpt" ]; then
  cmd=("$py" -m jcdcodec train --resume --out "$run" --data "$packed/train" --patch 256 --batch "${GPU_BATCH:-16}"
       --threads 8)
else
  [ -f "$packed/start.safetensors" ] && [ -d "$packed/train" ] \
    || { echo "gpu_run: $packed/start.safetensors and $packed/train missing: run scripts/gpu_pack.sh and carry $packed" >&2; exit 1; }
  # The profile's own command line (its model and noise switches), pointed at the packed data and weights.
  read -r -a line < <(DRY_RUN=1 GPU=1 THREADS=8 INIT="$packed/start.safetensors" RUN_DIR="$run" bash scripts/train.sh "$which")
  cmd=("$py" -m jcdcodec "${line[@]:1}" --data "$packed/train" --val-count 1 --val-every 0 --ckpt-every 1000)
fi
echo "${cmd[*]}"
[ "${DRY_RUN:-0}" = 1 ] && exit 0
timeout -k 40 -s INT "$seconds" "${cmd[@]}" 2>&1 | tee "$out/train.out" | grep -v "^train: step [0-9]*[1-9]00/"
cp "$run/config.json" "$run/log.jsonl" "$out/" || exit 1
mkdir -p /tmp/export
"$py" -m jcdcodec export "$run/last.ckpt" -o /tmp/export/w.safetensors --no-synthesis || exit 1
split -b 15M /tmp/export/w.safetensors "$out/w.part."
sha256sum /tmp/export/w.safetensors
