"""Checklist items about tokens and keys, judged from `Settings` alone: lifetimes, cache lifetimes against
them, IP binding (IPv6 included), hash algorithms and key rotation. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.audit.dialects import DialectFacts, facts_for
from gateway.audit.findings import Finding, Status
from gateway.audit.secrets import secret_material
from gateway.config import Settings
from gateway.tokens.keys import HmacKey

# Seconds. A session token or media token past TTL_WARN outlives what a renewing player needs (players renew
# well before 300 s); past TTL_FAIL a copied URL is a free pass for an hour or more.
TTL_WARN, TTL_FAIL = 900, 3600
MAX_LIFE_WARN, MAX_LIFE_FAIL = 12 * 3600, 24 * 3600  # the session's cap: playlist and VOD media tokens reach it
LEEWAY_WARN, LEEWAY_FAIL = 60, 300  # clock skew between servers is seconds; more is lifetime added to every token
IPV6_MIN_PREFIX, IPV6_MAX_PREFIX = 48, 64  # /48 is one site; below it an ISP; past /64 privacy addresses rotate
IPV4_FAIL_PREFIX, IPV4_WARN_PREFIX = 16, 24
HMAC_SECRET_BYTES = 32  # what `gateway keys new` makes; 16 is the accepted minimum


def _lifetime(item: str, setting: str, seconds: float, warn: float, fail: float, fix: str) -> Finding | None:
    if seconds > fail:
        return Finding(item, Status.FAIL, setting, f"{seconds:g} s (more than {fail:g} s)", fix)
    if seconds > warn:
        return Finding(item, Status.WARN, setting, f"{seconds:g} s (more than {warn:g} s)", fix)
    return None


def _dialects(settings: Settings) -> Iterator[tuple[str, DialectFacts | None]]:
    for table, dialect in sorted(settings.dialects.items()):
        yield table, facts_for(dialect)


def short_ttls(settings: Settings) -> list[Finding]:
    s = settings.sessions
    checks = [
        ("[sessions] token_ttl_seconds", s.token_ttl_seconds, TTL_WARN, TTL_FAIL, "token_ttl_seconds = 300"),
        ("[sessions] media_ttl_seconds", s.media_ttl_seconds, TTL_WARN, TTL_FAIL, "media_ttl_seconds = 300"),
        ("[sessions] max_life_seconds", s.max_life_seconds, MAX_LIFE_WARN, MAX_LIFE_FAIL, "max_life_seconds = 14400"),
        ("[gateway] leeway_seconds", settings.leeway_seconds, LEEWAY_WARN, LEEWAY_FAIL, "leeway_seconds = 5"),
    ]
    for table, facts in _dialects(settings):
        if facts is None:
            continue
        checks.append(
            (f"[dialects.{table}] leeway_seconds", facts.leeway_seconds, LEEWAY_WARN, LEEWAY_FAIL, "leeway_seconds = 5")
        )
        if facts.renewal_seconds is not None:
            name = f"[dialects.{table}.renewal] expadd_seconds"
            checks.append((name, facts.renewal_seconds, TTL_WARN, TTL_FAIL, "expadd_seconds = 300"))
    found = [
        f for name, value, warn, fail, fix in checks if (f := _lifetime("short_ttls", name, value, warn, fail, fix))
    ]
    cdn_mounts = [route.mount for route in settings.routes if route.cdn]
    capped = any(f.setting == "[sessions] max_life_seconds" for f in found)
    if cdn_mounts and s.max_life_seconds > TTL_FAIL and not capped:
        found.append(
            Finding(
                "short_ttls",
                Status.WARN,
                "[sessions] max_life_seconds",
                f"{s.max_life_seconds} s: CDN tokens in playlists loaded once (VOD, static MPD) on "
                f"{', '.join(cdn_mounts)} live until the session's cap, and no CDN hears of a revocation",
                f"max_life_seconds = {TTL_FAIL} (players open a new session after it), or serve VOD titles from a "
                "route without cdn",
            )
        )
    return found or [
        Finding(
            "short_ttls",
            Status.PASS,
            "[sessions]",
            f"token {s.token_ttl_seconds} s, media {s.media_ttl_seconds} s, cap {s.max_life_seconds} s, "
            f"leeway {settings.leeway_seconds:g} s",
        )
    ]


def cache_lifetimes(settings: Settings) -> list[Finding]:
    s, origin = settings.sessions, settings.origin
    shortest = min(s.token_ttl_seconds, s.media_ttl_seconds)
    found = []
    if origin.vod_manifest_cache_seconds > shortest:
        found.append(
            Finding(
                "cache_lifetimes",
                Status.FAIL,
                "[origin] vod_manifest_cache_seconds",
                f"{origin.vod_manifest_cache_seconds:g} s, longer than the shortest token lifetime ({shortest} s)",
                f"vod_manifest_cache_seconds = {min(60, shortest)} (at most min(token_ttl_seconds, media_ttl_seconds))",
                "manifests shared by every viewer (cookie, hybrid, queryparam delivery) go out `public, max-age=` "
                "this long, so a CDN or proxy keeps answering them after the viewer's token expired or was revoked, "
                "and a title withdrawn at the origin stays playable from the gateway's own cache",
            )
        )
    if origin.live_manifest_cache_seconds > s.media_ttl_seconds:
        found.append(
            Finding(
                "cache_lifetimes",
                Status.FAIL,
                "[origin] live_manifest_cache_seconds",
                f"{origin.live_manifest_cache_seconds:g} s, longer than media tokens live ({s.media_ttl_seconds} s)",
                "live_manifest_cache_seconds = 1 (at most media_ttl_seconds; a live playlist changes every segment)",
            )
        )
    return found or [
        Finding(
            "cache_lifetimes",
            Status.PASS,
            "[origin]",
            f"manifest caches VOD {origin.vod_manifest_cache_seconds:g} s, live "
            f"{origin.live_manifest_cache_seconds:g} s, within token lifetimes ({shortest} s)",
        )
    ]


def _cdn_ip_finding(settings: Settings, table: str, facts: DialectFacts) -> Finding | None:
    """Does a CDN dialect carry the session's network, for IPv4 and IPv6 viewers alike?"""
    s = settings.sessions
    lost = {
        "any": "",
        "ipv4": "IPv6 viewers (CloudFront's IP condition is IPv4-only)",
        "host": "" if (s.ipv4_prefix, s.ipv6_prefix) == (32, 128) else "prefix networks (a single address only)",
        "none": "every viewer (the token has no IP field)",
    }[facts.ip]
    if not lost:
        return None
    setting = f"[dialects.{table}] {facts.ip_setting}"
    if facts.drops_ip:
        return Finding(
            "ip_binding",
            Status.FAIL,
            setting,
            f"the IP binding is dropped for {lost}",
            "use a dialect that binds IPv4 and IPv6 networks (media_cdn_dualtoken IPRanges, cat catnip, "
            f'cloudflare_stream), or set ip_binding = "strict" on [dialects.{table}] to refuse what it cannot bind',
        )
    return Finding(
        "ip_binding",
        Status.WARN,
        setting,
        f"signing refuses the sessions of {lost} (UnsupportedGrant): they cannot play from this CDN",
        "use a dialect that binds IPv4 and IPv6 networks (media_cdn_dualtoken, cat, cloudflare_stream)",
        "a binding the CDN cannot carry either leaves viewers unprotected or leaves them out",
    )


