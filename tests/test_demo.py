"""The demo app: its pages, its catalog, and that it exposes only what it should."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.demo import build_demo, development_keys


async def test_demo_serves_the_page_and_only_its_own_files(tmp_path: Path) -> None:
    app = build_demo(tmp_path, "http://127.0.0.1:9/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        page = await client.get("/")
        assert page.status_code == 200 and "<video" in page.text
        assert (await client.get("/players/demo.js")).status_code == 200
        for hidden in ("/players/package.json", "/players/node_modules/hls.js/package.json", "/players/tests/play.mjs"):
            assert (await client.get(hidden)).status_code == 404, hidden
        catalog = (await client.get("/api/demo/catalog")).json()
        assert {u["credential"] for u in catalog["users"]} == {"demo-paid", "demo-free", "demo-abroad"}
        assert any(t["live"] for t in catalog["titles"])
        assert "secret" not in page.text.lower() and "dev1:" not in str(catalog)  # no key material on a page


def test_development_key_is_created_once_and_never_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_KEYS", raising=False)
    first = development_keys(tmp_path)
    assert development_keys(tmp_path) == first
    assert (tmp_path / "dev-keys").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("GATEWAY_KEYS", "k9:" + "A" * 43)
    assert development_keys(tmp_path).startswith("k9:")


async def test_demo_servers_leave_the_client_address_to_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's proxy_headers (on by default) would take X-Forwarded-For from 127.0.0.1 as the peer."""
    import uvicorn
    from starlette.applications import Starlette

    from gateway.demo import _serve

    configs: list[uvicorn.Config] = []

    async def record(self: uvicorn.Server, sockets: object = None) -> None:
        configs.append(self.config)

    monkeypatch.setattr(uvicorn.Server, "serve", record)
    await _serve(Starlette(), Starlette(), "127.0.0.1", 9, 10)
    assert len(configs) == 2 and all(config.proxy_headers is False for config in configs)
