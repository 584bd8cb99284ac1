"""Cookies on the wire (RFC 6265 §4.1): the one `Set-Cookie` writer and the one `Cookie` header reader.

Every vendor's cookie is unquoted: a CDN reads the bytes after the first '=' up to ';' as the value, so
Akamai's `hdnts=exp=…~acl=/vod/t/*~hmac=…`, `Cloud-CDN-Cookie=URLPrefix=…:Signature=…=`, Media CDN's
`Edge-Cache-Cookie` and CloudFront's `CloudFront-*` go out exactly as the vendor's reference writes them.
(Python's `SimpleCookie` wraps any value holding '=' or '/' in double quotes, which the CDN then takes as part
of the value, and refuses the token.) A value that is not an RFC 6265 cookie-octet string (a space, '"', ',',
';', '\\', a control or a non-ASCII character) is refused with `UnsupportedCookie`, never quoted or escaped:
no CDN would undo either.

Reading is as lenient as browsers and CDNs are: pairs split on ';', a value may hold '=' and '/', and a value
in double quotes (what the old writer, and SimpleCookie-based clients, produced) loses the quotes — harmless,
since '"' can never be part of a valid value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import UnsupportedCookie

# cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a cookie name
_ATTRIBUTE_VALUE = re.compile(r"[\x20-\x3A\x3C-\x7E]*")  # any CHAR but CTLs and ';' (Path, Domain)
_CONTROL = re.compile(r"[\x00-\x08\x0A-\x1F\x7F]")  # what makes a browser ignore a whole Set-Cookie (RFC 6265bis)
SAME_SITE = ("Strict", "Lax", "None")


def _first_bad(text: str, allowed: re.Pattern[str]) -> str:
    """How an error names the first character `allowed` refuses (its position and code point)."""
    position = allowed.match(text)
    at = position.end() if position else 0
    return f"{text[at]!r} (U+{ord(text[at]):04X}) at {at}"


def cookie_pair(name: str, value: str) -> str:
    """`name=value` for a `Cookie`/`Set-Cookie` header, byte for byte; UnsupportedCookie if it cannot be one."""
    if not _TOKEN.fullmatch(name):
        raise UnsupportedCookie(f"cookie name {name[:64]!r} is not an RFC 6265 token")
    if not _COOKIE_OCTETS.fullmatch(value):
        raise UnsupportedCookie(
            f"cookie {name}: the value has {_first_bad(value, _COOKIE_OCTETS)}, which a cookie cannot carry"
            " unquoted (RFC 6265 cookie-octet: no space, '\"', ',', ';', '\\', control or non-ASCII character)"
        )
    return f"{name}={value}"


@dataclass(frozen=True, slots=True)
class Cookie:
    """A cookie to set, checked on construction: a dialect that cannot put its value in a cookie fails at
    signing (UnsupportedCookie), never later at the edge that refuses what arrives."""

    name: str
    value: str
    path: str = "/"
    domain: str | None = None
    expires_at: int | None = None
    http_only: bool = True
    secure: bool = True
    same_site: str = "Lax"
    partitioned: bool = False  # CHIPS: keyed to the top-level site (a player embedded on another site)

    def __post_init__(self) -> None:
        cookie_pair(self.name, self.value)
        for label, text in (("Path", self.path), ("Domain", self.domain or "")):
            if not _ATTRIBUTE_VALUE.fullmatch(text):
                raise UnsupportedCookie(f"cookie {self.name}: {label} has {_first_bad(text, _ATTRIBUTE_VALUE)}")
        if self.same_site not in SAME_SITE:
            raise UnsupportedCookie(f"cookie {self.name}: SameSite must be one of {', '.join(SAME_SITE)}")

    def set_cookie(self, *, now: float) -> str:
        """The `Set-Cookie` header value; `Max-Age` counts from `now` to `expires_at` (0: delete it)."""
        parts = [cookie_pair(self.name, self.value), f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.expires_at is not None:
            parts.append(f"Max-Age={max(0, int(self.expires_at - now))}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={self.same_site}")
        if self.partitioned:
            parts.append("Partitioned")
        return "; ".join(parts)


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_cookie_header(header: str) -> dict[str, str]:
    """A request's `Cookie` header as {name: value}. A repeated name keeps its first value (browsers list the
    most specific path first); pairs without '=' or with an empty name are skipped, never fatal to the rest."""
    found: dict[str, str] = {}
    for pair in header.split(";"):
        name, equals, value = pair.partition("=")
        name = name.strip()
        if equals and name and name not in found:
            found[name] = _unquoted(value.strip())
    return found


@dataclass(frozen=True, slots=True)
class SetCookie:
    """What a browser keeps of one `Set-Cookie` header: the pair and its attributes (names lower-cased)."""

    name: str
    value: str
    attributes: dict[str, str]


def parse_set_cookie(header: str) -> SetCookie | None:
    """One `Set-Cookie` header value as a browser reads it (RFC 6265 §5.2); None when it sets nothing."""
    pair, *attributes = header.split(";")
    name, equals, value = pair.partition("=")
    if not equals or not name.strip() or _CONTROL.search(pair):
        return None
    kept: dict[str, str] = {}
    for attribute in attributes:
        key, _, attribute_value = attribute.partition("=")
        kept[key.strip().lower()] = attribute_value.strip()
    return SetCookie(name.strip(), _unquoted(value.strip()), kept)
