"""Command line: `python -m gateway {serve,sign,verify,keys,audit,bench}` (also the `gateway` console script)."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gateway.config import Settings, load_key_ring, load_settings, load_toml
from gateway.errors import ConfigError, GatewayError, NoRoute, TokenDenied
from gateway.runtime import UVICORN_OPTIONS, configure_logging, serve_metrics_apart, tune_allocator
from gateway.sessions.revocations import (
    FIRST_SYNC_WAIT_SECONDS,
    MemoryRevocations,
    RedisRevocations,
    RevocationStore,
)
from gateway.startup import describe
from gateway.tokens.dialects.base import Credentials, Dialect, SigningOptions
from gateway.tokens.grant import Grant, Scope, parse_network
from gateway.tokens.keys import KeyRing, new_key_entry
from gateway.workers import OPT_IN_FLAG, available_cores, plan_workers, run_workers


def _environment() -> Mapping[str, str]:
    """The process environment: read here, at the command line, and handed to the loaders, which read
    only the mapping they are given (`load_settings(path, environ)`)."""
    return os.environ


def _keys_from(config: Path | None) -> KeyRing:
    return load_key_ring(load_toml(config), _environment())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.http.app import build_app

    settings = load_settings(args.config, _environment(), origin_override=args.origin)
    configure_logging(settings.log_format)
    if settings.metrics.port and settings.metrics.port == args.port:
        raise ConfigError(f"metrics.port {settings.metrics.port} is --port: set metrics.port = 0 for the main port")
    plan = plan_workers(
        args.workers, settings, per_worker_revocations=args.per_worker_revocations, cores=available_cores()
    )
    log = logging.getLogger("gateway")
    log.info("%s", describe(settings, f"http://{_host_for_url(args.host)}:{args.port}"))
    for note in plan.notes:
        log.info("workers: %s", note)
    if plan.warning:
        log.warning("workers: %s", plan.warning)
    if plan.count > 1:
        run_workers(
            plan.count,
            host=args.host,
            port=args.port,
            config=args.config,
            origin=args.origin,
            metrics=settings.metrics,
        )
        return 0
    app = build_app(settings)
    tune_allocator()
    serve_metrics_apart(settings.metrics)
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _dialect(args: argparse.Namespace) -> Dialect:
    from gateway.tokens.dialects import load_dialect

    if args.config is None:
        raise ConfigError(f"--dialect {args.dialect} needs --config FILE with a [dialects.{args.dialect}] table")
    table = load_toml(args.config).get("dialects", {}).get(args.dialect)
    if table is None:
        raise ConfigError(f"{args.config} has no [dialects.{args.dialect}] table")
    return load_dialect(args.dialect, table, base_dir=args.config.parent, environ=_environment())


def _print_credentials(credentials: Credentials) -> None:
    for name, value in credentials.headers:
        print(f"header: {name}: {value}")
    for cookie in credentials.cookies:
        print(f"Set-Cookie: {cookie.set_cookie(now=time.time())}")
    if credentials.path_token:
        print(f"path token: {credentials.path_token}")
    if credentials.query:
        print(f"query: {credentials.query_string()}")
    last = credentials.url or credentials.token or credentials.query_string() or credentials.path_token
    if last:
        print(last)


def cmd_sign(args: argparse.Namespace) -> int:
    from gateway.tokens.native import sign_grant

    now = int(time.time())
    start = now if args.start == "now" else int(args.start) if args.start else None
    grant = Grant(
        path_prefixes=tuple(args.path_prefix),
        expires_at=(start or now) + args.ttl,
        not_before=start,
        client_network=parse_network(args.ip) if args.ip else None,
        session_id=args.session,
        user_id=args.user,
        scope=Scope(args.scope),
    )
    options = SigningOptions(
        resources=tuple(args.resource),
        method=args.method.upper() if args.method else None,
        headers=_header_pairs(args.sign_header),
    )
    if args.dialect:
        url = as_sent(args.url) if args.url else None
        _print_credentials(_dialect(args).sign(grant, url=url, options=options))
        return 0
    options.refuse_unsupported("the native token")
    token = sign_grant(grant, _keys_from(args.config))
    print(f"# prefixes={','.join(grant.path_prefixes)} expires_at={grant.expires_at} scope={grant.scope.value}")
    print(token)
    return 0


def _print_denial(refused: GatewayError) -> int:
    """`verify`'s answer to a refused request: the typed reason, then every value involved. Exit status 1."""
    print(f"DENY {refused.code}: {refused.detail}")
    values = refused.values if isinstance(refused, TokenDenied) else {}
    for name, value in values.items():
        print(f"  {name} = {value}")
    return 1


