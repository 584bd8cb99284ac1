from __future__ import annotations

import os

import pytest

from gateway.tokens.keys import HmacKey, KeyRing


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long-budget tests (soak, long fuzzing)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--run-slow"):
        os.environ.setdefault("GATEWAY_FUZZ_EXAMPLES", "5000")  # tests/fuzz: the long budget


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="long-budget run: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing((HmacKey("k2", b"\x02" * 32), HmacKey("k1", b"\x01" * 32)))
