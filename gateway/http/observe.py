"""The outermost layer of the app: a request id for every request, and the request counter.

Every response carries `x-request-id`, the id its log lines (gateway/telemetry/logs.py) and its error body
(gateway/http/errors.py) name, so a viewer's report, a log line and a metric spike meet on one value. Each
answered request counts once in `gateway_requests_total{kind, status}`; the kind comes from the route that
took it (the edge's: manifest or segment, by the path's file type), read after the app ran, so counting costs
no routing of its own. Raw ASGI: this runs on every playlist and segment request.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from typing import Final

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.media_types import is_manifest
from gateway.telemetry.logs import REQUEST_ID
from gateway.telemetry.metrics import REQUESTS

REQUEST_ID_KEY: Final = "gateway.request_id"  # in the ASGI scope
KIND_KEY: Final = "gateway.route_kind"  # in the ASGI scope: set by the edge once it knows (manifest, segment)
HEADER: Final = b"x-request-id"
EDGE: Final = "edge"  # the kind of the catch-all route: manifest or segment, by the path

# Ids are unique, not secret: a random 32-bit prefix per process (instances and workers differ) and a counter,
# 16 hex digits. A counter costs a third of drawing random bits on every request.
_PREFIX: Final = secrets.token_hex(4)
_sequence = itertools.count(secrets.randbits(32))


def new_request_id() -> str:
    """Names one request in its answer, its log lines and its error body (16 hex digits, short to quote)."""
    return f"{_PREFIX}{next(_sequence) & 0xFFFFFFFF:08x}"


def request_id(scope: Scope) -> str:
    """The id the observer gave this request (a new one for a scope it did not see, e.g. in a unit test)."""
    found = scope.get(REQUEST_ID_KEY)
    if found is None:
        found = scope[REQUEST_ID_KEY] = new_request_id()
    return str(found)


class Observer:
    """`kinds`: a route's path template → its kind (`EDGE` for the edge's catch-all); others count as `other`."""

    def __init__(self, app: ASGIApp, kinds: Mapping[str, str]) -> None:
        self.app = app
        self.kinds = dict(kinds)
        self._counters: dict[tuple[str, int], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope[REQUEST_ID_KEY] = rid
        header = (HEADER, rid.encode("ascii"))
        status = 500  # an exception no handler answered: the server answers 500
        counted = False

        async def send_observed(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif not message.get("more_body", False) and not counted:
                # Counted before the last byte leaves: a client that reads its answer and then scrapes
                # /metrics (a test, a health probe) sees its own request counted.
                counted = True
                self._count(scope, status)
            await send(message)

        reset = REQUEST_ID.set(rid)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            REQUEST_ID.reset(reset)
            if not counted:  # no complete answer: an exception, or a download aborted mid-body
                self._count(scope, status)

    def _count(self, scope: Scope, status: int) -> None:
        kind = scope.get(KIND_KEY)
        if kind is None:
            kind = self.kinds.get(getattr(scope.get("route"), "path", ""), "other")
            if kind == EDGE:  # refused before the edge knew: judge by the file type
                kind = "manifest" if is_manifest(scope["path"]) else "segment"
        key = (kind, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = REQUESTS.labels(kind, str(status))
        counter.inc()
