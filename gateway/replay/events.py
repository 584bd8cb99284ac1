"""What a player records: every request, every token it used (and how long it lived), events, stalls, gaps.

All times are scenario seconds (since the replay's start). The log keeps aggregates for every request and
full records only for the interesting ones (denials, errors), so a 3-hour run stays small in memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_KEPT = 2000  # full records kept per list (denials, errors); counts are always complete


@dataclass(slots=True)
class RequestRecord:
    t: float
    player: str
    kind: str  # master | media_playlist | segment | part | key | init | api
    rendition: str | None
    status: int
    path: str  # without the query (never a token)
    denial: str | None = None  # the typed reason for 401/403 (x-token-denial or JSON `error`)
    error: str | None = None  # other failures (origin 404/5xx, transport errors)
    detail: str = ""
    expected: bool | None = None
    why: str = ""
    token_kind: str | None = None  # session | playlist | media | cookie
    token_expires: float | None = None
    renewal: bool = False

    def as_json(self) -> dict[str, Any]:
        keys = ("t", "player", "kind", "rendition", "status", "path", "denial", "error", "detail", "expected", "why")
        out = {k: getattr(self, k) for k in keys}
        out.update(token_kind=self.token_kind, token_expires=self.token_expires)
        return out


@dataclass(slots=True)
class TokenSpan:
    """One token the player used: from first use to its expiry (inspected, not verified)."""

    kind: str
    session: str | None
    first_used: float
    expires: float | None
    last_used: float


@dataclass(slots=True)
class Event:
    t: float
    type: str  # session | refresh | switch | pause | resume | seek | ip_change | revoke | stop | note
    detail: str = ""


@dataclass(slots=True)
class Interval:
    """A stall (the buffer ran dry while playing) or a gap (no new segment for long, or skipped segments)."""

    kind: str
    start: float
    end: float | None
    detail: str = ""
    expected: bool = False
    count: int = 0  # skipped segments


@dataclass
class PlayerLog:
    player: str
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, status) -> requests
    denial_counts: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (reason, expected) -> n
    denials: list[RequestRecord] = field(default_factory=list)
    errors: list[RequestRecord] = field(default_factory=list)
    tokens: dict[str, TokenSpan] = field(default_factory=dict)
    renewals: list[float] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    stalls: list[Interval] = field(default_factory=list)
    gaps: list[Interval] = field(default_factory=list)
    renditions: list[tuple[float, str]] = field(default_factory=list)  # (since, rendition)
    requests: int = 0
    error_total: int = 0
    log_requests: list[RequestRecord] | None = None  # every record, when asked for (--log-requests)

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        self.counts[(record.kind, record.status)] += 1
        if record.renewal:
            self.renewals.append(record.t)
        if record.denial is not None:
            self.denial_counts[(record.denial, bool(record.expected))] += 1
            if len(self.denials) < MAX_KEPT:
                self.denials.append(record)
        elif record.error is not None:
            self.error_total += 1
            if len(self.errors) < MAX_KEPT:
                self.errors.append(record)
        if self.log_requests is not None:
            self.log_requests.append(record)

    def event(self, t: float, type_: str, detail: str = "") -> None:
        self.events.append(Event(t, type_, detail))

    @property
    def unexpected_denials(self) -> int:
        return sum(n for (_, expected), n in self.denial_counts.items() if not expected)
