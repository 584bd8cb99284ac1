"""Settings: one frozen object, read once from a TOML file and `GATEWAY_*` variables, failing fast.

Precedence: environment variables over the config file over defaults. Every error names the setting.

```toml
[gateway]
token_param = "token"          # GATEWAY_TOKEN_PARAM
leeway_seconds = 5             # GATEWAY_LEEWAY_SECONDS
max_manifest_bytes = 16777216  # GATEWAY_MAX_MANIFEST_BYTES
trusted_proxies = []           # GATEWAY_TRUSTED_PROXIES (comma-separated): CIDRs of proxies in front of us
client_ip_header = "x-forwarded-for"  # read only from those proxies; "forwarded" reads RFC 7239
delta_updates = "pass"         # "full": drop `_HLS_skip` upstream, every reload carries fresh tokens

[keys]
ring = "k2:…,k1:…"             # GATEWAY_KEYS (newest first)
retired = ["k0"]

[origin]
connect_timeout_seconds = 3
read_timeout_seconds = 10
vod_manifest_cache_seconds = 60
live_manifest_cache_seconds = 1

[sessions]
cookie_same_site = "Lax"       # "None" for players on another site (implies Secure)
cookie_partitioned = false     # true: CHIPS `Partitioned` (needs cookie_same_site = "None")

[cors]                         # GATEWAY_CORS_ALLOWED_ORIGINS (comma-separated)
allowed_origins = []           # e.g. ["https://player.example"]: echoed with credentials; others get `*`

[[routes]]                     # GATEWAY_ORIGIN adds/overrides the route mounted at "/"
mount = "/"
origin = "http://127.0.0.1:8080/"
forward_query = []             # query parameters the origin needs (besides _HLS_msn/_HLS_part/_HLS_skip)
```
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.http.cors import CorsPolicy, check_origin
from gateway.http.request_facts import ProxyTrust, normalised_network
from gateway.sessions.entitlements import CatalogEntitlements, catalog_from_config
from gateway.tokens.acl import canonical_prefix
from gateway.tokens.grant import IPNetwork, parse_network
from gateway.tokens.keys import KeyRing, b64url_decode, parse_key_ring

if TYPE_CHECKING:
    from gateway.tokens.dialects.base import Dialect


def load_dialects(tables: Mapping[str, Any], *, base_dir: Path) -> dict[str, Dialect]:
    """Every `[dialects.<name>]` table, built once at start-up (keys from files relative to the config)."""
    from gateway.tokens.dialects import load_dialect

    return {name: load_dialect(name, table, base_dir=base_dir) for name, table in tables.items()}


DELIVERY_MODES = ("query", "cookie", "hybrid", "path")
CDN_SCOPES = ("segments", "media")
# A forwarded name must read the same raw and percent-decoded (RFC 3986 unreserved characters): the edge
# compares the names the client sent byte for byte.
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]+")
_HEADER_NAME = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Route:
    """Requests under `mount` on the gateway are served from `origin` (a base URL ending in '/')."""

    mount: str
    origin: str
    delivery: str = "query"  # query | cookie | hybrid | path (see gateway/http/delivery.py)
    cdn: str = ""  # a [dialects.<name>] table: segments are served by that CDN (see gateway/http/cdn.py)
    cdn_base_url: str = ""
    cdn_scope: str = "segments"  # segments | media (media: keys too)
    edge: str = ""  # a [dialects.<name>] table: requests carry that dialect's token, verified here
    # Query parameters the origin needs, forwarded besides the LL-HLS directives; everything else a
    # client sends stays at the gateway (and out of the manifest cache key).
    forward_query: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.forward_query:
            if not _QUERY_NAME.fullmatch(name):
                raise ConfigError(
                    f"routes.forward_query: {name!r} is not a plain query parameter name "
                    "(letters, digits, '-', '.', '_', '~')"
                )
        if self.delivery not in DELIVERY_MODES:
            raise ConfigError(f"routes.delivery must be one of {', '.join(DELIVERY_MODES)}, got {self.delivery!r}")
        try:
            canonical_prefix(self.mount)
        except ValueError as exc:
            raise ConfigError(f"routes.mount: {exc}") from exc
        if self.cdn and (not self.cdn_base_url.startswith(("http://", "https://")) or self.cdn_scope not in CDN_SCOPES):
            raise ConfigError(f"routes: a cdn route needs cdn_base_url (http/https) and cdn_scope in {CDN_SCOPES}")
        parts = urlsplit(self.origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith("/"):
            raise ConfigError(f"routes.origin must be an http(s) base URL ending in '/': {self.origin!r}")
        if parts.query or parts.fragment:
            raise ConfigError(f"routes.origin must not carry a query or fragment: {self.origin!r}")

    def origin_url(self, gateway_path_encoded: str) -> str:
        """The origin URL for a gateway path under this mount (paths are already normalised)."""
        return self.origin + gateway_path_encoded[len(self.mount) :]


@dataclass(frozen=True)
class OriginSettings:
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 10.0
    max_connections: int = 64
    vod_manifest_cache_seconds: float = 60.0
    live_manifest_cache_seconds: float = 1.0
    # HMAC secret for the authenticated origin header (gateway/origin/auth.py); empty: no header.
    auth_secret: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class SessionSettings:
    """Viewing sessions: how long each kind of token lives and what a session binds to."""

    token_ttl_seconds: int = 300  # the session token (master URL, cookie, refresh result)
    media_ttl_seconds: int = 300  # tokens written into media playlists for segments, keys, init
    max_life_seconds: int = 4 * 3600  # hard cap: playlist tokens and refreshes stop here
    ip_binding: bool = False  # bind sessions to the client's network
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    title_root_depth: int = 0  # 0: the master's directory; N: the first N path segments
    country_header: str = ""  # trusted header carrying the viewer's country (e.g. set by the CDN)
    cookie_name: str = "gw_token"
    cookie_same_site: str = "Lax"  # "None" for players on another site (then always Secure)
    cookie_partitioned: bool = False  # CHIPS `Partitioned`: a cross-site cookie where third-party ones are blocked

    def __post_init__(self) -> None:
        if min(self.media_ttl_seconds, self.token_ttl_seconds) <= 0 or self.token_ttl_seconds > self.max_life_seconds:
            raise ConfigError("sessions: TTLs must be positive and token_ttl_seconds <= max_life_seconds")
        if not (0 <= self.ipv4_prefix <= 32 and 0 <= self.ipv6_prefix <= 128):
            raise ConfigError("sessions: ipv4_prefix must be 0..32 and ipv6_prefix 0..128")
        if self.cookie_same_site not in ("Strict", "Lax", "None"):
            raise ConfigError("sessions.cookie_same_site must be Strict, Lax or None")
        if self.cookie_partitioned and self.cookie_same_site != "None":
            # A partitioned cookie only matters on cross-site requests, where Strict and Lax never send it.
            raise ConfigError('sessions.cookie_partitioned = true needs cookie_same_site = "None"')


@dataclass(frozen=True)
class Settings:
    keys: KeyRing
    routes: tuple[Route, ...]
    token_param: str = "token"
    leeway_seconds: float = 5.0
    max_manifest_bytes: int = 16 * 1024 * 1024
    # The client address (gateway/http/request_facts.py `client_address`): the TCP peer, unless the peer is in
    # `trusted_proxies`; then the right-most address in `client_ip_header` that is not a trusted proxy.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    client_ip_header: str = "x-forwarded-for"
    # LL-HLS delta updates merge segment URIs (and their media tokens) from earlier responses. "pass"
    # forwards `_HLS_skip`; "full" drops it upstream so every reload carries fresh tokens on every URI
    # (use it when the DVR window is longer than half the media-token TTL).
    delta_updates: str = "pass"
    origin: OriginSettings = field(default_factory=OriginSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    catalog: CatalogEntitlements = field(default_factory=CatalogEntitlements)  # [[users]], [[titles]]
    cdn: Mapping[str, Dialect] = field(default_factory=dict)  # [dialects.<name>] tables, by name
    redis_url: str = ""  # [revocations] redis_url / GATEWAY_REDIS_URL: share revocations across instances
    cors: CorsPolicy = field(default_factory=CorsPolicy)  # [cors] allowed_origins: players on other sites

    def __post_init__(self) -> None:
        for route in self.routes:
            for name in (route.cdn, route.edge):
                if name and name not in self.cdn:
                    raise ConfigError(f"routes: dialect {name!r} has no [dialects.{name}] table")
        if not _HEADER_NAME.fullmatch(self.client_ip_header):
            raise ConfigError(
                "gateway.client_ip_header must be a header name such as x-forwarded-for or forwarded, "
                f"got {self.client_ip_header!r}"
            )
        for route in self.routes:
            for name in route.forward_query:
                if name in self.token_params:
                    raise ConfigError(
                        f"routes.forward_query: {name!r} carries a token (of the gateway or a configured "
                        "dialect); tokens never go upstream"
                    )
                if name == "_HLS_skip" and self.delta_updates == "full":
                    raise ConfigError(
                        'routes.forward_query: _HLS_skip contradicts gateway.delta_updates = "full", '
                        "which drops it upstream"
                    )

    @cached_property
    def proxy_trust(self) -> ProxyTrust:
        """Who may tell the gateway the client's address, for `request_facts.client_address`."""
        return ProxyTrust(self.trusted_proxies, self.client_ip_header)

    @cached_property
    def token_params(self) -> frozenset[str]:
        """Every query parameter that carries a token here: ours and each configured dialect's."""
        from gateway.http.dialect_edge import token_query_params

        names = {self.token_param}
        for dialect in self.cdn.values():
            names.update(token_query_params(dialect))
        return frozenset(names)

    def route_for(self, decoded_path: str) -> Route | None:
        """The route with the longest mount covering the path (whole segments)."""
        best: Route | None = None
        for route in self.routes:
            if decoded_path.startswith(route.mount) and (best is None or len(route.mount) > len(best.mount)):
                best = route
        return best


