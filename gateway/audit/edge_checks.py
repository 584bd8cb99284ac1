"""Checklist items about what surrounds the tokens, judged from `Settings` alone: origin protection, token
parameters and CDN cache keys, cookie attributes, and what the gateway itself publishes. Pure: no I/O."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from gateway.audit.findings import Finding, Status
from gateway.audit.secrets import leaks, secret_material
from gateway.config import Settings
from gateway.config_schema import Delivery, SameSite
from gateway.errors import ConfigError
from gateway.http.app import published_keys
from gateway.http.cdn import CdnBinding, cdn_path

COOKIE_MODES = frozenset({Delivery.COOKIE, Delivery.HYBRID})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_protection(settings: Settings) -> list[Finding]:
    found = []
    if not settings.origin.auth_secret:
        found.append(
            Finding(
                "origin_protection",
                Status.FAIL,
                "[origin] auth_secret (GATEWAY_ORIGIN_SECRET)",
                "empty: origin requests carry no x-gateway-origin-auth header",
                "auth_secret = <32 random bytes, unpadded base64url: the secret part of `gateway keys new`>, "
                "and have the origin (or a sidecar) refuse requests failing gateway.origin.auth.verify_origin_auth",
            )
        )
    for route in settings.routes:
        parts = urlsplit(route.origin)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            found.append(
                Finding(
                    "origin_protection",
                    Status.WARN,
                    f"[[routes]] mount = {route.mount!r}: origin",
                    f"{route.origin} is plain HTTP",
                    'origin = "https://…" (or keep the origin on a private network the gateway alone reaches)',
                    "the origin header and every object cross the network in clear; a captured header replays for 30 s",
                )
            )
    return found or [
        Finding(
            "origin_protection",
            Status.PASS,
            "[origin] auth_secret",
            "set: every origin request carries x-gateway-origin-auth (HMAC-SHA256, time-bound)",
        )
    ]


def cache_key(settings: Settings) -> list[Finding]:
    """The gateway keeps token parameters out of its own cache keys and origin requests; a CDN's cache key is
    the CDN's setting, which the config cannot show: each route whose CDN URLs carry a token is a reminder."""
    found = []
    for route in settings.routes:
        if not route.cdn:
            continue
        dialect = settings.dialects[route.cdn]
        try:
            delivery = CdnBinding.probe(dialect, cdn_path(route, route.mount + "probe/")).delivery
        except ConfigError as exc:
            found.append(Finding("cache_key", Status.FAIL, f"[[routes]] mount = {route.mount!r}: cdn", str(exc)))
            continue
        if delivery in ("query", "per_url"):
            params = ", ".join(dialect.query_params)
            found.append(
                Finding(
                    "cache_key",
                    Status.WARN,
                    f"the CDN behind {route.cdn_base_url} ([[routes]] mount = {route.mount!r}, cdn = {route.cdn!r})",
                    f"segment URLs carry {route.cdn} tokens in the query ({params}); the config cannot see "
                    "whether the CDN's cache key leaves them out",
                    f"exclude {params} from the CDN's cache key (its cache-key query-string policy), or deliver "
                    f"[dialects.{route.cdn}] by cookie",
                )
            )
    excluded = ", ".join(sorted(settings.token_params))
    return found or [
        Finding(
            "cache_key",
            Status.PASS,
            "[gateway] token_param",
            f"no CDN URL carries a query token; the gateway never forwards or caches on {excluded}",
        )
    ]


def cookies(settings: Settings) -> list[Finding]:
    s = settings.sessions
    modes = sorted({route.mount for route in settings.routes if route.delivery in COOKIE_MODES})
    if not modes:
        return [Finding("cookies", Status.PASS, "[[routes]] delivery", "no route delivers by cookie")]
    found = []
    if s.cookie_same_site is SameSite.NONE and not settings.cors.allowed_origins:
        found.append(
            Finding(
                "cookies",
                Status.FAIL,
                "[sessions] cookie_same_site",
                '"None" while [cors] allowed_origins is empty: no other site may play, yet every site\'s requests '
                "carry the session cookie",
                'cookie_same_site = "Lax" (or list the player\'s site in [cors] allowed_origins)',
            )
        )
    elif s.cookie_same_site is SameSite.NONE and not s.cookie_partitioned:
        found.append(
            Finding(
                "cookies",
                Status.WARN,
                "[sessions] cookie_partitioned",
                "false with SameSite=None: browsers that block third-party cookies drop it",
                "cookie_partitioned = true (CHIPS: the cookie is keyed to the site embedding the player)",
            )
        )
    return found or [
        Finding(
            "cookies",
            Status.PASS,
            "[sessions] cookie_same_site",
            f"{s.cookie_name} on {', '.join(modes)}: HttpOnly, Secure (except on plain-HTTP localhost), "
            f"SameSite={s.cookie_same_site.value}" + ("; Partitioned" if s.cookie_partitioned else ""),
        )
    ]


# A trusted proxy network this wide that is not private is the Internet: the verdict endpoint and the client
# address would believe X-Forwarded-For from anyone.
WIDEST_PUBLIC_PROXY_PREFIX = {4: 16, 6: 32}


def trusted_proxies(settings: Settings) -> list[Finding]:
    """`/_gateway/verdict` answers trusted proxies only; a trusted "proxy" network covering the world opens it."""
    wide = [
        str(network)
        for network in settings.trusted_proxies
        if network.prefixlen < WIDEST_PUBLIC_PROXY_PREFIX[network.version] and not network.is_private
    ]
    if not wide:
        return []
    return [
        Finding(
            "front_end_secrets",
            Status.FAIL,
            "[gateway] trusted_proxies (GATEWAY_TRUSTED_PROXIES)",
            f"trusts {', '.join(wide)}: public networks that wide are clients, not proxies",
            'list the addresses of the proxies in front of the gateway only (e.g. ["10.0.0.0/8"])',
            "a trusted peer may ask /_gateway/verdict (which hands out origin URLs and the origin auth header) "
            "and set the client address every IP binding and limit believes",
        )
    ]


def published_secrets(settings: Settings) -> list[Finding]:
    """The one thing the gateway publishes from its keys, the JWKS, must hold public keys only."""
    jwks = published_keys(settings)
    named = leaks(json.dumps(jwks), secret_material(settings))
    private = [jwk.get("kid", "?") for jwk in jwks["keys"] if "d" in jwk or jwk.get("kty") == "oct"]
    if named or private:
        return [
            Finding(
                "front_end_secrets",
                Status.FAIL,
                "/.well-known/jwks.json",
                f"publishes secret material: {', '.join(named + private)}",
                "report this as a bug: the JWKS must carry public keys only",
            )
        ]
    return [
        Finding(
            "front_end_secrets",
            Status.PASS,
            "/.well-known/jwks.json",
            f"{len(jwks['keys'])} public keys, no secret",
        )
    ]
