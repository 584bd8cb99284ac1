"""The gateway as every dialect's edge, over real HTTP: a player walks a signed title end to end.

For each dialect (and each of its credential forms that changes what a playlist must carry), a real
uvicorn gateway with `[[routes]] edge = "<dialect>"` fronts a real HTTP origin serving the bundled
titles. The master URL is signed through the CLI's `gateway sign --dialect` code path; the walk then
loads master → every variant, rendition and I-frame playlist → every segment, key and init section,
exactly as a player resolves them. Everything must answer 200, media must be byte-identical to the
origin, every URI's credential must verify in that dialect and never outlive the one presented, and
the origin must never see any of the dialect's parameters (it only ever sees plain file paths).
A forged credential (right format, wrong key), an expired one and none at all are refused with their
typed reasons.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.cli import main as cli_main
from gateway.config import Route, Settings
from gateway.http.app import build_app
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import Credentials, Dialect, EdgeRequest
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from tests.integration.test_edge_http import uris_of
from tests.support.servers import free_port, serve_app, static_origin

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO / "fixtures" / "media" / "vod"
RSA_PEM = REPO / "fixtures" / "dialects" / "keys" / "appendix-a-rsa2048.pem"
GW = "{gateway}"  # replaced by the gateway's own URL: an edge verifies URLs of its own host
RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
LOCALHOST = ipaddress.ip_address("127.0.0.1")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


SEED, OTHER_SEED = _b64url(bytes(range(32))), _b64url(bytes(range(32, 64)))
SECRET16, OTHER_SECRET16 = _b64url(b"\x11" * 16), _b64url(b"\x22" * 16)
CAT_SECRET = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"


@dataclass(frozen=True)
class Title:
    """A bundled title as the edge serves it: grant prefix, the unsigned master URL path, its files."""

    prefix: str
    master_path: str
    files: Path


TITLES = (
    Title("/vod/title-9000/", "/vod/title-9000/master.m3u8", MEDIA / "title-9000"),  # TS, AES-128 key, I-frames
    Title("/vod/free-trailer/", "/vod/free-trailer/master.m3u8", MEDIA / "free-trailer"),  # fMP4: init sections
)
# A title whose path needs escaping everywhere: a space, a '~' (the dual token's field separator) and 'é'.
ESCAPED_TITLES = (Title("/vod/café ~1/", "/vod/caf%C3%A9%20~1/master.m3u8", MEDIA / "title-9000"),)
# Mux playback ids are alphanumeric and come first in Mux's URLs (`/<id>/…`); the origin serves the same
# bundled titles under those names (symlinks), mapped by prefix_template = "/vod/{playback_id}/".
MUX_TITLES = (
    Title("/vod/Title9000/", "/Title9000/master.m3u8", MEDIA / "title-9000"),
    Title("/vod/FreeTrailer/", "/FreeTrailer/master.m3u8", MEDIA / "free-trailer"),
)


@dataclass(frozen=True)
class Case:
    dialect: str
    table: dict[str, Any]
    forged: dict[str, Any]  # the same table with other key material: a well-formed forgery
    params: tuple[str, ...]  # the dialect's parameter names, as its documentation spells them
    mount: str = "/vod/"
    titles: tuple[Title, ...] = TITLES
    path_token: bool = False  # the credential replaces a path segment (Cloudflare Stream)
    extra: dict[str, Any] = field(default_factory=dict)


CLOUDFRONT_KEYS = [{"id": "K2JCJMDEHXQW5F", "private_key_file": str(RSA_PEM)}]
CLOUDFRONT_PARAMS = ("Policy", "Expires", "Signature", "Key-Pair-Id", "Hash-Algorithm")
GOOGLE_PARAMS = ("URLPrefix", "Expires", "KeyName", "Signature")


def _forged_rsa(tmp: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp / "forged-rsa.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


FORGED_RSA = "{forged_rsa}"  # replaced by a freshly generated RSA key under the same key id

CASES: dict[str, Case] = {
    "cloudfront_custom_query": Case(
        "cloudfront",
        {"base_url": GW, "keys": CLOUDFRONT_KEYS},
        {"keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": FORGED_RSA}]},
        CLOUDFRONT_PARAMS,
    ),
    "cloudfront_custom_cookie": Case(
        "cloudfront",
        {"base_url": GW, "delivery": "cookie", "keys": CLOUDFRONT_KEYS},
        {"keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": FORGED_RSA}]},
        CLOUDFRONT_PARAMS,
    ),
    "cloudfront_canned_per_url": Case(
        "cloudfront",
        {"base_url": GW, "policy": "canned", "hash_algorithm": "SHA256", "keys": CLOUDFRONT_KEYS},
        {"keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": FORGED_RSA}]},
        CLOUDFRONT_PARAMS,
    ),
    "akamai_acl_query": Case(
        "akamai",
        {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts"},
        {"key": "99887766554433221100ffeeddccbbaa"},
        ("hdnts",),
    ),
    "akamai_url_per_url": Case(
        "akamai",
        {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "url"},
        {"key": "99887766554433221100ffeeddccbbaa"},
        ("hdnts",),
    ),
    "cloud_cdn_url_prefix": Case(
        "cloud_cdn",
        {"base_url": GW, "keys": [{"name": "key-1", "secret": SECRET16}]},
        {"keys": [{"name": "key-1", "secret": OTHER_SECRET16}]},
        GOOGLE_PARAMS,
    ),
    "cloud_cdn_url_per_url": Case(
        "cloud_cdn",
        {"base_url": GW, "form": "url", "keys": [{"name": "key-1", "secret": SECRET16}]},
        {"keys": [{"name": "key-1", "secret": OTHER_SECRET16}]},
        GOOGLE_PARAMS,
    ),
    "media_cdn_url_prefix": Case(
        "media_cdn",
        {"base_url": GW, "keys": [{"name": "key-1", "private_key": SEED}]},
        {"keys": [{"name": "key-1", "private_key": OTHER_SEED}]},
        GOOGLE_PARAMS,
    ),
    "media_cdn_path": Case(
        "media_cdn",
        {"base_url": GW, "form": "path", "keys": [{"name": "key-1", "private_key": SEED}]},
        {"keys": [{"name": "key-1", "private_key": OTHER_SEED}]},
        (*GOOGLE_PARAMS, "edge-cache-token"),
    ),
    "media_cdn_dualtoken_query": Case(
        "media_cdn_dualtoken",
        {"keys": [{"name": "k1", "private_key": SEED}]},
        {"keys": [{"name": "k1", "private_key": OTHER_SEED}]},
        ("edge-cache-token",),
    ),
    "media_cdn_dualtoken_query_escaped": Case(
        "media_cdn_dualtoken",
        {"algorithm": "sha256", "keys": [{"name": "k1", "secret": SEED}]},
        {"keys": [{"name": "k1", "secret": OTHER_SEED}]},
        ("edge-cache-token",),
        titles=ESCAPED_TITLES,
    ),
    "media_cdn_dualtoken_cookie_escaped": Case(
        "media_cdn_dualtoken",
        {"delivery": "cookie", "keys": [{"name": "k1", "private_key": SEED}]},
        {"keys": [{"name": "k1", "private_key": OTHER_SEED}]},
        (),
        titles=ESCAPED_TITLES,
    ),
    "media_cdn_url_prefix_escaped": Case(
        "media_cdn",
        {"base_url": GW, "keys": [{"name": "key-1", "private_key": SEED}]},
        {"keys": [{"name": "key-1", "private_key": OTHER_SEED}]},
        GOOGLE_PARAMS,
        titles=ESCAPED_TITLES,
    ),
    "cloud_cdn_cookie_escaped": Case(
        "cloud_cdn",
        {"base_url": GW, "form": "cookie", "keys": [{"name": "key-1", "secret": SECRET16}]},
        {"keys": [{"name": "key-1", "secret": OTHER_SECRET16}]},
        (),
        titles=ESCAPED_TITLES,
    ),
    "media_cdn_dualtoken_full_path": Case(
        "media_cdn_dualtoken",
        {"algorithm": "sha256", "path_field": "full_path", "keys": [{"name": "k1", "secret": SEED}]},
        {"keys": [{"name": "k1", "secret": OTHER_SEED}]},
        ("edge-cache-token",),
    ),
    "nginx_secure_link_prefix": Case(
        "nginx_secure_link",
        {"secret": "s3cret", "expression": "{expires}{prefix} {secret}"},
        {"secret": "n0t-the-s3cret"},
        ("md5", "expires"),
    ),
    "nginx_secure_link_per_url": Case(
        "nginx_secure_link",
        {"secret": "s3cret", "expression": "{expires}{uri} {secret}", "hash_param": "st", "expires_param": "e"},
        {"secret": "n0t-the-s3cret"},
        ("st", "e"),
    ),
    "cloudflare_stream_path": Case(
        "cloudflare_stream",
        {
            "customer_code": "f33zs165nr7gyfy4",
            "prefix_template": "/vod/{uid}/",
            "keys": [{"kid": "8f926b2b01f383510025a78a4dcbf6a", "private_key_file": str(RSA_PEM)}],
        },
        {"keys": [{"kid": "8f926b2b01f383510025a78a4dcbf6a", "private_key_file": FORGED_RSA}]},
        (),
        mount="/",
        path_token=True,
    ),
    "mux_query": Case(
        "mux",
        {
            "prefix_template": "/vod/{playback_id}/",
            "keys": [{"kid": "Ab01cd23EfGh45", "private_key_file": str(RSA_PEM)}],
        },
        {"keys": [{"kid": "Ab01cd23EfGh45", "private_key_file": FORGED_RSA}]},
        ("token",),
        mount="/",
        titles=MUX_TITLES,
    ),
    "cat_query": Case(
        "cat",
        {"issuer": "gateway.example", "keys": [{"kid": "Symmetric256", "secret": CAT_SECRET}]},
        {"keys": [{"kid": "Symmetric256", "secret": CAT_SECRET[::-1]}]},
        ("cat", "CAT"),
    ),
}


# -- the origin and the gateway -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str], Path]]:
    """The bundled titles served as static files (plus Mux-style aliases); yields (URL, request log, tmp)."""
    root = tmp_path_factory.mktemp("edge-origin")
    (root / "vod").mkdir()
    for name, target in (
        ("title-9000", "title-9000"),
        ("free-trailer", "free-trailer"),
        ("Title9000", "title-9000"),
        ("FreeTrailer", "free-trailer"),
        ("café ~1", "title-9000"),
    ):
        (root / "vod" / name).symlink_to(MEDIA / target, target_is_directory=True)
    with static_origin(root) as (url, seen):
        yield url, seen, tmp_path_factory.mktemp("edge-keys")


def _fill(value: Any, gateway: str, forged_rsa: str) -> Any:
    if isinstance(value, str):
        return value.replace(GW, gateway).replace(FORGED_RSA, forged_rsa)
    if isinstance(value, list):
        return [_fill(item, gateway, forged_rsa) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, gateway, forged_rsa) for key, item in value.items()}
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML form for {value!r}")


def write_config(path: Path, name: str, table: dict[str, Any]) -> Path:
    """`[dialects.<name>]` as the CLI reads it (arrays of tables become `[[dialects.<name>.<key>]]`)."""
    lines = [f"[dialects.{name}]"]
    arrays = {key: value for key, value in table.items() if isinstance(value, list)}
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if key not in arrays]
    for key, entries in arrays.items():
        for entry in entries:
            lines.append(f"[[dialects.{name}.{key}]]")
            lines += [f"{field_name} = {_toml_value(value)}" for field_name, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Edge:
    """One running gateway for a case: its URL, the dialect (and a forger's), the config for the CLI."""

    case: Case
    url: str
    dialect: Dialect
    forger: Dialect
    config: Path


@pytest.fixture
def edge(request: pytest.FixtureRequest, origin: tuple[str, list[str], Path]) -> Iterator[Edge]:
    case = CASES[request.param]
    origin_url, _, tmp = origin
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    forged_rsa = tmp / "forged-rsa.pem"
    if not forged_rsa.exists():
        _forged_rsa(tmp)
    table = _fill(case.table, gateway, str(forged_rsa))
    forged_table = table | _fill(case.forged, gateway, str(forged_rsa))
    dialect = load_dialect(case.dialect, table, base_dir=tmp)
    forger = load_dialect(case.dialect, forged_table, base_dir=tmp)
    upstream = origin_url + ("vod/" if case.mount == "/vod/" else "")
    settings = Settings(
        keys=RING,
        routes=(Route(mount=case.mount, origin=upstream, edge=case.dialect),),
        dialects={case.dialect: dialect},
    )
    config = write_config(tmp / f"{request.param}.toml", case.dialect, table)
    with serve_app(build_app(settings), port=port):
        yield Edge(case, gateway, dialect, forger, config)


# -- signing, as an operator would --------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    url: str
    cookies: dict[str, str]


def cli_sign(edge: Edge, title: Title, capsys: pytest.CaptureFixture[str], ttl: int = 600) -> Signed:
    """`gateway sign --dialect NAME --config FILE --path-prefix P --ttl S --url MASTER`, output parsed."""
    unsigned = edge.url + title.master_path
    argv = ["sign", "--dialect", edge.case.dialect, "--config", str(edge.config)]
    status = cli_main([*argv, "--path-prefix", title.prefix, "--ttl", str(ttl), "--url", unsigned])
    out = capsys.readouterr().out.splitlines()
    assert status == 0, out
    cookies: dict[str, str] = {}
    for line in out:
        if line.startswith("Set-Cookie: "):
            name, value = line.removeprefix("Set-Cookie: ").split(";", 1)[0].split("=", 1)  # as a CDN reads it
            cookies[name] = value
    if edge.case.path_token:
        token = next(line.removeprefix("path token: ") for line in out if line.startswith("path token: "))
        return Signed(f"{edge.url}/{token}/{title.master_path.rsplit('/', 1)[1]}", cookies)
    return Signed(out[-1], cookies)


def module_sign(edge: Edge, dialect: Dialect, title: Title, grant: Grant) -> Signed:
    """The same, straight from the dialect module (for credentials the CLI will not make: past expiry)."""
    credentials: Credentials = dialect.sign(grant, url=edge.url + title.master_path)
    cookies = {cookie.name: cookie.value for cookie in credentials.cookies}
    if edge.case.path_token:
        return Signed(f"{edge.url}/{credentials.path_token}/{title.master_path.rsplit('/', 1)[1]}", cookies)
    assert credentials.url is not None
    return Signed(credentials.url, cookies)


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())} if cookies else {}


