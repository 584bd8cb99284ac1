"""500 concurrent segment downloads, with a hostile client holding slow downloads, through a real gateway
(`gateway serve`, its own process) in front of a real nginx origin: every viewer gets its segment or a typed, documented
overload answer with Retry-After (`503 origin_busy`, `429 too_many_downloads`), never a 504 or a broken
transfer; the hostile client holds no more than its download slots.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from gateway.config import OriginSettings
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.servers import nginx_static, serve_process

SECRET = b"\x03" * 32
RING = KeyRing((HmacKey("k1", SECRET),))
VIEWERS = 500
SEGMENT = bytes(range(256)) * 240  # 60 KiB, the size of a bundled 2 s TS segment
HUGE = 64 << 20  # what a slow reader asks for: more than loopback buffers hold, so its stream stays open
OVERLOAD = {(503, "origin_busy"), (429, "too_many_downloads")}


def token(session: str) -> str:
    return sign_grant(Grant(("/vod/t/",), 4_000_000_000, session_id=session), RING)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OriginSettings]]:
    root = tmp_path_factory.mktemp("origin")
    (root / "vod" / "t").mkdir(parents=True)
    (root / "vod" / "t" / "seg.ts").write_bytes(SEGMENT)
    with (root / "vod" / "t" / "huge.ts").open("wb") as huge:
        huge.truncate(HUGE)
    keys = "k1:" + base64.urlsafe_b64encode(SECRET).decode().rstrip("=")
    with nginx_static(root, tmp_path_factory.mktemp("nginx"), worker_connections=2048) as (origin_url, _):
        config = f'[[routes]]\nmount = "/vod/"\norigin = "{origin_url}vod/"\n'  # the [origin] defaults
        with serve_process(config, tmp_path_factory.mktemp("gateway"), keys) as url:
            yield url, OriginSettings()


def slow_reader(base: str, session: str) -> socket.socket:
    """A client that asks for a huge segment and never reads it."""
    host, port = base.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    target = f"/vod/t/huge.ts?token={token(session)}"
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def download_all(base: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=VIEWERS, max_keepalive_connections=VIEWERS)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as client:

        async def viewer(number: int) -> None:
            try:
                response = await client.get(f"{base}/vod/t/seg.ts?token={token(f'viewer-{number}')}")
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
                return
            code = response.headers.get("x-gateway-error", "")
            if response.status_code == 200 and response.content == SEGMENT:
                outcomes["200 whole"] += 1
            elif (response.status_code, code) in OVERLOAD and response.headers.get("retry-after") == "1":
                outcomes[f"{response.status_code} {code}"] += 1
            else:
                outcomes[f"{response.status_code} {code} ({len(response.content)} bytes)"] += 1

        await asyncio.gather(*(viewer(number) for number in range(VIEWERS)))
    return outcomes


def test_500_concurrent_downloads_get_their_segment_or_a_typed_overload_answer(
    gateway: tuple[str, OriginSettings],
) -> None:
    base, origin = gateway
    with ExitStack() as stack:
        hostile = [stack.enter_context(slow_reader(base, "hostile")) for _ in range(4 * origin.max_streams_per_client)]
        statuses = Counter(sock.recv(12)[9:12] for sock in hostile)  # the status of each, read from its line
        assert statuses == {b"200": origin.max_streams_per_client, b"429": 3 * origin.max_streams_per_client}
        outcomes = asyncio.run(download_all(base))
    unexpected = {outcome: n for outcome, n in outcomes.items() if outcome not in {"200 whole", *map(_name, OVERLOAD)}}
    assert not unexpected, outcomes
    assert outcomes["200 whole"] >= VIEWERS // 2, outcomes  # the hostile client did not take the pool


def _name(answer: tuple[int, str]) -> str:
    return f"{answer[0]} {answer[1]}"
