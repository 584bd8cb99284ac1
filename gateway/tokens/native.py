"""The gateway's own token: a compact, versioned, URL-safe encoding of a `Grant`, signed once.

Issued format (version 2), canonical unpadded base64url over:

    byte 0    0x20 | flags: bit0 not_before, bit1 client_network, bit2 session_id, bit3 user_id
    byte 1    bits0-1 scope (0 all, 1 playlist, 2 media), bit2 session_ends_at, bit3 path-bound,
              bits4-5 how expires is written when session_ends_at is present (0 relative to it,
              1 absolute, 2 equal to it: nothing written; 0 without it); bits 6-7 must be 0
    key       2 bytes  SHA-256(b"gwkid\0" + key id)[:2] (the ring refuses ids sharing one)
    [segs]    1 byte   path-bound only: the prefix is the request path's first `segs` segments
    [ends]    4 bytes  big-endian epoch seconds: the session's hard cap
    [expires] varint (ends - expires) | 4 bytes big-endian epoch seconds (absolute, or no ends) | nothing
    [nbf]     varint   expires - not_before
    prefixes  not path-bound only: 1 byte count, then each: varint length + UTF-8 without its outer '/'
    [network] 1 byte: IPv4 prefix length, or 64 + IPv6 prefix length; then ceil(len/8) network bytes
    [session] varint (byte length << 1 | raw) + the bytes; raw=1: the id is canonical base64url and the
    [user]    bytes are what it decodes to (8 characters -> 6 bytes), else its UTF-8
    signature the rest: HMAC-SHA256 truncated to 16 bytes, or a 64-byte Ed25519 signature

The signed message is `b"gwtok2\0"` + every byte before the signature, followed, for a path-bound token,
by the UTF-8 of the prefix it covers (`/vod/title/`): the request path carries the prefix and the MAC
covers it, so a path-bound token verified under any other prefix fails its signature. The playlist and
media tokens written into playlists are path-bound: a session's are ~45-55 characters.

Version 1 (still verified during a rotation window, no longer issued): `01`, one flags byte (bits as
above: nbf 1, network 2, session 4, user 8, scope bits 4-5, ends 64), key id as 1 byte length + ASCII,
expires 4 bytes, [nbf varint], prefixes, [network: version byte, length byte, bytes], [session text],
[user text], [ends 4 bytes], signature over `b"gwtok1\0"` + body. Which algorithm checks a token comes
from the key it names, never from the token.
"""

from __future__ import annotations

import binascii
import ipaddress
from collections.abc import Iterator

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import CheckedPath
from gateway.tokens.grant import Grant, IPAddress, Scope
from gateway.tokens.keys import FINGERPRINT_BYTES, KeyRing, SigningKey, b64url_decode, b64url_encode, key_fingerprint
from gateway.tokens.validity import check_window

VERSION = 2
MAX_TOKEN_CHARS = 2048
DEFAULT_LEEWAY_SECONDS = 5
_DOMAINS = {1: b"gwtok1\x00", 2: b"gwtok2\x00"}
_SCOPE_BITS = {Scope.ALL: 0, Scope.PLAYLIST: 1, Scope.MEDIA: 2}
_BITS_SCOPE = {bits: scope for scope, bits in _SCOPE_BITS.items()}
# version 2: byte 0 low nibble, byte 1
_F_NBF, _F_NET, _F_SESSION, _F_USER = 1, 2, 4, 8
_F_ENDS, _F_PATH = 4, 8
_EXP_RELATIVE, _EXP_ABSOLUTE, _EXP_AT_ENDS = 0, 16, 32  # bits 4-5, with session_ends_at
_EXP_BITS = 48
_KNOWN_FLAGS_2 = 0b0011_1111
# version 1
_V1_NBF, _V1_NET, _V1_SESSION, _V1_USER, _V1_ENDS = 1, 2, 4, 8, 64
_V1_KNOWN = 0b0111_1111
_V6_OFFSET = 64  # network length byte: IPv4 0..32, IPv6 64..192


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


