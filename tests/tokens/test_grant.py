"""`network_around`: the one place a client address becomes the network it is bound, counted or cached as."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.tokens.grant import network_around


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.9", "203.0.113.0/24"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),  # a dual-stack socket's IPv4 client is that IPv4 client
        ("2001:db8:1:2:3::4", "2001:db8:1::/48"),
        ("::1", "::/48"),  # an IPv6 address whose integer is small is still IPv6
    ],
)
def test_the_network_around_a_client_is_its_v4_or_v6_block(address: str, network: str) -> None:
    assert network_around(ipaddress.ip_address(address), 24, 48) == ipaddress.ip_network(network)
