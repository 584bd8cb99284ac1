"""The demo app: its pages, its catalog, and that it exposes only what it should."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from mpegdash.parser import MPEGDASHParser

from gateway.dev.demo import MEDIA_ROOT, VENDOR_FILES, build_demo, development_keys
from tests.support.servers import static_origin


async def test_demo_serves_the_page_and_only_its_own_files(tmp_path: Path) -> None:
    app = build_demo(tmp_path, "http://127.0.0.1:9/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        page = await client.get("/")
        assert page.status_code == 200 and "<video" in page.text
        assert (await client.get("/players/demo.js")).status_code == 200
        plain = await client.get("/players/plain.html")
        assert plain.status_code == 200 and "/players/plain.js" in plain.text
        assert (await client.get("/players/plain.js")).headers["content-type"].startswith("text/javascript")
        for hidden in ("/players/package.json", "/players/node_modules/hls.js/package.json", "/players/tests/play.mjs"):
            assert (await client.get(hidden)).status_code == 404, hidden
        # Vendor players: the allow-list only (503 with a hint where `npm ci` has not run), never node_modules.
        for name, path in VENDOR_FILES.items():
            assert (await client.get(f"/players/vendor/{name}")).status_code == (200 if path.exists() else 503)
        for hidden in ("/players/vendor/package.json", "/players/vendor/dash.all.debug.js"):
            assert (await client.get(hidden)).status_code == 404, hidden
        assert (await client.get("/players/vendor/..%2fplay.mjs")).status_code == 403  # the path guard's refusal
        catalog = (await client.get("/api/demo/catalog")).json()
        assert {u["credential"] for u in catalog["users"]} == {"demo-paid", "demo-free", "demo-abroad"}
        assert any(t["live"] for t in catalog["titles"])
        assert "secret" not in page.text.lower() and "dev1:" not in str(catalog)  # no key material on a page


async def test_catalog_lists_the_dash_title_with_its_manifest(tmp_path: Path) -> None:
    app = build_demo(tmp_path, "http://127.0.0.1:9/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        titles = (await client.get("/api/demo/catalog")).json()["titles"]
    dash = [t for t in titles if t["format"] == "dash" and not t["live"]]
    assert [t["asset"] for t in dash] == ["/vod/dash-9000/manifest.mpd"] and dash[0]["paid"]
    live_dash = [t["asset"] for t in titles if t["format"] == "dash" and t["live"]]
    assert live_dash == ["/live/dash-9000/manifest.mpd"]  # from the live simulator
    assert all(t["asset"].endswith("master.m3u8") for t in titles if t["format"] == "hls")
    for t in titles:  # every VOD title's manifest is bundled (the live one comes from the simulator)
        if not t["live"]:
            assert (MEDIA_ROOT / t["asset"].removeprefix("/")).is_file(), t["asset"]


async def test_dash_title_plays_through_the_gateway_with_a_session(tmp_path: Path) -> None:
    """Session API -> static MPD with a token on every template -> init and segments of every Representation."""
    with static_origin(MEDIA_ROOT) as (origin, _):
        app = build_demo(tmp_path, origin)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for credential, error in (("demo-free", "not_entitled"), ("demo-abroad", "geo_blocked")):
                refused = await client.post(
                    "/api/sessions",
                    json={"asset": "/vod/dash-9000/manifest.mpd"},
                    headers={"authorization": f"Bearer {credential}"},
                )
                assert refused.status_code == 403 and refused.json()["error"] == error
            started = await client.post(
                "/api/sessions",
                json={"asset": "/vod/dash-9000/manifest.mpd"},
                headers={"authorization": "Bearer demo-paid"},
            )
            assert started.status_code == 201, started.text
            session = started.json()
            assert session["title_prefix"] == "/vod/dash-9000/"  # the manifest's directory
            manifest_url = "http://127.0.0.1" + session["playback_url"]
            mpd = await client.get(manifest_url)
            assert mpd.status_code == 200 and mpd.headers["content-type"].startswith("application/dash+xml")
            parsed = MPEGDASHParser.parse(mpd.text)
            fetched = 0
            for aset in parsed.periods[0].adaptation_sets:
                template = aset.segment_templates[0]
                for attribute in (template.media, template.initialization):
                    assert re.search(r"\?token=[A-Za-z0-9_-]+$", attribute), attribute
                for rep in aset.representations:
                    for template_value in (template.initialization, template.media):
                        uri = template_value.replace("$RepresentationID$", rep.id).replace("$Number%05d$", "00001")
                        response = await client.get(urljoin(manifest_url, uri))
                        assert response.status_code == 200, (uri, response.text)
                        local = MEDIA_ROOT / "vod" / "dash-9000" / uri.split("?")[0]
                        assert response.content == local.read_bytes(), uri
                        fetched += 1
            assert fetched == 8  # init + first segment of 3 video and 1 audio Representations
            anonymous = await client.get(urljoin(manifest_url, "v144/seg-00001.m4s"))
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "missing"


def test_development_key_is_created_once_and_never_world_readable(tmp_path: Path) -> None:
    first = development_keys(tmp_path, {})
    assert development_keys(tmp_path, {}) == first
    assert (tmp_path / "dev-keys").stat().st_mode & 0o077 == 0
    assert development_keys(tmp_path, {"GATEWAY_KEYS": "k9:" + "A" * 43}).startswith("k9:")


async def test_demo_servers_leave_the_client_address_to_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's proxy_headers (on by default) would take X-Forwarded-For from 127.0.0.1 as the peer."""
    import uvicorn
    from starlette.applications import Starlette

    from gateway.dev.demo import _serve

    configs: list[uvicorn.Config] = []

    async def record(self: uvicorn.Server, sockets: object = None) -> None:
        configs.append(self.config)

    monkeypatch.setattr(uvicorn.Server, "serve", record)
    await _serve(Starlette(), Starlette(), "127.0.0.1", 9, 10)
    assert len(configs) == 2 and all(config.proxy_headers is False for config in configs)