def ip_binding(settings: Settings) -> list[Finding]:
    s = settings.sessions
    if not s.ip_binding:
        return [
            Finding(
                "ip_binding",
                Status.WARN,
                "[sessions] ip_binding",
                "false: tokens play from any network",
                f"ip_binding = true (with ipv4_prefix = 32, ipv6_prefix = {IPV6_MAX_PREFIX})",
            )
        ]
    found = []
    if s.ipv6_prefix < IPV6_MIN_PREFIX:
        found.append(
            Finding(
                "ip_binding",
                Status.FAIL,
                "[sessions] ipv6_prefix",
                f"/{s.ipv6_prefix} binds IPv6 viewers to a whole provider's range",
                f"ipv6_prefix = {IPV6_MAX_PREFIX} (one subscriber's /64; {IPV6_MIN_PREFIX} at the widest)",
            )
        )
    elif s.ipv6_prefix > IPV6_MAX_PREFIX:
        found.append(
            Finding(
                "ip_binding",
                Status.WARN,
                "[sessions] ipv6_prefix",
                f"/{s.ipv6_prefix}: privacy addresses change inside a /64, refusing the viewer's own devices",
                f"ipv6_prefix = {IPV6_MAX_PREFIX}",
            )
        )
    if s.ipv4_prefix < IPV4_WARN_PREFIX:
        status = Status.FAIL if s.ipv4_prefix < IPV4_FAIL_PREFIX else Status.WARN
        found.append(
            Finding(
                "ip_binding",
                status,
                "[sessions] ipv4_prefix",
                f"/{s.ipv4_prefix} binds IPv4 viewers to {2 ** (32 - s.ipv4_prefix)} addresses",
                "ipv4_prefix = 32 (24 at the widest)",
            )
        )
    cdn_tables = sorted({route.cdn for route in settings.routes if route.cdn})
    for table in cdn_tables:
        facts = facts_for(settings.dialects[table])
        if facts is not None and (finding := _cdn_ip_finding(settings, table, facts)):
            found.append(finding)
    return found or [
        Finding(
            "ip_binding",
            Status.PASS,
            "[sessions] ip_binding",
            f"on: IPv4 /{s.ipv4_prefix}, IPv6 /{s.ipv6_prefix}"
            + (f"; CDN dialects {', '.join(cdn_tables)} carry it" if cdn_tables else ""),
        )
    ]


