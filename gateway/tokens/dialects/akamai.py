"""Akamai EdgeAuth token (Auth Token 2.0 / Segmented Media Protection `hdnts`).

What is signed: HMAC-<sha256|sha1|md5>(hex-decoded key, string-to-sign) as lowercase hex, where the
string-to-sign is the present fields of `ip=~st=~exp=~acl=~id=~data=~url=~salt=` in that fixed order, joined
by the field delimiter (`~`). The token is the same minus `url=` and `salt=`, plus `~hmac=<hex>` last.
- ACL token (prefix signing, the HLS/DASH form): `acl=<prefix>*` per grant prefix (or the custom patterns of
  `SigningOptions.resources`), several joined by `!`. ONE token per grant. `*` matches any run of characters
  (including '/'), `?` exactly one. The reference never escapes an ACL, so it is written as the request
  carries the path (canonical percent-encoding, plus `%XX` for `~ ! * & , '`) and matched against the
  decoded path (any spelling of one file matches).
- URL token (per URL): `url=<path>` is signed but not sent; the edge recomputes it from the request.
- escape_early ("Escape token input" in Property Manager): ip, id, data and url are `quote_plus`-ed with
  lower-case `%xx`; acl and salt never are.
Grant mapping: not_before -> st (0 means unset, as in the reference), expires_at -> exp, session_id -> id,
user_id -> data, client_network -> ip (a single address only: a wider network raises `UnsupportedGrant`
unless `ip_binding = "best-effort"`). Scope is not carried (the edge has none).
Start, window and session: `Grant.not_before` (CLI `--start`), `expires_at` = start + window (`--window`),
`session_id`. Method and client headers are refused (`UnsupportedGrant`).
Where it goes: query `<token_name>=<token>` (unencoded, as the EdgeAuth README shows), cookie
`<token_name>=<token>`, or header `<token_name>: <token>`. Key rotation: Akamai has no key id; the edge
tries the key and the transition key, and so does `verify`.
Spec/reference: https://github.com/akamai/EdgeAuth-Token-Python (`akamai-edgeauth` 0.3.2, byte-identical).
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus

from gateway.config_schema import NO_ENVIRONMENT
from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import CheckedPath
from gateway.tokens.dialects.base import (
    NO_OPTIONS,
    Cookie,
    Credentials,
    DialectDefaults,
    EdgePath,
    EdgeRequest,
    SigningOptions,
)
from gateway.tokens.dialects.support import cdn_request as edge
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.grant import Grant

NAME = "akamai"
TOKEN_FIELDS = ("ip", "st", "exp", "acl", "id", "data")  # the fixed emission order; hmac comes last
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
}
KEY_LABELS = ("key", "transition_key")  # what `verify` reports as Grant.key_id (the token has no key id)
# Values that survive query/cookie placement unescaped (escape_early off); '~' and '!' are delimiters.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:@/+-]+")
# Percent-encoded in an ACL although the canonical path encoding leaves them raw: the wildcard, and what
# would end a query parameter ('&'), a cookie value (',') or a quoted playlist attribute (').
ACL_ESCAPED = "*&,'"


def escape_early(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(text))


@dataclass(frozen=True)
class Akamai(DialectDefaults):
    """EdgeAuth bound to its key(s); `keys[0]` signs, every key verifies (Akamai's transition key)."""

    keys: tuple[bytes, ...] = field(repr=False)
    algorithm: str = "sha256"
    token_type: str = "acl"  # "acl" (prefix) | "url" (per URL)
    token_name: str = "__token__"
    delivery: str = "query"  # "query" | "cookie" | "header"
    escape_early: bool = False
    salt: str | None = field(default=None, repr=False)
    url_query: bool = False  # URL tokens: sign the query string too ("Ignore query string" off)
    field_delimiter: str = "~"
    acl_delimiter: str = "!"
    ip_binding: str = "strict"
    leeway_seconds: int = 0
    cookie_domain: str | None = None
    name: str = NAME

    @property
    def prefix_signing(self) -> bool:
        return self.token_type == "acl"

    @property
    def query_params(self) -> tuple[str, ...]:
        # Also with cookie/header delivery: a token name in the query is never the origin's to see.
        return (self.token_name,)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)

    def _escape(self, text: str) -> str:
        return escape_early(text) if self.escape_early else text

    def _mac(self, key: bytes, message: str) -> str:
        return hmac.new(key, message.encode(), ALGORITHMS[self.algorithm]).hexdigest()

    def _value(self, label: str, text: str) -> str:
        if self.field_delimiter in text or "~" in text or (not self.escape_early and not _PLAIN_VALUE.fullmatch(text)):
            raise edge.UnsupportedGrant(
                f"akamai: {label} {text!r} cannot travel unescaped (use escape_early or plain characters)"
            )
        return self._escape(text)

    # -- signing ---------------------------------------------------------------------------------------

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        # Custom ACLs (`options.resources`) replace the grant's prefixes; a URL token signs the URL it is for.
        options.refuse_unsupported(NAME, supported=frozenset({"resources"} if self.token_type == "acl" else ()))
        fields: list[tuple[str, str]] = []
        network = edge.bindable_network(grant, dialect=NAME, ip_binding=self.ip_binding, single_host=True)
        if network is not None:
            fields.append(("ip", self._escape(str(network.network_address))))
        if grant.not_before:
            fields.append(("st", str(grant.not_before)))
        fields.append(("exp", str(grant.expires_at)))
        extra: list[tuple[str, str]] = []
        if self.token_type == "acl":
            acls = [self._resource(r) for r in options.resources] or [self._acl(p) for p in grant.path_prefixes]
            fields.append(("acl", self.acl_delimiter.join(acls)))
        else:
            if url is None:
                raise ValueError("akamai: a URL token signs one URL; pass url=")
            extra.append(("url", self._escape(self._signed_url(edge.url_in_grant(grant, url).encoded, url))))
        if grant.session_id is not None:
            fields.append(("id", self._value("session_id", grant.session_id)))
        if grant.user_id is not None:
            fields.append(("data", self._value("user_id", grant.user_id)))
        if self.salt:
            extra.append(("salt", self.salt))
        join = self.field_delimiter.join
        mac = self._mac(self.keys[0], join(f"{k}={v}" for k, v in fields + extra))
        token = join([*(f"{k}={v}" for k, v in fields), f"hmac={mac}"])
        return self._deliver(token, grant, url, custom=bool(options.resources))

    @property
    def _acl_escaped(self) -> str:
        """What an ACL carries percent-encoded beyond the canonical path encoding: the token's own delimiters
        and wildcard, and what cannot travel raw in a query, a cookie or a playlist URI."""
        return ACL_ESCAPED + self.field_delimiter + self.acl_delimiter

    def _acl(self, prefix: str) -> str:
        # The reference never escapes an ACL: it is signed and sent as written, and the edge compares it with
        # the request path. So it is written as the viewer's request carries the path (percent-encoded).
        return edge.encoded_prefix(prefix, escape=self._acl_escaped) + "*"

    def _resource(self, pattern: str) -> str:
        if not pattern.startswith("/"):
            raise edge.UnsupportedGrant(f"akamai: an ACL is a path pattern starting with '/', not {pattern[:200]!r}")
        try:
            return edge.encode_glob(pattern, escape=self._acl_escaped)
        except edge.UnsupportedGrant as refused:
            raise edge.UnsupportedGrant(f"akamai: {refused.detail}") from None

    def _signed_url(self, encoded_path: str, url: str) -> str:
        query = url.partition("?")[2] if self.url_query else ""
        return encoded_path + ("?" + query if query else "")

    def _deliver(self, token: str, grant: Grant, url: str | None, *, custom: bool = False) -> Credentials:
        if self.delivery == "cookie":
            single = len(grant.path_prefixes) == 1 and not custom
            path = edge.encoded_prefix(grant.path_prefixes[0]) if single else "/"
            cookie = Cookie(self.token_name, token, path=path, domain=self.cookie_domain)
            return Credentials(cookies=(cookie,), token=token, url=url)
        if self.delivery == "header":
            return Credentials(headers=((self.token_name, token),), token=token, url=url)
        # As the EdgeAuth README does: the token goes into the query as it is (its escapes are the signed bytes).
        query = Credentials(query=((self.token_name, token),), token=token, query_ready=True)
        full_url = url + ("&" if "?" in url else "?") + query.query_string() if url is not None else None
        return dataclasses.replace(query, url=full_url)

    # -- verifying (what the Akamai edge does) --------------------------------------------------------

    def _find_token(self, request: EdgeRequest, url: edge.RequestUrl) -> str:
        if self.delivery == "cookie":
            found = request.cookies.get(self.token_name)
        elif self.delivery == "header":
            found = next((v for k, v in request.headers.items() if k.lower() == self.token_name.lower()), None)
        else:
            found = edge.single_param(url.pairs(), self.token_name)
        if not found:
            raise edge.missing(f"Akamai token {self.token_name}")
        if len(found) > edge.MAX_TOKEN_CHARS:
            raise TokenDenied(Denial.MALFORMED, "token too long", {"field": self.token_name})
        return found

    def _parse(self, token: str) -> tuple[list[tuple[str, str]], str]:
        parts = token.split(self.field_delimiter)
        fields = [(part.partition("=")[0], part.partition("=")[2]) for part in parts]
        names = [name for name, _ in fields]
        *body, (last, mac) = fields
        order = [name for name in TOKEN_FIELDS if name in names]
        if last != "hmac" or names[:-1] != order or not all("=" in part for part in parts):
            raise TokenDenied(
                Denial.MALFORMED,
                f"token fields must be {'~'.join(TOKEN_FIELDS)}~hmac in order",
                {"fields": names[:10]},
            )
        if "exp" not in names or ("acl" in names) != (self.token_type == "acl"):
            raise TokenDenied(
                Denial.MALFORMED,
                f"an {self.token_type} token needs exp{'/acl' * (self.token_type == 'acl')}",
                {"fields": names[:10]},
            )
        size = ALGORITHMS[self.algorithm]().digest_size * 2
        if not re.fullmatch(f"[0-9a-f]{{{size}}}", mac):
            raise TokenDenied(Denial.MALFORMED, f"hmac is not {size} lowercase hex digits", {"field": "hmac"})
        return body, mac

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        checked = edge.check_path(url.raw_path)  # before anything else: '..' & co. are refused as acl
        raw = self._find_token(request, url)
        candidates = list(dict.fromkeys([raw, unquote(raw)]))  # as sent, or percent-encoded once in transit
        errors: list[TokenDenied] = []
        for token in candidates:
            try:
                return self._verify_token(token, url, checked, request, now)
            except TokenDenied as exc:
                errors.append(exc)
        # The informative denial: a check after the HMAC matched (expired, acl, ip) over a mismatch over junk.
        raise min(errors, key=lambda exc: (exc.reason is Denial.BAD_SIGNATURE) + 2 * (exc.reason is Denial.MALFORMED))

    def _messages(self, body: list[tuple[str, str]], url: edge.RequestUrl, checked: CheckedPath) -> list[str]:
        """The strings the edge may have signed: a URL token's `url=` is the path as the request carries it
        (what Akamai's edge reads) or its canonical spelling (what the gateway signs)."""
        paths = list(dict.fromkeys([url.raw_path, checked.encoded])) if self.token_type == "url" else [""]
        messages = []
        for path in paths:
            extra = []
            if self.token_type == "url":
                own_url = url.without([self.token_name])  # the URL as the viewer was given it
                extra.append(f"url={self._escape(self._signed_url(path, own_url))}")
            if self.salt:
                extra.append(f"salt={self.salt}")
            messages.append(self.field_delimiter.join([*(f"{k}={v}" for k, v in body), *extra]))
        return messages

    def _verify_token(
        self, token: str, url: edge.RequestUrl, checked: CheckedPath, request: EdgeRequest, now: float
    ) -> Grant:
        body, mac = self._parse(token)
        values = dict(body)
        messages = self._messages(body, url, checked)
        matches = [any(hmac.compare_digest(self._mac(key, m), mac) for m in messages) for key in self.keys]
        if not any(matches):
            raise TokenDenied(Denial.BAD_SIGNATURE, "hmac does not match the key or transition key", {"field": "hmac"})
        key_label = KEY_LABELS[matches.index(True)]
        expires_at = edge.parse_epoch("exp", values["exp"])
        not_before = edge.parse_epoch("st", values["st"]) if "st" in values else None
        edge.check_window(
            expires_at=expires_at, not_before=not_before, now=now, leeway=self.leeway_seconds, exclusive=False
        )
        prefixes: list[str] = []
        if self.token_type == "acl":
            globs = [edge.decoded_glob(acl) for acl in values["acl"].split(self.acl_delimiter)]
            if not any(edge.decoded_glob_match(atoms, checked) for atoms in globs):
                raise TokenDenied(
                    Denial.ACL,
                    f"path {checked.decoded} matches no ACL {values['acl'][:200]}",
                    {"path": checked.decoded, "acl": values["acl"][:200]},
                )
            prefixes = [p for atoms in globs if (p := edge.decoded_glob_prefix(atoms))]
        network = None
        if "ip" in values:
            unescape = unquote_plus if self.escape_early else str
            try:
                address = ipaddress.ip_address(unescape(values["ip"]))
            except ValueError:
                raise TokenDenied(Denial.MALFORMED, "ip is not an address", {"field": "ip"}) from None
            network = ipaddress.ip_network(address)
            edge.check_client([network], request.client_ip)
        unescape_text = unquote_plus if self.escape_early else str
        return edge.make_grant(
            path_prefixes=edge.grant_prefixes(prefixes, checked),
            expires_at=expires_at,
            not_before=not_before,
            client_network=network,
            session_id=unescape_text(values["id"]) if "id" in values else None,
            user_id=unescape_text(values["data"]) if "data" in values else None,
            key_id=key_label,
        )


