"""Real HTTP servers on 127.0.0.1 for integration tests: the gateway under uvicorn, and origins."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway.dev.nginx import run_nginx
from gateway.runtime import UVICORN_OPTIONS
from tests.support.tools import require_tool

__all__ = ["require_tool"]  # re-exported: integration tests import it from here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn (httptools, uvloop) in a thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS)  # as `serve` runs it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_seen: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.requests_seen.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def static_origin(root: Path) -> Iterator[tuple[str, list[str]]]:
    """A real threaded HTTP file server on 127.0.0.1 serving `root`; yields (base URL, request log)."""
    seen: list[str] = []
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requests_seen": seen}), directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class OriginRequest:
    """One request as a scripted server received it: method, request target, headers (lower-case names), body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""


class _ScriptedServer(http.server.ThreadingHTTPServer):
    block_on_close = False  # a handler still held by a test never blocks the server's shutdown


@contextlib.contextmanager
def scripted_origin(
    respond: Callable[[OriginRequest, http.server.BaseHTTPRequestHandler], None],
) -> Iterator[tuple[str, list[OriginRequest]]]:
    """A real HTTP/1.1 server on 127.0.0.1 whose every answer (to a GET or a POST) is written by `respond`
    (status line, headers, body, any delay); yields (base URL, the requests seen in order)."""
    seen: list[OriginRequest] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.answer(b"")

        def do_POST(self) -> None:
            self.answer(self.rfile.read(int(self.headers.get("content-length") or 0)))

        def answer(self, body: bytes) -> None:
            request = OriginRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            seen.append(request)
            respond(request, self)

    server = _ScriptedServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port whose listen queue is full: a connection attempt hangs until the client's connect timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers: list[socket.socket] = []
        try:
            while True:  # Linux queues backlog + 1 connections; the next SYN is dropped
                filler = socket.socket()
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except OSError:
                    filler.close()
                    break
                fillers.append(filler)
                if len(fillers) > 64:
                    raise RuntimeError("the listen queue never filled")
            yield port
        finally:
            for filler in fillers:
                filler.close()


@contextlib.contextmanager
def nginx_static(
    root: Path, workdir: Path, extra_locations: str = "", *, worker_connections: int = 64
) -> Iterator[tuple[str, Path]]:
    """A real Debian nginx serving `root` on 127.0.0.1; yields (base URL, access log path)."""
    port = free_port()
    server = f"server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    {extra_locations}\n  }}"
    with nginx_process(server, workdir, port, worker_connections=worker_connections) as access_log:
        yield f"http://127.0.0.1:{port}/", access_log


@contextlib.contextmanager
def nginx_process(http_block: str, workdir: Path, port: int, *, worker_connections: int = 64) -> Iterator[Path]:
    """A real Debian nginx running `http_block` on `port` (gateway/dev/nginx.py); yields its access log."""
    with run_nginx(require_tool("nginx"), http_block, workdir, port, worker_connections=worker_connections) as log:
        yield log


def raw_http_get(base_url: str, target: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side normalisation); returns (status, body)."""
    host, port = base_url.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), body


@contextlib.contextmanager
def redis_server(workdir: Path, port: int | None = None) -> Iterator[str]:
    """A real Debian redis-server on 127.0.0.1 (no persistence), on `port` if given; yields its URL.

    Starting a second one on the same port after the first has stopped is a Redis restart that lost everything.
    """
    binary = require_tool("redis-server")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def serve_process(config_toml: str, workdir: Path, keys: str) -> Iterator[str]:
    """`python -m gateway serve --config` as an operator runs it, in its own process (its own event loop and
    GIL, as under load in production); yields its base URL. Its log is in `workdir/serve.log`."""
    with serve_subprocess(config_toml, workdir, keys) as (url, _):
        yield url


@contextlib.contextmanager
def serve_subprocess(
    config_toml: str, workdir: Path, keys: str, args: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`serve_process` with more command-line `args` (e.g. `--workers 2`); yields (base URL, the process)."""
    config = workdir / "gateway.toml"
    config.write_text(config_toml)
    port = free_port()
    log_path = workdir / "serve.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port), *args],
            env={**env, "GATEWAY_KEYS": keys},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway serve did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
