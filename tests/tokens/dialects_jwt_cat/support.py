"""Shared test data for the JWT and CAT dialects: throwaway keys, grant strategies, the Eyevinn oracle."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import canonical_prefix
from gateway.tokens.dialects.cat import CatDialect, from_config
from gateway.tokens.grant import Grant, IPNetwork

# The throwaway RSA-2048 key of fixtures/dialects/keys/appendix-a-rsa2048.pem (made for tests; protects nothing).
RSA_PRIVATE_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDKMLK7WdMLVkpe
187p+qKVh6Oo5Z0eDqGZmBXIMRAOsEB04Zwgzy0kNXbTRF1Hw5RnaVmkz8D64hy6
U2M/NECCht2KgAr2OldkTFEKhW8+srL000xQV62gklXatm/Kkvm8blXuHNv/gIas
Bkw6N+rn9Wpv9BQV9Grw709zpvT+iP8yFe+aHz2c0JckB9sEQSk7fH2wkPYH+kYp
VY7ZacRb7RYbkpNYaFGbTfuQPAyBnZMQMMoUl10rHNRfC+3aWB+LsDJW8oO2aW+P
1Dvp+u5eR9s3O4Bx8/uN8+avDmRZAu0mMVSRGRQClFkQ63oeRijCiUqgjnMguGeu
rO6Uvd+XAgMBAAECggEANLrBigmxd+XvrE9k13F1YEDJBj2nnZScQWW/3H8rHGGL
1c+Wu5m8QJKu5AcSuqn/dH6tkcVaozM/4bnoiq2yWzgX48xjz3ZEn1Ql2HQXIIdT
E3VdlCBhmBxBxrHIctCkz6cIwvoEx9v5gzh7Pb2ihg7jTMIfUOB22VHX6yXyA8U4
wYUWedQWoWlp8/TWScvhDELbnx0cHPZbrCaTbXjvGI7NKVKjr84c7JW+W5GBnbug
e6qpAEqP8ON7DHnPmN3D4XwGJRzSiVTcrjBFmBa7kNW8H9QC5olEtoMRPuN1dRo+
OZ6YEGkGpFD9j5AXDOAAuN2pJ3Fg0ZqZeUpFFGvugQKBgQDxyVKV5vgrie8z6szn
OWpvqqF+AyO54SJlxe7kfIKpJQa3W0Q3wWp9aQwDvw9CVR6rR7iIC5qjtwaX5XaA
uPcs0tLgGlbEk+8/wa52HS+dYQJYguWFa287EP7ilvIGV0QtUN1KC2ySwqf0W6/V
1/rWdO8RnZPtpInJ6rbFCPO8FwKBgQDWE3ytAJqc86Cy4S0y2yevNNDYY9msfLij
L+y6C1siSrHzWwivvuV+TQOEa5owEw8gl005GfELodLwqdSiGwuEKCGuCT+ktfgd
pqLBCfuWu/3z6o/68T86EcqUMVLUjQgs0wRRHUgqRCFbsLURfRsuGk+yxoDsp71s
wD5KsouogQKBgEogKo2CbfsLIqaMCZ2p4JOzgCcd10oZV25ULFUoRvaMP27fMB7X
0Un5dpF/dbIkXm6sYkpzJEmkxwSyeI4mJsE7MSM7b/Z8VBD70/yqHfrlzs5L8wng
Ug2NvFbDaBfBkUlDTVRyBCtKOiuUIGgy+tfcqZ6A7OUiWIvqxXXKtM6pAoGAGLYF
JT81mbpxqVRe0EkF6q6REPltrgBzm7qze8JF0c6HfgzbEtZZTVv8dPOqx7PbgiqU
6mt5LJuQauFfvxqaGLY9NQayRwQOUPXkQZ4yYXLv3JEN76ybXMui87pB0nE5KVtu
WyKjKuXUZ+4c6JjlY0v8OSm6xhaSwhPq3NqBToECgYBIwfWYZdj2hHb3zeguww8N
Yoh5decfcXQ+QRj7LRNJKRc9etbg33VK71sQtb4NiBHmGzHdz8RaRm2U87HmtsSC
VAYgJwv9gJlVkrZFg98wWxptJsGEPfnZUaHBn6qbUy0vyKBu2GPx0qHBeyb/YWfC
hqu0NFFCNuDS5rG5ugygIA==
-----END PRIVATE KEY-----
"""
RSA_PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyjCyu1nTC1ZKXtfO6fqi
lYejqOWdHg6hmZgVyDEQDrBAdOGcIM8tJDV200RdR8OUZ2lZpM/A+uIculNjPzRA
gobdioAK9jpXZExRCoVvPrKy9NNMUFetoJJV2rZvypL5vG5V7hzb/4CGrAZMOjfq
5/Vqb/QUFfRq8O9Pc6b0/oj/MhXvmh89nNCXJAfbBEEpO3x9sJD2B/pGKVWO2WnE
W+0WG5KTWGhRm037kDwMgZ2TEDDKFJddKxzUXwvt2lgfi7AyVvKDtmlvj9Q76fru
XkfbNzuAcfP7jfPmrw5kWQLtJjFUkRkUApRZEOt6HkYowolKoI5zILhnrqzulL3f
lwIDAQAB
-----END PUBLIC KEY-----
"""
EC_P256_PRIVATE_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6m95VfR4leJsslyx
mAB8i0d8/tTOj0i2DyLlMnvq7kahRANCAARydcc6HkoqlNomUHFJpwCzG+Ffc5uo
t5wLO9py2kSoBYeGOzp+ITdv/bbWaSzmqhG6dGxmCbm0fj4gtcIJhUmj
-----END PRIVATE KEY-----
"""
_loaded = load_pem_private_key(RSA_PRIVATE_PEM.encode("ascii"), None)  # loaded once: 50 ms per load
assert isinstance(_loaded, rsa.RSAPrivateKey)
RSA_KEY: rsa.RSAPrivateKey = _loaded
RSA_PUBLIC_KEY = RSA_KEY.public_key()
# RFC 8392 A.2.3 "Symmetric256", also used by the Eyevinn and Akamai samples.
CAT_KEY_HEX = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"
NOW = 1_800_000_000
# The worked example's token (claims in `doc_grant`, iat 1767225600, cti 0123…cdef), MACed with that key.
DOC_TOKEN = (
    "2D3RhEOhAQWhBExTeW1tZXRyaWMyNTZYjqoBb2dhdGV3YXkuZXhhbXBsZQJpdXNlci0xMjM0BBp3NZQABRppVbkABhppVbkAB1ABI0Vni"
    "avN7wEjRWeJq83vGQE2ARkBOKMAoQBlaHR0cHMBoQBvY2RuLmV4YW1wbGUuY29tA6EBbC92b2QvbW92aWUxLxkBOYJjR0VUZEhFQUQZAU"
    "OjAAABGHgCGDxYICWYS0TsU0WymWQjRgQxYTcu_b1TopyMWNv-yZA8jd94"
)


