"""An authenticated origin header, so an origin can answer the gateway only.

    X-Gateway-Origin-Auth: t=<epoch seconds>;sig=<base64url HMAC-SHA256(secret, "<t>\\n<METHOD>\\n<path?query>")>

The gateway adds it to every origin request when `[origin] auth_secret` (or GATEWAY_ORIGIN_SECRET) is
set; `verify_origin_auth` is what an origin (or a sidecar in front of it) runs. The signature covers the
time, so a captured header is useless after `max_age_seconds`, and the exact path and query, so it
cannot be replayed for another object.
"""

from __future__ import annotations

from gateway.tokens.timed_hmac import MessageAt, timed_header, verify_timed_header

HEADER = "x-gateway-origin-auth"


def _message(method: str, target: str) -> MessageAt:
    return lambda timestamp: f"{timestamp}\n{method.upper()}\n{target}".encode()


def origin_auth_header(secret: bytes, *, method: str, target: str, now: float) -> str:
    """The header value for a request to `target` (path and query, as sent to the origin)."""
    return timed_header(secret, _message(method, target), now=now)


def verify_origin_auth(
    value: str | None, secret: bytes, *, method: str, target: str, now: float, max_age_seconds: float = 30
) -> bool:
    """True if `value` was made by a gateway holding `secret` for this request, within `max_age_seconds`."""
    return verify_timed_header(value, secret, _message(method, target), now=now, max_age_seconds=max_age_seconds)
