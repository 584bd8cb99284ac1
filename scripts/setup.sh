#!/usr/bin/env bash
# Installs what the project needs, idempotently: the Python venv (.venv, pinned by requirements.lock,
# the project editable) and the players' npm packages. `--system` also installs the Debian packages the
# test suite drives for real (ffmpeg, nginx, chromium, redis-server, node/npm, wrk, promtool) when they are missing;
# in CI (CI=true) it fails when it cannot, since no test may skip there (tests/test_ci_rules.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--system" ]; then
  declare -A DEB=([ffmpeg]=ffmpeg [ffprobe]=ffmpeg [nginx]=nginx-light [chromium]=chromium [redis-server]=redis-server [node]=nodejs [npm]=npm [wrk]=wrk [promtool]=prometheus)
  missing=()
  for tool in "${!DEB[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${DEB[$tool]}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo=(sudo); }
    if [ "$(id -u)" = 0 ] || [ ${#sudo[@]} -gt 0 ]; then
      echo "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
      "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif [ "${CI:-}" = true ]; then
      echo "error: missing ${missing[*]} and cannot install them (not root, no sudo): CI=true runs every test" >&2
      exit 1
    else
      echo "warning: missing ${missing[*]} and not root: the tests that need them skip (in CI they fail)" >&2
    fi
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! cmp -s requirements.lock .venv/.installed-lock; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored" || true
  cp requirements.lock .venv/.installed-lock
fi

for dir in players tests/tokens/dialects_jwt_cat; do
  if [ -f "$dir/package-lock.json" ] && ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock"; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock)
  fi
done
