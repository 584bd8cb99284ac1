"""The session service (gateway/sessions/service.py) called directly, in simulated time: no HTTP.

Create, refresh and revoke; the title prefix a session covers; IP binding; the hard cap no token outlives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from typing import Any

import pytest

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.errors import Denial, TokenDenied
from gateway.sessions.entitlements import CatalogEntitlements, EntitlementRefused, Refusal, Title, Viewer
from gateway.sessions.revocations import MemoryRevocations
from gateway.sessions.service import IssuedToken, SessionService
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import verify_signature

NOW = 1_800_000_000
RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
MASTER = "/vod/title-9000/master.m3u8"
TTL, CAP = 300, 4 * 3600
PAID = Viewer("u-paid", "Paula", "paid", "NL")
FREE = Viewer("u-free", "Fred", "free", "NL")
CATALOG = CatalogEntitlements(
    users={"paid": PAID, "free": FREE},
    titles=(
        Title("/vod/title-9000/", "Title 9000", paid=True, allowed_countries=frozenset({"NL", "DE"})),
        Title("/vod/trailer/", "Trailer"),
        Title("/vod/series/show/", "Show"),
    ),
)
ROUTES = (
    Route(mount="/vod/", origin="http://origin.test/vod/"),
    Route(mount="/cookie/vod/", origin="http://origin.test/vod/", delivery=Delivery.COOKIE),
    Route(mount="/hybrid/vod/", origin="http://origin.test/vod/", delivery=Delivery.HYBRID),
    Route(mount="/pathmode/vod/", origin="http://origin.test/vod/", delivery=Delivery.PATH),
)


def service(
    *,
    keys: KeyRing = RING,
    catalog: CatalogEntitlements = CATALOG,
    revocations: MemoryRevocations | None = None,
    **session_settings: Any,
) -> SessionService:
    lifetimes = {"token_ttl_seconds": TTL, "media_ttl_seconds": TTL, "max_life_seconds": CAP}
    sessions = SessionSettings(**{**lifetimes, **session_settings})
    settings = Settings(keys=keys, routes=ROUTES, sessions=sessions, catalog=catalog, leeway_seconds=5)
    return SessionService(settings, catalog, revocations or MemoryRevocations())


def create(svc: SessionService, asset: str = MASTER, *, now: float = NOW, **kw: Any) -> IssuedToken:
    fields: dict[str, Any] = {"credential": "paid", "client_ip": None, "country": None, **kw}
    return asyncio.run(svc.create(asset=asset, now=now, **fields))


def refresh(svc: SessionService, issued: IssuedToken, *, now: float, **kw: Any) -> IssuedToken:
    fields: dict[str, Any] = {"client_ip": None, "country": None, **kw}
    return asyncio.run(svc.refresh(session_id=issued.session_id, token=issued.token, now=now, **fields))


def refusal(call: Any) -> Refusal:
    with pytest.raises(EntitlementRefused) as info:
        call()
    assert info.value.detail
    return info.value.reason


def denial(call: Any) -> TokenDenied:
    with pytest.raises(TokenDenied) as info:
        call()
    return info.value


# -- create -----------------------------------------------------------------------------------------------


def test_a_session_grants_the_titles_prefix_until_the_token_ttl_within_the_cap() -> None:
    issued = create(service())
    grant = verify_signature(issued.token, RING)
    assert grant.path_prefixes == ("/vod/title-9000/",) and issued.title_prefix == "/vod/title-9000/"
    assert (grant.expires_at, grant.session_ends_at) == (NOW + TTL, NOW + CAP)
    assert (issued.expires_at, issued.session_ends_at) == (NOW + TTL, NOW + CAP)
    assert grant.session_id == issued.session_id and grant.user_id == "u-paid"
    assert grant.scope is Scope.ALL and grant.client_network is None
    assert issued.mode == "query" and issued.playback_url == f"{MASTER}?token={issued.token}"
    assert issued.refresh_url == f"/api/sessions/{issued.session_id}/refresh"
    assert set(issued.as_json()) == {f.name for f in dataclasses.fields(IssuedToken)} - {"grant"}  # grant: server-side


def test_every_session_has_its_own_id() -> None:
    svc = service()
    assert len({create(svc).session_id for _ in range(50)}) == 50


def test_the_session_token_never_outlives_the_cap() -> None:
    issued = create(service(token_ttl_seconds=CAP))
    assert issued.expires_at == issued.session_ends_at == NOW + CAP


@pytest.mark.parametrize(
    ("asset", "depth", "prefix"),
    [
        ("/vod/title-9000/master.m3u8", 0, "/vod/title-9000/"),
        ("/vod/title-9000/hls/master.m3u8", 0, "/vod/title-9000/hls/"),  # the master's directory
        ("/vod/title-9000/hls/master.m3u8", 1, "/vod/title-9000/"),  # the first segment below the mount
        ("/vod/series/show/s1/master.m3u8", 2, "/vod/series/show/"),
        ("/vod/title-9000/manifest.mpd", 1, "/vod/title-9000/"),
    ],
)
def test_the_title_prefix(asset: str, depth: int, prefix: str) -> None:
    issued = create(service(title_root_depth=depth), asset)
    assert issued.title_prefix == prefix and verify_signature(issued.token, RING).path_prefixes == (prefix,)


def test_an_asset_at_the_title_depth_itself_is_refused() -> None:
    assert refusal(lambda: create(service(title_root_depth=2), "/vod/title-9000/master.m3u8")) is Refusal.UNKNOWN_ASSET


@pytest.mark.parametrize(
    ("credential", "asset", "country", "reason"),
    [
        (None, MASTER, None, Refusal.UNAUTHENTICATED),
        ("", MASTER, None, Refusal.UNAUTHENTICATED),
        ("nobody", MASTER, None, Refusal.UNAUTHENTICATED),
        ("free", MASTER, None, Refusal.NOT_ENTITLED),
        ("paid", MASTER, "BR", Refusal.GEO_BLOCKED),  # the trusted country wins over the home country
        ("paid", "/vod/unknown/master.m3u8", None, Refusal.UNKNOWN_ASSET),
        ("paid", "/vod/title-9000/seg_000.ts", None, Refusal.UNKNOWN_ASSET),  # not a manifest
        ("paid", "/other/title-9000/master.m3u8", None, Refusal.UNKNOWN_ASSET),  # no route
        ("paid", "/vod/title-9000/../trailer/master.m3u8", None, Refusal.UNKNOWN_ASSET),  # escapes its prefix
        ("paid", "/vod/title-9000/%2e%2e/trailer/master.m3u8", None, Refusal.UNKNOWN_ASSET),
        ("paid", "/vod/title-9000/master.m3u8\x00", None, Refusal.UNKNOWN_ASSET),
    ],
)
def test_refusals(credential: str | None, asset: str, country: str | None, reason: Refusal) -> None:
    assert refusal(lambda: create(service(), asset, credential=credential, country=country)) is reason


def test_a_free_title_for_a_free_viewer_and_a_listed_country() -> None:
    assert create(service(), "/vod/trailer/master.m3u8", credential="free").title_prefix == "/vod/trailer/"
    assert create(service(), country="DE").title_prefix == "/vod/title-9000/"


@pytest.mark.parametrize(
    ("mount", "mode", "playback"),
    [
        ("/cookie/vod/", "cookie", "{asset}"),
        ("/hybrid/vod/", "hybrid", "{asset}?token={token}"),
        ("/pathmode/vod/", "path", "/t/{token}{asset}"),
    ],
)
def test_delivery_modes_shape_the_playback_url(mount: str, mode: str, playback: str) -> None:
    asset = mount + "title-9000/master.m3u8"
    issued = create(service(), asset)
    assert issued.mode == mode and issued.playback_url == playback.format(asset=asset, token=issued.token)
    # A path token is inherited by every relative URI, which cannot be renewed: it lives as long as the session.
    assert issued.expires_at == (NOW + CAP if mode == "path" else NOW + TTL)


# -- IP binding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "address", "network"),
    [
        ({"ip_binding": True}, "203.0.113.9", "203.0.113.9/32"),
        ({"ip_binding": True}, "2001:db8:5:6:7::1", "2001:db8:5:6::/64"),
        ({"ip_binding": True, "ipv4_prefix": 24, "ipv6_prefix": 48}, "203.0.113.9", "203.0.113.0/24"),
        ({"ip_binding": True, "ipv4_prefix": 24, "ipv6_prefix": 48}, "2001:db8:5:6:7::1", "2001:db8:5::/48"),
        ({"ip_binding": False}, "203.0.113.9", None),
        ({"ip_binding": True}, None, None),  # no known address: nothing to bind to
    ],
)
def test_ip_binding(settings: dict[str, Any], address: str | None, network: str | None) -> None:
    client_ip = ipaddress.ip_address(address) if address else None
    issued = create(service(**settings), client_ip=client_ip)
    bound = verify_signature(issued.token, RING).client_network
    assert (str(bound) if bound else None) == network


def test_a_bound_session_refreshes_from_its_network_only_and_revokes_from_anywhere() -> None:
    svc = service(ip_binding=True, ipv4_prefix=24)
    issued = create(svc, client_ip=ipaddress.ip_address("203.0.113.9"))
    assert refresh(svc, issued, now=NOW + 10, client_ip=ipaddress.ip_address("203.0.113.200")).token
    for elsewhere in (ipaddress.ip_address("198.51.100.1"), ipaddress.ip_address("2001:db8::1"), None):
        denied = denial(lambda ip=elsewhere: refresh(svc, issued, now=NOW + 10, client_ip=ip))
        assert denied.reason is Denial.IP
    svc.revoke(session_id=issued.session_id, token=issued.token, now=NOW + 20)
    assert denial(lambda: refresh(svc, issued, now=NOW + 30)).reason is Denial.REVOKED


# -- refresh ----------------------------------------------------------------------------------------------


def test_an_expired_token_refreshes_to_the_same_grant_with_a_new_expiry() -> None:
    svc = service()
    issued = create(svc)
    later = NOW + 3 * TTL  # the token is long expired: its signature and its session are what count
    renewed = refresh(svc, issued, now=later)
    before, after = verify_signature(issued.token, RING), verify_signature(renewed.token, RING)
    assert renewed.token != issued.token and renewed.session_id == issued.session_id
    assert after.expires_at == later + TTL and renewed.expires_at == later + TTL
    assert dataclasses.replace(after, expires_at=before.expires_at) == before  # nothing else changed
    assert renewed.session_ends_at == NOW + CAP and renewed.playback_url == f"/vod/title-9000/?token={renewed.token}"


def test_refreshing_all_session_long_never_passes_the_cap_and_stops_there() -> None:
    svc = service()
    issued = create(svc)
    now = NOW
    while now + TTL < NOW + CAP:
        now += TTL - 1
        issued = refresh(svc, issued, now=now)
        assert issued.expires_at == min(now + TTL, NOW + CAP) <= NOW + CAP
    assert refresh(svc, issued, now=NOW + CAP).expires_at == NOW + CAP  # the last second of the session
    ended = denial(lambda: refresh(svc, issued, now=NOW + CAP + 1))
    assert ended.reason is Denial.SESSION_ENDED and "maximum life" in ended.detail


def test_a_refresh_uses_the_newest_key() -> None:
    issued = create(service())
    rotated = KeyRing((HmacKey("k2", b"\x02" * 32), *RING.keys))
    renewed = refresh(service(keys=rotated), issued, now=NOW + 1)
    assert (
        verify_signature(issued.token, RING).key_id == "k1" and verify_signature(renewed.token, rotated).key_id == "k2"
    )


def test_a_token_refreshes_its_own_session_only() -> None:
    svc = service()
    mine, other = create(svc), create(svc)
    stolen = dataclasses.replace(other, token=mine.token)  # another session's id with my token
    assert denial(lambda: refresh(svc, stolen, now=NOW)).reason is Denial.SCOPE


def test_a_token_without_a_session_refreshes_nothing() -> None:
    from gateway.tokens.native import sign_grant

    plain = sign_grant(Grant(("/vod/title-9000/",), NOW + 60, session_id="S1"), RING)  # no session cap
    denied = denial(
        lambda: asyncio.run(service().refresh(session_id="S1", token=plain, client_ip=None, country=None, now=NOW))
    )
    assert denied.reason is Denial.SCOPE


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), Denial.BAD_SIGNATURE),
        (lambda t: "not-a-token", Denial.MALFORMED),
    ],
)
def test_a_forged_token_refreshes_nothing(mangle: Any, reason: Denial) -> None:
    svc = service()
    issued = dataclasses.replace(create(svc), token=mangle(create(svc).token))
    assert denial(lambda: refresh(svc, issued, now=NOW)).reason is reason


def test_refresh_checks_entitlement_again() -> None:
    svc = service()
    issued = create(svc)
    assert refusal(lambda: refresh(svc, issued, now=NOW + 1, country="BR")) is Refusal.GEO_BLOCKED
    downgraded = CatalogEntitlements(users={"paid": dataclasses.replace(PAID, plan="free")}, titles=CATALOG.titles)
    assert refusal(lambda: refresh(service(catalog=downgraded), issued, now=NOW + 1)) is Refusal.NOT_ENTITLED
    gone = CatalogEntitlements(users={}, titles=CATALOG.titles)
    assert refusal(lambda: refresh(service(catalog=gone), issued, now=NOW + 1)) is Refusal.NOT_ENTITLED


# -- revoke -----------------------------------------------------------------------------------------------


def test_revocation_ends_every_token_of_the_session_until_its_cap() -> None:
    revocations = MemoryRevocations()
    svc = service(revocations=revocations)
    issued, other = create(svc), create(svc)
    renewed = refresh(svc, issued, now=NOW + 100)
    svc.revoke(session_id=issued.session_id, token=issued.token, now=NOW + 200)  # an older token revokes too
    for token in (issued, renewed):
        assert denial(lambda t=token: refresh(svc, t, now=NOW + 201)).reason is Denial.REVOKED
    assert refresh(svc, other, now=NOW + 201).session_id == other.session_id  # other sessions play on
    assert revocations.is_revoked(issued.session_id, NOW + CAP + 5)  # kept until the cap plus the leeway
    assert not revocations.is_revoked(issued.session_id, NOW + CAP + 6)


def test_revoking_needs_a_token_of_that_session() -> None:
    svc = service()
    mine, other = create(svc), create(svc)
    denied = denial(lambda: svc.revoke(session_id=other.session_id, token=mine.token, now=NOW))
    assert denied.reason is Denial.SCOPE
    assert refresh(svc, other, now=NOW + 1).session_id == other.session_id


def test_an_ended_session_cannot_be_revoked_or_refreshed() -> None:
    svc = service()
    issued = create(svc)
    assert denial(lambda: svc.revoke(session_id=issued.session_id, token=issued.token, now=NOW + CAP + 1)).reason is (
        Denial.SESSION_ENDED
    )
