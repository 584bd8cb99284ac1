"""The gateway's Prometheus metrics, in prometheus_client's default registry (other modules add theirs there).

Every metric is created once, here, at import; the hot paths bind label values once (`labels()` costs a lock
and a dict lookup) and only `inc()` / `observe()` per request.

With `serve --workers N` the parent sets `PROMETHEUS_MULTIPROC_DIR` in the environment the workers inherit
(gateway/workers.py), so prometheus_client, imported after it in each worker, writes every value to files there;
each worker then calls `share_between_workers`, and any worker's `/metrics` answers the sum over all of them
(prometheus_client's multiprocess mode).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "gateway_requests",
    "HTTP requests answered, by route kind (manifest, segment, session_api, verdict, keys, internal, other) and status",
    ["kind", "status"],
)
DENIALS = Counter("gateway_denials", "Requests refused for their credential, by typed reason", ["reason"])
TOKENS_ISSUED = Counter("gateway_tokens_issued", "Session tokens issued by POST /api/sessions")
TOKENS_RENEWED = Counter("gateway_tokens_renewed", "Session tokens renewed by POST /api/sessions/{id}/refresh")
REVOCATIONS = Counter("gateway_revocations", "Sessions revoked through this instance")
ORIGIN_SECONDS = Histogram(
    "gateway_origin_request_seconds",
    "Origin latency: a whole manifest (pool=manifest), a segment's response head (pool=segment)",
    ["pool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ORIGIN_ERRORS = Counter(
    "gateway_origin_errors",
    "Origin failures by kind (origin_unavailable, origin_timeout, origin_busy, origin_status, manifest_too_large)",
    ["kind"],
)
MANIFEST_CACHE = Counter(
    "gateway_manifest_cache",
    "Prepared-manifest lookups: hit (fresh), miss (this request fetches), coalesced (joins a fetch in flight)",
    ["result"],
)
PREPARE_SECONDS = Histogram(
    "gateway_manifest_prepare_seconds",
    "Preparing a fetched manifest (rewrite once per origin version)",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
RENDER_SECONDS = Histogram(
    "gateway_manifest_render_seconds",
    "Rendering a prepared manifest with one request's tokens",
    buckets=(0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)

CACHE_HIT: Final = MANIFEST_CACHE.labels("hit")
CACHE_MISS: Final = MANIFEST_CACHE.labels("miss")
CACHE_COALESCED: Final = MANIFEST_CACHE.labels("coalesced")
ORIGIN_MANIFEST_SECONDS: Final = ORIGIN_SECONDS.labels("manifest")
ORIGIN_SEGMENT_SECONDS: Final = ORIGIN_SECONDS.labels("segment")


_shared_dir: list[str] = []  # set once per worker process by `share_between_workers`


def share_between_workers(directory: str) -> None:
    """This process is one of `serve --workers N`: `/metrics` answers the sum of every worker's files in
    `directory` (where prometheus_client writes values, as the inherited PROMETHEUS_MULTIPROC_DIR said)."""
    _shared_dir[:] = [directory]


def multiprocess_dir() -> str | None:
    """The directory worker processes share their values through, when `serve --workers N` set one."""
    return _shared_dir[0] if _shared_dir else None


def exposition_registry() -> CollectorRegistry:
    """What `/metrics` serves: the default registry, or (multiprocess mode) the values every worker wrote."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format of every metric, and its content type."""
    return generate_latest(exposition_registry()), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """A worker is stopping: its live gauges (multiprocess mode) stop counting."""
    if multiprocess_dir() is not None:
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
