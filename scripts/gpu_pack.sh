#!/usr/bin/env bash
# Pack what a borrowed GPU machine needs for a training run (the project's `device` tool sends the tracked files
# plus carried paths, 64 MiB in all; ../shared does not travel):
#   bash scripts/gpu_pack.sh START      # START: a run folder (its last.ckpt is exported) or a weights file
#   bash scripts/gpu_pack.sh --undo     # put the shipped models back among the tracked files
# Writes .gpu/start.safetensors (the fp16 export: a checkpoint, with its optimiser and moving average, is 7x
# larger), .gpu/train (JPEG q90 of ../shared/data/train, shuffled, without the 4 photos the CPU runs hold out
# for validation, as many as fit) and .whl (CompressAI for the machine's Python 3.12, pytorch-msssim, pypng:
# the machine has torch and numpy but not these), ignores .gpu and .whl in .git/info/exclude, and takes
# models/ out of what travels (87 MB alone). Then run scripts/gpu_run.sh there, carrying .gpu and .whl.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
if [ "${1:-}" = "--undo" ]; then
  git reset -q models/
  [ -f "$exclude" ] && sed -i '/^models\/\*\.\(safetensors\|onnx\)$/d' "$exclude"
  git status --short models/
  exit
fi
start=${1:?usage: bash scripts/gpu_pack.sh RUN_FOLDER|WEIGHTS_FILE  (or --undo)}
bash scripts/setup.sh
mkdir -p .gpu .whl
for line in /.gpu/ /.whl/ 'models/*.safetensors' 'models/*.onnx'; do
  grep -qxF "$line" "$exclude" 2>/dev/null || echo "$line" >> "$exclude"
done
if [ -d "$start" ]; then
  PYTHONWARNINGS=ignore .venv/bin/jcd export "$start/last.ckpt" -o .gpu/start.safetensors --no-synthesis
  rm -f .gpu/manifest.json
else
  cp "$start" .gpu/start.safetensors
fi
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl compressai==1.2.8 pytorch-msssim==1.0.0 pypng==0.20220715.0
git rm -q --cached --ignore-unmatch models/*.safetensors models/*.onnx
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
fixed=$(du -cb .gpu/start.safetensors .whl | tail -1 | cut -f1)
budget=$(( 64 * 1024 * 1024 - tracked - fixed - 2 * 1024 * 1024 ))
rm -rf .gpu/train
.venv/bin/python - "$budget" <<'PY'
import random
import sys
from pathlib import Path

from PIL import Image

budget = int(sys.argv[1])
files = sorted(p for p in Path("../shared/data/train").iterdir() if p.suffix.lower() == ".png")[4:]
random.Random(0).shuffle(files)
out = Path(".gpu/train")
out.mkdir(parents=True)
used = 0
for f in files:
    dst = out / (f.stem + ".jpg")
    Image.open(f).convert("RGB").save(dst, quality=90)
    if used + dst.stat().st_size > budget:
        dst.unlink()
        break
    used += dst.stat().st_size
print(f"{len(list(out.iterdir()))} of {len(files)} training photos packed, {used / 2**20:.1f} MiB")
PY
du -sh .gpu .whl
