"""Google Media CDN signed requests (Ed25519): signed URL, URL prefix, `Edge-Cache-Cookie`, path component.

What is signed (layout in `google_signed`): Ed25519 over the same bytes as Cloud CDN, with the key's name
from the route's EdgeCacheKeyset. The URL Signature is padded base64url (as Google's vectors), the cookie's
is unpadded.
- form "url_prefix" (default) / "cookie": one signature per grant over `URLPrefix=<b64url(base_url+prefix)>…`.
- form "url": per URL.
- form "path" (prefix signing; relative HLS/DASH URLs inherit it): the path component
  `edge-cache-token=Expires=<exp>&KeyName=<name>&Signature=<sig>` placed right after the prefix, signed over
  `<base_url><prefix>edge-cache-token=Expires=<exp>&KeyName=<name>`; the signature is unpadded, as Google's
  `sign_path_component` writes it (an older Google test expected it padded: verifying accepts both).
A Grant loses not_before, client network (unless the `*_binding = "best-effort"` settings say to drop them,
signing refuses), session/user ids and scope. Key rotation: keys are looked up by KeyName.
Spec: https://cloud.google.com/media-cdn/docs/signed-requests; reference vectors: python-docs-samples
`media_cdn/snippets_test.py` and `media_cdn/dualtoken_test.py::test_sign_path_component`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gateway.config_schema import NO_ENVIRONMENT
from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects.base import NO_OPTIONS, Credentials, EdgePath, EdgeRequest, SigningOptions
from gateway.tokens.dialects.support import cdn_request as edge
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.dialects.support.google_signed import (
    COMMON_FIELDS,
    EXPIRES,
    KEY_NAME_PARAM,
    SIGNATURE,
    GoogleSignedRequests,
    b64url,
    read_common,
    read_keys,
)
from gateway.tokens.grant import Grant

NAME = "media_cdn"
COOKIE_NAME = "Edge-Cache-Cookie"
PATH_TOKEN = "edge-cache-token="
FORMS = ("url_prefix", "cookie", "url", "path")


def path_component_policy(prefix_url: str, expires_at: int, key_name: str) -> str:
    return f"{prefix_url}{PATH_TOKEN}{EXPIRES}={expires_at}&{KEY_NAME_PARAM}={key_name}"


@dataclass(frozen=True)
class MediaCdn(GoogleSignedRequests):
    COOKIE_NAME: ClassVar[str] = COOKIE_NAME
    URL_SIGNATURE_PADDED: ClassVar[bool] = True
    COOKIE_SIGNATURE_PADDED: ClassVar[bool] = False

    name: str = NAME

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        if self.form != "path":
            return super().sign(grant, url=url, options=options)
        options.refuse_unsupported(NAME)
        self._check_grant(grant)
        key, prefix_url = self.signing_key, self._prefix_url(grant)
        policy = path_component_policy(prefix_url, grant.expires_at, key.name)
        signature = b64url(key.sign(policy.encode()), padded=False)  # as Google's sign_path_component
        segment = policy[len(prefix_url) :] + f"&{SIGNATURE}={signature}"
        full = None
        if url is not None:
            target = self._canonical_url(grant, url)
            full = f"{prefix_url}{segment}/{target[len(prefix_url) :]}"
        return Credentials(path_token=segment, url=full, token=segment)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        """The path component form: `<prefix>edge-cache-token=…/<rest>` names `<prefix><rest>`."""
        before, marker, after = raw_path.partition("/" + PATH_TOKEN)
        if self.form != "path" or not marker:
            return EdgePath(raw_path)
        prefix = before + "/"
        return EdgePath(prefix + after.partition("/")[2], mapped=prefix)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        marker = "/" + PATH_TOKEN
        if self.form != "path" or marker not in url.raw_path:
            return super().verify(request, now=now)
        before, _, after = url.raw_path.partition(marker)
        segment, slash, rest = after.partition("/")
        fields = [part.partition("=") for part in segment.split("&")]
        if [name for name, _, _ in fields] != [EXPIRES, KEY_NAME_PARAM, SIGNATURE] or not slash:
            raise TokenDenied(
                Denial.MALFORMED,
                "path token must be edge-cache-token=Expires=…&KeyName=…&Signature=…/",
                {"field": "edge-cache-token"},
            )
        values = {name: value for name, _, value in fields}
        prefix_raw = before + "/"
        signed = url.origin + prefix_raw + PATH_TOKEN + segment.rpartition(f"&{SIGNATURE}=")[0]
        inner = edge.RequestUrl(url.scheme, url.netloc, prefix_raw + rest, url.raw_query)
        grant = self._check(request, inner, values, signed, now)
        prefix = edge.decoded_dir_prefix(prefix_raw)
        if prefix is None:
            raise TokenDenied(Denial.ACL, "path token follows a non-canonical prefix", {"path": prefix_raw[:200]})
        checked = edge.check_path(inner.raw_path)
        return edge.make_grant(
            path_prefixes=edge.grant_prefixes([prefix], checked),
            expires_at=grant.expires_at,
            key_id=grant.key_id,
        )


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> MediaCdn:
    """`[dialects.media_cdn]`: base_url, keys = [{name, private_key* (32-byte seed b64url, PEM or JWK) |
    public_key*}], form ("url_prefix" | "cookie" | "url" | "path"), ip_binding, not_before_binding,
    leeway_seconds, cookie_domain."""
    reader = TableReader(NAME, table, base_dir, known=COMMON_FIELDS, environ=environ)
    return MediaCdn(
        keys=read_keys(reader, "ed25519"),
        form=reader.choice("form", FORMS, "url_prefix"),
        **read_common(reader),  # type: ignore[arg-type]
    )
