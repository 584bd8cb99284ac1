"""Google Media CDN dual-token authentication: the short-duration token (`edge-cache-token`).

What is signed: the `~`-joined fields below (UTF-8), by Ed25519 (`Signature=<b64url unpadded>`) or by
HMAC-SHA256 / HMAC-SHA1 (`hmac=<lowercase hex>`), appended last. Fields, in this order:
    FullPath | PathGlobs=<g1,g2> | URLPrefix=<b64url unpadded>   exactly one
    Starts=<epoch>  Expires=<epoch>  SessionID=<id>  Data=<data>  Headers=<n1,n2>  IPRanges=<b64url unpadded>
The token and the signed string differ only for FullPath (`FullPath=<request path>` is signed) and Headers
(`Headers=<n1>=<v1>,<n2>=<v2>` is signed, with the request's header values).
Grant mapping: prefixes -> `PathGlobs=<prefix>*` (default; `*` matches across '/') or `URLPrefix` of
`base_url + prefix`; per-URL `FullPath` takes `url`; not_before -> Starts; session_id -> SessionID;
user_id -> Data; client_network -> IPRanges (IPv4 and IPv6). ONE token per grant; scope is not carried.
Where it goes: query `edge-cache-token=<token>` or cookie `Edge-Cache-Cookie=<token>`. The token has no key
id: the keyset's keys are tried in turn (rotation = add the new key first, keep the old one).
Spec: https://cloud.google.com/media-cdn/docs/generate-tokens; reference vectors: python-docs-samples
`media_cdn/dualtoken_test.py` (all reproduced, see tests/tokens/dialects/test_google.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from gateway.tokens.dialects.support import google_paths
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.dialects.support.google_signed import NamedKey, b64url, read_keys
from gateway.tokens.grant import Grant, IPNetwork

NAME = "media_cdn_dualtoken"
TOKEN_NAME = "edge-cache-token"
COOKIE_NAME = "Edge-Cache-Cookie"
PATH_FIELDS = ("FullPath", "PathGlobs", "URLPrefix")
FIELD_ORDER = ("Starts", "Expires", "SessionID", "Data", "Headers", "IPRanges")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%'*+.^_`|-]{1,64}")  # RFC 9110 token, minus '&' and '~'
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")


def _malformed(detail: str, field_name: str) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, detail, {"field": field_name})


@dataclass(frozen=True)
class MediaCdnDualToken(DialectDefaults):
    """Short tokens bound to a keyset of one algorithm (`keys[0]` signs, every key verifies)."""

    keys: tuple[NamedKey, ...] = field(repr=False)
    algorithm: str = "ed25519"  # "ed25519" | "sha256" | "sha1"
    path_field: str = "path_globs"  # "path_globs" | "url_prefix" | "full_path"
    base_url: str | None = None
    delivery: str = "query"  # "query" | "cookie"
    token_name: str = TOKEN_NAME
    leeway_seconds: int = 0
    cookie_domain: str | None = None
    name: str = NAME

    @property
    def prefix_signing(self) -> bool:
        return self.path_field != "full_path"

    @property
    def query_params(self) -> tuple[str, ...]:
        return (self.token_name,)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)

    def _seal(self, key: NamedKey, signed: str) -> str:
        raw = key.sign(signed.encode())
        return f"Signature={b64url(raw, padded=False)}" if self.algorithm == "ed25519" else f"hmac={raw.hex()}"

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        """Start time (`not_before`) -> Starts; `options.resources` -> custom PathGlobs (or one URLPrefix);
        `options.headers` -> Headers (the request must then carry each with that value); no HTTP method."""
        options.refuse_unsupported(NAME, supported=frozenset({"resources", "headers"}))
        key = next((k for k in self.keys if k.can_sign), None)
        if key is None:
            raise ValueError(f"{NAME}: no key that can sign")
        checked = edge.url_in_grant(grant, url) if url is not None else None
        if self.path_field == "full_path":
            if options.resources:
                raise edge.UnsupportedGrant(f"{NAME}: a FullPath token names the request path, not resources")
            if checked is None:
                raise ValueError(f"{NAME}: a FullPath token covers one path; pass url=")
            token_fields, signed_fields = ["FullPath"], [f"FullPath={checked.encoded}"]
        else:
            first = self._path_value(grant, options.resources)
            token_fields, signed_fields = [first], [first]
        extra = []
        if grant.not_before:
            extra.append(f"Starts={grant.not_before}")
        extra.append(f"Expires={grant.expires_at}")
        for label, value, field_name in (
            ("session_id", grant.session_id, "SessionID"),
            ("user_id", grant.user_id, "Data"),
        ):
            if value is not None:
                if not _PLAIN_VALUE.fullmatch(value):
                    raise edge.UnsupportedGrant(
                        f"{NAME}: {label} must match {_PLAIN_VALUE.pattern} to travel in a token"
                    )
                extra.append(f"{field_name}={value}")
        token_extra, signed_extra = list(extra), list(extra)
        if options.headers:
            names, pairs = self._headers(options.headers)
            token_extra.append(f"Headers={names}")
            signed_extra.append(f"Headers={pairs}")
        if grant.client_network is not None:
            ranges = f"IPRanges={b64url(str(grant.client_network).encode(), padded=False)}"
            token_extra.append(ranges)
            signed_extra.append(ranges)
        seal = self._seal(key, "~".join([*signed_fields, *signed_extra]))
        return self._deliver("~".join([*token_fields, *token_extra, seal]), grant, url)

    def _headers(self, headers: tuple[tuple[str, str], ...]) -> tuple[str, str]:
        """`Headers=` as the token carries it (names) and as it is signed (name=value pairs)."""
        for name, value in headers:
            if not _HEADER_NAME.fullmatch(name):
                raise edge.UnsupportedGrant(f"{NAME}: header name {name!r} is not an HTTP token without ',', '~'")
            if not _HEADER_VALUE.fullmatch(value):
                raise edge.UnsupportedGrant(f"{NAME}: header {name} has a value a request cannot carry")
        if len({name.lower() for name, _ in headers}) != len(headers):
            raise edge.UnsupportedGrant(f"{NAME}: each header is signed once")
        if self.delivery == "cookie" and len(headers) > 1:
            # Headers=<n1>,<n2>: ',' is not a cookie octet (RFC 6265), so the cookie cannot carry two names.
            raise edge.UnsupportedGrant(f"{NAME}: a cookie token can sign one header (',' is not a cookie octet)")
        return ",".join(name for name, _ in headers), ",".join(f"{name}={value}" for name, value in headers)

    def _path_value(self, grant: Grant, resources: tuple[str, ...] = ()) -> str:
        if self.path_field == "url_prefix":
            if self.base_url is None:
                raise edge.UnsupportedGrant(f"{NAME}: URLPrefix needs base_url")
            if resources:
                if len(resources) != 1 or "*" in resources[0]:
                    raise edge.UnsupportedGrant(f"{NAME}: URLPrefix is one prefix without wildcards: {resources}")
                resource = resources[0]
                prefix = google_paths.canonical_url(resource if "://" in resource else self.base_url + resource)
            elif len(grant.path_prefixes) != 1:
                raise edge.UnsupportedGrant(f"{NAME}: URLPrefix needs exactly one prefix")
            else:
                prefix = self.base_url + edge.encoded_prefix(grant.path_prefixes[0])
            return f"URLPrefix={b64url(prefix.encode(), padded=False)}"
        if resources:
            globs = [google_paths.resource_glob(resource) for resource in resources]
        else:
            globs = [google_paths.prefix_glob(edge.encoded_prefix(prefix)) for prefix in grant.path_prefixes]
        if len(globs) > google_paths.MAX_GLOBS:
            raise edge.UnsupportedGrant(f"{NAME}: PathGlobs holds at most {google_paths.MAX_GLOBS} globs")
        # ',' and '!' both separate globs; '!' is a cookie octet and ',' is not (RFC 6265).
        return "PathGlobs=" + ("!" if self.delivery == "cookie" else ",").join(globs)

    def _deliver(self, token: str, grant: Grant, url: str | None) -> Credentials:
        if self.delivery == "cookie":
            path = edge.encoded_prefix(grant.path_prefixes[0]) if len(grant.path_prefixes) == 1 else "/"
            cookie = Cookie(COOKIE_NAME, token, path=path, domain=self.cookie_domain)
            return Credentials(cookies=(cookie,), token=token, url=url)
        # The token goes into the query exactly as signed: its own escapes (%C3%A9, %7E) are part of the signed
        # text, and every other character of it is one a query value carries as it is (Google's samples).
        full = edge.with_query(url, [(self.token_name, token)], ready=True) if url is not None else None
        return Credentials(query=((self.token_name, token),), token=token, url=full, query_ready=True)

    # -- verifying (what the Media CDN edge does) -----------------------------------------------------

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        checked = edge.check_path(url.raw_path)  # before anything else: '..' & co. are refused as acl
        if self.delivery == "cookie":
            raw = request.cookies.get(COOKIE_NAME)
        else:
            raw = edge.single_param(url.pairs(), self.token_name)
        if not raw:
            raise edge.missing(f"{self.token_name} token")
        token = raw  # the bytes as received: the signature covers the token's own percent-escapes
        if len(token) > edge.MAX_TOKEN_CHARS:
            raise _malformed("token too long", self.token_name)
        parts = [part.partition("=") for part in token.split("~")]
        names = [name for name, _, _ in parts]
        if len(parts) < 3 or names[0] not in PATH_FIELDS or names[-1] not in ("Signature", "hmac"):
            raise _malformed("token must be <FullPath|PathGlobs|URLPrefix>~…~Expires=…~<Signature|hmac>", "token")
        if names[1:-1] != [name for name in FIELD_ORDER if name in names[1:-1]] or "Expires" not in names:
            raise _malformed(f"fields must appear once each in the order {'~'.join(FIELD_ORDER)}", "token")
        values = {name: value for name, _, value in parts}
        signed = self._signed_string(parts, checked.encoded, request)  # a signed header missing: `missing`
        key_name = self._check_seal(names[-1], values[names[-1]], signed)
        expires_at = edge.parse_epoch("Expires", values["Expires"])
        not_before = edge.parse_epoch("Starts", values["Starts"]) if "Starts" in values else None
        edge.check_window(
            expires_at=expires_at, not_before=not_before, now=now, leeway=self.leeway_seconds, exclusive=False
        )
        prefixes = self._check_path(names[0], values, checked, url)
        networks = self._networks(values["IPRanges"]) if "IPRanges" in values else []
        admitted = edge.check_client(networks, request.client_ip)
        return edge.make_grant(
            path_prefixes=edge.grant_prefixes(prefixes, checked),
            expires_at=expires_at,
            not_before=not_before,
            # Several ranges: the one this client is in. Never wider than the token (re-signing from this
            # grant, as a per-URL edge does, must not drop the IP condition).
            client_network=admitted,
            session_id=values.get("SessionID"),
            user_id=values.get("Data"),
            key_id=key_name,
        )

    def _signed_string(self, parts: list[tuple[str, str, str]], path: str, request: EdgeRequest) -> str:
        headers = {name.lower(): value for name, value in request.headers.items()}
        signed = []
        for name, equals, value in parts[:-1]:
            if name == "FullPath":
                if equals:
                    raise _malformed("FullPath carries no value in the token", "FullPath")
                signed.append(f"FullPath={path}")
            elif name == "Headers":
                names = value.split(",")
                if not all(names):
                    raise _malformed("Headers names an empty header", "Headers")
                if absent := [h for h in names if h.lower() not in headers]:
                    raise edge.missing(f"signed header {absent[0][:64]}")
                signed.append("Headers=" + ",".join(f"{h}={headers[h.lower()]}" for h in names))
            else:
                signed.append(f"{name}{equals}{value}")
        return "~".join(signed)

    def _check_seal(self, kind: str, value: str, signed: str) -> str:
        if (kind == "Signature") != (self.algorithm == "ed25519"):
            raise _malformed(
                f"a {self.algorithm} keyset expects {'Signature' if self.algorithm == 'ed25519' else 'hmac'}",
                kind,
            )
        if kind == "hmac":
            size = {"sha256": 64, "sha1": 40}[self.algorithm]
            if not re.fullmatch(f"[0-9a-f]{{{size}}}", value):
                raise _malformed(f"hmac is not {size} lowercase hex digits", "hmac")
            mac = bytes.fromhex(value)
            matches = [hmac.compare_digest(key.sign(signed.encode()), mac) for key in self.keys]
        else:
            signature = edge.b64_decode_canonical("Signature", value)
            matches = [key.verify(signed.encode(), signature) for key in self.keys]
        if not any(matches):
            raise TokenDenied(Denial.BAD_SIGNATURE, "token signature matches no key in the keyset", {"field": kind})
        return self.keys[matches.index(True)].name

    def _check_path(self, kind: str, values: dict[str, str], checked: CheckedPath, url: edge.RequestUrl) -> list[str]:
        if kind == "FullPath":
            return []  # the signed FullPath was the request path itself
        if kind == "PathGlobs":
            globs = google_paths.split_globs(values["PathGlobs"])
            if not any(google_paths.glob_matches(glob, checked.encoded) for glob in globs):
                raise TokenDenied(
                    Denial.ACL,
                    f"path {checked.decoded} matches no glob {values['PathGlobs'][:200]}",
                    {"path": checked.decoded, "globs": values["PathGlobs"][:200]},
                )
            directories = (edge.decoded_dir_prefix(d) for glob in globs if (d := google_paths.glob_directory(glob)))
            return [p for p in directories if p]
        prefix_url = edge.b64_decode_canonical("URLPrefix", values["URLPrefix"]).decode("utf-8", "replace")
        query = url.without([self.token_name]).partition("?")[2]
        matched = url.origin + checked.encoded + ("?" + query if query else "")
        if not google_paths.url_prefix_matches(prefix_url, url.without([self.token_name]), matched):
            raise TokenDenied(
                Denial.ACL,
                f"URL {matched[:200]} is outside URLPrefix {prefix_url[:200]}",
                {"path": checked.decoded, "url_prefix": prefix_url[:200]},
            )
        base = self.base_url or url.origin
        canonical_prefix = google_paths.canonical_url(prefix_url)
        found = (
            edge.decoded_dir_prefix(canonical_prefix[len(base) :]) if canonical_prefix.startswith(base + "/") else None
        )
        return [found] if found else []

    def _networks(self, encoded: str) -> list[IPNetwork]:
        text = edge.b64_decode_canonical("IPRanges", encoded).decode("ascii", "replace")
        try:
            return [ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",")]
        except ValueError:
            raise _malformed(f"IPRanges holds an invalid network: {text[:100]!r}", "IPRanges") from None


def from_config(
    table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT
) -> MediaCdnDualToken:
    """`[dialects.media_cdn_dualtoken]`: algorithm, keys = [{name, private_key*|public_key*}] (ed25519) or
    [{name, secret*}] (sha256/sha1), path_field, base_url (for url_prefix), delivery, token_name,
    leeway_seconds, cookie_domain."""
    known = (
        "algorithm",
        "keys",
        "path_field",
        "base_url",
        "delivery",
        "token_name",
        "leeway_seconds",
        "cookie_domain",
    )
    reader = TableReader(NAME, table, base_dir, known=known, environ=environ)
    algorithm = reader.choice("algorithm", ("ed25519", "sha256", "sha1"), "ed25519")
    path_field = reader.choice("path_field", ("path_globs", "url_prefix", "full_path"), "path_globs")
    base_url = reader.base_url() if "base_url" in table or path_field == "url_prefix" else None
    token_name = reader.text("token_name", TOKEN_NAME)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", token_name):
        raise reader.error("token_name", "must be letters, digits, '_', '.', '-'")
    return MediaCdnDualToken(
        keys=read_keys(reader, algorithm),
        algorithm=algorithm,
        path_field=path_field,
        base_url=base_url,
        delivery=reader.choice("delivery", ("query", "cookie"), "query"),
        token_name=token_name,
        leeway_seconds=reader.integer("leeway_seconds", 0, maximum=3600),
        cookie_domain=reader.optional_text("cookie_domain"),
    )
