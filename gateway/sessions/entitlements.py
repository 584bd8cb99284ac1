"""Entitlements: may this viewer watch this title? A pluggable, pure policy (no crypto, no HTTP).

The default `CatalogEntitlements` reads users and titles from the config:

```toml
[[users]]                      # who a bearer credential is (a stand-in for your identity provider)
credential = "demo-paid"
id = "u-paid"
name = "Paula (paid)"
plan = "paid"                  # free | paid
country = "NL"                 # home country, used when no trusted country header is configured

[[titles]]
prefix = "/vod/title-9000/"    # the title's path on the origin (the same for every delivery mount)
name = "Title 9000"
paid = true
blocked_countries = ["KP"]     # or allowed_countries = [...]
referer_hosts = ["player.example"]  # and allow_empty_referer, user_agent_allow, user_agent_deny:
                               # weak hot-linking rules (gateway/sessions/client_rules.py)
```
A real deployment implements `EntitlementPolicy` against its own user and rights systems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.config_schema import array_of_tables
from gateway.errors import ConfigError, EntitlementRefused, Refusal
from gateway.sessions.client_rules import RULE_KEYS, ClientRules, client_rules_from

# The refusals belong to the gateway's error tree (gateway/errors.py); a policy raises them from here.
__all__ = [
    "CatalogEntitlements",
    "EntitlementPolicy",
    "EntitlementRefused",
    "Refusal",
    "Title",
    "Viewer",
    "catalog_from_config",
]


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: str
    name: str
    plan: str
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Title:
    prefix: str
    name: str
    paid: bool = False
    blocked_countries: frozenset[str] = frozenset()
    allowed_countries: frozenset[str] = frozenset()
    client_rules: ClientRules | None = None  # Referer / User-Agent rules, checked by the gate and at create

    def covers(self, content_path: str) -> bool:
        """Whether `content_path` (a path on the origin) is this title or inside it: whole segments from
        the origin's root, never a match somewhere inside the path (`/vod/paid/vod/free/` is paid)."""
        return content_path.startswith(self.prefix if self.prefix.endswith("/") else self.prefix + "/")


class EntitlementPolicy(Protocol):
    def authenticate(self, credential: str | None) -> Viewer:
        """The viewer a bearer credential belongs to; raises EntitlementRefused(unauthenticated)."""
        ...

    def viewer(self, user_id: str) -> Viewer | None:
        """Look a viewer up again (on refresh); None if the account no longer exists."""
        ...

    def check(self, viewer: Viewer, content_prefix: str, country: str | None) -> Title:
        """May `viewer` have a grant for `content_prefix`: the exact path prefix (on the origin, ending in
        '/') the session will cover. Returns the title, or raises EntitlementRefused(not_entitled |
        geo_blocked | unknown_asset). The prefix may contain other titles: they must be allowed too."""
        ...


@dataclass(frozen=True)
class CatalogEntitlements:
    users: Mapping[str, Viewer] = field(default_factory=dict)  # by credential
    titles: Sequence[Title] = ()

    def authenticate(self, credential: str | None) -> Viewer:
        if not credential:
            raise EntitlementRefused(Refusal.UNAUTHENTICATED, "send 'Authorization: Bearer <credential>'")
        viewer = self.users.get(credential)
        if viewer is None:
            raise EntitlementRefused(Refusal.UNAUTHENTICATED, "unknown credential")
        return viewer

    def viewer(self, user_id: str) -> Viewer | None:
        return next((v for v in self.users.values() if v.user_id == user_id), None)

    def check(self, viewer: Viewer, content_prefix: str, country: str | None) -> Title:
        # The most specific title that covers the prefix decides; any title *inside* the prefix (which the
        # grant would open as well) must be allowed too.
        title = self.title_for(content_prefix)
        if title is None:
            raise EntitlementRefused(Refusal.UNKNOWN_ASSET, f"no title is configured for {content_prefix}")
        for inside in self.titles:
            if inside is not title and inside.prefix.startswith(content_prefix):
                self._allowed(viewer, inside, country)
        return self._allowed(viewer, title, country)

    @property
    def has_client_rules(self) -> bool:
        return any(t.client_rules is not None for t in self.titles)

    def title_for(self, content_path: str) -> Title | None:
        """The most specific title covering `content_path` (a path on the origin), if any."""
        covering = [t for t in self.titles if t.covers(content_path)]
        return max(covering, key=lambda t: len(t.prefix)) if covering else None

    def check_client(self, content_path: str, referer: str | None, user_agent: str | None) -> None:
        """The client-header rules of the title covering `content_path` (raises `ClientRefused`)."""
        title = self.title_for(content_path)
        if title is not None and title.client_rules is not None:
            title.client_rules.check(referer, user_agent)

    def _allowed(self, viewer: Viewer, title: Title, country: str | None) -> Title:
        if title.paid and viewer.plan != "paid":
            raise EntitlementRefused(
                Refusal.NOT_ENTITLED,
                f"{title.name!r} needs a paid plan; {viewer.name} is on the {viewer.plan} plan",
            )
        where = country or viewer.country
        blocked = where in title.blocked_countries or bool(
            title.allowed_countries and where not in title.allowed_countries
        )
        if blocked:
            raise EntitlementRefused(Refusal.GEO_BLOCKED, f"{title.name!r} is not available in country {where}")
        return title


def _strings(value: Any, name: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return frozenset(v.upper() for v in value)


USER_KEYS = frozenset({"credential", "id", "name", "plan", "country"})
TITLE_KEYS = frozenset({"prefix", "name", "paid", "blocked_countries", "allowed_countries"}) | RULE_KEYS


def catalog_from_config(config: Mapping[str, Any]) -> CatalogEntitlements:
    try:
        users = {
            str(u["credential"]): Viewer(
                str(u["id"]), str(u.get("name", u["id"])), str(u.get("plan", "free")), u.get("country")
            )
            for u in array_of_tables(config, "users", USER_KEYS)
        }
        titles = [
            Title(
                str(t["prefix"]),
                str(t.get("name", t["prefix"])),
                bool(t.get("paid", False)),
                _strings(t.get("blocked_countries", []), "titles.blocked_countries"),
                _strings(t.get("allowed_countries", []), "titles.allowed_countries"),
                client_rules_from(t),
            )
            for t in array_of_tables(config, "titles", TITLE_KEYS)
        ]
    except KeyError as exc:
        raise ConfigError(f"users/titles entry is missing {exc}") from exc
    return CatalogEntitlements(users, titles)
