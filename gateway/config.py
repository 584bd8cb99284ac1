"""Settings: one frozen object, read once from a TOML file and `GATEWAY_*` variables, failing fast.

Precedence: environment variables over the config file over defaults. Every error names the setting.
`load_settings(path, environ)` is the one reader of the environment: it is given a mapping (the CLI passes
the process environment, tests a dict) and hands each part what it needs, including the variables a
dialect table's `<field>_env` keys name. Nothing below it reads `os.environ`.

Strict: every table refuses keys it does not know (`unknown key 'media_tll_seconds' in [sessions]; known:
...`), and so does the top level; modes are enums (`gateway/config_schema.py`) checked at load, with
an error naming the setting and the allowed values.

```toml
[gateway]
token_param = "token"          # GATEWAY_TOKEN_PARAM
leeway_seconds = 5             # GATEWAY_LEEWAY_SECONDS
max_manifest_bytes = 16777216  # GATEWAY_MAX_MANIFEST_BYTES
trusted_proxies = ["10.0.0.0/8"]  # default []; GATEWAY_TRUSTED_PROXIES (comma-separated): proxies in front
client_ip_header = "x-forwarded-for"  # read only from those proxies; "forwarded" reads RFC 7239
delta_updates = "pass"         # pass | full ("full": drop `_HLS_skip` upstream, every reload carries fresh tokens)

[keys]
ring = "k2:…,k1:…"             # GATEWAY_KEYS (newest first)
retired = ["k0"]

[origin]
auth_secret = ""               # GATEWAY_ORIGIN_SECRET
connect_timeout_seconds = 3
read_timeout_seconds = 10
manifest_connections = 32        # two origin pools: playlists never wait behind segment downloads
segment_connections = 256
pool_wait_seconds = 2          # then 503 origin_busy (Retry-After: 1)
max_streams_per_client = 16    # concurrent segment downloads per session (else address); 0: no limit
vod_manifest_cache_seconds = 60
live_manifest_cache_seconds = 1

[sessions]
cookie_same_site = "Lax"       # Lax | Strict | None ("None" for players on another site, implies Secure)
cookie_partitioned = false     # true: CHIPS `Partitioned` (needs cookie_same_site = "None")
max_streams = 0                # concurrent streams per user (0: no limit); see gateway/sessions/streams.py
on_limit = "block_new"         # block_new | evict_oldest
stream_idle_seconds = 300      # a stream not seen (playlist, segment, refresh) for this long frees its slot

[sharing]
max_networks = 0               # a session seen from more client networks than this within the window: detected
window_seconds = 600
ipv4_prefix = 24               # what counts as one client network
ipv6_prefix = 48
revoke = false                 # true: also revoke the session (through the revocation store)

[cors]                         # GATEWAY_CORS_ALLOWED_ORIGINS (comma-separated)
allowed_origins = []           # e.g. ["https://player.example"]: echoed with credentials; others get `*`

[revocations]
redis_url = ""                 # GATEWAY_REDIS_URL

[entitlements]                 # ask the application's backend (gateway/sessions/webhook.py)
webhook_url = ""               # empty: the [[users]] / [[titles]] catalog decides
secret = ""                    # GATEWAY_ENTITLEMENTS_SECRET (base64url, >= 16 bytes): signs every call
timeout_seconds = 2
on_error = "deny"              # deny | allow
cache_entries = 10000
max_cache_seconds = 300

[metrics]
enabled = true                 # false: no /metrics at all
port = 0                       # 0: /metrics on the main port; N: only on its own listener host:N
host = "127.0.0.1"             # that listener's address (port != 0)

[logging]
format = "text"                # text | json (one JSON object a line); GATEWAY_LOG_FORMAT

[[routes]]                     # GATEWAY_ORIGIN adds/overrides the route mounted at "/"
mount = "/"
origin = "http://127.0.0.1:8080/"
delivery = "query"             # query | cookie | hybrid | path | queryparam
request_param = false          # queryparam: DASH MPDs also get the 6th edition's RequestParam (shaka)
forward_query = []             # query parameters the origin needs (besides _HLS_msn/_HLS_part/_HLS_skip)
cdn_scope = "segments"         # segments | media (routes with cdn = "<dialect>")
```
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.config_schema import (
    NO_ENVIRONMENT,
    CdnScope,
    Delivery,
    DeltaUpdates,
    LogFormat,
    OnError,
    OnLimit,
    SameSite,
    array_of_tables,
    choice,
    refuse_unknown,
)
from gateway.errors import ConfigError
from gateway.http.cors import CorsPolicy, check_origin
from gateway.http.request_facts import ProxyTrust, normalised_network
from gateway.manifests.query_param import is_variable_name
from gateway.sessions.entitlements import CatalogEntitlements, catalog_from_config
from gateway.sessions.sharing import SharingPolicy
from gateway.tokens.acl import canonical_prefix
from gateway.tokens.grant import IPNetwork, parse_network
from gateway.tokens.keys import KeyRing, b64url_decode, parse_key_ring

if TYPE_CHECKING:
    from gateway.tokens.dialects.base import Dialect


def load_dialects(tables: object, *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> dict[str, Dialect]:
    """Every `[dialects.<name>]` table, built once at start-up (key files relative to the config, `*_env`
    references from `environ`)."""
    from gateway.tokens.dialects import load_dialect

    if not isinstance(tables, Mapping):
        raise ConfigError("dialects must be a table of [dialects.<name>] tables")
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"dialects.{name} must be a table ([dialects.{name}])")
    return {name: load_dialect(name, table, base_dir=base_dir, environ=environ) for name, table in tables.items()}


# A forwarded name must read the same raw and percent-decoded (RFC 3986 unreserved characters): the edge
# compares the names the client sent byte for byte.
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]+")
_HEADER_NAME = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Requests under `mount` on the gateway are served from `origin` (a base URL ending in '/').

    Built by keyword only (`Route(mount="/vod/", origin=..., delivery=Delivery.COOKIE)`): with eight
    fields, a positional call would silently put a value in the wrong one.
    """

    mount: str
    origin: str
    delivery: Delivery = Delivery.QUERY  # see gateway/http/delivery.py
    cdn: str = ""  # a [dialects.<name>] table: segments are served by that CDN (see gateway/http/cdn.py)
    cdn_base_url: str = ""
    cdn_scope: CdnScope = CdnScope.SEGMENTS  # media: keys too
    edge: str = ""  # a [dialects.<name>] table: requests carry that dialect's token, verified here
    # Query parameters the origin needs, forwarded besides the LL-HLS directives; everything else a
    # client sends stays at the gateway (and out of the manifest cache key).
    forward_query: tuple[str, ...] = ()
    # queryparam delivery: DASH MPDs also carry the 6th edition's `RequestParam` (gateway/manifests/query_param.py).
    request_param: bool = False

    def __post_init__(self) -> None:
        # Strings are accepted and checked here, so every way of building a route gets members.
        object.__setattr__(self, "delivery", choice("routes.delivery", self.delivery, Delivery))
        if self.delivery is Delivery.QUERYPARAM and (self.cdn or self.edge):
            # One manifest for every viewer cannot carry per-viewer CDN credentials or a dialect's own.
            raise ConfigError(f'routes: {self.mount} has delivery = "queryparam", which takes no cdn or edge')
        if not isinstance(self.request_param, bool):
            raise ConfigError(f"routes.request_param must be true or false, got {self.request_param!r}")
        if self.request_param and self.delivery is not Delivery.QUERYPARAM:
            raise ConfigError(f'routes: {self.mount} sets request_param, which only delivery = "queryparam" uses')
        object.__setattr__(self, "cdn_scope", choice("routes.cdn_scope", self.cdn_scope, CdnScope))
        for name in self.forward_query:
            if not _QUERY_NAME.fullmatch(name):
                raise ConfigError(
                    f"routes.forward_query: {name!r} is not a plain query parameter name "
                    "(letters, digits, '-', '.', '_', '~')"
                )
        try:
            canonical_prefix(self.mount)
        except ValueError as exc:
            raise ConfigError(f"routes.mount: {exc}") from exc
        if self.cdn and not self.cdn_base_url.startswith(("http://", "https://")):
            raise ConfigError(f"routes: cdn route {self.mount} needs cdn_base_url (http/https)")
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
    # Two pools, so segment downloads (long, paced by the viewer) can never starve playlist fetches.
    manifest_connections: int = 32
    segment_connections: int = 256
    pool_wait_seconds: float = 2.0  # then `503 origin_busy` (Retry-After: 1) instead of a queue nobody bounds
    max_streams_per_client: int = 16  # concurrent segment streams per session (else client address); 0: no limit
    vod_manifest_cache_seconds: float = 60.0
    live_manifest_cache_seconds: float = 1.0
    # HMAC secret for the authenticated origin header (gateway/origin/auth.py); empty: no header.
    auth_secret: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if min(self.manifest_connections, self.segment_connections) < 1 or self.max_streams_per_client < 0:
            raise ConfigError(
                "origin: manifest_connections and segment_connections must be >= 1, "
                "max_streams_per_client >= 0 (0: no limit)"
            )
        if min(self.connect_timeout_seconds, self.read_timeout_seconds, self.pool_wait_seconds) <= 0:
            raise ConfigError("origin: timeouts and pool_wait_seconds must be positive")


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
    cookie_same_site: SameSite = SameSite.LAX  # NONE for players on another site (then always Secure)
    cookie_partitioned: bool = False  # CHIPS `Partitioned`: a cross-site cookie where third-party ones are blocked
    # Concurrent streams per user (gateway/sessions/streams.py); 0: no limit. A stream is a session seen
    # (created, refreshed, a playlist or a segment fetched through the gateway) within stream_idle_seconds.
    max_streams: int = 0
    on_limit: OnLimit = OnLimit.BLOCK_NEW
    stream_idle_seconds: int = 300  # above the demo page's refresh interval (75% of token_ttl_seconds): VOD

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "cookie_same_site", choice("sessions.cookie_same_site", self.cookie_same_site, SameSite)
        )
        if min(self.media_ttl_seconds, self.token_ttl_seconds) <= 0 or self.token_ttl_seconds > self.max_life_seconds:
            raise ConfigError("sessions: TTLs must be positive and token_ttl_seconds <= max_life_seconds")
        if not (0 <= self.ipv4_prefix <= 32 and 0 <= self.ipv6_prefix <= 128):
            raise ConfigError("sessions: ipv4_prefix must be 0..32 and ipv6_prefix 0..128")
        object.__setattr__(self, "on_limit", choice("sessions.on_limit", self.on_limit, OnLimit))
        if self.max_streams < 0 or self.stream_idle_seconds <= 0:
            raise ConfigError("sessions: max_streams must be >= 0 (0: no limit) and stream_idle_seconds positive")
        if self.cookie_partitioned and self.cookie_same_site is not SameSite.NONE:
            # A partitioned cookie only matters on cross-site requests, where Strict and Lax never send it.
            raise ConfigError('sessions.cookie_partitioned = true needs cookie_same_site = "None"')


