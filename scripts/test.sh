#!/usr/bin/env bash
# The test command: install with the dev tools, then lint, type-check and run every test.
# Needs Redis on 127.0.0.1:6379 (SHADOWGATE_TEST_REDIS_URL overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
mypy
pytest "$@"
