"""The suite never writes into fixtures/: golden files change only through scripts/update_goldens.py.

A pytest plugin (registered by tests/conftest.py): it fingerprints every file under fixtures/ when the
session starts and fails the run if any was added, removed or rewritten when it ends.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.paths import FIXTURES

Snapshot = dict[str, str]
_before: Snapshot = {}


def snapshot(root: Path = FIXTURES) -> Snapshot:
    """{relative path: sha256} of every file under `root` (bytecode caches aside)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    return sorted(
        [f"added {p}" for p in after.keys() - before.keys()]
        + [f"removed {p}" for p in before.keys() - after.keys()]
        + [f"rewritten {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(snapshot())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    changed = changes(_before, snapshot())
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("the test run wrote into fixtures/ (use scripts/update_goldens.py)", red=True)
            for line in changed:
                reporter.line(line)
        if exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
