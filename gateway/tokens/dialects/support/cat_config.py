"""`[dialects.cat]` → the keyword arguments of `CatDialect`, failing fast with the field's name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config_schema import NO_ENVIRONMENT, refuse_unknown
from gateway.errors import ConfigError
from gateway.tokens.dialects.support import cat_claims, cat_cose, jwt_keys
from gateway.tokens.dialects.support.cat_policy import FINGERPRINT_TYPES, ClaimPolicy
from gateway.tokens.dialects.support.cat_renewal import HEADER_NAMES, TYPES, Renewal

WHERE = "dialects.cat"
_FLAGS = ("require_cwt_tag", "accept_untagged")
SETTINGS = frozenset(
    {"issuer", "accepted_issuers", "audience", "accepted_audiences", "scheme", "host", "methods", "renewal"}
    | {"delivery", "query_params", "cookie_names", "leeway_seconds", "max_token_chars", "country_header"}
    | {"catnip_encoding", "keys", *_FLAGS}
    | {"catu", "catif", "catdpop", "tls_fingerprint_headers"}
)
# [dialects.cat.catu]: URI components signed besides scheme/host (own settings) and path (the grant's prefix).
CATU_COMPONENTS = {"port": 2, "query": 4, "parent-path": 5, "filename": 6, "stem": 7, "extension": 8}
CATU_MATCHES = {"exact": cat_claims.EXACT, "prefix": cat_claims.PREFIX, "suffix": cat_claims.SUFFIX}
CATU_MATCHES |= {"contains": cat_claims.CONTAINS}
RENEWAL_SETTINGS = frozenset(
    {
        "type",
        "expadd_seconds",
        "deadline_seconds",
        "cookie_name",
        "header_name",
        "cookie_params",
        "header_params",
    }
    | {"code"}
)


def _text(table: Mapping[str, Any], name: str) -> str | None:
    value = table.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{WHERE}.{name}: a non-empty string")
    return value


def _texts(table: Mapping[str, Any], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = table.get(name, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{WHERE}.{name}: a list of non-empty strings")
    return tuple(value)


def _seconds(table: Mapping[str, Any], name: str, where: str, default: int | None = None) -> int | None:
    value = table.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"{where}.{name}: a whole number of seconds")
    return value


def _renewal(table: object) -> Renewal | None:
    if table is None:
        return None
    where = f"{WHERE}.renewal"
    if not isinstance(table, Mapping) or table.get("type", "automatic") not in TYPES:
        raise ConfigError(f"{where}.type: one of {', '.join(TYPES)}")
    refuse_unknown(table, RENEWAL_SETTINGS, f"[{where}]")
    expadd = _seconds(table, "expadd_seconds", where)
    if not expadd:
        raise ConfigError(f"{where}.expadd_seconds: required, the new token's lifetime in seconds")
    for name in ("cookie_name", "header_name"):
        if name in table and not isinstance(table[name], str):
            raise ConfigError(f"{where}.{name}: a string")
    params = table.get("cookie_params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ConfigError(f"{where}.cookie_params: a list of strings such as 'Secure', 'SameSite=None'")
    if table.get("header_params"):
        raise ConfigError(f"{where}.header_params: players store the header verbatim; params would corrupt it")
    try:
        return Renewal(
            type=TYPES[table.get("type", "automatic")],
            expadd_seconds=expadd,
            deadline_seconds=_seconds(table, "deadline_seconds", where),
            cookie_name=table.get("cookie_name"),
            header_name=table.get("header_name"),
            cookie_params=tuple(params),
            code=_seconds(table, "code", where),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _catu(table: object) -> tuple[tuple[int, int, str], ...]:
    """`[dialects.cat.catu]`: component = "text" (exact match) or {exact|prefix|suffix|contains = "text"}."""
    where = f"{WHERE}.catu"
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: a table ([{where}])")
    for name in ("scheme", "host", "path"):
        if name in table:
            raise ConfigError(f"{where}.{name}: set {WHERE}.scheme / host; the path is the grant's prefix")
    refuse_unknown(table, CATU_COMPONENTS, f"[{where}]")
    entries = []
    for name, value in table.items():
        match = {"exact": value} if isinstance(value, str) else value
        if not isinstance(match, Mapping) or len(match) != 1:
            raise ConfigError(f"{where}.{name}: a string (exact match) or one of {{{', '.join(CATU_MATCHES)} = ...}}")
        ((kind, text),) = match.items()
        if kind not in CATU_MATCHES or not isinstance(text, str):
            raise ConfigError(f"{where}.{name}: a string (exact match) or one of {{{', '.join(CATU_MATCHES)} = ...}}")
        if name == "port" and not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
            raise ConfigError(f'{where}.port: a port number as a string, e.g. "8443"')
        entries.append((CATU_COMPONENTS[name], CATU_MATCHES[kind], text))
    return tuple(sorted(entries))


def _policy(table: Mapping[str, Any]) -> ClaimPolicy:
    catif, catdpop = table.get("catif", "ignore"), table.get("catdpop", "refuse")
    if catif not in ("ignore", "refuse"):
        raise ConfigError(f"{WHERE}.catif: 'ignore' (judge the request as without it) or 'refuse'")
    if catdpop not in ("refuse", "ignore"):
        raise ConfigError(f"{WHERE}.catdpop: 'refuse' (DPoP proofs are not verified here) or 'ignore'")
    headers = table.get("tls_fingerprint_headers", {})
    if not isinstance(headers, Mapping):
        raise ConfigError(f'{WHERE}.tls_fingerprint_headers: a table such as {{ja4 = "X-JA4"}}')
    refuse_unknown(headers, FINGERPRINT_TYPES, f"{WHERE}.tls_fingerprint_headers")
    for kind, header in headers.items():
        if not isinstance(header, str) or not header:
            raise ConfigError(f"{WHERE}.tls_fingerprint_headers.{kind}: the request header's name")
    return ClaimPolicy(catif, catdpop, tuple(sorted(headers.items())))


def dialect_options(
    table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> dict[str, Any]:
    refuse_unknown(table, SETTINGS, f"[{WHERE}]")
    issuer = _text(table, "issuer")
    delivery = table.get("delivery", "query")
    if delivery not in ("query", "header", "cookie"):
        raise ConfigError(f"{WHERE}.delivery: 'query', 'header' or 'cookie'")
    catnip_encoding = table.get("catnip_encoding", "full")
    if catnip_encoding not in ("full", "rfc9164"):
        raise ConfigError(f"{WHERE}.catnip_encoding: 'full' (all address bytes) or 'rfc9164' (trailing zeros dropped)")
    for flag in _FLAGS:
        if not isinstance(table.get(flag, False), bool):
            raise ConfigError(f"{WHERE}.{flag}: true or false")
    max_chars = _seconds(table, "max_token_chars", WHERE, 4096)
    if not max_chars or max_chars > 65536:
        raise ConfigError(f"{WHERE}.max_token_chars: 1..65536")
    keys = cat_cose.load_keys(table.get("keys"), where=f"{WHERE}.keys", base_dir=base_dir, environ=environ)
    if not any(key.can_sign for key in keys):
        raise ConfigError(f"{WHERE}.keys: no key can sign (an HMAC secret or an EC private key is needed)")
    query_params = _texts(table, "query_params", ("cat", "CAT"))
    cookie_names = _texts(table, "cookie_names", HEADER_NAMES)
    if not query_params or not cookie_names:
        raise ConfigError(f"{WHERE}: query_params and cookie_names need at least one name each")
    scheme = _text(table, "scheme")
    return {
        "keys": keys,
        "issuer": issuer,
        "accepted_issuers": _texts(table, "accepted_issuers", (issuer,) if issuer else ()),
        "audience": _texts(table, "audience"),
        "accepted_audiences": _texts(table, "accepted_audiences"),
        "scheme": scheme.lower() if scheme else None,
        "host": (_text(table, "host") or "").lower() or None,
        "methods": _texts(table, "methods", ("GET", "HEAD")),
        "renewal": _renewal(table.get("renewal")),
        "delivery": delivery,
        "query_params": query_params,
        "cookie_names": cookie_names,
        "leeway_seconds": jwt_keys.leeway_from(table, "cat"),
        "max_token_chars": max_chars,
        "require_cwt_tag": table.get("require_cwt_tag", False),
        "accept_untagged": table.get("accept_untagged", False),
        "catnip_full_bytes": catnip_encoding == "full",
        "country_header": _text(table, "country_header"),
        "catu_matches": _catu(table.get("catu")),
        "policy": _policy(table),
    }