def hash_algorithms(settings: Settings) -> list[Finding]:
    found = []
    for key in settings.keys.keys:
        if isinstance(key, HmacKey) and len(key.secret) < HMAC_SECRET_BYTES:
            found.append(
                Finding(
                    "hash_algorithms",
                    Status.WARN,
                    f"GATEWAY_KEYS / [keys] ring: {key.key_id}",
                    f"an HMAC-SHA256 key of {len(key.secret)} bytes",
                    f"a new key of {HMAC_SECRET_BYTES} bytes: `gateway keys new` (then rotate, see key_rotation)",
                )
            )
    for table, facts in _dialects(settings):
        if facts is None:
            found.append(
                Finding(
                    "hash_algorithms",
                    Status.WARN,
                    f"[dialects.{table}]",
                    "a dialect this audit does not know: its algorithm was not checked",
                    "check the vendor's documentation by hand",
                )
            )
        elif facts.algorithm_status is not Status.PASS:
            setting = f"[dialects.{table}] {facts.algorithm_setting}"
            found.append(
                Finding("hash_algorithms", facts.algorithm_status, setting, facts.algorithm, facts.algorithm_fix)
            )
    algorithms = sorted({key.algorithm for key in settings.keys.keys})
    return found or [
        Finding(
            "hash_algorithms",
            Status.PASS,
            "GATEWAY_KEYS / [keys] ring",
            f"native tokens {', '.join(algorithms)}"
            + "".join(f"; {table} {facts.algorithm}" for table, facts in _dialects(settings) if facts),
        )
    ]


def key_rotation(settings: Settings) -> list[Finding]:
    found = []
    ring = settings.keys.keys
    signing = settings.keys.signing_key.key_id
    if len(ring) == 1:
        found.append(
            Finding(
                "key_rotation",
                Status.WARN,
                "GATEWAY_KEYS / [keys] ring",
                f"one key ({signing}): nothing staged to rotate to",
                f"GATEWAY_KEYS=<{signing}>,<next> (`gateway keys new`): every instance verifies the next key; put it "
                "first once all have it, and list the old id in [keys] retired after max_life_seconds",
            )
        )
    for table, facts in _dialects(settings):
        if facts is not None and facts.key_count == 1 and table != "nginx_secure_link":
            found.append(
                Finding(
                    "key_rotation",
                    Status.WARN,
                    f"[dialects.{table}] keys",
                    "one key: rotating it invalidates every token the CDN holds",
                    f"add the next key to [dialects.{table}] (and to the CDN's keyset) before signing with it",
                )
            )
    material = [secret for secret in secret_material(settings) if not secret.name.startswith("[[users]]")]
    for index, secret in enumerate(material):
        for other in material[index + 1 :]:
            if secret.forms & other.forms:
                found.append(
                    Finding(
                        "key_rotation",
                        Status.FAIL,
                        other.name,
                        f"the same secret as {secret.name}",
                        f"a secret of its own for {other.name} (`gateway keys new` prints 32 random bytes)",
                        "one secret in two places: a leak of either exposes both, and neither can be rotated alone",
                    )
                )
    return found or [
        Finding("key_rotation", Status.PASS, "GATEWAY_KEYS / [keys] ring", f"{len(ring)} keys, {signing} signs")
    ]
