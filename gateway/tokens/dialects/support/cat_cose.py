"""COSE envelopes for CAT (RFC 9052): COSE_Mac0 with HMAC 256/256 and COSE_Sign1 with ES256.

Issued form (docs/dialects/cat.md, "What is signed"): `61(17([h'a10105', {4: kid}, payload, tag]))` or, for ES256,
`61(18([h'a10126', {4: kid}, payload, signature]))`, where `payload` is the bstr of the CBOR claims map.

    MAC0:  tag = HMAC-SHA256(key, cbor(["MAC0", protected, h'', payload]))                     32 bytes
    Sign1: sig = ECDSA-P256-SHA256(cbor(["Signature1", protected, h'', payload]))  as raw r||s, 64 bytes

Opening: tag 61 is optional (or required by config), 17/18 is required (an untagged array only when
`accept_untagged`); `alg` must sit in the protected header, `kid` in the protected or unprotected one;
the key is looked up by kid and must be of the algorithm the header names (an HMAC key never checks an
ES256 token, nor the reverse); the MAC or signature is checked over the received bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gateway.config_schema import NO_ENVIRONMENT, refuse_unknown
from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects.support import jwt_keys
from gateway.tokens.dialects.support.cat_cbor import (
    TAG_CWT,
    TAG_MAC0,
    TAG_SIGN1,
    CborError,
    CborValue,
    Tagged,
    decode,
    encode,
)
from gateway.tokens.keys import b64url_decode, b64url_encode

ALG_HMAC_256_256 = 5
ALG_ES256 = -7
HEADER_ALG, HEADER_CRIT, HEADER_KID = 1, 2, 4
MIN_HMAC_KEY_BYTES = 32
_NO_TAGS: frozenset[int] = frozenset()


@dataclass(frozen=True)
class HmacCatKey:
    kid: bytes
    secret: bytes = field(repr=False)
    alg = ALG_HMAC_256_256
    cose_tag = TAG_MAC0
    context = "MAC0"
    can_sign = True

    def protect(self, to_be_maced: bytes) -> bytes:
        return hmac.new(self.secret, to_be_maced, hashlib.sha256).digest()

    def check(self, to_be_maced: bytes, tag: bytes) -> bool:
        return hmac.compare_digest(self.protect(to_be_maced), tag)


@dataclass(frozen=True)
class Es256CatKey:
    kid: bytes
    public_key: ec.EllipticCurvePublicKey = field(repr=False)
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    alg = ALG_ES256
    cose_tag = TAG_SIGN1
    context = "Signature1"

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None

    def protect(self, to_be_signed: bytes) -> bytes:
        if self.private_key is None:
            raise ValueError(f"CAT key {self.kid!r} is a public key and cannot sign")
        r, s = decode_dss_signature(self.private_key.sign(to_be_signed, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # COSE wants raw r||s, not DER

    def check(self, to_be_signed: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self.public_key.verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid.decode("utf-8", "replace"),
            "use": "sig",
            "alg": "ES256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }


CatKey = HmacCatKey | Es256CatKey


def _structure(key: CatKey, protected: bytes, payload: bytes) -> bytes:
    return encode([key.context, protected, b"", payload])


def seal(payload: bytes, key: CatKey, *, cwt_tag: bool = True) -> bytes:
    """The token bytes: claims `payload` (a CBOR map's encoding) MACed or signed under `key`."""
    protected = encode({HEADER_ALG: key.alg})
    message = Tagged(
        key.cose_tag,
        [protected, {HEADER_KID: key.kid}, payload, key.protect(_structure(key, protected, payload))],
    )
    return encode(Tagged(TAG_CWT, message) if cwt_tag else message)


def _malformed(detail: str, **values: object) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, detail, values)


def _header_map(value: CborValue, where: str) -> Mapping[int | str, CborValue]:
    if not isinstance(value, dict):
        raise _malformed(f"COSE {where} header is not a map")
    return value


