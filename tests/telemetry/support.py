"""A small origin tree, the settings that front it, and reading the metrics a real server exposes."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import MetricsSettings, Route, SessionSettings, Settings
from gateway.config_schema import LogFormat
from gateway.sessions.entitlements import CatalogEntitlements, Title, Viewer
from gateway.tokens.keys import HmacKey, KeyRing, b64url_encode

SECRET = b"\x07" * 32
RING = KeyRing((HmacKey("k-audit", SECRET),))
KEYS_ENV = "k-audit:" + b64url_encode(SECRET)  # as GATEWAY_KEYS takes it
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg0.ts\n#EXTINF:2,\nseg1.ts\n#EXT-X-ENDLIST\n"
SEGMENT = b"\x47" * 188 * 4
MASTER = "/vod/t/index.m3u8"
PAID = {"authorization": "Bearer paid"}
CATALOG = CatalogEntitlements(users={"paid": Viewer("u-paid", "Paula", "paid", "NL")}, titles=(Title("/vod/t/", "T"),))
CATALOG_TOML = (
    '[[users]]\ncredential = "paid"\nid = "u-paid"\nname = "Paula"\nplan = "paid"\ncountry = "NL"\n'
    '[[titles]]\nprefix = "/vod/t/"\nname = "T"\n'
)


def origin_tree(root: Path) -> Path:
    (root / "vod" / "t").mkdir(parents=True)
    (root / "vod" / "t" / "index.m3u8").write_bytes(PLAYLIST)
    for name in ("seg0.ts", "seg1.ts"):
        (root / "vod" / "t" / name).write_bytes(SEGMENT)
    return root


def gateway_settings(
    origin: str, *, redis_url: str = "", metrics: MetricsSettings | None = None, extra: tuple[Route, ...] = ()
) -> Settings:
    return Settings(
        keys=RING,
        routes=(Route(mount="/vod/", origin=origin + "vod/"), *extra),
        sessions=SessionSettings(),
        catalog=CATALOG,
        redis_url=redis_url,
        metrics=metrics or MetricsSettings(),
        log_format=LogFormat.TEXT,
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample at `url` (a real /metrics), keyed by (name, sorted labels)."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")  # the text exposition format
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)