def _header_pairs(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """'Name: value' lines as (name, value) pairs, in order."""
    pairs = tuple((name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines))
    if any(not name for name, _ in pairs):
        raise ConfigError(f"a header is 'Name: value', not {lines!r}")
    return pairs


def _verify_dialect(args: argparse.Namespace, now: float) -> int:
    from gateway.tokens.dialects.base import EdgeRequest

    cookies = dict(pair.split("=", 1) for pair in args.cookie)
    headers = {name.lower(): value for name, value in _header_pairs(args.header)}
    address = ipaddress.ip_address(args.ip) if args.ip else None
    request = EdgeRequest(args.url, cookies, headers, address, method=args.method.upper())
    try:
        grant = _dialect(args).verify(request, now=now)
    except TokenDenied as denied:
        return _print_denial(denied)
    print(f"ALLOW {urlsplit(args.url).path} ({args.dialect})")
    print(f"  prefixes = {', '.join(grant.path_prefixes)}  expires_at = {grant.expires_at}")
    return 0


# `serve` needs an origin; `verify` never contacts one. Without a configured route, a URL is judged as
# `serve --origin <any>` would judge it: one route mounted at `/`.
_ANY_ORIGIN = "http://origin.invalid/"


def _verify_settings(args: argparse.Namespace) -> Settings:
    """The settings `serve --config FILE` would run with; --token-param and --leeway override theirs."""
    environ = _environment()
    configured = bool(load_toml(args.config).get("routes")) or bool(environ.get("GATEWAY_ORIGIN"))
    settings = load_settings(args.config, environ, origin_override=None if configured else _ANY_ORIGIN)
    if args.token_param is None and args.leeway is None:
        return settings
    return dataclasses.replace(
        settings,
        token_param=args.token_param or settings.token_param,
        leeway_seconds=settings.leeway_seconds if args.leeway is None else args.leeway,
    )


def _revocations(settings: Settings) -> RevocationStore:
    """Revoked sessions as `serve` sees them: shared through Redis when configured, else none."""
    if not settings.redis_url:
        return MemoryRevocations()
    store = RedisRevocations(settings.redis_url)
    if not store.wait_first_sync(FIRST_SYNC_WAIT_SECONDS):
        store.close()  # the reason may hold the URL's host, never its password; name the setting
        raise ConfigError("revocations.redis_url: Redis is unreachable, so revocations cannot be checked")
    return store


def request_scope(url: str, *, client_ip: str | None, cookies: Sequence[str], headers: Sequence[str]) -> dict[str, Any]:
    """The ASGI scope a server would hand the gateway for a GET of `url` from `client_ip`."""
    parts = urlsplit(url)
    raw_path = parts.path.encode("utf-8") or b"/"
    sent = [(b"host", parts.netloc.encode("utf-8"))]
    if cookies:
        sent.append((b"cookie", "; ".join(cookies).encode("latin-1")))
    for line in headers:
        name, _, value = line.partition(":")
        sent.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    return {
        "type": "http",
        "method": "GET",
        "scheme": parts.scheme or "http",
        "path": unquote(raw_path.decode("utf-8")),
        "raw_path": raw_path,
        "query_string": parts.query.encode("utf-8"),
        "headers": sent,
        "client": (client_ip, 0) if client_ip else None,
    }


def as_sent(url: str) -> str:
    """The URL as a browser sends it: spaces, non-ASCII and other characters a request line cannot carry
    percent-encoded (UTF-8); escapes already in it, and every URL delimiter, kept as they are."""
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~")


def cmd_verify(args: argparse.Namespace) -> int:
    """Judge a URL through the same gate as `serve` (routes, token parameter, leeway, scope, dialect-edge
    routes, revocations), so the answer is `serve`'s, not a re-implementation's."""
    from gateway.http.gate import Gate

    now = args.now if args.now is not None else time.time()
    args.url = as_sent(args.url)
    if args.dialect:
        return _verify_dialect(args, now)
    settings = _verify_settings(args)
    scope = request_scope(args.url, client_ip=args.ip, cookies=args.cookie, headers=args.header)
    revocations = _revocations(settings)
    try:
        access = Gate(settings, revocations).admit(scope, now)
    except (TokenDenied, NoRoute) as refused:
        return _print_denial(refused)
    finally:
        revocations.close()
    grant, route = access.grant, access.route
    print(f"ALLOW {access.resource.decoded}")
    print(f"  route = {route.mount} ({f'edge: {route.edge}' if route.edge else route.delivery})")
    print(f"  prefixes = {', '.join(grant.path_prefixes)}")
    print(f"  expires_at = {grant.expires_at} (in {int(grant.expires_at - now)} s)  scope = {grant.scope.value}")
    for name in ("client_network", "session_id", "user_id", "session_ends_at", "key_id"):
        if getattr(grant, name) is not None:
            print(f"  {name} = {getattr(grant, name)}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    print(new_key_entry(args.kid, args.alg))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.dev.demo import run_demo

    lifetimes = {
        "token_ttl_seconds": args.token_ttl,
        "media_ttl_seconds": args.media_ttl,
        "max_life_seconds": args.max_life,
    }
    return run_demo(
        args.host,
        args.port,
        args.state_dir,
        _environment(),
        **{name: value for name, value in lifetimes.items() if value is not None},
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway.dev.bench import parse_parts, run_benchmarks

    return run_benchmarks(quick=args.quick, as_json=args.json, parts=parse_parts(args.only))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="protect an origin: GET /<path> is <origin>/<path> behind the token check")
    serve.add_argument("--origin", help="origin base URL (or GATEWAY_ORIGIN, or [[routes]] in --config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", type=Path)
    serve.add_argument(
        "--workers",
        type=int,
        help="processes serving one port (default: every core when [revocations] redis_url is set, else 1)",
    )
    serve.add_argument(
        OPT_IN_FLAG,
        action="store_true",
        help="allow --workers N > 1 without Redis: a revocation then applies only in the worker that received it",
    )
    serve.set_defaults(func=cmd_serve)

    sign = sub.add_parser("sign", help="print a token (last line) that `serve` accepts under the prefix")
    sign.add_argument("--path-prefix", action="append", required=True, help="e.g. /vod/title/ (repeatable)")
    sign.add_argument(
        "--ttl", "--window", type=int, required=True, help="seconds valid from --start or now (Akamai's window)"
    )
    sign.add_argument("--ip", help="bind to a client IP or CIDR (IPv4 or IPv6)")
    sign.add_argument("--session", help="session id")
    sign.add_argument("--user", help="user id")
    sign.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.ALL.value)
    sign.add_argument("--config", type=Path)
    sign.add_argument("--dialect", help="sign in a CDN's dialect (needs --config with [dialects.NAME])")
    sign.add_argument("--url", help="the URL to sign, for per-URL dialect forms")
    sign.add_argument("--start", help="valid from this epoch time, or 'now' (default: no start time)")
    sign.add_argument(
        "--resource", action="append", default=[], help="a custom ACL/resource in the dialect's wildcards (repeatable)"
    )
    sign.add_argument("--method", help="bind the token to this HTTP method (where the dialect signs it)")
    sign.add_argument(
        "--sign-header", action="append", default=[], help="'Name: value' the token is bound to (repeatable)"
    )
    sign.set_defaults(func=cmd_sign)

    verify = sub.add_parser(
        "verify",
        help="say whether `serve` (same config) would serve a request URL, and if not exactly why",
    )
    verify.add_argument("url")
    verify.add_argument("--ip", help="the client address the request comes from")
    verify.add_argument("--now", type=float, help="check at this epoch time instead of now")
    verify.add_argument("--token-param", help="instead of the configured [gateway] token_param")
    verify.add_argument("--leeway", type=float, help="seconds, instead of the configured leeway_seconds")
    verify.add_argument("--config", type=Path, help="the config `serve` runs with (routes, dialects, Redis)")
    verify.add_argument("--dialect", help="verify as that CDN's edge would (needs --config)")
    verify.add_argument("--cookie", action="append", default=[], help="NAME=VALUE sent with the request")
    verify.add_argument("--header", action="append", default=[], help="'Name: value' sent with the request")
    verify.add_argument("--method", default="GET", help="the request's HTTP method (default GET)")
    verify.set_defaults(func=cmd_verify)

    keys = sub.add_parser("keys", help="key ring helpers")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="print a new GATEWAY_KEYS entry")
    new.add_argument("--kid", help="key id (default: random)")
    new.add_argument("--alg", choices=["hmac", "ed25519"], default="hmac")
    new.set_defaults(func=cmd_keys)

    demo = sub.add_parser(
        "demo",
        help="the gateway on its embedded default: demo origin, bundled streams, demo page",
        description="The gateway on --port in front of a demo origin on 127.0.0.1:<port + 1> (the bundled "
        "streams and a live simulator), with demo users and the demo page at /. Short lifetimes "
        "(e.g. --token-ttl 20 --media-ttl 10 --max-life 300) let you watch renewal and the session's end.",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument(
        "--port", type=int, default=8000, help="the gateway's port; the demo origin listens on PORT + 1 (8001)"
    )
    demo.add_argument("--token-ttl", type=_positive, help="session token life in seconds (default 300)")
    demo.add_argument("--media-ttl", type=_positive, help="rolling media token life in live manifests (default 300)")
    demo.add_argument("--max-life", type=_positive, help="the session's hard cap in seconds (default 14400)")
    demo.add_argument("--state-dir", type=Path, default=Path(".gateway"), help="where the development key is kept")
    demo.set_defaults(func=cmd_demo)

    from gateway.audit.cli import register as register_audit
    from gateway.dev.load import register as register_load
    from gateway.replay.cli import register as register_replay

    register_replay(sub)
    register_load(sub)
    register_audit(sub, _environment)

    bench = sub.add_parser("bench", help="benchmarks: ratios against baselines measured in the same run")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    bench.add_argument("--json", action="store_true", help="print every figure as a named ratio, as JSON")
    bench.add_argument("--only", help="comma-separated parts: micro, playlist, front, workers (default: all)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
