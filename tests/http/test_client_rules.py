"""Per-title Referer and User-Agent rules (gateway/sessions/client_rules.py): weak hot-linking controls,
checked at session creation and on every playlist request by the gate, never on segments.

The rules themselves first (pure), then the config that builds them, then the real app: the gateway under
uvicorn in front of a real HTTP origin on 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from gateway.config import Route, Settings, load_settings
from gateway.errors import ClientRefused, ConfigError
from gateway.http.app import build_app
from gateway.sessions.client_rules import ClientRules
from gateway.sessions.entitlements import CatalogEntitlements, Title, Viewer
from gateway.tokens.keys import HmacKey, KeyRing
from tests.support.origin_tree import TITLE, build_origin_tree
from tests.support.servers import serve_app, static_origin

PLAYER = "https://player.example/watch?v=9000"
ELSEWHERE = "https://hotlinker.example/embed"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"
RULES = ClientRules(
    referer_hosts=("player.example", "*.example.com"),
    user_agent_allow=(re.compile("mozilla/", re.I), re.compile("AppleCoreMedia", re.I)),
    user_agent_deny=(re.compile("headless", re.I),),
)


def refused(rules: ClientRules, referer: str | None, agent: str | None = BROWSER) -> str | None:
    try:
        rules.check(referer, agent)
    except ClientRefused as refusal:
        assert refusal.status == 403 and refusal.detail
        return refusal.code
    return None


@pytest.mark.parametrize(
    ("referer", "code"),
    [
        (PLAYER, None),
        ("http://PLAYER.example:8443/x", None),  # any scheme of the web, any port, any case
        ("https://player.example./", None),  # the fully qualified spelling of the same host
        ("https://cdn.example.com/p", None),
        ("https://a.b.example.com/p", None),
        ("https://example.com/p", "referer_refused"),  # "*." is subdomains only
        ("https://badexample.com/p", "referer_refused"),  # whole labels, never a suffix of a label
        ("https://player.example.evil.test/", "referer_refused"),
        ("https://evil.test/?https://player.example/", "referer_refused"),
        ("https://user@evil.test/player.example", "referer_refused"),
        ("android-app://player.example/", "referer_refused"),  # not a web page
        ("https://[::1/", "referer_refused"),  # unparseable
        (None, "referer_refused"),  # allow_empty_referer is false by default
        ("", "referer_refused"),
    ],
)
def test_referer_hosts_match_whole_host_names(referer: str | None, code: str | None) -> None:
    assert refused(RULES, referer) == code


def test_an_empty_referer_passes_only_when_allowed() -> None:
    allowing = ClientRules(referer_hosts=("player.example",), allow_empty_referer=True)
    assert refused(allowing, None) is None and refused(allowing, "") is None
    assert refused(allowing, ELSEWHERE) == "referer_refused"  # a referer that is sent must still match


def test_user_agent_deny_wins_over_allow_and_allow_is_a_list() -> None:
    assert refused(RULES, PLAYER, "AppleCoreMedia/1.0.0.21C66 (iPhone)") is None
    assert refused(RULES, PLAYER, "Mozilla/5.0 HeadlessChrome/131") == "user_agent_refused"
    assert refused(RULES, PLAYER, "curl/8.5.0") == "user_agent_refused"
    assert refused(RULES, PLAYER, None) == "user_agent_refused"  # no header: an empty agent, not allowed
    assert refused(ClientRules(), None, None) is None  # no rules, nothing refused


def test_a_refusal_quotes_only_the_site_bounded_and_printable() -> None:
    """A page's path and query may carry its own credentials: the detail (and so the log) names the site only."""
    with pytest.raises(ClientRefused) as info:
        RULES.check("https://user:pw@evil.test:8443/watch?token=s3cr3t#x", BROWSER)
    assert info.value.detail == "referer 'https://evil.test:8443' is not an allowed site for this title"
    with pytest.raises(ClientRefused) as info:
        RULES.check("android-app://com.example/?token=s3cr3t", BROWSER)
    assert "s3cr3t" not in info.value.detail
    with pytest.raises(ClientRefused) as info:
        RULES.check(PLAYER, "Mozilla/5.0 \x07 HeadlessChrome " + "x" * 500)
    assert info.value.detail.isprintable() and len(info.value.detail) < 160


# --- configuration ------------------------------------------------------------------------------------

KEY = "k1:" + "A" * 43
BASE = f'[keys]\nring = "{KEY}"\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:9/"\n'


def load(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + body)
    return load_settings(path, {})


