"""Manifests cached at the nginx front (docker/nginx-front.conf, README "nginx front").

Where a manifest is identical for every viewer (cookie and hybrid delivery, queryparam: `writer.identical`),
nginx keeps one copy and serves it to every viewer the verdict admits; Python renders it once per freshness
window, not once per viewer:

    viewer ── GET …/index.m3u8 ──▶ nginx ── auth_request, X-Front-Manifest: 1 ──▶ verdict (gateway/http/verdict.py)
        204 + x-front-manifest-key: <writer variant> <origin URL>   the same bytes for everyone: nginx's cache key
              + set-cookie                                          cookie delivery's renewal, this viewer's own
        204 without the key: a per-viewer manifest (query, path, CDN): nginx proxies it and never stores it
    nginx ── cache hit: the stored bytes; miss (one per key: proxy_cache_lock) ── X-Front-Fill: 1 ──▶ gateway
        the gateway renders it as for any viewer, minus the cookie, plus `X-Accel-Expires: @<t>`: nginx keeps it
        while its clock's second is ≤ t, i.e. never past the gateway's own copy's freshness (the origin's), and
        downstream caches get that same end as `Expires` (nginx sends no `Age`, so a max-age would restart)

Only trusted proxies (`trusted_proxies`) are answered as a front: anyone else gets the ordinary response.
With several gateway instances behind one front, a live playlist costs the origin about one fetch per
refresh interval whatever the number of instances: nginx asks one instance per expiry of its copy.
"""

from __future__ import annotations

import math
from email.utils import formatdate

from gateway.http.access import Access, AsgiScope
from gateway.http.request_facts import ProxyTrust, header, peer_address
from gateway.http.writers import ManifestWriter

MANIFEST_ASKED = b"x-front-manifest"  # on a verdict request: nginx will serve the manifest from its cache location
FRONT_FILL = b"x-front-fill"  # on a manifest request: nginx fills its cache with the answer
MANIFEST_KEY = "x-front-manifest-key"


def from_front(scope: AsgiScope, trust: ProxyTrust, name: bytes) -> bool:
    """Whether a trusted proxy (the front) sent header `name`: nobody else may switch the front's behaviour."""
    if header(scope, name) is None:
        return False
    peer = peer_address(scope)
    return peer is not None and trust.trusts(peer)


def manifest_key(writer: ManifestWriter, access: Access) -> str:
    """What nginx caches an identical manifest under: how it was prepared and where it came from, as the
    gateway's own manifest cache keys it; nothing of the viewer (no token, no address)."""
    return f"{writer.variant(access)} {access.origin_url}"


def fill_headers(fresh_until: float, now: float) -> dict[str, str]:
    """How long nginx and the caches after it may keep a filled manifest: to the last whole second before
    `fresh_until` (nginx counts whole seconds), or not at all when that second has already begun."""
    last_second = math.floor(fresh_until) - 1
    if last_second < math.floor(now):
        return {"x-accel-expires": "0"}
    return {"x-accel-expires": f"@{last_second}", "expires": formatdate(last_second + 1, usegmt=True)}
