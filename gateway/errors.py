"""Every error the gateway answers with, in one tree. A leaf module: it imports nothing of the gateway, so the
pure cores (tokens, manifests) and the rim alike raise these without pulling anything else in.

Each error has a snake_case `code` (what players, logs and metrics see), the HTTP `status` it is answered
with and a `detail` a person can act on (values and limits, never a secret). `gateway.http.errors` turns
any of them into the one response shape: JSON `{error, detail, request_id}`, `x-token-denial` (denials)
or `x-gateway-error` (everything else), `cache-control: no-store`.

    GatewayError                        code                status
    ├── TokenDenied(reason: Denial)     the reason          401 missing, 403 otherwise     (a denial)
    ├── EntitlementRefused(Refusal)     the refusal         401 unauthenticated, 404 unknown_asset, 403
    ├── EntitlementsUnavailable         entitlements_unavailable 503  the entitlement webhook failed, on_error = "deny"
    ├── ClientRefused(ClientRule)       the rule            403  a title's referer / user-agent rules (weak controls)
    ├── BadRequest                      bad_request         400
    │   └── BodyTimeout                 request_timeout     408  the API body did not arrive in time
    ├── TooManyDownloads                too_many_downloads  429  a viewer's concurrent segment streams (Retry-After)
    ├── NoRoute                         no_route            404
    ├── UnsupportedGrant (ValueError)   unsupported_grant   403  a dialect cannot carry the grant's binding
    │   └── UnsupportedCookie           unsupported_cookie  403  a value that is no RFC 6265 cookie-octet string
    ├── ConfigError (ValueError)        config_error        500  raised at start-up, names the setting
    ├── InternalError                   internal_error      500  an unexpected exception (traceback: log only)
    ├── OriginError                     origin_error        502
    │   ├── OriginUnavailable           origin_unavailable  502  connect failure, refused, reset
    │   ├── OriginTimeout               origin_timeout      504  connect/read timeout
    │   ├── OriginBusy                  origin_busy         503  every origin connection busy (Retry-After)
    │   ├── OriginBadStatus             origin_status       the origin's 404/410/416, else 502
    │   └── ManifestTooLarge            manifest_too_large  502  over `max_manifest_bytes`
    └── ManifestError (ValueError)      bad_manifest        502  a manifest the rewriter will not touch

Overload answers (`retry_after` set) carry `Retry-After`: the request was fine, try it again shortly.

Messages name the value and the limit ("token expired at 1748185200, now 1748185260") and never a secret.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "BadRequest",
    "ClientRefused",
    "ClientRule",
    "ConfigError",
    "Denial",
    "EntitlementRefused",
    "EntitlementsUnavailable",
    "GatewayError",
    "InternalError",
    "ManifestError",
    "ManifestTooLarge",
    "NoRoute",
    "OriginBadStatus",
    "OriginBusy",
    "OriginError",
    "OriginTimeout",
    "OriginUnavailable",
    "Refusal",
    "TokenDenied",
    "TooManyDownloads",
    "UnsupportedCookie",
    "UnsupportedGrant",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose. Subclasses set `code` and `status`; instances whose
    code depends on a reason (denials, refusals) set them in `__init__`."""

    code: str = "internal_error"
    status: int = 500
    denial: ClassVar[bool] = False  # True: a refusal of the request's credential (`x-token-denial`)
    retry_after: ClassVar[int | None] = None  # an overload answer: seconds after which to try again

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Denial(enum.StrEnum):
    """Why a request or token was refused. The value is what logs, metrics and players see."""

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
    # The session API only: a refresh (or revoke) after the session's hard cap. The edge answers `expired`
    # for a token past the cap, which a player recovers from by refreshing; this one ends the session.
    SESSION_ENDED = "session_ended"
    # The user already has `[sessions] max_streams` streams alive (a new one refused), or this stream was
    # ended to admit a newer one (`on_limit = "evict_oldest"`). Not recoverable by refreshing.
    STREAM_LIMIT = "stream_limit"


class TokenDenied(GatewayError):
    """A typed refusal: `reason` for machines, `detail` for people, `values` for `verify` explanations."""

    denial = True

    def __init__(self, reason: Denial, detail: str, values: Mapping[str, object] | None = None) -> None:
        super().__init__(detail)
        self.args = (f"{reason.value}: {detail}",)
        self.reason = reason
        self.code = reason.value
        self.status = 401 if reason is Denial.MISSING else 403
        self.values: Mapping[str, object] = dict(values or {})


class Refusal(enum.StrEnum):
    """Why the session API will not start or renew a viewing session (entitlements, not tokens)."""

    UNAUTHENTICATED = "unauthenticated"
    NOT_ENTITLED = "not_entitled"
    GEO_BLOCKED = "geo_blocked"
    UNKNOWN_ASSET = "unknown_asset"


