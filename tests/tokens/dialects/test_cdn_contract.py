"""One contract, every CDN dialect form: round trip, tamper, expiry, outside the prefix, wrong IP, rotation.

Each case names what its dialect can express; the test then expects the exact denial the edge gives.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects import (
    DIALECT_MODULES,
    akamai,
    cloud_cdn,
    cloudfront,
    load_dialect,
    media_cdn,
    media_cdn_dualtoken,
    nginx_secure_link,
)
from gateway.tokens.dialects.base import Credentials, EdgeRequest
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant
from gateway.tokens.grant import Grant
from tests.tokens.dialects.dialect_helpers import HOST, NOW, RSA_PEM, edge_request, grants, networks, rich_segments

Factory = Callable[[str], Any]  # key slot ("old" | "new" | "both") -> dialect


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


EC_OLD, EC_NEW = _ec_pem(), _ec_pem()
SECRETS = {"old": bytes(range(32)), "new": bytes(range(32, 64))}


def _slots(slot: str) -> list[str]:
    return ["new", "old"] if slot == "both" else [slot]


def cloudfront_case(**table: Any) -> Factory:
    def build(slot: str) -> Any:
        pems = {"old": EC_OLD, "new": EC_NEW}
        if table.get("hash_algorithm") == "SHA256" or "rsa" in table:
            pems = {"old": RSA_PEM.read_text(), "new": EC_NEW}
        keys = [{"id": f"K{name.upper()}", "private_key": pems[name]} for name in _slots(slot)]
        settings_ = {k: v for k, v in table.items() if k != "rsa"}
        return cloudfront.from_config({"base_url": HOST, "keys": keys, **settings_}, base_dir=Path())

    return build


def akamai_case(**table: Any) -> Factory:
    def build(slot: str) -> Any:
        names = _slots(slot)
        keys = {"key": SECRETS[names[0]].hex()} | ({"transition_key": SECRETS["old"].hex()} if slot == "both" else {})
        return akamai.from_config({**keys, **table}, base_dir=Path())

    return build


def google_case(module: Any, **table: Any) -> Factory:
    field = "secret" if module is cloud_cdn else "private_key"

    def build(slot: str) -> Any:
        keys = [
            {"name": name, field: _b64(SECRETS[name][: 16 if module is cloud_cdn else 32])} for name in _slots(slot)
        ]
        return module.from_config({"base_url": HOST, "keys": keys, **table}, base_dir=Path())

    return build


def dual_case(algorithm: str, **table: Any) -> Factory:
    field = "private_key" if algorithm == "ed25519" else "secret"

    def build(slot: str) -> Any:
        keys = [{"name": name, field: _b64(SECRETS[name])} for name in _slots(slot)]
        return media_cdn_dualtoken.from_config({"algorithm": algorithm, "keys": keys, **table}, base_dir=Path())

    return build


def nginx_case(**table: Any) -> Factory:
    return lambda slot: nginx_secure_link.from_config({"secret": f"secret-{slot}", **table}, base_dir=Path())


@dataclass(frozen=True)
class Case:
    id: str
    build: Factory
    prefix_checked: bool = True  # a path outside the prefix -> acl (else the URL is signed: bad_signature)
    ip: str = "none"  # "checked" -> ip; "hashed" -> bad_signature; "none" -> cannot bind (UnsupportedGrant)
    ipv6: bool = False
    not_before: bool = False
    ids: bool = False
    rotation: Denial | None = None  # what a verifier without the old key says (None: no rotation)
    rich_paths: bool = True


CASES = [
    Case("cloudfront-custom-query", cloudfront_case(), ip="checked", not_before=True, rotation=Denial.UNKNOWN_KEY),
    Case(
        "cloudfront-custom-cookie-sha256",
        cloudfront_case(delivery="cookie", hash_algorithm="SHA256"),
        ip="checked",
        not_before=True,
        rotation=Denial.UNKNOWN_KEY,
    ),
    Case(
        "cloudfront-canned",
        cloudfront_case(policy="canned", rsa=True),
        prefix_checked=False,
        rotation=Denial.UNKNOWN_KEY,
    ),
    Case(
        "akamai-acl-query",
        akamai_case(),
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
        rich_paths=False,
    ),
    Case(
        "akamai-acl-cookie-sha1",
        akamai_case(delivery="cookie", algorithm="sha1", token_name="hdnts"),
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
        rich_paths=False,
    ),
    Case(
        "akamai-url-header-escaped",
        akamai_case(token_type="url", delivery="header", escape_early=True, salt="pepper"),
        prefix_checked=False,
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
    ),
    Case("cloud_cdn-url_prefix", google_case(cloud_cdn), rotation=Denial.UNKNOWN_KEY),
    Case("cloud_cdn-cookie", google_case(cloud_cdn, form="cookie"), rotation=Denial.UNKNOWN_KEY),
    Case("cloud_cdn-url", google_case(cloud_cdn, form="url"), prefix_checked=False, rotation=Denial.UNKNOWN_KEY),
    Case("media_cdn-url_prefix", google_case(media_cdn), rotation=Denial.UNKNOWN_KEY),
    Case("media_cdn-cookie", google_case(media_cdn, form="cookie"), rotation=Denial.UNKNOWN_KEY),
    Case("media_cdn-url", google_case(media_cdn, form="url"), prefix_checked=False, rotation=Denial.UNKNOWN_KEY),
    Case("media_cdn-path", google_case(media_cdn, form="path"), prefix_checked=False, rotation=Denial.UNKNOWN_KEY),
    Case(
        "dualtoken-ed25519-globs",
        dual_case("ed25519"),
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
    ),
    Case(
        "dualtoken-sha256-urlprefix-cookie",
        dual_case("sha256", path_field="url_prefix", base_url=HOST, delivery="cookie"),
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
    ),
    Case(
        "dualtoken-sha1-fullpath",
        dual_case("sha1", path_field="full_path"),
        prefix_checked=False,
        ip="checked",
        ipv6=True,
        not_before=True,
        ids=True,
        rotation=Denial.BAD_SIGNATURE,
    ),
    Case("nginx-uri", nginx_case(), prefix_checked=False),
    Case(
        "nginx-uri-remote_addr",
        nginx_case(expression="{expires}{uri}{remote_addr} {secret}"),
        prefix_checked=False,
        ip="hashed",
    ),
    Case("nginx-prefix", nginx_case(expression="{expires}{prefix} {secret}"), prefix_checked=False),
]
BY_ID = {case.id: case for case in CASES}
BUILT: dict[tuple[str, str], Any] = {}
PREFIX = "/vod/title-9000/"
URL = HOST + PREFIX + "seg-1.ts"
CLIENT = ipaddress.ip_address("203.0.113.7")


def dialect(case: Case, slot: str = "old") -> Any:
    if (case.id, slot) not in BUILT:
        BUILT[case.id, slot] = case.build(slot)
    return BUILT[case.id, slot]


def base_grant(case: Case, **changes: Any) -> Grant:
    network = ipaddress.ip_network("203.0.113.7/32" if case.ip == "hashed" else "203.0.113.0/24")
    fields: dict[str, Any] = {"path_prefixes": (PREFIX,), "expires_at": NOW + 600}
    if case.ip != "none":
        fields["client_network"] = (
            network if case.ip == "hashed" or "akamai" not in case.id else ipaddress.ip_network(CLIENT)
        )
    if case.not_before:
        fields["not_before"] = NOW - 600
    return Grant(**(fields | changes))


def verify(case: Case, request: EdgeRequest, now: float = NOW, slot: str = "old") -> Grant:
    return dialect(case, slot).verify(request, now=now)  # type: ignore[no-any-return]


def denial(case: Case, request: EdgeRequest, now: float = NOW, slot: str = "old") -> Denial:
    with pytest.raises(TokenDenied) as caught:
        verify(case, request, now, slot)
    return caught.value.reason


def signed_request(case: Case, grant: Grant, url: str = URL, client: Any = CLIENT, slot: str = "old") -> EdgeRequest:
    return edge_request(dialect(case, slot).sign(grant, url=url), url, client_ip=client)


# -- round trip over random grants ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_round_trip_over_random_grants(case: Case) -> None:
    ip_strategy = networks(None if case.ipv6 else 4) if case.ip == "checked" else None
    if "akamai" in case.id and ip_strategy is not None:
        ip_strategy = ip_strategy.map(lambda n: ipaddress.ip_network(n.network_address))

    @settings(max_examples=30, deadline=None, database=None)
    @given(
        grant=grants(
            segments=rich_segments if case.rich_paths else st.text("abcXYZ019-_", min_size=1, max_size=8),
            network=ip_strategy,
            not_before=case.not_before,
            with_ids=case.ids,
        ),
        name=st.sampled_from(["index.m3u8", "720p/seg 9.ts", "init.mp4"]),
    )
    def round_trip(grant: Grant, name: str) -> None:
        if case.ip == "hashed":
            grant = dataclasses.replace(grant, client_network=ipaddress.ip_network(CLIENT))
        from gateway.tokens.dialects.support.cdn_request import encoded_prefix

        url = HOST + encoded_prefix(grant.path_prefixes[0]) + name.replace(" ", "%20")
        client = grant.client_network.network_address if grant.client_network else CLIENT
        got = verify(case, signed_request(case, grant, url, client), now=NOW)
        prefix_signing = dialect(case).prefix_signing
        assert got.expires_at == grant.expires_at and got.covers(grant.path_prefixes[0]) is prefix_signing
        if prefix_signing:
            assert got.path_prefixes == grant.path_prefixes
        if case.not_before:
            assert got.not_before == grant.not_before
        if case.ip != "none":
            assert got.client_network == grant.client_network
        if case.ids:
            assert (got.session_id, got.user_id) == (grant.session_id, grant.user_id)

    round_trip()


# -- tampering -----------------------------------------------------------------------------------------


def _flip(char: str) -> str:
    if char.isdigit():
        return str((int(char) + 1) % 10)
    if char.isalpha() and char.isascii():
        return (
            chr((ord(char.lower()) - ord("a") + 1) % 26 + ord("a")).upper()
            if char.isupper()
            else chr((ord(char) - ord("a") + 1) % 26 + ord("a"))
        )
    return "x"


def _positions(length: int, most: int = 48) -> range:
    return range(0, length, max(1, length // most))


def tampered(creds: Credentials, url: str) -> Iterator[tuple[str, EdgeRequest]]:
    """The request with one character of the token changed, for positions across every token value."""
    base = edge_request(creds, url, client_ip=CLIENT)
    if creds.path_token:
        start = base.url.index(creds.path_token) + len("edge-cache-token=")  # the value, not its marker
        for i in _positions(len(creds.path_token) - len("edge-cache-token=")):
            yield (
                "path",
                dataclasses.replace(
                    base, url=base.url[: start + i] + _flip(base.url[start + i]) + base.url[start + i + 1 :]
                ),
            )
    for name, value in base.cookies.items():
        for i in _positions(len(value)):
            yield (
                name,
                dataclasses.replace(base, cookies={**base.cookies, name: value[:i] + _flip(value[i]) + value[i + 1 :]}),
            )
    for name, value in base.headers.items():
        for i in _positions(len(value)):
            yield (
                name,
                dataclasses.replace(base, headers={**base.headers, name: value[:i] + _flip(value[i]) + value[i + 1 :]}),
            )
    if creds.query and not creds.path_token:
        for index, (name, value) in enumerate(creds.query):
            for i in _positions(len(value)):
                query = list(creds.query)
                query[index] = (name, value[:i] + _flip(value[i]) + value[i + 1 :])
                target = creds.url or url
                prefix = target[: len(target) - len(Credentials(query=creds.query).query_string())]
                yield name, dataclasses.replace(base, url=prefix + Credentials(query=tuple(query)).query_string())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_any_tampered_token_byte_is_refused(case: Case) -> None:
    creds = dialect(case).sign(base_grant(case), url=URL)
    verify(case, edge_request(creds, URL, client_ip=CLIENT))  # the untouched one passes
    seen = 0
    for where, request in tampered(creds, URL):
        reason = denial(case, request)
        allowed = {Denial.BAD_SIGNATURE, Denial.MALFORMED} | (
            {Denial.UNKNOWN_KEY} if "Key" in where or "kid" in where else set()
        )
        if case.rotation is Denial.UNKNOWN_KEY:
            allowed.add(Denial.UNKNOWN_KEY)  # the key name/id is part of the token
        assert reason in allowed, (where, request, reason)
        seen += 1
    assert seen >= 20


# -- expiry, outside the prefix, wrong IP, rotation ----------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_expired(case: Case) -> None:
    request = signed_request(case, base_grant(case))
    assert verify(case, request, now=NOW + 599)
    assert denial(case, request, now=NOW + 601) is Denial.EXPIRED


def _replace_path(request: EdgeRequest, old: str, new: str) -> EdgeRequest:
    path, mark, query = request.url.partition("?")
    assert old in path
    return dataclasses.replace(request, url=path.replace(old, new, 1) + mark + query)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("other", ["/vod/title-90001/", "/vod/title-9001/", "/vod/", "/"])
def test_path_outside_the_prefix(case: Case, other: str) -> None:
    request = signed_request(case, base_grant(case))
    outside = _replace_path(request, PREFIX, other)
    assert denial(case, outside) is (Denial.ACL if case.prefix_checked else Denial.BAD_SIGNATURE)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize(
    "trick", ["../../title-9001/", "%2e%2e/%2E%2e/title-9001/", ".%2e/x/", "a%2f..%2f..%2fx/", "./", "/"]
)
def test_dot_segment_tricks_are_acl(case: Case, trick: str) -> None:
    request = signed_request(case, base_grant(case))
    assert denial(case, _replace_path(request, "seg-1.ts", trick + "seg-1.ts")) is Denial.ACL


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_wrong_client_ip(case: Case) -> None:
    grant = base_grant(case, client_network=ipaddress.ip_network("203.0.113.7/32"))
    if case.ip == "none":
        with pytest.raises(UnsupportedGrant, match="ip_binding"):
            dialect(case).sign(grant, url=URL)
        return
    request = signed_request(case, grant)
    assert verify(case, request)
    stranger = dataclasses.replace(request, client_ip=ipaddress.ip_address("198.51.100.9"))
    assert denial(case, stranger) is (Denial.IP if case.ip == "checked" else Denial.BAD_SIGNATURE)
    assert denial(case, dataclasses.replace(request, client_ip=None)) in (Denial.IP, Denial.BAD_SIGNATURE)


# -- the gateway as this dialect's edge: what is credential, what is the resource ----------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_edge_split_leaves_the_resource_without_any_credential(case: Case) -> None:
    """`query_params` names every parameter the signer writes, and `edge_path` takes a path credential out:
    what remains of a signed request is the resource URL (with the origin's own query) and nothing else."""
    from urllib.parse import urlsplit

    from gateway.http.request_facts import split_query
    from gateway.tokens.acl import normalise_path

    built = dialect(case)
    url = URL + "?v=2"
    creds = built.sign(base_grant(case), url=url)
    request = edge_request(creds, url, client_ip=CLIENT)
    grant = verify(case, request)
    assert {name for name, _ in creds.query} <= set(built.query_params)
    parts = urlsplit(request.url)
    kept, credential = split_query(parts.query, built.query_params)
    assert kept == "v=2"
    assert credential == ("" if creds.path_token else Credentials(query=creds.query).query_string())
    resolved = built.edge_path(normalise_path(parts.path).encoded, grant)
    assert resolved.resource == PREFIX + "seg-1.ts"
    assert resolved.mapped == (PREFIX if creds.path_token else None)  # a path credential follows the prefix


@pytest.mark.parametrize("case", [case for case in CASES if case.rotation], ids=lambda case: case.id)
def test_key_rotation(case: Case) -> None:
    grant = base_grant(case)
    old_token = signed_request(case, grant, slot="old")
    assert verify(case, old_token, slot="both")  # the new config still accepts the old key
    new_token = signed_request(case, grant, slot="both")
    assert verify(case, new_token, slot="new")  # and signs with the new one
    assert denial(case, old_token, slot="new") is case.rotation


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("cloudfront", {"base_url": HOST, "keys": [{"id": "K1", "private_key": EC_OLD}]}),
        ("akamai", {"key": "00" * 16}),
        ("cloud_cdn", {"base_url": HOST, "keys": [{"name": "k", "secret": _b64(bytes(16))}]}),
        ("media_cdn", {"base_url": HOST, "keys": [{"name": "k", "private_key": _b64(bytes(32))}]}),
        ("media_cdn_dualtoken", {"keys": [{"name": "k", "private_key": _b64(bytes(32))}]}),
        ("nginx_secure_link", {"secret": "s3cret"}),
    ],
)
def test_registry_builds_each_dialect(name: str, table: dict[str, Any]) -> None:
    built = load_dialect(name, table)
    assert built.name == name and built.prefix_signing in (True, False)
    module = importlib.import_module(DIALECT_MODULES[name])
    assert name == module.NAME
