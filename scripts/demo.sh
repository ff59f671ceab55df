#!/usr/bin/env bash
# The main job on embedded defaults: install, then `shadowgate demo` (embedded Redis, simulator, tap).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shadowgate demo "$@"
