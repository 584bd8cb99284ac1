"""Liveness and readiness, for load balancers, orchestrators and Docker's HEALTHCHECK.

    GET /healthz   200 ok                      the process serves requests (whatever its dependencies do)
    GET /readyz    200 {"ready": true}         every origin answers, and Redis (when configured) answers a
                                               PING and the shared revocations are in sync
                   503 {"ready": false, "reason": …, "failed": {check: why}}

Each check has its own deadline and all run at once, so `/readyz` answers within `READY_TIMEOUT_SECONDS`
however its dependencies hang. An origin is reachable when it answers a HEAD of the route's origin URL with any
status (a 404 is an answer). An instance that is not ready still serves, with what it knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.config import Settings
from gateway.errors import OriginError
from gateway.origin.client import OriginClient
from gateway.sessions.revocations import RedisRevocations, RevocationStore
from gateway.startup import public_url

READY_TIMEOUT_SECONDS: Final = 2.0
NO_STORE: Final = {"cache-control": "no-store"}

Check = Callable[[], Awaitable[str | None]]  # None: fine; else why not


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok\n", headers=NO_STORE)  # liveness: the process serves, whatever Redis does


class Readiness:
    def __init__(self, settings: Settings, origin: OriginClient, revocations: RevocationStore) -> None:
        self.checks: dict[str, Check] = {}
        for url in sorted({route.origin for route in settings.routes}):
            self.checks[f"origin {public_url(url)}"] = self._origin_check(origin, url)
        if isinstance(revocations, RedisRevocations):
            self.checks["redis"] = self._redis_check(revocations)

    @staticmethod
    def _origin_check(origin: OriginClient, url: str) -> Check:
        async def check() -> str | None:
            try:
                await origin.probe(url, timeout=READY_TIMEOUT_SECONDS)
            except OriginError as exc:
                return exc.detail
            return None

        return check

    @staticmethod
    def _redis_check(revocations: RedisRevocations) -> Check:
        async def check() -> str | None:
            # In sync first (the revocation thread's view, which names the address), then a PING now.
            return revocations.not_ready_reason() or await asyncio.to_thread(revocations.ping)

        return check

    async def failures(self) -> dict[str, str]:
        """Each failing check and why, every check bounded by READY_TIMEOUT_SECONDS."""

        async def bounded(check: Check) -> str | None:
            try:
                async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                    return await check()
            except TimeoutError:
                return f"no answer within {READY_TIMEOUT_SECONDS:g} s"

        names = list(self.checks)
        results = await asyncio.gather(*(bounded(self.checks[name]) for name in names))
        return {name: reason for name, reason in zip(names, results, strict=True) if reason is not None}

    async def endpoint(self, _: Request) -> Response:
        failed = await self.failures()
        if failed:
            reason = "; ".join(f"{name}: {why}" for name, why in failed.items())
            return JSONResponse({"ready": False, "reason": reason, "failed": failed}, status_code=503, headers=NO_STORE)
        return JSONResponse({"ready": True}, headers=NO_STORE)
