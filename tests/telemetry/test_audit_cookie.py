"""Cookie delivery renews the session's credential on playlist responses: each re-issued cookie is a renewed
token, and the audit trail says so (via = cookie), with the client's network and never the cookie's value."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.http.app import build_app
from tests.support.clock import FakeClock
from tests.support.servers import static_origin
from tests.telemetry.support import CATALOG, PAID, RING, origin_tree


async def test_a_reissued_cookie_writes_an_audit_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_800_000_000.0)  # not advanced: the re-issue here is the one to the cap
    with static_origin(origin_tree(tmp_path)) as (origin, _):
        settings = Settings(
            keys=RING,
            routes=(Route(mount="/vod/", origin=origin + "vod/", delivery=Delivery.COOKIE),),
            sessions=SessionSettings(token_ttl_seconds=60),
            catalog=CATALOG,
        )
        transport = httpx.ASGITransport(app=build_app(settings, clock=clock), client=("198.51.100.23", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            with caplog.at_level(logging.INFO, logger="gateway.audit"):
                created = await client.post("/api/sessions", json={"asset": "/vod/t/index.m3u8"}, headers=PAID)
                assert created.status_code == 201
                # A VOD playlist is loaded once: its response re-issues the cookie to last the session's cap.
                renewed = await client.get("/vod/t/index.m3u8")
                again = await client.get("/vod/t/index.m3u8")  # the cookie lasts already: not re-issued
    assert renewed.status_code == again.status_code == 200
    assert "set-cookie" in renewed.headers and "set-cookie" not in again.headers
    lines = [record for record in caplog.records if record.name == "gateway.audit"]
    assert [record.fields["event"] for record in lines] == ["token_issued", "token_renewed"]  # type: ignore[attr-defined]
    issued, reissued = (record.fields for record in lines)  # type: ignore[attr-defined]
    assert issued["via"] == "session_api" and reissued["via"] == "cookie"
    assert reissued["session"] == created.json()["session_id"] and reissued["user"] == "u-paid"
    assert reissued["client_network"] == "198.51.100.0/24" and reissued["key_id"] == "k-audit"
    assert reissued["expires_at"] == reissued["session_ends_at"] == created.json()["session_ends_at"]
    cookie_value = renewed.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    assert cookie_value not in caplog.text and created.json()["token"] not in caplog.text
