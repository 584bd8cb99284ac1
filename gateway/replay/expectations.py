"""Is a denial expected? A pure decision over what the player knew when it was refused.

Automatic rules (each a property of the token lifecycle, not of one scenario):
- `expired` / `session_ended` / `missing` (cookie mode) at or after the session's hard cap (`session_ends_at`):
  the session is over;
- `ip` on a session created before the client's address changed, when the scenario declares ip_binding;
- `revoked` on a session the scenario revoked with `expected = true`.
Everything else is unexpected unless an `[[expect]]` entry of the scenario covers it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.replay.scenario import ExpectedDenial

# At the session's cap tokens expire; in cookie mode the browser drops the cookie then, hence `missing`.
SESSION_OVER = frozenset({"expired", "session_ended", "missing"})


@dataclass(frozen=True, slots=True)
class DenialFacts:
    t: float  # scenario seconds
    reason: str
    player: str
    session_ends_at: float | None  # scenario seconds; None before any session exists
    session_created_at: float | None
    last_ip_change_at: float | None
    ip_binding: bool
    revoked_at: float | None  # when this session was revoked by the scenario
    revoke_expected: bool


def classify(facts: DenialFacts, explicit: tuple[ExpectedDenial, ...]) -> tuple[bool, str]:
    """(expected, why) for one denial."""
    if facts.reason in SESSION_OVER and facts.session_ends_at is not None and facts.t >= facts.session_ends_at:
        return True, "past the session's maximum life"
    if (
        facts.reason == "ip"
        and facts.ip_binding
        and facts.last_ip_change_at is not None
        and facts.session_created_at is not None
        and facts.session_created_at <= facts.last_ip_change_at <= facts.t
    ):
        return True, "client address changed with ip_binding on"
    if facts.reason == "revoked" and facts.revoked_at is not None and facts.t >= facts.revoked_at:
        if facts.revoke_expected:
            return True, "session revoked by the scenario"
        return False, "session revoked by the scenario, which did not expect it"
    for rule in explicit:
        if rule.reason == facts.reason and rule.after <= facts.t <= rule.until and rule.player in (None, facts.player):
            return True, f"declared expected ({rule.reason} between {rule.after:g} and {rule.until:g} s)"
    return False, "unexpected"
