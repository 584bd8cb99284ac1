"""What the audit needs to know of each configured CDN dialect, read off its built object by name.

The `Dialect` protocol says how to sign and verify; hardening questions (which hash, does IP binding
survive, how much leeway) are the vendor's, so they live here, one small reader per dialect module, keyed by
the registry's names (`gateway/tokens/dialects/__init__.py`). A dialect added there without a reader here
is reported as unknown to the audit (a warning), never silently passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from gateway.audit.findings import Status
from gateway.tokens.dialects.base import Dialect


@dataclass(frozen=True, slots=True)
class DialectFacts:
    """algorithm: the signature as the vendor names it; `algorithm_status`/`algorithm_fix` judge it.
    ip: what the token can bind to: "any" (IPv4 and IPv6 networks), "ipv4" (CloudFront's policy), "host" (a
    single address), "none"; `drops_ip`: a setting tells signing to leave a binding out instead of refusing."""

    algorithm: str
    algorithm_status: Status
    algorithm_fix: str = ""
    algorithm_setting: str = "algorithm"
    ip: str = "any"
    drops_ip: bool = False
    ip_setting: str = "ip_binding"
    leeway_seconds: float = 0.0
    key_count: int = 1
    cookie_domain: str | None = None
    renewal_seconds: int | None = None  # CAT's catr: how long a renewed token lives


def _akamai(d: Any) -> DialectFacts:
    good = d.algorithm == "sha256"
    return DialectFacts(
        f"HMAC-{d.algorithm.upper()}",
        Status.PASS if good else Status.FAIL,
        "" if good else 'algorithm = "sha256" (EdgeAuth accepts it; issue the new key with it)',
        ip="host",
        drops_ip=d.ip_binding == "best-effort",
        leeway_seconds=d.leeway_seconds,
        key_count=len(d.keys),
        cookie_domain=d.cookie_domain,
    )


def _cloudfront(d: Any) -> DialectFacts:
    rsa_sha1 = d.hash_algorithm == "SHA1" and any(not key.is_ecdsa for key in d.keys)
    canned = d.policy == "canned"  # a canned policy has no IP condition at all
    return DialectFacts(
        "RSA-SHA1" if rsa_sha1 else "SHA256 (RSA or ECDSA)",
        Status.FAIL if rsa_sha1 else Status.PASS,
        'hash_algorithm = "SHA256" (CloudFront verifies SHA-256 signatures; or an ECDSA key)' if rsa_sha1 else "",
        "hash_algorithm",
        ip="none" if canned else "ipv4",
        drops_ip=d.ip_binding == "best-effort",
        leeway_seconds=d.leeway_seconds,
        key_count=len(d.keys),
        cookie_domain=d.cookie_domain,
    )


def _google(algorithm: str, status: Status, fix: str) -> Callable[[Any], DialectFacts]:
    def read(d: Any) -> DialectFacts:
        return DialectFacts(
            algorithm,
            status,
            fix,
            ip="none",
            drops_ip=d.ip_binding == "best-effort",
            leeway_seconds=d.leeway_seconds,
            key_count=len(d.keys),
            cookie_domain=d.cookie_domain,
        )

    return read


def _dualtoken(d: Any) -> DialectFacts:
    weak = d.algorithm == "sha1"
    return DialectFacts(
        "Ed25519" if d.algorithm == "ed25519" else f"HMAC-{d.algorithm.upper()}",
        Status.FAIL if weak else Status.PASS,
        'algorithm = "ed25519" (or "sha256") with a new keyset' if weak else "",
        leeway_seconds=d.leeway_seconds,
        key_count=len(d.keys),
        cookie_domain=d.cookie_domain,
    )


def _nginx(d: Any) -> DialectFacts:
    bound = "{remote_addr}" in d.expression
    return DialectFacts(
        "MD5 (secure_link_md5)",
        Status.WARN,
        "nginx's secure_link offers MD5 only: keep its tokens short-lived, or let nginx ask the gateway "
        "(auth_request to /_gateway/verdict) and verify native HMAC-SHA256 tokens instead",
        "expression",
        ip="host" if bound else "none",
        drops_ip=not bound and d.ip_binding == "best-effort",
        ip_setting="expression" if bound else "ip_binding",
        leeway_seconds=d.leeway_seconds,
    )


def _jwt(d: Any) -> DialectFacts:
    mux = d.name == "mux"  # Mux tokens carry no network; Cloudflare Stream's access rules do
    return DialectFacts(
        "RS256",
        Status.PASS,
        ip="none" if mux else "any",
        drops_ip=mux and d.drop_client_network,
        ip_setting="drop_client_network",
        leeway_seconds=d.leeway_seconds,
        key_count=len(d.keys),
    )


def _cat(d: Any) -> DialectFacts:
    return DialectFacts(
        "HMAC-SHA256 / ES256 (COSE)",
        Status.PASS,
        leeway_seconds=d.leeway_seconds,
        key_count=len(d.keys),
        renewal_seconds=d.renewal.expadd_seconds if d.renewal is not None else None,
    )


READERS: dict[str, Callable[[Any], DialectFacts]] = {
    "akamai": _akamai,
    "cloudfront": _cloudfront,
    "cloud_cdn": _google(
        "HMAC-SHA1",
        Status.WARN,
        "Cloud CDN signs with HMAC-SHA1 only: keep its tokens short-lived, or serve the route from Media CDN "
        "(media_cdn, Ed25519)",
    ),
    "media_cdn": _google("Ed25519", Status.PASS, ""),
    "media_cdn_dualtoken": _dualtoken,
    "nginx_secure_link": _nginx,
    "mux": _jwt,
    "cloudflare_stream": _jwt,
    "cat": _cat,
}


def facts_for(dialect: Dialect) -> DialectFacts | None:
    """The dialect's facts, or None for a dialect this audit has no reader for."""
    reader = READERS.get(dialect.name)
    return reader(cast(Any, dialect)) if reader else None
