"""Process-level settings applied when the gateway serves: the uvicorn options, allocator tuning.

glibc returns freed memory at the top of the heap to the kernel once more than 128 KiB is free, so a
server that builds a ~1 MB playlist per request pays for fresh pages (page faults) on every response:
measured here, rendering a prepared 10,000-segment playlist took ~1.2 ms with the default and ~0.12 ms
with a top pad (see `python -m gateway bench`). Keeping 64 MiB of slack costs address space, not RSS
growth beyond the working set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any, Final

from gateway.config import MetricsSettings
from gateway.http.bounded_protocol import BoundedHttpToolsProtocol
from gateway.telemetry.logs import LogFormat, formatter

# How every uvicorn the project starts runs the gateway (`serve`, `demo`, the bench, the integration tests).
# proxy_headers is on by default in uvicorn and rewrites the peer from X-Forwarded-For sent by 127.0.0.1:
# the gateway reads forwarded headers itself, from `trusted_proxies` only (request_facts.client_address).
# http: httptools with a byte limit and a deadline on every request head (gateway/http/bounded_protocol.py).
# timeout_keep_alive: uvicorn's 5 s is shorter than a player's gap between segment requests, so the server
# closes idle connections just as players reuse them (a reset the player must retry; measured: 3 in 4,166
# requests under `gateway load`); nginx's default, 75 s, outlives any segment interval.
UVICORN_OPTIONS: Final[dict[str, Any]] = {
    "timeout_keep_alive": 75,
    "loop": "uvloop",
    "http": BoundedHttpToolsProtocol,
    "log_level": "warning",
    "proxy_headers": False,
}


def configure_logging(log_format: LogFormat = LogFormat.TEXT) -> None:
    """The gateway's log lines at INFO on stderr (`serve`, each of its workers, `demo`), as text or JSON lines
    (`[logging] format`, gateway/telemetry/logs.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it would log every origin request


M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
TOP_PAD_BYTES = 64 * 1024 * 1024


def tune_allocator() -> bool:
    """Ask glibc to keep heap slack (no-op elsewhere). Returns True if applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * TOP_PAD_BYTES))


def serve_metrics_apart(metrics: MetricsSettings) -> None:
    """`[metrics] port`: `/metrics` on a listener of its own (a daemon thread of this process), so the scrape
    port can stay off the network viewers reach. Nothing when metrics are off or on the main port."""
    if not metrics.enabled or metrics.port == 0:
        return
    from prometheus_client import start_http_server

    from gateway.telemetry.metrics import exposition_registry

    start_http_server(metrics.port, metrics.host, registry=exposition_registry())
    logging.getLogger("gateway").info("metrics on http://%s:%d/metrics", metrics.host, metrics.port)
