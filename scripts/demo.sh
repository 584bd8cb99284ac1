#!/usr/bin/env bash
# Runs the gateway on its embedded default (demo origin, bundled streams, demo page) at
# http://127.0.0.1:8000/ after installing what it needs. Arguments go to `python -m gateway demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m gateway demo "$@"
