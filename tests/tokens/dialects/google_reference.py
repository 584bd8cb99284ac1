"""Google's reference signing algorithms, transcribed from their published description (no package exists).

The layouts of GoogleCloudPlatform/python-docs-samples `cdn/snippets.py` (Cloud CDN signed URL, URL prefix,
cookie) and `media_cdn/dualtoken.py` (`sign_token`), written independently of the gateway's dialect modules
and anchored on every vector Google publishes (tests/tokens/dialects/test_google_paths.py). Like Google's
samples, these take every field exactly as given: no escaping, no validation. What the gateway adds (the
escaping of PathGlobs, the canonical URLPrefix) is what the property tests compare against them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ed25519


def _b64(data: bytes, *, strip: bool) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text.rstrip("=") if strip else text


def _key(base64_key: str) -> bytes:
    return base64.urlsafe_b64decode(base64_key)


def dual_token(
    base64_key: str,
    algorithm: str,
    *,
    expires: int,
    path_globs: str | None = None,
    url_prefix: str | None = None,
    full_path: str | None = None,
    starts: int | None = None,
    session_id: str | None = None,
    data: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    ip_ranges: str | None = None,
) -> str:
    """The Media CDN short token: `~`-joined fields, the signature over the signed form appended last."""
    shown: list[str] = []
    signed: list[str] = []

    def both(text: str) -> None:
        shown.append(text)
        signed.append(text)

    if full_path is not None:
        shown.append("FullPath")
        signed.append("FullPath=" + full_path)
    elif path_globs is not None:
        both("PathGlobs=" + path_globs.strip())
    elif url_prefix is not None:
        both("URLPrefix=" + _b64(url_prefix.encode("utf-8"), strip=True))
    if starts is not None:
        both(f"Starts={starts}")
    both(f"Expires={expires}")
    if session_id:
        both("SessionID=" + session_id)
    if data:
        both("Data=" + data)
    if headers:
        shown.append("Headers=" + ",".join(name for name, _ in headers))
        signed.append("Headers=" + ",".join(f"{name}={value}" for name, value in headers))
    if ip_ranges:
        both("IPRanges=" + _b64(ip_ranges.encode("ascii"), strip=True))
    message, key = "~".join(signed).encode("utf-8"), _key(base64_key)
    if algorithm == "ed25519":
        seal = "Signature=" + _b64(ed25519.Ed25519PrivateKey.from_private_bytes(key).sign(message), strip=True)
    else:
        seal = "hmac=" + hmac.new(key, message, getattr(hashlib, algorithm)).hexdigest()
    return "~".join([*shown, seal])


def _sign(algorithm: str, base64_key: str, message: str, *, strip: bool) -> str:
    key = _key(base64_key)
    if algorithm == "ed25519":
        raw = ed25519.Ed25519PrivateKey.from_private_bytes(key).sign(message.encode("utf-8"))
    else:
        raw = hmac.new(key, message.encode("utf-8"), getattr(hashlib, algorithm)).digest()
    return _b64(raw, strip=strip)


def signed_url(url: str, key_name: str, base64_key: str, expires: int, *, algorithm: str = "sha1") -> str:
    """Cloud CDN / Media CDN signed URL: the URL with Expires and KeyName, signed whole; Signature last."""
    unsigned = f"{url}{'&' if '?' in url else '?'}Expires={expires}&KeyName={key_name}"
    return f"{unsigned}&Signature={_sign(algorithm, base64_key, unsigned, strip=False)}"


def signed_url_prefix(
    url: str, prefix: str, key_name: str, base64_key: str, expires: int, *, algorithm: str = "sha1"
) -> str:
    """A URL carrying a signed URL prefix: only the policy `URLPrefix=…&Expires=…&KeyName=…` is signed."""
    policy = f"URLPrefix={_b64(prefix.encode('utf-8'), strip=False)}&Expires={expires}&KeyName={key_name}"
    return f"{url}{'&' if '?' in url else '?'}{policy}&Signature={_sign(algorithm, base64_key, policy, strip=False)}"


def signed_cookie_value(
    prefix: str, key_name: str, base64_key: str, expires: int, *, algorithm: str = "sha1", strip: bool = False
) -> str:
    """The signed cookie's value: the ':'-joined policy, then its Signature (Media CDN's is unpadded)."""
    policy = f"URLPrefix={_b64(prefix.encode('utf-8'), strip=False)}:Expires={expires}:KeyName={key_name}"
    return f"{policy}:Signature={_sign(algorithm, base64_key, policy, strip=strip)}"


# The cookie samples return the whole `Name=value` string (`test_cookie_forms` compares the gateway's with it).
def cloud_cdn_cookie(url_prefix: str, key_name: str, b64_key: str, expires: int) -> str:
    return "Cloud-CDN-Cookie=" + signed_cookie_value(url_prefix, key_name, b64_key, expires, algorithm="sha1")


def media_cdn_cookie(url_prefix: str, key_name: str, b64_seed: str, expires: int) -> str:
    value = signed_cookie_value(url_prefix, key_name, b64_seed, expires, algorithm="ed25519", strip=True)
    return "Edge-Cache-Cookie=" + value


def dual_token_cookie(
    path_globs: str, algorithm: str, b64_key: str, expires: int, session_id: str | None = None
) -> str:
    """`Edge-Cache-Cookie=<sign_token(...)>` for a PathGlobs token (of the optional fields, SessionID only)."""
    token = dual_token(b64_key, algorithm, expires=expires, path_globs=path_globs, session_id=session_id)
    return "Edge-Cache-Cookie=" + token
