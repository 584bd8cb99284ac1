"""Google Cloud CDN signed URLs, signed URL prefixes and signed cookies (HMAC-SHA1).

What is signed (layout in `google_signed`): HMAC-SHA1(16-byte key, bytes) with the key's *name* in the
request; the Signature is padded base64url.
- form "url_prefix" (prefix signing, default):
  `URLPrefix=<b64url(base_url + prefix)>&Expires=<exp>&KeyName=<name>`, then `&Signature=`;
  the four parameters go on every URL (the gateway's rewriter appends them). ONE signature per grant.
- form "cookie" (prefix signing): `Cloud-CDN-Cookie: URLPrefix=…:Expires=…:KeyName=…:Signature=…`.
- form "url" (per URL): `<url>{?|&}Expires=<exp>&KeyName=<name>`, then `&Signature=<sig>` last.
A Grant loses: not_before (no start time: `UnsupportedGrant` unless `not_before_binding = "best-effort"`),
the client network (no IP binding: `UnsupportedGrant` unless `ip_binding = "best-effort"`), session/user ids
and scope. Key rotation: add the new key to the backend's keyset and first in `keys`; old names still verify.
Spec: https://cloud.google.com/cdn/docs/using-signed-urls, https://cloud.google.com/cdn/docs/using-signed-cookies;
reference vectors: GoogleCloudPlatform/python-docs-samples `cdn/snippets_test.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gateway.config_schema import NO_ENVIRONMENT
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.dialects.support.google_signed import COMMON_FIELDS, GoogleSignedRequests, read_common, read_keys

NAME = "cloud_cdn"
COOKIE_NAME = "Cloud-CDN-Cookie"


@dataclass(frozen=True)
class CloudCdn(GoogleSignedRequests):
    COOKIE_NAME: ClassVar[str] = COOKIE_NAME
    URL_SIGNATURE_PADDED: ClassVar[bool] = True
    COOKIE_SIGNATURE_PADDED: ClassVar[bool] = True

    name: str = NAME


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> CloudCdn:
    """`[dialects.cloud_cdn]`: base_url, keys = [{name, secret|secret_file|secret_env}] (16-byte base64url),
    form ("url_prefix" | "cookie" | "url"), ip_binding, not_before_binding, leeway_seconds, cookie_domain."""
    reader = TableReader(NAME, table, base_dir, known=COMMON_FIELDS, environ=environ)
    return CloudCdn(
        keys=read_keys(reader, "sha1"),
        form=reader.choice("form", ("url_prefix", "cookie", "url"), "url_prefix"),
        **read_common(reader),  # type: ignore[arg-type]
    )
