"""The edge as a dispatcher (issue 9.5), piece by piece and without a server: the gate reads a request and
picks the route's guard; each guard turns a request into an Access (or a typed denial); `Edge.handle` sends
an Access to the route's writer or to the origin stream and adds the writer's cookies and the guard's
headers. Writers have their own tests (tests/http/test_writers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from gateway.config import Route, Settings
from gateway.errors import Denial, NoRoute, TokenDenied
from gateway.http.access import Access, EdgeCarry
from gateway.http.dialect_edge import DialectGuard
from gateway.http.edge import Edge
from gateway.http.gate import Gate
from gateway.http.links import Carry
from gateway.http.native_guard import NativeGuard
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import PreparedManifest, Rewrite
from gateway.origin.client import OriginClient
from gateway.sessions.revocations import MemoryRevocations
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.access import NOW, access_for, asgi_scope

KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
TITLE = "/vod/title-9000/"
AKAMAI = {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"}
CAT = {"issuer": "gw.example", "keys": [{"kid": "k", "secret": "ab" * 32}]}
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nseg_000.ts\n#EXT-X-ENDLIST\n"


def settings(*routes: Route, **dialects: Any) -> Settings:
    return Settings(
        keys=KEYS, routes=routes or (Route(mount="/vod/", origin="http://origin.test/vod/"),), dialects=dialects
    )


def token(*prefixes: str, scope: Scope = Scope.ALL, session: str | None = None) -> str:
    return sign_grant(Grant(prefixes or (TITLE,), NOW + 600, session_id=session, scope=scope), KEYS)


# --- the gate: one reading of the request, then the route's guard -----------------------------------------------


def test_the_gate_reads_the_token_path_and_route_once() -> None:
    gate = Gate(
        settings(
            Route(mount="/vod/", origin="http://o.test/vod/"), Route(mount="/vod/live/", origin="http://o.test/live/")
        ),
        MemoryRevocations(),
    )
    signed = token("/vod/live/")
    incoming = gate.read(asgi_scope(f"/t/{signed}/vod/live/a/master.m3u8"), NOW)
    assert (incoming.found.source, incoming.found.token) == ("path", signed)
    assert incoming.path.decoded == "/vod/live/a/master.m3u8" and incoming.route.mount == "/vod/live/"
    with pytest.raises(NoRoute, match=r"no origin is configured for /other/x\.ts"):
        gate.read(asgi_scope("/other/x.ts"), NOW)
    with pytest.raises(TokenDenied) as refused:
        gate.read(asgi_scope("/vod/%2e%2e/secret.ts"), NOW)  # the ACL boundary, before any route
    assert refused.value.denial


def test_each_route_gets_its_own_guard() -> None:
    routes = (
        Route(mount="/vod/", origin="http://o.test/vod/"),
        Route(mount="/edge/", origin="http://o.test/vod/", edge="akamai"),
    )
    gate = Gate(settings(*routes, akamai=load_dialect("akamai", AKAMAI, base_dir=Path())), MemoryRevocations())
    assert isinstance(gate.guards["/vod/"], NativeGuard) and isinstance(gate.guards["/edge/"], DialectGuard)


# --- the native guard ---------------------------------------------------------------------------------------------


def native(route: Route | None = None, revocations: MemoryRevocations | None = None) -> Gate:
    return Gate(
        settings(route or Route(mount="/vod/", origin="http://origin.test/vod/")), revocations or MemoryRevocations()
    )


def test_the_native_guard_gives_the_grant_and_an_origin_url_with_only_allow_listed_parameters() -> None:
    signed = token()
    gate = native(Route(mount="/vod/", origin="http://origin.test/vod/", forward_query=("v",)))
    access = gate.admit(asgi_scope(f"{TITLE}v1/index.m3u8", f"_HLS_msn=3&x=1&token={signed}&v=2&utm=9"), NOW)
    assert access.grant.path_prefixes == (TITLE,) and access.credential == signed
    assert access.origin_url == "http://origin.test/vod/title-9000/v1/index.m3u8?_HLS_msn=3&v=2"
    assert access.is_manifest and access.headers == () and access.redirect_status is None and access.edge is None


@pytest.mark.parametrize(
    ("path", "query", "reason"),
    [
        (f"{TITLE}v1/seg.ts", "", Denial.MISSING),
        (f"{TITLE}v1/index.m3u8", f"token={token(scope=Scope.MEDIA)}", Denial.SCOPE),  # a media token opens no playlist
        ("/vod/title-90001/v1/seg.ts", f"token={token()}", Denial.ACL),
        (f"{TITLE}v1/seg.ts", f"token={token(session='s-1')}", Denial.REVOKED),
    ],
)
def test_the_native_guard_refuses_with_a_typed_reason(path: str, query: str, reason: Denial) -> None:
    revocations = MemoryRevocations()
    revocations.revoke("s-1", NOW + 3600)
    with pytest.raises(TokenDenied) as refused:
        native(revocations=revocations).admit(asgi_scope(path, query), NOW)
    assert refused.value.reason is reason


# --- a dialect's edge as the guard --------------------------------------------------------------------------------


def dialect_gate(name: str, table: dict[str, Any]) -> tuple[Gate, Any]:
    dialect = load_dialect(name, table, base_dir=Path())
    return Gate(
        settings(Route(mount="/vod/", origin="http://origin.test/vod/", edge=name), **{name: dialect}),
        MemoryRevocations(),
    ), dialect


def test_a_dialect_guard_keeps_the_credential_for_playlists_and_out_of_the_origin_url() -> None:
    gate, akamai = dialect_gate("akamai", AKAMAI)
    query = akamai.sign(Grant((TITLE,), NOW + 600)).query_string()
    access = gate.admit(asgi_scope(f"{TITLE}master.m3u8", f"x=1&{query}&_HLS_msn=3"), NOW)
    assert access.credential == query  # as presented, byte for byte
    assert access.origin_url == "http://origin.test/vod/title-9000/master.m3u8?_HLS_msn=3"
    assert access.edge == EdgeCarry(Carry.QUERY, None, f"http://127.0.0.1{TITLE}master.m3u8?x=1&{query}&_HLS_msn=3")
    with pytest.raises(TokenDenied) as refused:
        gate.admit(asgi_scope("/vod/title-9001/master.m3u8", query), NOW)
    assert refused.value.reason is Denial.ACL


def test_a_per_url_dialect_has_each_uri_signed() -> None:
    gate, nginx = dialect_gate("nginx_secure_link", {"secret": "s3cret", "expression": "{expires}{uri} {secret}"})
    url = nginx.sign(Grant((TITLE,), NOW + 300), url=f"http://127.0.0.1{TITLE}v1/index.m3u8").url
    path, _, query = url.removeprefix("http://127.0.0.1").partition("?")
    access = gate.admit(asgi_scope(path, query), NOW)
    assert access.edge is not None and access.edge.carry is Carry.PER_URL


@pytest.mark.parametrize(("renewal", "redirect"), [("header", False), ("redirect", True)])
def test_a_dialects_renewal_becomes_headers_or_a_redirect(renewal: str, redirect: bool) -> None:
    table = CAT | {"renewal": {"type": renewal, "expadd_seconds": 120, "deadline_seconds": 60}}
    gate, cat = dialect_gate("cat", table)
    assert isinstance(cat, CatDialect)
    due = cat.issue(Grant((TITLE,), NOW + 30), issued_at=NOW - 10)  # inside catr's deadline
    access = gate.admit(asgi_scope(f"{TITLE}master.m3u8", f"cat={due}"), NOW)
    assert (access.redirect_status is not None) is redirect and access.headers
    if not redirect:  # playlists served to a query-token player carry the renewed token
        renewed = dict(access.headers)["CTA-Common-Access-Token"]
        assert access.credential == f"cat={renewed}" != f"cat={due}"


# --- the dispatcher -------------------------------------------------------------------------------------------------


class StubGate:
    """Admits every request as `access` (or refuses it with `error`)."""

    def __init__(self, access: Access | None = None, error: Exception | None = None) -> None:
        self.access, self.error = access, error

    def admit(self, scope: AsgiScope, now: float) -> Access:
        if self.error is not None:
            raise self.error
        assert self.access is not None
        return self.access


class RecordingWriter:
    """A writer that marks what it renders and records what the dispatcher asked of it."""

    shared = False
    identical = False

    def __init__(self) -> None:
        self.prepared = 0
        self.cookies_asked: list[PreparedManifest | None] = []

    def declare(self, access: Access, body: bytes) -> bytes:
        return body

    def variant(self, access: Access) -> str:
        return "recording"

    def rewriter(self, access: Access) -> RewriteUri:
        self.prepared += 1

        def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
            return Rewrite("rewritten/" + uri, None)

        return rewrite

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return manifest.render({}) + f"# for {access.credential}\n".encode()

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        self.cookies_asked.append(manifest)
        return ["gw=1; Path=/vod/"]


class Origin:
    """An ASGI origin: the playlist for `.m3u8`, a segment's bytes otherwise; counts requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        self.requests.append(scope["path"])
        body = PLAYLIST if scope["path"].endswith(".m3u8") else b"segment bytes"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"video/mp2t")]})
        await send({"type": "http.response.body", "body": body})


