"""`python -m gateway bench [--json]`: figures as ratios against a baseline measured in the same run.

Every figure has a stable name (`--json` prints them as {name: {ratio, measured, baseline, ...}}):
1. rewriting a 10,000-segment media playlist per request (render of the prepared template) vs copying
   its bytes; and the one-time prepare vs the same copy;
2. token verify (cold, and with the verified-token cache) vs one raw HMAC-SHA256;
3. gateway playlist requests/s vs the same server stack (uvicorn + Starlette) returning the bytes
   unmodified, both loaded by `wrk` (or a bounded httpx client when wrk is missing);
4. 1 MiB segments through the nginx front (docker/nginx-front.conf: nginx moves the bytes, the gateway gives
   the verdict), with nginx reusing verdicts and with every request asking the gateway, and through the
   gateway alone, each vs the same nginx serving the file directly (skipped when nginx is not installed);
   and a 300-segment playlist identical for every viewer (queryparam delivery) served from the front's
   manifest cache after the verdict, vs the same nginx serving those bytes as a static file;
5. the session token's length and how much it grows a 300-segment playlist (served bytes / origin bytes);
6. playlist requests/s with `serve --workers 2` vs `--workers 1`, both running at once.
Load runs that are compared with each other are interleaved rounds, the median of each kept: a machine doing
other work slows every variant alike. Every load run is bounded in time and sent to 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

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
PARTS: Final = ("micro", "playlist", "front", "workers")  # `--only` takes a comma-separated subset


@dataclass(frozen=True)
class Figure:
    """One measured figure: `measured / baseline` (both from this run), under a name that stays stable."""

    name: str
    what: str
    measured: float
    baseline: float | None  # None: a plain value (e.g. a token's length), its "ratio" is the value itself
    unit: str = "µs"
    baseline_unit: str | None = None  # default: `unit`

    @property
    def ratio(self) -> float:
        return self.measured if self.baseline is None else self.measured / self.baseline

    def as_json(self) -> dict[str, object]:
        return {
            "ratio": round(self.ratio, 4),
            "measured": round(self.measured, 3),
            "baseline": None if self.baseline is None else round(self.baseline, 3),
            "unit": self.unit,
            "baseline_unit": None if self.baseline is None else self.baseline_unit or self.unit,
            "what": self.what,
        }

    def line(self) -> str:
        measured = _amount(self.measured, self.unit)
        if self.baseline is None:
            return f"{self.what:86s} {measured}"
        baseline = _amount(self.baseline, self.baseline_unit or self.unit)
        return f"{self.what:86s} {measured} / {baseline} = {self.ratio:6.2f}x"


def _amount(value: float, unit: str) -> str:
    return f"{value:10.2f} {unit}" if unit == "µs" else f"{value:10.0f} {unit}"


class Skipped(Exception):
    """A part that cannot run here (a missing tool): said, never a failure."""


def _child_environment(**extra: str) -> dict[str, str]:
    """The environment of the servers the bench starts: this one, plus `extra`."""
    return {**os.environ, **extra}


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


def rewrite_figures(budget: float, *, label: str = "", suffix: str = "") -> list[Figure]:
    body = media_playlist(10_000)
    prepared = prepare_playlist(body, _query_rewrite)
    tokens = session_tokens()
    output = prepared.render(tokens)
    copy = per_call_seconds(lambda: bytes(bytearray(output)), budget_seconds=budget) * 1e6
    render = per_call_seconds(lambda: prepared.render(tokens), budget_seconds=budget) * 1e6
    once = per_call_seconds(lambda: prepare_playlist(body, _query_rewrite), budget_seconds=budget) * 1e6
    lines = body.count(b"\n")
    return [
        Figure(
            f"render_over_copy{suffix}",
            f"render 10k-segment playlist per request{label} / copy its output bytes (goal <= 3x)",
            render,
            copy,
        ),
        Figure(
            f"prepare_over_copy{suffix}", f"prepare (parse+rewrite) once per origin version{label} / copy", once, copy
        ),
        Figure(
            f"prepare_us_per_line{suffix}",
            f"prepare{label} / the playlist's lines (goal <= 0.5 µs per line)",
            once,
            lines,
            "µs",
            "lines",
        ),
    ]


def token_figures() -> list[Figure]:
    """Characters of a session's tokens (goal: <= 64) however the client is bound, and a 300-segment
    playlist's growth with them, offline (the served figures are in `server_figures`)."""
    figures: list[Figure] = []
    for name, network in (("unbound", None), ("ipv4", "203.0.113.9/32"), ("ipv6", "2001:db8:1:2::/64")):
        tokens = session_tokens(network, reloaded=True)
        for slot in (Slot.PLAYLIST, Slot.MEDIA):
            what = f"{slot.value} token characters, client bound to {network} (goal <= 64)"
            figures.append(Figure(f"{slot.value}_token_chars_{name}", what, len(tokens[slot]), None, "chars"))
    body = media_playlist(300)
    rendered = prepare_playlist(body, _query_rewrite).render(session_tokens())
    what = "300-segment playlist bytes, query tokens (IPv4-bound session) / as the origin serves it"
    figures.append(Figure("playlist_growth_offline", what, len(rendered), len(body), "bytes"))
    return figures


