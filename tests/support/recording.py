"""An ASGI wrapper that records every request and response status passing through an app."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]


@dataclass
class Seen:
    path: str
    query: str
    status: int = 0


@dataclass
class RecordingApp:
    app: Any
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = Seen(scope["path"], scope.get("query_string", b"").decode("latin-1"))
        self.seen.append(record)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
