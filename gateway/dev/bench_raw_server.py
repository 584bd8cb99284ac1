"""Benchmark baseline: the same uvicorn + Starlette stack returning a file's bytes unmodified."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.runtime import UVICORN_OPTIONS


def main() -> None:
    body = Path(sys.argv[1]).read_bytes()

    async def playlist(_: Request) -> Response:
        return Response(
            body, media_type="application/vnd.apple.mpegurl", headers={"cache-control": "private, no-store"}
        )

    app = Starlette(routes=[Route("/index.m3u8", playlist)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), **UVICORN_OPTIONS)  # the stack `serve` runs


if __name__ == "__main__":
    main()
