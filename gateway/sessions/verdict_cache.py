"""The entitlement webhook's verdicts, kept for the TTL the backend gave them, bounded in entries.

Keyed on who asks for what from where: (user, title prefix, client network, country). The network is the
client's IPv4 /24 or IPv6 /48, so a viewer whose address moves inside their provider's block keeps the
verdict, and one on another network is asked about again. Least recently used entries go first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from gateway.tokens.grant import IPAddress, IPNetwork, network_around

CACHE_IPV4_PREFIX = 24
CACHE_IPV6_PREFIX = 48


@dataclass(frozen=True, slots=True)
class Verdict:
    allow: bool
    reason: str  # sanitized: printable, bounded (shown to the viewer as a refusal's detail)
    user_id: str | None = None  # who the backend says the credential belongs to


VerdictKey = tuple[str, str, str, str]


def verdict_key(
    *, user_id: str | None, credential: str | None, title_prefix: str, client_ip: IPAddress | None, country: str | None
) -> VerdictKey:
    # A credential is a secret: the cache holds its digest, never the credential itself.
    user = f"id:{user_id}" if user_id is not None else "cred:" + hashlib.sha256((credential or "").encode()).hexdigest()
    return (user, title_prefix, str(client_block(client_ip)), country or "")


def client_block(address: IPAddress | None) -> IPNetwork | None:
    return None if address is None else network_around(address, CACHE_IPV4_PREFIX, CACHE_IPV6_PREFIX)


class VerdictCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[VerdictKey, tuple[float, Verdict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: VerdictKey, now: float) -> Verdict | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, verdict = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: VerdictKey, verdict: Verdict, expires_at: float) -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = (expires_at, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
