"""Amazon CloudFront signed URLs and signed cookies (canned and custom policy).

What is signed: a JSON policy statement (see `cloudfront_policy`), with RSA PKCS#1 v1.5 over SHA-1 (the
default, no extra parameter) or SHA-256 (`Hash-Algorithm=SHA256`), or ECDSA P-256/SHA-256 (DER signature,
always with `Hash-Algorithm=SHA256`).
- custom policy (prefix signing, the HLS/DASH form): Resource `<base_url><prefix>*` (or the one custom
  pattern of `SigningOptions.resources`, `*`/`?` wildcards, a path or a URL), DateLessThan = expires_at,
  DateGreaterThan = not_before, IpAddress = the grant's IPv4 network. ONE signature per grant. Resources are
  the URL percent-encoded as the viewer sends it; the edge matches the request as sent or canonical.
- canned policy (per URL): Resource = the exact URL, DateLessThan only; the edge rebuilds the policy.
Where it goes: query `Policy|Expires`, `Signature`, `Key-Pair-Id`[, `Hash-Algorithm`] appended in that order
(botocore's order), or cookies `CloudFront-Policy|CloudFront-Expires`, `CloudFront-Signature`,
`CloudFront-Key-Pair-Id`[, `CloudFront-Hash-Algorithm`]. Values are CloudFront-base64 (`-`, `_`, `~`).
IPv6: CloudFront's `AWS:SourceIp` is IPv4-only, so an IPv6 grant network raises `UnsupportedGrant` unless
`ip_binding = "best-effort"` (then the token is signed without an IP condition).
Spec: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-signed-urls.html;
reference: botocore `CloudFrontSigner` (byte-identical for SHA-1, see tests/tokens/dialects/test_cloudfront.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config_schema import NO_ENVIRONMENT
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
from gateway.tokens.dialects.support.cdn_config import TableReader
from gateway.tokens.dialects.support.cloudfront_policy import (
    HASH_SHA1,
    HASH_SHA256,
    CloudFrontKey,
    canned_policy,
    cf_b64decode,
    cf_b64encode,
    custom_policy,
    parse_policy,
)
from gateway.tokens.grant import Grant

NAME = "cloudfront"
POLICY, EXPIRES, SIGNATURE, KEY_PAIR_ID, HASH_ALGORITHM = (
    "Policy",
    "Expires",
    "Signature",
    "Key-Pair-Id",
    "Hash-Algorithm",
)
QUERY_PARAMS = (POLICY, EXPIRES, SIGNATURE, KEY_PAIR_ID, HASH_ALGORITHM)
COOKIE_PREFIX = "CloudFront-"
_RESOURCE_URL = re.compile(r"https?://|http\*://|\*://")
KEY_PAIR_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class CloudFront(DialectDefaults):
    """CloudFront bound to a distribution (`base_url`) and its key group (newest signing key first)."""

    base_url: str
    keys: tuple[CloudFrontKey, ...] = field(repr=False)
    policy: str = "custom"  # "custom" (prefix, wildcard) | "canned" (one exact URL)
    delivery: str = "query"  # "query" | "cookie"
    hash_algorithm: str = HASH_SHA1  # for RSA keys; ECDSA keys always use SHA256
    ip_binding: str = "strict"
    leeway_seconds: int = 0
    cookie_domain: str | None = None
    name: str = NAME

    @property
    def prefix_signing(self) -> bool:
        return self.policy == "custom"

    @property
    def query_params(self) -> tuple[str, ...]:
        return QUERY_PARAMS  # canned and custom alike: `verify` accepts either form, whatever `policy` says

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)  # CloudFront's credentials ride in the query or in cookies, never in the path

    @property
    def signing_key(self) -> CloudFrontKey:
        for key in self.keys:
            if key.private_key is not None:
                return key
        raise ValueError("cloudfront: no key with a private key to sign with")

    def _hash_for(self, key: CloudFrontKey) -> str:
        return HASH_SHA256 if key.is_ecdsa else self.hash_algorithm

    # -- signing ---------------------------------------------------------------------------------------

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        # A custom Resource (`options.resources`, one: a policy has one statement) replaces the grant's prefix.
        options.refuse_unsupported(NAME, supported=frozenset({"resources"} if self.policy == "custom" else ()))
        key = self.signing_key
        hash_name = self._hash_for(key)
        if self.policy == "custom":
            policy, first = self._custom(grant, options.resources), POLICY
        else:
            url = self._canonical_url(grant, url)
            policy, first = canned_policy(url, grant.expires_at), EXPIRES
        signed = [
            (first, cf_b64encode(policy) if first == POLICY else str(grant.expires_at)),
            (SIGNATURE, cf_b64encode(key.sign(policy, hash_name))),
            (KEY_PAIR_ID, key.key_pair_id),
        ]
        if hash_name != HASH_SHA1:
            signed.append((HASH_ALGORITHM, hash_name))
        if url is not None and not options.resources:
            edge.url_in_grant(grant, url)
        elif url is not None and not edge.glob_match(self._resource(options.resources), url):
            raise ValueError(f"cloudfront: URL {url[:200]} is outside the Resource {options.resources[0][:200]}")
        full_url = edge.with_query(url, signed) if url is not None else None
        if self.delivery == "cookie":
            custom = self.policy == "custom" and not options.resources
            path = edge.encoded_prefix(grant.path_prefixes[0]) if custom else "/"
            cookies = tuple(
                Cookie(COOKIE_PREFIX + name, value, path=path, domain=self.cookie_domain) for name, value in signed
            )
            return Credentials(cookies=cookies, url=url)
        return Credentials(query=tuple(signed), url=full_url)

    def _custom(self, grant: Grant, resources: tuple[str, ...]) -> bytes:
        network = edge.bindable_network(grant, dialect=NAME, ip_binding=self.ip_binding, ipv4_only=True)
        if resources:
            return custom_policy(self._resource(resources), grant.expires_at, grant.not_before, network)
        if len(grant.path_prefixes) != 1:
            raise edge.UnsupportedGrant(
                f"cloudfront: one resource per policy; the grant has {len(grant.path_prefixes)} prefixes"
            )
        path = edge.encoded_prefix(grant.path_prefixes[0])
        if "*" in path:
            raise edge.UnsupportedGrant(f"cloudfront: prefix {path!r} contains '*', a policy wildcard")
        return custom_policy(self.base_url + path + "*", grant.expires_at, grant.not_before, network)

    def _resource(self, resources: tuple[str, ...]) -> str:
        """A custom Resource: a URL (`http*://` allowed) or a path on `base_url`, with `*` and `?` wildcards,
        percent-encoded as the viewer's request carries it (no space, quote or non-ASCII reaches the JSON)."""
        if len(resources) != 1:
            raise edge.UnsupportedGrant(f"cloudfront: a policy has one Resource; {len(resources)} given")
        pattern = resources[0]
        if pattern.startswith("/"):
            pattern = self.base_url + pattern
        elif not _RESOURCE_URL.match(pattern):
            raise edge.UnsupportedGrant(f"cloudfront: a Resource is a URL or a path, not {pattern[:200]!r}")
        try:
            return edge.encode_glob(pattern)
        except edge.UnsupportedGrant as refused:
            raise edge.UnsupportedGrant(f"cloudfront: {refused.detail}") from None

    def _canonical_url(self, grant: Grant, url: str | None) -> str:
        if url is None:
            raise ValueError("cloudfront: a canned policy signs one URL; pass url=")
        if not url.startswith(self.base_url + "/"):
            raise ValueError(f"cloudfront: URL must start with {self.base_url}/")
        checked = edge.url_in_grant(grant, url)
        if grant.client_network is not None and self.ip_binding != "best-effort":
            raise edge.UnsupportedGrant('cloudfront: a canned policy has no IP condition (ip_binding = "strict")')
        if grant.not_before:
            raise edge.UnsupportedGrant("cloudfront: a canned policy has no start time; use policy = 'custom'")
        query = url.partition("?")[2]
        canonical = self.base_url + checked.encoded + ("?" + query if query else "")
        if any(char in canonical for char in '"\\*') or not canonical.isascii():
            raise ValueError("cloudfront: URL must be percent-encoded ASCII without '*', '\"' or '\\'")
        return canonical

    # -- verifying (what the CloudFront edge does) ----------------------------------------------------

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        url = edge.parse_request_url(request.url)
        checked = edge.check_path(url.raw_path)  # before anything else: '..' & co. are refused as acl
        values = self._credentials(url, request.cookies)
        key_id = values.get(KEY_PAIR_ID)
        if not values.get(SIGNATURE) or not key_id:
            raise edge.missing("CloudFront Signature/Key-Pair-Id")
        key = next((k for k in self.keys if k.key_pair_id == key_id), None)
        if key is None:
            raise TokenDenied(Denial.UNKNOWN_KEY, f"Key-Pair-Id {key_id[:40]!r} is not trusted", {"kid": key_id[:40]})
        hash_name = values.get(HASH_ALGORITHM) or HASH_SHA1
        if hash_name not in (HASH_SHA1, HASH_SHA256):
            raise TokenDenied(Denial.MALFORMED, f"unknown Hash-Algorithm {hash_name[:20]!r}", {"field": HASH_ALGORITHM})
        if key.is_ecdsa and hash_name != HASH_SHA256:
            raise TokenDenied(Denial.BAD_SIGNATURE, "ECDSA keys sign with SHA256 only", {"kid": key_id})
        signature = cf_b64decode(SIGNATURE, values[SIGNATURE])
        resource_url = url.without(QUERY_PARAMS)
        if values.get(POLICY) and values.get(EXPIRES):
            raise TokenDenied(Denial.MALFORMED, "both Policy and Expires given", {"field": POLICY})
        if values.get(POLICY):
            policy = cf_b64decode(POLICY, values[POLICY])
        elif values.get(EXPIRES):
            policy = canned_policy(resource_url, edge.parse_epoch(EXPIRES, values[EXPIRES]))
        else:
            raise edge.missing("CloudFront Policy or Expires")
        if not key.verify(policy, signature, hash_name):
            raise TokenDenied(Denial.BAD_SIGNATURE, f"signature does not match key {key_id!r}", {"kid": key_id})
        statement = parse_policy(policy)
        edge.check_window(
            expires_at=statement.expires_at,
            not_before=statement.not_before,
            now=now,
            leeway=self.leeway_seconds,
            exclusive=True,
        )
        query = resource_url.partition("?")[2]
        # The URL as CloudFront sees it (the request's own encoding), or in the canonical encoding the gateway
        # signs: one resource, two spellings of its path.
        seen = [url.origin + path + ("?" + query if query else "") for path in (url.raw_path, checked.encoded)]
        if not any(edge.glob_match(statement.resource, candidate) for candidate in seen):
            raise TokenDenied(
                Denial.ACL,
                f"URL {seen[0][:200]} does not match the policy resource {statement.resource[:200]}",
                {"path": checked.decoded, "resource": statement.resource[:200]},
            )
        edge.check_client([statement.network] if statement.network else [], request.client_ip)
        return edge.make_grant(
            path_prefixes=edge.grant_prefixes(self._resource_prefixes(statement.resource), checked),
            expires_at=statement.expires_at,
            not_before=statement.not_before or None,
            client_network=statement.network,
            key_id=key_id,
        )

    def _credentials(self, url: edge.RequestUrl, cookies: Mapping[str, str]) -> dict[str, str]:
        pairs = url.pairs()
        if edge.single_param(pairs, SIGNATURE) is not None:
            found = {name: edge.single_param(pairs, name) for name in QUERY_PARAMS}
            found = {name: unquote(value) if value else value for name, value in found.items()}
        else:
            found = {name: cookies.get(COOKIE_PREFIX + name) for name in QUERY_PARAMS}
        return {name: value for name, value in found.items() if value is not None}

    def _resource_prefixes(self, resource: str) -> list[str]:
        start = self.base_url + "/"
        if not resource.startswith(start) or not resource.endswith("/*"):
            return []
        prefix = edge.decoded_glob_prefix(edge.decoded_glob(resource[len(self.base_url) :]))
        return [prefix] if prefix else []


