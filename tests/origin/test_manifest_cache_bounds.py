"""The manifest cache under hostile origins: bounded bytes, a deadline for the whole manifest, and large
manifests prepared without stalling the event loop (against real HTTP origins on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import OriginSettings
from gateway.errors import OriginTimeout
from gateway.manifests.hls import prepare_playlist
from gateway.manifests.template import PreparedManifest
from gateway.manifests.uris import with_query_slot
from gateway.origin.client import OriginClient
from gateway.origin.manifest_cache import ManifestCache
from tests.support.servers import static_origin


def playlist(segments: int) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2"]
    lines += [f"#EXTINF:2.0,\nseg_{i:06d}.ts" for i in range(segments)]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def prepare(body: bytes) -> PreparedManifest:
    """What the edge does: a token slot on every URI."""
    return prepare_playlist(body, lambda uri, place: with_query_slot(uri, "token", place.slot))


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with static_origin(tmp_path) as (url, _):
        yield url, tmp_path


async def test_a_large_manifest_is_prepared_without_stalling_the_event_loop(origin: tuple[str, Path]) -> None:
    url, root = origin
    (root / "big.m3u8").write_bytes(playlist(150_000))  # ~3.8 MB: ~0.3 s to prepare on this machine
    client = OriginClient(OriginSettings())
    cache = ManifestCache(client, OriginSettings(), max_bytes=16 * 1024 * 1024)
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:  # what every other viewer on this instance feels
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            gaps.append(time.perf_counter() - before - 0.005)

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    prepared = await cache.get(url + "big.m3u8", "v", prepare, now=0)
    elapsed = time.perf_counter() - started
    done.set()
    await beat
    await client.aclose()
    assert len(prepared.chunks) > 100_000 and elapsed > 0.1
    assert max(gaps) < 0.1, f"the event loop stalled {max(gaps):.3f} s while preparing (took {elapsed:.2f} s)"


async def test_the_cache_is_bounded_in_bytes_not_only_entries(origin: tuple[str, Path]) -> None:
    url, root = origin
    for name in "abcd":
        (root / f"{name}.m3u8").write_bytes(playlist(2000))  # ~50 KB each, ~110 KB prepared
    client = OriginClient(OriginSettings())
    one = prepare(playlist(2000)).size_bytes
    cache = ManifestCache(client, OriginSettings(), max_bytes=1 << 20, max_cache_bytes=int(2.5 * one))
    for name in "abcd":
        await cache.get(f"{url}{name}.m3u8", "v", prepare, now=0)
        assert cache.cached_bytes <= int(2.5 * one)
    fetches = cache.origin_fetches
    await cache.get(f"{url}d.m3u8", "v", prepare, now=0)  # the newest two stay
    await cache.get(f"{url}c.m3u8", "v", prepare, now=0)
    assert cache.origin_fetches == fetches
    await cache.get(f"{url}a.m3u8", "v", prepare, now=0)  # the oldest was evicted
    assert cache.origin_fetches == fetches + 1
    small = ManifestCache(client, OriginSettings(), max_bytes=1 << 20, max_cache_bytes=one // 2)
    await small.get(f"{url}a.m3u8", "v", prepare, now=0)  # bigger than the whole budget: served, not kept
    assert small.cached_bytes == 0
    await small.get(f"{url}a.m3u8", "v", prepare, now=0)
    assert small.origin_fetches == 2
    await client.aclose()


@pytest.fixture
def dripping_origin() -> Iterator[str]:
    """Answers 200 at once, then sends a playlist one byte every 50 ms: no read ever times out."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\n\r\n")
                for byte in playlist(1000):
                    if stop.wait(0.05):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join(timeout=5)
    server.close()


async def test_a_dripping_origin_meets_a_deadline_for_the_whole_manifest(dripping_origin: str) -> None:
    settings = OriginSettings(connect_timeout_seconds=0.5, read_timeout_seconds=1.0)
    client = OriginClient(settings)
    cache = ManifestCache(client, settings, max_bytes=1 << 20)
    started = time.monotonic()
    with pytest.raises(OriginTimeout, match=r"whole manifest within 1\.5 s"):
        await cache.get(dripping_origin + "live.m3u8", "v", prepare, now=0)
    assert time.monotonic() - started < 3
    await client.aclose()
