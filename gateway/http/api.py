"""The session API: thin routes over `SessionService`.

    POST   /api/sessions                 {"asset": …} + Authorization: Bearer <credential>  -> 201
    POST   /api/sessions/{id}/refresh    {"token": …}                                        -> 200
    DELETE /api/sessions/{id}            {"token": …}                                        -> 204
Refusals are raised as typed errors (gateway/errors.py) and answered by the app's exception-handler map:
JSON `{"error", "detail", "request_id"}`, 400 bad_request, 401 unauthenticated, 403 with a reason a developer
can act on (not_entitled, geo_blocked, revoked, session_ended, ip, scope, referer_refused, user_agent_refused),
404 unknown_asset, 503 entitlements_unavailable (the entitlement webhook failed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config_schema import Delivery
from gateway.errors import BadRequest, BodyTimeout
from gateway.http.delivery import is_plain_http_localhost, set_cookie
from gateway.http.request_facts import client_address, header
from gateway.sessions.service import API_PREFIX, IssuedToken, SessionService
from gateway.sessions.streams import StreamWatch
from gateway.tokens.acl import normalise_path

MAX_BODY_BYTES = 16 * 1024
BODY_SECONDS = 10.0  # the whole body, however slowly it drips (the head has its own deadline)


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object in the body, read with the size limit enforced while reading (a client announcing
    or sending more is cut off at MAX_BODY_BYTES, never buffered whole)."""
    declared = header(request.scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes (content-length {declared[:20]})")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"request body not complete within {BODY_SECONDS:g} s") from None
    body = b"".join(chunks)
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not JSON: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8") from exc
    except RecursionError:
        raise BadRequest("request body nests JSON too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _bearer(request: Request) -> str | None:
    value = header(request.scope, b"authorization") or ""
    scheme, _, credential = value.partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


def session_routes(service: SessionService, clock: Callable[[], float], streams: StreamWatch) -> list[Route]:
    """The routes; creating and refreshing a session are heartbeats of its stream (`stream_limit` past the
    limit), revoking it frees its slot."""
    sessions = service.settings.sessions

    def country(request: Request) -> str | None:
        name = sessions.country_header.lower().encode("latin-1")
        value = header(request.scope, name) if name else None
        return value.strip().upper() if value else None

    def issued(result: IssuedToken, request: Request, status: int) -> Response:
        response = JSONResponse(result.as_json(), status_code=status, headers={"cache-control": "no-store"})
        if result.mode in (Delivery.COOKIE, Delivery.HYBRID):
            response.headers.append(
                "set-cookie",
                set_cookie(
                    sessions.cookie_name,
                    result.token,
                    path=result.title_prefix,
                    expires_at=result.expires_at,
                    now=clock(),
                    secure=not is_plain_http_localhost(request.scope),
                    same_site=sessions.cookie_same_site,
                    partitioned=sessions.cookie_partitioned,
                ),
            )
        return response

    async def create(request: Request) -> Response:
        asset = (await _json_body(request)).get("asset")
        if not isinstance(asset, str) or not asset or not _utf8(asset):
            raise BadRequest('send {"asset": "<path of a master playlist>"}')
        client_ip = client_address(request.scope, service.settings.proxy_trust)
        now = clock()
        result = await service.create(
            credential=_bearer(request),
            asset=asset,
            client_ip=client_ip,
            country=country(request),
            now=now,
            referer=header(request.scope, b"referer"),
            user_agent=header(request.scope, b"user-agent"),
        )
        await streams.heartbeat(result.grant, client_ip, now)
        return issued(result, request, 201)

    async def refresh(request: Request) -> Response:
        body = await _json_body(request)
        client_ip = client_address(request.scope, service.settings.proxy_trust)
        now = clock()
        result = await service.refresh(
            session_id=request.path_params["session_id"],
            token=_token_from(body, request),
            client_ip=client_ip,
            country=country(request),
            now=now,
            path=_path_from(body),
        )
        await streams.heartbeat(result.grant, client_ip, now)
        return issued(result, request, 200)

    async def revoke(request: Request) -> Response:
        body = await _json_body(request)
        token = _token_from(body, request)
        grant = service.revoke(
            session_id=request.path_params["session_id"], token=token, now=clock(), path=_path_from(body)
        )
        await streams.release(grant)
        return Response(status_code=204)

    return [
        Route(API_PREFIX, create, methods=["POST"]),
        Route(API_PREFIX + "/{session_id}/refresh", refresh, methods=["POST"]),
        Route(API_PREFIX + "/{session_id}", revoke, methods=["DELETE"]),
    ]


def _token_from(body: dict[str, Any], request: Request) -> str:
    token = body.get("token") or _bearer(request)
    if not isinstance(token, str) or not token:
        raise BadRequest('send {"token": "<the session\'s current token>"}')
    return token


def _path_from(body: dict[str, Any]) -> str | None:
    """The optional "path" a playlist token was served with (path-bound tokens need it), normalised."""
    path = body.get("path")
    if path is None:
        return None
    if not isinstance(path, str) or not path or not _utf8(path):
        raise BadRequest('"path" is the path of the URL the token came with ("/vod/title/v1/index.m3u8")')
    return normalise_path(path.encode("utf-8")).decoded


def _utf8(text: str) -> bool:
    """False for a JSON string with lone surrogates (`"\\ud800"`), which no path can contain."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
