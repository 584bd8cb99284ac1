#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: installs what is missing (Debian packages, the
# Python venv from the lock file, npm packages), then lint, types and tests. Extra arguments go to
# pytest (e.g. `scripts/test.sh -k acl`, `scripts/test.sh --run-slow` for the long-budget runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
