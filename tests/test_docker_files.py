"""docker/: the config the compose stack mounts loads, every path the image copies exists, and the gateway's
healthcheck in compose works (the image's HEALTHCHECK and Prometheus: tests/telemetry/test_docker_observability.py).

(No Docker engine runs on the CI machines, so the image itself is not built here.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway.config import Route, Settings, load_settings
from gateway.http.app import build_app
from gateway.tokens.keys import HmacKey, KeyRing
from tests.support.servers import free_port, serve_app, static_origin

ROOT = Path(__file__).resolve().parent.parent


def test_compose_gateway_config_loads() -> None:
    settings = load_settings(ROOT / "docker" / "gateway.toml", {"GATEWAY_KEYS": "k1:" + "A" * 43})
    assert {route.mount for route in settings.routes} == {"/vod/", "/live/"}
    assert settings.catalog.titles and settings.client_ip_header == "x-forwarded-for"
    # X-Forwarded-For is believed only from the nginx edge, at the address compose.yaml pins for it.
    edge = re.search(r"ipv4_address: (\S+)", (ROOT / "docker" / "compose.yaml").read_text())
    assert edge is not None
    assert [str(network) for network in settings.trusted_proxies] == [f"{edge.group(1)}/32"]


def test_dockerfile_copies_existing_paths() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    sources = [m.group(1).split()[:-1] for m in re.finditer(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)]
    for group in sources:
        for source in group:
            assert (ROOT / source).exists() or (ROOT / "players" / Path(source).name).exists(), source


def test_the_compose_healthcheck_passes_on_a_ready_gateway_and_fails_otherwise() -> None:
    """The healthcheck command, run as compose runs it, against a real gateway (ready: exit 0) and a port with
    nothing behind it (exit 1); the edge waits for it."""
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    found = re.search(r'test: \["CMD", "python", "-c", "(.+?)"\]', compose)
    assert found is not None and "/readyz" in found.group(1)
    assert "condition: service_healthy" in compose

    def healthcheck(port: int) -> int:
        code = found.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode

    keys = KeyRing((HmacKey("k1", b"\x01" * 32),))
    with tempfile.TemporaryDirectory() as media, static_origin(Path(media)) as (origin, _):
        ready = build_app(Settings(keys=keys, routes=(Route(mount="/", origin=origin),)))
        with serve_app(ready) as url:
            assert healthcheck(int(url.rsplit(":", 1)[1])) == 0
    dead_origin = Settings(keys=keys, routes=(Route(mount="/", origin=f"http://127.0.0.1:{free_port()}/"),))
    with serve_app(build_app(dead_origin)) as url:  # serving, but its origin is away: not ready
        assert healthcheck(int(url.rsplit(":", 1)[1])) == 1
    assert healthcheck(free_port()) == 1
