from __future__ import annotations

import os

import pytest

from gateway.tokens.keys import HmacKey, KeyRing
from tests.support import ci_guard, read_only_fixtures
from tests.support.ci_guard import SLOW_REASON


def pytest_configure(config: pytest.Config) -> None:
    """The suite's rules as plugins: in CI a skipped test fails the run; no test writes into fixtures/.
    With --run-slow the fuzz suites (tests/fuzz) get their long budget."""
    for plugin in (ci_guard, read_only_fixtures):
        if not config.pluginmanager.is_registered(plugin):
            config.pluginmanager.register(plugin)
    if config.getoption("--run-slow"):
        os.environ.setdefault("GATEWAY_FUZZ_EXAMPLES", "5000")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long-budget tests (soak, long fuzzing)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason=SLOW_REASON)
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing((HmacKey("k2", b"\x02" * 32), HmacKey("k1", b"\x01" * 32)))
