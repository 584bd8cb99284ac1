"""The client address (README "Edge and origin behaviour"): the TCP peer, unless the peer is a configured
trusted proxy; then the right-most forwarded address that is not a trusted proxy (uvicorn's
`--forwarded-allow-ips` walk).

The rule is pure (`rightmost_untrusted` over parsed hops) and one scope function (`client_address`)
serves every caller: sessions, IP binding, dialect edges, denial logs.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.http.dialect_edge import edge_request
from gateway.http.request_facts import (
    MAX_FORWARDED_CHARS,
    ProxyTrust,
    client_address,
    hops_from_right,
    parse_node,
    rightmost_untrusted,
)
from gateway.tokens.grant import IPAddress

LB = ProxyTrust(networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48")))
LB_RFC = ProxyTrust(networks=LB.networks, header="forwarded")
KEY = "k1:" + "A" * 43


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def scope(peer: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 41000) if peer is not None else None,
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
    }


def xff(value: str) -> tuple[str, str]:
    return ("x-forwarded-for", value)


def fwd(value: str) -> tuple[str, str]:
    return ("forwarded", value)


# --- a client reaching the gateway directly cannot choose its address ---------------------------------


@pytest.mark.parametrize("trust", [ProxyTrust(), LB, LB_RFC])
def test_a_direct_client_cannot_choose_its_address(trust: ProxyTrust) -> None:
    forged = scope("198.51.100.7", xff("203.0.113.66"), fwd("for=203.0.113.66"), ("x-real-ip", "203.0.113.66"))
    assert client_address(forged, trust) == ip("198.51.100.7")


def test_the_default_trusts_nobody_not_even_loopback() -> None:
    assert client_address(scope("127.0.0.1", xff("203.0.113.66")), ProxyTrust()) == ip("127.0.0.1")


def test_no_peer_or_a_peer_that_is_not_an_address_is_unknown() -> None:
    assert client_address(scope(None, xff("203.0.113.66")), LB) is None  # e.g. a unix socket
    assert client_address(scope("testclient", xff("203.0.113.66")), LB) is None


# --- behind trusted proxies: the right-most address that is not a trusted proxy -----------------------


def test_behind_nginx_a_forged_leftmost_entry_changes_nothing() -> None:
    # nginx `$proxy_add_x_forwarded_for`: the client's own header, then the address nginx saw.
    assert client_address(scope("10.0.0.2", xff("203.0.113.66, 198.51.100.7")), LB) == ip("198.51.100.7")
    assert client_address(scope("10.0.0.2", xff("198.51.100.7")), LB) == ip("198.51.100.7")


def test_a_chain_of_trusted_proxies_is_walked_right_to_left() -> None:
    chain = xff("203.0.113.66, 198.51.100.7, 10.1.1.1, 2001:db8:ffff::5")
    assert client_address(scope("10.0.0.2", chain), LB) == ip("198.51.100.7")


def test_every_header_instance_counts_in_order() -> None:
    two = scope("10.0.0.2", xff("203.0.113.66"), ("x-other", "x"), xff("198.51.100.7, 10.1.1.1"))
    assert client_address(two, LB) == ip("198.51.100.7")
    trusted_tail = scope("10.0.0.2", xff("198.51.100.7"), xff("10.1.1.1"))
    assert client_address(trusted_tail, LB) == ip("198.51.100.7")


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert client_address(scope("10.0.0.2"), LB) == ip("10.0.0.2")
    assert client_address(scope("10.0.0.2", fwd("for=198.51.100.7")), LB) == ip("10.0.0.2")  # not our header


def test_when_every_hop_is_trusted_the_furthest_one_is_the_client() -> None:
    assert client_address(scope("10.0.0.2", xff("10.9.9.9, 10.1.1.1")), LB) == ip("10.9.9.9")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.7, garbage, 10.1.1.1", "10.1.1.1"),  # stops at the last trusted hop it reached
        ("198.51.100.7, unknown", "10.0.0.2"),
        ("198.51.100.7, _hidden", "10.0.0.2"),
        ("198.51.100.7, 1.2.3.4.5", "10.0.0.2"),
        ("198.51.100.7, 010.0.0.1", "10.0.0.2"),  # leading zeros: octal to some parsers, refused here
        ("198.51.100.7, fe80::1%eth0", "10.0.0.2"),  # a scope id means nothing across hosts
        ("198.51.100.7, [2001:db8::1", "10.0.0.2"),
        ("198.51.100.7, 198.51.100.8:http", "10.0.0.2"),
        ("garbage, 198.51.100.7", "198.51.100.7"),  # left of the client: never read
        ("198.51.100.7, , ", "198.51.100.7"),  # empty list elements are no entries (RFC 9110 lists)
    ],
)
def test_a_malformed_entry_stops_the_walk_at_the_last_trusted_hop(header: str, expected: str) -> None:
    assert client_address(scope("10.0.0.2", xff(header)), LB) == ip(expected)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("198.51.100.7:5555", "198.51.100.7"),
        ("2001:db8:1::7", "2001:db8:1::7"),
        ("[2001:db8:1::7]", "2001:db8:1::7"),
        ("[2001:db8:1::7]:4711", "2001:db8:1::7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped IPv6 is the IPv4 address
        ("[::ffff:198.51.100.7]:80", "198.51.100.7"),
    ],
)
def test_node_forms(entry: str, expected: str) -> None:
    assert parse_node(entry) == ip(expected)
    assert client_address(scope("10.0.0.2", xff(entry)), LB) == ip(expected)


@pytest.mark.parametrize("entry", ["", "unknown", "_hidden", "localhost", "[]", "1.2.3.4:", "1.2.3.4:99999", "[::1]x"])
def test_unusable_nodes(entry: str) -> None:
    assert parse_node(entry) is None


def test_ipv4_mapped_peers_are_matched_as_ipv4() -> None:
    assert client_address(scope("::ffff:10.0.0.2", xff("198.51.100.7")), LB) == ip("198.51.100.7")
    assert client_address(scope("::ffff:198.51.100.9", xff("203.0.113.66")), LB) == ip("198.51.100.9")
    mapped_hop = scope("10.0.0.2", xff("198.51.100.7, ::ffff:10.1.1.1"))
    assert client_address(mapped_hop, LB) == ip("198.51.100.7")


# --- RFC 7239 Forwarded --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([fwd('for=198.51.100.7;proto=https;by=10.0.0.2, for="[2001:db8:ffff::9]:4711"')], "198.51.100.7"),
        ([fwd('for="[2001:db8:cafe::17]:4711"')], "2001:db8:cafe::17"),
        ([fwd('for="[2001:db8:cafe::17]"')], "2001:db8:cafe::17"),
        ([fwd('For="198.51.100.7:4711"')], "198.51.100.7"),  # parameter names are case-insensitive
        ([fwd("for=203.0.113.66"), fwd("for=198.51.100.7")], "198.51.100.7"),
        ([fwd("for=203.0.113.66, for=198.51.100.7 ,for=10.1.1.1")], "198.51.100.7"),
        ([fwd('for="_gazonk"')], "10.0.0.2"),  # obfuscated: not an address, the walk stops
        ([fwd("for=unknown")], "10.0.0.2"),
        ([fwd("for=198.51.100.7, for=unknown")], "10.0.0.2"),  # left of `unknown` is the client's own text
        ([fwd("for=198.51.100.7, proto=https")], "10.0.0.2"),  # an element without `for`
        ([fwd("for=198.51.100.7, for=[2001:db8::1]")], "10.0.0.2"),  # IPv6 must be quoted
        ([fwd('for=198.51.100.7, for="198.51.100.8')], "10.0.0.2"),  # unterminated quote
        ([fwd("for=198.51.100.7, for=10.1.1.1;for=10.1.1.2")], "10.0.0.2"),  # `for` twice in one element
        ([fwd('for="_a,b", for=198.51.100.7')], "198.51.100.7"),  # a comma inside quotes is no separator
        ([fwd('for=203.0.113.66;x="a\\"b", for=198.51.100.7')], "198.51.100.7"),  # escaped quote
        ([fwd('for="broken'), fwd("for=198.51.100.7")], "198.51.100.7"),  # instances are parsed apart
        ([fwd("@@@ junk;;=x, for=198.51.100.7")], "198.51.100.7"),  # a junk element left of the client: unread
        ([fwd("for=203.0.113.66;;proto=http;, for=198.51.100.7")], "198.51.100.7"),  # empty pairs are allowed
    ],
)
def test_rfc7239_forwarded(headers: list[tuple[str, str]], expected: str) -> None:
    assert client_address(scope("10.0.0.2", *headers), LB_RFC) == ip(expected)


def test_only_the_configured_header_is_read() -> None:
    # A proxy maintains one header; any other one reaching the gateway is the client's to write.
    both = scope("10.0.0.2", xff("203.0.113.66"), fwd("for=198.51.100.7"))
    assert client_address(both, LB_RFC) == ip("198.51.100.7")
    assert client_address(both, LB) == ip("203.0.113.66")


def test_hops_come_newest_first() -> None:
    hops = list(hops_from_right(["198.51.100.7, junk", "10.1.1.1,"], rfc7239=False))
    assert hops == [ip("10.1.1.1"), None, ip("198.51.100.7")]
    assert list(hops_from_right(['for=198.51.100.7, for="_x"'], rfc7239=True)) == [None, ip("198.51.100.7")]


def test_the_walk_never_parses_left_of_the_client() -> None:
    # A client behind a permissive proxy controls the length of what precedes its real address.
    huge = "203.0.113.66, " * 200_000 + "198.51.100.7"
    hops = hops_from_right([huge], rfc7239=False)
    assert next(hops) == ip("198.51.100.7")  # lazily: nothing else was split or parsed
    assert client_address(scope("10.0.0.2", xff(huge)), LB) == ip("198.51.100.7")


def test_an_oversized_rfc7239_line_is_read_from_its_tail_only() -> None:
    long_trusted = "for=10.1.1.1, " * (MAX_FORWARDED_CHARS // 10)
    hops = list(hops_from_right([long_trusted + "for=10.2.2.2"], rfc7239=True))
    assert hops[0] == ip("10.2.2.2") and hops[-1] is None and len(hops) < MAX_FORWARDED_CHARS // 10
    forged = "for=203.0.113.66, " * 2000 + "for=198.51.100.7"
    assert client_address(scope("10.0.0.2", fwd(forged)), LB_RFC) == ip("198.51.100.7")
    # Past the window every hop was trusted: what was cut off is unreadable, the walk stops at the last hop.
    assert client_address(scope("10.0.0.2", fwd("for=198.51.100.7, " + long_trusted + "for=10.2.2.2")), LB_RFC) == ip(
        "10.1.1.1"
    )
    assert client_address(scope("10.0.0.2", fwd('for="' + "x" * MAX_FORWARDED_CHARS + '"')), LB_RFC) == ip("10.0.0.2")


def test_the_pure_rule() -> None:
    peer = ip("10.0.0.2")  # hops newest first
    assert rightmost_untrusted(peer, [ip("10.1.1.1"), ip("198.51.100.7")], LB) == ip("198.51.100.7")
    assert rightmost_untrusted(peer, [ip("10.1.1.1"), None, ip("198.51.100.7")], LB) == ip("10.1.1.1")
    assert rightmost_untrusted(peer, [], LB) == peer


# --- properties -----------------------------------------------------------------------------------------

PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def _plain_outside(address: IPAddress) -> bool:
    """Not a trusted proxy, and written the way the gateway reports it (no IPv4-mapped form)."""
    mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
    return not LB.trusts(address) and not mapped


OUTSIDE = st.ip_addresses().filter(_plain_outside)
PROXIES = st.lists(st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="2001:db8:ffff::/48"), max_size=4)


def _rfc_node(address: IPAddress) -> str:
    return f"for={address}" if address.version == 4 else f'for="[{address}]"'


@given(real=OUTSIDE, client_text=PRINTABLE, proxies=PROXIES, last=st.ip_addresses(network="10.0.0.0/8"))
def test_whatever_the_client_writes_behind_appending_proxies_the_client_is_its_real_address(
    real: IPAddress, client_text: str, proxies: list[IPAddress], last: IPAddress
) -> None:
    """Client -> P1 -> ... -> Pk -> gateway, each proxy appending its peer (nginx's `$proxy_add_x_forwarded_for`)."""
    hops = [real, *proxies]  # P1 appends the client, P2 appends P1, …; the peer is the last proxy
    value = ", ".join(([client_text] if client_text else []) + [str(h) for h in hops])
    assert client_address(scope(str(last), xff(value)), LB) == real


@given(real=OUTSIDE, client_text=PRINTABLE, proxies=PROXIES, last=st.ip_addresses(network="10.0.0.0/8"))
def test_rfc7239_the_client_gets_its_real_address_or_a_trusted_hop_never_one_it_chose(
    real: IPAddress, client_text: str, proxies: list[IPAddress], last: IPAddress
) -> None:
    # Written into the same header line, a client's unbalanced quote can swallow what the proxies append:
    # then the element is malformed and the walk stops at a trusted hop. It never yields the client's pick.
    value = ", ".join(([client_text] if client_text else []) + [_rfc_node(h) for h in [real, *proxies]])
    found = client_address(scope(str(last), fwd(value)), LB_RFC)
    assert found == real or (found is not None and LB.trusts(found))


@given(real=OUTSIDE, forged=st.lists(st.ip_addresses(), max_size=3), proxies=PROXIES)
def test_rfc7239_well_formed_client_elements_change_nothing(
    real: IPAddress, forged: list[IPAddress], proxies: list[IPAddress]
) -> None:
    value = ", ".join(_rfc_node(h) for h in [*forged, real, *proxies])
    assert client_address(scope("10.0.0.2", fwd(value)), LB_RFC) == real


@given(peer=OUTSIDE, text=PRINTABLE, rfc=st.booleans())
def test_an_untrusted_peer_is_the_client_whatever_the_headers(peer: IPAddress, text: str, rfc: bool) -> None:
    trust = LB_RFC if rfc else LB
    assert client_address(scope(str(peer), (trust.header, text)), trust) == peer


# --- configuration ----------------------------------------------------------------------------------------


def config(tmp_path: Path, gateway_table: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(f'[gateway]\n{gateway_table}\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:1/"\n')
    return path


def test_trusted_proxies_from_file_and_environment(tmp_path: Path) -> None:
    path = config(tmp_path, 'trusted_proxies = ["10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1"]')
    settings = load_settings(path, {"GATEWAY_KEYS": KEY})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8:ffff::/48"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    assert settings.client_ip_header == "x-forwarded-for"  # the default header, read only from those proxies
    assert settings.proxy_trust.trusts(ip("10.2.3.4")) and not settings.proxy_trust.trusts(ip("11.0.0.1"))
    env = load_settings(path, {"GATEWAY_KEYS": KEY, "GATEWAY_TRUSTED_PROXIES": "192.0.2.0/24, ::ffff:10.0.0.0/104"})
    assert env.trusted_proxies == (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("10.0.0.0/8"))
    assert load_settings(None, {"GATEWAY_KEYS": KEY, "GATEWAY_ORIGIN": "http://127.0.0.1:1/"}).trusted_proxies == ()


@pytest.mark.parametrize(
    ("table", "env", "named"),
    [
        ('trusted_proxies = ["10.0.0.0/33"]', {}, "trusted_proxies"),
        ('trusted_proxies = ["10.0.0.1/8"]', {}, "trusted_proxies"),  # host bits: a typo, not a network
        ('trusted_proxies = "10.0.0.0/8"', {}, "trusted_proxies"),  # a list, not a string
        ('trusted_proxies = ["nginx"]', {}, "trusted_proxies"),
        ("", {"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8,bogus"}, "GATEWAY_TRUSTED_PROXIES"),
        ('client_ip_header = "x-forwarded-for"', {}, "client_ip_header"),  # read from nobody: say so
        ('trusted_proxies = ["10.0.0.0/8"]\nclient_ip_header = "x forwarded"', {}, "client_ip_header"),
    ],
)
def test_bad_trust_settings_fail_at_start_up_naming_the_setting(
    tmp_path: Path, table: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(config(tmp_path, table), {"GATEWAY_KEYS": KEY, **env})


def test_forwarded_header_setting(tmp_path: Path) -> None:
    path = config(tmp_path, 'trusted_proxies = ["10.0.0.0/8"]\nclient_ip_header = "Forwarded"')
    trust = load_settings(path, {"GATEWAY_KEYS": KEY}).proxy_trust
    assert trust.header == "forwarded" and trust.rfc7239
    assert client_address(scope("10.0.0.2", fwd('for="[2001:db8::7]"')), trust) == ip("2001:db8::7")


def test_the_dialect_edge_sees_the_same_client(tmp_path: Path) -> None:
    trust = load_settings(config(tmp_path, 'trusted_proxies = ["10.0.0.0/8"]'), {"GATEWAY_KEYS": KEY}).proxy_trust
    forged = scope("198.51.100.7", xff("203.0.113.66"), ("host", "gw.test"))
    forged.update(query_string=b"", scheme="http", method="GET")
    assert edge_request(forged, b"/vod/x.m3u8", trust).client_ip == ip("198.51.100.7")
    proxied = scope("10.0.0.2", xff("203.0.113.66, 198.51.100.7"), ("host", "gw.test"))
    proxied.update(query_string=b"", scheme="http", method="GET")
    assert edge_request(proxied, b"/vod/x.m3u8", trust).client_ip == ip("198.51.100.7")
