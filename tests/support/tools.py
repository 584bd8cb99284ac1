"""What the suite drives for real (nginx, redis-server, ffmpeg, chromium, node, npm, reference packages).

`unavailable` is the one place a test may skip for something missing: in CI (`CI=true`) it fails the
test instead, since `scripts/setup.sh --system` installs everything. `tests/test_ci_rules.py` keeps every
other skip out of the suite, and `tests/support/ci_guard.py` fails a CI run in which anything skipped.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(what: str, hint: str) -> NoReturn:
    """Skip locally, fail in CI: `what` is missing; `hint` says what provides it."""
    message = f"{what} is not available ({hint})"
    if in_ci():
        pytest.fail(f"{message}; CI=true: scripts/setup.sh --system installs it", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of a program (also looked for in /usr/sbin and /usr/bin, where Debian puts nginx)."""
    found = shutil.which(name) or next(
        (path for path in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(path, os.X_OK)), None
    )
    if found is None:
        unavailable(name, "a Debian package scripts/setup.sh --system installs")
    return found


def require_file(path: Path, hint: str) -> Path:
    if not path.exists():
        unavailable(str(path), hint)
    return path


def require_module(name: str) -> ModuleType:
    """A Python reference package of the test extra (requirements.lock)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python module {name}", "the test extra in requirements.lock; scripts/setup.sh installs it")
