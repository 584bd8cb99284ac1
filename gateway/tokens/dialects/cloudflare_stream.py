"""Cloudflare Stream signed URL tokens: an RS256 JWT that takes the place of the video UID in the path.

Signed bytes: `b64url(header) "." b64url(payload)` with RSASSA-PKCS1-v1_5-SHA256 (see `jwt_common`), where

    header  = {"alg":"RS256","kid":"<key id>","typ":"JWT"}
    payload = {"sub":"<video UID>","kid":"<key id>","exp":…[,"nbf":…][,"downloadable":…][,"accessRules":[…]]}

The token goes in the path instead of the UID, so relative playlist and segment URIs inherit it:
`https://customer-<CODE>.cloudflarestream.com/<TOKEN>/manifest/video.m3u8`. A grant's prefix names the
video through `prefix_template` (e.g. `/vod/{uid}/`); its client network becomes an `ip.src` allow rule
followed by `any` block. Cloudflare enforces its own rules; `verify` evaluates them the same way (first
matching rule wins, none matching allows) for when the gateway stands in for the edge.

Spec: https://developers.cloudflare.com/stream/viewing-videos/securing-your-stream/ (Worker "Option 2"),
API schema `stream_signed_token_request`; see also docs/dialects/cloudflare_stream.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config_schema import NO_ENVIRONMENT, refuse_unknown
from gateway.errors import ConfigError, Denial, TokenDenied, UnsupportedGrant
from gateway.tokens.acl import normalise_path
from gateway.tokens.dialects.base import NO_OPTIONS, Credentials, DialectDefaults, EdgePath, EdgeRequest, SigningOptions
from gateway.tokens.dialects.support import jwt_common, jwt_keys
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant, IPAddress, IPNetwork

NAME = "cloudflare_stream"
HOST_TEMPLATE = "customer-{code}.cloudflarestream.com"
MAX_ACCESS_RULES = 5
SETTINGS = frozenset(
    {"customer_code", "prefix_template", "default_path", "downloadable", "access_rules", "country_header"}
    | {"leeway_seconds", "keys"}
)
RULE_TYPES = ("ip.src", "ip.geoip.country", "any")
_RULE_FIELDS = {"ip.src": ("ip",), "ip.geoip.country": ("country",)}  # besides type and action
_UID = r"[A-Za-z0-9_-]{1,64}"
DEFAULT_PREFIX_TEMPLATE = jwt_common.PrefixTemplate("/vod/{uid}/", "uid", _UID)
_CODE = re.compile(r"[a-z0-9]{1,64}")

Rule = dict[str, Any]


def _check_rule(rule: object, where: str) -> Rule:
    if not isinstance(rule, Mapping) or rule.get("type") not in RULE_TYPES:
        raise ConfigError(f"{where}: a rule is a table with type one of {', '.join(RULE_TYPES)}")
    refuse_unknown(rule, {"type", "action", *_RULE_FIELDS.get(rule["type"], ())}, f"[{where}]")
    if rule.get("action") not in ("allow", "block"):
        raise ConfigError(f"{where}.action: 'allow' or 'block'")
    checked: Rule = {"type": rule["type"], "action": rule["action"]}
    if rule["type"] == "ip.src":
        nets = rule.get("ip")
        if not isinstance(nets, list) or not nets:
            raise ConfigError(f"{where}.ip: a list of addresses or CIDR networks")
        try:
            checked["ip"] = [str(ipaddress.ip_network(net, strict=True)) for net in nets]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.ip: {exc}") from exc
    elif rule["type"] == "ip.geoip.country":
        countries = rule.get("country")
        if not isinstance(countries, list) or not all(isinstance(c, str) and len(c) == 2 for c in countries):
            raise ConfigError(f"{where}.country: a list of ISO 3166-1 alpha-2 codes")
        checked["country"] = [country.upper() for country in countries]
    return checked


def _network_rules(network: IPNetwork) -> list[Rule]:
    return [{"type": "ip.src", "action": "allow", "ip": [str(network)]}, {"type": "any", "action": "block"}]


@dataclass(frozen=True)
class CloudflareStreamDialect(DialectDefaults):
    """Cloudflare Stream bound to a customer code, a prefix template and RS256 keys (newest first)."""

    customer_code: str
    keys: tuple[jwt_common.RsaJwtKey, ...]
    prefix_template: jwt_common.PrefixTemplate = DEFAULT_PREFIX_TEMPLATE
    default_path: str = "manifest/video.m3u8"
    downloadable: bool | None = None
    access_rules: tuple[Rule, ...] = ()
    country_header: str | None = None
    leeway_seconds: float = 0.0
    name: str = field(default=NAME, init=False)
    prefix_signing: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not _CODE.fullmatch(self.customer_code):
            raise ConfigError(f"dialects.{NAME}.customer_code: lowercase letters and digits")

    @property
    def host(self) -> str:
        return HOST_TEMPLATE.format(code=self.customer_code)

    def claims(self, grant: Grant, kid: str) -> dict[str, Any]:
        """The JWT payload for `grant`, keys in the order Cloudflare documents them."""
        if len(grant.path_prefixes) != 1:
            count = len(grant.path_prefixes)
            raise UnsupportedGrant(f"{NAME}: a token names one video; the grant has {count} prefixes")
        uid = self.prefix_template.id_of(grant.path_prefixes[0])
        payload: dict[str, Any] = {"sub": uid, "kid": kid, "exp": grant.expires_at}
        if grant.not_before is not None:
            payload["nbf"] = grant.not_before
        if self.downloadable is not None:
            payload["downloadable"] = self.downloadable
        rules = [dict(rule) for rule in self.access_rules]
        if grant.client_network is not None:
            if any(rule["action"] == "allow" for rule in rules):
                raise UnsupportedGrant(f"{NAME}: configured allow rules cannot be combined with a grant's network")
            rules += _network_rules(grant.client_network)
        if len(rules) > MAX_ACCESS_RULES:
            raise UnsupportedGrant(f"{NAME}: {len(rules)} access rules, Cloudflare accepts at most {MAX_ACCESS_RULES}")
        if rules:
            payload["accessRules"] = rules
        return payload

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        options.refuse_unsupported(NAME)
        key = jwt_common.signing_key(self.keys, NAME)
        payload = self.claims(grant, key.kid)
        token = jwt_common.encode_rs256(payload, key)
        return Credentials(path_token=token, url=self._signed_url(payload["sub"], grant, token, url), token=token)

    def _signed_url(self, uid: str, grant: Grant, token: str, url: str | None) -> str:
        if url is None:
            return f"https://{self.host}/{token}/{self.default_path}"
        parts = urlsplit(url)
        prefix = grant.path_prefixes[0]
        if parts.path.startswith(prefix):
            rest = parts.path[len(prefix) :]
        elif parts.path.startswith(f"/{uid}/"):
            rest = parts.path[len(uid) + 2 :]
        else:
            raise ValueError(f"{NAME}: {url!r} is neither under {prefix!r} nor a URL of video {uid!r}")
        query = f"?{parts.query}" if parts.query else ""
        return f"https://{self.host}/{token}/{rest or self.default_path}{query}"

    @property
    def query_params(self) -> tuple[str, ...]:
        return ()  # the token is the first path segment; nothing in the query is ours

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        """`/<TOKEN>/<rest>` names `<prefix of the token's video><rest>` (as `sign(url=…)` maps it back)."""
        prefix = encoded_prefix(grant.path_prefixes[0])
        return EdgePath(prefix + raw_path.lstrip("/").partition("/")[2], mapped=prefix)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        checked = normalise_path(urlsplit(request.url).path)
        _, token, *rest = checked.encoded.split("/")
        if token.count(".") != 2:
            raise TokenDenied(Denial.MISSING, "no signed token in the video-id slot of the path")
        if not rest or not rest[0]:
            raise TokenDenied(Denial.ACL, "nothing is requested after the token", {"path": checked.decoded})
        payload, key = jwt_common.decode_rs256(token, self.keys)
        if payload.get("kid", key.kid) != key.kid:
            raise TokenDenied(Denial.MALFORMED, "payload kid differs from header kid", {"kid": payload.get("kid")})
        expires_at, not_before = jwt_common.check_times(payload, now=now, leeway_seconds=self.leeway_seconds)
        uid = payload.get("sub")
        if not isinstance(uid, str) or not self.prefix_template.is_id(uid):
            raise TokenDenied(Denial.MALFORMED, "claim 'sub' is not a video UID", {"sub": uid})
        if rest[0] == "downloads" and payload.get("downloadable") is not True:
            raise TokenDenied(Denial.SCOPE, "an MP4 download needs a token with downloadable: true")
        rules = payload.get("accessRules", [])
        network = self._enforce_rules(rules, request)
        try:
            return Grant(
                path_prefixes=(self.prefix_template.prefix_for(uid),),
                expires_at=expires_at,
                not_before=not_before,
                client_network=network,
                key_id=key.kid,
            )
        except ValueError as exc:
            raise TokenDenied(Denial.MALFORMED, f"claims do not form a grant: {exc}") from exc

    def _enforce_rules(self, rules: object, request: EdgeRequest) -> IPNetwork | None:
        """Apply accessRules first-match-wins; return the grant's network when the rules pin one."""
        try:
            checked = [_check_rule(rule, "accessRules") for rule in rules] if isinstance(rules, list) else None
        except ConfigError as exc:
            raise TokenDenied(Denial.MALFORMED, f"bad accessRules: {exc}") from exc
        if checked is None or len(checked) > MAX_ACCESS_RULES:
            raise TokenDenied(Denial.MALFORMED, f"accessRules must be a list of at most {MAX_ACCESS_RULES} rules")
        client = request.client_ip
        country = self._country(request)
        for rule in checked:
            if _rule_matches(rule, client, country):
                if rule["action"] == "block":
                    raise TokenDenied(
                        Denial.IP,
                        f"client {client} (country {country}) is blocked by access rule {rule}",
                        {"client_ip": str(client), "country": country, "rule": rule},
                    )
                break
        # The shape `sign` writes for a grant's network: [block…,] ip.src allow [one net], any block.
        if len(checked) < 2 or checked[-1] != {"type": "any", "action": "block"}:
            return None
        pin = checked[-2]
        pinned = pin["type"] == "ip.src" and pin["action"] == "allow" and len(pin["ip"]) == 1
        if pinned and all(rule["action"] == "block" for rule in checked[:-2]):
            return ipaddress.ip_network(pin["ip"][0])
        return None

    def _country(self, request: EdgeRequest) -> str | None:
        if self.country_header is None:
            return None
        wanted = self.country_header.lower()
        value = next((v for k, v in request.headers.items() if k.lower() == wanted), None)
        return value.strip().upper() if value else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return jwt_common.jwks(self.keys)


