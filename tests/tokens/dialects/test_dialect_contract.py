"""One contract over the whole dialect registry: every registered dialect, in every form it supports, signs and
verifies random grants through the same test; tampered, expired, outside-the-prefix and wrong-IP credentials
are refused with the exact typed reason, and keys rotate.

Nothing here names a dialect. The registry (`DIALECT_MODULES`) says which dialects exist; each has a contract
file, `contracts/<name>.json`, that says how to configure it and what each of its forms can express:

    keys        config tables for the key slots "old", "new" and "both" (rotation: sign new, verify either);
                `$hex:`, `$b64_16:`, `$b64_32:`, `$text:`, `$ec:`, `$rsa:` + slot are throwaway key material made
                here, `$host`/`$hostname` the CDN host the requests go to
    rotation    what a verifier without the old key says of an old credential (null: no rotation)
    layout      "gateway" (default: the request is HOST + prefix + file, signed for that URL) or "own" (the
                dialect's own URL layout: the request is the signed URL `sign` returns; `prefix_template`
                and `id_alphabet` shape the grants' prefixes)
    forms       name -> {form: query | url | cookie | header | path, table: settings selecting it, key_kind:
                text replacements in `keys`, outside: the denial for a path outside the prefix ("acl", or
                "bad_signature" where the path is inside the signature; null where no other path can carry the
                credential), ip: "checked" | "hashed" (inside the signature) | "none" (refused: UnsupportedGrant),
                ip_host_only, ipv6, not_before, ids (session/user id round trip), rich_paths}

Each docs/dialects/<name>.md lists the same forms in its "Forms" table: the test keeps the two in step.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects import DIALECT_MODULES, load_dialect
from gateway.tokens.dialects.base import Credentials, EdgeRequest
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant, encoded_prefix
from gateway.tokens.grant import Grant
from tests.support.paths import REPO
from tests.tokens.dialects.dialect_helpers import HOST, NOW, RSA_PEM, edge_request, grants, networks, rich_segments

CONTRACTS = Path(__file__).with_name("contracts")
DOCS = REPO / "docs" / "dialects"
FORMS = ("query", "url", "cookie", "header", "path")
SECRETS = {"old": bytes(range(32)), "new": bytes(range(32, 64))}


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@functools.cache
def key_material(kind: str, slot: str) -> str:
    """Throwaway key material of one kind for one slot (asymmetric ones made once per run)."""
    secret = SECRETS[slot]
    if kind == "rsa":
        return RSA_PEM.read_text() if slot == "old" else _pem(rsa.generate_private_key(65537, 2048))
    if kind == "ec":
        return _pem(ec.generate_private_key(ec.SECP256R1()))
    return {
        "hex": secret.hex(),
        "b64_16": base64.urlsafe_b64encode(secret[:16]).decode(),
        "b64_32": base64.urlsafe_b64encode(secret).decode(),
        "text": f"secret-{slot}",
    }[kind]


def _fill(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item) for item in value]
    if isinstance(value, str) and (found := re.fullmatch(r"\$(\w+):(old|new)", value)):
        return key_material(found[1], found[2])
    if value == "$host":
        return HOST
    if value == "$hostname":
        return urlsplit(HOST).hostname
    return value


@dataclass(frozen=True)
class Case:
    id: str
    dialect: str
    form: str
    tables: dict[str, dict[str, Any]]  # key slot -> the complete config table
    rotation: Denial | None
    layout: str = "gateway"
    prefix_template: str = "{id}"
    id_alphabet: str = ""
    outside: Denial | None = Denial.ACL
    ip: str = "none"
    ip_host_only: bool = False
    ipv6: bool = False
    not_before: bool = False
    ids: bool = False
    rich_paths: bool = True


def load_cases(name: str) -> list[Case]:
    contract = json.loads((CONTRACTS / f"{name}.json").read_text())
    cases = []
    for form_name, form in contract["forms"].items():
        keys_text = json.dumps(contract["keys"])
        for old, new in form.get("key_kind", {}).items():
            keys_text = keys_text.replace(old, new)
        keys = json.loads(keys_text)
        table = form.get("table", {})
        outside = form.get("outside", "acl")
        rotation = contract.get("rotation")
        cases.append(
            Case(
                id=f"{name}-{form_name}",
                dialect=name,
                form=form["form"],
                tables={slot: _fill({**keys[slot], **table}) for slot in keys},
                rotation=Denial(rotation) if rotation else None,
                layout=contract.get("layout", "gateway"),
                prefix_template=contract.get("prefix_template", "{id}"),
                id_alphabet=contract.get("id_alphabet", ""),
                outside=Denial(outside) if outside else None,
                **{k: form[k] for k in ("ip", "ip_host_only", "ipv6", "not_before", "ids", "rich_paths") if k in form},
            )
        )
    return cases


CASES = [case for name in sorted(DIALECT_MODULES) if (CONTRACTS / f"{name}.json").exists() for case in load_cases(name)]
BUILT: dict[tuple[str, str], Any] = {}
PREFIX = "/vod/title-9000/"
CLIENT = ipaddress.ip_address("203.0.113.7")


def _ids(case: Case) -> str:
    return case.id


def dialect(case: Case, slot: str = "old") -> Any:
    if (case.id, slot) not in BUILT:
        BUILT[case.id, slot] = load_dialect(case.dialect, case.tables[slot])
    return BUILT[case.id, slot]


def case_prefix(case: Case, name: str = "title9000") -> str:
    """The fixed tests' prefix: the gateway layout's /vod/title-9000/, or the dialect's template with an id."""
    return PREFIX if case.layout == "gateway" else case.prefix_template.format(id=name)