@dataclass(frozen=True)
class EntitlementSettings:
    """`[entitlements]`: the application's backend decides who may watch (gateway/sessions/webhook.py)."""

    webhook_url: str = ""  # empty: the [[users]] / [[titles]] catalog decides
    secret: bytes = field(default=b"", repr=False)  # HMAC key of the signature header on every call
    timeout_seconds: float = 2.0  # the whole exchange: connect, send, answer
    on_error: OnError = OnError.DENY  # a slow, down or nonsensical backend
    cache_entries: int = 10_000  # verdicts kept (least recently used dropped first); 0: no cache
    max_cache_seconds: int = 300  # a verdict's ttl_seconds is capped at this

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_error", choice("entitlements.on_error", self.on_error, OnError))
        if self.timeout_seconds <= 0 or self.cache_entries < 0 or self.max_cache_seconds < 0:
            raise ConfigError("entitlements: timeout_seconds must be positive, cache settings not negative")
        if not self.webhook_url:
            return
        parts = urlsplit(self.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"entitlements.webhook_url must be an http(s) URL, got {self.webhook_url!r}")
        if not self.secret:
            # An unsigned call cannot be told from a forged one: the backend would have to trust anyone.
            raise ConfigError(
                "entitlements.webhook_url needs a secret: set GATEWAY_ENTITLEMENTS_SECRET or [entitlements] secret "
                "(`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one)"
            )


