"""Which client and response path should relay segments? Each candidate runs as the same minimal relay (one
uvicorn process with the gateway's options, GET /seg.ts relayed from an nginx origin serving a 1 MiB file),
loaded in interleaved rounds with the same load as `python -m gateway bench --only front` (wrk, 20
connections, or the bench's httpx load when wrk is missing), each against nginx serving the file directly.

    python scripts/bench_relay.py [--seconds 3] [--rounds 3] [--only httpx_today+streaming,raw+asgi]

aiohttp is not a dependency: it is measured when importable or given with --aiohttp-path (a directory that
`pip install --target DIR aiohttp` filled; only the aiohttp relay runs with it on its path).
Candidates (client + response side):
  httpx_today   the gateway's OriginClient before this change (sharded httpx pools), Starlette streaming
  httpx_tuned   one httpx client, HTTP/1.1 only, 256 KiB reads (httpcore's READ_NUM_BYTES), bounded pool
  httpcore      httpcore's connection pool directly, no httpx layer
  aiohttp       aiohttp's ClientSession, 256 KiB read buffer, iter_any()
  raw           gateway/origin/relay.py: asyncio + httptools, at most 256 KiB buffered per stream
  gateway       `gateway serve` itself (token check, slots, headers), with the client it ships
Response side: `streaming` (Starlette StreamingResponse) or `asgi` (http.response.body messages sent directly).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway.dev.bench import _free_port, _load, _process
from gateway.dev.nginx import find_nginx, run_nginx

Chunks = Callable[[str], AsyncIterator[bytes]]
Opener = Callable[[], Awaitable[tuple[Chunks, Callable[[], Awaitable[None]]]]]
CONNECTIONS = 64  # per relay's origin pool: more than the 20 the load opens
HEADERS = {"accept-encoding": "identity"}  # what the gateway sends when the player sent none


async def _httpx_today() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    from gateway.config import OriginSettings
    from gateway.origin.client import _pooled
    from gateway.origin.segment_pool import SegmentPool, shard_sizes

    settings = OriginSettings(segment_connections=CONNECTIONS)
    sizes = shard_sizes(CONNECTIONS)
    pool = SegmentPool([_pooled(settings, size, None, time.time) for size in sizes], sizes, 2.0)

    async def chunks(url: str) -> AsyncIterator[bytes]:
        response = await pool.send(url, dict(HEADERS))
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    return chunks, pool.aclose


async def _httpx_tuned() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    import httpcore
    import httpx

    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 256 * 1024
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    transport = httpx.AsyncHTTPTransport(http1=True, http2=False, limits=limits, trust_env=False)
    client = httpx.AsyncClient(transport=transport, trust_env=False)

    async def chunks(url: str) -> AsyncIterator[bytes]:
        async with client.stream("GET", url, headers=HEADERS) as response:
            async for chunk in response.aiter_raw():
                yield chunk

    return chunks, client.aclose


async def _httpcore() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=CONNECTIONS, http1=True, http2=False)

    async def chunks(url: str) -> AsyncIterator[bytes]:
        async with pool.stream("GET", url, headers=list(HEADERS.items())) as response:
            async for chunk in response.aiter_stream():
                yield chunk

    return chunks, pool.aclose


async def _aiohttp() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    aiohttp = importlib.import_module("aiohttp")  # not a dependency: measured when installed
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    session = aiohttp.ClientSession(connector=connector, read_bufsize=256 * 1024, auto_decompress=False)

    async def chunks(url: str) -> AsyncIterator[bytes]:
        async with session.get(url, headers=HEADERS) as response:
            async for chunk in response.content.iter_any():
                yield chunk

    return chunks, session.close


async def _raw64() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    from gateway.origin import relay

    relay.READ_BYTES = 64 * 1024  # reads below glibc's 128 KiB mmap threshold
    return await _raw()


async def _raw() -> tuple[Chunks, Callable[[], Awaitable[None]]]:
    from gateway.config import OriginSettings
    from gateway.origin.relay import RelayPool

    pool = RelayPool(OriginSettings(segment_connections=CONNECTIONS))

    async def chunks(url: str) -> AsyncIterator[bytes]:
        upstream = await pool.open(url, HEADERS)
        try:
            while chunk := await upstream.read():
                yield chunk
        finally:
            await upstream.aclose()

    return chunks, pool.aclose


CLIENTS: dict[str, Opener] = {
    "httpx_today": _httpx_today,
    "httpx_tuned": _httpx_tuned,
    "httpcore": _httpcore,
    "aiohttp": _aiohttp,
    "raw": _raw,
    "raw64": _raw64,
}


def relay_app(opener: Opener, origin_url: str, response_side: str) -> Any:
    """A minimal ASGI relay of `origin_url` for every request, through `opener`'s client."""
    from starlette.responses import StreamingResponse

    state: dict[str, Chunks] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            state["chunks"], close = await opener()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = state["chunks"](origin_url)
        length = str(1 << 20)  # the origin's, as the gateway passes it on (else uvicorn would frame chunks)
        if response_side == "streaming":
            streaming = StreamingResponse(body, media_type="video/mp2t", headers={"content-length": length})
            await streaming(scope, receive, send)
            return
        headers = [(b"content-type", b"video/mp2t"), (b"content-length", length.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def serve(client: str, response_side: str, port: int, origin_url: str) -> None:
    import uvicorn

    from gateway.runtime import UVICORN_OPTIONS, tune_allocator

    tune_allocator()  # as `serve` does

    uvicorn.run(relay_app(CLIENTS[client], origin_url, response_side), host="127.0.0.1", port=port, **UVICORN_OPTIONS)


def available(name: str, aiohttp_path: str | None) -> bool:
    if not name.startswith("aiohttp") or aiohttp_path:
        return True
    try:
        importlib.import_module("aiohttp")
    except ImportError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its child processes (nginx's workers), from /proc."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pids += [int(child) for child in children]
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--only", default="")
    parser.add_argument("--baseline-tree", help="also run `gateway serve` from this checkout (e.g. main)")
    parser.add_argument("--aiohttp-path", help="a directory with aiohttp installed (pip install --target)")
    parser.add_argument("serve", nargs="*")
    args = parser.parse_args()
    if args.serve:
        client, side, port, origin_url = args.serve
        serve(client, side, int(port), origin_url)
        return
    variants = [f"{client}+{side}" for client in CLIENTS for side in ("streaming", "asgi")] + ["gateway"]
    if args.only:
        variants = [name for name in args.only.split(",") if name]
    variants = [name for name in variants if available(name, args.aiohttp_path)]
    if args.baseline_tree:
        variants.append("gateway@baseline")
    nginx = find_nginx()
    if nginx is None:
        sys.exit("nginx is needed for the origin and the baseline")
    from gateway.tokens.grant import Grant
    from gateway.tokens.keys import HmacKey, KeyRing, b64url_encode
    from gateway.tokens.native import sign_grant

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        (root / "vod" / "bench").mkdir(parents=True)
        (root / "vod" / "bench" / "seg.ts").write_bytes(os.urandom(1 << 20))
        origin_port = _free_port()
        origin = f"http://127.0.0.1:{origin_port}/vod/bench/seg.ts"
        server = f"server {{ listen 127.0.0.1:{origin_port}; root {root}; }}"
        stack.enter_context(run_nginx(nginx, server, root / "origin", origin_port, worker_connections=1024))
        urls = {"nginx": origin}
        pids = {"nginx": int((root / "origin" / "nginx.pid").read_text())}
        secret = os.urandom(32)
        token = sign_grant(Grant(("/vod/bench/",), int(time.time()) + 3600), KeyRing((HmacKey("k1", secret),)))
        config = root / "gateway.toml"
        config.write_text(
            f'[origin]\nmax_streams_per_client = 64\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:{origin_port}/"\n'
        )
        for name in variants:
            port = _free_port()
            if name.startswith("gateway"):
                env = {**os.environ, "GATEWAY_KEYS": "k1:" + b64url_encode(secret)}
                if name == "gateway@baseline":
                    env["PYTHONPATH"] = args.baseline_tree
                command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
                pids[name] = stack.enter_context(_process(command, port, env))
                urls[name] = f"http://127.0.0.1:{port}/vod/bench/seg.ts?token={token}"
            else:
                client, side = name.split("+")
                env = dict(os.environ)
                if client == "aiohttp" and args.aiohttp_path:  # on that process's path only: it shadows packages
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), args.aiohttp_path]))
                pids[name] = stack.enter_context(
                    _process([sys.executable, __file__, client, side, str(port), origin], port, env)
                )
                urls[name] = f"http://127.0.0.1:{port}/seg.ts"
        for url in urls.values():
            _load(url, 1, args.connections)  # warm
        rates: dict[str, list[float]] = {name: [] for name in urls}
        ratios: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        for number in range(args.rounds):
            for name, url in urls.items():
                before = cpu_seconds(pids[name])
                rate = _load(url, args.seconds, args.connections)
                cpu[name].append((cpu_seconds(pids[name]) - before) / (rate * args.seconds) * 1e3)
                rates[name].append(rate)
                ratios[name].append(rate / rates["nginx"][-1])
            print(f"round {number + 1}: " + ", ".join(f"{name} {rates[name][-1]:.0f}" for name in urls), flush=True)
    print(
        f"\n1 MiB segment, {args.connections} connections, {args.rounds} interleaved rounds"
        f" of {args.seconds} s (medians)"
    )
    print(f"{'variant':28s} {'req/s':>8s} {'ratio to nginx in its round':>28s} {'server CPU ms per segment':>26s}")
    for name in urls:
        print(
            f"{name:28s} {statistics.median(rates[name]):8.0f} {statistics.median(ratios[name]):28.3f}"
            f" {statistics.median(cpu[name]):26.2f}"
        )


if __name__ == "__main__":
    main()
