"""How many segment streams one viewer may hold open at once.

A segment stream holds an origin connection for as long as its viewer takes to read it. Without a bound, one
client with one valid token (or a broken player) can open enough slow downloads to hold every connection of
the segment pool, and every other viewer waits. A player needs a few at a time (one per media type, a
prefetch); the bound is per viewing session, or per client address for tokens that name no session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import TooManyDownloads
from gateway.http.request_facts import ProxyTrust, client_address
from gateway.tokens.grant import Grant


def viewer_key(grant: Grant, scope: Mapping[str, Any], trust: ProxyTrust) -> str:
    """Whose downloads a request counts against: its session, else its client address."""
    if grant.session_id is not None:
        return f"session:{grant.session_id}"
    return f"address:{client_address(scope, trust)}"


class DownloadSlots:
    """Open segment streams per viewer, in memory for this process (no state outlives a stream)."""

    def __init__(self, per_viewer: int) -> None:
        self.per_viewer = per_viewer  # 0: no limit
        self._open: dict[str, int] = {}

    def take(self, key: str) -> None:
        """Count one more stream for `key`, or raise TooManyDownloads (429, Retry-After) at the limit."""
        held = self._open.get(key, 0)
        if self.per_viewer and held >= self.per_viewer:
            raise TooManyDownloads(
                f"{self.per_viewer} segment downloads are already open for this viewer; retry when one has finished"
            )
        self._open[key] = held + 1

    def give_back(self, key: str) -> None:
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)  # the map holds only viewers downloading now

    def open_streams(self) -> int:
        return sum(self._open.values())
