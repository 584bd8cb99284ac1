"""Shared pieces of the JWT dialects (Cloudflare Stream, Mux) and key loading for CAT's ES256 keys.

JWS compact serialisation (RFC 7515 §7.1), RS256 only:

    b64url(header JSON) "." b64url(payload JSON) "." b64url(RSASSA-PKCS1-v1_5-SHA256(first two parts))

JSON is written like PyJWT writes it (`separators=(",", ":")`, ASCII escapes; header keys sorted, payload
keys in insertion order), so a fixed payload gives the same token bytes as `jwt.encode(..., "RS256")`.
Verification takes the algorithm from the key: the header must say exactly `RS256` (so `none` and
the HS256-with-the-public-key confusion are refused before any crypto), and the key is found by `kid`.
Keys are read by `jwt_keys`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.config_schema import NO_ENVIRONMENT, refuse_unknown
from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects.support.jwt_keys import KEY_MATERIAL_FIELDS, parse_key, read_material
from gateway.tokens.keys import b64url_decode, b64url_encode
from gateway.tokens.validity import check_window

ALGORITHM = "RS256"
MAX_JWT_CHARS = 8192
MIN_RSA_BITS = 2048


def json_bytes(value: Mapping[str, Any], *, sort_keys: bool = False) -> bytes:
    """JSON exactly as PyJWT serialises it (compact, ASCII-escaped)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate JSON member {name!r}")
        result[name] = value
    return result


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object with no duplicate members (two `exp`s must never mean 'whichever we read')."""
    value = json.loads(data.decode("utf-8"), object_pairs_hook=_strict_object)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class RsaJwtKey:
    """One RS256 key: `private_key` is None for verify-only keys. Material never appears in repr."""

    kid: str
    public_key: rsa.RSAPublicKey = field(repr=False)
    private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": b64url_encode(_int_bytes(numbers.n)),
            "e": b64url_encode(_int_bytes(numbers.e)),
        }


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def encode_rs256(payload: Mapping[str, Any], key: RsaJwtKey) -> str:
    """`{"alg":"RS256","kid":…,"typ":"JWT"}` + payload, signed with `key` (PyJWT-identical bytes)."""
    if key.private_key is None:
        raise ConfigError(f"key {key.kid!r} is a public key and cannot sign")
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url_encode(json_bytes(header, sort_keys=True))}.{b64url_encode(json_bytes(payload))}"
    signature = key.private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def decode_rs256(token: str, keys: tuple[RsaJwtKey, ...]) -> tuple[dict[str, Any], RsaJwtKey]:
    """Check format, algorithm, key and signature; return (payload, key). Raises TokenDenied."""
    if not token:
        raise TokenDenied(Denial.MISSING, "no token")
    if len(token) > MAX_JWT_CHARS or token.count(".") != 2:
        raise TokenDenied(Denial.MALFORMED, f"not a compact JWS of at most {MAX_JWT_CHARS} characters")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = parse_json_object(b64url_decode(header_b64))
        signature = b64url_decode(signature_b64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenDenied(Denial.MALFORMED, f"JWS header cannot be decoded: {exc}") from exc
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise TokenDenied(Denial.BAD_SIGNATURE, f"algorithm {alg!r} refused: these keys are {ALGORITHM}", {"alg": alg})
    if "crit" in header or str(header.get("typ", "JWT")).upper() != "JWT":
        raise TokenDenied(Denial.MALFORMED, "JWS header has 'crit' or a typ other than JWT", {"header": header})
    kid = header.get("kid")
    key = next((candidate for candidate in keys if candidate.kid == kid), None) if isinstance(kid, str) else None
    if key is None:
        raise TokenDenied(Denial.UNKNOWN_KEY, f"key id {kid!r} is not configured", {"kid": kid})
    try:
        key.public_key.verify(
            signature, f"{header_b64}.{payload_b64}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature as exc:
        raise TokenDenied(Denial.BAD_SIGNATURE, f"signature does not match key {kid!r}", {"kid": kid}) from exc
    try:
        payload = parse_json_object(b64url_decode(payload_b64))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenDenied(Denial.MALFORMED, f"JWT payload cannot be decoded: {exc}") from exc
    return payload, key


def _numeric_date(payload: Mapping[str, Any], claim: str) -> int | None:
    value = payload.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenDenied(Denial.MALFORMED, f"claim {claim!r} is not a NumericDate", {claim: value})
    return int(value)


def check_times(payload: Mapping[str, Any], *, now: float, leeway_seconds: float) -> tuple[int, int | None]:
    """RFC 7519 §4.1.4/§4.1.5 with a leeway: (exp, nbf); `exp` is required."""
    expires_at = _numeric_date(payload, "exp")
    not_before = _numeric_date(payload, "nbf")
    if expires_at is None:
        raise TokenDenied(Denial.MALFORMED, "token has no 'exp' claim")
    check_window(expires_at=expires_at, not_before=not_before, now=now, leeway=leeway_seconds, exclusive=True)
    return expires_at, not_before


@dataclass(frozen=True)
class PrefixTemplate:
    """Where a grant's prefix names the vendor's id: `/vod/{uid}/` with the placeholder as a whole segment."""

    template: str
    placeholder: str
    id_pattern: str = r"[A-Za-z0-9_-]{1,128}"

    def __post_init__(self) -> None:
        before, sep, after = self.template.partition(f"{{{self.placeholder}}}")
        if not sep or "{" in before + after or not before.endswith("/") or not after.endswith("/"):
            raise ConfigError(
                f"prefix_template {self.template!r}: one {{{self.placeholder}}} as a whole segment of a '/…/' path"
            )
        if not before.startswith("/") or not after.startswith("/"):
            raise ConfigError(f"prefix_template {self.template!r}: {{{self.placeholder}}} must be a whole segment")

    def id_of(self, prefix: str) -> str:
        before, _, after = self.template.partition(f"{{{self.placeholder}}}")
        match = re.fullmatch(f"{re.escape(before)}({self.id_pattern}){re.escape(after)}", prefix)
        if match is None:
            raise ValueError(f"prefix {prefix!r} does not match prefix_template {self.template!r}")
        return match.group(1)

    def prefix_for(self, ident: str) -> str:
        return self.template.replace(f"{{{self.placeholder}}}", ident)

    def is_id(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.id_pattern, value) is not None


def load_rsa_keys(
    table: Mapping[str, Any], *, dialect: str, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> tuple[RsaJwtKey, ...]:
    """`[[dialects.<dialect>.keys]]`, newest first: kid + private_key[_file|_env] or public_key[...]."""
    entries = table.get("keys")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"dialects.{dialect}.keys: at least one key table is required")
    keys: list[RsaJwtKey] = []
    for index, entry in enumerate(entries):
        where = f"dialects.{dialect}.keys[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table")
        refuse_unknown(entry, KEY_MATERIAL_FIELDS - {"secret", "secret_file", "secret_env"} | {"kid"}, f"[{where}]")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ConfigError(f"{where}.kid: a non-empty key id is required")
        text = read_material(entry, "private_key", where=where, base_dir=base_dir, environ=environ)
        text = text or read_material(entry, "public_key", where=where, base_dir=base_dir, environ=environ)
        if text is None:
            raise ConfigError(f"{where}: set private_key[_file|_env] or public_key[_file|_env]")
        key = parse_key(text, where)
        if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where}: an RSA key of at least {MIN_RSA_BITS} bits is required")
        if isinstance(key, rsa.RSAPrivateKey):
            keys.append(RsaJwtKey(kid, key.public_key(), key))
        else:
            keys.append(RsaJwtKey(kid, key))
    if len({key.kid for key in keys}) != len(keys):
        raise ConfigError(f"dialects.{dialect}.keys: duplicate key ids")
    return tuple(keys)


def signing_key(keys: tuple[RsaJwtKey, ...], dialect: str) -> RsaJwtKey:
    """The newest key that can sign (keys are listed newest first)."""
    for key in keys:
        if key.private_key is not None:
            return key
    raise ConfigError(f"dialects.{dialect}.keys: no private key, so this dialect can only verify")


def jwks(keys: tuple[RsaJwtKey, ...]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [key.public_jwk() for key in keys]}
