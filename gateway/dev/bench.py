"""`python -m gateway bench`: figures as ratios against a baseline measured in the same run.

1. rewriting a 10,000-segment media playlist per request (render of the prepared template) vs copying
   its bytes; and the one-time prepare vs the same copy;
2. token verify (cold, and with the verified-token cache) vs one raw HMAC-SHA256;
3. gateway playlist requests/s vs the same server stack (uvicorn + Starlette) returning the bytes
   unmodified, both loaded by `wrk` (or a bounded httpx client when wrk is missing);
4. 1 MiB segments through the nginx front (docker/nginx-front.conf: nginx moves the bytes, the gateway gives
   the verdict), with nginx reusing verdicts and with every request asking the gateway, and through the
   gateway alone, each vs the same nginx serving the file directly (skipped when nginx is not installed).
Every load run is bounded in time and sent to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.config import Route
from gateway.dev.nginx import find_nginx, run_nginx
from gateway.http.links import make_uri_rewriter
from gateway.manifests.hls import prepare_playlist
from gateway.manifests.template import PreparedManifest, Slot
from gateway.runtime import tune_allocator
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing, b64url_encode
from gateway.tokens.native import TokenVerifier, sign_grant, verify_token
from gateway.tokens.scoped import ScopedTokenMinter

TITLE = "/vod/bench/"


def media_playlist(segments: int) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0"]
    lines.append('#EXT-X-KEY:METHOD=AES-128,URI="key.key",IV=0x0000000000000000000000000000000A')
    for index in range(segments):
        lines += ["#EXTINF:4.000,", f"v720/segment_{index:05d}.ts"]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def per_call_seconds(function: Callable[[], object], *, budget_seconds: float) -> float:
    """Median of 5 timing runs, the loop count sized so the whole takes about `budget_seconds`."""
    count, elapsed = 1, 0.0
    while elapsed < budget_seconds / 25:
        count *= 2
        elapsed = timeit.timeit(function, number=count)
    runs = sorted(timeit.repeat(function, number=count, repeat=5))
    return runs[2] / count


def session_tokens(network: str | None = "203.0.113.9/32", *, reloaded: bool = False) -> dict[Slot, str]:
    """The playlist and media tokens a session's playlist response carries (tokens/scoped.py): 8-character
    session id, a 6-character user id, a key id as long as `keys new` makes, the client's /32 bound."""
    now = int(time.time())
    session = Grant(
        (TITLE,),
        now + 300,
        client_network=ipaddress.ip_network(network) if network else None,
        session_id="AbCdEfGh",
        user_id="u-paid",
        scope=Scope.ALL,
        session_ends_at=now + 4 * 3600,
    )
    ring = KeyRing((HmacKey("k1a2b3c", os.urandom(32)),))
    manifest = PreparedManifest(chunks=("", ""), slots=(Slot.MEDIA,), reloaded=reloaded)
    return ScopedTokenMinter(ring, media_ttl_seconds=300).slot_tokens(session, "", manifest, now=now)


# The callback `serve` prepares a query-mode playlist with (gateway/http/links.py).
_query_rewrite = make_uri_rewriter(
    manifest_origin_url="http://origin.test/vod/bench/index.m3u8",
    route=Route(mount="/vod/", origin="http://origin.test/vod/"),
    token_param="token",  # noqa: S106 - the query parameter's name (the default), not a secret
)


def rewrite_figures(budget: float, *, label: str = "") -> list[tuple[str, float, float]]:
    body = media_playlist(10_000)
    prepared = prepare_playlist(body, _query_rewrite)
    tokens = session_tokens()
    output = prepared.render(tokens)
    copy = per_call_seconds(lambda: bytes(bytearray(output)), budget_seconds=budget)
    render = per_call_seconds(lambda: prepared.render(tokens), budget_seconds=budget)
    once = per_call_seconds(lambda: prepare_playlist(body, _query_rewrite), budget_seconds=budget)
    lines = body.count(b"\n")
    return [
        (f"render 10k-segment playlist per request{label} / copy its output bytes (goal <= 3x)", render, copy),
        (f"prepare (parse+rewrite) once per origin version{label} / copy", once, copy),
        (f"prepare per playlist line{label} / 0.5 µs (goal <= 1x)", once / lines, 0.5e-6),
    ]


def token_figures() -> list[tuple[str, int, int]]:
    """Characters of a session's tokens against the goal (64), and a 300-segment playlist's growth."""
    rows: list[tuple[str, int, int]] = []
    for network in (None, "203.0.113.9/32", "2001:db8:1:2::/64"):
        tokens = session_tokens(network, reloaded=True)
        for slot in (Slot.PLAYLIST, Slot.MEDIA):
            rows.append((f"{slot.value} token characters, client bound to {network} / 64 goal", len(tokens[slot]), 64))
    body = media_playlist(300)
    rendered = prepare_playlist(body, _query_rewrite).render(session_tokens())
    rows.append(
        (
            "300-segment playlist bytes, query tokens (IPv4-bound session) / as the origin serves it",
            len(rendered),
            len(body),
        )
    )
    return rows


