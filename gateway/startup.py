"""The one line `serve` and `demo` log at start-up: what this process protects, and how.

An operator reading a log (or a user trying the demo) sees the listening address, every route with its
origin and delivery mode, the token lifetimes and which key signs. Secrets never appear: origin URLs lose
any user-info, and keys are named by id only.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from gateway.config import Route, Settings


def public_url(url: str) -> str:
    """`url` without user-info (an origin URL may carry credentials) and without query or fragment."""
    split = urlsplit(url)
    host = split.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{split.port}" if split.port is not None else host
    return urlunsplit((split.scheme, netloc, split.path, "", ""))


def describe_route(route: Route) -> str:
    extras: list[str] = [route.delivery.value]
    if route.cdn:
        extras.append(f"segments via cdn {route.cdn} at {public_url(route.cdn_base_url)}")
    if route.edge:
        extras.append(f"edge for {route.edge} tokens")
    return f"{route.mount} -> {public_url(route.origin)} ({', '.join(extras)})"


def describe(settings: Settings, listen_url: str) -> str:
    """One log line: address, routes, token lifetimes, key ids (the signing one first)."""
    sessions = settings.sessions
    signing = settings.keys.signing_key.key_id
    others = [key.key_id for key in settings.keys.keys if key.key_id != signing]
    retired = sorted(settings.keys.retired)
    keys = " ".join([f"{signing} (signs)", *others] + ([f"retired: {', '.join(retired)}"] if retired else []))
    return (
        f"gateway listening on {listen_url}"
        f" | routes: {'; '.join(describe_route(route) for route in settings.routes)}"
        f" | tokens: session {sessions.token_ttl_seconds} s, media {sessions.media_ttl_seconds} s in reloaded"
        f" manifests (live, EVENT, dynamic MPD) and until the session's cap in manifests loaded once (VOD,"
        f" static MPD), cap {sessions.max_life_seconds} s, leeway {settings.leeway_seconds:g} s"
        f" | keys: {keys}"
    )
