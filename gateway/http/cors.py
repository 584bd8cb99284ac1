"""Cross-site answers (CORS), decided in one place from the request's Origin, its method and `[cors]`.

    Origin listed in [cors] allowed_origins   → echo it + Access-Control-Allow-Credentials: true
    any other Origin (also `null`), or none   → `*`, never credentials
    OPTIONS + Access-Control-Request-Method   → a preflight: 204, the route's methods, the request
                                                headers the gateway reads, cached for MAX_AGE_SECONDS

Why the split: a player on another site needs credentials (`withCredentials`, `credentials: 'include'`)
only in the cookie and hybrid delivery modes, and a browser refuses a credentialed response unless the
origin is echoed exactly and credentials are allowed; `*` is never valid with credentials. Query and path
tokens need no credentials, so any site keeps playing them with `*`, and an unlisted site can never read
a response to a request that carried the viewer's cookie.

Once any origin is listed, every answer carries `Vary: Origin`, the `*` ones too: a shared cache must not
replay a `*` response to a listed origin's credentialed request, or an echoed one to another site.

Pure: no I/O and no framework. `gateway.http.app` applies it to every response of the edge, the session API
(refusals included) and the demo pages, so the headers are never built anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.tokens.dialects.support.cat_renewal import HEADER_NAMES as CAT_RENEWAL_HEADERS

# What a player reads from our responses: the typed refusal, other gateway errors, CAT renewal tokens,
# and `Date` (the demo page takes the gateway's clock from it, since token times are the gateway's).
# Credentialed responses cannot use `*` here, so the names are always listed.
EXPOSED_HEADERS = ("x-token-denial", "x-gateway-error", *(name.lower() for name in CAT_RENEWAL_HEADERS), "date")
# Request headers a cross-site page may set: the session API's credential and JSON body; on edge GETs
# byte ranges and revalidation (forwarded to the origin) and a CAT token sent as a header.
ALLOWED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    *(name.lower() for name in CAT_RENEWAL_HEADERS),
)
MAX_AGE_SECONDS = 600  # a refresh every few minutes should not need a preflight each time
Headers = tuple[tuple[str, str], ...]
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")  # browsers send IDNs as punycode


def check_origin(value: str) -> str:
    """`value` if it is an origin exactly as a browser sends it (scheme://host[:port]); else ValueError.

    Strict on purpose: the Origin header is compared byte for byte, so a trailing slash, upper case or an
    explicit default port in the config would silently never match.
    """
    if value in ("*", "null"):
        raise ValueError(
            f"{value!r} cannot be listed: listed origins get credentials; any other origin already gets '*' without"
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], e.g. https://player.example")
    if parts.path or parts.query or parts.fragment or "#" in value or "?" in value or "@" in parts.netloc:
        raise ValueError(f"{value!r} is not an origin: no path (not even '/'), query, fragment or user")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    canonical = f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{value!r}: the host must be a lower-case DNS name (punycode for IDNs) or an IP address")
    if value != canonical:
        raise ValueError(f"{value!r} is not written as browsers send it: use {canonical!r}")
    return value


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """`[cors] allowed_origins`: the sites whose players may send credentials (cookies) to the gateway."""

    allowed_origins: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for origin in self.allowed_origins:
            check_origin(origin)


@dataclass(frozen=True, slots=True)
class CorsAnswer:
    """`preflight`: answer 204 with `headers` and do not run the request; else add `headers` to its response."""

    preflight: bool
    headers: Headers


_EXPOSED_VALUE = ", ".join(EXPOSED_HEADERS)


def decide(
    policy: CorsPolicy,
    *,
    origin: str | None,
    method: str,
    request_method: str | None = None,
    route_methods: Iterable[str] = (),
    expose: Iterable[str] = (),
) -> CorsAnswer:
    """The CORS headers for one request.

    origin:          the request's Origin header (None when absent)
    method:          the request's method; OPTIONS with `request_method` (Access-Control-Request-Method)
                     is a preflight, answered with `route_methods`, what the path accepts
    expose:          more response headers a player must read (e.g. a CAT renewal's custom header name)
    """
    credentialed = origin is not None and origin in policy.allowed_origins
    headers: list[tuple[str, str]] = [("access-control-allow-origin", origin if credentialed and origin else "*")]
    if credentialed:
        headers.append(("access-control-allow-credentials", "true"))
    if policy.allowed_origins:
        headers.append(("vary", "Origin"))
    if method == "OPTIONS" and request_method is not None:
        headers += [
            ("access-control-allow-methods", ", ".join(route_methods)),
            ("access-control-allow-headers", ", ".join(ALLOWED_REQUEST_HEADERS)),
            ("access-control-max-age", str(MAX_AGE_SECONDS)),
        ]
        return CorsAnswer(True, tuple(headers))
    extra = [name for name in (part.strip().lower() for part in expose) if name and name not in EXPOSED_HEADERS]
    exposed = ", ".join((_EXPOSED_VALUE, *dict.fromkeys(extra))) if extra else _EXPOSED_VALUE
    headers.append(("access-control-expose-headers", exposed))
    return CorsAnswer(False, tuple(headers))


# Response headers this module owns. Whatever a handler set under these names is replaced, so a stray
# `*` can never meet credentials; the names a handler asks to expose and its Vary values are merged in.
_OWNED = frozenset(
    {b"access-control-allow-origin", b"access-control-allow-credentials", b"access-control-expose-headers", b"vary"}
)


def apply(
    policy: CorsPolicy, *, origin: str | None, method: str, headers: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A response's raw (ASGI) headers with this request's CORS decision applied: one header line each."""
    kept: list[tuple[bytes, bytes]] = []
    expose: list[str] = []
    vary: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered not in _OWNED:
            kept.append((name, value))
        elif lowered == b"access-control-expose-headers":
            expose += value.decode("latin-1").split(",")
        elif lowered == b"vary":
            vary += value.decode("latin-1").split(",")
    for cors_name, cors_value in decide(policy, origin=origin, method=method, expose=expose).headers:
        if cors_name == "vary":
            vary.append(cors_value)
        else:
            kept.append((cors_name.encode("latin-1"), cors_value.encode("latin-1")))
    merged: dict[str, str] = {}  # field names are case-insensitive: the first spelling stays
    for part in (part.strip() for part in vary):
        if part:
            merged.setdefault(part.lower(), part)
    if merged:
        kept.append((b"vary", ", ".join(merged.values()).encode("latin-1")))
    return kept
