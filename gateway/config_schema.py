"""What a configuration may say: its closed choices as enums, and tables that refuse unknown keys.

Shared by `gateway/config.py` (the gateway's tables) and the dialect readers
(`gateway/tokens/dialects/support/`), so both fail the same way: a misspelt key or a value outside a
choice stops start-up with a `ConfigError` naming the key, the table and what is allowed. No imports
beyond `gateway.errors`: the pure cores may use it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from gateway.errors import ConfigError


class Delivery(enum.StrEnum):
    """`[[routes]] delivery`: where a token travels between the gateway and a player (gateway/http/delivery.py)."""

    QUERY = "query"
    COOKIE = "cookie"
    HYBRID = "hybrid"
    PATH = "path"
    QUERYPARAM = "queryparam"  # the standards' propagation: HLS EXT-X-DEFINE QUERYPARAM, DASH UrlQueryInfo


class DeltaUpdates(enum.StrEnum):
    """`[gateway] delta_updates`: `pass` forwards LL-HLS `_HLS_skip`; `full` drops it upstream."""

    PASS = "pass"
    FULL = "full"


class CdnScope(enum.StrEnum):
    """`[[routes]] cdn_scope`: what a CDN route serves from the CDN (`media`: keys too)."""

    SEGMENTS = "segments"
    MEDIA = "media"


class SameSite(enum.StrEnum):
    """`[sessions] cookie_same_site`: the session cookie's `SameSite` attribute, as browsers spell it."""

    LAX = "Lax"
    STRICT = "Strict"
    NONE = "None"


class OnLimit(enum.StrEnum):
    """`[sessions] on_limit`: what a new stream meets when its user already has `max_streams` alive."""

    BLOCK_NEW = "block_new"  # the new stream is refused (`stream_limit`)
    EVICT_OLDEST = "evict_oldest"  # the least recently seen stream is ended (`stream_limit` on its next fetch)


class OnError(enum.StrEnum):
    """`[entitlements] on_error`: what a slow, down or nonsensical entitlement webhook means for the viewer."""

    DENY = "deny"
    ALLOW = "allow"


class LogFormat(enum.StrEnum):
    """`[logging] format` / GATEWAY_LOG_FORMAT: text lines, or one JSON object a line (gateway/telemetry/logs.py)."""

    TEXT = "text"
    JSON = "json"


Choice = TypeVar("Choice", bound=enum.StrEnum)

# The environment of a loader that was given none: every `*_env` reference is "not set".
NO_ENVIRONMENT: Mapping[str, str] = MappingProxyType({})


def choice(setting: str, value: object, kind: type[Choice]) -> Choice:
    """`value` as a member of `kind`, or a ConfigError naming the setting and the allowed values."""
    if isinstance(value, kind):
        return value
    allowed = [member.value for member in kind]
    if isinstance(value, str) and value in allowed:
        return kind(value)
    raise ConfigError(f"{setting} must be one of {', '.join(allowed)}, got {value!r}")


def refuse_unknown(table: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """A misspelt key must fail start-up, not fall back to a default or silently disable a check.

    `where` names the table as the file spells it: `[sessions]`, `[[routes]] #2`, `[dialects.cat] keys[0]`.
    """
    allowed = set(known)
    unknown = sorted(str(name) for name in table if name not in allowed)
    if unknown:
        keys = ", ".join(repr(name) for name in unknown)
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {keys} in {where}; known: {', '.join(sorted(allowed))}"
        )


def environment_value(environ: Mapping[str, str], variable: str, where: str) -> str:
    """The value of a `*_env` reference, from the environment the loader was given (never the process's).

    The error names the variable, never a value.
    """
    value = environ.get(variable, "")
    if not value:
        raise ConfigError(f"{where}: environment variable {variable} is not set or empty")
    return value


def array_of_tables(config: Mapping[str, Any], name: str, known: Iterable[str]) -> list[Mapping[str, Any]]:
    """`[[name]]` of a config (an array of tables), each refusing the keys it does not know."""
    tables = config.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(table, Mapping) for table in tables):
        raise ConfigError(f"{name} must be an array of tables ([[{name}]])")
    for index, table in enumerate(tables):
        refuse_unknown(table, known, f"[[{name}]] #{index + 1}")
    return tables