@dataclass(frozen=True)
class MetricsSettings:
    """`[metrics]`: where Prometheus scrapes `/metrics` (gateway/telemetry/metrics.py)."""

    enabled: bool = True
    port: int = 0  # 0: on the main port, beside the gateway's routes; else only on a listener of its own
    host: str = "127.0.0.1"  # that listener's address: keep it off the public interface

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError("metrics.enabled must be true or false")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"metrics.port must be 0 (the main port) or a TCP port 1..65535, got {self.port}")
        if self.port and not self.enabled:
            raise ConfigError("metrics.port is set but metrics.enabled = false: remove one of them")

    @property
    def on_main_port(self) -> bool:
        return self.enabled and self.port == 0


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
    # LL-HLS delta updates merge segment URIs (and their media tokens) from earlier responses. PASS
    # forwards `_HLS_skip`; FULL drops it upstream so every reload carries fresh tokens on every URI
    # (use it when the DVR window is longer than half the media-token TTL).
    delta_updates: DeltaUpdates = DeltaUpdates.PASS
    origin: OriginSettings = field(default_factory=OriginSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    catalog: CatalogEntitlements = field(default_factory=CatalogEntitlements)  # [[users]], [[titles]]
    entitlements: EntitlementSettings = field(default_factory=EntitlementSettings)  # the webhook, if any
    # Every [dialects.<name>] table, by name: what CDN routes (`cdn`) and edge routes (`edge`) refer to.
    dialects: Mapping[str, Dialect] = field(default_factory=dict)
    redis_url: str = ""  # [revocations] redis_url / GATEWAY_REDIS_URL: share revocations across instances
    cors: CorsPolicy = field(default_factory=CorsPolicy)  # [cors] allowed_origins: players on other sites
    # [sharing]: a session seen from too many client networks (gateway/sessions/sharing.py); off by default.
    sharing: SharingPolicy = field(default_factory=lambda: SharingPolicy(max_networks=0, window_seconds=600))
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log_format: LogFormat = LogFormat.TEXT  # [logging] format / GATEWAY_LOG_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta_updates", choice("gateway.delta_updates", self.delta_updates, DeltaUpdates))
        object.__setattr__(self, "log_format", choice("logging.format", self.log_format, LogFormat))
        for route in self.routes:
            for name in (route.cdn, route.edge):
                if name and name not in self.dialects:
                    raise ConfigError(f"routes: dialect {name!r} has no [dialects.{name}] table")
        if not _HEADER_NAME.fullmatch(self.client_ip_header):
            raise ConfigError(
                "gateway.client_ip_header must be a header name such as x-forwarded-for or forwarded, "
                f"got {self.client_ip_header!r}"
            )
        for route in self.routes:
            if route.delivery is Delivery.QUERYPARAM and not is_variable_name(self.token_param):
                raise ConfigError(
                    f"gateway.token_param {self.token_param!r} cannot name an HLS variable ([A-Za-z0-9_-]+), "
                    f'which delivery = "queryparam" ({route.mount}) needs'
                )
            for name in route.forward_query:
                if name in self.token_params:
                    raise ConfigError(
                        f"routes.forward_query: {name!r} carries a token (of the gateway or a configured "
                        "dialect); tokens never go upstream"
                    )
                if name == "_HLS_skip" and self.delta_updates is DeltaUpdates.FULL:
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
        for dialect in self.dialects.values():
            names.update(token_query_params(dialect))
        return frozenset(names)

    def route_for(self, decoded_path: str) -> Route | None:
        """The route with the longest mount covering the path (whole segments)."""
        best: Route | None = None
        for route in self.routes:
            if decoded_path.startswith(route.mount) and (best is None or len(route.mount) > len(best.mount)):
                best = route
        return best


# --- reading the file: every table strict ------------------------------------------------------------

# The keys each table knows; the dataclasses' fields where a table maps onto one.
TOP_LEVEL_TABLES = frozenset(
    {
        "gateway",
        "keys",
        "origin",
        "sessions",
        "sharing",
        "cors",
        "revocations",
        "entitlements",
        "routes",
        "users",
        "titles",
        "dialects",
        "metrics",
        "logging",
    }
)
GATEWAY_TABLE_KEYS = frozenset(
    {"token_param", "leeway_seconds", "max_manifest_bytes", "trusted_proxies", "client_ip_header", "delta_updates"}
)
KEYS_TABLE_KEYS = frozenset({"ring", "retired"})
ORIGIN_TABLE_KEYS = frozenset(OriginSettings.__dataclass_fields__)
SESSIONS_TABLE_KEYS = frozenset(SessionSettings.__dataclass_fields__)
CORS_TABLE_KEYS = frozenset({"allowed_origins"})
REVOCATIONS_TABLE_KEYS = frozenset({"redis_url"})
SHARING_TABLE_KEYS = frozenset(SharingPolicy.__dataclass_fields__)
ENTITLEMENTS_TABLE_KEYS = frozenset(EntitlementSettings.__dataclass_fields__)
METRICS_TABLE_KEYS = frozenset(MetricsSettings.__dataclass_fields__)
LOGGING_TABLE_KEYS = frozenset({"format"})
ROUTE_TABLE_KEYS = frozenset(Route.__dataclass_fields__)


def _table(config: Mapping[str, Any], name: str, known: frozenset[str]) -> Mapping[str, Any]:
    """`[name]` of the file (empty if absent), refusing keys it does not know."""
    table = config.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{name} must be a table ([{name}]), got {type(table).__name__}")
    refuse_unknown(table, known, f"[{name}]")
    return table


def _number(name: str, value: object, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(str(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc
    if number < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _secret(value: str, name: str) -> bytes:
    """A shared HMAC secret (`name` says where it is set): canonical unpadded base64url, at least 16 bytes."""
    if not value:
        return b""
    try:
        secret = b64url_decode(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be canonical unpadded base64url ({exc})") from exc
    if len(secret) < 16:
        raise ConfigError(f"{name} must be at least 16 bytes")
    return secret


def _trusted_proxies(gateway: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    if environ.get("GATEWAY_TRUSTED_PROXIES"):
        variable = environ["GATEWAY_TRUSTED_PROXIES"]
        where, entries = "GATEWAY_TRUSTED_PROXIES", [e for e in variable.split(",") if e.strip()]
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


def _route(table: Mapping[str, Any], number: int) -> Route:
    """One `[[routes]]` table (keys already checked), built by keyword; strings become enums in `Route`."""
    if "origin" not in table:
        raise ConfigError(f"[[routes]] #{number} needs origin (a base URL ending in '/')")
    values: dict[str, Any] = {"mount": "/"}
    for name, value in table.items():
        if name == "forward_query":
            values[name] = _query_names(table)
        elif name in ("delivery", "cdn_scope", "request_param"):
            values[name] = value  # checked by Route (an enum's allowed values, a bool)
        else:
            values[name] = _text(f"routes.{name}", value)
    return Route(**values)


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


def load_key_ring(config: Mapping[str, Any], environ: Mapping[str, str]) -> KeyRing:
    """The key ring: GATEWAY_KEYS from `environ`, else `[keys] ring`; `[keys] retired` either way."""
    keys_table = _table(config, "keys", KEYS_TABLE_KEYS)
    spec = environ.get("GATEWAY_KEYS") or _text("keys.ring", keys_table.get("ring", ""))
    if not spec:
        raise ConfigError("no keys: set GATEWAY_KEYS (see `python -m gateway keys new`) or [keys] ring")
    retired = keys_table.get("retired", [])
    if not isinstance(retired, list) or not all(isinstance(key_id, str) for key_id in retired):
        raise ConfigError('keys.retired must be a list of key ids, e.g. ["k0"]')
    return parse_key_ring(spec, frozenset(retired))


def load_settings(
    config_path: Path | None,
    environ: Mapping[str, str],
    *,
    origin_override: str | None = None,
) -> Settings:
    """Build the settings from the file and `environ`, the one environment anything here reads.

    `environ` supplies the `GATEWAY_*` variables (README "Configuration") and the variables that dialect
    tables name in `<field>_env` keys; the CLI passes `os.environ`, tests a dict. `origin_override` (the
    CLI's --origin) wins over GATEWAY_ORIGIN and the file.
    """
    config = load_toml(config_path)
    refuse_unknown(config, TOP_LEVEL_TABLES, "the top level of the config")
    gateway = _table(config, "gateway", GATEWAY_TABLE_KEYS)
    origin_table = _table(config, "origin", ORIGIN_TABLE_KEYS)
    routes = [
        _route(table, index + 1) for index, table in enumerate(array_of_tables(config, "routes", ROUTE_TABLE_KEYS))
    ]
    root_origin = origin_override or environ.get("GATEWAY_ORIGIN")
    if root_origin:
        base = root_origin if root_origin.endswith("/") else root_origin + "/"
        routes = [r for r in routes if r.mount != "/"] + [Route(mount="/", origin=base)]
    if not routes:
        raise ConfigError("no origin: pass --origin URL, set GATEWAY_ORIGIN, or add [[routes]] to the config")
    token_param = environ.get("GATEWAY_TOKEN_PARAM") or _text(
        "gateway.token_param", gateway.get("token_param", "token")
    )
    if not token_param.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"token_param must be a plain query parameter name, got {token_param!r}")
    trusted = _trusted_proxies(gateway, environ)
    origin = OriginSettings(
        **{
            name: _number(f"origin.{name}", origin_table[name], float if "seconds" in name else int)
            for name in ORIGIN_TABLE_KEYS
            if name in origin_table and name != "auth_secret"
        },
        auth_secret=_secret(
            environ.get("GATEWAY_ORIGIN_SECRET") or _text("origin.auth_secret", origin_table.get("auth_secret", "")),
            "origin.auth_secret / GATEWAY_ORIGIN_SECRET",
        ),
    )
    revocations = _table(config, "revocations", REVOCATIONS_TABLE_KEYS)
    return Settings(
        keys=load_key_ring(config, environ),
        routes=tuple(routes),
        token_param=token_param,
        leeway_seconds=_number(
            "leeway_seconds", environ.get("GATEWAY_LEEWAY_SECONDS", gateway.get("leeway_seconds", 5)), float
        ),
        max_manifest_bytes=_number(
            "max_manifest_bytes",
            environ.get("GATEWAY_MAX_MANIFEST_BYTES", gateway.get("max_manifest_bytes", 16 * 1024 * 1024)),
            int,
        ),
        trusted_proxies=trusted,
        client_ip_header=_client_ip_header(gateway, trusted),
        delta_updates=choice("gateway.delta_updates", gateway.get("delta_updates", "pass"), DeltaUpdates),
        origin=origin,
        sessions=_sessions(_table(config, "sessions", SESSIONS_TABLE_KEYS)),
        catalog=catalog_from_config(config),
        entitlements=_entitlements(_table(config, "entitlements", ENTITLEMENTS_TABLE_KEYS), environ),
        redis_url=environ.get("GATEWAY_REDIS_URL") or _text("revocations.redis_url", revocations.get("redis_url", "")),
        dialects=load_dialects(
            config.get("dialects", {}), base_dir=config_path.parent if config_path else Path(), environ=environ
        ),
        cors=_cors(_table(config, "cors", CORS_TABLE_KEYS), environ.get("GATEWAY_CORS_ALLOWED_ORIGINS")),
        sharing=_sharing(_table(config, "sharing", SHARING_TABLE_KEYS)),
        metrics=_metrics(_table(config, "metrics", METRICS_TABLE_KEYS)),
        log_format=_log_format(_table(config, "logging", LOGGING_TABLE_KEYS), environ.get("GATEWAY_LOG_FORMAT")),
    )


def _log_format(table: Mapping[str, Any], variable: str | None) -> LogFormat:
    """GATEWAY_LOG_FORMAT, else `[logging] format`, else text."""
    if variable:
        return choice("GATEWAY_LOG_FORMAT", variable, LogFormat)
    return choice("logging.format", table.get("format", "text"), LogFormat)


def _metrics(table: Mapping[str, Any]) -> MetricsSettings:
    """`[metrics]` (keys already checked): a boolean, a port number, an address."""
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("metrics.enabled must be true or false")
    port = table.get("port", 0)
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigError(f"metrics.port must be a port number, got {port!r}")
    return MetricsSettings(enabled=enabled, port=port, host=_text("metrics.host", table.get("host", "127.0.0.1")))


def _cors(table: Mapping[str, Any], env_origins: str | None) -> CorsPolicy:
    """`[cors] allowed_origins` (a list) or GATEWAY_CORS_ALLOWED_ORIGINS (comma-separated); the variable wins."""
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


def _entitlements(table: Mapping[str, Any], environ: Mapping[str, str]) -> EntitlementSettings:
    """`[entitlements]` (keys already checked); the secret may come from the environment."""
    numbers = {
        name: _number(f"entitlements.{name}", table[name], float if name == "timeout_seconds" else int)
        for name in ("timeout_seconds", "cache_entries", "max_cache_seconds")
        if name in table
    }
    secret = environ.get("GATEWAY_ENTITLEMENTS_SECRET") or table.get("secret", "")
    return EntitlementSettings(
        webhook_url=_text("entitlements.webhook_url", table.get("webhook_url", "")),
        secret=_secret(_text("entitlements.secret", secret), "entitlements.secret / GATEWAY_ENTITLEMENTS_SECRET"),
        on_error=choice("entitlements.on_error", table.get("on_error", "deny"), OnError),
        **numbers,
    )


def _sessions(table: Mapping[str, Any]) -> SessionSettings:
    """`[sessions]` (keys already checked): numbers, booleans, strings, and the SameSite enum."""
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
        elif spec.type == "SameSite":
            value = choice(f"sessions.{name}", value, SameSite)
        elif spec.type == "OnLimit":
            value = choice(f"sessions.{name}", value, OnLimit)
        else:
            value = _text(f"sessions.{name}", value)
        values[name] = value
    return SessionSettings(**values)


def _sharing(table: Mapping[str, Any]) -> SharingPolicy:
    """`[sharing]` (keys already checked): `revoke` a boolean, the rest numbers."""
    values: dict[str, Any] = {}
    for name in SHARING_TABLE_KEYS & table.keys():
        value = table[name]
        if name == "revoke":
            if not isinstance(value, bool):
                raise ConfigError("sharing.revoke must be true or false")
        else:
            value = _number(f"sharing.{name}", value, float if name == "window_seconds" else int)
        values[name] = value
    try:
        return SharingPolicy(**{"max_networks": 0, "window_seconds": 600, **values})
    except ValueError as exc:
        raise ConfigError(f"[sharing]: {exc}") from exc
