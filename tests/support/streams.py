"""A viewer's steps through the session API and the edge, for the stream-limit and sharing tests."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx

PAID = {"authorization": "Bearer demo-paid"}
ASSET = "/vod/title-9000/master.m3u8"


async def start_session(client: httpx.AsyncClient, *, forwarded_for: str | None = None) -> httpx.Response:
    """POST /api/sessions for the demo's paid user (201 and the session, or the typed refusal)."""
    headers = PAID | ({"x-forwarded-for": forwarded_for} if forwarded_for else {})
    return await client.post("/api/sessions", json={"asset": ASSET}, headers=headers)


async def fetch_media_playlist(
    client: httpx.AsyncClient, session: dict[str, str], *, forwarded_for: str | None = None
) -> httpx.Response:
    """What a player does with a session: the master playlist, then its first variant's media playlist (the
    refusal of whichever was refused)."""
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    master = await client.get(session["playback_url"], headers=headers)
    if master.status_code != 200:
        return master
    variant = next(line for line in master.text.splitlines() if line.startswith("v144/index.m3u8"))
    return await client.get(urljoin(session["playback_url"], variant), headers=headers)
