"""The gateway's own token: a compact, versioned, URL-safe encoding of a `Grant`, signed once.

Wire format (version 1), base64url without padding over:

    version   1 byte   = 1
    flags     1 byte   bit0 not_before, bit1 client_network, bit2 session_id, bit3 user_id,
                       bits4-5 scope (0 all, 1 playlist, 2 media), bit6 session_ends_at; bit7 must be 0
    key id    1 byte length + ASCII
    expires   4 bytes  big-endian epoch seconds
    [nbf]     varint   expires - not_before
    prefixes  1 byte count, then each: varint length + UTF-8 of the prefix without its outer '/'
    [network] 1 byte IP version (4|6), 1 byte prefix length, then ceil(len/8) network bytes
    [session] varint length + UTF-8
    [user]    varint length + UTF-8
    [ends]    4 bytes  big-endian epoch seconds: the session's hard cap
    signature the rest: HMAC-SHA256 truncated to 16 bytes, or a 64-byte Ed25519 signature

The signed message is `b"gwtok1\\0"` + every byte before the signature. Which algorithm checks it comes
from the key named by the key id, never from the token. A one-prefix grant with an HMAC key is ~56
characters, so a playlist that repeats it on every line stays small.
"""

from __future__ import annotations

import binascii
import ipaddress
from collections.abc import Iterator

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import CheckedPath
from gateway.tokens.grant import Grant, IPAddress, Scope
from gateway.tokens.keys import KeyRing, SigningKey, b64url_decode, b64url_encode
from gateway.tokens.validity import check_window

VERSION = 1
MAX_TOKEN_CHARS = 2048
DEFAULT_LEEWAY_SECONDS = 5
_DOMAIN = b"gwtok1\x00"
_SCOPE_BITS = {Scope.ALL: 0, Scope.PLAYLIST: 1, Scope.MEDIA: 2}
_BITS_SCOPE = {bits: scope for scope, bits in _SCOPE_BITS.items()}
_F_NBF, _F_NET, _F_SESSION, _F_USER, _F_ENDS = 1, 2, 4, 8, 64
_KNOWN_FLAGS = 0b0111_1111


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _varint(len(raw)) + raw


def encode_claims(grant: Grant, key_id: str) -> bytes:
    """The unsigned body of a token for `grant` (exposed for tests and benchmarks)."""
    flags = _SCOPE_BITS[grant.scope] << 4
    body = bytearray()
    kid = key_id.encode("ascii")
    body += bytes([len(kid)]) + kid + grant.expires_at.to_bytes(4, "big")
    if grant.not_before is not None:
        flags |= _F_NBF
        body += _varint(grant.expires_at - grant.not_before)
    if len(grant.path_prefixes) > 255:
        raise ValueError("at most 255 path prefixes per grant")
    body.append(len(grant.path_prefixes))
    for prefix in grant.path_prefixes:
        body += _text(prefix[1:-1])
    if grant.client_network is not None:
        flags |= _F_NET
        net = grant.client_network
        length = net.prefixlen
        body += bytes([net.version, length]) + net.network_address.packed[: (length + 7) // 8]
    if grant.session_id is not None:
        flags |= _F_SESSION
        body += _text(grant.session_id)
    if grant.user_id is not None:
        flags |= _F_USER
        body += _text(grant.user_id)
    if grant.session_ends_at is not None:
        flags |= _F_ENDS
        body += grant.session_ends_at.to_bytes(4, "big")
    return bytes([VERSION, flags]) + bytes(body)


def sign_grant(grant: Grant, keys: KeyRing) -> str:
    """Sign `grant` with the ring's newest signing key: one signature, whatever the grant covers."""
    key = keys.signing_key
    body = encode_claims(grant, key.key_id)
    return b64url_encode(body + key.sign(_DOMAIN + body))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ValueError("token is truncated")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise ValueError("varint too long")

    def text(self) -> str:
        return self.take(self.varint()).decode("utf-8")

    def texts(self, count: int) -> Iterator[str]:
        for _ in range(count):
            yield self.text()


def _decode(token: str) -> bytes:
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"token longer than {MAX_TOKEN_CHARS} characters")
    data = b64url_decode(token)
    if len(data) < 3 or data[0] != VERSION:
        raise ValueError(f"unsupported token version {data[:1].hex() or 'none'}")
    return data


def _key_id(data: bytes) -> str:
    length = data[2]
    if len(data) < 3 + length:
        raise ValueError("token is truncated")
    return data[3 : 3 + length].decode("ascii")


def _parse_claims(body: bytes) -> Grant:
    """Build the grant from a token body (everything before the signature). Raises ValueError."""
    reader = _Reader(body)
    reader.take(1)
    flags = reader.byte()
    if flags & ~_KNOWN_FLAGS or ((flags >> 4) & 3) not in _BITS_SCOPE:
        raise ValueError("unknown flags")
    key_id = reader.take(reader.byte()).decode("ascii")
    expires_at = int.from_bytes(reader.take(4), "big")
    not_before = expires_at - reader.varint() if flags & _F_NBF else None
    prefixes = tuple(f"/{p}/" if p else "/" for p in reader.texts(reader.byte()))
    network = None
    if flags & _F_NET:
        version, length = reader.byte(), reader.byte()
        width = 4 if version == 4 else 16
        if version not in (4, 6) or length > width * 8:
            raise ValueError("bad network")
        packed = reader.take((length + 7) // 8).ljust(width, b"\0")
        network = ipaddress.ip_network((packed, length), strict=True)
    session_id = reader.text() if flags & _F_SESSION else None
    user_id = reader.text() if flags & _F_USER else None
    session_ends_at = int.from_bytes(reader.take(4), "big") if flags & _F_ENDS else None
    if reader.pos != len(body):
        raise ValueError("trailing bytes before the signature")
    return Grant(
        path_prefixes=prefixes,
        expires_at=expires_at,
        not_before=not_before,
        client_network=network,
        session_id=session_id,
        user_id=user_id,
        scope=_BITS_SCOPE[(flags >> 4) & 3],
        session_ends_at=session_ends_at,
        key_id=key_id,
    )


def _malformed(exc: Exception) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, f"token cannot be decoded: {exc}")


