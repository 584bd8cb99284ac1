"""Per-title `Referer` and `User-Agent` rules: weak controls against casual hot-linking.

Both headers are chosen by the client: a browser on another site sends its own page as the referer (so a
page embedding the stream elsewhere is refused), but `curl -H 'Referer: …'` passes. The token is the access
control; these rules only make copying a player onto another site less convenient. Pure: no HTTP.

```toml
[[titles]]
prefix = "/vod/title-9000/"
referer_hosts = ["player.example", "*.example.com"]   # a host, or any subdomain of one ("*." + host)
allow_empty_referer = false                           # apps and privacy settings send none
user_agent_allow = ["Mozilla/", "AppleCoreMedia"]      # regular expressions, searched case-insensitively
user_agent_deny = ["wget|curl"]                        # deny wins over allow
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ClientRefused, ClientRule, ConfigError

RULE_KEYS = frozenset({"referer_hosts", "allow_empty_referer", "user_agent_allow", "user_agent_deny"})
# A refusal's detail quotes what the client sent; at most this much of it.
_QUOTED_CHARS = 80
_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class ClientRules:
    """One title's rules. An empty `referer_hosts` means no referer rule; empty UA lists mean no UA rule."""

    referer_hosts: tuple[str, ...] = ()
    allow_empty_referer: bool = False
    user_agent_allow: tuple[re.Pattern[str], ...] = ()
    user_agent_deny: tuple[re.Pattern[str], ...] = ()

    def check(self, referer: str | None, user_agent: str | None) -> None:
        """Raises `ClientRefused` (referer_refused | user_agent_refused) unless both headers pass."""
        if self.referer_hosts:
            self._check_referer(referer)
        if self.user_agent_allow or self.user_agent_deny:
            agent = user_agent or ""
            if any(p.search(agent) for p in self.user_agent_deny):
                raise ClientRefused(ClientRule.USER_AGENT, f"user agent {_quote(agent)} is denied for this title")
            if self.user_agent_allow and not any(p.search(agent) for p in self.user_agent_allow):
                raise ClientRefused(ClientRule.USER_AGENT, f"user agent {_quote(agent)} is not allowed for this title")

    def _check_referer(self, referer: str | None) -> None:
        if not referer:
            if self.allow_empty_referer:
                return
            raise ClientRefused(ClientRule.REFERER, "this title needs a Referer from an allowed site (none was sent)")
        parts = urlsplit("")
        try:
            parts = urlsplit(referer)
            host = (parts.hostname or "") if parts.scheme in ("http", "https") else ""
        except ValueError:  # an unbalanced '[' in the host
            host = ""
        if not host:
            raise ClientRefused(
                ClientRule.REFERER, "the Referer is not an http(s) URL (this title needs an allowed site)"
            )
        if not any(_host_matches(host, pattern) for pattern in self.referer_hosts):
            # Only the site is quoted: a page's path and query may carry its own tokens, which no log or body repeats.
            site = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
            raise ClientRefused(ClientRule.REFERER, f"referer {_quote(site)} is not an allowed site for this title")


def _host_matches(host: str, pattern: str) -> bool:
    host = host.rstrip(".")  # `player.example.` is the same host
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])  # whole labels: "*.example.com" never admits "badexample.com"
    return host == pattern


def _quote(value: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in value[:_QUOTED_CHARS])
    return repr(shown + ("…" if len(value) > _QUOTED_CHARS else ""))


def _strings(table: Mapping[str, Any], name: str) -> Sequence[str]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"titles.{name} must be a list of non-empty strings")
    return value


def _patterns(table: Mapping[str, Any], name: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for text in _strings(table, name):
        try:
            compiled.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"titles.{name}: {text!r} is not a regular expression ({exc})") from exc
    return tuple(compiled)


def client_rules_from(table: Mapping[str, Any]) -> ClientRules | None:
    """The rules of one `[[titles]]` table (keys already checked), or None if it sets none."""
    if not any(name in table for name in RULE_KEYS):
        return None
    hosts = tuple(host.lower() for host in _strings(table, "referer_hosts"))
    for host in hosts:
        if not _HOST_PATTERN.fullmatch(host):
            raise ConfigError(
                f'titles.referer_hosts: {host!r} is not a host name or "*." + a host name (no scheme, port or path)'
            )
    allow_empty = table.get("allow_empty_referer", False)
    if not isinstance(allow_empty, bool):
        raise ConfigError("titles.allow_empty_referer must be true or false")
    if allow_empty and not hosts:
        raise ConfigError("titles.allow_empty_referer needs referer_hosts (with no hosts there is no referer rule)")
    return ClientRules(hosts, allow_empty, _patterns(table, "user_agent_allow"), _patterns(table, "user_agent_deny"))