def _hex_key(reader: TableReader, name: str) -> bytes:
    text = reader.secret(name).strip()
    if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", text):
        raise reader.error(name, "must be an even-length hex string (Property Manager's encryption key)")
    key = binascii.a2b_hex(text)
    if len(key) < 16:
        raise reader.error(name, f"has {len(key)} bytes; at least 16 are needed")
    return key


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> Akamai:
    """`[dialects.akamai]`: key|key_file|key_env (hex), transition_key*, algorithm, token_type, token_name,
    delivery, escape_early, salt*, url_query, field_delimiter, acl_delimiter, ip_binding, leeway_seconds,
    cookie_domain."""
    secrets = [f"{name}{suffix}" for name in ("key", "transition_key", "salt") for suffix in ("", "_file", "_env")]
    settings = "algorithm token_type token_name delivery escape_early url_query field_delimiter acl_delimiter"
    known = (*secrets, *settings.split(), "ip_binding", "leeway_seconds", "cookie_domain")
    reader = TableReader(NAME, table, base_dir, known=known, environ=environ)
    keys = [_hex_key(reader, "key")]
    if reader.has_secret("transition_key"):
        keys.append(_hex_key(reader, "transition_key"))
    token_name = reader.text("token_name", "__token__")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", token_name):
        raise reader.error("token_name", "must be letters, digits, '_', '.', '-'")
    field_delimiter = reader.text("field_delimiter", "~")
    acl_delimiter = reader.text("acl_delimiter", "!")
    for label, value in (("field_delimiter", field_delimiter), ("acl_delimiter", acl_delimiter)):
        if len(value) != 1 or value.isalnum() or value in "=*?/%":
            raise reader.error(label, f"must be one punctuation character other than = * ? / %, not {value!r}")
    return Akamai(
        keys=tuple(keys),
        algorithm=reader.choice("algorithm", tuple(ALGORITHMS), "sha256"),
        token_type=reader.choice("token_type", ("acl", "url"), "acl"),
        token_name=token_name,
        delivery=reader.choice("delivery", ("query", "cookie", "header"), "query"),
        escape_early=reader.boolean("escape_early", False),
        salt=reader.secret("salt") if reader.has_secret("salt") else None,
        url_query=reader.boolean("url_query", False),
        field_delimiter=field_delimiter,
        acl_delimiter=acl_delimiter,
        ip_binding=reader.ip_binding(),
        leeway_seconds=reader.integer("leeway_seconds", 0, maximum=3600),
        cookie_domain=reader.optional_text("cookie_domain"),
    )
