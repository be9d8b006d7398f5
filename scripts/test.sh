#!/usr/bin/env bash
# Set up, then run the test suite (tests needing ../shared/data skip with a reason when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
.venv/bin/python -m pytest -q -rs "$@"