def base_grant(case: Case, **changes: Any) -> Grant:
    network = ipaddress.ip_network("203.0.113.7/32" if case.ip == "hashed" else "203.0.113.0/24")
    fields: dict[str, Any] = {"path_prefixes": (case_prefix(case),), "expires_at": NOW + 600}
    if case.ip != "none":
        fields["client_network"] = ipaddress.ip_network(CLIENT) if case.ip_host_only else network
    if case.not_before:
        fields["not_before"] = NOW - 600
    return Grant(**(fields | changes))


def verify(case: Case, request: EdgeRequest, now: float = NOW, slot: str = "old") -> Grant:
    return dialect(case, slot).verify(request, now=now)  # type: ignore[no-any-return]


def denial(case: Case, request: EdgeRequest, now: float = NOW, slot: str = "old") -> Denial:
    with pytest.raises(TokenDenied) as caught:
        verify(case, request, now, slot)
    return caught.value.reason


def resource_url(grant: Grant, name: str = "seg-1.ts") -> str:
    return HOST + encoded_prefix(grant.path_prefixes[0]) + name


def signed(
    case: Case, grant: Grant, url: str | None = None, client: Any = CLIENT, slot: str = "old"
) -> tuple[Credentials, EdgeRequest]:
    """The credentials for `grant` and the request a player makes with them (for `url`, in the gateway layout)."""
    if case.layout == "own":
        creds = dialect(case, slot).sign(grant)
        assert creds.url is not None
        cookies = {cookie.name: cookie.value for cookie in creds.cookies}
        return creds, EdgeRequest(creds.url, cookies, dict(creds.headers), client_ip=client)
    url = url or resource_url(grant)
    creds = dialect(case, slot).sign(grant, url=url)
    return creds, edge_request(creds, url, client_ip=client)


def signed_request(
    case: Case, grant: Grant, url: str | None = None, client: Any = CLIENT, slot: str = "old"
) -> EdgeRequest:
    return signed(case, grant, url, client, slot)[1]


def test_every_registered_dialect_has_a_contract_and_every_contract_a_dialect() -> None:
    assert {path.stem for path in CONTRACTS.glob("*.json")} == set(DIALECT_MODULES)
    assert {case.dialect for case in CASES} == set(DIALECT_MODULES)


