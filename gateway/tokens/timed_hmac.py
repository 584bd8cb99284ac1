"""A timed HMAC header, `t=<epoch seconds>;sig=<base64url HMAC-SHA256(secret, message)>`, where the message
starts with `t`: a captured header is useless after `max_age_seconds` and for any other message.

Shared by the authenticated origin header (gateway/origin/auth.py) and the entitlement webhook's signature
(gateway/sessions/webhook_auth.py); each says what its message is.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from gateway.tokens.keys import b64url_encode

MessageAt = Callable[[int], bytes]  # the signed bytes for a timestamp


def _signature(secret: bytes, message: bytes) -> str:
    return b64url_encode(hmac.new(secret, message, hashlib.sha256).digest())


def timed_header(secret: bytes, message_at: MessageAt, *, now: float) -> str:
    timestamp = int(now)
    return f"t={timestamp};sig={_signature(secret, message_at(timestamp))}"


def verify_timed_header(
    value: str | None, secret: bytes, message_at: MessageAt, *, now: float, max_age_seconds: float
) -> bool:
    """True if `value` was made with `secret` for `message_at(t)`, its `t` within `max_age_seconds` of `now`."""
    if not value:
        return False
    fields = dict(part.partition("=")[::2] for part in value.split(";"))
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > max_age_seconds:
        return False
    return hmac.compare_digest(fields.get("sig", ""), _signature(secret, message_at(timestamp)))
