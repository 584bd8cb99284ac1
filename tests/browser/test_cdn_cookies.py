"""Chromium keeps exactly the vendor's cookie from the gateway's `Set-Cookie` (issue 11.1).

A gateway route whose segments a CDN serves with that CDN's signed cookies (hybrid delivery, so the
gateway's own `gw_token` cookie comes on the same playlist response) runs under a real uvicorn. Debian's
Chromium (playwright-core, `players/tests/cookie_jar.mjs`) fetches a media playlist from a page of the
gateway's origin, as a player's XHR would, and reports the cookies it stored. Each stored value must be
exactly what the vendor's reference makes for the grant it carries: akamai-edgeauth regenerates the `hdnts`
token from its own fields, botocore re-signs the CloudFront policy, Google's samples re-sign the Cloud CDN
prefix and the dual token. The old writer's quotes (`hdnts="exp=…"`) would be stored as part of the value.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.http.app import build_app
from gateway.tokens.dialects import load_dialect
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.browser import test_demo_playback as vod
from tests.support.paths import FIXTURES
from tests.support.servers import serve_app, static_origin
from tests.tokens.dialects import test_cookie_forms as forms
from tests.tokens.dialects.test_akamai import reference_tokens

pytestmark = pytest.mark.browser

node = vod.node  # node, npm and Debian's chromium (`npm ci` done)

COOKIE_JAR = vod.PLAYERS / "tests" / "cookie_jar.mjs"
RING = KeyRing((HmacKey("k1", b"\x02" * 32),))
TITLE = "/vod/title-9000/"
CDN_COOKIES = {
    "akamai-hdnts": ["hdnts"],
    "cloudfront": ["CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id"],
    "cloud_cdn": ["Cloud-CDN-Cookie"],
    "dualtoken-sha256": ["Edge-Cache-Cookie"],
}


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(FIXTURES / "cdn" / "origin") as (url, _):
        yield url


def stored_cookies(node: str, gateway: str, path: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(COOKIE_JAR), "--page", f"{gateway}/_gateway/ready", "--url", path],
        cwd=vod.PLAYERS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def vendor_pairs(case: str, values: dict[str, str]) -> list[str]:
    """What the vendor's reference makes for the grant the stored cookies carry (its expiry and prefix)."""
    if case == "akamai-hdnts":
        fields = dict(part.split("=", 1) for part in values["hdnts"].split("~"))
        inputs: dict[str, Any] = {"key": forms.AKAMAI_KEY, "end": int(fields["exp"]), "acl": fields["acl"].split("!")}
        names = {"st": "start", "id": "session_id", "data": "payload", "ip": "ip"}
        inputs |= {names[key]: int(value) if key == "st" else value for key, value in fields.items() if key in names}
        return ["hdnts=" + token for token in reference_tokens([inputs])]
    if case == "cloudfront":
        statement = json.loads(forms._cf_decode(values["CloudFront-Policy"]))["Statement"][0]
        expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
        return forms.cloudfront_reference(Grant((TITLE,), expires), values["CloudFront-Policy"])
    parts = values[CDN_COOKIES[case][0]].replace(":", "~").split("~")
    fields = dict(part.split("=", 1) for part in parts if "=" in part)
    return forms.google_reference(case, Grant((TITLE,), int(fields["Expires"]), session_id=fields.get("SessionID")))


@pytest.mark.parametrize("case", sorted(CDN_COOKIES))
def test_chromium_stores_the_vendors_cookie_from_the_gateways_set_cookie(node: str, origin: str, case: str) -> None:
    name, table = forms.TABLES[case]
    dialect = load_dialect(name, table, base_dir=FIXTURES / "dialects")
    route = Route(
        mount="/vod/",
        origin=origin + "vod/",
        delivery=Delivery.HYBRID,
        cdn=name,
        cdn_base_url="https://cdn.example.com/vod/",
    )
    settings = Settings(keys=RING, routes=(route,), dialects={name: dialect})
    token = sign_grant(Grant((TITLE,), int(time.time()) + 300, session_id="S1"), RING)
    with serve_app(build_app(settings)) as gateway:
        result = stored_cookies(node, gateway, f"{TITLE}v1/index.m3u8?token={token}")
    assert result["status"] == 200, result
    stored = {cookie["name"]: cookie for cookie in result["cookies"]}
    assert set(CDN_COOKIES[case]) | {"gw_token"} <= set(stored), stored.keys()
    values = {cookie_name: stored[cookie_name]["value"] for cookie_name in CDN_COOKIES[case]}
    assert [f"{cookie_name}={value}" for cookie_name, value in values.items()] == vendor_pairs(case, values)
    assert all('"' not in value for value in values.values())
    assert {stored[cookie_name]["path"] for cookie_name in CDN_COOKIES[case]} == {TITLE}
    assert stored["gw_token"]["httpOnly"] and stored["gw_token"]["path"] == TITLE
