"""Command line: `python -m gateway {serve,sign,verify,keys,bench}` (also the `gateway` console script)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config import load_key_ring, load_settings, load_toml
from gateway.errors import ConfigError, TokenDenied
from gateway.http.request_facts import split_token
from gateway.runtime import UVICORN_OPTIONS, tune_allocator
from gateway.startup import describe
from gateway.tokens.acl import normalise_path
from gateway.tokens.dialects.base import Credentials, Dialect
from gateway.tokens.grant import Grant, Scope, parse_network
from gateway.tokens.keys import KeyRing, new_key_entry
from gateway.tokens.native import DEFAULT_LEEWAY_SECONDS, verify_token


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it would log every origin request
    app = build_app(settings)
    logging.getLogger("gateway").info("%s", describe(settings, f"http://{_host_for_url(args.host)}:{args.port}"))
    tune_allocator()
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
    from gateway.http.delivery import format_cookie

    for name, value in credentials.headers:
        print(f"header: {name}: {value}")
    for cookie in credentials.cookies:
        print(f"Set-Cookie: {format_cookie(cookie, now=time.time())}")
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
    grant = Grant(
        path_prefixes=tuple(args.path_prefix),
        expires_at=now + args.ttl,
        client_network=parse_network(args.ip) if args.ip else None,
        session_id=args.session,
        user_id=args.user,
        scope=Scope(args.scope),
    )
    if args.dialect:
        _print_credentials(_dialect(args).sign(grant, url=args.url))
        return 0
    token = sign_grant(grant, _keys_from(args.config))
    print(f"# prefixes={','.join(grant.path_prefixes)} expires_at={grant.expires_at} scope={grant.scope.value}")
    print(token)
    return 0


def _print_denial(denied: TokenDenied) -> int:
    """`verify`'s answer to a refused request: the typed reason, then every value involved. Exit status 1."""
    print(f"DENY {denied.reason.value}: {denied.detail}")
    for name, value in denied.values.items():
        print(f"  {name} = {value}")
    return 1


def _verify_dialect(args: argparse.Namespace, now: float) -> int:
    from gateway.tokens.dialects.base import EdgeRequest

    cookies = dict(pair.split("=", 1) for pair in args.cookie)
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in args.header)}
    request = EdgeRequest(args.url, cookies, headers, ipaddress.ip_address(args.ip) if args.ip else None)
    try:
        grant = _dialect(args).verify(request, now=now)
    except TokenDenied as denied:
        return _print_denial(denied)
    print(f"ALLOW {urlsplit(args.url).path} ({args.dialect})")
    print(f"  prefixes = {', '.join(grant.path_prefixes)}  expires_at = {grant.expires_at}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.dialect:
        return _verify_dialect(args, args.now if args.now is not None else time.time())
    parts = urlsplit(args.url)
    settings_param = args.token_param
    token, _ = split_token(parts.query.encode("latin-1"), settings_param)
    now = args.now if args.now is not None else time.time()
    try:
        checked = normalise_path(parts.path.encode("latin-1") or b"/")
        if not token:
            from gateway.errors import Denial

            raise TokenDenied(Denial.MISSING, f"the URL has no {settings_param!r} query parameter")
        from gateway.http.media_types import is_manifest

        grant = verify_token(
            token,
            _keys_from(args.config),
            path=checked,
            client_ip=ipaddress.ip_address(args.ip) if args.ip else None,
            needed_scope=Scope.PLAYLIST if is_manifest(checked.decoded) else Scope.MEDIA,
            now=now,
            leeway_seconds=args.leeway,
        )
    except TokenDenied as denied:
        return _print_denial(denied)
    print(f"ALLOW {checked.decoded}")
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
    from gateway.dev.bench import run_benchmarks

    return run_benchmarks(quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="protect an origin: GET /<path> is <origin>/<path> behind the token check")
    serve.add_argument("--origin", help="origin base URL (or GATEWAY_ORIGIN, or [[routes]] in --config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", type=Path)
    serve.set_defaults(func=cmd_serve)

    sign = sub.add_parser("sign", help="print a token (last line) that `serve` accepts under the prefix")
    sign.add_argument("--path-prefix", action="append", required=True, help="e.g. /vod/title/ (repeatable)")
    sign.add_argument("--ttl", type=int, required=True, help="seconds from now")
    sign.add_argument("--ip", help="bind to a client IP or CIDR (IPv4 or IPv6)")
    sign.add_argument("--session", help="session id")
    sign.add_argument("--user", help="user id")
    sign.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.ALL.value)
    sign.add_argument("--config", type=Path)
    sign.add_argument("--dialect", help="sign in a CDN's dialect (needs --config with [dialects.NAME])")
    sign.add_argument("--url", help="the URL to sign, for per-URL dialect forms")
    sign.set_defaults(func=cmd_sign)

    verify = sub.add_parser("verify", help="say whether a request URL would be served, and if not exactly why")
    verify.add_argument("url")
    verify.add_argument("--ip", help="the client address the request comes from")
    verify.add_argument("--now", type=float, help="check at this epoch time instead of now")
    verify.add_argument("--token-param", default="token")
    verify.add_argument("--leeway", type=float, default=DEFAULT_LEEWAY_SECONDS)
    verify.add_argument("--config", type=Path)
    verify.add_argument("--dialect", help="verify as that CDN's edge would (needs --config)")
    verify.add_argument("--cookie", action="append", default=[], help="NAME=VALUE sent with the request")
    verify.add_argument("--header", action="append", default=[], help="'Name: value' sent with the request")
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

    from gateway.dev.load import register as register_load
    from gateway.replay.cli import register as register_replay

    register_replay(sub)
    register_load(sub)

    bench = sub.add_parser("bench", help="benchmarks: ratios against baselines measured in the same run")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