def dispatcher(access: Access | None = None, error: Exception | None = None) -> tuple[Edge, RecordingWriter, Origin]:
    origin = Origin()
    route_settings = settings()
    edge = Edge(route_settings, OriginClient(route_settings.origin, transport=httpx.ASGITransport(app=origin)))
    edge.gate = StubGate(access, error)  # type: ignore[assignment]
    writer = RecordingWriter()
    edge.writers["/vod/"] = writer
    return edge, writer, origin


def plain_access(path: str, *, headers: tuple[tuple[str, str], ...] = (), method: str = "GET") -> Access:
    access = access_for(settings().routes[0], Grant((TITLE,), NOW + 600), "cred", path=path, headers=headers)
    scope = {**access.incoming.scope, "method": method}
    return access._replace(incoming=access.incoming._replace(scope=scope))


async def test_a_manifest_is_prepared_once_by_the_routes_writer_and_rendered_per_request() -> None:
    access = plain_access(f"{TITLE}v1/index.m3u8", headers=(("CTA-Common-Access-Token", "renewed"),))
    edge, writer, origin = dispatcher(access)
    for _ in range(3):
        response = await edge.handle(Request(access.incoming.scope))
        assert response.status_code == 200 and bytes(response.body).endswith(
            b"rewritten/seg_000.ts\n#EXT-X-ENDLIST\n# for cred\n"
        )
        assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["set-cookie"] == "gw=1; Path=/vod/"  # the writer's cookies
        assert response.headers["cta-common-access-token"] == "renewed"  # the guard's headers
    assert writer.prepared == 1 and origin.requests == [f"{TITLE}v1/index.m3u8"]  # prepared once, then cached
    assert all(manifest is not None and manifest.chunks for manifest in writer.cookies_asked)