def _number(name: str, value: object, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(str(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc
    if number < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return number


def _origin_secret(value: str) -> bytes:
    if not value:
        return b""
    try:
        secret = b64url_decode(value)
    except ValueError as exc:
        raise ConfigError("origin.auth_secret / GATEWAY_ORIGIN_SECRET must be unpadded base64url") from exc
    if len(secret) < 16:
        raise ConfigError("origin.auth_secret / GATEWAY_ORIGIN_SECRET must be at least 16 bytes")
    return secret


def _trusted_proxies(gateway: Mapping[str, Any], env: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    if env.get("GATEWAY_TRUSTED_PROXIES"):
        where, entries = "GATEWAY_TRUSTED_PROXIES", [e for e in env["GATEWAY_TRUSTED_PROXIES"].split(",") if e.strip()]
    else:
        where, entries = "gateway.trusted_proxies", gateway.get("trusted_proxies", [])
        if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
            raise ConfigError(f'{where} must be a list of addresses or CIDR networks, e.g. ["10.0.0.0/8"]')
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(normalised_network(parse_network(entry)))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return tuple(networks)


def _client_ip_header(gateway: Mapping[str, Any], trusted: tuple[IPNetwork, ...]) -> str:
    named = str(gateway.get("client_ip_header", "")).strip().lower()
    if named and not trusted:
        # Before trusted_proxies existed the header was believed from anyone; now it is read from nobody
        # unless the proxies are listed. Say so rather than silently using the proxy's address.
        raise ConfigError(
            "gateway.client_ip_header is read only from gateway.trusted_proxies (or GATEWAY_TRUSTED_PROXIES), "
            "which is empty: list the proxies in front of the gateway, or remove client_ip_header"
        )
    return named or "x-forwarded-for"


def _query_names(route: Mapping[str, Any]) -> tuple[str, ...]:
    names = route.get("forward_query", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError('routes.forward_query must be a list of query parameter names, e.g. ["v"]')
    return tuple(names)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def load_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from exc


def load_key_ring(table: Mapping[str, Any], env: Mapping[str, str]) -> KeyRing:
    keys_table = table.get("keys", {})
    spec = env.get("GATEWAY_KEYS") or keys_table.get("ring", "")
    if not spec:
        raise ConfigError("no keys: set GATEWAY_KEYS (see `python -m gateway keys new`) or [keys] ring")
    retired = frozenset(keys_table.get("retired", []))
    return parse_key_ring(spec, retired)


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    origin_override: str | None = None,
) -> Settings:
    """Build the settings; `origin_override` (the CLI's --origin) wins over GATEWAY_ORIGIN and the file."""
    env = os.environ if env is None else env
    table = load_toml(config_path)
    gateway = table.get("gateway", {})
    origin_table = table.get("origin", {})
    routes = [
        Route(
            str(r.get("mount", "/")),
            str(r["origin"]),
            str(r.get("delivery", "query")),
            str(r.get("cdn", "")),
            str(r.get("cdn_base_url", "")),
            str(r.get("cdn_scope", "segments")),
            str(r.get("edge", "")),
            _query_names(r),
        )
        for r in table.get("routes", [])
    ]
    root_origin = origin_override or env.get("GATEWAY_ORIGIN")
    if root_origin:
        base = root_origin if root_origin.endswith("/") else root_origin + "/"
        routes = [r for r in routes if r.mount != "/"] + [Route("/", base)]
    if not routes:
        raise ConfigError("no origin: pass --origin URL, set GATEWAY_ORIGIN, or add [[routes]] to the config")
    token_param = env.get("GATEWAY_TOKEN_PARAM") or str(gateway.get("token_param", "token"))
    if not token_param.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"token_param must be a plain query parameter name, got {token_param!r}")
    trusted = _trusted_proxies(gateway, env)
    origin = OriginSettings(
        **{
            name: _number(f"origin.{name}", origin_table[name], float if "seconds" in name else int)
            for name in OriginSettings.__dataclass_fields__
            if name in origin_table and name != "auth_secret"
        },
        auth_secret=_origin_secret(env.get("GATEWAY_ORIGIN_SECRET") or str(origin_table.get("auth_secret", ""))),
    )
    return Settings(
        keys=load_key_ring(table, env),
        routes=tuple(routes),
        token_param=token_param,
        leeway_seconds=_number(
            "leeway_seconds", env.get("GATEWAY_LEEWAY_SECONDS", gateway.get("leeway_seconds", 5)), float
        ),
        max_manifest_bytes=_number(
            "max_manifest_bytes",
            env.get("GATEWAY_MAX_MANIFEST_BYTES", gateway.get("max_manifest_bytes", 16 * 1024 * 1024)),
            int,
        ),
        trusted_proxies=trusted,
        client_ip_header=_client_ip_header(gateway, trusted),
        delta_updates=_choice("gateway.delta_updates", gateway.get("delta_updates", "pass"), ("pass", "full")),
        origin=origin,
        sessions=_sessions(table.get("sessions", {})),
        catalog=catalog_from_config(table),
        redis_url=env.get("GATEWAY_REDIS_URL") or str(table.get("revocations", {}).get("redis_url", "")),
        cdn=load_dialects(table.get("dialects", {}), base_dir=config_path.parent if config_path else Path()),
        cors=_cors(table.get("cors", {}), env.get("GATEWAY_CORS_ALLOWED_ORIGINS")),
    )


def _cors(table: Mapping[str, Any], env_origins: str | None) -> CorsPolicy:
    """`[cors] allowed_origins` (a list) or GATEWAY_CORS_ALLOWED_ORIGINS (comma-separated); the variable wins."""
    unknown = set(table) - {"allowed_origins"}
    if unknown:
        raise ConfigError(f"cors: unknown setting(s) {', '.join(sorted(unknown))}; the table has allowed_origins only")
    if env_origins:
        # A trailing or doubled comma is not an origin; skip it rather than fail on `''`.
        name, origins = "GATEWAY_CORS_ALLOWED_ORIGINS", [p.strip() for p in env_origins.split(",") if p.strip()]
    else:
        name, origins = "cors.allowed_origins", table.get("allowed_origins", [])
        if not isinstance(origins, list) or not all(isinstance(origin, str) for origin in origins):
            raise ConfigError('cors.allowed_origins must be a list of origins, e.g. ["https://player.example"]')
    checked: set[str] = set()
    for origin in origins:
        try:
            checked.add(check_origin(origin))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    return CorsPolicy(frozenset(checked))


def _sessions(table: Mapping[str, Any]) -> SessionSettings:
    values: dict[str, Any] = {}
    for name, spec in SessionSettings.__dataclass_fields__.items():
        if name not in table:
            continue
        value = table[name]
        if spec.type == "int":
            value = _number(f"sessions.{name}", value, int)
        elif spec.type == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"sessions.{name} must be true or false")
        else:
            value = str(value)
        values[name] = value
    return SessionSettings(**values)
