"""The gateway under a real uvicorn, in front of a real HTTP origin on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import m3u8
import pytest

from gateway.config import OriginSettings, Route, Settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.origin_tree import TITLE, build_origin_tree, write
from tests.support.servers import free_port, serve_app, static_origin

KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))


def settings_for(origin_url: str, **changes: object) -> Settings:
    fields: dict[str, object] = {"keys": KEYS, "routes": (Route(mount="/", origin=origin_url),)}
    fields.update(changes)
    return Settings(**fields)  # type: ignore[arg-type]


def token_for(prefix: str = TITLE, ttl: int = 600) -> str:
    return sign_grant(Grant((prefix,), int(time.time()) + ttl), KEYS)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, bytes], list[str], Path]]:
    root = tmp_path_factory.mktemp("origin")
    with static_origin(root) as (origin, seen):
        files = build_origin_tree(root, origin)
        with serve_app(build_app(settings_for(origin))) as gateway:
            yield gateway, files, seen, root


def uris_of(text: str, base: str) -> list[str]:
    """Every URI a player would request from a playlist, resolved against its URL (via the m3u8 package)."""
    playlist = m3u8.loads(text, uri=base)
    found = [p.uri for p in playlist.playlists] + [m.uri for m in playlist.media if m.uri]
    found += [p.uri for p in playlist.iframe_playlists]
    found += [s.uri for s in playlist.segments] + [k.uri for k in playlist.keys if k and k.uri]
    found += [s.init_section.uri for s in playlist.segments if s.init_section]
    return [urljoin(base, uri) for uri in dict.fromkeys(found)]


def test_player_walk_every_uri_is_tokenized_and_byte_identical(
    stack: tuple[str, dict[str, bytes], list[str], Path],
) -> None:
    gateway, files, _, _ = stack
    token = token_for()
    master_url = f"{gateway}{TITLE}master.m3u8?token={token}"
    fetched: dict[str, bytes] = {}
    with httpx.Client() as client:
        queue = [master_url]
        while queue:
            url = queue.pop()
            parts = urlsplit(url)
            if parts.netloc != urlsplit(gateway).netloc or parts.scheme != "http":
                assert "token=" not in url  # other hosts and skd:// are left alone
                continue
            response = client.get(url)
            assert response.status_code == 200, (url, response.text)
            assert parse_qs(parts.query)["token"] == [token], url
            fetched[parts.path] = response.content
            if parts.path.endswith(".m3u8"):
                assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
                assert response.headers["cache-control"] == "private, no-store"
                queue.extend(u for u in uris_of(response.text, url) if urlsplit(u).path not in fetched)
    media = {path: data for path, data in files.items() if not path.endswith(".m3u8")}
    assert {path: fetched.get(path) for path in media} == media  # every segment, key, init: identical
    assert {p for p in files if p.endswith(".m3u8")} <= set(fetched)  # every playlist was reached


def test_playlists_change_only_inside_uris(stack: tuple[str, dict[str, bytes], list[str], Path]) -> None:
    gateway, files, _, _ = stack
    token = token_for()
    body = httpx.get(f"{gateway}{TITLE}master.m3u8?token={token}").content
    original = files[TITLE + "master.m3u8"]
    assert body.count(b"\r\n") == original.count(b"\r\n")
    for before, after in zip(original.split(b"\r\n"), body.split(b"\r\n"), strict=True):
        if before.startswith(b"#") and b'URI="' not in before:
            assert before == after
    assert b'URI="skd://license.example/k1"' in body  # non-HTTP schemes are left alone
    assert body.endswith(b"\r\nhttps://other-cdn.example/backup/index.m3u8")  # other hosts too, untokenized
    assert f"/vod/title-9000/v2/index.m3u8?quality=hd&token={token}".encode() in body  # absolute -> gateway


def test_content_types_and_key_caching(stack: tuple[str, dict[str, bytes], list[str], Path]) -> None:
    gateway, _, _, root = stack
    write(root, TITLE + "v1/seg.ts", b"\x47" * 188)
    token = token_for()
    ts = httpx.get(f"{gateway}{TITLE}v1/seg.ts?token={token}")
    key = httpx.get(f"{gateway}{TITLE}keys/k1.key?token={token}")
    assert ts.headers["content-type"] == "video/mp2t"
    assert key.headers["content-type"] == "application/octet-stream"
    assert key.headers["cache-control"] == "private, no-store"


def test_range_requests_pass_through_to_a_real_nginx(tmp_path: Path) -> None:
    from tests.support.servers import nginx_static

    root = tmp_path / "www"
    data = bytes(range(256)) * 40
    write(root, TITLE + "v2/seg_001.m4s", data)
    with (
        nginx_static(root, tmp_path / "nginx") as (origin, _),
        serve_app(build_app(settings_for(origin))) as gateway,
    ):
        url = f"{gateway}{TITLE}v2/seg_001.m4s?token={token_for()}"
        response = httpx.get(url, headers={"range": "bytes=100-199"})
        assert response.status_code == 206 and response.content == data[100:200]
        assert response.headers["content-range"] == f"bytes 100-199/{len(data)}"
        etag = httpx.get(url).headers["etag"]
        assert httpx.get(url, headers={"if-none-match": etag}).status_code == 304


def test_playlist_prepared_once_per_origin_version(
    stack: tuple[str, dict[str, bytes], list[str], Path],
) -> None:
    gateway, _, seen, _ = stack
    before = seen.count(TITLE + "v2/index.m3u8")
    for _ in range(5):
        assert httpx.get(f"{gateway}{TITLE}v2/index.m3u8?token={token_for()}").status_code == 200
    assert seen.count(TITLE + "v2/index.m3u8") - before <= 1


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("", 401, "missing"),
        ("?token=", 401, "missing"),
        ("?token=not-a-token", 403, "malformed"),
        ("?token=AQACazFrSdIAAQ52b2QvdGl0bGUtOTAwMEZwv5Bs106RZuozU8U5yOM", 403, "bad_signature"),
    ],
)
def test_refusals_are_typed_and_logged(
    stack: tuple[str, dict[str, bytes], list[str], Path],
    caplog: pytest.LogCaptureFixture,
    query: str,
    status: int,
    reason: str,
) -> None:
    gateway, _, seen, _ = stack
    before = len(seen)
    with caplog.at_level(logging.INFO, logger="gateway.http.errors"):
        response = httpx.get(f"{gateway}{TITLE}v1/seg_000.m4s{query}")
    assert response.status_code == status
    assert response.json()["error"] == reason and response.headers["x-token-denial"] == reason
    assert response.headers["access-control-allow-origin"] == "*"  # a player can read the reason
    assert len(seen) == before  # the origin was never contacted
    assert f"denied reason={reason}" in caplog.text


def test_expired_and_foreign_prefix_tokens(stack: tuple[str, dict[str, bytes], list[str], Path]) -> None:
    gateway, _, _, _ = stack
    expired = sign_grant(Grant((TITLE,), int(time.time()) - 60), KEYS)
    response = httpx.get(f"{gateway}{TITLE}v1/seg_000.m4s?token={expired}")
    assert response.status_code == 403 and response.json()["error"] == "expired"
    other = token_for("/vod/title-9001/")
    assert httpx.get(f"{gateway}{TITLE}v1/seg_000.m4s?token={other}").json()["error"] == "acl"


def test_forged_signature_with_a_foreign_key(stack: tuple[str, dict[str, bytes], list[str], Path]) -> None:
    gateway, _, _, _ = stack
    forged = sign_grant(Grant((TITLE,), int(time.time()) + 60), KeyRing((HmacKey("k1", b"\x09" * 32),)))
    response = httpx.get(f"{gateway}{TITLE}master.m3u8?token={forged}")
    assert response.status_code == 403 and response.json()["error"] == "bad_signature"


def test_absolute_form_target_never_reaches_another_host(
    stack: tuple[str, dict[str, bytes], list[str], Path],
) -> None:
    from tests.support.servers import raw_http_get

    gateway, files, _, _ = stack
    decoy_port = free_port()
    decoy = socket.socket()
    decoy.bind(("127.0.0.1", decoy_port))
    decoy.listen()
    decoy.settimeout(0.5)
    target = f"http://127.0.0.1:{decoy_port}{TITLE}v1/seg_000.m4s?token={token_for()}".encode()
    status, body = raw_http_get(gateway, target)
    with pytest.raises(TimeoutError):
        decoy.accept()  # nobody connected to the host named in the request target
    decoy.close()
    assert status in (200, 400, 403)
    if status == 200:
        assert body == files[TITLE + "v1/seg_000.m4s"]  # served from the configured origin only


def _slow_origin(port: int, delay: float, stop: threading.Event) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.recv(4096)
        time.sleep(delay)
        conn.close()
    server.close()


def test_origin_down_is_502_and_slow_is_504() -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    with serve_app(build_app(settings_for(dead))) as gateway:
        response = httpx.get(f"{gateway}{TITLE}master.m3u8?token={token_for()}")
        assert response.status_code == 502 and "unreachable" in response.json()["detail"]
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(target=_slow_origin, args=(port, 1.5, stop), daemon=True)
    thread.start()
    slow = settings_for(f"http://127.0.0.1:{port}/", origin=OriginSettings(read_timeout_seconds=0.3))
    try:
        with serve_app(build_app(slow)) as gateway:
            for path in ("master.m3u8", "v1/seg_000.m4s"):
                response = httpx.get(f"{gateway}{TITLE}{path}?token={token_for()}", timeout=10)
                assert response.status_code == 504 and "timed out" in response.json()["detail"], path
    finally:
        stop.set()
        thread.join()


def test_oversized_and_malformed_playlists_get_clear_errors(tmp_path: Path) -> None:
    write(tmp_path, TITLE + "huge.m3u8", "#EXTM3U\n" + "#EXTINF:2,\nseg.ts\n" * 20000)
    write(tmp_path, TITLE + "html.m3u8", "<html>not a playlist</html>")
    write(tmp_path, TITLE + "nul.m3u8", b"#EXTM3U\n\x00\x00\n")
    with (
        static_origin(tmp_path) as (origin, _),
        serve_app(build_app(settings_for(origin, max_manifest_bytes=65536))) as gw,
    ):
        huge = httpx.get(f"{gw}{TITLE}huge.m3u8?token={token_for()}")
        assert huge.status_code == 502 and "65536-byte limit" in huge.json()["detail"]
        for name in ("html.m3u8", "nul.m3u8"):
            bad = httpx.get(f"{gw}{TITLE}{name}?token={token_for()}")
            assert bad.status_code == 502 and bad.json()["error"] == "bad_manifest", name
        missing = httpx.get(f"{gw}{TITLE}nope.ts?token={token_for()}")
        assert missing.status_code == 404