_DECODE_ERRORS = (ValueError, UnicodeDecodeError, binascii.Error, IndexError)


def inspect_token(token: str, signature_bytes: int = 16) -> Grant:
    """Decode a token's claims WITHOUT verifying it (for explanations only). Raises TokenDenied(malformed)."""
    try:
        data = _decode(token)
        return _parse_claims(data[:-signature_bytes])
    except _DECODE_ERRORS as exc:
        raise _malformed(exc) from exc


def verify_signature(token: str, keys: KeyRing) -> Grant:
    """Check format, key and signature, then decode the claims (never parse claims of an unsigned body)."""
    if not token:
        raise TokenDenied(Denial.MISSING, "no token")
    try:
        data = _decode(token)
        key_id = _key_id(data)
    except _DECODE_ERRORS as exc:
        raise _malformed(exc) from exc
    key: SigningKey | None = keys.find(key_id)
    if key is None:
        state = "retired" if key_id in keys.retired else "not in the key ring"
        raise TokenDenied(Denial.UNKNOWN_KEY, f"key {key_id!r} is {state}", {"kid": key_id})
    body, signature = data[: -key.signature_bytes], data[-key.signature_bytes :]
    if len(body) < 3 or not key.verify(_DOMAIN + body, signature):
        raise TokenDenied(Denial.BAD_SIGNATURE, f"signature does not match key {key.key_id!r}", {"kid": key.key_id})
    try:
        return _parse_claims(body)
    except _DECODE_ERRORS as exc:  # a validly signed body we cannot read: a bug or a newer format
        raise _malformed(exc) from exc


def check_grant(
    grant: Grant,
    *,
    path: CheckedPath,
    client_ip: IPAddress | None,
    needed_scope: Scope,
    now: float,
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
) -> None:
    """Check a verified grant against one request's facts; raises TokenDenied with the values involved."""
    # The session's cap first: at the cap, tokens that expire with it are refused for that reason.
    if grant.session_ends_at is not None and now > grant.session_ends_at + leeway_seconds:
        raise TokenDenied(
            Denial.EXPIRED,
            f"viewing session ended at {grant.session_ends_at} (its maximum life), now {int(now)}",
            {"session_ends_at": grant.session_ends_at, "now": int(now)},
        )
    check_window(
        expires_at=grant.expires_at, not_before=grant.not_before, now=now, leeway=leeway_seconds, exclusive=False
    )
    if not grant.scope.opens(needed_scope):
        raise TokenDenied(
            Denial.SCOPE,
            f"a {grant.scope.value}-scoped token does not open a {needed_scope.value} request",
            {"token_scope": grant.scope.value, "needed": needed_scope.value},
        )
    if not grant.covers(path.decoded):
        raise TokenDenied(
            Denial.ACL,
            f"path {path.decoded} is outside the token's prefixes {', '.join(grant.path_prefixes)}",
            {"path": path.decoded, "prefixes": grant.path_prefixes},
        )
    if grant.client_network is not None and (client_ip is None or not grant.admits(client_ip)):
        raise TokenDenied(
            Denial.IP,
            f"client {client_ip} is outside the token's network {grant.client_network}",
            {"client_ip": str(client_ip), "network": str(grant.client_network)},
        )


def verify_token(
    token: str,
    keys: KeyRing,
    *,
    path: CheckedPath,
    client_ip: IPAddress | None,
    needed_scope: Scope,
    now: float,
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
) -> Grant:
    """Verify `token` for one request. Returns the grant, or raises TokenDenied with a typed reason."""
    grant = verify_signature(token, keys)
    check_grant(
        grant,
        path=path,
        client_ip=client_ip,
        needed_scope=needed_scope,
        now=now,
        leeway_seconds=leeway_seconds,
    )
    return grant


class TokenVerifier:
    """`verify_token` with a bounded cache of signature-checked grants.

    A viewing session repeats one token on thousands of segment requests; its signature is checked once,
    and each request only re-checks the claims (time, scope, path, IP). Only valid signatures are cached,
    so garbage tokens cannot fill the cache.
    """

    def __init__(self, keys: KeyRing, *, leeway_seconds: float = DEFAULT_LEEWAY_SECONDS, cache_size: int = 65536):
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self._cache_size = cache_size
        self._verified: dict[str, Grant] = {}

    def verify(
        self, token: str, *, path: CheckedPath, client_ip: IPAddress | None, needed_scope: Scope, now: float
    ) -> Grant:
        grant = self._verified.get(token)
        if grant is None:
            grant = verify_signature(token, self.keys)
            if len(self._verified) >= self._cache_size:
                self._verified.pop(next(iter(self._verified)))  # evict the oldest entry
            self._verified[token] = grant
        check_grant(
            grant,
            path=path,
            client_ip=client_ip,
            needed_scope=needed_scope,
            now=now,
            leeway_seconds=self.leeway_seconds,
        )
        return grant
