"""Reading what the edge needs from a raw ASGI scope, cheaply (no Starlette accessors on the hot path)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config_schema import DeltaUpdates
from gateway.tokens.grant import IPAddress, IPNetwork


def split_token(query_string: bytes, param: str) -> tuple[str | None, str]:
    """(the first value of `param`, the query without any `param`) from a raw query string.

    What goes to the origin is decided separately, by an allow-list (`upstream_query`).
    """
    if not query_string:
        return None, ""
    text = query_string.decode("latin-1")
    if f"{param}=" not in text:
        return None, text
    token: str | None = None
    kept: list[str] = []
    prefix = param + "="
    for pair in text.split("&"):
        if pair.startswith(prefix):
            if token is None:
                token = pair[len(prefix) :]
        elif pair:
            kept.append(pair)
    return token, "&".join(kept)


def drop_query_param(query: str, name: str) -> str:
    """The query without any `name` or `name=…` pair (other pairs keep their bytes and order)."""
    if name not in query:
        return query
    prefix = name + "="
    return "&".join(pair for pair in query.split("&") if pair != name and not pair.startswith(prefix))


def split_query(query: str, names: tuple[str, ...]) -> tuple[str, str]:
    """(the query without any pair named in `names`, those pairs): both raw, each keeping its order.

    A dialect edge forwards the first to the origin and writes the second (its credential, exactly as
    the viewer presented it) onto the URIs of the playlists it serves.
    """
    if not query or not names:
        return query, ""
    kept: list[str] = []
    taken: list[str] = []
    for pair in query.split("&"):
        if pair:
            (taken if pair.partition("=")[0] in names else kept).append(pair)
    return "&".join(kept), "&".join(taken)


# --- what goes upstream (README "Edge and origin behaviour") -------------------------------------------

LL_HLS_PARAMS = ("_HLS_msn", "_HLS_part", "_HLS_skip")  # blocking reload and delta update directives


def upstream_params(
    forward_query: Iterable[str], *, delta_updates: DeltaUpdates, token_params: Iterable[str]
) -> frozenset[str]:
    """The query parameter names a route sends to its origin: the LL-HLS directives (`_HLS_skip` only
    while delta updates pass through) and the route's `forward_query`; never a token parameter."""
    allowed = set(LL_HLS_PARAMS if delta_updates is DeltaUpdates.PASS else LL_HLS_PARAMS[:2]) | set(forward_query)
    return frozenset(allowed - set(token_params))


def upstream_query(query: str, allowed: frozenset[str]) -> str:
    """The pairs of a raw query string whose name is in `allowed`, with the client's bytes and order.

    Names are compared as sent (no percent-decoding, case-sensitive), the way the origin will read them;
    LL-HLS origins need the directives exactly as the player sent them. Everything else — junk, cache
    busters, every token system's parameters — never reaches the origin or the manifest cache key.
    """
    if not query:
        return ""
    return "&".join(pair for pair in query.split("&") if pair.partition("=")[0] in allowed)


# --- the client address (README "Edge and origin behaviour") -------------------------------------------
#
# The TCP peer is the client, unless the peer is a configured trusted proxy: then the forwarded header that
# proxy maintains is walked from the right (the newest hop) to the left, and the client is the first
# address that is not a trusted proxy (uvicorn's `--forwarded-allow-ips` walk). Everything left of that
# address was written by the client and is never read. A hop that is not a usable address (garbage,
# RFC 7239 `unknown` or an obfuscated `_name`, a malformed element) ends the walk at the last trusted hop
# reached: looking past it would read text the client chose, and answering None would leave a session
# unbound. Only the configured header is read: a proxy maintains one, any other reaching us is the client's.

