"""CAT renewal (`catr`, claim 323): when a token is due, how the new one is delivered (docs/dialects/cat.md).

    catr = {0: type, 1: expadd, ?2: deadline, ?3: cookie-name, ?4: header-name,
            ?5: cookie-params, ?6: header-params, ?7: code}
    type: 0 automatic (the channel the token came in on: header→header, cookie→cookie, query→redirect),
          1 cookie, 2 header, 3 redirect

A token is due when `exp - deadline <= now < exp` (deadline defaults to 60 s, as Eyevinn's). Header
renewal is sent under both names players read (`CTA-Common-Access-Token` for shaka ≥ 5.1,
`Common-Access-Token` for dash.js and older shaka) plus any catr header-name, and listed in
`Access-Control-Expose-Headers` so browsers let the player see them (the app's CORS layer merges that
list into its own answer, so a catr header-name is exposed too). Cookie renewal is one
`Set-Cookie`; redirect renewal answers `code` (default 302) with the request URL carrying the new token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from gateway.tokens.cookies import cookie_pair
from gateway.tokens.dialects.support.cat_cbor import CborValue
from gateway.tokens.dialects.support.cat_claims import malformed

STANDARD_HEADER = "CTA-Common-Access-Token"
LEGACY_HEADER = "Common-Access-Token"
HEADER_NAMES = (STANDARD_HEADER, LEGACY_HEADER)
# gateway/http/cors.py allows these request headers in preflights and always exposes them on responses.
DEFAULT_DEADLINE_SECONDS = 60
DEFAULT_REDIRECT_STATUS = 302
TYPES = {"automatic": 0, "cookie": 1, "header": 2, "redirect": 3}
Channel = Literal["header", "cookie", "query"]
_CHANNEL_TYPE = {"header": TYPES["header"], "cookie": TYPES["cookie"], "query": TYPES["redirect"]}


@dataclass(frozen=True, slots=True)
class Renewal:
    """A parsed `catr` claim."""

    type: int
    expadd_seconds: int
    deadline_seconds: int | None = None
    cookie_name: str | None = None
    header_name: str | None = None
    cookie_params: tuple[str, ...] = ()
    header_params: tuple[str, ...] = ()
    code: int | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES.values() or self.expadd_seconds <= 0:
            raise ValueError("catr needs a type 0..3 and a positive expadd")
        if self.deadline_seconds is not None and self.deadline_seconds < 0:
            raise ValueError("catr deadline must not be negative")
        if self.code is not None and not 300 <= self.code <= 399:
            raise ValueError("catr code must be a 3xx status")

    def to_cbor(self) -> dict[int | str, CborValue]:
        value: dict[int | str, CborValue] = {0: self.type, 1: self.expadd_seconds}
        optional: tuple[tuple[int, CborValue], ...] = (
            (2, self.deadline_seconds),
            (3, self.cookie_name),
            (4, self.header_name),
            (5, list(self.cookie_params) or None),
            (6, list(self.header_params) or None),
            (7, self.code),
        )
        value.update((label, item) for label, item in optional if item is not None)
        return value

    def is_due(self, expires_at: float, now: float) -> bool:
        deadline = DEFAULT_DEADLINE_SECONDS if self.deadline_seconds is None else self.deadline_seconds
        return expires_at - deadline <= now < expires_at


def parse_renewal(value: CborValue) -> Renewal:
    """The `catr` map above, type-checked; raises TokenDenied(malformed)."""
    if not isinstance(value, dict) or not set(value) <= set(range(8)):
        raise malformed("catr: a map with keys 0..7", catr=value)

    def number(label: int) -> int | None:
        item = value.get(label)
        if item is not None and (isinstance(item, bool) or not isinstance(item, int)):
            raise malformed(f"catr[{label}] is not an integer", catr=value)
        return item

    def texts(label: int) -> tuple[str, ...]:
        item = value.get(label, [])
        if isinstance(item, str):
            item = [item]
        if not isinstance(item, list) or not all(isinstance(part, str) for part in item):
            raise malformed(f"catr[{label}] is not a list of text strings", catr=value)
        return tuple(str(part) for part in item)

    for label in (3, 4):
        if label in value and not isinstance(value[label], str):
            raise malformed(f"catr[{label}] is not a text string", catr=value)
    try:
        return Renewal(
            type=number(0),  # type: ignore[arg-type]
            expadd_seconds=number(1),  # type: ignore[arg-type]
            deadline_seconds=number(2),
            cookie_name=value.get(3),  # type: ignore[arg-type]
            header_name=value.get(4),  # type: ignore[arg-type]
            cookie_params=texts(5),
            header_params=texts(6),
            code=number(7),
        )
    except (TypeError, ValueError) as exc:
        raise malformed(f"catr: {exc}", catr=value) from exc


@dataclass(frozen=True, slots=True)
class RenewalResult:
    """A renewed token and what the response must carry to deliver it.

    status:  200 (serve the object, with the headers) or the redirect status (serve nothing else)
    headers: response headers, in order; `Set-Cookie` and `Location` included when used
    """

    token: str
    expires_at: int
    status: int
    headers: tuple[tuple[str, str], ...]
    delivered_by: Literal["header", "cookie", "redirect"]


def deliver(
    renewal: Renewal,
    token: str,
    *,
    expires_at: int,
    channel: Channel,
    request_url: str,
    query_param: str,
    token_params: tuple[str, ...],
) -> RenewalResult:
    """Response status and headers that hand `token` to the client per `catr` (docs/dialects/cat.md, "Renewal")."""
    kind = _CHANNEL_TYPE[channel] if renewal.type == TYPES["automatic"] else renewal.type
    if kind == TYPES["header"]:
        value = "; ".join((token, *renewal.header_params))
        names = list(HEADER_NAMES)
        if renewal.header_name and renewal.header_name.lower() not in (n.lower() for n in names):
            names.append(renewal.header_name)
        headers = [(name, value) for name in names]
        headers.append(("Access-Control-Expose-Headers", ", ".join(names)))
        return RenewalResult(token, expires_at, 200, tuple(headers), "header")
    if kind == TYPES["cookie"]:
        cookie = "; ".join((cookie_pair(renewal.cookie_name or STANDARD_HEADER, token), *renewal.cookie_params))
        return RenewalResult(token, expires_at, 200, (("Set-Cookie", cookie),), "cookie")
    location = _with_token(urlsplit(request_url), token, query_param, token_params)
    status = renewal.code or DEFAULT_REDIRECT_STATUS
    return RenewalResult(token, expires_at, status, (("Location", location),), "redirect")


def _with_token(parts: SplitResult, token: str, query_param: str, token_params: tuple[str, ...]) -> str:
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in token_params]
    kept.append(f"{query_param}={quote(token, safe='')}")
    return urlunsplit(parts._replace(query="&".join(kept)))


def find_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of `names` present in `headers`, matched case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return next((lowered[name.lower()] for name in names if name.lower() in lowered), None)
