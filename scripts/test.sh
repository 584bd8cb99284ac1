#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing (Debian packages, the
# Python venv from the lock file, the players' npm packages), then lint, types and tests.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k acl`, `scripts/test.sh --run-slow`).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- Debian packages: real servers and a real browser for the integration and player tests ---------
declare -A DEB=([ffmpeg]=ffmpeg [nginx]=nginx-light [chromium]=chromium [redis-server]=redis-server [node]=nodejs [npm]=npm)
missing=()
for tool in "${!DEB[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${DEB[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]} and not root; tests that need them fail in CI, skip elsewhere" >&2
  fi
fi

# --- Python: a venv pinned by requirements.lock, the project installed editable --------------------
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! cmp -s requirements.lock .venv/.installed-lock 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored" || true
  cp requirements.lock .venv/.installed-lock
fi

# --- npm: the players and the browser driver (playwright-core drives Debian's chromium) ------------
for dir in players tests/dialects_jwt_cat; do
  if [ -f "$dir/package-lock.json" ] && ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json" 2>/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# --- checks ------------------------------------------------------------------------------------------
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
