"""Sharing detection: the pure core. A session seen from more than `max_networks` distinct client networks
within `window_seconds` was most likely handed to someone else (a leaked or resold URL).

Networks, not addresses: a phone moving between Wi-Fi and mobile data, or a household behind carrier NAT,
changes address inside one network far more often than it changes network. IPv4 is grouped by /24 and IPv6
by /48 (a site's allocation) by default. `gateway/sessions/stream_redis.py` runs the same rule in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.tokens.grant import IPAddress, network_around


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    max_networks: int  # 0: off
    window_seconds: float
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    revoke: bool = False  # revoke the session when detected (through the revocation store)

    def __post_init__(self) -> None:
        if self.max_networks < 0 or self.window_seconds <= 0:
            raise ValueError(f"max_networks must be >= 0 and window_seconds positive, got {self!r}")
        if not (0 <= self.ipv4_prefix <= 32 and 0 <= self.ipv6_prefix <= 128):
            raise ValueError(f"ipv4_prefix must be 0..32 and ipv6_prefix 0..128, got {self!r}")

    def network_of(self, address: IPAddress) -> str:
        """The client network `address` counts as (an IPv4-mapped IPv6 address is its IPv4 client)."""
        return str(network_around(address, self.ipv4_prefix, self.ipv6_prefix))


@dataclass(frozen=True, slots=True)
class SharingVerdict:
    networks: int  # distinct networks the session was seen from within the window, this one included
    detected: bool  # this sighting took the session past `max_networks` (said once per crossing)


class NetworkSightings:
    """session -> {network -> last seen}, within the window."""

    def __init__(self, policy: SharingPolicy) -> None:
        self.policy = policy
        self._sessions: dict[str, dict[str, float]] = {}
        self._next_sweep = 0.0

    def sighting(self, session: str, network: str, now: float) -> SharingVerdict:
        self._sweep(now)
        seen = self._sessions.setdefault(session, {})
        for old in [n for n, at in seen.items() if at < now - self.policy.window_seconds]:
            del seen[old]
        new = network not in seen
        seen[network] = now
        return SharingVerdict(len(seen), new and len(seen) == self.policy.max_networks + 1)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.policy.window_seconds
        horizon = now - self.policy.window_seconds
        for session in [s for s, seen in self._sessions.items() if all(at < horizon for at in seen.values())]:
            del self._sessions[session]
