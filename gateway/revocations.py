"""Revoked viewing sessions. In memory for the single-process default; shared via Redis when configured.

Tokens carry everything else, so this is the only state instances must share. An entry lives until the
session's hard cap, after which every token of that session is refused anyway.
"""

from __future__ import annotations

from typing import Protocol


class RevocationStore(Protocol):
    def revoke(self, session_id: str, until: float) -> None: ...

    def is_revoked(self, session_id: str, now: float) -> bool: ...


class MemoryRevocations:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def revoke(self, session_id: str, until: float) -> None:
        self._until[session_id] = max(until, self._until.get(session_id, 0.0))

    def is_revoked(self, session_id: str, now: float) -> bool:
        until = self._until.get(session_id)
        if until is None:
            return False
        if now > until:
            del self._until[session_id]  # past the session's cap: its tokens are dead anyway
            return False
        return True
