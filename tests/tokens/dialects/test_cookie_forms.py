"""Every dialect's cookie form, as the gateway and the CLI write `Set-Cookie`, byte for byte against the vendor.

The `name=value` pair of each `Set-Cookie` line must be exactly the cookie the vendor's reference makes for
the same grant and key: akamai-edgeauth (`hdnts=<token>`), botocore's CloudFront signer (the three
`CloudFront-*` cookies carry its `Policy`, `Signature`, `Key-Pair-Id`), Google's samples (Cloud CDN, Media CDN,
dual token; transcribed in `google_reference`, anchored here on Google's published vectors).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings

from gateway.cli import main as cli_main
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant
from tests.integration.test_dialect_edge_walk import write_config
from tests.tokens.dialects import google_reference as google
from tests.tokens.dialects.dialect_helpers import FIXTURES, HOST, NOW, RSA_PEM, grants, load_vectors
from tests.tokens.dialects.test_akamai import reference_tokens
from tests.tokens.dialects.test_cloudfront import botocore_signer, utc

GOOGLE = load_vectors("google_vectors.json")
AKAMAI_KEY = "aabbccddeeff00112233445566778899"
CF_KEY_ID = "K2JCJMDEHXQW5F"  # test_cloudfront's botocore signer signs as this key pair
DUAL_HMAC = GOOGLE["media_cdn_dualtoken"]["hmac_key"]
AKAMAI_WORKED_EXAMPLE = (
    "st=1700000000~exp=1700003600~acl=/hls/abc/*~hmac=eb5f9657a6886e37aa74d092ca591f0d215c48239cd822bc9ed8190da88131e7"
)
DUAL_SEED = GOOGLE["media_cdn_dualtoken"]["ed25519_key"]

# dialect name, its [dialects.NAME] table with cookie delivery (keys inline or relative to FIXTURES)
TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "akamai-hdnts": ("akamai", {"key": AKAMAI_KEY, "delivery": "cookie", "token_name": "hdnts"}),
    "cloudfront": (
        "cloudfront",
        {
            "base_url": HOST,
            "delivery": "cookie",
            "keys": [{"id": CF_KEY_ID, "private_key_file": str(RSA_PEM.relative_to(FIXTURES))}],
        },
    ),
    "cloud_cdn": (
        "cloud_cdn",
        {"base_url": HOST, "form": "cookie", "keys": [{"name": "my-key", "secret": GOOGLE["cloud_cdn"]["key"]}]},
    ),
    "media_cdn": (
        "media_cdn",
        {"base_url": HOST, "form": "cookie", "keys": [{"name": "my-key", "private_key": GOOGLE["media_cdn"]["key"]}]},
    ),
    "dualtoken-sha256": (
        "media_cdn_dualtoken",
        {"algorithm": "sha256", "delivery": "cookie", "keys": [{"name": "k", "secret": DUAL_HMAC}]},
    ),
    "dualtoken-ed25519": (
        "media_cdn_dualtoken",
        {"algorithm": "ed25519", "delivery": "cookie", "keys": [{"name": "k", "private_key": DUAL_SEED}]},
    ),
}


def _cf_decode(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def cloudfront_reference(grant: Grant, policy_cookie: str) -> list[str]:
    """botocore signs the policy the cookie carries (whose statement must be the grant's) with the same key."""
    signer = botocore_signer(RSA_PEM.read_text())
    policy = signer.build_policy(HOST + encoded_prefix(grant.path_prefixes[0]) + "*", utc(grant.expires_at))
    assert _cf_decode(policy_cookie).decode() == policy
    query = dict(parse_qsl(urlsplit(signer.generate_presigned_url(HOST + "/x", policy=policy)).query))
    return [f"CloudFront-{name}={query[name]}" for name in ("Policy", "Signature", "Key-Pair-Id")]


def google_reference(case: str, grant: Grant) -> list[str]:
    prefix, expires = encoded_prefix(grant.path_prefixes[0]), grant.expires_at
    if case == "cloud_cdn":
        return [google.cloud_cdn_cookie(HOST + prefix, "my-key", GOOGLE["cloud_cdn"]["key"], expires)]
    if case == "media_cdn":
        return [google.media_cdn_cookie(HOST + prefix, "my-key", GOOGLE["media_cdn"]["key"], expires)]
    algorithm = case.removeprefix("dualtoken-")
    key = DUAL_SEED if algorithm == "ed25519" else DUAL_HMAC
    return [google.dual_token_cookie(prefix + "*", algorithm, key, expires, grant.session_id)]


def pairs(set_cookies: list[str]) -> list[str]:
    """The `name=value` of each Set-Cookie header, exactly as written (everything before the first ';')."""
    return [header.split(";", 1)[0] for header in set_cookies]


def set_cookies(case: str, grant: Grant) -> list[str]:
    name, table = TABLES[case]
    credentials = load_dialect(name, table, base_dir=FIXTURES).sign(grant)
    return [cookie.set_cookie(now=NOW) for cookie in credentials.cookies]


# -- the transcriptions themselves, on Google's published vectors --------------------------------------


def test_google_sample_transcriptions_reproduce_the_published_vectors() -> None:
    for name, sign in (("cloud_cdn", google.cloud_cdn_cookie), ("media_cdn", google.media_cdn_cookie)):
        vectors = GOOGLE[name]
        for vector in vectors["signed_cookie"]:
            assert sign(vector["prefix"], "my-key", vectors["key"], vectors["expires"]) == vector["expected"]
    dual = GOOGLE["media_cdn_dualtoken"]
    for vector in (c for c in dual["cases"] if c.get("path_globs") == "/*" and not c.get("all_params")):
        key = dual["ed25519_key"] if vector["algorithm"] == "ed25519" else dual["hmac_key"]
        cookie = google.dual_token_cookie("/*", vector["algorithm"], key, dual["expires"])
        assert cookie == "Edge-Cache-Cookie=" + vector["expected"]


def test_published_google_cookie_vectors_come_out_of_the_writer_unquoted() -> None:
    """The directory vectors through dialect and writer: exactly Google's `Name=value`, no quotes."""
    for name in ("cloud_cdn", "media_cdn"):
        vectors = GOOGLE[name]
        vector = next(v for v in vectors["signed_cookie"] if v["prefix"].endswith("/"))
        parts = urlsplit(vector["prefix"])
        table = {
            "base_url": f"{parts.scheme}://{parts.netloc}",
            "form": "cookie",
            "keys": [{"name": "my-key", "secret" if name == "cloud_cdn" else "private_key": vectors["key"]}],
        }
        dialect = load_dialect(name, table)
        (cookie,) = dialect.sign(Grant((parts.path,), vectors["expires"])).cookies
        assert pairs([cookie.set_cookie(now=0)]) == [vector["expected"]]


# -- every cookie dialect, random grants ---------------------------------------------------------------


@pytest.mark.parametrize("case", [case for case in TABLES if not case.startswith("akamai")])
def test_set_cookie_is_the_vendors_cookie_over_random_grants(case: str) -> None:
    reference: Callable[[Grant, list[str]], list[str]] = (
        (lambda grant, ours: cloudfront_reference(grant, ours[0].split("=", 1)[1]))
        if case == "cloudfront"
        else (lambda grant, ours: google_reference(case, grant))
    )

    @settings(max_examples=25, deadline=None, database=None)
    @given(grant=grants(not_before=False))
    def check(grant: Grant) -> None:
        ours = pairs(set_cookies(case, grant))
        assert ours == reference(grant, ours)
        assert all('"' not in pair for pair in ours)

    check()


def test_akamai_hdnts_cookie_is_edgeauths_token_over_random_grants() -> None:
    cases: list[dict[str, Any]] = []
    ours: list[str] = []

    @settings(max_examples=40, deadline=None, database=None)
    @given(grant=grants(max_prefixes=2))
    def collect(grant: Grant) -> None:
        ours.extend(pairs(set_cookies("akamai-hdnts", grant)))
        case: dict[str, Any] = {"key": AKAMAI_KEY, "end": grant.expires_at}
        case |= {"start": grant.not_before} if grant.not_before else {}
        cases.append(case | {"acl": [encoded_prefix(p) + "*" for p in grant.path_prefixes]})

    collect()
    assert ours == ["hdnts=" + token for token in reference_tokens(cases)]


# -- the CLI's Set-Cookie lines ------------------------------------------------------------------------


def _cli_set_cookies(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    name, table = TABLES[case]
    table = {k: (str(FIXTURES / v) if k.endswith("_file") else v) for k, v in table.items()}
    if "keys" in table:
        table["keys"] = [
            {k: (str(FIXTURES / v) if k.endswith("_file") else v) for k, v in key.items()} for key in table["keys"]
        ]
    toml = write_config(tmp_path / "gateway.toml", name, table)
    assert cli_main(["sign", "--dialect", name, "--config", str(toml), *argv]) == 0
    return [line.removeprefix("Set-Cookie: ") for line in capsys.readouterr().out.splitlines() if "Set-Cookie" in line]


def test_cli_prints_edgeauths_hdnts_cookie(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shared dialect notes' Akamai example (made with akamai-edgeauth), as `gateway sign` prints it."""
    argv = ("--path-prefix", "/hls/abc/", "--start", "1700000000", "--ttl", "3600")
    (header,) = _cli_set_cookies(tmp_path, "akamai-hdnts", capsys, *argv)
    expected = AKAMAI_WORKED_EXAMPLE
    assert reference_tokens([{"key": AKAMAI_KEY, "start": 1700000000, "end": 1700003600, "acl": "/hls/abc/*"}]) == [
        expected
    ]
    assert header.startswith(f"hdnts={expected}; Path=/hls/abc/;")


def test_cli_prints_botocores_cloudfront_cookies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--path-prefix", "/vod/title-9000/", "--ttl", "600")
    headers = _cli_set_cookies(tmp_path, "cloudfront", capsys, *argv)
    ours = pairs(headers)
    policy = json.loads(_cf_decode(ours[0].split("=", 1)[1]))
    expires = policy["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"]
    assert ours == cloudfront_reference(Grant(("/vod/title-9000/",), expires), ours[0].split("=", 1)[1])