def open_token(
    raw: bytes, keys: Mapping[bytes, CatKey], *, require_cwt_tag: bool = False, accept_untagged: bool = False
) -> tuple[bytes, CatKey]:
    """Check envelope, key and MAC/signature; return (payload bytes, key). Raises TokenDenied."""
    try:
        message = decode(raw)
    except CborError as exc:
        raise _malformed(f"token is not strict CBOR: {exc}") from exc
    cwt_tagged = isinstance(message, Tagged) and message.tag == TAG_CWT
    if cwt_tagged:
        assert isinstance(message, Tagged)
        message = message.value
    elif require_cwt_tag:
        raise _malformed("token lacks the CWT tag 61")
    cose_tag: int | None = None
    if isinstance(message, Tagged) and message.tag in (TAG_MAC0, TAG_SIGN1):
        cose_tag, message = message.tag, message.value
    elif not accept_untagged:
        raise _malformed("token is neither COSE_Mac0 (tag 17) nor COSE_Sign1 (tag 18)")
    if not isinstance(message, list) or len(message) != 4:
        raise _malformed("COSE message is not a 4-element array")
    protected, unprotected_value, payload, tag = message
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) or not isinstance(tag, bytes):
        raise _malformed("COSE protected header, payload and tag must be byte strings")
    try:
        protected_map = _header_map(decode(protected, allowed_tags=_NO_TAGS) if protected else {}, "protected")
    except CborError as exc:
        raise _malformed(f"COSE protected header is not strict CBOR: {exc}") from exc
    unprotected = _header_map(unprotected_value, "unprotected")
    if HEADER_ALG in unprotected or HEADER_CRIT in protected_map or HEADER_CRIT in unprotected:
        raise _malformed("alg must be protected and crit header parameters are not supported")
    alg = protected_map.get(HEADER_ALG)
    kid = protected_map.get(HEADER_KID, unprotected.get(HEADER_KID))
    if not isinstance(kid, bytes):
        raise TokenDenied(Denial.UNKNOWN_KEY, "token names no key id (a bstr kid)", {"kid": kid})
    key = keys.get(kid)
    if key is None:
        raise TokenDenied(Denial.UNKNOWN_KEY, f"key id {kid!r} is not configured", {"kid": kid})
    if alg != key.alg or cose_tag not in (None, key.cose_tag):
        raise TokenDenied(
            Denial.BAD_SIGNATURE,
            f"token says alg {alg!r} in tag {cose_tag}; key {kid!r} is alg {key.alg} in tag {key.cose_tag}",
            {"alg": alg, "kid": kid},
        )
    if not key.check(_structure(key, protected, payload), tag):
        raise TokenDenied(Denial.BAD_SIGNATURE, f"MAC or signature does not match key {kid!r}", {"kid": kid})
    return payload, key


def load_keys(
    entries: object, *, where: str, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> tuple[CatKey, ...]:
    """`[[dialects.cat.keys]]`, newest first: kid + secret[_file|_env] (hex, or `encoding = "base64url"`)
    for HMAC 256/256, or private_key / public_key[_file|_env] (PEM or JWK, EC P-256) for ES256."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: at least one key table is required")
    keys: list[CatKey] = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
            raise ConfigError(f"{at}.kid: a non-empty key id is required")
        refuse_unknown(entry, jwt_keys.KEY_MATERIAL_FIELDS | {"kid", "encoding"}, f"[{at}]")
        kid = str(entry["kid"]).encode("utf-8")
        secret = jwt_keys.read_material(entry, "secret", where=at, base_dir=base_dir, environ=environ)
        if secret is not None:
            keys.append(HmacCatKey(kid, _secret_bytes(secret.strip(), entry.get("encoding", "hex"), at)))
            continue
        text = jwt_keys.read_material(entry, "private_key", where=at, base_dir=base_dir, environ=environ)
        text = text or jwt_keys.read_material(entry, "public_key", where=at, base_dir=base_dir, environ=environ)
        if text is None:
            raise ConfigError(f"{at}: set secret, private_key or public_key (each also as _file or _env)")
        key = jwt_keys.parse_key(text, at)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            keys.append(Es256CatKey(kid, key.public_key(), key))
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            keys.append(Es256CatKey(kid, key))
        else:
            raise ConfigError(f"{at}: CAT signs with ES256, so the key must be EC P-256")
    if len({key.kid for key in keys}) != len(keys):
        raise ConfigError(f"{where}: duplicate key ids")
    return tuple(keys)


def _secret_bytes(text: str, encoding: object, where: str) -> bytes:
    if encoding not in ("hex", "base64url"):
        raise ConfigError(f"{where}.encoding: 'hex' or 'base64url'")
    try:
        secret = bytes.fromhex(text) if encoding == "hex" else b64url_decode(text.rstrip("="))
    except ValueError as exc:
        raise ConfigError(f"{where}.secret: not valid {encoding}") from exc
    if len(secret) < MIN_HMAC_KEY_BYTES:
        raise ConfigError(f"{where}.secret: {len(secret)} bytes; HMAC 256/256 needs at least {MIN_HMAC_KEY_BYTES}")
    return secret