def _id_bytes(value: str) -> bytes:
    """A session or user id, tagged: its base64url decoding when that spells it back exactly, else UTF-8."""
    try:
        raw, tag = b64url_decode(value), 1
    except ValueError:
        raw, tag = value.encode("utf-8"), 0
    return _varint(len(raw) << 1 | tag) + raw


def path_segments(prefix: str) -> int:
    """How many path segments a canonical prefix spans: '/' 0, '/vod/title/' 2."""
    return prefix.count("/") - 1


def path_prefix(decoded_path: str, segments: int) -> str | None:
    """The first `segments` segments of a normalised path as a prefix ('/a/b/'), or None when the path
    does not reach below them (a prefix only covers what lies strictly inside it)."""
    parts = decoded_path.split("/", segments + 1)
    if len(parts) < segments + 2:
        return None
    return "/".join(parts[: segments + 1]) + "/"


def encode_claims(grant: Grant, key_id: str, *, path_bound: bool = False) -> bytes:
    """The unsigned body of a version-2 token for `grant` (exposed for tests and benchmarks)."""
    low, flags = 0, _SCOPE_BITS[grant.scope]
    body = bytearray(key_fingerprint(key_id))
    if path_bound:
        if len(grant.path_prefixes) != 1:
            raise ValueError("a path-bound token covers exactly one prefix")
        flags |= _F_PATH
        body.append(path_segments(grant.path_prefixes[0]))
    ends = grant.session_ends_at
    if ends is not None:
        flags |= _F_ENDS
        body += ends.to_bytes(4, "big")
    if ends is not None and grant.expires_at == ends:
        flags |= _EXP_AT_ENDS
    elif ends is not None and grant.expires_at < ends:
        body += _varint(ends - grant.expires_at)
    else:
        flags |= _EXP_ABSOLUTE if ends is not None else 0
        body += grant.expires_at.to_bytes(4, "big")
    if grant.not_before is not None:
        low |= _F_NBF
        body += _varint(grant.expires_at - grant.not_before)
    if not path_bound:
        if len(grant.path_prefixes) > 255:
            raise ValueError("at most 255 path prefixes per grant")
        body.append(len(grant.path_prefixes))
        for prefix in grant.path_prefixes:
            body += _text(prefix[1:-1])
    if grant.client_network is not None:
        low |= _F_NET
        net = grant.client_network
        length = net.prefixlen
        body.append(length + (_V6_OFFSET if net.version == 6 else 0))
        body += net.network_address.packed[: (length + 7) // 8]
    if grant.session_id is not None:
        low |= _F_SESSION
        body += _id_bytes(grant.session_id)
    if grant.user_id is not None:
        low |= _F_USER
        body += _id_bytes(grant.user_id)
    return bytes([VERSION << 4 | low, flags]) + bytes(body)


def _message(body: bytes, bound_prefix: str | None) -> bytes:
    return _DOMAINS[2] + body + (bound_prefix.encode("utf-8") if bound_prefix is not None else b"")


def sign_grant(grant: Grant, keys: KeyRing, *, path_bound: bool = False) -> str:
    """Sign `grant` with the ring's newest signing key: one signature, whatever the grant covers.

    `path_bound`: the token leaves its one prefix out and lets the request path carry it (MAC-covered):
    what the gateway writes into playlists, whose URLs always lie under the title's prefix.
    """
    key = keys.signing_key
    body = encode_claims(grant, key.key_id, path_bound=path_bound)
    return b64url_encode(body + key.sign(_message(body, grant.path_prefixes[0] if path_bound else None)))


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ValueError("token is truncated")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

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

    def tagged_id(self) -> str:
        header = self.varint()
        raw = self.take(header >> 1)
        return b64url_encode(raw) if header & 1 else raw.decode("utf-8")

    def network(self, version: int, length: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        width = 4 if version == 4 else 16
        if version not in (4, 6) or length > width * 8:
            raise ValueError("bad network")
        packed = self.take((length + 7) // 8).ljust(width, b"\0")
        return ipaddress.ip_network((packed, length), strict=True)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("trailing bytes before the signature")


def _decode(token: str) -> tuple[int, bytes]:
    """(version, bytes) of a token string. Raises ValueError."""
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"token longer than {MAX_TOKEN_CHARS} characters")
    data = b64url_decode(token)
    if len(data) >= 3 and data[0] == 1:
        return 1, data
    if len(data) >= 2 + FINGERPRINT_BYTES and data[0] >> 4 == VERSION:
        return VERSION, data
    raise ValueError(f"unsupported token version {data[:1].hex() or 'none'}")


def _key_id(version: int, data: bytes, keys: KeyRing | None) -> str:
    """The key id a token names (version 2: the ring's id with its fingerprint, else '#' + hex)."""
    if version == 1:
        length = data[2]
        if len(data) < 3 + length:
            raise ValueError("token is truncated")
        return data[3 : 3 + length].decode("ascii")
    fingerprint = data[2 : 2 + FINGERPRINT_BYTES]
    named = keys.key_id_for(fingerprint) if keys is not None else None
    return named if named is not None else "#" + fingerprint.hex()


def _bound_segments(version: int, data: bytes) -> int | None:
    """How many request-path segments a path-bound token covers; None if it carries its prefixes."""
    if version == 1 or not data[1] & _F_PATH:
        return None
    if len(data) <= 2 + FINGERPRINT_BYTES:
        raise ValueError("token is truncated")
    return data[2 + FINGERPRINT_BYTES]


def _parse_v1(body: bytes, key_id: str) -> Grant:
    reader = _Reader(body, 1)
    flags = reader.byte()
    if flags & ~_V1_KNOWN or ((flags >> 4) & 3) not in _BITS_SCOPE:
        raise ValueError("unknown flags")
    reader.take(reader.byte())
    expires_at = reader.uint32()
    not_before = expires_at - reader.varint() if flags & _V1_NBF else None
    prefixes = tuple(f"/{p}/" if p else "/" for p in reader.texts(reader.byte()))
    network = reader.network(reader.byte(), reader.byte()) if flags & _V1_NET else None
    session_id = reader.text() if flags & _V1_SESSION else None
    user_id = reader.text() if flags & _V1_USER else None
    session_ends_at = reader.uint32() if flags & _V1_ENDS else None
    reader.done()
    scope = _BITS_SCOPE[(flags >> 4) & 3]
    return Grant(prefixes, expires_at, not_before, network, session_id, user_id, scope, session_ends_at, key_id)


def _parse_v2(body: bytes, key_id: str, bound_prefix: str | None) -> Grant:
    low, flags = body[0] & 0x0F, body[1]
    expiry = flags & _EXP_BITS
    if flags & ~_KNOWN_FLAGS_2 or (flags & 3) not in _BITS_SCOPE or expiry == _EXP_BITS:
        raise ValueError("unknown flags")
    if expiry and not flags & _F_ENDS:
        raise ValueError("unknown flags")
    reader = _Reader(body, 2 + FINGERPRINT_BYTES)
    if flags & _F_PATH:
        reader.byte()  # the segment count: `bound_prefix` was cut from the request path with it
    session_ends_at = reader.uint32() if flags & _F_ENDS else None
    if session_ends_at is not None and expiry == _EXP_AT_ENDS:
        expires_at = session_ends_at
    elif session_ends_at is not None and expiry == _EXP_RELATIVE:
        expires_at = session_ends_at - reader.varint()
    else:
        expires_at = reader.uint32()
    not_before = expires_at - reader.varint() if low & _F_NBF else None
    if bound_prefix is not None:
        prefixes: tuple[str, ...] = (bound_prefix,)
    else:
        prefixes = tuple(f"/{p}/" if p else "/" for p in reader.texts(reader.byte()))
    network = None
    if low & _F_NET:
        length = reader.byte()
        network = reader.network(6, length - _V6_OFFSET) if length >= _V6_OFFSET else reader.network(4, length)
    session_id = reader.tagged_id() if low & _F_SESSION else None
    user_id = reader.tagged_id() if low & _F_USER else None
    reader.done()
    scope, bound = _BITS_SCOPE[flags & 3], bound_prefix is not None
    return Grant(prefixes, expires_at, not_before, network, session_id, user_id, scope, session_ends_at, key_id, bound)


def _malformed(exc: Exception) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, f"token cannot be decoded: {exc}")


_DECODE_ERRORS = (ValueError, UnicodeDecodeError, binascii.Error, IndexError)


def _bound_prefix(segments: int | None, path: str | None) -> str | None:
    """The prefix a path-bound token covers on this request path (None: not path-bound). Decided before
    the signature is checked, so a path that cannot carry it is refused as a signature that cannot match."""
    if segments is None:
        return None
    if path is None:
        raise TokenDenied(Denial.MALFORMED, "the token is bound to the path it was served with: send that path with it")
    prefix = path_prefix(path, segments)
    if prefix is None:
        raise TokenDenied(
            Denial.BAD_SIGNATURE,
            f"the token is bound to the first {segments} segments of its path; {path} does not reach below them",
            {"path": path, "segments": segments},
        )
    return prefix


def _parse(version: int, body: bytes, key_id: str, bound_prefix: str | None) -> Grant:
    return _parse_v1(body, key_id) if version == 1 else _parse_v2(body, key_id, bound_prefix)


def inspect_token(
    token: str, signature_bytes: int = 16, *, keys: KeyRing | None = None, path: str | None = None
) -> Grant:
    """Decode a token's claims WITHOUT verifying it (for explanations only). Raises TokenDenied(malformed).

    `keys` names a version-2 token's key (else its key id reads '#' + fingerprint); `path` (decoded) gives
    a path-bound token its prefix (else it reads '/', with `path_bound` set)."""
    try:
        version, data = _decode(token)
        key_id = _key_id(version, data, keys)
        segments = _bound_segments(version, data)
        bound = None
        if segments is not None:
            bound = (path_prefix(path, segments) if path is not None else None) or "/"
        return _parse(version, data[:-signature_bytes], key_id, bound)
    except _DECODE_ERRORS as exc:
        raise _malformed(exc) from exc


def verify_signature(token: str, keys: KeyRing, path: str | None = None) -> Grant:
    """Check format, key and signature, then decode the claims (never parse claims of an unsigned body).

    `path`: the request's decoded path, which a path-bound token needs (its prefix is cut from it)."""
    if not token:
        raise TokenDenied(Denial.MISSING, "no token")
    try:
        version, data = _decode(token)
        key_id = _key_id(version, data, keys)
        segments = _bound_segments(version, data)
    except _DECODE_ERRORS as exc:
        raise _malformed(exc) from exc
    key: SigningKey | None = keys.find(key_id)
    if key is None:
        state = "retired" if key_id in keys.retired else "not in the key ring"
        raise TokenDenied(Denial.UNKNOWN_KEY, f"key {key_id!r} is {state}", {"kid": key_id})
    bound = _bound_prefix(segments, path)
    body, signature = data[: -key.signature_bytes], data[-key.signature_bytes :]
    message = _DOMAINS[1] + body if version == 1 else _message(body, bound)
    if len(body) < 2 + FINGERPRINT_BYTES or not key.verify(message, signature):
        raise _bad_signature(key.key_id, bound)
    try:
        return _parse(version, body, key.key_id, bound)
    except _DECODE_ERRORS as exc:  # a validly signed body we cannot read: a bug or a newer format
        raise _malformed(exc) from exc


def _bad_signature(key_id: str, bound_prefix: str | None) -> TokenDenied:
    where = f" for path prefix {bound_prefix} (forged, or used outside the prefix it was signed for)"
    return TokenDenied(
        Denial.BAD_SIGNATURE,
        f"signature does not match key {key_id!r}{where if bound_prefix is not None else ''}",
        {"kid": key_id},
    )


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
    grant = verify_signature(token, keys, path.decoded)
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
        # A path-bound token cached under another prefix is checked again: it refuses as it would cold.
        if grant is None or (grant.path_bound and not grant.covers(path.decoded)):
            grant = verify_signature(token, self.keys, path.decoded)
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
