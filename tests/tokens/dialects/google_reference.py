"""Google's documented cookie samples, transcribed independently of the dialect code (no package exists).

GoogleCloudPlatform/python-docs-samples `cdn/snippets.py` `sign_cookie` (Cloud CDN, HMAC-SHA1, padded
signature), `media_cdn/snippets.py` `sign_cookie` (Ed25519, unpadded signature) and `media_cdn/dualtoken.py`
`sign_token` (PathGlobs/Expires, hmac or Signature). Each returns what the sample returns: the whole
`Name=value` cookie string. `test_cookie_forms` anchors these transcriptions on Google's published vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import ed25519


def _b64url(raw: bytes, *, padded: bool) -> str:
    text = base64.urlsafe_b64encode(raw).decode()
    return text if padded else text.rstrip("=")


def cloud_cdn_cookie(url_prefix: str, key_name: str, b64_key: str, expires: int) -> str:
    policy = f"URLPrefix={_b64url(url_prefix.encode(), padded=True)}:Expires={expires}:KeyName={key_name}"
    digest = hmac.new(base64.urlsafe_b64decode(b64_key), policy.encode(), hashlib.sha1).digest()
    return f"Cloud-CDN-Cookie={policy}:Signature={_b64url(digest, padded=True)}"


def media_cdn_cookie(url_prefix: str, key_name: str, b64_seed: str, expires: int) -> str:
    policy = f"URLPrefix={_b64url(url_prefix.encode(), padded=True)}:Expires={expires}:KeyName={key_name}"
    key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(b64_seed))
    return f"Edge-Cache-Cookie={policy}:Signature={_b64url(key.sign(policy.encode()), padded=False)}"


def dual_token_cookie(
    path_globs: str, algorithm: str, b64_key: str, expires: int, session_id: str | None = None
) -> str:
    """`Edge-Cache-Cookie=<sign_token(...)>` for a PathGlobs token (of the optional fields, SessionID only)."""
    signed = f"PathGlobs={path_globs}~Expires={expires}" + (f"~SessionID={session_id}" if session_id else "")
    key = base64.urlsafe_b64decode(b64_key)
    if algorithm == "ed25519":
        signature = ed25519.Ed25519PrivateKey.from_private_bytes(key).sign(signed.encode())
        seal = f"Signature={_b64url(signature, padded=False)}"
    else:
        seal = f"hmac={hmac.new(key, signed.encode(), getattr(hashlib, algorithm)).hexdigest()}"
    return f"Edge-Cache-Cookie={signed}~{seal}"
