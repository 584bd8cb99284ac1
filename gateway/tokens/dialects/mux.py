"""Mux signed playback: an RS256 JWT in the `token` query parameter of a playback URL.

Signed bytes: `b64url(header) "." b64url(payload)` with RSASSA-PKCS1-v1_5-SHA256 (see `jwt_common`), where

    header  = {"alg":"RS256","kid":"<signing key id>","typ":"JWT"}
    payload = {"sub":"<playback id>","aud":"v|t|g|s|d","exp":…[,"nbf":…][, configured params…]}

One token per audience: `v` video (`https://stream.mux.com/<ID>.m3u8?token=…`; Mux serves the child
playlists and segments itself), `t` thumbnail, `g` animated GIF/WebP, `s` storyboard (`image.mux.com`),
`d` DRM licence (`license.mux.com`). Playback modifiers and `playback_restriction_id` belong in the
claims (config `params`), never in the query string. A grant's prefix names the playback id through
`prefix_template` (e.g. `/vod/{playback_id}/`). Mux tokens cannot carry a client network, so a grant
with one is refused unless `drop_client_network = true`.

Spec: https://docs.mux.com/guides/secure-video-playback ; muxinc/mux-node-sdk `src/resources/jwt.ts`;
see also docs/dialects/mux.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.config_schema import NO_ENVIRONMENT, refuse_unknown
from gateway.errors import ConfigError, Denial, TokenDenied, UnsupportedGrant
from gateway.tokens.acl import normalise_path
from gateway.tokens.dialects.base import NO_OPTIONS, Credentials, DialectDefaults, EdgePath, EdgeRequest, SigningOptions
from gateway.tokens.dialects.support import jwt_common, jwt_keys
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant

NAME = "mux"
QUERY_PARAM = "token"
AUDIENCES = {"v": "video", "t": "thumbnail", "g": "gif", "s": "storyboard", "d": "drm_license"}
SETTINGS = frozenset(
    {"prefix_template", "audience", "params", "drop_client_network", "stream_host", "leeway_seconds", "keys"}
)
RESERVED_CLAIMS = frozenset({"sub", "aud", "exp", "nbf", "kid", "iat"})
_PLAYBACK_ID = r"[A-Za-z0-9]{1,128}"
DEFAULT_PREFIX_TEMPLATE = jwt_common.PrefixTemplate("/vod/{playback_id}/", "playback_id", _PLAYBACK_ID)
# image.mux.com/<id>/<name>.<ext>: which audience opens which image.
_IMAGE_AUDIENCE = {"thumbnail": "t", "animated": "g", "storyboard": "s"}


def audience_of(host: str, path: str) -> tuple[str, str]:
    """(playback id, audience) a Mux URL needs: `/ID.m3u8` → v, `/ID/thumbnail.jpg` → t, licence → d."""
    segments = path.strip("/").split("/")
    if host.startswith("license.") and len(segments) >= 3 and segments[0] == "license":
        return segments[-1], "d"
    first = segments[0]
    if len(segments) == 1:
        return first.split(".", 1)[0], "v"
    stem = segments[-1].split(".", 1)[0]
    if host.startswith("image.") and len(segments) == 2 and stem in _IMAGE_AUDIENCE:
        return first, _IMAGE_AUDIENCE[stem]
    return first, "v"


@dataclass(frozen=True)
class MuxDialect(DialectDefaults):
    """Mux signed playback bound to a prefix template, default audience, extra claims and RS256 keys."""

    keys: tuple[jwt_common.RsaJwtKey, ...]
    prefix_template: jwt_common.PrefixTemplate = DEFAULT_PREFIX_TEMPLATE
    audience: str = "v"
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    drop_client_network: bool = False
    stream_host: str = "stream.mux.com"
    leeway_seconds: float = 0.0
    name: str = field(default=NAME, init=False)
    prefix_signing: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if self.audience not in AUDIENCES:
            raise ConfigError(f"dialects.{NAME}.audience: one of {', '.join(AUDIENCES)}")
        clash = RESERVED_CLAIMS.intersection(self.params)
        if clash:
            raise ConfigError(f"dialects.{NAME}.params: {', '.join(sorted(clash))} are set from the grant")

    def claims(self, grant: Grant, audience: str | None = None) -> dict[str, Any]:
        """The JWT payload for `grant` (audience defaults to the configured one)."""
        if len(grant.path_prefixes) != 1:
            raise UnsupportedGrant(f"{NAME}: a token names one playback id; the grant has {len(grant.path_prefixes)}")
        if grant.client_network is not None and not self.drop_client_network:
            raise UnsupportedGrant(f"{NAME}: Mux tokens cannot restrict the client network (set drop_client_network)")
        payload: dict[str, Any] = {
            "sub": self.prefix_template.id_of(grant.path_prefixes[0]),
            "aud": audience or self.audience,
            "exp": grant.expires_at,
        }
        if grant.not_before is not None:
            payload["nbf"] = grant.not_before
        payload.update(self.params)
        return payload

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        options.refuse_unsupported(NAME)
        """Sign for `url` (a Mux URL of this playback id, audience from its path) or the HLS URL."""
        key = jwt_common.signing_key(self.keys, NAME)
        if url is None:
            payload = self.claims(grant)
            token = jwt_common.encode_rs256(payload, key)
            signed = f"https://{self.stream_host}/{payload['sub']}.m3u8?{QUERY_PARAM}={token}"
            return Credentials(query=((QUERY_PARAM, token),), url=signed, token=token)
        parts = urlsplit(url)
        if parts.query:
            raise ValueError(f"{NAME}: {url!r} has a query; Mux wants playback modifiers in the token's claims")
        playback_id, audience = audience_of(parts.hostname or "", parts.path)
        payload = self.claims(grant, audience)
        if playback_id != payload["sub"]:
            raise ValueError(f"{NAME}: {url!r} is not a URL of playback id {payload['sub']!r}")
        token = jwt_common.encode_rs256(payload, key)
        return Credentials(query=((QUERY_PARAM, token),), url=f"{url}?{QUERY_PARAM}={token}", token=token)

    @property
    def query_params(self) -> tuple[str, ...]:
        return (QUERY_PARAM,)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        """Mux URLs put the playback id first: `/<ID>/<rest>` names `<prefix><rest>`, and `/<ID>.m3u8`
        (Mux's master URL) the prefix's own name with that extension, e.g. `/vod/<ID>.m3u8`."""
        prefix = encoded_prefix(grant.path_prefixes[0])
        own = "/" + self.prefix_template.id_of(grant.path_prefixes[0])
        rest = raw_path[len(own) :]
        if not raw_path.startswith(own) or rest[:1] not in ("/", "."):
            raise TokenDenied(Denial.ACL, f"{raw_path[:200]} is not a URL of playback id {own[1:]}", {"path": raw_path})
        return EdgePath(prefix[:-1] + rest, mapped=prefix)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        parts = urlsplit(request.url)
        checked = normalise_path(parts.path)
        tokens = [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if name == QUERY_PARAM]
        if len(tokens) != 1:
            raise TokenDenied(Denial.MISSING if not tokens else Denial.MALFORMED, "expected one ?token= parameter")
        playback_id, audience = audience_of(parts.hostname or "", checked.encoded)
        payload, key = jwt_common.decode_rs256(tokens[0], self.keys)
        expires_at, not_before = jwt_common.check_times(payload, now=now, leeway_seconds=self.leeway_seconds)
        subject = payload.get("sub")
        if not self.prefix_template.is_id(subject):
            raise TokenDenied(Denial.MALFORMED, "claim 'sub' is not a playback id", {"sub": subject})
        if subject != playback_id:
            raise TokenDenied(
                Denial.ACL,
                f"token for playback id {subject} does not open {checked.decoded}",
                {"sub": subject, "path": checked.decoded},
            )
        granted = payload.get("aud")
        if audience not in (granted if isinstance(granted, list) else [granted]):
            raise TokenDenied(
                Denial.SCOPE,
                f"token audience {granted!r} does not open a {AUDIENCES[audience]} request ({audience!r})",
                {"aud": granted, "needed": audience},
            )
        try:
            return Grant(
                path_prefixes=(self.prefix_template.prefix_for(str(subject)),),
                expires_at=expires_at,
                not_before=not_before,
                key_id=key.kid,
            )
        except ValueError as exc:
            raise TokenDenied(Denial.MALFORMED, f"claims do not form a grant: {exc}") from exc

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return jwt_common.jwks(self.keys)


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> MuxDialect:
    """Build from `[dialects.mux]` (see docs/dialects/mux.md)."""
    refuse_unknown(table, SETTINGS, f"[dialects.{NAME}]")
    params = table.get("params", {})
    if not isinstance(params, Mapping) or not all(
        isinstance(value, str | int | float | bool) for value in params.values()
    ):
        raise ConfigError(f"dialects.{NAME}.params: a table of string, number or boolean claims")
    for option in ("prefix_template", "audience", "stream_host"):
        if option in table and not isinstance(table[option], str):
            raise ConfigError(f"dialects.{NAME}.{option}: a string")
    if not isinstance(table.get("drop_client_network", False), bool):
        raise ConfigError(f"dialects.{NAME}.drop_client_network: true or false")
    host = table.get("stream_host", "stream.mux.com")
    if not re.fullmatch(r"[a-z0-9.-]+", host):
        raise ConfigError(f"dialects.{NAME}.stream_host: a host name")
    try:
        template = jwt_common.PrefixTemplate(
            table.get("prefix_template", "/vod/{playback_id}/"), "playback_id", _PLAYBACK_ID
        )
    except ConfigError as exc:
        raise ConfigError(f"dialects.{NAME}.{exc}") from exc
    return MuxDialect(
        keys=jwt_common.load_rsa_keys(table, dialect=NAME, base_dir=base_dir, environ=environ),
        prefix_template=template,
        audience=table.get("audience", "v"),
        params=dict(params),
        drop_client_network=table.get("drop_client_network", False),
        stream_host=host,
        leeway_seconds=jwt_keys.leeway_from(table, NAME),
    )