def verify_figures(budget: float) -> list[Figure]:
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
    hmac_label = "one raw HMAC-SHA256"
    return [
        Figure(
            "verify_cold_over_hmac", f"token verify, cold (decode+HMAC+claims) / {hmac_label}", cold * 1e6, raw * 1e6
        ),
        Figure(
            "verify_cached_over_hmac",
            f"token verify, cached signature (claims only) / {hmac_label}",
            cached * 1e6,
            raw * 1e6,
        ),
        Figure(
            "path_normalisation_over_hmac",
            f"path normalisation (ACL boundary) / {hmac_label}",
            path_check * 1e6,
            raw * 1e6,
        ),
    ]


@contextmanager
def _process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server process, once `port` accepts; yields its pid."""
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
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


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


def _interleaved(urls: dict[str, str], seconds: float, connections: int, rounds: int = 3) -> dict[str, float]:
    """Requests/s of each URL: the median of `rounds` rounds, each loading every URL in turn."""
    runs = [{name: _load(url, seconds, connections) for name, url in urls.items()} for _ in range(rounds)]
    return {name: statistics.median(run[name] for run in runs) for name in urls}


@dataclass(frozen=True)
class _Playlists:
    """A 300- or 10,000-segment VOD playlist on an origin, and how to run the gateway in front of it."""

    origin_file: Path
    config: Path
    env: dict[str, str]

    def gateway(self, port: int, *args: str) -> list[str]:
        return [sys.executable, "-m", "gateway", "serve", "--config", str(self.config), "--port", str(port), *args]


@contextmanager
def _playlist_origin(segments: int) -> Iterator[_Playlists]:
    """The origin (Python's HTTP server) and a config with one viewer entitled to the title (for a session)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        playlist = root / "vod" / "bench" / "index.m3u8"
        playlist.parent.mkdir(parents=True)
        playlist.write_bytes(media_playlist(segments))
        origin_port = _free_port()
        config = root / "gateway.toml"
        config.write_text(
            f'[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:{origin_port}/"\n'
            f'[[users]]\ncredential = "bench"\nid = "bench"\n[[titles]]\nprefix = "{TITLE}"\n'
        )
        env = _child_environment(GATEWAY_KEYS="k1:" + b64url_encode(os.urandom(32)))
        origin = [sys.executable, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1", "--directory", tmp]
        with _process(origin, origin_port):
            yield _Playlists(playlist, config, env)


def _session_playlist_url(base: str) -> str:
    """A viewer's playlist URL as the session API hands it out (the session token in its query), once the
    gateway is ready: with several workers, `serve` listens before they have started."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/_gateway/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} never became ready")
        time.sleep(0.1)
    session = httpx.post(
        f"{base}/api/sessions",
        json={"asset": f"{TITLE}index.m3u8"},
        headers={"authorization": "Bearer bench"},
        timeout=10,
    )
    session.raise_for_status()
    return f"{base}{TITLE}index.m3u8?token={session.json()['token']}"


def server_figures(seconds: float, segments: int) -> list[Figure]:
    """Gateway playlist requests/s vs the same stack returning the bytes unmodified, both separate processes
    (uvicorn, one worker) on 127.0.0.1; for 300 segments also the session token's length and the growth."""
    import httpx

    with _playlist_origin(segments) as origin:
        gateway_port, raw_port = _free_port(), _free_port()
        raw = [sys.executable, "-m", "gateway.dev.bench_raw_server", str(origin.origin_file), str(raw_port)]
        with _process(origin.gateway(gateway_port), gateway_port, origin.env), _process(raw, raw_port):
            url = _session_playlist_url(f"http://127.0.0.1:{gateway_port}")
            served = httpx.get(url, timeout=10)
            served.raise_for_status()
            _load(url, 1, 4)  # warm: prepare once, caches primed
            rates = _interleaved({"gateway": url, "raw": f"http://127.0.0.1:{raw_port}/index.m3u8"}, seconds, 16)
        origin_bytes = origin.origin_file.stat().st_size
    name = "playlist" if segments == 300 else f"playlist_{segments // 1000}k"
    figures = [
        Figure(
            f"{name}_over_unmodified_stack",
            f"gateway playlist ({segments} segments) req/s / same stack returning bytes unmodified",
            rates["gateway"],
            rates["raw"],
            "req/s",
        )
    ]
    if segments == 300:
        token = url.rsplit("token=", 1)[1]
        figures += [
            Figure("token_chars", "session token (POST /api/sessions) length", len(token), None, "chars"),
            Figure(
                "playlist_growth",
                "300-segment playlist as served with a session's tokens / as the origin has it",
                len(served.content),
                origin_bytes,
                "bytes",
            ),
        ]
    return figures


def workers_figures(seconds: float) -> list[Figure]:
    """Playlist requests/s (300 segments) from `serve --workers 2` vs `--workers 1`, both running at once."""
    with _playlist_origin(300) as origin:
        one, two = _free_port(), _free_port()
        with (
            _process(origin.gateway(one, "--workers", "1"), one, origin.env),
            _process(origin.gateway(two, "--workers", "2", "--per-worker-revocations"), two, origin.env),
        ):
            urls = {"one": _session_playlist_url(f"http://127.0.0.1:{one}")}
            urls["two"] = urls["one"].replace(f":{one}/", f":{two}/")  # the same token: stateless
            _session_playlist_url(f"http://127.0.0.1:{two}")  # ready
            for url in urls.values():
                _load(url, 1, 4)  # warm every worker's caches
            rates = _interleaved(urls, seconds, 16)
    label = f"playlist (300 segments) req/s, serve --workers 2 / --workers 1 ({os.cpu_count()} cpus)"
    return [Figure("workers_speedup", label, rates["two"], rates["one"], "req/s")]


FRONT_CONF = Path(__file__).resolve().parents[2] / "docker" / "nginx-front.conf"


def _front_block(
    conf: str,
    gateway_port: int,
    port: int,
    cache: Path,
    *,
    reuse_verdicts: bool,
    files: Path | None = None,
    manifest_verdict: str | None = None,
) -> str:
    """docker/nginx-front.conf as shipped, with this run's addresses; the verdict cache off, or the files read
    from `files` instead of proxied (the config's documented alternative), if asked. `manifest_verdict`, for
    diagnostics only (never a deployment: nobody is judged): "none" serves every manifest from the cache with
    no verdict, "bare" asks a subrequest that answers 204 itself (what a verdict costs without its lookup)."""
    cache.mkdir(parents=True, exist_ok=True)  # nginx makes the caches' own directories, not their parent
    replacements = {
        "server gateway:8000;": f"server 127.0.0.1:{gateway_port};",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "/var/cache/nginx/": f"{cache}/",
    }
    if not reuse_verdicts:
        replacements["proxy_cache verdicts;"] = "proxy_cache off;"
    if files is not None:
        replacements["proxy_pass $origin_url;"] = f"root {files};"
    if manifest_verdict is not None:
        replacements |= {
            "auth_request /_gateway_manifest_verdict;": "auth_request /_bare;"
            if manifest_verdict == "bare"
            else "auth_request off;",
            "proxy_cache_key $front_manifest_key;": "proxy_cache_key diagnostic;",
            "proxy_cache_bypass $front_manifest_per_viewer;": "",
            "proxy_no_cache $front_manifest_per_viewer;": "",
            "proxy_set_header X-Front-Fill $front_manifest_key;": "proxy_set_header X-Front-Fill 1;",
            "location /_gateway/ { return 404; }": "location = /_bare { internal; return 204; }",
        }
    for old, new in replacements.items():
        if old not in conf:
            raise RuntimeError(f"{FRONT_CONF} no longer has {old!r}: update the bench")
        conf = conf.replace(old, new)
    return conf


def _front_nginx() -> str:
    nginx = find_nginx()
    if nginx is None or not FRONT_CONF.exists():
        raise Skipped("nginx front: no nginx, or not run from a checkout with docker/")
    return nginx


def _front_title(root: Path, name: str, body: bytes) -> tuple[str, dict[str, str]]:
    """`body` on the origin (`root`) at TITLE + `name`; a token for the title, and the environment of a gateway
    that verifies it and trusts the front (127.0.0.1)."""
    path = root / TITLE.strip("/") / name
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    secret = os.urandom(32)
    token = sign_grant(Grant((TITLE,), int(time.time()) + 3600), KeyRing((HmacKey("k1", secret),)))
    env = _child_environment(GATEWAY_KEYS="k1:" + b64url_encode(secret), GATEWAY_TRUSTED_PROXIES="127.0.0.1/32")
    return token, env


def front_figures(seconds: float) -> list[Figure]:
    """Segment requests/s (1 MiB, 20 connections) via the front and via Python, vs nginx serving the file."""
    nginx = _front_nginx()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        token, env = _front_title(root, "seg.ts", os.urandom(1 << 20))
        origin_port, gateway_port, front_port, cold_port, files_port = (_free_port() for _ in range(5))
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
            rates = _interleaved(
                {
                    "direct": f"http://127.0.0.1:{origin_port}{TITLE}seg.ts",
                    "files": f"http://127.0.0.1:{files_port}{target}",
                    "front": f"http://127.0.0.1:{front_port}{target}",
                    "cold": f"http://127.0.0.1:{cold_port}{target}",
                    "python": f"http://127.0.0.1:{gateway_port}{target}",
                },
                seconds,
                20,
            )
    label = "1 MiB segment req/s, 20 connections"
    variants = [
        ("segment_via_front_files_over_nginx", "files", "nginx front reading the files, verdicts reused"),
        ("segment_via_front_over_nginx", "front", "nginx front proxying the origin, verdicts reused"),
        ("segment_via_front_per_request_verdict_over_nginx", "cold", "nginx front proxying, a verdict per request"),
        ("segment_via_python_over_nginx", "python", "gateway alone (Python relay)"),
    ]
    return [
        Figure(name, f"{label}: {what} / nginx serving the file", rates[key], rates["direct"], "req/s")
        for name, key, what in variants
    ]


def manifest_front_figures(seconds: float) -> list[Figure]:
    """A 300-segment queryparam playlist (the same bytes for every viewer) via the nginx front, served from its
    manifest cache after the gateway's verdict, vs nginx serving those very bytes as a static file (16
    connections, interleaved rounds): with verdicts reused (one per viewer per 5 s) and with a verdict for
    every request (cache off)."""
    import httpx

    nginx = _front_nginx()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        token, env = _front_title(root, "index.m3u8", media_playlist(300))
        ports = [_free_port() for _ in range(7)]
        origin_port, tuned_port, gateway_port, front_port, cold_port, alone_port, bare_port = ports
        config = root / "gateway.toml"
        config.write_text(
            f'[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:{origin_port}/"\ndelivery = "queryparam"\n'
        )
        gateway = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(gateway_port)]
        conf = FRONT_CONF.read_text()
        hot = _front_block(conf, gateway_port, front_port, root / "cache-hot", reuse_verdicts=True)
        cold = _front_block(conf, gateway_port, cold_port, root / "cache-cold", reuse_verdicts=False)
        alone = _front_block(
            conf, gateway_port, alone_port, root / "c-alone", reuse_verdicts=True, manifest_verdict="none"
        )
        bare = _front_block(
            conf, gateway_port, bare_port, root / "c-bare", reuse_verdicts=True, manifest_verdict="bare"
        )
        origin = f"server {{ listen 127.0.0.1:{origin_port}; root {root}; access_log off; }}"  # as the front: no log
        # The same static server with the front's open_file_cache: the baseline tuned as the front is.
        tuned = origin.replace(f":{origin_port};", f":{tuned_port}; open_file_cache max=10000 inactive=60s;")
        with (
            run_nginx(nginx, origin, root / "origin", origin_port, worker_connections=1024),
            run_nginx(nginx, tuned, root / "origin-tuned", tuned_port, worker_connections=1024),
            _process(gateway, gateway_port, env),
            run_nginx(nginx, hot, root / "front", front_port, worker_connections=1024),
            run_nginx(nginx, cold, root / "front-cold", cold_port, worker_connections=1024),
            run_nginx(nginx, alone, root / "front-alone", alone_port, worker_connections=1024),
            run_nginx(nginx, bare, root / "front-bare", bare_port, worker_connections=1024),
        ):
            target = f"{TITLE}index.m3u8?token={token}"
            served = httpx.get(f"http://127.0.0.1:{front_port}{target}", timeout=10)
            served.raise_for_status()
            (root / "static.m3u8").write_bytes(served.content)  # the baseline serves exactly these bytes
            urls = {
                "static": f"http://127.0.0.1:{origin_port}/static.m3u8",
                "tuned": f"http://127.0.0.1:{tuned_port}/static.m3u8",
                "front": f"http://127.0.0.1:{front_port}{target}",
                "cold": f"http://127.0.0.1:{cold_port}{target}",
                "alone": f"http://127.0.0.1:{alone_port}{target}",
                "bare": f"http://127.0.0.1:{bare_port}{target}",
            }
            for url in urls.values():
                _load(url, 1, 4)  # warm: the front's caches filled
            rates = _interleaved(urls, seconds, 16)
    label = "300-segment queryparam playlist req/s, 16 connections"
    variants = [
        (
            "cacheable_manifest_via_front_over_nginx",
            "front",
            "nginx front's manifest cache, verdicts reused (goal >= 0.8)",
        ),
        ("cacheable_manifest_via_front_per_request_verdict_over_nginx", "cold", "front cache, a verdict per request"),
        # Diagnostics: where the time goes (what the verdict's cached lookup costs on top of the cache).
        ("cacheable_manifest_front_cache_without_verdict_over_nginx", "alone", "diagnostic: the cache, no verdict"),
        ("cacheable_manifest_front_bare_subrequest_over_nginx", "bare", "diagnostic: the cache + a bare subrequest"),
    ]
    figures = [
        Figure(name, f"{label}: {what} / nginx serving the same bytes", rates[key], rates["static"], "req/s")
        for name, key, what in variants
    ]
    what = f"{label}: nginx front's manifest cache, verdicts reused / nginx serving the bytes with open_file_cache"
    return [
        *figures,
        Figure(
            "cacheable_manifest_via_front_over_nginx_open_file_cache", what, rates["front"], rates["tuned"], "req/s"
        ),
    ]


def parse_parts(text: str | None) -> tuple[str, ...]:
    """`--only micro,workers` as part names, in the bench's order; every part when not given."""
    if not text:
        return PARTS
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = asked - set(PARTS)
    if unknown or not asked:
        raise ValueError(f"--only takes a comma-separated subset of {', '.join(PARTS)}, not {text!r}")
    return tuple(part for part in PARTS if part in asked)


def run_benchmarks(*, quick: bool = False, as_json: bool = False, parts: Sequence[str] = PARTS) -> int:
    budget = 0.2 if quick else 1.0
    seconds = 1 if quick else 3
    mode = "quick" if quick else "full"
    figures: list[Figure] = []
    skipped: dict[str, str] = {}
    if not as_json:
        print(f"# gateway bench ({mode}), python {sys.version.split()[0]}, {os.cpu_count()} cpus")

    def run(part: str, measure: Callable[[], list[Figure]]) -> None:
        try:
            new = measure()
        except Skipped as reason:
            skipped[part] = str(reason)
            new = []
            if not as_json:
                print(f"# {reason}: skipped")
        figures.extend(new)
        if not as_json:
            for figure in new:
                print(figure.line(), flush=True)

    if "micro" in parts:
        run("micro", lambda: rewrite_figures(budget, label=" (glibc defaults)", suffix="_glibc_defaults"))
        tuned = tune_allocator()  # what `serve` and `demo` do at start-up
        run("micro", lambda: rewrite_figures(budget, label=" (as served)" if tuned else ""))
        run("micro", lambda: verify_figures(budget))
        run("micro", token_figures)
    if "playlist" in parts:
        for segments in (300, 10_000):
            run("playlist", functools.partial(server_figures, seconds, segments))
    if "front" in parts:
        run("front", lambda: front_figures(seconds))
        run("front", lambda: manifest_front_figures(seconds))
    if "workers" in parts:
        run("workers", lambda: workers_figures(seconds))
    if as_json:
        report = {
            "mode": mode,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_generator": "wrk" if shutil.which("wrk") else "httpx",
            "figures": {figure.name: figure.as_json() for figure in figures},
            "skipped": skipped,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0
