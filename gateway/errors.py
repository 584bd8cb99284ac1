"""The gateway's error tree.

    GatewayError
    ├── TokenDenied(reason: Denial)      a request or token is refused; 401 for `missing`, 403 otherwise
    ├── ConfigError                      settings or keys are unusable; raised at start-up, names the setting
    ├── OriginError                      the origin could not give us a usable answer
    │   ├── OriginUnavailable            connect failure, refused, reset            -> 502
    │   ├── OriginTimeout                connect/read timeout                       -> 504
    │   ├── OriginBadStatus              the origin answered 5xx or garbage         -> 502
    │   └── ManifestTooLarge             a playlist over the configured size cap    -> 502
    └── ManifestError (ValueError)       a manifest the rewriter will not touch     -> 502

Messages name the value and the limit ("token expired at 1748185200, now 1748185260") and never a secret.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from gateway.manifests.errors import ManifestError

__all__ = [
    "ConfigError",
    "Denial",
    "GatewayError",
    "ManifestError",
    "ManifestTooLarge",
    "OriginBadStatus",
    "OriginError",
    "OriginTimeout",
    "OriginUnavailable",
    "TokenDenied",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class Denial(enum.StrEnum):
    """Why a request was refused. The value is what logs, metrics and players see."""

    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ACL = "acl"
    IP = "ip"
    SCOPE = "scope"
    REVOKED = "revoked"


class TokenDenied(GatewayError):
    """A typed refusal: `reason` for machines, `detail` for people, `values` for `verify` explanations."""

    def __init__(self, reason: Denial, detail: str, values: Mapping[str, object] | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.values: Mapping[str, object] = dict(values or {})

    @property
    def http_status(self) -> int:
        return 401 if self.reason is Denial.MISSING else 403


class ConfigError(GatewayError, ValueError):
    """Unusable configuration; the message names the setting (e.g. `GATEWAY_KEYS`)."""


class OriginError(GatewayError):
    """The origin could not give us a usable answer."""

    http_status = 502


class OriginUnavailable(OriginError):
    pass


class OriginTimeout(OriginError):
    http_status = 504


class OriginBadStatus(OriginError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ManifestTooLarge(OriginError):
    pass
