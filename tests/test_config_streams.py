"""The settings of issue 14.1 and 14.4 under the strict rules: `[sessions] max_streams / on_limit /
stream_idle_seconds` and the `[sharing]` table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config import SessionSettings
from gateway.config_schema import OnLimit
from gateway.errors import ConfigError
from gateway.sessions.sharing import SharingPolicy
from gateway.workers import plan_workers
from tests.test_config import load, refusal


def test_stream_limits_and_sharing_load_from_the_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[sessions]\nmax_streams = 2\non_limit = "evict_oldest"\nstream_idle_seconds = 45\n'
        "[sharing]\nmax_networks = 3\nwindow_seconds = 900\nipv4_prefix = 16\nipv6_prefix = 56\nrevoke = true\n",
    )
    assert settings.sessions.max_streams == 2 and settings.sessions.on_limit is OnLimit.EVICT_OLDEST
    assert settings.sessions.stream_idle_seconds == 45
    assert settings.sharing == SharingPolicy(3, 900.0, ipv4_prefix=16, ipv6_prefix=56, revoke=True)


def test_both_are_off_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert settings.sessions.max_streams == 0 and settings.sessions.on_limit is OnLimit.BLOCK_NEW
    assert settings.sharing.max_networks == 0 and not settings.sharing.revoke


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[sharing]\nmax_network = 3\n", "unknown key 'max_network' in [sharing]"),
        ('[sessions]\non_limit = "evict"\n', "sessions.on_limit must be one of block_new, evict_oldest, got 'evict'"),
        ("[sessions]\nstream_idle_seconds = 0\n", "stream_idle_seconds positive"),
        ("[sessions]\nmax_streams = -1\n", "sessions.max_streams must not be negative"),
        ('[sharing]\nrevoke = "yes"\n', "sharing.revoke must be true or false"),
        ("[sharing]\nipv4_prefix = 33\n", "[sharing]: ipv4_prefix must be 0..32"),
        ("[sharing]\nwindow_seconds = 0\n", "[sharing]: max_networks must be >= 0 and window_seconds positive"),
    ],
)
def test_nonsense_is_refused_naming_the_setting(tmp_path: Path, body: str, message: str) -> None:
    assert message in refusal(tmp_path, body)


@pytest.mark.parametrize("counted", ["max_streams", "sharing"])
def test_several_workers_count_streams_only_through_redis(tmp_path: Path, counted: str) -> None:
    settings = load(tmp_path, "")
    if counted == "max_streams":
        settings = dataclasses.replace(settings, sessions=SessionSettings(max_streams=2))
    else:
        settings = dataclasses.replace(settings, sharing=SharingPolicy(max_networks=2, window_seconds=600))
    with pytest.raises(ConfigError, match="each worker would allow a user max_streams streams of its own"):
        plan_workers(2, settings, per_worker_revocations=True, cores=2)
    assert plan_workers(1, settings, per_worker_revocations=False, cores=2).count == 1
    shared = dataclasses.replace(settings, redis_url="redis://127.0.0.1:6379/0")
    assert plan_workers(2, shared, per_worker_revocations=False, cores=2).count == 2
