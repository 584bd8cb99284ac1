"""The Prometheus metrics of stream limits and sharing detection, in prometheus_client's default REGISTRY
(whatever serves `/metrics` exposes them). Module-level: a metric is registered once per process."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

STREAMS_ACTIVE: Final = Gauge(
    "gateway_streams_active",
    "Streams alive (seen within stream_idle_seconds) under [sessions] max_streams; with Redis, every instance "
    "reports the shared total (aggregate with max, not sum)",
    multiprocess_mode="livemax",  # `serve --workers N` (with Redis): every worker sees the shared total
)
STREAM_LIMIT_REFUSALS: Final = Counter(
    "gateway_stream_limit_refusals_total",
    "Streams refused by [sessions] max_streams: outcome=blocked (a new stream refused, block_new) or "
    "evicted (an old stream ended to admit a new one, evict_oldest)",
    ["outcome"],
)
SHARING_DETECTED: Final = Counter(
    "gateway_sharing_detected_total",
    "Sessions seen from more than [sharing] max_networks client networks within window_seconds; "
    'revoked="true" when [sharing] revoke ended them',
    ["revoked"],
)
