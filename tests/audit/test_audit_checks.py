"""`gateway audit` from the config alone: a hardened config passes every item, and each item fails (or, where
the config cannot know, warns) on a config that breaks it, naming the exact setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.audit import audit_settings
from gateway.audit.findings import ITEMS, Finding, Report, Status
from gateway.config import Settings, load_settings
from gateway.tokens.keys import b64url_encode


def secret(byte: int) -> str:
    return b64url_encode(bytes([byte]) * 32)


K1, K2, ORIGIN_SECRET, SEED1, SEED2 = secret(1), secret(2), secret(3), secret(4), secret(5)
AKAMAI_KEY = "0a" * 32

HARDENED = f"""
[gateway]
leeway_seconds = 5

[keys]
ring = "k2:{K2},k1:{K1}"

[origin]
auth_secret = "{ORIGIN_SECRET}"
vod_manifest_cache_seconds = 60
live_manifest_cache_seconds = 1

[sessions]
token_ttl_seconds = 300
media_ttl_seconds = 120
max_life_seconds = 3600
ip_binding = true
ipv4_prefix = 32
ipv6_prefix = 64
cookie_same_site = "Lax"

[[routes]]
mount = "/vod/"
origin = "https://origin.example/vod/"
delivery = "cookie"

[[routes]]
mount = "/cdn/"
origin = "https://origin.example/vod/"
cdn = "media_cdn_dualtoken"
cdn_base_url = "https://media.example.com/vod/"

[dialects.media_cdn_dualtoken]
algorithm = "ed25519"
delivery = "cookie"
leeway_seconds = 5
keys = [{{name = "k2", private_key = "{SEED2}"}}, {{name = "k1", private_key = "{SEED1}"}}]
"""

AKAMAI = f"""
[dialects.akamai]
ip_binding = "strict"
algorithm = "sha256"
delivery = "cookie"
key = "{AKAMAI_KEY}"
transition_key = "{"0b" * 32}"
"""


def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


CLOUDFRONT = f"""
[dialects.cloudfront]
base_url = "https://d111111abcdef8.cloudfront.net/"
hash_algorithm = "SHA256"
delivery = "cookie"
ip_binding = 'strict'

[[dialects.cloudfront.keys]]
id = "K2"
private_key = '''{rsa_pem()}'''