# -- the walk -----------------------------------------------------------------------------------------


@dataclass
class Walk:
    bodies: dict[str, bytes] = field(default_factory=dict)  # title-relative path -> bytes served
    urls: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


def walk(client: httpx.Client, signed: Signed) -> Walk:
    """Load the master and everything a player would load from it, breadth first."""
    found = Walk()
    base_dir = signed.url.split("?", 1)[0].rsplit("/", 1)[0] + "/"  # the master's directory, as requested
    queue, seen = [signed.url], {signed.url}
    while queue:
        url = queue.pop(0)
        response = client.get(url, headers=cookie_header(signed.cookies))
        if response.status_code != 200:
            found.refused.append(f"{response.status_code} {response.headers.get('x-token-denial', '')} {url}")
            continue
        plain = url.split("?", 1)[0]
        if not plain.startswith(base_dir):
            found.outside.append(url)
            continue
        found.urls.append(url)
        found.bodies[plain[len(base_dir) :]] = response.content
        if plain.endswith(".m3u8"):
            for child in uris_of(response.text, url):
                if child not in seen and urlsplit(child).netloc == urlsplit(url).netloc:
                    seen.add(child)
                    queue.append(child)
    return found


def origin_files(title: Title) -> dict[str, bytes]:
    return {str(path.relative_to(title.files)): path.read_bytes() for path in title.files.rglob("*") if path.is_file()}


