"""The in-memory revocation store: entries end with their session's cap, and the map is bounded."""

from __future__ import annotations

import logging

import pytest

from gateway.sessions.revocations import MemoryRevocations, _where


def test_an_entry_holds_until_its_session_cap() -> None:
    store = MemoryRevocations()
    store.revoke("s-1", until=1_000.0)
    assert store.is_revoked("s-1", now=999.0) and store.is_revoked("s-1", now=1_000.0)
    assert not store.is_revoked("s-1", now=1_000.5)
    store.revoke("s-1", until=500.0)  # an earlier cap never shortens a revocation
    store.revoke("s-1", until=2_000.0)
    assert store.is_revoked("s-1", now=1_500.0)


def test_the_map_is_capped_dropping_what_expires_soonest(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryRevocations(max_entries=100, clock=lambda: 5_000.0)
    with caplog.at_level(logging.WARNING, "gateway.sessions.revocations"):
        for i in range(1_000):
            store.revoke(f"s-{i}", until=10_000.0 + i)
    assert len(store._entries) <= 100
    assert store.is_revoked("s-999", now=5_000.0) and not store.is_revoked("s-0", now=5_000.0)
    warnings = [r.getMessage() for r in caplog.records if "max_entries" in r.getMessage()]
    assert len(warnings) == 1  # said clearly, once a minute at most, not once per revocation


def test_expired_entries_are_pruned_before_anything_live_is_dropped() -> None:
    store = MemoryRevocations(max_entries=10, clock=lambda: 5_000.0)
    for i in range(10):
        store.revoke(f"old-{i}", until=100.0)  # already past their cap at 5,000: they make room first
    store.revoke("live", until=10_000.0)
    assert store.is_revoked("live", now=5_000.0)
    assert len(store._entries) == 1


def test_the_redis_address_in_logs_never_carries_the_password() -> None:
    assert _where("redis://:s3cret@cache.internal:6380/2") == "cache.internal:6380/2"
    assert _where("rediss://ops:s3cret@cache.internal/0") == "cache.internal:6379/0"
