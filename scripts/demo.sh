#!/usr/bin/env bash
# Install, then `shadowgate demo`: the whole pipeline on embedded defaults, five planted clinics, the
# gate's verdict for each (arguments pass through: --seconds 20, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shadowgate demo "$@"
