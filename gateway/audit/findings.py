"""What an audit says: one `Finding` per check (pass, warn or fail), each naming the setting to change.

A finding belongs to one item of the hardening checklist (`ITEMS`); `Report` renders them as text or JSON
and decides the exit status (1 on any failure).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the checklist: its title and why it matters (a finding may say more)."""

    title: str
    why: str


ITEMS: dict[str, Item] = {
    "short_ttls": Item(
        "Short token lifetimes",
        "a token copied from a playlist, a URL bar or a log plays until it expires; revocation reaches the "
        "gateway's sessions, not every CDN token already handed out",
    ),
    "cache_lifetimes": Item(
        "Cache lifetimes no longer than token lifetimes",
        "a shared cache answers repeats without asking the gateway: what it holds stays reachable after the "
        "token that unlocked it expired or was revoked",
    ),
    "ip_binding": Item(
        "IP binding covers IPv6",
        "an IP-bound token copied to another network is refused; a binding that drops IPv6 viewers, or binds "
        "a whole provider's prefix, protects nothing for the viewers it misses",
    ),
    "hash_algorithms": Item(
        "SHA-256, not SHA-1, for new keys",
        "SHA-1 and MD5 are broken for collisions and deprecated for signatures; where the vendor accepts "
        "SHA-256 or Ed25519, new keys should use it",
    ),
    "origin_protection": Item(
        "Origin protection on",
        "without the authenticated origin header the origin answers anyone who finds its address, and every "
        "token check is bypassed",
    ),
    "cache_key": Item(
        "Token parameters out of the CDN cache key",
        "every viewer's token differs: a CDN that keys its cache on them misses for every viewer, sends every "
        "segment request to the origin and stores one copy per token",
    ),
    "cookies": Item(
        "Cookie attributes",
        "a session cookie without Secure crosses plain HTTP, without HttpOnly it is readable by any script on "
        "the page, and SameSite=None sends it with every cross-site request",
    ),
    "key_rotation": Item(
        "Key rotation",
        "a key that cannot be rotated without dropping sessions is never rotated; a secret shared by two "
        "purposes cannot be rotated for one alone",
    ),
    "front_end_secrets": Item(
        "No secret reachable from the front end",
        "anything a page or an API answer carries is public: a signing key there lets anyone mint tokens, a "
        "viewer credential lets anyone watch as that viewer",
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's answer. `setting` is the exact setting (or, for a probe, the URL) it concerns; `fix` the
    change that makes it pass (empty when it passes)."""

    item: str
    status: Status
    setting: str
    summary: str
    fix: str = ""
    why: str = ""

    def __post_init__(self) -> None:
        if self.item not in ITEMS:
            raise ValueError(f"unknown checklist item {self.item!r}")
        if not self.why:
            object.__setattr__(self, "why", ITEMS[self.item].why)


@dataclass(frozen=True, slots=True)
class Report:
    findings: Sequence[Finding]

    def count(self, status: Status) -> int:
        return sum(1 for finding in self.findings if finding.status is status)

    @property
    def exit_status(self) -> int:
        return 1 if self.count(Status.FAIL) else 0

    def as_json(self) -> str:
        counts = {status.value: self.count(status) for status in Status}
        findings = [asdict(finding) | {"title": ITEMS[finding.item].title} for finding in self.findings]
        return json.dumps({"ok": not counts["fail"], "counts": counts, "findings": findings}, indent=2)

    def as_text(self) -> str:
        """Grouped by checklist item, in checklist order, worst first; each item's reason once, under its title."""
        order = {status: rank for rank, status in enumerate((Status.FAIL, Status.WARN, Status.PASS))}
        lines: list[str] = []
        for item, about in ITEMS.items():
            found = sorted((f for f in self.findings if f.item == item), key=lambda f: order[f.status])
            if not found:
                continue
            lines.append(f"{found[0].status.value.upper():4}  {about.title} [{item}]")
            if found[0].status is not Status.PASS:
                lines.append(f"      why: {about.why}")
            for finding in found:
                lines.append(f"  {finding.status.value.upper():4}  {finding.setting}: {finding.summary}")
                if finding.status is not Status.PASS:
                    if finding.why != about.why:
                        lines.append(f"        why: {finding.why}")
                    lines.append(f"        fix: {finding.fix}")
        counts = ", ".join(f"{self.count(status)} {status.value}" for status in Status)
        lines.append(f"{counts}: {'FAILED' if self.exit_status else 'ok'}")
        return "\n".join(lines)