class EntitlementRefused(GatewayError):
    _STATUS: ClassVar[Mapping[Refusal, int]] = {Refusal.UNAUTHENTICATED: 401, Refusal.UNKNOWN_ASSET: 404}

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.args = (f"{reason.value}: {detail}",)
        self.reason = reason
        self.code = reason.value
        self.status = self._STATUS.get(reason, 403)


class EntitlementsUnavailable(GatewayError):
    """The entitlement webhook was slow, down or answered nonsense, and `[entitlements] on_error = "deny"`:
    the viewer may well be entitled, so this is no `not_entitled`; asking again shortly may succeed."""

    code = "entitlements_unavailable"
    status = 503
    retry_after = 5


class ClientRule(enum.StrEnum):
    """Which of a title's client-header rules refused a request (the value is the error code)."""

    REFERER = "referer_refused"
    USER_AGENT = "user_agent_refused"


class ClientRefused(GatewayError):
    """A title's `Referer` or `User-Agent` rules refused the request. Weak controls (the client chooses both
    headers): they stop casual hot-linking, not a determined client."""

    status = 403

    def __init__(self, reason: ClientRule, detail: str) -> None:
        super().__init__(detail)
        self.args = (f"{reason.value}: {detail}",)
        self.reason = reason
        self.code = reason.value


class BadRequest(GatewayError):
    """A request the API cannot read (body size, JSON, a missing field); the detail says what to send."""

    code = "bad_request"
    status = 400


class BodyTimeout(BadRequest):
    """The request body did not arrive within its deadline (a client dripping it holds nothing for long)."""

    code = "request_timeout"
    status = 408


class NoRoute(GatewayError):
    """No configured route covers the path: the gateway is never an open proxy."""

    code = "no_route"
    status = 404


class UnsupportedGrant(GatewayError, ValueError):
    """A dialect cannot carry a constraint of this grant (an IPv6 network for CloudFront, a start time for
    Cloud CDN), and its config says not to drop it: the gateway refuses rather than sign a looser credential."""

    code = "unsupported_grant"
    status = 403


class UnsupportedCookie(UnsupportedGrant):
    """A cookie cannot carry this name or value unquoted (RFC 6265 cookie-octets: no space, '"', ',', ';', '\\',
    control or non-ASCII character). Quoting would change the bytes a CDN compares, so the cookie is refused."""

    code = "unsupported_cookie"


class ConfigError(GatewayError, ValueError):
    """Unusable configuration; the message names the setting (e.g. `GATEWAY_KEYS`)."""

    code = "config_error"
    status = 500


class InternalError(GatewayError):
    """What a player is told about an unexpected exception: a request id to quote, nothing else."""

    code = "internal_error"
    status = 500


class OriginError(GatewayError):
    """The origin could not give us a usable answer."""

    code = "origin_error"
    status = 502


class OriginUnavailable(OriginError):
    code = "origin_unavailable"


class OriginTimeout(OriginError):
    code = "origin_timeout"
    status = 504


class OriginBusy(OriginError):
    """Every connection of the origin pool stayed busy for the pool wait: the gateway is at its configured
    concurrency towards the origin. Nothing is wrong with the request; a player retries it."""

    code = "origin_busy"
    status = 503
    retry_after = 1


class TooManyDownloads(GatewayError):
    """One viewer (session, else client address) already has `max_streams_per_client` segment streams open:
    a hostile or broken client cannot hold every origin connection."""

    code = "too_many_downloads"
    status = 429
    retry_after = 1


class OriginBadStatus(OriginError):
    """The origin answered an error status. A missing object (404, 410) or an unsatisfiable range (416) is
    passed on as the same status, so players see what they would see at the origin; anything else is 502."""

    code = "origin_status"
    PASSED_ON: ClassVar[frozenset[int]] = frozenset({404, 410, 416})

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.origin_status = status
        self.status = status if status in self.PASSED_ON else 502


class ManifestTooLarge(OriginError):
    code = "manifest_too_large"


class ManifestError(GatewayError, ValueError):
    """A manifest that is too large, malformed, or ambiguous to rewrite (raised by `gateway.manifests`).

    `line_no` is 1-based, or None when the problem is the document as a whole (size, header). `line` is an
    excerpt of the offending line (at most 120 characters), or None. Never raised for I/O: rewriters do none.
    The gateway only rewrites what an origin sent, so its answer says so.
    """

    code = "bad_manifest"
    status = 502
    _EXCERPT_CHARS: ClassVar[int] = 120

    line_no: int | None
    line: str | None

    def __init__(self, message: str, *, line_no: int | None = None, line: str | None = None) -> None:
        self.line_no = line_no
        self.line = None if line is None else _excerpt(line, self._EXCERPT_CHARS)
        where = "" if line_no is None else f"line {line_no}: "
        shown = "" if self.line is None else f" ({self.line!r})"
        full = f"{where}{message}{shown}"
        super().__init__(f"origin playlist refused: {full}")
        self.args = (full,)  # str(error): the problem itself, as the rewriters' tests read it


def _excerpt(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    return line[: limit - 1] + "…"
