"""CAT claim labels, their well-formedness rules, and the request matchers (catu, cath, catnip).

Labels are the IANA-registered ones (CWT Claims registry). Three private-use labels (< -65536, RFC 8392 §9.1)
carry what a `Grant` holds and CAT does not: the session id, the token scope and the session's hard end.
URI components are CTA-5007's (0 scheme, 1 host, 2 port, 3 path, 4 query, 5 parent path, 6 filename, 7 stem,
8 extension; stem and extension split at the last dot); so are the match types (0 exact, 1 prefix,
2 suffix, 3 contains, 4 regex, -1 sha256, -2 sha512-256; sha512-256 is
the real FIPS SHA-512/256; sha256 accepts a bstr or, as Eyevinn emits, hex text); regex is an
unanchored search, run only on tokens whose MAC or signature has already been checked.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult

from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects.support.cat_cbor import TAG_IPV4, TAG_IPV6, CborValue, Tagged
from gateway.tokens.grant import IPAddress, IPNetwork

ISS, SUB, AUD, EXP, NBF, IAT, CTI, CNF = 1, 2, 3, 4, 5, 6, 7, 8
CRIT = 45  # provisional: used by Akamai, not yet registered with IANA
CATREPLAY, CATPOR, CATV, CATNIP, CATU, CATM, CATALPN, CATH = 308, 309, 310, 311, 312, 313, 314, 315
CATGEOISO3166, CATGEOCOORD, CATGEOALT, CATTPK, CATIFDATA, CATDPOP, CATIF, CATR = (
    316,
    317,
    318,
    319,
    320,
    321,
    322,
    323,
)
CATTPRINT = 324
GW_SESSION_ID, GW_SCOPE, GW_SESSION_ENDS_AT = -65537, -65538, -65539
UNDERSTOOD = frozenset(
    {ISS, SUB, AUD, EXP, NBF, IAT, CTI, CRIT, CATREPLAY, CATV, CATNIP, CATU, CATM, CATH, CATGEOISO3166, CATR}
    | {CATTPRINT, GW_SESSION_ID, GW_SCOPE, GW_SESSION_ENDS_AT}
)
URI_COMPONENTS = {0: "scheme", 1: "host", 2: "port", 3: "path", 4: "query", 5: "parent-path", 6: "filename"}
URI_COMPONENTS |= {7: "stem", 8: "extension"}
EXACT, PREFIX, SUFFIX, CONTAINS, REGEX, SHA256, SHA512_256 = 0, 1, 2, 3, 4, -1, -2
Claims = dict[int | str, CborValue]


def claim_list(claims: Claims, label: int) -> list[CborValue]:
    value = claims.get(label)
    return value if isinstance(value, list) else []


def claim_map(claims: Claims, label: int) -> dict[int | str, CborValue]:
    value = claims.get(label)
    return value if isinstance(value, dict) else {}


def malformed(detail: str, **values: object) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, detail, values)


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_match(match: object, where: str) -> tuple[int, CborValue]:
    """A match map has exactly one (type, value) entry of the right shape."""
    if not isinstance(match, dict) or len(match) != 1:
        raise malformed(f"{where}: a match is a map with exactly one entry")
    ((kind, value),) = match.items()
    if kind in (EXACT, PREFIX, SUFFIX, CONTAINS):
        ok = isinstance(value, str)
    elif kind == REGEX:
        ok = isinstance(value, list) and bool(value) and isinstance(value[0], str)
        ok = ok and isinstance(value, list) and all(item is None or isinstance(item, str) for item in value[1:])
    elif kind in (SHA256, SHA512_256):
        ok = (isinstance(value, bytes) and len(value) == 32) or (
            isinstance(value, str) and re.fullmatch("[0-9a-fA-F]{64}", value) is not None
        )
    else:
        raise malformed(f"{where}: unknown match type {kind!r}")
    if not ok:
        raise malformed(f"{where}: bad value for match type {kind}", value=value)
    return int(kind), value


def _check_ip(entry: object) -> None:
    if isinstance(entry, int) and not isinstance(entry, bool) and 0 <= entry < 2**32:
        return
    if isinstance(entry, Tagged) and entry.tag in (TAG_IPV4, TAG_IPV6):
        catnip_network(entry)
        return
    raise malformed("catnip: entries are ASNs or RFC 9164 tag 52/54 addresses", entry=entry)


def check_well_formed(claims: Claims) -> None:
    """Type-check every claim we act on or have a policy for (verification step 4); `cat_policy` judges crit."""
    shapes: dict[int, Any] = {
        ISS: lambda v: isinstance(v, str),
        SUB: lambda v: isinstance(v, str),
        AUD: lambda v: isinstance(v, str) or (_is_text_list(v) and v),
        EXP: _is_number,
        NBF: _is_number,
        IAT: _is_number,
        CTI: lambda v: isinstance(v, bytes) and 0 < len(v) <= 64,
        CATREPLAY: lambda v: v in (0, 1, 2) and not isinstance(v, bool),
        CATV: lambda v: v == 1 and not isinstance(v, bool),
        CATNIP: lambda v: isinstance(v, list) and bool(v),
        CATU: lambda v: isinstance(v, dict),
        CATM: _is_text_list,
        CATH: lambda v: isinstance(v, dict),
        CATGEOISO3166: _is_text_list,
        CATR: lambda v: isinstance(v, dict),
        CATIF: lambda v: isinstance(v, dict),
        CATIFDATA: lambda v: isinstance(v, str) or _is_text_list(v),
        CATDPOP: lambda v: isinstance(v, dict),
        CRIT: lambda v: isinstance(v, list) and all(isinstance(i, int | str) for i in v),
        GW_SESSION_ID: lambda v: isinstance(v, str),
        GW_SCOPE: lambda v: v in ("playlist", "media"),
        GW_SESSION_ENDS_AT: lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**32,
    }
    for label, shape in shapes.items():
        if label in claims and not shape(claims[label]):
            raise malformed(f"claim {label} is not well formed", claim=label, value=claims[label])
    for entry in claim_list(claims, CATNIP):
        _check_ip(entry)
    for component, match in claim_map(claims, CATU).items():
        if component not in URI_COMPONENTS:
            raise malformed(f"catu: unknown URI component {component!r}")
        check_match(match, f"catu[{component}]")
    for name, match in claim_map(claims, CATH).items():
        if not isinstance(name, str):
            raise malformed("cath: header names are text strings")
        check_match(match, f"cath[{name}]")


def matches(match: CborValue, value: str) -> bool:
    kind, expected = check_match(match, "match")
    if kind == EXACT:
        return value == expected
    if kind == PREFIX:
        return value.startswith(str(expected))
    if kind == SUFFIX:
        return value.endswith(str(expected))
    if kind == CONTAINS:
        return str(expected) in value
    if kind == REGEX:
        assert isinstance(expected, list)
        try:
            return re.search(str(expected[0]), value) is not None
        except re.error as exc:
            raise malformed(f"regex match: {exc}") from exc
    digest = hashlib.sha256 if kind == SHA256 else (lambda data: hashlib.new("sha512_256", data))
    want = expected if isinstance(expected, bytes) else bytes.fromhex(str(expected))
    return hmac.compare_digest(digest(value.encode("utf-8")).digest(), want)


def uri_components(parts: SplitResult, canonical_path: str, token_params: tuple[str, ...]) -> dict[int, str]:
    """The catu components of a request URL (labels above), the token's own query parameters removed."""
    filename = canonical_path.rsplit("/", 1)[-1]
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""
    query = "&".join(p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in token_params)
    return {
        0: parts.scheme.lower(),
        1: (parts.hostname or "").lower(),
        2: str(parts.port) if parts.port is not None else "",
        3: canonical_path,
        4: query,
        5: canonical_path.rsplit("/", 1)[0],
        6: filename,
        7: stem,
        8: f".{extension}" if dot else "",
    }