_OWS = " \t"
MAX_FORWARDED_CHARS = 8192  # of one RFC 7239 header line, read from the right (nginx's header line limit)
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")  # RFC 7239 node-port: a number or an obfuscated port
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')  # RFC 9110 quoted-string (backslash escapes)
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class ProxyTrust:
    """Which TCP peers may say who the client is, and in which header (lower case)."""

    networks: tuple[IPNetwork, ...] = ()
    header: str = "x-forwarded-for"  # "forwarded" is read as RFC 7239; any other as a comma-separated list

    @property
    def rfc7239(self) -> bool:
        return self.header == "forwarded"

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _normalised(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) is the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalised_network(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as IPv4 (`10.0.0.0/8`): addresses are matched
    after the same normalisation, so a mapped network would match nothing."""
    mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    if mapped is None or network.prefixlen < 96:
        return network
    return ipaddress.IPv4Network((mapped, network.prefixlen - 96))


def _address(text: str) -> IPAddress | None:
    if "%" in text:  # a scope id (fe80::1%eth0) names an interface of some other host: meaningless here
        return None
    try:
        return _normalised(ipaddress.ip_address(text))
    except ValueError:
        return None


def _port_ok(port: str) -> bool:
    return _PORT.fullmatch(port) is not None and (port[0] == "_" or int(port) <= 65535)


def parse_node(text: str) -> IPAddress | None:
    """One forwarded hop: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]`, `[v6]:port`; None for anything else
    (`unknown`, an obfuscated `_name`, host names, garbage)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _port_ok(rest[1:]))):
            return None
        return _address(host) if ":" in host else None  # brackets hold IPv6 only
    if text.count(":") == 1:  # IPv4 with a port (an IPv6 address has at least two colons)
        host, _, port = text.partition(":")
        return _address(host) if "." in host and _port_ok(port) else None
    return _address(text)


def _resync(value: str, index: int) -> int:
    """After a syntax error: the next comma outside a quoted string (or the end).

    A client's unbalanced quote flips which commas count for the rest of the line, so the commas the
    proxies appended are then all inside quotes: the rest is one malformed element, and the walk stops
    at a trusted hop rather than reading an element the client shaped.
    """
    quoted = False
    while index < len(value):
        char = value[index]
        if quoted and char == "\\":
            index += 1
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return index
        index += 1
    return index


def _pair_value(value: str, index: int) -> tuple[str, int] | None:
    """A token or a quoted-string (unescaped) at `index`, and where it ends; None if neither is there."""
    quoted = _QUOTED.match(value, index)
    if quoted is not None:
        return _ESCAPE.sub(r"\1", quoted.group(1)), quoted.end()
    token = _TOKEN.match(value, index)
    return (token.group(), token.end()) if token is not None else None


def _element(value: str, index: int) -> tuple[dict[str, str] | None, int]:
    """One RFC 7239 forwarded-element from `index`: its pairs (None if malformed) and where it stopped."""
    pairs: dict[str, str] = {}
    end = len(value)
    while True:
        while index < end and value[index] in _OWS + ";":  # empty pairs (`;;`) are allowed
            index += 1
        if index >= end or value[index] == ",":
            return pairs, index
        name = _TOKEN.match(value, index)
        if name is None or value[name.end() : name.end() + 1] != "=":
            return None, index
        parsed = _pair_value(value, name.end() + 1)
        key = name.group().lower()
        if parsed is None or key in pairs:  # each parameter at most once per element
            return None, index
        pairs[key], index = parsed
        while index < end and value[index] in _OWS:
            index += 1
        if index < end and value[index] not in ";,":
            return None, index


def _forwarded_for(value: str) -> list[str | None]:
    """RFC 7239: each element's `for` value, in order; None for an element without one or malformed."""
    found: list[str | None] = []
    index = 0
    while index < len(value):
        pairs, index = _element(value, index)
        if pairs is None:
            found.append(None)
            index = _resync(value, index)
        elif pairs:  # an empty list element is no entry
            found.append(pairs.get("for"))
        index += 1  # past the comma
    return found


def hops_from_right(values: Sequence[str], *, rfc7239: bool) -> Iterator[IPAddress | None]:
    """The hops in the header instances `values`, newest (right-most) first; None = not an address.

    Lazy, so the walk never parses what lies left of the client (text the client wrote, of any length).
    Instances are parsed one by one, so a malformed instance cannot swallow the next one.
    """
    for value in reversed(values):
        if rfc7239:
            # Quoted strings make RFC 7239 parse left to right; bound the work to the line's tail, starting
            # after a comma. Cutting inside a client's quoted string can only make the proxies' part
            # malformed (a stop at a trusted hop), and what was cut off counts as unreadable.
            truncated = len(value) > MAX_FORWARDED_CHARS
            if truncated:
                cut = value.find(",", len(value) - MAX_FORWARDED_CHARS)
                value = value[cut + 1 :] if cut >= 0 else ""
            for node in reversed(_forwarded_for(value)):
                yield None if node is None else parse_node(node)
            if truncated:
                yield None  # what was cut off is unreadable: the walk stops here at the latest
            continue
        end = len(value)
        while True:  # comma-separated, right to left; empty list elements are no entries (RFC 9110 5.6.1)
            comma = value.rfind(",", 0, end)
            part = value[comma + 1 : end].strip(_OWS)
            if part:
                yield parse_node(part)
            if comma < 0:
                break
            end = comma


def rightmost_untrusted(peer: IPAddress, hops: Iterable[IPAddress | None], trust: ProxyTrust) -> IPAddress:
    """The pure rule, for a trusted `peer` and its `hops` newest first: the first untrusted address; an
    unusable hop ends the walk at the last trusted one; when every hop is trusted, the furthest."""
    client = peer
    for hop in hops:
        if hop is None:
            return client
        client = hop
        if not trust.trusts(hop):
            return hop
    return client


def peer_address(scope: Mapping[str, Any]) -> IPAddress | None:
    """The TCP peer's IP (None when it is not an IP address: a unix socket, a test client)."""
    client = scope.get("client")
    return _address(str(client[0])) if client else None


def client_address(scope: Mapping[str, Any], trust: ProxyTrust) -> IPAddress | None:
    """The client's IP for every purpose (sessions, IP binding, dialect edges, logs): the TCP peer, or,
    when the peer is a trusted proxy, the right-most forwarded address that is not a trusted proxy.

    None when the peer is not an IP address (a unix socket, a test client).
    """
    peer = peer_address(scope)
    if peer is None or not trust.networks or not trust.trusts(peer):
        return peer  # the common case: one parse, no header is looked at
    name = trust.header.encode("latin-1")
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]
    return rightmost_untrusted(peer, hops_from_right(values, rfc7239=trust.rfc7239), trust)


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def token_fingerprint(token: str) -> str:
    """What logs show instead of a token (a bearer credential): 8 hex chars of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]
