"""The signature on every entitlement webhook call, so the backend answers the gateway only.

    X-Gateway-Signature: t=<epoch seconds>;sig=<base64url HMAC-SHA256(secret, "<t>\\n" + body)>

`body` is the exact bytes POSTed. The signature covers the time, so a captured call is useless after
`max_age_seconds`, and the whole body (user, asset, client, request id), so none of it can be changed.
`verify_webhook_signature` is what a backend runs (README "Entitlement webhook" shows it standalone).
"""

from __future__ import annotations

from gateway.tokens.timed_hmac import MessageAt, timed_header, verify_timed_header

HEADER = "x-gateway-signature"


def _message(body: bytes) -> MessageAt:
    return lambda timestamp: f"{timestamp}\n".encode() + body


def webhook_signature(secret: bytes, body: bytes, *, now: float) -> str:
    """The header value for a call POSTing `body`."""
    return timed_header(secret, _message(body), now=now)


def verify_webhook_signature(
    value: str | None, secret: bytes, body: bytes, *, now: float, max_age_seconds: float = 30
) -> bool:
    """True if `value` was made by a gateway holding `secret` for exactly `body`, within `max_age_seconds`."""
    return verify_timed_header(value, secret, _message(body), now=now, max_age_seconds=max_age_seconds)
