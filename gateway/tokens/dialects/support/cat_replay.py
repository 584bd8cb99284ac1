"""`catreplay` (claim 308) bookkeeping: how many times each token id (`cti`) has been accepted.

`catreplay: 1` (single use) is enforced by counting uses per cti until the token's expiry; a count
above one is a replay. One process keeps the counts in memory; several gateway instances need a
shared store with an atomic increment (e.g. Redis `INCR` + `EXPIREAT`) behind the same protocol.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import Denial, TokenDenied


class ReplayStore(Protocol):
    def use(self, cti: bytes, *, expires_at: float, now: float) -> int:
        """Record one more use of `cti` (kept until `expires_at`) and return the count including it."""
        ...


class MemoryReplayStore:
    """A bounded in-process store. When full of live entries it refuses (fails closed), never forgets."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._uses: dict[bytes, tuple[int, float]] = {}

    def use(self, cti: bytes, *, expires_at: float, now: float) -> int:
        if cti not in self._uses and len(self._uses) >= self.max_entries:
            self._uses = {key: entry for key, entry in self._uses.items() if entry[1] > now}
            if len(self._uses) >= self.max_entries:
                raise TokenDenied(Denial.REVOKED, f"replay store holds {self.max_entries} live single-use tokens")
        count = self._uses.get(cti, (0, expires_at))[0] + 1
        self._uses[cti] = (count, expires_at)
        return count

    def __repr__(self) -> str:
        return f"MemoryReplayStore({len(self._uses)}/{self.max_entries} entries)"
