"""Edge-side helpers shared by the CDN dialects: reading a request, time/IP/path checks, building Grants.

Conventions every CDN dialect follows:
- The request path is normalised with `gateway.tokens.acl.normalise_path` *before* any pattern is matched, so
  `..`, `%2e%2e`, `%2f`, `//` and friends are refused as `acl` whatever the token says.
- A security parameter that appears twice (query pollution) is `malformed`, never "first one wins".
- Base64 signatures must be canonical (re-encoding gives the same text), so no two spellings verify.
- A verified token is reported as a `Grant`. A Grant holds directory prefixes only: patterns of the form
  `<dir>/*` become `<dir>/`; a token for one exact URL (or a glob such as `*.ts`) is reported as the
  request path itself plus '/', which covers nothing else that exists: a verified grant is never wider
  than its token, so re-signing from it can only fail closed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from gateway.errors import Denial, TokenDenied
from gateway.errors import UnsupportedGrant as UnsupportedGrant  # re-exported: the dialects raise edge.UnsupportedGrant
from gateway.tokens.acl import SEGMENT_SAFE, CheckedPath, canonical_prefix, normalise_path
from gateway.tokens.dialects.base import Credentials
from gateway.tokens.grant import Grant, IPAddress, IPNetwork
from gateway.tokens.validity import check_window as check_window  # re-exported: the dialects call edge.check_window

MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True, slots=True)
class RequestUrl:
    """An absolute request URL in its raw (as received) parts."""

    scheme: str
    netloc: str
    raw_path: str
    raw_query: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def pairs(self) -> list[tuple[str, str]]:
        """Raw `name=value` pairs of the query (not percent-decoded)."""
        if not self.raw_query:
            return []
        return [(item.partition("=")[0], item.partition("=")[2]) for item in self.raw_query.split("&")]

    def without(self, names: Iterable[str]) -> str:
        """The URL as sent, minus the named query parameters (and minus '?' if nothing is left)."""
        drop = set(names)
        kept = [item for item in self.raw_query.split("&") if item and item.partition("=")[0] not in drop]
        return self.origin + self.raw_path + ("?" + "&".join(kept) if kept else "")


def parse_request_url(url: str) -> RequestUrl:
    if len(url) > MAX_TOKEN_CHARS * 2:
        raise TokenDenied(Denial.MALFORMED, "request URL too long", {"length": len(url)})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TokenDenied(Denial.MALFORMED, "request URL is not absolute http(s)", {"url": url[:200]})
    return RequestUrl(parts.scheme, parts.netloc, parts.path or "/", parts.query)


def single_param(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    """The raw value of query parameter `name`; None if absent; malformed if repeated."""
    values = [value for key, value in pairs if key == name]
    if len(values) > 1:
        raise TokenDenied(Denial.MALFORMED, f"query parameter {name} appears {len(values)} times", {"field": name})
    if values and len(values[0]) > MAX_TOKEN_CHARS:
        raise TokenDenied(Denial.MALFORMED, f"{name} longer than {MAX_TOKEN_CHARS}", {"field": name})
    return values[0] if values else None


def check_path(raw_path: str) -> CheckedPath:
    """Normalise the raw request path (raises TokenDenied(acl) on traversal tricks and on raw non-ASCII,
    which a request line carries percent-encoded)."""
    if not raw_path.isascii():
        raise TokenDenied(Denial.ACL, "path has raw non-ASCII characters (unencoded)", {"path": raw_path[:99]})
    return normalise_path(raw_path)


def parse_epoch(field: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 10 or (len(value) > 1 and value[0] == "0"):
        raise TokenDenied(Denial.MALFORMED, f"{field} is not epoch seconds: {value[:40]!r}", {"field": field})
    return int(value)


def check_client(networks: Sequence[IPNetwork], client_ip: IPAddress | None) -> IPNetwork | None:
    """The client must be inside one of `networks` (IPv4-mapped IPv6 clients match IPv4 networks).

    Returns the network that admitted it (None when the token names none): a Grant holds one network, and
    the one the client is in is the narrowest truthful summary of a token naming several.
    """
    if not networks:
        return None
    if client_ip is not None:
        mapped = getattr(client_ip, "ipv4_mapped", None)
        for network in networks:
            if client_ip.version == network.version and client_ip in network:
                return network
            if mapped is not None and mapped in network:
                return network
    shown = ", ".join(str(network) for network in networks)
    raise TokenDenied(
        Denial.IP,
        f"client {client_ip} is outside the token's network {shown}",
        {"client_ip": str(client_ip), "network": shown},
    )


def glob_match(pattern: str, text: str, *, single: str | None = "?") -> bool:
    """`*` = any run of characters (including '/'), `single` = exactly one; linear-time, no regex."""
    return _glob(pattern, text, "*", single)


def _glob(pattern: Sequence[str], text: str, any_run: str, single: str | None) -> bool:
    p = t = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == any_run:
            star_p, star_t = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == text[t] or (single is not None and pattern[p] == single)):
            p += 1
            t += 1
        elif star_p >= 0:
            p, star_t = star_p + 1, star_t + 1
            t = star_t
        else:
            return False
    while p < len(pattern) and pattern[p] == any_run:
        p += 1
    return p == len(pattern)


# -- path patterns (Akamai ACLs, CloudFront resources) ---------------------------------------------------
# Signed in the canonical percent-encoding (the bytes the viewer's request carries, since the gateway writes
# every URL in that encoding); matched against the decoded, normalised path, so that '%7E' and '~', or
# '%c3%a9' and '%C3%A9', name the same file whichever spelling the signer or the player used.

ANY_RUN, ONE_CHAR = "*\x00", "?\x00"  # wildcard atoms: two characters, never equal to one path character
_WILDCARDS = re.compile(r"([*?])")
_ENCODED_SLASH = re.compile(r"(%2[Ff])")
_UNSIGNABLE = re.compile(r"[\x00-\x20\x7f\\\"]|%2[Ff]")


def escape_chars(encoded: str, chars: str) -> str:
    """Percent-encode each of the ASCII `chars` in an already encoded path (a dialect's own delimiters)."""
    return "".join(f"%{ord(char):02X}" if char in chars else char for char in encoded) if chars else encoded


def encode_glob(pattern: str, *, escape: str = "") -> str:
    """A custom resource pattern in the bytes a CDN compares: '*' and '?' stay wildcards, every literal run
    is read (its escapes decoded: '/caf%C3%A9/*' and '/café/*' are one pattern) and written in the canonical
    path encoding, `escape` characters percent-encoded as well. Raw spaces are encoded; control characters,
    backslashes, quotes and an encoded '/' are refused (UnsupportedGrant)."""
    out: list[str] = []
    for part in _WILDCARDS.split(pattern):
        if part in ("*", "?"):
            out.append(part)
            continue
        try:
            literal = unquote(part, errors="strict")
        except UnicodeDecodeError:
            raise UnsupportedGrant(f"resource {pattern[:200]!r} has escapes that are not UTF-8") from None
        if _UNSIGNABLE.search(literal.replace(" ", "")) or _ENCODED_SLASH.search(part):
            raise UnsupportedGrant(
                f"resource {pattern[:200]!r} has a control character, quote, backslash or encoded '/'"
            )
        out.append(escape_chars(quote(literal, safe="/" + SEGMENT_SAFE.replace("*", "")), escape))
    return "".join(out)


def decoded_glob(pattern: str) -> tuple[str, ...]:
    """A signed pattern as atoms to match against a decoded path: `ANY_RUN` for '*', `ONE_CHAR` for '?', and
    each character of the literal runs once their escapes are decoded. An escape no decoded path can hold
    ('%2F', bytes that are not UTF-8) stays as its characters, which never match."""
    atoms: list[str] = []
    for part in _WILDCARDS.split(pattern):
        if part in ("*", "?"):
            atoms.append(ANY_RUN if part == "*" else ONE_CHAR)
            continue
        for piece in _ENCODED_SLASH.split(part):
            try:
                atoms.extend(piece if _ENCODED_SLASH.fullmatch(piece) else unquote(piece, errors="strict"))
            except UnicodeDecodeError:
                atoms.extend(piece)
    return tuple(atoms)


def decoded_glob_match(atoms: Sequence[str], checked: CheckedPath) -> bool:
    return _glob(atoms, checked.decoded, ANY_RUN, ONE_CHAR)


def decoded_glob_prefix(atoms: Sequence[str]) -> str | None:
    """'/vod/t/' for the atoms of '/vod/t/*' when that is a canonical grant prefix; None otherwise."""
    literal = atoms[:-1]
    if not atoms or atoms[-1] != ANY_RUN or ANY_RUN in literal or ONE_CHAR in literal:
        return None
    try:
        return canonical_prefix("".join(literal))
    except ValueError:
        return None


def encoded_prefix(prefix: str, *, escape: str = "") -> str:
    """The canonical percent-encoded form of a grant prefix (what a CDN compares against the URL), with the
    `escape` characters (a dialect's delimiters) percent-encoded too."""
    return escape_chars(normalise_path(quote(prefix, safe="/")).encoded, escape)


def decoded_dir_prefix(encoded_path: str) -> str | None:
    """'/vod/a%20b/' -> '/vod/a b/' when it is a canonical grant prefix; None otherwise."""
    try:
        checked = normalise_path(encoded_path)
        if checked.encoded != encoded_path:
            return None
        return canonical_prefix(checked.decoded)
    except (TokenDenied, ValueError):
        return None


def grant_prefixes(expressible: Sequence[str], checked: CheckedPath) -> tuple[str, ...]:
    """The token's directory prefixes; the request itself as a prefix when the token is narrower than that."""
    covering = tuple(dict.fromkeys(expressible))
    if any(checked.decoded.startswith(prefix) for prefix in covering):
        return covering
    exact = checked.decoded if checked.decoded.endswith("/") else checked.decoded + "/"
    try:
        canonical_prefix(exact)
    except (TokenDenied, ValueError):
        raise TokenDenied(Denial.ACL, "verified path cannot be represented as a grant", {"path": exact}) from None
    return (*covering, exact)


def make_grant(**fields: object) -> Grant:
    """`Grant(**fields)`, with a validation failure reported as a malformed token."""
    try:
        return Grant(**fields)  # type: ignore[arg-type]
    except ValueError as exc:
        raise TokenDenied(Denial.MALFORMED, f"token claims are not a valid grant: {exc}") from exc


def parse_network(field: str, value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise TokenDenied(Denial.MALFORMED, f"{field} is not an IP network: {value[:60]!r}", {"field": field}) from None


def b64_decode_canonical(field: str, text: str, *, alphabet: str = "url", padded: bool | None = None) -> bytes:
    """Decode base64 (`url`: '-_' alphabet; `std`: '+/') refusing non-canonical spellings.

    `padded`: True requires '=' padding, False forbids it, None accepts either (still canonical bits).
    """
    body = text.rstrip("=")
    pad = len(text) - len(body)
    chars = "A-Za-z0-9_-" if alphabet == "url" else "A-Za-z0-9+/"
    if not re.fullmatch(f"[{chars}]*", body) or len(body) % 4 == 1 or pad > 2:
        raise TokenDenied(Denial.MALFORMED, f"{field} is not base64", {"field": field})
    if (padded is True and pad != -len(body) % 4) or (padded is False and pad) or (pad and pad != -len(body) % 4):
        raise TokenDenied(Denial.MALFORMED, f"{field} has wrong base64 padding", {"field": field})
    try:
        std = body.replace("-", "+").replace("_", "/") if alphabet == "url" else body
        raw = base64.b64decode(std + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise TokenDenied(Denial.MALFORMED, f"{field} is not base64", {"field": field}) from None
    again = base64.b64encode(raw).decode().rstrip("=")
    if alphabet == "url":
        again = again.replace("+", "-").replace("/", "_")
    if again != body:
        raise TokenDenied(Denial.MALFORMED, f"{field} is not canonical base64", {"field": field})
    return raw


def missing(what: str) -> TokenDenied:
    return TokenDenied(Denial.MISSING, f"no {what} in the request", {"field": what})


def url_in_grant(grant: Grant, url: str) -> CheckedPath:
    """Check that an absolute URL (or path) to sign lies under the grant; ValueError otherwise."""
    path = urlsplit(url).path if "://" in url else url.partition("?")[0]
    try:
        checked = normalise_path(path or "/")
    except TokenDenied as exc:
        raise ValueError(f"URL to sign has an unusable path: {exc.detail}") from None
    if not grant.covers(checked.decoded):
        raise ValueError(f"URL path {checked.decoded} is outside the grant's prefixes {grant.path_prefixes}")
    return checked


def with_query(url: str, pairs: Sequence[tuple[str, str]], *, ready: bool = False) -> str:
    """Append `name=value` pairs to a URL with '?' or '&', encoded exactly as `Credentials.query_string`."""
    return url + ("&" if "?" in url else "?") + Credentials(query=tuple(pairs), query_ready=ready).query_string()


def bindable_network(
    grant: Grant, *, dialect: str, ip_binding: str, ipv4_only: bool = False, single_host: bool = False
) -> IPNetwork | None:
    """The grant's client network as the dialect can carry it; dropped if `ip_binding = "best-effort"`."""
    network = grant.client_network
    if network is None:
        return None
    problem = ""
    if ipv4_only and network.version != 4:
        problem = "the dialect binds IPv4 networks only"
    elif single_host and network.num_addresses != 1:
        problem = "the dialect binds a single address only"
    if not problem:
        return network
    if ip_binding == "best-effort":
        return None
    raise UnsupportedGrant(
        f"{dialect}: cannot bind the token to {network}: {problem} "
        '(set ip_binding = "best-effort" to sign without the IP binding)'
    )


def bindable_not_before(grant: Grant, *, dialect: str, not_before_binding: str) -> None:
    """For dialects with no start time: refuse a grant with `not_before` unless told to drop it."""
    if grant.not_before and not_before_binding != "best-effort":
        raise UnsupportedGrant(
            f"{dialect}: the dialect has no start time; cannot carry not_before={grant.not_before} "
            '(set not_before_binding = "best-effort" to sign without it)'
        )
