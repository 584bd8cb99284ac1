"""An authenticated origin header, so an origin can answer the gateway only.

    X-Gateway-Origin-Auth: t=<epoch seconds>;sig=<base64url HMAC-SHA256(secret, "<t>\\n<METHOD>\\n<path?query>")>

The gateway adds it to every origin request when `[origin] auth_secret` (or GATEWAY_ORIGIN_SECRET) is
set; `verify_origin_auth` is what an origin (or a sidecar in front of it) runs. The signature covers the
time, so a captured header is useless after `max_age_seconds`, and the exact path and query, so it
cannot be replayed for another object.
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.tokens.keys import b64url_encode

HEADER = "x-gateway-origin-auth"


def _signature(secret: bytes, timestamp: int, method: str, target: str) -> str:
    message = f"{timestamp}\n{method.upper()}\n{target}".encode()
    return b64url_encode(hmac.new(secret, message, hashlib.sha256).digest())


def origin_auth_header(secret: bytes, *, method: str, target: str, now: float) -> str:
    """The header value for a request to `target` (path and query, as sent to the origin)."""
    timestamp = int(now)
    return f"t={timestamp};sig={_signature(secret, timestamp, method, target)}"


def verify_origin_auth(
    value: str | None, secret: bytes, *, method: str, target: str, now: float, max_age_seconds: float = 30
) -> bool:
    """True if `value` was made by a gateway holding `secret` for this request, within `max_age_seconds`."""
    if not value:
        return False
    fields = dict(part.partition("=")[::2] for part in value.split(";"))
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > max_age_seconds:
        return False
    return hmac.compare_digest(fields.get("sig", ""), _signature(secret, timestamp, method, target))
