"""Every hostile path, sent byte for byte to a real uvicorn gateway in front of a real nginx origin.

nginx decodes and resolves dot segments itself, so a path the gateway let through and nginx resolved
elsewhere would show up in nginx's access log or as the secret's bytes. Neither may happen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Route, Settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.origin_tree import write
from tests.support.servers import nginx_static, raw_http_get, serve_app
from tests.tokens.test_acl_hostile_paths import HOSTILE_PATHS

KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
SECRET = b"SECRET-OF-TITLE-9001" * 10


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("acl")
    root = tmp / "www"
    write(root, "/vod/title-9000/seg.ts", b"\x47" * 188)
    for name in ("seg.ts", "secret.ts"):
        write(root, f"/vod/title-9001/{name}", SECRET)
        write(root, f"/vod/title-90001/{name}", SECRET)
    write(root, "/etc/passwd", SECRET)
    with nginx_static(root, tmp / "nginx") as (origin, access_log):
        settings = Settings(keys=KEYS, routes=(Route(mount="/", origin=origin),))
        with serve_app(build_app(settings)) as url:
            yield url, access_log


def test_control_a_plain_request_is_served(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    token = sign_grant(Grant(("/vod/title-9000/",), int(time.time()) + 60), KEYS)
    status, body = raw_http_get(url, b"/vod/title-9000/seg.ts?token=" + token.encode())
    assert status == 200 and body == b"\x47" * 188


@pytest.mark.parametrize("raw", HOSTILE_PATHS, ids=lambda raw: raw[:50].decode("latin-1"))
def test_hostile_path_never_reaches_nginx_outside_the_prefix(gateway: tuple[str, Path], raw: bytes) -> None:
    url, access_log = gateway
    token = sign_grant(Grant(("/vod/title-9000/",), int(time.time()) + 60), KEYS).encode()
    lines_before = access_log.read_bytes().count(b"\n") if access_log.exists() else 0
    separator = b"&" if b"?" in raw else b"?"
    try:
        status, body = raw_http_get(url, raw + separator + b"token=" + token)
    except ConnectionError:
        return  # the server dropped an unparseable request line: refused
    new_log = access_log.read_bytes().splitlines()[lines_before:] if access_log.exists() else []
    assert SECRET not in body
    if raw.startswith(b"http://") and status == 200:
        # Absolute-form (RFC 9112 §3.2.2): uvicorn hands us only the path; the named host is never
        # contacted, and the path is checked like any other. Only the in-prefix file may be served.
        assert body == b"\x47" * 188
        assert len(new_log) == 1 and b"GET /vod/title-9000/seg.ts" in new_log[0]
        return
    assert status in (400, 401, 403, 404, 414), status
    assert new_log == [], new_log
