"""Google signed requests, shared by Cloud CDN (HMAC-SHA1) and Media CDN (Ed25519): one layout, two keys.

Signed URL:         U = <url>{?|&}Expires=<exp>&KeyName=<name>; sign U; send U&Signature=<sig>
Signed URL prefix:  P = URLPrefix=<b64url(prefix)>&Expires=<exp>&KeyName=<name>; sign P;
                    send <url>{?|&}P&Signature=<sig>; any URL starting with the prefix is authorised
Signed cookie:      <cookie>=URLPrefix=<b64url(prefix)>:Expires=<exp>:KeyName=<name>:Signature=<sig>;
                    sign everything before ':Signature='
URLPrefix is padded base64url; the Signature padding differs per product (see the subclasses).
Spec: https://cloud.google.com/cdn/docs/using-signed-urls, https://cloud.google.com/media-cdn/docs/signed-requests
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import Denial, TokenDenied
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
from gateway.tokens.grant import Grant

KEY_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
URL_PREFIX, EXPIRES, KEY_NAME_PARAM, SIGNATURE = "URLPrefix", "Expires", "KeyName", "Signature"
SIGNED_PARAMS = (URL_PREFIX, EXPIRES, KEY_NAME_PARAM, SIGNATURE)


def b64url(data: bytes, *, padded: bool) -> str:
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if padded else text.rstrip("=")


@dataclass(frozen=True, slots=True)
class NamedKey:
    """A key known to the edge by name: an HMAC secret (`sha1`/`sha256`) or an Ed25519 key pair."""

    name: str
    algorithm: str  # "sha1" | "sha256" | "ed25519"
    secret: bytes | None = field(default=None, repr=False)
    public: ed25519.Ed25519PublicKey | None = field(default=None, repr=False)
    private: ed25519.Ed25519PrivateKey | None = field(default=None, repr=False)

    @property
    def can_sign(self) -> bool:
        return self.secret is not None or self.private is not None

    def sign(self, message: bytes) -> bytes:
        if self.secret is not None:
            return hmac.new(self.secret, message, getattr(hashlib, self.algorithm)).digest()
        if self.private is None:
            raise ValueError(f"key {self.name!r} is a public key and cannot sign")
        return self.private.sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.secret is not None:
            return hmac.compare_digest(self.sign(message), signature)
        assert self.public is not None
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def read_keys(reader: TableReader, algorithm: str) -> tuple[NamedKey, ...]:
    """`keys = [{name, secret*}]` (HMAC) or `[{name, private_key* | public_key*}]` (Ed25519)."""
    kinds = ("secret",) if algorithm != "ed25519" else ("private_key", "public_key")
    known = ("name", *(kind + suffix for kind in kinds for suffix in ("", "_file", "_env")))
    keys: list[NamedKey] = []
    for entry in reader.tables("keys", known=known):
        name = entry.text("name")
        if not KEY_NAME.fullmatch(name):
            raise entry.error("name", "key names are 1-63 letters, digits, '-' or '_'")
        if algorithm != "ed25519":
            keys.append(NamedKey(name, algorithm, secret=entry.b64_secret("secret", min_bytes=16)))
        elif entry.has_secret("private_key"):
            private = _ed25519_private(entry)
            keys.append(NamedKey(name, algorithm, public=private.public_key(), private=private))
        else:
            keys.append(NamedKey(name, algorithm, public=_ed25519_public(entry)))
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise reader.error("keys", f"duplicate key names {names}")
    return tuple(keys)


def _ed25519_private(entry: TableReader) -> ed25519.Ed25519PrivateKey:
    text = entry.secret("private_key").strip()
    if text.startswith(("-----", "{")):
        key = entry.private_key("private_key")
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise entry.error("private_key", "must be an Ed25519 key")
        return key
    seed = entry.b64_secret("private_key", min_bytes=32)
    if len(seed) != 32:
        raise entry.error("private_key", "an Ed25519 seed is 32 bytes (base64url)")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def _ed25519_public(entry: TableReader) -> ed25519.Ed25519PublicKey:
    text = entry.secret("public_key").strip()
    if text.startswith(("-----", "{")):
        key = entry.public_key("public_key")
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise entry.error("public_key", "must be an Ed25519 key")
        return key
    raw = entry.b64_secret("public_key", min_bytes=32)
    if len(raw) != 32:
        raise entry.error("public_key", "an Ed25519 public key is 32 bytes (base64url)")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def prefix_policy(prefix_url: str, expires_at: int, key_name: str, separator: str = "&") -> str:
    """`URLPrefix=…&Expires=…&KeyName=…` (separator ':' for cookies): the bytes a prefix signature covers."""
    encoded = b64url(prefix_url.encode(), padded=True)
    return separator.join((f"{URL_PREFIX}={encoded}", f"{EXPIRES}={expires_at}", f"{KEY_NAME_PARAM}={key_name}"))


@dataclass(frozen=True)
class GoogleSignedRequests(DialectDefaults):
    """Signed URL / URL prefix / cookie, bound to a host (`base_url`) and a keyset (first key signs)."""

    COOKIE_NAME: ClassVar[str]
    URL_SIGNATURE_PADDED: ClassVar[bool] = True
    COOKIE_SIGNATURE_PADDED: ClassVar[bool] = True

    base_url: str
    keys: tuple[NamedKey, ...] = field(repr=False)
    form: str = "url_prefix"  # "url_prefix" | "url" | "cookie"
    ip_binding: str = "strict"
    not_before_binding: str = "strict"
    leeway_seconds: int = 0
    cookie_domain: str | None = None
    name: str = ""

    @property
    def prefix_signing(self) -> bool:
        return self.form != "url"

    @property
    def query_params(self) -> tuple[str, ...]:
        return SIGNED_PARAMS  # every form: `verify` reads a signed URL or URL prefix whatever `form` says

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)

    @property
    def signing_key(self) -> NamedKey:
        for key in self.keys:
            if key.can_sign:
                return key
        raise ValueError(f"{self.name}: no key that can sign")

    def _check_grant(self, grant: Grant) -> None:
        if grant.client_network is not None and self.ip_binding != "best-effort":
            raise edge.UnsupportedGrant(f'{self.name}: signed requests carry no IP (ip_binding = "strict")')
        edge.bindable_not_before(grant, dialect=self.name, not_before_binding=self.not_before_binding)

    def _prefix_url(self, grant: Grant, resources: tuple[str, ...] = ()) -> str:
        """`base_url` + the grant's one prefix, or the one custom resource (a path or a URL, no wildcard)."""
        if resources:
            if len(resources) != 1 or "*" in resources[0]:
                raise edge.UnsupportedGrant(f"{self.name}: a custom resource is one URLPrefix, without wildcards")
            resource = resources[0]
            return google_paths.canonical_url(resource if "://" in resource else self.base_url + resource)
        if len(grant.path_prefixes) != 1:
            raise edge.UnsupportedGrant(f"{self.name}: one URLPrefix per signature; grant has {grant.path_prefixes}")
        return self.base_url + edge.encoded_prefix(grant.path_prefixes[0])

    def _canonical_url(self, grant: Grant, url: str) -> str:
        if not url.startswith(self.base_url + "/"):
            raise ValueError(f"{self.name}: URL must start with {self.base_url}/")
        checked = edge.url_in_grant(grant, url)
        query = url.partition("?")[2]
        return self.base_url + checked.encoded + ("?" + query if query else "")

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        """`options.resources`: one custom URLPrefix; signed requests carry no start time, method or header."""
        options.refuse_unsupported(self.name, supported=frozenset({"resources"}))
        if options.resources and self.form not in ("url_prefix", "cookie"):
            raise edge.UnsupportedGrant(f"{self.name}: form {self.form!r} signs one URL, not a custom resource")
        self._check_grant(grant)
        key, expires = self.signing_key, grant.expires_at
        target = self._canonical_url(grant, url) if url is not None else None
        separator = "&" if target is not None and "?" in target else "?"
        if self.form == "url":
            if target is None:
                raise ValueError(f"{self.name}: a signed URL covers one URL; pass url=")
            signed = f"{target}{separator}{EXPIRES}={expires}&{KEY_NAME_PARAM}={key.name}"
            signature = b64url(key.sign(signed.encode()), padded=self.URL_SIGNATURE_PADDED)
            url_params = ((EXPIRES, str(expires)), (KEY_NAME_PARAM, key.name), (SIGNATURE, signature))
            return Credentials(query=url_params, url=f"{signed}&{SIGNATURE}={signature}", token=signature)
        prefix_url = self._prefix_url(grant, options.resources)
        if self.form == "cookie":
            policy = prefix_policy(prefix_url, expires, key.name, ":")
            signature = b64url(key.sign(policy.encode()), padded=self.COOKIE_SIGNATURE_PADDED)
            value = f"{policy}:{SIGNATURE}={signature}"
            path = edge.encoded_prefix(grant.path_prefixes[0])
            cookie = Cookie(self.COOKIE_NAME, value, path=path, domain=self.cookie_domain)
            return Credentials(cookies=(cookie,), url=target, token=value)
        policy = prefix_policy(prefix_url, expires, key.name)
        signature = b64url(key.sign(policy.encode()), padded=self.URL_SIGNATURE_PADDED)
        query = (
            (URL_PREFIX, b64url(prefix_url.encode(), padded=True)),
            (EXPIRES, str(expires)),
            (KEY_NAME_PARAM, key.name),
            (SIGNATURE, signature),
        )
        full = f"{target}{separator}{policy}&{SIGNATURE}={signature}" if target is not None else None
        return Credentials(query=query, url=full, token=f"{policy}&{SIGNATURE}={signature}")

    # -- verifying (what the edge does) ---------------------------------------------------------------

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        pairs = url.pairs()
        if edge.single_param(pairs, SIGNATURE) is not None:
            if edge.single_param(pairs, URL_PREFIX) is not None:
                values = {name: edge.single_param(pairs, name) or "" for name in SIGNED_PARAMS}
                signed = "&".join(f"{name}={values[name]}" for name in SIGNED_PARAMS[:3])
            else:
                values = {name: edge.single_param(pairs, name) or "" for name in SIGNED_PARAMS[1:]}
                if pairs[-1][0] != SIGNATURE or f"&{SIGNATURE}=" not in request.url:
                    raise TokenDenied(Denial.MALFORMED, "Signature must be the last parameter", {"field": SIGNATURE})
                signed = request.url[: request.url.rindex(f"&{SIGNATURE}=")]
        elif self.COOKIE_NAME in request.cookies:
            values = self._cookie_values(request.cookies[self.COOKIE_NAME])
            signed = ":".join(f"{name}={values[name]}" for name in SIGNED_PARAMS[:3])
        else:
            raise edge.missing(f"{SIGNATURE} parameter or {self.COOKIE_NAME} cookie")
        return self._check(request, url, values, signed, now)

    def _cookie_values(self, cookie: str) -> dict[str, str]:
        parts = [part.partition("=") for part in cookie.split(":")]
        if [name for name, _, _ in parts] != list(SIGNED_PARAMS) or len(cookie) > edge.MAX_TOKEN_CHARS:
            raise TokenDenied(
                Denial.MALFORMED,
                f"{self.COOKIE_NAME} must be {':'.join(SIGNED_PARAMS)}",
                {"field": self.COOKIE_NAME},
            )
        return {name: value for name, _, value in parts}

    def _check(
        self, request: EdgeRequest, url: edge.RequestUrl, values: dict[str, str], signed: str, now: float
    ) -> Grant:
        checked = edge.check_path(url.raw_path)  # before anything else: '..' & co. are refused as acl
        name = values.get(KEY_NAME_PARAM, "")
        if not values.get(EXPIRES) or not name:
            raise edge.missing(f"{EXPIRES}/{KEY_NAME_PARAM}")
        key = next((k for k in self.keys if k.name == name), None)
        if key is None:
            raise TokenDenied(Denial.UNKNOWN_KEY, f"KeyName {name[:64]!r} is not in the keyset", {"kid": name[:64]})
        # Padding is accepted either way (Google's own samples disagree); the bits must still be canonical.
        signature = edge.b64_decode_canonical(SIGNATURE, values[SIGNATURE])
        if not key.verify(signed.encode(), signature):
            raise TokenDenied(Denial.BAD_SIGNATURE, f"signature does not match key {name!r}", {"kid": name})
        expires_at = edge.parse_epoch(EXPIRES, values[EXPIRES])
        edge.check_window(expires_at=expires_at, not_before=None, now=now, leeway=self.leeway_seconds, exclusive=False)
        prefixes: list[str] = []
        if URL_PREFIX in values:
            prefix_url = edge.b64_decode_canonical(URL_PREFIX, values[URL_PREFIX], padded=True).decode(
                "utf-8", "replace"
            )
            query = url.without(SIGNED_PARAMS).partition("?")[2]
            matched = url.origin + checked.encoded + ("?" + query if query else "")
            if not google_paths.url_prefix_matches(prefix_url, url.without(SIGNED_PARAMS), matched):
                raise TokenDenied(
                    Denial.ACL,
                    f"URL {matched[:200]} is outside URLPrefix {prefix_url[:200]}",
                    {"path": checked.decoded, "url_prefix": prefix_url[:200]},
                )
            canonical_prefix = google_paths.canonical_url(prefix_url)
            if canonical_prefix.startswith(self.base_url + "/") and (
                p := edge.decoded_dir_prefix(canonical_prefix[len(self.base_url) :])
            ):
                prefixes.append(p)
        return edge.make_grant(path_prefixes=edge.grant_prefixes(prefixes, checked), expires_at=expires_at, key_id=name)


def read_common(reader: TableReader) -> dict[str, object]:
    """The settings every Google signed-request dialect shares."""
    return {
        "base_url": reader.base_url(),
        "ip_binding": reader.ip_binding(),
        "not_before_binding": reader.choice("not_before_binding", ("strict", "best-effort"), "strict"),
        "leeway_seconds": reader.integer("leeway_seconds", 0, maximum=3600),
        "cookie_domain": reader.optional_text("cookie_domain"),
    }


COMMON_FIELDS = (
    "base_url",
    "keys",
    "form",
    "ip_binding",
    "not_before_binding",
    "leeway_seconds",
    "cookie_domain",
)
