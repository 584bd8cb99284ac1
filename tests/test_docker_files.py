"""docker/: the config the compose stack mounts loads, and every path the image copies exists.

(No Docker engine runs on the CI machines, so the image itself is not built here.)
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.config import load_settings

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