def test_title_rules_load_from_the_config(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[[titles]]\nprefix = "/vod/title-9000/"\nreferer_hosts = ["Player.Example", "*.example.com"]\n'
        'allow_empty_referer = true\nuser_agent_allow = ["Mozilla/"]\nuser_agent_deny = ["wget|curl"]\n'
        '[[titles]]\nprefix = "/vod/free/"\n',
    )
    rules = settings.catalog.titles[0].client_rules
    assert rules is not None and rules.referer_hosts == ("player.example", "*.example.com")
    assert rules.allow_empty_referer and refused(rules, None, "Wget/1.21") == "user_agent_refused"
    assert settings.catalog.titles[1].client_rules is None


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ('referer_hosts = ["https://player.example/"]', "is not a host name"),
        ('referer_hosts = ["player.example:443"]', "is not a host name"),
        ('referer_hosts = ["*player.example"]', "is not a host name"),
        ('referer_hosts = "player.example"', "titles.referer_hosts must be a list"),
        ("allow_empty_referer = true", "allow_empty_referer needs referer_hosts"),
        ('referer_hosts = ["a.example"]\nallow_empty_referer = "yes"', "must be true or false"),
        ('user_agent_deny = ["(unclosed"]', "is not a regular expression"),
        ('referer_host = ["player.example"]', "unknown key 'referer_host' in [[titles]] #1"),
    ],
)
def test_nonsense_title_rules_fail_at_start_up(tmp_path: Path, title: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, f'[[titles]]\nprefix = "/vod/title-9000/"\n{title}\n')


# --- the real app -------------------------------------------------------------------------------------

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("origin")
    with static_origin(root) as (origin, _):
        build_origin_tree(root, origin)
        catalog = CatalogEntitlements(
            users={"viewer": Viewer("u-1", "Vi", "paid")},
            titles=(Title(TITLE, "Title 9000", client_rules=RULES),),
        )
        settings = Settings(keys=RING, routes=(Route(mount="/", origin=origin),), catalog=catalog)
        with serve_app(build_app(settings)) as url:
            yield url


def create(gateway: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway + "/api/sessions",
        json={"asset": TITLE + "master.m3u8"},
        headers={"authorization": "Bearer viewer", **headers},
        timeout=5,
    )


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=5)


def test_session_creation_applies_the_titles_rules(gateway: str) -> None:
    assert create(gateway, referer=PLAYER, **{"user-agent": BROWSER}).status_code == 201
    for headers, code in [
        ({"referer": ELSEWHERE, "user-agent": BROWSER}, "referer_refused"),
        ({"user-agent": BROWSER}, "referer_refused"),
        ({"referer": PLAYER, "user-agent": "curl/8.5.0"}, "user_agent_refused"),
    ]:
        answer = create(gateway, **headers)
        assert answer.status_code == 403 and answer.headers["x-gateway-error"] == code, answer.text
        assert answer.json()["error"] == code


def test_playlists_are_refused_to_other_sites_and_segments_are_not_checked(gateway: str) -> None:
    playback = create(gateway, referer=PLAYER, **{"user-agent": BROWSER}).json()["playback_url"]
    ok = {"referer": PLAYER, "user-agent": BROWSER}
    master = get(gateway + playback, **ok)
    assert master.status_code == 200 and master.text.startswith("#EXTM3U")
    variant = urljoin(gateway + playback, next(line for line in master.text.splitlines() if "v1/index" in line))
    media = get(variant, **ok)
    assert media.status_code == 200
    segment = urljoin(variant, next(line for line in media.text.splitlines() if line.startswith("seg_")))
    for url in (gateway + playback, variant):  # the master and a media playlist alike
        for headers, code in [
            ({"referer": ELSEWHERE, "user-agent": BROWSER}, "referer_refused"),
            ({"user-agent": BROWSER}, "referer_refused"),
            ({"referer": PLAYER, "user-agent": "Mozilla/5.0 HeadlessChrome/131"}, "user_agent_refused"),
        ]:
            answer = get(url, **headers)
            assert answer.status_code == 403 and answer.headers["x-gateway-error"] == code, (url, headers)
    # Segments may be served by a CDN that never sees these rules: the gateway does not pretend otherwise.
    assert get(segment, referer=ELSEWHERE, **{"user-agent": "curl/8.5.0"}).status_code == 200


def test_the_rules_come_after_the_token(gateway: str) -> None:
    """A request without a token is refused as such; the rules never tell an unauthorised client more."""
    answer = get(gateway + TITLE + "master.m3u8", referer=ELSEWHERE)
    assert answer.status_code == 401 and answer.headers["x-token-denial"] == "missing"