def verify_figures(budget: float) -> list[tuple[str, float, float]]:
    secret = os.urandom(32)
    keys = KeyRing((HmacKey("k1", secret),))
    grant = Grant((TITLE,), int(time.time()) + 600, session_id="AbCdEfGh", scope=Scope.MEDIA)
    token = sign_grant(grant, keys)
    path = normalise_path(b"/vod/bench/v720/segment_00042.ts")
    now = time.time()
    message = token.encode()
    raw = per_call_seconds(lambda: hmac.new(secret, message, hashlib.sha256).digest(), budget_seconds=budget)
    cold = per_call_seconds(
        lambda: verify_token(token, keys, path=path, client_ip=None, needed_scope=Scope.MEDIA, now=now),
        budget_seconds=budget,
    )
    verifier = TokenVerifier(keys)
    cached = per_call_seconds(
        lambda: verifier.verify(token, path=path, client_ip=None, needed_scope=Scope.MEDIA, now=now),
        budget_seconds=budget,
    )
    path_check = per_call_seconds(lambda: normalise_path(b"/vod/bench/v720/segment_00042.ts"), budget_seconds=budget)
    return [
        ("token verify, cold (decode+HMAC+claims) / one raw HMAC-SHA256", cold, raw),
        ("token verify, cached signature (claims only) / one raw HMAC-SHA256", cached, raw),
        ("path normalisation (ACL boundary) / one raw HMAC-SHA256", path_check, raw),
    ]


