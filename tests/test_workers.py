"""How many processes `serve` runs, and what it says about them (the processes themselves:
tests/integration/test_workers.py)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.cli import main
from gateway.config import OriginSettings, Settings, load_settings
from gateway.errors import ConfigError
from gateway.workers import plan_workers

KEY = "k1:" + "A" * 43


@pytest.fixture
def settings() -> Settings:
    return load_settings(None, {"GATEWAY_KEYS": KEY}, origin_override="http://127.0.0.1:9/")


def test_the_default_uses_every_core_only_when_revocations_are_shared(settings: Settings) -> None:
    shared = dataclasses.replace(settings, redis_url="redis://127.0.0.1:6379/0")
    assert plan_workers(None, shared, per_worker_revocations=False, cores=4).count == 4
    alone = plan_workers(None, settings, per_worker_revocations=False, cores=4)
    assert alone.count == 1 and "needs [revocations] redis_url" in alone.notes[0]  # says why one
    assert plan_workers(None, settings, per_worker_revocations=False, cores=1) == plan_workers(
        1, shared, per_worker_revocations=False, cores=4
    )


def test_several_workers_without_redis_are_refused_unless_the_operator_accepts_per_worker_revocations(
    settings: Settings,
) -> None:
    with pytest.raises(ConfigError, match="revoked through one worker would still play through the others"):
        plan_workers(2, settings, per_worker_revocations=False, cores=2)
    accepted = plan_workers(2, settings, per_worker_revocations=True, cores=2)
    assert accepted.count == 2 and accepted.warning is not None and "PER WORKER" in accepted.warning
    with_redis = dataclasses.replace(settings, redis_url="redis://127.0.0.1:6379/0")
    shared = plan_workers(2, with_redis, per_worker_revocations=False, cores=2)
    assert shared.warning is None and "shared through Redis" in shared.notes[0]


def test_the_per_viewer_download_limit_is_said_to_count_per_worker(settings: Settings) -> None:
    limited = dataclasses.replace(settings, origin=OriginSettings(max_streams_per_client=16))
    notes = plan_workers(3, limited, per_worker_revocations=True, cores=2).notes
    assert any("counts per worker: a viewer may hold up to 48" in note for note in notes)
    with pytest.raises(ConfigError, match="at least 1"):
        plan_workers(0, settings, per_worker_revocations=True, cores=2)


def test_serve_refuses_workers_without_redis_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_KEYS", KEY)
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    assert main(["serve", "--origin", "http://127.0.0.1:9/", "--port", "1", "--workers", "2"]) == 2
    error = capsys.readouterr().err
    assert "--workers 2 without [revocations] redis_url" in error and "--per-worker-revocations" in error
