#!/usr/bin/env bash
# Create .venv (if missing) and install shadowgate into it; EXTRAS=dev adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, pinned: on these machines 2.13.0 is a CPU build, and with it installed
# sentence-transformers pulls in no multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
