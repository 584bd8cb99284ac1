"""NGINX `secure_link` + `secure_link_md5` (core module ngx_http_secure_link_module).

What is signed: nothing is HMAC'd; the hash is `base64url(MD5(expression))`, where the expression is the
operator's `secure_link_md5` string with nginx variables filled in, reproduced here by a template:
    "{expires}{uri} {secret}"               (default; nginx: "$secure_link_expires$uri secret")
    "{expires}{uri}{remote_addr} {secret}"  (the nginx docs' IP-bound form)
    "{expires}{prefix} {secret}"            (directory token: nginx captures the prefix, see the docs page)
`{uri}` is nginx's `$uri` (decoded, normalised path); `{prefix}` a grant prefix such as `/vod/title-9000/`
(prefix signing: ONE hash per grant, the rewriter appends it to every URI); `{remote_addr}` the client
address as nginx prints it.
Where it goes: query `?md5=<hash>&expires=<epoch>` (names configurable), hash unpadded (nginx accepts both).
nginx answers 403 for a bad/missing hash and 410 for a correct but expired one (`now > expires`).
A Grant loses: not_before (refused unless `not_before_binding = "best-effort"`), session/user ids, scope; an
IP binding needs `{remote_addr}` and a single address (otherwise refused unless `ip_binding = "best-effort"`).
A wrong client address is indistinguishable from tampering (both change the MD5): `bad_signature`.
MD5 over a secret-suffixed string is what nginx offers, not a modern MAC: keep tokens short-lived.
Spec: https://nginx.org/en/docs/http/ngx_http_secure_link_module.html
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config_schema import NO_ENVIRONMENT
from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import CheckedPath
from gateway.tokens.dialects.base import NO_OPTIONS, Credentials, DialectDefaults, EdgePath, EdgeRequest, SigningOptions
from gateway.tokens.dialects.support import cdn_request as edge
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.dialects.support.google_signed import b64url
from gateway.tokens.grant import Grant

NAME = "nginx_secure_link"
DEFAULT_EXPRESSION = "{expires}{uri} {secret}"
PLACEHOLDERS = frozenset({"expires", "uri", "prefix", "remote_addr", "secret"})
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")


@dataclass(frozen=True)
class NginxSecureLink(DialectDefaults):
    """`secure_link_md5` reproduced from a template; `secret` is only ever used inside the MD5."""

    secret: str = field(repr=False)
    expression: str = DEFAULT_EXPRESSION
    hash_param: str = "md5"
    expires_param: str = "expires"
    padded: bool = False
    ip_binding: str = "strict"
    not_before_binding: str = "strict"
    leeway_seconds: int = 0
    name: str = NAME

    @property
    def prefix_signing(self) -> bool:
        return "{prefix}" in self.expression

    @property
    def query_params(self) -> tuple[str, ...]:
        return (self.hash_param, self.expires_param)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)

    @property
    def binds_ip(self) -> bool:
        return "{remote_addr}" in self.expression

    def digest(self, *, expires: str, path: str, remote_addr: str = "") -> bytes:
        """MD5 of the filled-in expression (the bytes nginx hashes)."""
        filled = self.expression.format(
            expires=expires, uri=path, prefix=path, remote_addr=remote_addr, secret=self.secret
        )
        return hashlib.md5(filled.encode("utf-8"), usedforsecurity=False).digest()

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        options.refuse_unsupported(NAME)
        edge.bindable_not_before(grant, dialect=NAME, not_before_binding=self.not_before_binding)
        remote_addr = ""
        if self.binds_ip:
            network = edge.bindable_network(grant, dialect=NAME, ip_binding="strict", single_host=True)
            if network is None:
                raise edge.UnsupportedGrant(f"{NAME}: the expression uses {{remote_addr}}; the grant needs one address")
            remote_addr = str(network.network_address)
        elif grant.client_network is not None and self.ip_binding != "best-effort":
            raise edge.UnsupportedGrant(f'{NAME}: the expression has no {{remote_addr}} (ip_binding = "strict")')
        checked = edge.url_in_grant(grant, url) if url is not None else None
        if self.prefix_signing:
            if len(grant.path_prefixes) != 1:
                raise edge.UnsupportedGrant(
                    f"{NAME}: a directory token covers one prefix; grant has {grant.path_prefixes}"
                )
            path = grant.path_prefixes[0]
        elif checked is None:
            raise ValueError(f"{NAME}: the expression signs {{uri}}; pass url=")
        else:
            path = checked.decoded
        token = b64url(
            self.digest(expires=str(grant.expires_at), path=path, remote_addr=remote_addr), padded=self.padded
        )
        query = ((self.hash_param, token), (self.expires_param, str(grant.expires_at)))
        full = edge.with_query(url, query) if url is not None else None
        return Credentials(query=query, url=full, token=token)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        checked = edge.check_path(url.raw_path)  # before anything else: '..' & co. are refused as acl
        pairs = url.pairs()
        token = edge.single_param(pairs, self.hash_param)
        expires = edge.single_param(pairs, self.expires_param)
        if not token:
            raise edge.missing(f"{self.hash_param} parameter")
        if not expires:
            raise TokenDenied(Denial.MALFORMED, f"no {self.expires_param} parameter", {"field": self.expires_param})
        mac = edge.b64_decode_canonical(self.hash_param, token)
        if len(mac) != 16:
            raise TokenDenied(Denial.MALFORMED, f"{self.hash_param} is not a 16-byte MD5", {"field": self.hash_param})
        expires_at = edge.parse_epoch(self.expires_param, expires)
        remote_addr = str(request.client_ip) if request.client_ip is not None else ""
        if self.binds_ip and not remote_addr:
            raise TokenDenied(Denial.IP, "the expression binds the client address, which is unknown", {})
        candidates = _ancestors(checked) if self.prefix_signing else [checked.decoded]
        matches = [
            hmac.compare_digest(self.digest(expires=expires, path=path, remote_addr=remote_addr), mac)
            for path in candidates
        ]
        if not any(matches):
            raise TokenDenied(
                Denial.BAD_SIGNATURE,
                f"{self.hash_param} does not match {checked.decoded} (or any prefix of it)",
                {"field": self.hash_param, "path": checked.decoded},
            )
        edge.check_window(expires_at=expires_at, not_before=None, now=now, leeway=self.leeway_seconds, exclusive=False)
        prefixes = [candidates[matches.index(True)]] if self.prefix_signing else []
        network = None
        if self.binds_ip and request.client_ip is not None:
            network = edge.parse_network("remote_addr", remote_addr)
        return edge.make_grant(
            path_prefixes=edge.grant_prefixes(prefixes, checked),
            expires_at=expires_at,
            client_network=network,
        )


def _ancestors(checked: CheckedPath) -> list[str]:
    """'/a/b/c.ts' -> ['/a/b/', '/a/', '/'] (the prefixes a directory token for this path could name)."""
    segments = checked.decoded.split("/")[1:-1]
    return ["/" + "".join(part + "/" for part in segments[:count]) for count in range(len(segments), -1, -1)]


def _check_expression(reader: TableReader, expression: str) -> None:
    try:
        names = {name for _, name, spec, conv in string.Formatter().parse(expression) if name is not None}
    except ValueError as exc:
        raise reader.error("expression", f"is not a valid template ({exc})") from None
    if not names <= PLACEHOLDERS:
        raise reader.error("expression", f"unknown placeholder(s) {sorted(names - PLACEHOLDERS)}")
    if not {"expires", "secret"} <= names or len(names & {"uri", "prefix"}) != 1:
        raise reader.error("expression", "needs {expires}, {secret} and exactly one of {uri} or {prefix}")


def from_config(
    table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> NginxSecureLink:
    """`[dialects.nginx_secure_link]`: secret|secret_file|secret_env, expression, hash_param, expires_param,
    padded, ip_binding, not_before_binding, leeway_seconds."""
    known = (
        "secret",
        "secret_file",
        "secret_env",
        "expression",
        "hash_param",
        "expires_param",
        "padded",
        "ip_binding",
        "not_before_binding",
        "leeway_seconds",
    )
    reader = TableReader(NAME, table, base_dir, known=known, environ=environ)
    secret = reader.secret("secret").rstrip("\r\n")
    if any(char in secret for char in "{}\"'\\") or secret != secret.strip():
        raise reader.error("secret", "must not contain braces, quotes, backslashes or surrounding spaces")
    expression = reader.text("expression", DEFAULT_EXPRESSION)
    _check_expression(reader, expression)
    params = {
        field_name: reader.text(field_name, default)
        for field_name, default in (("hash_param", "md5"), ("expires_param", "expires"))
    }
    for field_name, value in params.items():
        if not _PARAM_NAME.fullmatch(value):
            raise reader.error(field_name, "must be 1-32 letters, digits or '_'")
    return NginxSecureLink(
        secret=secret,
        expression=expression,
        hash_param=params["hash_param"],
        expires_param=params["expires_param"],
        padded=reader.boolean("padded", False),
        ip_binding=reader.ip_binding(),
        not_before_binding=reader.choice("not_before_binding", ("strict", "best-effort"), "strict"),
        leeway_seconds=reader.integer("leeway_seconds", 0, maximum=3600),
    )
