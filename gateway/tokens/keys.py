"""Signing keys and the key ring: sign with the newest key, verify with any key not yet retired.

`GATEWAY_KEYS` syntax (newest first, comma-separated):
    kid:BASE64URL-SECRET            an HMAC-SHA256 key (at least 16 bytes of secret)
    kid:ed25519:BASE64URL-SEED      an Ed25519 private key (32-byte seed); signs and verifies
    kid:ed25519-pub:BASE64URL-KEY   an Ed25519 public key; verifies only
The algorithm always comes from the key, never from a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.errors import ConfigError

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,16}")
MIN_HMAC_SECRET_BYTES = 16
HMAC_TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 / RFC 4868 practice): compact tokens
FINGERPRINT_BYTES = 2


def key_fingerprint(key_id: str) -> bytes:
    """What a version-2 token carries instead of the key id: 2 bytes of SHA-256 over the id. Only selects
    the key (the MAC decides); a ring whose ids share a fingerprint is refused, so the choice is never
    ambiguous."""
    return hashlib.sha256(b"gwkid\0" + key_id.encode("ascii")).digest()[:FINGERPRINT_BYTES]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The bits of a final character beyond the data: with 2 (or 3) characters in the last group, 4 (or 2)
# of its 6 bits carry nothing. Decoders ignore them, so a token would have 16 (or 4) spellings.
_UNUSED_TAIL_BITS = {2: 0b1111, 3: 0b11}


def b64url_decode(text: str) -> bytes:
    """Strict, canonical unpadded base64url: refuses (ValueError) any other alphabet, a bad length, and
    a last character whose unused bits are not zero, so every byte string has exactly one spelling."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    unused = _UNUSED_TAIL_BITS.get(len(text) % 4)
    if unused is not None and _B64URL_ALPHABET.index(text[-1]) & unused:
        raise ValueError("not canonical base64url (non-zero bits after the data)")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class HmacKey:
    key_id: str
    secret: bytes = field(repr=False)
    algorithm = "HS256"
    signature_bytes = HMAC_TAG_BYTES

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.secret, message, hashlib.sha256).digest()[:HMAC_TAG_BYTES]

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    @property
    def can_sign(self) -> bool:
        return True

    def public_jwk(self) -> dict[str, str] | None:
        return None  # a shared secret: nothing of it is ever published


@dataclass(frozen=True)
class Ed25519Key:
    key_id: str
    public_key: Ed25519PublicKey = field(repr=False)
    private_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    algorithm = "EdDSA"
    signature_bytes = 64

    def sign(self, message: bytes) -> bytes:
        if self.private_key is None:
            raise ConfigError(f"key {self.key_id!r} is a public Ed25519 key and cannot sign")
        return self.private_key.sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None

    def public_bytes(self) -> bytes:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def public_jwk(self) -> dict[str, str] | None:
        """The public key as a JWK (RFC 8037 OKP), for `/.well-known/jwks.json`."""
        return {"kty": "OKP", "crv": "Ed25519", "kid": self.key_id, "x": b64url_encode(self.public_bytes())}


SigningKey = HmacKey | Ed25519Key


@dataclass(frozen=True)
class KeyRing:
    """Keys newest first. `retired` ids are refused by name (so `verify` can say so), not silently unknown."""

    keys: tuple[SigningKey, ...]
    retired: frozenset[str] = frozenset()
    _by_fingerprint: dict[bytes, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [key.key_id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"duplicate key ids in key ring: {ids}")
        for key_id in sorted({*ids, *self.retired}):
            other = self._by_fingerprint.setdefault(key_fingerprint(key_id), key_id)
            if other != key_id:
                raise ConfigError(f"key ids {other!r} and {key_id!r} share a token fingerprint: rename one")

    @property
    def signing_key(self) -> SigningKey:
        for key in self.keys:
            if key.can_sign and key.key_id not in self.retired:
                return key
        raise ConfigError("the key ring has no key that can sign (set GATEWAY_KEYS or [keys] in the config)")

    def public_jwks(self) -> list[dict[str, str]]:
        """The public keys of the ring (Ed25519); HMAC keys are secrets and never appear."""
        return [jwk for key in self.keys if (jwk := key.public_jwk()) is not None]

    def find(self, key_id: str) -> SigningKey | None:
        if key_id in self.retired:
            return None
        return next((key for key in self.keys if key.key_id == key_id), None)

    def key_id_for(self, fingerprint: bytes) -> str | None:
        """The id (listed or retired) whose fingerprint this is, or None."""
        return self._by_fingerprint.get(fingerprint)


def parse_key(entry: str) -> SigningKey:
    parts = entry.strip().split(":")
    if len(parts) not in (2, 3) or not KEY_ID_PATTERN.fullmatch(parts[0]):
        raise ConfigError("GATEWAY_KEYS: each entry is 'kid:secret' or 'kid:ed25519:seed' (kid: [A-Za-z0-9_-]{1,16})")
    key_id, material = parts[0], parts[-1]
    kind = parts[1] if len(parts) == 3 else "hmac"
    try:
        raw = b64url_decode(material)
    except ValueError as exc:
        raise ConfigError(f"GATEWAY_KEYS: key {key_id!r} is not canonical unpadded base64url ({exc})") from exc
    if kind == "hmac":
        if len(raw) < MIN_HMAC_SECRET_BYTES:
            raise ConfigError(f"GATEWAY_KEYS: key {key_id!r} has {len(raw)} bytes; at least 16 are needed")
        return HmacKey(key_id, raw)
    if kind in ("ed25519", "ed25519-pub") and len(raw) == 32:
        if kind == "ed25519":
            private = Ed25519PrivateKey.from_private_bytes(raw)
            return Ed25519Key(key_id, private.public_key(), private)
        return Ed25519Key(key_id, Ed25519PublicKey.from_public_bytes(raw))
    raise ConfigError(f"GATEWAY_KEYS: key {key_id!r}: unknown kind {kind!r} or wrong length ({len(raw)} bytes)")


def parse_key_ring(spec: str, retired: frozenset[str] = frozenset()) -> KeyRing:
    entries = [entry for entry in spec.split(",") if entry.strip()]
    if not entries:
        raise ConfigError("GATEWAY_KEYS is empty")
    return KeyRing(tuple(parse_key(entry) for entry in entries), retired)


def new_key_entry(key_id: str | None = None, kind: str = "hmac") -> str:
    """A fresh `GATEWAY_KEYS` entry (what `keys new` prints)."""
    kid = key_id or "k" + secrets.token_hex(3)
    if not KEY_ID_PATTERN.fullmatch(kid):
        raise ConfigError(f"key id {kid!r} must match [A-Za-z0-9_-]{{1,16}}")
    if kind == "hmac":
        return f"{kid}:{b64url_encode(secrets.token_bytes(32))}"
    if kind == "ed25519":
        return f"{kid}:ed25519:{b64url_encode(secrets.token_bytes(32))}"
    raise ConfigError(f"unknown key kind {kind!r} (hmac, ed25519)")