def cat_dialect(**table: Any) -> CatDialect:
    config: dict[str, Any] = {
        "issuer": "gateway.example",
        "scheme": "https",
        "host": "cdn.example.com",
        "renewal": {"type": "automatic", "expadd_seconds": 120, "deadline_seconds": 60},
        "keys": [{"kid": "Symmetric256", "secret": CAT_KEY_HEX}],
    }
    config.update(table)
    return from_config(config, base_dir=Path())


def cat_grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {"path_prefixes": ("/vod/movie1/",), "expires_at": NOW + 600}
    fields.update(changes)
    return Grant(**fields)


def doc_grant() -> Grant:
    return cat_grant(expires_at=2000000000, not_before=1767225600, user_id="user-1234")


def denial(call: Any) -> Denial:
    """The reason a call is refused with (the call must raise TokenDenied)."""
    try:
        call()
    except TokenDenied as refused:
        return refused.reason
    raise AssertionError("expected TokenDenied")


def _is_prefix(path: str) -> bool:
    try:
        canonical_prefix(path)
    except ValueError:
        return False
    return True


SEGMENT_ALPHABET = "abcXYZ0189-._~!$&'()*+,=:@éü漢"
segments = st.text(SEGMENT_ALPHABET, min_size=1, max_size=12)
prefixes = st.lists(segments, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts) + "/")
prefixes = prefixes.filter(_is_prefix)


@st.composite
def _any_networks(draw: st.DrawFn) -> IPNetwork:
    if draw(st.booleans()):
        address: Any = draw(st.ip_addresses(v=4))
        length = draw(st.integers(8, 32))
    else:
        address = draw(st.ip_addresses(v=6))
        length = draw(st.integers(16, 128))
    return ipaddress.ip_network((address, length), strict=False)


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# IPv4-mapped clients have their own tests; random networks stay clear of them (and their wrap-arounds).
networks = _any_networks().filter(lambda net: net.version == 4 or not net.overlaps(_MAPPED))


@st.composite
def grants(
    draw: st.DrawFn, prefix: st.SearchStrategy[str] = prefixes, network: bool = True, user: bool = True
) -> Grant:
    expires_at = draw(st.integers(NOW + 1, NOW + 10**7))
    return Grant(
        path_prefixes=(draw(prefix),),
        expires_at=expires_at,
        not_before=draw(st.none() | st.integers(NOW - 10**6, NOW)),
        client_network=draw(st.none() | networks) if network else None,
        user_id=draw(st.none() | st.text("abcdefghijk-_0123456789ÄÖ", min_size=1, max_size=20)) if user else None,
    )


def inside(network: IPNetwork | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address inside `network` (the last one), or None."""
    return None if network is None else network.broadcast_address


def outside(network: IPNetwork) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of the same family outside `network` (the network must not be the whole space)."""
    if network.prefixlen == 0:
        raise ValueError("no address is outside ::/0")
    flipped = int(network.network_address) ^ (1 << (network.max_prefixlen - network.prefixlen))
    return ipaddress.ip_address(flipped) if network.version == 4 else ipaddress.IPv6Address(flipped)


class EyevinnOracle:
    """The `cat_oracle.mjs` side-car: batches of cases in, results out, over one node process."""

    def __init__(self, process: subprocess.Popen[str], stderr: IO[str]) -> None:
        self.process = process
        self.stderr = stderr

    def run(self, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cases": cases}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise RuntimeError(f"cat_oracle.mjs died: {self.stderr.read()[-2000:]}")
        results: list[dict[str, Any]] = json.loads(line)["results"]
        return results

    def one(self, **case: Any) -> dict[str, Any]:
        return self.run([case])[0]