@pytest.mark.parametrize("edge", sorted(CASES), indirect=True)
def test_a_player_walks_every_uri_through_the_dialect_edge(
    edge: Edge, origin: tuple[str, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, origin_seen, _ = origin
    with httpx.Client(timeout=10) as client:
        for title in edge.case.titles:
            signed = cli_sign(edge, title, capsys)
            incoming = edge.dialect.verify(
                EdgeRequest(signed.url, signed.cookies, client_ip=LOCALHOST), now=time.time()
            ).expires_at
            seen_before = len(origin_seen)
            result = walk(client, signed)
            files = origin_files(title)
            upstream = origin_seen[seen_before:]
            clean = {encoded_prefix(title.prefix) + name for name in files}  # the origin sees plain file paths
            problems = {
                "origin saw a credential or a path that is not a file": [p for p in upstream if p not in clean][:3],
                "refused": result.refused[:3],
                "not reached": sorted(set(files) - set(result.bodies))[:5],
                "left the title's directory": result.outside[:3],
                "media not byte-identical": [
                    name
                    for name, body in result.bodies.items()
                    if not name.endswith(".m3u8") and body != files.get(name)
                ][:3],
            }
            if any(problems.values()):
                shown = {key: [item[:160] for item in value] for key, value in problems.items() if value}
                pytest.fail(f"{edge.case.dialect} edge, {title.master_path}:\n" + json.dumps(shown, indent=1))
            for url in result.urls:  # every credential a playlist handed out: valid, never longer-lived
                granted = edge.dialect.verify(EdgeRequest(url, signed.cookies, client_ip=LOCALHOST), now=time.time())
                assert granted.expires_at <= incoming, (url, granted.expires_at, incoming)
            if signed.cookies:  # a cookie credential needs no rewriting: playlists are the origin's bytes
                assert all(result.bodies[name] == files[name] for name in result.bodies if name.endswith(".m3u8"))


@pytest.mark.parametrize("edge", sorted(CASES), indirect=True)
def test_forged_expired_and_missing_credentials_are_refused_with_their_reason(
    edge: Edge, origin: tuple[str, list[str], Path]
) -> None:
    _, origin_seen, _ = origin
    title = edge.case.titles[0]
    now = int(time.time())
    seen_before = len(origin_seen)
    forged = module_sign(edge, edge.forger, title, Grant((title.prefix,), now + 600))
    expired = module_sign(edge, edge.dialect, title, Grant((title.prefix,), now - 120))
    with httpx.Client(timeout=10) as client:
        for signed, status, reason in ((forged, 403, "bad_signature"), (expired, 403, "expired")):
            response = client.get(signed.url, headers=cookie_header(signed.cookies))
            assert (response.status_code, response.headers.get("x-token-denial")) == (status, reason), response.text
            assert response.json()["error"] == reason
        bare = client.get(edge.url + title.master_path)
        assert (bare.status_code, bare.json()["error"]) == (401, "missing")
    assert origin_seen[seen_before:] == []  # nothing refused ever reached the origin


@pytest.mark.parametrize("edge", ["media_cdn_dualtoken_query_escaped"], indirect=True)
def test_dual_token_signing_options_through_the_cli_and_the_edge(
    edge: Edge, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sign --start --resource --sign-header` make Starts=, custom PathGlobs and Headers=; the edge then wants
    the header: absent is `missing`, another value `bad_signature`; `verify --dialect` judges the same way.
    A method cannot be expressed in a dual token: `--method` is refused, never dropped."""
    title = edge.case.titles[0]
    start = int(time.time()) - 30
    argv = ["sign", "--dialect", edge.case.dialect, "--config", str(edge.config), "--path-prefix", title.prefix]
    argv += ["--ttl", "600"]
    options = ["--start", str(start), "--resource", "/vod/café ~1/*", "--sign-header", "X-Viewer: v 42"]
    assert cli_main([*argv, *options, "--url", edge.url + title.master_path]) == 0
    signed_url = capsys.readouterr().out.splitlines()[-1]
    token = signed_url.partition("edge-cache-token=")[2]
    assert token.startswith(f"PathGlobs=/vod/caf%C3%A9%20%7E1/*~Starts={start}~") and "~Headers=X-Viewer~" in token
    with httpx.Client(timeout=10) as client:
        for headers, status, reason in (
            ({"x-viewer": "v 42"}, 200, None),
            ({}, 401, "missing"),  # a credential part is absent: 401, as for no token at all
            ({"x-viewer": "v 43"}, 403, "bad_signature"),
        ):
            response = client.get(signed_url, headers=headers)
            assert (response.status_code, response.headers.get("x-token-denial")) == (status, reason)
    verify = ["verify", signed_url, "--dialect", edge.case.dialect, "--config", str(edge.config)]
    assert cli_main([*verify, "--header", "X-Viewer: v 42"]) == 0
    assert capsys.readouterr().out.startswith("ALLOW ")
    assert cli_main(verify) == 1
    assert capsys.readouterr().out.startswith("DENY missing")
    assert cli_main([*verify, "--header", "X-Viewer: v 42", "--now", str(start - 60)]) == 1
    assert capsys.readouterr().out.startswith("DENY not_yet_valid")
    assert cli_main([*argv, "--method", "GET"]) == 2
    assert "cannot sign method" in capsys.readouterr().err
