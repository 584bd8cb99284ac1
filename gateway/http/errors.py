"""Every error response, built in one place: the app's exception-handler map.

Routes raise typed errors (gateway/errors.py) and never build a refusal themselves. Each becomes

    {"error": <code>, "detail": <what to do about it>, "request_id": <quoted in the log line>}
    x-token-denial: <code>   (a denial: a player reads why its credential was refused)
    x-gateway-error: <code>  (anything else: origin trouble, a bad request, an unknown route, …)
    cache-control: no-store

An unexpected exception becomes `internal_error` (500) with a request id; its traceback goes to the log
only, never to the body. CORS is applied by the app's outermost layer (gateway/http/cors.py), so a player
on another site reads every refusal, a 500 included. Denials are logged with a token fingerprint (never the
token) and counted in `gateway_denials_total{reason}` (`/metrics`). The request id is the one the observer
gave the request (gateway/http/observe.py), also sent as `x-request-id` on every response.
"""

from __future__ import annotations

import http
import logging
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

from gateway.config import Settings
from gateway.errors import GatewayError, InternalError
from gateway.http.delivery import find_token
from gateway.http.observe import request_id as observed_request_id
from gateway.http.request_facts import client_address, token_fingerprint
from gateway.telemetry.metrics import DENIALS

log = logging.getLogger("gateway.http.errors")

# Set in the scope by the 500 handler: Starlette re-raises after sending our answer (so that servers can log
# it); it is logged already, with its request id, so `ReportedErrors` stops it there.
REPORTED = "gateway.reported"


def error_response(
    status: int, code: str, detail: str, request_id: str, *, denial: bool, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one shape of every refusal and failure."""
    names = {"x-token-denial" if denial else "x-gateway-error": code, "cache-control": "no-store"}
    return JSONResponse(
        {"error": code, "detail": detail, "request_id": request_id},
        status_code=status,
        headers=(headers or {}) | names,
    )


class ErrorAnswers:
    """The handlers of the map; they share the settings (to describe a request in the log)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def answer(self, request: Request, error: GatewayError) -> Response:
        """Any error of the tree: logged (denials with the request's client and token fingerprint), answered."""
        request_id = observed_request_id(request.scope)
        if error.denial:
            DENIALS.labels(error.code).inc()
            if log.isEnabledFor(logging.INFO):  # describing the request costs more than the refusal itself
                path, client, token = self._describe(request.scope)
                log.info(
                    "denied reason=%s path=%s client=%s token=%s detail=%s request_id=%s",
                    error.code,
                    path,
                    client,
                    token,
                    error.detail,
                    request_id,
                    extra={"fields": {"event": "denied", "reason": error.code, "path": path, "client": client}},
                )
        elif error.status >= 500:
            log.warning("%s: %s (%s) request_id=%s", error.code, error.detail, _path(request.scope), request_id)
        else:
            log.info("%s: %s request_id=%s", error.code, error.detail, request_id)
        retry = {"retry-after": str(error.retry_after)} if error.retry_after is not None else None
        return error_response(error.status, error.code, error.detail, request_id, denial=error.denial, headers=retry)

    async def gateway_error(self, request: Request, exc: Exception) -> Response:
        return self.answer(request, cast(GatewayError, exc))  # registered for GatewayError (and subclasses) only

    async def framework_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (a method a route does not take: 405 with `Allow`), in the same shape."""
        exc = cast(HTTPException, exc)  # registered for HTTPException only
        code = http.HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        request_id = observed_request_id(request.scope)
        log.info("%s: %s %s request_id=%s", code, request.scope["method"], _path(request.scope), request_id)
        return error_response(
            exc.status_code, code, str(exc.detail), request_id, denial=False, headers=dict(exc.headers or {})
        )

    async def unexpected(self, request: Request, exc: Exception) -> Response:
        """A bug or an unforeseen failure: the traceback to the log, a request id to the player."""
        request_id = observed_request_id(request.scope)
        log.error(
            "internal error on %s %s request_id=%s",
            request.scope["method"],
            _path(request.scope),
            request_id,
            exc_info=exc,
        )
        request.scope[REPORTED] = exc
        error = InternalError(f"the gateway failed on this request; its log has the details under {request_id}")
        return error_response(error.status, error.code, error.detail, request_id, denial=False)

    def _describe(self, scope: Scope) -> tuple[str, str, str]:
        """(path, client, token fingerprint) of a refused request, as its denial line shows them."""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        settings = self.settings
        found = find_token(scope, raw_path, param=settings.token_param, cookie_name=settings.sessions.cookie_name)
        client = client_address(scope, settings.proxy_trust)
        return _path(scope), str(client), token_fingerprint(found.token) if found.token else "-"


def _path(scope: Scope) -> str:
    """The request path for a log line: bounded, and never a path token (`/t/<token>/…`)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    return "/t/…" if raw_path.startswith(b"/t/") else raw_path[:200].decode("latin-1")


def exception_handlers(answers: ErrorAnswers) -> dict[Any, ExceptionHandler]:
    """The map for `Starlette(exception_handlers=…)`. Starlette looks handlers up along the exception's MRO,
    so `GatewayError` answers every error of the tree; `Exception` is its last resort (ServerErrorMiddleware)."""
    return {
        GatewayError: answers.gateway_error,
        HTTPException: answers.framework_error,
        Exception: answers.unexpected,
    }


class ReportedErrors:
    """Stops an exception the 500 handler has answered and logged (Starlette re-raises it afterwards), so the
    server does not log its traceback a second time; anything else propagates."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope.get(REPORTED) is not exc:
                raise
