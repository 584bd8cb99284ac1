"""The `Grant`: who may fetch what, from where, until when. Immutable, validated, in epoch seconds."""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass, field

from gateway.tokens.acl import canonical_prefix

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def network_around(address: IPAddress, ipv4_prefix: int, ipv6_prefix: int) -> IPNetwork:
    """The client network `address` belongs to: its IPv4 /`ipv4_prefix` or IPv6 /`ipv6_prefix`. An
    IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports) is its IPv4 client: a /64
    of it would hold every IPv4 client at once. Used for IP binding, sharing detection, verdict caching and
    audit lines alike."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return _masked(address, ipv4_prefix if address.version == 4 else ipv6_prefix)


# Parsing "a.b.c.d/24" with `ipaddress.ip_network` costs ~40 us (a heartbeat's whole budget); masking the
# integer is a few, and a viewer's next request finds its network here.
@functools.lru_cache(maxsize=65_536)
def _masked(address: IPAddress, bits: int) -> IPNetwork:
    host_bits = address.max_prefixlen - bits
    network = ipaddress.IPv4Network if address.version == 4 else ipaddress.IPv6Network  # an int alone is ambiguous
    return network((int(address) >> host_bits << host_bits, bits))


class Scope(enum.StrEnum):
    """What kind of resource a token opens.

    PLAYLIST tokens open playlists only (long-lived: reloads use URLs fixed at master load); MEDIA tokens
    open segments, parts, keys and init sections only (short-lived, minted per playlist response); ALL
    opens both (the CLI's `sign`, the master URL handed out by the session API).
    """

    ALL = "all"
    PLAYLIST = "playlist"
    MEDIA = "media"

    def opens(self, needed: Scope) -> bool:
        return self is Scope.ALL or self is needed


def parse_network(value: str) -> IPNetwork:
    """'203.0.113.7' -> /32, '2001:db8::1' -> /128, '198.51.100.0/24' -> that network (host bits refused)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IP address or CIDR network: {value!r} ({exc})") from exc


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission to fetch anything under `path_prefixes` between `not_before` and `expires_at`."""

    path_prefixes: tuple[str, ...]
    expires_at: int
    not_before: int | None = None
    client_network: IPNetwork | None = None
    session_id: str | None = None
    user_id: str | None = None
    scope: Scope = Scope.ALL
    session_ends_at: int | None = None  # the viewing session's hard cap; tokens derived from this grant stop there
    key_id: str | None = field(default=None, compare=False)  # set on decoding: which key signed it
    # set on decoding: the one prefix came from the request path, not the token (`native.sign_grant`)
    path_bound: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path_prefixes:
            raise ValueError("a grant needs at least one path prefix")
        for prefix in self.path_prefixes:
            canonical_prefix(prefix)
        if not 0 < self.expires_at < 2**32:
            raise ValueError(f"expires_at out of range: {self.expires_at}")
        if self.not_before is not None and not 0 <= self.not_before < self.expires_at:
            raise ValueError(f"not_before {self.not_before} must precede expires_at {self.expires_at}")
        if self.session_ends_at is not None and not 0 < self.session_ends_at < 2**32:
            raise ValueError(f"session_ends_at out of range: {self.session_ends_at}")
        for name in ("session_id", "user_id"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value.encode()) <= 128:
                raise ValueError(f"{name} must be 1..128 bytes")

    def covers(self, decoded_path: str) -> bool:
        """Whole-segment prefix match on an already normalised path (see `gateway.tokens.acl`)."""
        return any(decoded_path.startswith(prefix) for prefix in self.path_prefixes)

    def admits(self, address: IPAddress) -> bool:
        if self.client_network is None:
            return True
        if address.version != self.client_network.version:
            mapped = getattr(address, "ipv4_mapped", None)
            return mapped is not None and mapped in self.client_network
        return address in self.client_network
