#!/usr/bin/env bash
# Measure a training leg of the default against the shipped default before shipping it (issue 16's rule: better on
# real camera noise, at most 0.2 dB worse on synthetic sRGB noise), the way docs/training.md's camera legs were:
#   bash scripts/measure_leg.sh runs/cam128i             # a run folder: its moving average is exported first
#   bash scripts/measure_leg.sh /tmp/cand.safetensors    # or weights exported already
# Environment: BASE (weights to compare with, default jcd-n128-camera), OUT (default results/legs/NAME),
# DRY_RUN=1 (print the commands instead of running them).
# Five comparisons, the candidate coded and the base's rows taken from copies of the reports' row files where they
# have them (so only the candidate is coded): the 55 PolyU pairs; Kodak with sRGB-gamma noise (4 images, levels
# 1-4); and three sets of pairs made here from the first Kodak images (clean; camera-like noise at levels 1 and 2,
# sRGB gamma, 8 bits), the mildly noisy photos a default also codes. Writes OUT/summary.md (each setting's PSNR table
# and BD-rate against the base) and prints it. About 20-40 minutes on 2 cores with native bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
cand=${1:?usage: bash scripts/measure_leg.sh RUN_DIR|WEIGHTS.safetensors}
base=${BASE:-jcd-n128-camera}
name=$(basename "${cand%.safetensors}")
out=${OUT:-results/legs/$name}
run() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "$@"; else "$@"; fi; }
[ "${DRY_RUN:-0}" = 1 ] || bash scripts/setup.sh
export PYTHONWARNINGS=ignore
jcd=.venv/bin/jcd
kodak=../shared/data/kodak
[ "${DRY_RUN:-0}" = 1 ] || [ -d "$kodak" ] || { echo "measure_leg: $kodak not present" >&2; exit 1; }
mkdir -p "$out"
weights=$cand
if [ "${cand%.safetensors}" = "$cand" ]; then  # a run folder
  weights=$out/$name.safetensors
  run "$jcd" export "$cand/last.ckpt" -o "$weights" --name "$name" --no-synthesis
fi
# The base's rows from the reports (copies: a rows file drops rows of weights it does not ship).
cp docs/rows-polyu.jsonl "$out/rows-polyu.jsonl"
cp docs/rows-kodak-srgb.jsonl "$out/rows-srgb.jsonl"
pairs=results/legs/pairs
if [ "${DRY_RUN:-0}" != 1 ] && [ ! -f "$pairs/.done" ]; then
  # Clean photos pair with themselves; the noisy ones are seeded by image, as in training.md's mild-noise sets.
  mkdir -p "$pairs"/{clean,cam1,cam2}
  for i in 2 3 4 6 7; do cp "$kodak/kodim0$i.png" "$pairs/clean/k0${i}_real.png"; cp "$kodak/kodim0$i.png" "$pairs/clean/k0${i}_mean.png"; done
  for i in 2 3 4 7; do
    for l in 1 2; do
      "$jcd" noise --camera --level $l --depth 8 --gamma srgb --seed $i "$kodak/kodim0$i.png" -o "$pairs/cam$l/k0${i}_real.png"
      cp "$kodak/kodim0$i.png" "$pairs/cam$l/k0${i}_mean.png"
    done
  done
  touch "$pairs/.done"
fi
both=(--weights "$weights" --weights "$base" --anchors none --quiet)
run "$jcd" eval ../shared/data/polyu --pairs "${both[@]}" -o "$out/polyu" --rows "$out/rows-polyu.jsonl" --report "$out/polyu.md"
run "$jcd" eval "$kodak" --gamma srgb --max-images 4 "${both[@]}" -o "$out/srgb" --rows "$out/rows-srgb.jsonl" \
  --report "$out/srgb.md"
for s in clean cam1 cam2; do
  run "$jcd" eval "$pairs/$s" --pairs --qualities 1,3,6 "${both[@]}" -o "$out/pairs-$s" --report "$out/pairs-$s.md"
done
[ "${DRY_RUN:-0}" = 1 ] && exit
# Each setting: its heading, the table of PSNR per quality, and the BD-rate row against the base.
for f in polyu srgb pairs-clean pairs-cam1 pairs-cam2; do
  echo "# $f"
  awk -v base="jcd:$base" '/^## /{print; t=0} /^\| q \|/ && !t {t=1} t==1 && /^\|/ {print; next} t==1 {t=2}
       index($0, "| " base " |") == 1 && /%/ {print "BD-rate against " base ": " $0}' "$out/$f.md"
done > "$out/summary.md"
cat "$out/summary.md"