[[dialects.cloudfront.keys]]
id = "K1"
private_key = '''{rsa_pem()}'''
"""


def settings_from(text: str, tmp_path: Path) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_settings(path, {})


def test_a_hardened_config_passes_every_item(tmp_path: Path) -> None:
    findings = audit_settings(settings_from(HARDENED + AKAMAI + CLOUDFRONT, tmp_path))
    assert [f for f in findings if f.status is not Status.PASS] == []
    assert {f.item for f in findings} == set(ITEMS)  # every item answered
    assert Report(findings).exit_status == 0


# (replace this, with this, the setting the finding names, its status); "+" joins a second replacement
BREAKS = {
    "short_ttls": ("media_ttl_seconds = 120", "media_ttl_seconds = 7200", "[sessions] media_ttl_seconds", "fail"),
    "short_ttls cdn tokens to the cap": (
        "max_life_seconds = 3600",
        "max_life_seconds = 14400",
        "[sessions] max_life_seconds",
        "warn",
    ),
    "short_ttls dialect leeway": (
        'algorithm = "sha256"',
        'algorithm = "sha256"\nleeway_seconds = 900',
        "[dialects.akamai] leeway_seconds",
        "fail",
    ),
    "cache_lifetimes": (
        "vod_manifest_cache_seconds = 60",
        "vod_manifest_cache_seconds = 600",
        "[origin] vod_manifest_cache_seconds",
        "fail",
    ),
    "cache_lifetimes live": (
        "live_manifest_cache_seconds = 1",
        "live_manifest_cache_seconds = 180",
        "[origin] live_manifest_cache_seconds",
        "fail",
    ),
    "ip_binding": ("ipv6_prefix = 64", "ipv6_prefix = 32", "[sessions] ipv6_prefix", "fail"),
    "ip_binding off": ("ip_binding = true", "ip_binding = false", "[sessions] ip_binding", "warn"),
    "ip_binding dialect drops it": (
        'cdn = "media_cdn_dualtoken" + ip_binding = "strict"',
        'cdn = "akamai" + ip_binding = "best-effort"',
        "[dialects.akamai] ip_binding",
        "fail",
    ),
    "hash_algorithms": ('algorithm = "sha256"', 'algorithm = "sha1"', "[dialects.akamai] algorithm", "fail"),
    "hash_algorithms cloudfront rsa": (
        'hash_algorithm = "SHA256"',
        'hash_algorithm = "SHA1"',
        "[dialects.cloudfront] hash_algorithm",
        "fail",
    ),
    "ip_binding cloudfront drops ipv6": (
        "cdn = \"media_cdn_dualtoken\" + ip_binding = 'strict'",
        'cdn = "cloudfront" + ip_binding = "best-effort"',
        "[dialects.cloudfront] ip_binding",
        "fail",
    ),
    "origin_protection": (
        f'auth_secret = "{ORIGIN_SECRET}"',
        "",
        "[origin] auth_secret (GATEWAY_ORIGIN_SECRET)",
        "fail",
    ),
    "cache_key": (
        'delivery = "cookie"\nleeway_seconds = 5',
        'delivery = "query"\nleeway_seconds = 5',
        "the CDN behind https://media.example.com/vod/ ([[routes]] mount = '/cdn/', cdn = 'media_cdn_dualtoken')",
        "warn",
    ),
    "cookies": ('cookie_same_site = "Lax"', 'cookie_same_site = "None"', "[sessions] cookie_same_site", "fail"),
    "key_rotation": (f"k2:{K2},k1:{K1}", f"k1:{K1}", "GATEWAY_KEYS / [keys] ring", "warn"),
    "key_rotation shared secret": (
        f'auth_secret = "{ORIGIN_SECRET}"',
        f'auth_secret = "{K1}"',
        "[origin] auth_secret",
        "fail",
    ),
    "front_end_secrets": (
        "[gateway]\n",
        '[gateway]\ntrusted_proxies = ["0.0.0.0/0"]\n',
        "[gateway] trusted_proxies (GATEWAY_TRUSTED_PROXIES)",
        "fail",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_item_names_the_setting_that_breaks_it(case: str, tmp_path: Path) -> None:
    old, new, setting, status = BREAKS[case]
    broken_config = HARDENED + AKAMAI + CLOUDFRONT
    for before, after in zip(old.split(" + "), new.split(" + "), strict=True):
        assert broken_config.count(before) == 1
        broken_config = broken_config.replace(before, after)
    findings = audit_settings(settings_from(broken_config, tmp_path))
    item = case.split()[0]
    broken = [f for f in findings if f.status is not Status.PASS]
    assert [(f.item, f.setting, f.status.value) for f in broken] == [(item, setting, status)]
    assert broken[0].fix and broken[0].why  # what to change, and why it matters
    assert Report(findings).exit_status == (1 if status == "fail" else 0)


def test_every_item_has_a_breaking_case() -> None:
    assert {case.split()[0] for case in BREAKS} == set(ITEMS)


def test_the_report_prints_why_and_fix_and_json(tmp_path: Path) -> None:
    old, new, *_ = BREAKS["origin_protection"]
    report = Report(audit_settings(settings_from((HARDENED + AKAMAI + CLOUDFRONT).replace(old, new), tmp_path)))
    text = report.as_text()
    assert "FAIL  Origin protection on [origin_protection]\n      why: without the authenticated origin header" in text
    assert "  FAIL  [origin] auth_secret (GATEWAY_ORIGIN_SECRET): empty" in text
    assert "        fix: auth_secret = <32 random bytes" in text
    assert text.endswith(f"{len(report.findings) - 1} pass, 0 warn, 1 fail: FAILED")
    import json

    data = json.loads(report.as_json())
    assert data["ok"] is False and data["counts"] == {"pass": len(report.findings) - 1, "warn": 0, "fail": 1}
    failed = [f for f in data["findings"] if f["status"] == "fail"]
    assert failed[0]["item"] == "origin_protection" and failed[0]["title"] == "Origin protection on"
    assert Finding(**{k: v for k, v in failed[0].items() if k not in ("title", "status")}, status=Status.FAIL)
