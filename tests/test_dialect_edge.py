"""The gateway as a CDN's edge: a route whose requests carry a dialect's token (CTA-5007 CAT here, with
catr renewal under both header names, as a cookie or as a redirect; and Akamai EdgeAuth)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.app import build_app
from gateway.config import Route, Settings
from gateway.cors import CorsPolicy
from gateway.grant import Grant
from gateway.keys import HmacKey, KeyRing
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import EdgeRequest
from gateway.tokens.dialects.cat import CatDialect
from tests.support.clock import FakeClock
from tests.support.recording import RecordingApp
from tests.test_cdn_manifests import CDN_DIR

NOW = 1_800_000_000
SECRET = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"
TITLE = "/vod/title-9000/"


def cat_table(renewal: str | None) -> dict[str, Any]:
    table: dict[str, Any] = {"issuer": "gateway.example", "keys": [{"kid": "Symmetric256", "secret": SECRET}]}
    if renewal:
        table["renewal"] = {"type": renewal, "expadd_seconds": 120, "deadline_seconds": 60}
    return table


@pytest.fixture(scope="module")
def origin_app() -> Iterator[RecordingApp]:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    yield RecordingApp(Starlette(routes=[Mount("/", app=StaticFiles(directory=CDN_DIR / "origin"))]))


def client_for(
    origin: RecordingApp, name: str, table: dict[str, Any], cors: CorsPolicy | None = None
) -> tuple[httpx.AsyncClient, Any]:
    dialect = load_dialect(name, table, base_dir=CDN_DIR)
    settings = Settings(
        keys=KeyRing((HmacKey("k1", b"\x01" * 32),)),
        routes=(Route("/vod/", "http://origin.test/vod/", edge=name),),
        cdn={name: dialect},
        cors=cors or CorsPolicy(),
    )
    app = build_app(settings, clock=FakeClock(NOW), origin_transport=httpx.ASGITransport(app=origin))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test"), dialect


def cat_token(dialect: CatDialect, expires_in: int) -> str:
    return dialect.issue(Grant((TITLE,), NOW + expires_in), issued_at=NOW - 10)


async def test_cat_query_token_is_verified_and_playlists_carry_it(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table(None))
    async with client:
        token = cat_token(dialect, 600)
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={token}")
        assert response.status_code == 200, response.text
        assert f"init.mp4?cat={token}" in response.text and f"seg_000.m4s?cat={token}" in response.text
        assert (await client.get(f"{TITLE}v1/seg_000.m4s?cat={token}")).status_code == 404  # verified; no file
        assert all("cat=" not in seen.query for seen in origin_app.seen)  # the token never goes upstream
        missing = await client.get(f"{TITLE}v1/index.m3u8")
        assert missing.status_code == 401 and missing.json()["error"] == "missing"
        tampered = await client.get(f"{TITLE}v1/index.m3u8?cat={token[:-6]}AAAAAA")
        assert tampered.status_code == 403 and tampered.json()["error"] in ("bad_signature", "malformed")
        other = await client.get(f"/vod/title-9001/v1/index.m3u8?cat={token}")
        assert other.status_code == 403 and other.json()["error"] == "acl"


async def test_cat_header_renewal_uses_both_header_names_and_cors(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table("header"))
    async with client:
        not_due = await client.get(f"{TITLE}master.m3u8", headers={"CTA-Common-Access-Token": cat_token(dialect, 600)})
        assert not_due.status_code == 200 and "cta-common-access-token" not in not_due.headers
        due = await client.get(f"{TITLE}master.m3u8", headers={"CTA-Common-Access-Token": cat_token(dialect, 30)})
        assert due.status_code == 200
        renewed = due.headers["cta-common-access-token"]
        assert due.headers["common-access-token"] == renewed
        exposed = ",".join(due.headers.get_list("access-control-expose-headers")).lower()
        assert "cta-common-access-token" in exposed and "common-access-token" in exposed
        grant = dialect.verify(
            EdgeRequest("http://gw.test" + TITLE + "master.m3u8", headers={"CTA-Common-Access-Token": renewed}),
            now=NOW + 100,
        )
        assert grant.expires_at == NOW + 120


async def test_cat_redirect_and_cookie_renewal(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table("redirect"))
    async with client:
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}")
        assert response.status_code in (302, 307)
        location = urlsplit(response.headers["location"])
        assert location.path == f"{TITLE}v1/index.m3u8" and "cat" in parse_qs(location.query)
    client, dialect = client_for(origin_app, "cat", cat_table("cookie"))
    async with client:
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}")
        assert response.status_code == 200 and "set-cookie" in response.headers


async def test_cat_renewal_reaches_a_player_on_a_listed_site(origin_app: RecordingApp) -> None:
    # A credentialed cross-site player must be able to follow the redirect and read the renewal headers,
    # including a catr header-name the dialect adds to its own Access-Control-Expose-Headers.
    player = {"origin": "https://player.example"}
    cors = CorsPolicy(frozenset({player["origin"]}))
    client, dialect = client_for(origin_app, "cat", cat_table("redirect"), cors)
    async with client:
        redirect = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}", headers=player)
        assert redirect.status_code in (302, 307) and redirect.headers["location"]
        assert redirect.headers["access-control-allow-origin"] == player["origin"]
        assert redirect.headers["access-control-allow-credentials"] == "true"
        assert redirect.headers["vary"] == "Origin"
    table = cat_table("header")
    table["renewal"]["header_name"] = "X-Cat-Renewed"
    client, dialect = client_for(origin_app, "cat", table, cors)
    async with client:
        headers = {**player, "CTA-Common-Access-Token": cat_token(dialect, 30)}
        due = await client.get(f"{TITLE}master.m3u8", headers=headers)
        assert due.status_code == 200 and due.headers["x-cat-renewed"]
        assert due.headers["access-control-allow-origin"] == player["origin"]
        exposed = due.headers.get_list("access-control-expose-headers")
        assert len(exposed) == 1, "one merged list"
        assert {"cta-common-access-token", "common-access-token", "x-cat-renewed", "x-token-denial"} <= {
            name.strip().lower() for name in exposed[0].split(",")
        }


async def test_akamai_acl_token_at_the_gateway_edge(origin_app: RecordingApp) -> None:
    table = {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"}
    client, dialect = client_for(origin_app, "akamai", table)
    async with client:
        query = dialect.sign(Grant((TITLE,), NOW + 600)).query_string()
        assert (await client.get(f"{TITLE}master.m3u8?{query}")).status_code == 200
        refused = await client.get(f"/vod/title-9001/master.m3u8?{query}")
        assert refused.status_code == 403 and refused.json()["error"] == "acl"


async def test_jwks_publishes_public_keys_only(origin_app: RecordingApp) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from gateway.keys import Ed25519Key, b64url_decode, b64url_encode, parse_key
    from tests.test_cdn_manifests import KEYS_DIR

    pem = (KEYS_DIR / "keys/appendix-a-rsa2048.pem").read_text()
    mux = load_dialect("mux", {"keys": [{"kid": "Ab01cd23EfGh45", "private_key": pem}]}, base_dir=CDN_DIR)
    ed = parse_key("e1:ed25519:" + b64url_encode(b"\x05" * 32))
    assert isinstance(ed, Ed25519Key)
    settings = Settings(
        keys=KeyRing((ed, HmacKey("k1", b"\x01" * 32))),
        routes=(Route("/vod/", "http://origin.test/vod/"),),
        cdn={"mux": mux},
    )
    app = build_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert {k["kid"] for k in keys} == {"Ab01cd23EfGh45", "e1"}  # the HMAC key k1 is never published
    assert all("d" not in k for k in keys)  # no private parts
    public = serialization.load_pem_private_key(pem.encode(), None).public_key()
    rsa = next(k for k in keys if k["kty"] == "RSA")
    assert isinstance(public, RSAPublicKey)
    assert int.from_bytes(b64url_decode(rsa["n"]), "big") == public.public_numbers().n