@contextmanager
def _process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    import socket

    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"bench server did not start: {args}") from None
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load(url: str, seconds: float, connections: int) -> float:
    """Requests/s against `url` for `seconds` (wrk when installed, else a bounded httpx client)."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
        if "Non-2xx or 3xx responses" in out:  # a refusal is fast: it must not count as throughput
            raise RuntimeError(f"{url.split('?')[0]} answered errors under load: {out}")
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                return float(line.split()[1])
        raise RuntimeError(f"unexpected wrk output: {out}")
    import asyncio

    import httpx

    async def run() -> float:
        done = 0
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient() as client:

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    (await client.get(url)).raise_for_status()
                    done += 1

            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return done / (time.monotonic() - start)

    return asyncio.run(run())


def server_figures(seconds: float, segments: int) -> list[tuple[str, float, float]]:
    """Both servers run as separate processes (uvicorn, one worker) on 127.0.0.1; rps ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        playlist = root / "vod" / "bench" / "index.m3u8"
        playlist.parent.mkdir(parents=True)
        playlist.write_bytes(media_playlist(segments))
        secret = os.urandom(32)
        key_entry = "k1:" + b64url_encode(secret)
        keys = KeyRing((HmacKey("k1", secret),))
        token = sign_grant(Grant((TITLE,), int(time.time()) + 3600), keys)
        origin_port, gateway_port, raw_port = _free_port(), _free_port(), _free_port()
        python = sys.executable
        env = {**os.environ, "GATEWAY_KEYS": key_entry}
        origin = [python, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1", "--directory", tmp]
        gateway = [
            python,
            "-m",
            "gateway",
            "serve",
            "--origin",
            f"http://127.0.0.1:{origin_port}/",
            "--port",
            str(gateway_port),
        ]
        raw = [python, "-m", "gateway.dev.bench_raw_server", str(playlist), str(raw_port)]
        with _process(origin, origin_port), _process(gateway, gateway_port, env), _process(raw, raw_port):
            gateway_url = f"http://127.0.0.1:{gateway_port}{TITLE}index.m3u8?token={token}"
            _load(gateway_url, 1, 4)  # warm: prepare once, JIT-free but caches primed
            gateway_rps = _load(gateway_url, seconds, 16)
            raw_rps = _load(f"http://127.0.0.1:{raw_port}/index.m3u8", seconds, 16)
    return [
        (
            f"gateway playlist ({segments} segments) req/s / same stack returning bytes unmodified",
            gateway_rps,
            raw_rps,
        )
    ]


FRONT_CONF = Path(__file__).resolve().parents[2] / "docker" / "nginx-front.conf"


def _front_block(
    conf: str, gateway_port: int, port: int, cache: Path, *, reuse_verdicts: bool, files: Path | None = None
) -> str:
    """docker/nginx-front.conf as shipped, with this run's addresses; the verdict cache off, or the files read
    from `files` instead of proxied (the config's documented alternative), if asked."""
    replacements = {
        "server gateway:8000;": f"server 127.0.0.1:{gateway_port};",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "/var/cache/nginx/verdicts": str(cache),
    }
    if not reuse_verdicts:
        replacements["proxy_cache verdicts;"] = "proxy_cache off;"
    if files is not None:
        replacements["proxy_pass $origin_url;"] = f"root {files};"
    for old, new in replacements.items():
        conf = conf.replace(old, new)
    return conf


def front_figures(seconds: float) -> list[tuple[str, float, float]]:
    """Segment requests/s (1 MiB, 20 connections) via the front and via Python, vs nginx serving the file."""
    nginx = find_nginx()
    if nginx is None or not FRONT_CONF.exists():
        print("# nginx front: skipped (no nginx, or not run from a checkout with docker/)")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        segment = root / "vod" / "bench" / "seg.ts"
        segment.parent.mkdir(parents=True)
        segment.write_bytes(os.urandom(1 << 20))
        secret = os.urandom(32)
        token = sign_grant(Grant((TITLE,), int(time.time()) + 3600), KeyRing((HmacKey("k1", secret),)))
        origin_port, gateway_port, front_port, cold_port, files_port = (_free_port() for _ in range(5))
        env = {**os.environ, "GATEWAY_KEYS": "k1:" + b64url_encode(secret), "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
        origin = f"server {{ listen 127.0.0.1:{origin_port}; root {root}; }}"
        config = root / "gateway.toml"  # one client opens 20 downloads at once: above the per-viewer default
        config.write_text(
            f'[origin]\nmax_streams_per_client = 64\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:{origin_port}/"\n'
        )
        gateway = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        conf = FRONT_CONF.read_text()
        hot = _front_block(conf, gateway_port, front_port, root / "cache-hot", reuse_verdicts=True)
        cold = _front_block(conf, gateway_port, cold_port, root / "cache-cold", reuse_verdicts=False)
        files = _front_block(conf, gateway_port, files_port, root / "cache-files", reuse_verdicts=True, files=root)
        with (
            run_nginx(nginx, origin, root / "origin", origin_port, worker_connections=1024),
            _process([*gateway, "--port", str(gateway_port)], gateway_port, env),
            run_nginx(nginx, hot, root / "front", front_port, worker_connections=1024),
            run_nginx(nginx, cold, root / "front-cold", cold_port, worker_connections=1024),
            run_nginx(nginx, files, root / "front-files", files_port, worker_connections=1024),
        ):
            target = f"{TITLE}seg.ts?token={token}"
            urls = {
                "direct": f"http://127.0.0.1:{origin_port}{TITLE}seg.ts",
                "files": f"http://127.0.0.1:{files_port}{target}",
                "front": f"http://127.0.0.1:{front_port}{target}",
                "cold": f"http://127.0.0.1:{cold_port}{target}",
                "python": f"http://127.0.0.1:{gateway_port}{target}",
            }
            # Interleaved rounds, median of each: a machine doing other work slows every variant alike.
            rounds = [{name: _load(url, seconds, 20) for name, url in urls.items()} for _ in range(3)]
    median = {name: sorted(run[name] for run in rounds)[1] for name in urls}
    direct, via_front_files, via_front = median["direct"], median["files"], median["front"]
    via_front_cold, via_python = median["cold"], median["python"]
    label = "1 MiB segment req/s, 20 connections"
    return [
        (f"{label}: nginx front reading the files, verdicts reused / nginx serving the file", via_front_files, direct),
        (f"{label}: nginx front proxying the origin, verdicts reused / nginx serving the file", via_front, direct),
        (f"{label}: nginx front proxying, a verdict per request / nginx serving the file", via_front_cold, direct),
        (f"{label}: gateway alone (Python relay) / nginx serving the file", via_python, direct),
    ]


def run_benchmarks(*, quick: bool = False) -> int:
    budget = 0.2 if quick else 1.0
    mode = "quick" if quick else "full"
    print(f"# gateway bench ({mode}), python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    rows = rewrite_figures(budget, label=" (glibc defaults)")
    tuned = tune_allocator()  # what `serve` and `demo` do at start-up
    rows += rewrite_figures(budget, label=" (as served)" if tuned else "") + verify_figures(budget)
    for label, measured, baseline in rows:
        print(f"{label:72s} {measured * 1e6:10.2f} µs / {baseline * 1e6:8.2f} µs = {measured / baseline:6.2f}x")
    for label, count, reference in token_figures():
        print(f"{label:72s} {count:10d} / {reference:8d} = {count / reference:6.2f}x")
    for segments in (300, 10_000):
        for label, measured, baseline in server_figures(1 if quick else 3, segments):
            print(f"{label:72s} {measured:10.0f} / {baseline:8.0f} req/s = {measured / baseline:6.2f}x")
    for label, measured, baseline in front_figures(1 if quick else 3):
        print(f"{label:72s} {measured:10.0f} / {baseline:8.0f} req/s = {measured / baseline:6.2f}x")
    return 0
