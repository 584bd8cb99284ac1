"""In CI (`CI=true`) a skipped test fails the run: nothing may silently not run there.

The only skip CI allows is the opt-in one for long-budget tests (`--run-slow`, see tests/conftest.py).
A run that selects no test at all ends with pytest's exit status 5, which fails CI as any non-zero
status does (`scripts/test.sh` ends in `exec .venv/bin/pytest`); `tests/test_ci_rules.py` checks both.
"""

from __future__ import annotations

import pytest

from tests.support.tools import in_ci

SLOW_REASON = "long-budget run: pass --run-slow"
_skipped_in_ci: list[str] = []


def _reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if in_ci() and report.skipped and (hasattr(report, "wasxfail") or _reason(report) != SLOW_REASON):
        _skipped_in_ci.append(f"{report.nodeid}: {getattr(report, 'wasxfail', '') or _reason(report)}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_in_ci:
        terminalreporter.section("skipped in CI: each one fails the run", red=True)
        for line in _skipped_in_ci:
            terminalreporter.line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_in_ci and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
