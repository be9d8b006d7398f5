#!/usr/bin/env bash
# Create .venv (if missing) and install jcd with its pinned dependencies.
# pip takes torch/torchvision from this platform's local package files when they are there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.jcd-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing jcd and its dependencies into .venv (a minute or two on a fresh machine)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/python -c "import jcdcodec, torch, compressai" 2>/dev/null \
    || { echo "setup: installation failed" >&2; exit 1; }
  touch "$stamp"
fi