def _key(entry: TableReader) -> CloudFrontKey:
    key_id = entry.text("id")
    if not set(key_id) <= KEY_PAIR_ID_CHARS or len(key_id) > 128:
        raise entry.error("id", "Key-Pair-Id must be letters, digits or '_' (at most 128)")
    if entry.has_secret("private_key"):
        private = entry.private_key("private_key")
        if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise entry.error("private_key", "CloudFront keys are RSA or ECDSA P-256")
        return CloudFrontKey(key_id, private.public_key(), private)
    public = entry.public_key("public_key")
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise entry.error("public_key", "CloudFront keys are RSA or ECDSA P-256")
    return CloudFrontKey(key_id, public)


def _check_key(entry: TableReader, key: CloudFrontKey) -> None:
    if isinstance(key.public_key, ec.EllipticCurvePublicKey) and key.public_key.curve.name != "secp256r1":
        raise entry.error("private_key", "ECDSA keys must be on P-256")
    if isinstance(key.public_key, rsa.RSAPublicKey) and key.public_key.key_size < 1024:
        raise entry.error("private_key", "RSA keys must have at least 1024 bits (CloudFront key groups use 2048)")


KEY_FIELDS = (
    "id",
    *(f"{kind}{suffix}" for kind in ("private_key", "public_key") for suffix in ("", "_file", "_env")),
)


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> CloudFront:
    """`[dialects.cloudfront]`: base_url, keys = [{id, private_key|_file|_env or public_key...}], policy,
    delivery, hash_algorithm, ip_binding, leeway_seconds, cookie_domain."""
    known = (
        "base_url",
        "keys",
        "policy",
        "delivery",
        "hash_algorithm",
        "ip_binding",
        "leeway_seconds",
        "cookie_domain",
    )
    reader = TableReader(NAME, table, base_dir, known=known, environ=environ)
    settings = {
        "base_url": reader.base_url(),
        "policy": reader.choice("policy", ("custom", "canned"), "custom"),
        "delivery": reader.choice("delivery", ("query", "cookie"), "query"),
        "hash_algorithm": reader.choice("hash_algorithm", (HASH_SHA1, HASH_SHA256), HASH_SHA1),
        "ip_binding": reader.ip_binding(),
        "leeway_seconds": reader.integer("leeway_seconds", 0, maximum=3600),
        "cookie_domain": reader.optional_text("cookie_domain"),
    }
    keys = []
    for entry in reader.tables("keys", known=KEY_FIELDS):
        key = _key(entry)
        _check_key(entry, key)
        keys.append(key)
    ids = [key.key_pair_id for key in keys]
    if len(set(ids)) != len(ids):
        raise reader.error("keys", f"duplicate key ids {ids}")
    return CloudFront(keys=tuple(keys), **settings)  # type: ignore[arg-type]