def _in(address: IPAddress, network: str) -> bool:
    """Containment, with an IPv4-mapped IPv6 client (`::ffff:a.b.c.d`) also tried as its IPv4 address."""
    net = ipaddress.ip_network(network)
    mapped = getattr(address, "ipv4_mapped", None)
    return address in net or (mapped is not None and mapped in net)


def _rule_matches(rule: Rule, client: IPAddress | None, country: str | None) -> bool:
    if rule["type"] == "any":
        return True
    if rule["type"] == "ip.src":
        if client is None:
            raise TokenDenied(Denial.IP, "an ip.src access rule needs the client address, which is unknown")
        return any(_in(client, net) for net in rule["ip"])
    if country is None:
        raise TokenDenied(Denial.IP, "a country access rule cannot be checked: no country for this client")
    return country in rule["country"]


def from_config(
    table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> CloudflareStreamDialect:
    """Build from `[dialects.cloudflare_stream]` (see docs/dialects/cloudflare_stream.md)."""
    refuse_unknown(table, SETTINGS, f"[dialects.{NAME}]")
    code = table.get("customer_code")
    if not isinstance(code, str):
        raise ConfigError(f"dialects.{NAME}.customer_code: required (the <CODE> in customer-<CODE>.…)")
    rules = table.get("access_rules", [])
    if not isinstance(rules, list):
        raise ConfigError(f"dialects.{NAME}.access_rules: a list of rule tables")
    downloadable = table.get("downloadable")
    if downloadable is not None and not isinstance(downloadable, bool):
        raise ConfigError(f"dialects.{NAME}.downloadable: true or false")
    for option in ("prefix_template", "default_path", "country_header"):
        if option in table and not isinstance(table[option], str):
            raise ConfigError(f"dialects.{NAME}.{option}: a string")
    try:
        template = jwt_common.PrefixTemplate(table.get("prefix_template", "/vod/{uid}/"), "uid", _UID)
    except ConfigError as exc:
        raise ConfigError(f"dialects.{NAME}.{exc}") from exc
    access_rules = tuple(_check_rule(r, f"dialects.{NAME}.access_rules[{i}]") for i, r in enumerate(rules))
    return CloudflareStreamDialect(
        customer_code=code,
        keys=jwt_common.load_rsa_keys(table, dialect=NAME, base_dir=base_dir, environ=environ),
        prefix_template=template,
        default_path=table.get("default_path", "manifest/video.m3u8").lstrip("/"),
        downloadable=downloadable,
        access_rules=access_rules,
        country_header=table.get("country_header"),
        leeway_seconds=jwt_keys.leeway_from(table, NAME),
    )