async def test_head_gets_the_headers_without_the_body() -> None:
    edge, _, _ = dispatcher(plain_access(f"{TITLE}v1/index.m3u8", method="HEAD"))
    response = await edge.handle(Request(plain_access(f"{TITLE}v1/index.m3u8", method="HEAD").incoming.scope))
    assert response.body == b"" and int(response.headers["content-length"]) > 0


async def test_everything_else_is_streamed_from_the_origin_with_the_writers_cookies() -> None:
    access = plain_access(f"{TITLE}v1/seg_000.ts")
    edge, writer, origin = dispatcher(access)
    response = await edge.handle(Request(access.incoming.scope))
    assert response.status_code == 200 and response.headers["set-cookie"] == "gw=1; Path=/vod/"
    assert writer.cookies_asked == [None] and writer.prepared == 0 and origin.requests == [f"{TITLE}v1/seg_000.ts"]


async def test_a_renewal_by_redirect_is_all_that_is_answered() -> None:
    access = plain_access(f"{TITLE}v1/index.m3u8")._replace(headers=(("Location", "/elsewhere"),), redirect_status=302)
    edge, writer, origin = dispatcher(access)
    response = await edge.handle(Request(access.incoming.scope))
    assert (response.status_code, response.headers["location"]) == (302, "/elsewhere")
    assert origin.requests == [] and writer.cookies_asked == [] and "set-cookie" not in response.headers


async def test_a_refusal_is_raised_for_the_apps_exception_handlers_to_answer() -> None:
    edge, writer, origin = dispatcher(error=TokenDenied(Denial.EXPIRED, "token expired"))
    with pytest.raises(TokenDenied):
        await edge.handle(Request(asgi_scope(f"{TITLE}v1/seg.ts")))
    assert origin.requests == [] and writer.cookies_asked == []