@pytest.mark.parametrize("name", sorted(DIALECT_MODULES))
def test_each_docs_page_lists_the_forms_the_contract_checks(name: str) -> None:
    """docs/dialects/<name>.md has a `## Forms` table whose first column is the form; it names these ones."""
    page = (DOCS / f"{name}.md").read_text()
    section = page.split("\n## Forms", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `?(query|url|cookie|header|path)`? \|", section, re.MULTILINE))
    assert documented == {case.form for case in CASES if case.dialect == name}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_form_is_where_the_credential_travels(case: Case) -> None:
    creds, _ = signed(case, base_grant(case))
    built = dialect(case)
    where = {
        "query": bool(creds.query) and built.prefix_signing,
        "url": bool(creds.query) and not built.prefix_signing,
        "cookie": bool(creds.cookies),
        "header": bool(creds.headers),
        "path": creds.path_token is not None,
    }
    assert [form for form, there in where.items() if there] == [case.form], creds
    assert built.name == case.dialect == importlib.import_module(DIALECT_MODULES[case.dialect]).NAME


# -- round trip over random grants ---------------------------------------------------------------------


def _grant_strategy(case: Case) -> st.SearchStrategy[Grant]:
    ip_strategy = networks(None if case.ipv6 else 4) if case.ip == "checked" else None
    if case.ip_host_only and ip_strategy is not None:
        ip_strategy = ip_strategy.map(lambda n: ipaddress.ip_network(n.network_address))
    strategy = grants(
        segments=rich_segments if case.rich_paths else st.text("abcXYZ019-_", min_size=1, max_size=8),
        network=ip_strategy,
        not_before=case.not_before,
        with_ids=case.ids,
    )
    if case.layout == "gateway":
        return strategy
    ids = st.text(case.id_alphabet, min_size=8, max_size=32)
    return st.builds(
        lambda grant, name: dataclasses.replace(grant, path_prefixes=(case.prefix_template.format(id=name),)),
        strategy,
        ids,
    )


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_round_trip_over_random_grants(case: Case) -> None:
    @settings(max_examples=30, deadline=None, database=None)
    @given(grant=_grant_strategy(case), name=st.sampled_from(["index.m3u8", "720p/seg 9.ts", "init.mp4"]))
    def round_trip(grant: Grant, name: str) -> None:
        if case.ip == "hashed":
            grant = dataclasses.replace(grant, client_network=ipaddress.ip_network(CLIENT))
        client = grant.client_network.network_address if grant.client_network else CLIENT
        got = verify(case, signed_request(case, grant, resource_url(grant, name.replace(" ", "%20")), client))
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


def _changed(text: str, i: int) -> str:
    return text[:i] + _flip(text[i]) + text[i + 1 :]


def tampered(creds: Credentials, base: EdgeRequest) -> Iterator[tuple[str, EdgeRequest]]:
    """The request with one character of the credential changed, for positions across every credential value."""
    if creds.path_token:
        marker = creds.path_token.index("=") + 1 if "=" in creds.path_token else 0  # `edge-cache-token=`: not signed
        start = base.url.index(creds.path_token) + marker
        for i in _positions(len(creds.path_token) - marker):
            yield "path", dataclasses.replace(base, url=_changed(base.url, start + i))
    for name, value in base.cookies.items():
        for i in _positions(len(value)):
            yield name, dataclasses.replace(base, cookies={**base.cookies, name: _changed(value, i)})
    for name, value in base.headers.items():
        for i in _positions(len(value)):
            yield name, dataclasses.replace(base, headers={**base.headers, name: _changed(value, i)})
    if creds.query and not creds.path_token:
        prefix = base.url[: len(base.url) - len(creds.query_string())]
        for index, (name, value) in enumerate(creds.query):
            for i in _positions(len(value)):
                query = list(creds.query)
                query[index] = (name, _changed(value, i))
                yield name, dataclasses.replace(base, url=prefix + Credentials(query=tuple(query)).query_string())


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_any_tampered_credential_byte_is_refused(case: Case) -> None:
    creds, request = signed(case, base_grant(case))
    verify(case, request)  # the untouched one passes
    seen = 0
    for where, changed in tampered(creds, request):
        reason = denial(case, changed)
        allowed = {Denial.BAD_SIGNATURE, Denial.MALFORMED} | (
            {Denial.UNKNOWN_KEY} if "Key" in where or "kid" in where else set()
        )
        if case.rotation is Denial.UNKNOWN_KEY:
            allowed.add(Denial.UNKNOWN_KEY)  # the key name/id is part of the credential
        if where == "path":
            allowed.add(Denial.MISSING)  # a path segment that no longer parses as a token is no credential at all
        assert reason in allowed, (where, changed, reason)
        seen += 1
    assert seen >= 20


# -- expiry, outside the prefix, wrong IP, rotation ----------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_expired(case: Case) -> None:
    request = signed_request(case, base_grant(case))
    assert verify(case, request, now=NOW + 599)
    assert denial(case, request, now=NOW + 601) is Denial.EXPIRED


def _replace_path(request: EdgeRequest, old: str, new: str) -> EdgeRequest:
    path, mark, query = request.url.partition("?")
    assert old in path, (old, path)
    return dataclasses.replace(request, url=path.replace(old, new, 1) + mark + query)


@pytest.mark.parametrize("case", [case for case in CASES if case.outside], ids=_ids)
@pytest.mark.parametrize("other", ["title-90001", "title-9001", "", "title9001"])
def test_path_outside_the_prefix(case: Case, other: str) -> None:
    """The credential presented for another title: a sibling, a longer name, the parent, another id."""
    request = signed_request(case, base_grant(case))
    if case.layout == "gateway":
        outside = _replace_path(request, PREFIX, f"/vod/{other}/" if other else "/vod/")
    else:  # the dialect's own URLs name the id: another id
        outside = _replace_path(request, "title9000", other.replace("-", "") or "other")
    assert denial(case, outside) is case.outside


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize(
    "trick", ["../../title-9001/", "%2e%2e/%2E%2e/title-9001/", ".%2e/x/", "a%2f..%2f..%2fx/", "./", "/"]
)
def test_dot_segment_tricks_are_acl(case: Case, trick: str) -> None:
    request = signed_request(case, base_grant(case))
    path, mark, query = request.url.partition("?")
    head, _, last = path.rpartition("/")
    assert denial(case, dataclasses.replace(request, url=f"{head}/{trick}{last}{mark}{query}")) is Denial.ACL


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_wrong_client_ip(case: Case) -> None:
    grant = base_grant(case, client_network=ipaddress.ip_network("203.0.113.7/32"))
    if case.ip == "none":
        with pytest.raises(UnsupportedGrant):
            signed(case, grant)
        return
    request = signed_request(case, grant)
    assert verify(case, request)
    stranger = dataclasses.replace(request, client_ip=ipaddress.ip_address("198.51.100.9"))
    assert denial(case, stranger) is (Denial.IP if case.ip == "checked" else Denial.BAD_SIGNATURE)
    assert denial(case, dataclasses.replace(request, client_ip=None)) in (Denial.IP, Denial.BAD_SIGNATURE)


# -- the gateway as this dialect's edge: what is credential, what is the resource ----------------------


@pytest.mark.parametrize("case", [case for case in CASES if case.layout == "gateway"], ids=_ids)
def test_edge_split_leaves_the_resource_without_any_credential(case: Case) -> None:
    """`query_params` names every parameter the signer writes, and `edge_path` takes a path credential out:
    what remains of a signed request is the resource URL (with the origin's own query) and nothing else."""
    from gateway.http.request_facts import split_query
    from gateway.tokens.acl import normalise_path

    built = dialect(case)
    url = resource_url(base_grant(case)) + "?v=2"
    creds, request = signed(case, base_grant(case), url)
    grant = verify(case, request)
    assert {name for name, _ in creds.query} <= set(built.query_params)
    parts = urlsplit(request.url)
    kept, credential = split_query(parts.query, built.query_params)
    assert kept == "v=2"
    assert credential == ("" if creds.path_token else creds.query_string())
    resolved = built.edge_path(normalise_path(parts.path).encoded, grant)
    assert resolved.resource == PREFIX + "seg-1.ts"
    assert resolved.mapped == (PREFIX if creds.path_token else None)  # a path credential follows the prefix


@pytest.mark.parametrize("case", [case for case in CASES if case.rotation], ids=_ids)
def test_key_rotation(case: Case) -> None:
    grant = base_grant(case)
    old_token = signed_request(case, grant, slot="old")
    assert verify(case, old_token, slot="both")  # the new config still accepts the old key
    new_token = signed_request(case, grant, slot="both")
    assert verify(case, new_token, slot="new")  # and signs with the new one
    assert denial(case, old_token, slot="new") is case.rotation
