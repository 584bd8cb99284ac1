"""Mux signed playback tokens, checked against PyJWT (an implementation that is not ours)."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.dialects.mux import MuxDialect, audience_of, from_config
from gateway.tokens.grant import Grant
from tests.tokens.dialects_jwt_cat.support import (
    NOW,
    RSA_KEY,
    RSA_PRIVATE_PEM,
    RSA_PUBLIC_KEY,
    RSA_PUBLIC_PEM,
    denial,
    grants,
)

KID = "Ab01cd23EfGh45"
PLAYBACK_ID = "qxb01i6T202018GFS02vp9RIe01icTcDCjVzQpmaB00CUisJ4"
# A worked example: the claims below, signed with the test RSA key (support.RSA_PRIVATE_PEM), by PyJWT.
DOC_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkFiMDFjZDIzRWZHaDQ1IiwidHlwIjoiSldUIn0."
    "eyJzdWIiOiJxeGIwMWk2VDIwMjAxOEdGUzAydnA5UkllMDFpY1RjRENqVnpRcG1hQjAwQ1Vpc0o0IiwiYXVkIjoidiIsImV4cCI6MTc2"
    "NzI5MDQwMH0."
    "yA2AE0rKbUdyJ0hWflG3dORoSN6uk9u18o9T0jNaxIou90cykaJU0M_Y86YhJVr5Kvvh-C5yOUlyqQG_z1-SlBOe7bvk0_2t_m2rOzZl"
    "YyWKk13jcWw_I_wVF2nF5dxXcy-zgFm_egqolSopYxSE5QMfszwncH0R54tsaEjBhc7VDO5dKWG0KdizWzBsEgEL_cVkow-D4zxdetQu"
    "kAP7JFHfGGTwVSbBpB7QlRLP1COZn1Zm1ZJY0M2CVpQ7fTghQkxMBr3rjdKz5ybwbBuDCwzh_u6q_wgs-ezKenn8CpwpXt1HHmjGGMyI"
    "c5UQAIks5Zg3SOVMuWm9ucTGet_ZqQ"
)
ids = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=10, max_size=60)


def dialect(**table: Any) -> MuxDialect:
    config: dict[str, Any] = {
        "keys": [{"kid": KID, "private_key": base64.b64encode(RSA_PRIVATE_PEM.encode()).decode()}]
    }
    config.update(table)
    return from_config(config, base_dir=Path())


MUX = dialect()


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {"path_prefixes": (f"/vod/{PLAYBACK_ID}/",), "expires_at": NOW + 600}
    fields.update(changes)
    return Grant(**fields)


def request(url: str, **kw: Any) -> EdgeRequest:
    return EdgeRequest(url=url, **kw)


def test_reproduces_the_worked_example_byte_for_byte() -> None:
    credentials = MUX.sign(grant(expires_at=1767290400))
    assert credentials.token == DOC_TOKEN
    assert credentials.query == (("token", DOC_TOKEN),)
    assert credentials.url == f"https://stream.mux.com/{PLAYBACK_ID}.m3u8?token={DOC_TOKEN}"


@settings(max_examples=40, deadline=None)
@given(grants(prefix=ids.map(lambda i: f"/vod/{i}/"), network=False, user=False), st.sampled_from("vtgsd"))
def test_pyjwt_agrees_byte_for_byte_and_verify_returns_the_grant(original: Grant, audience: str) -> None:
    payload = MUX.claims(original, audience)
    token = jwt.encode(payload, RSA_KEY, "RS256", headers={"kid": KID})
    playback_id = payload["sub"]
    url = {
        "v": f"https://stream.mux.com/{playback_id}.m3u8",
        "t": f"https://image.mux.com/{playback_id}/thumbnail.jpg",
        "g": f"https://image.mux.com/{playback_id}/animated.gif",
        "s": f"https://image.mux.com/{playback_id}/storyboard.vtt",
        "d": f"https://license.mux.com/license/widevine/{playback_id}",
    }[audience]
    credentials = MUX.sign(original, url=url)
    assert credentials.token == token
    # PyJWT reads the wall clock, so its nbf check is off; our own time checks run at `now` below.
    decoded = jwt.decode(token, RSA_PUBLIC_KEY, algorithms=["RS256"], audience=audience, options={"verify_nbf": False})
    assert decoded == payload
    assert MUX.verify(request(f"{url}?token={token}"), now=float(original.not_before or NOW)) == original


def test_audience_must_fit_the_request() -> None:
    token = MUX.sign(grant()).token
    assert denial(
        lambda: MUX.verify(request(f"https://image.mux.com/{PLAYBACK_ID}/thumbnail.jpg?token={token}"), now=NOW)
    ) is (Denial.SCOPE)
    thumb = MUX.sign(grant(), url=f"https://image.mux.com/{PLAYBACK_ID}/thumbnail.png").token
    assert jwt.decode(thumb or "", RSA_PUBLIC_PEM, algorithms=["RS256"], audience="t")["aud"] == "t"
    assert denial(lambda: MUX.verify(request(f"https://stream.mux.com/{PLAYBACK_ID}.m3u8?token={thumb}"), now=NOW)) is (
        Denial.SCOPE
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://stream.mux.com/abc.m3u8", ("abc", "v")),
        ("https://stream.mux.com/abc/high.mp4", ("abc", "v")),
        ("https://image.mux.com/abc/thumbnail.webp", ("abc", "t")),
        ("https://image.mux.com/abc/animated.webp", ("abc", "g")),
        ("https://image.mux.com/abc/storyboard.json", ("abc", "s")),
        ("https://license.mux.com/license/fairplay/abc", ("abc", "d")),
    ],
)
def test_audience_of_mux_urls(url: str, expected: tuple[str, str]) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert audience_of(parts.hostname or "", parts.path) == expected


def test_other_playback_id_and_path_tricks_are_acl() -> None:
    token = MUX.sign(grant()).token
    assert (
        denial(lambda: MUX.verify(request(f"https://stream.mux.com/OtherId123.m3u8?token={token}"), now=NOW))
        is Denial.ACL
    )
    tricks = [f"/{PLAYBACK_ID}/../OtherId123.m3u8", f"/{PLAYBACK_ID}/%2e%2e/OtherId123.m3u8", f"/{PLAYBACK_ID}//x.ts"]
    for path in tricks:
        assert (
            denial(lambda p=path: MUX.verify(request(f"https://stream.mux.com{p}?token={token}"), now=NOW))
            is Denial.ACL
        )


def test_expired_not_yet_valid_missing_and_duplicated_token() -> None:
    token = MUX.sign(grant(not_before=NOW - 5)).token
    url = f"https://stream.mux.com/{PLAYBACK_ID}.m3u8"
    assert denial(lambda: MUX.verify(request(f"{url}?token={token}"), now=NOW + 600)) is Denial.EXPIRED
    assert denial(lambda: MUX.verify(request(f"{url}?token={token}"), now=NOW - 6)) is Denial.NOT_YET_VALID
    assert denial(lambda: MUX.verify(request(url), now=NOW)) is Denial.MISSING
    assert denial(lambda: MUX.verify(request(f"{url}?token={token}&token={token}"), now=NOW)) is Denial.MALFORMED


def test_algorithm_confusion_is_refused() -> None:
    # PyJWT itself refuses to HMAC with a PEM, which is the point: build the forgery by hand.
    import hashlib
    import hmac
    import json

    from gateway.tokens.keys import b64url_encode

    header = b64url_encode(json.dumps({"alg": "HS256", "kid": KID, "typ": "JWT"}).encode())
    body = b64url_encode(json.dumps({"sub": PLAYBACK_ID, "aud": "v", "exp": NOW + 60}).encode())
    mac = b64url_encode(hmac.new(RSA_PUBLIC_PEM.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    url = f"https://stream.mux.com/{PLAYBACK_ID}.m3u8?token={header}.{body}.{mac}"
    assert denial(lambda: MUX.verify(request(url), now=NOW)) is Denial.BAD_SIGNATURE


def test_key_rotation(second_rsa_pem: str) -> None:
    rotated = dialect(
        keys=[{"kid": "k-new", "private_key": second_rsa_pem}, {"kid": KID, "public_key": RSA_PUBLIC_PEM}]
    )
    url = f"https://stream.mux.com/{PLAYBACK_ID}.m3u8"
    new = rotated.sign(grant()).token
    assert rotated.verify(request(f"{url}?token={new}"), now=NOW).key_id == "k-new"
    assert rotated.verify(request(f"{url}?token={MUX.sign(grant()).token}"), now=NOW).key_id == KID
    assert denial(lambda: MUX.verify(request(f"{url}?token={new}"), now=NOW)) is Denial.UNKNOWN_KEY


def test_client_network_is_refused_unless_dropped_and_params_are_claims() -> None:
    networked = grant(client_network=ipaddress.ip_network("10.0.0.0/8"))
    with pytest.raises(ValueError, match="drop_client_network"):
        MUX.sign(networked)
    lenient = dialect(drop_client_network=True, params={"playback_restriction_id": "r1", "time": 10})
    token = lenient.sign(networked).token or ""
    claims = jwt.decode(token, RSA_PUBLIC_KEY, algorithms=["RS256"], audience="v")
    assert claims == {"sub": PLAYBACK_ID, "aud": "v", "exp": NOW + 600, "playback_restriction_id": "r1", "time": 10}
    verified = lenient.verify(request(f"https://stream.mux.com/{PLAYBACK_ID}.m3u8?token={token}"), now=NOW)
    assert verified == dataclasses.replace(networked, client_network=None)
    with pytest.raises(ValueError, match="query"):
        MUX.sign(grant(), url=f"https://stream.mux.com/{PLAYBACK_ID}.m3u8?max_resolution=720p")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"params": {"exp": 5}}, "params: exp"),
        ({"audience": "x"}, "audience"),
        ({"prefix_template": "/vod/{uid}/"}, "prefix_template"),
        ({"max_resolution": "720p"}, r"unknown key 'max_resolution' in \[dialects.mux\]"),
        ({"keys": [{"kid": "a", "private_key": "bm90IGEga2V5"}]}, r"dialects.mux.keys\[0\]"),
    ],
)
def test_config_errors_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dialect(**table)


def test_jwks_and_registry() -> None:
    (jwk,) = MUX.jwks()["keys"]
    token = MUX.sign(grant()).token or ""
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="v")["sub"] == PLAYBACK_ID
    built = load_dialect("mux", {"keys": [{"kid": KID, "public_key": RSA_PUBLIC_PEM}]})
    assert built.name == "mux" and built.prefix_signing


def test_satisfies_the_dialect_protocol() -> None:
    conforming: Dialect = MUX  # mypy checks the protocol; the registry hands out the same type
    assert conforming.prefix_signing