def catnip_network(entry: Tagged) -> IPNetwork:
    """RFC 9164: `52(h'addr')`, `52([len, h'prefix'])` (trailing zero bytes optional); 54 likewise."""
    width = 4 if entry.tag == TAG_IPV4 else 16
    value = entry.value
    if isinstance(value, bytes) and len(value) == width:
        length, address = width * 8, value
    elif isinstance(value, list) and len(value) == 2 and isinstance(value[1], bytes):
        length_value, address = value[0], value[1]
        if not isinstance(length_value, int) or isinstance(length_value, bool) or not 0 <= length_value <= width * 8:
            raise malformed("catnip: bad prefix length", entry=entry)
        length = length_value
        if len(address) > width:
            raise malformed("catnip: address longer than the family allows", entry=entry)
    else:
        raise malformed("catnip: bad RFC 9164 address", entry=entry)
    try:
        return ipaddress.ip_network((address.ljust(width, b"\0"), length), strict=True)
    except ValueError as exc:
        raise malformed(f"catnip: {exc}", entry=entry) from exc


def encode_catnip(network: IPNetwork, *, full_bytes: bool) -> Tagged:
    """Tag 52/54 for a network; a single address uses the plain bstr form."""
    tag = TAG_IPV4 if network.version == 4 else TAG_IPV6
    packed = network.network_address.packed
    if network.prefixlen == network.max_prefixlen:
        return Tagged(tag, packed)
    # RFC 9164 drops trailing zero bytes; Eyevinn's decoder (and CloudFront deployments) need all of them.
    return Tagged(tag, [network.prefixlen, packed if full_bytes else packed.rstrip(b"\0")])


def client_in_catnip(entries: list[CborValue], client: IPAddress | None) -> bool:
    """Any IP entry containing the client (an IPv4-mapped IPv6 client is also tried as IPv4).

    ASN entries need an ASN database, which we do not have: they never match."""
    if client is None:
        return False
    mapped = getattr(client, "ipv4_mapped", None)
    networks = [catnip_network(entry) for entry in entries if isinstance(entry, Tagged)]
    return any(client in net or (mapped is not None and mapped in net) for net in networks)


def headers_match(cath: Mapping[int | str, CborValue], headers: Mapping[str, str]) -> str | None:
    """The first cath header that is absent or does not match, else None."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, match in cath.items():
        value = lowered.get(str(name).lower())
        if value is None or not matches(match, value):
            return str(name)
    return None
