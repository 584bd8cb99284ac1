"""`gateway audit`: a deployment against the hardening checklist (issue 14).

findings   what an audit says (pass, warn, fail; the setting to change) and how it is printed
token_checks, edge_checks   the checklist judged from `Settings` alone (pure)
dialects   what each CDN dialect's settings mean for the checklist
secrets    every configured secret, in the spellings a page could leak it in
probe      with --url: a running deployment's pages, session API, verdict endpoint and error bodies
cli        the subcommand
"""

from __future__ import annotations

from gateway.audit import edge_checks, token_checks
from gateway.audit.findings import Finding
from gateway.config import Settings

CHECKS = (
    token_checks.short_ttls,
    token_checks.cache_lifetimes,
    token_checks.ip_binding,
    token_checks.hash_algorithms,
    edge_checks.origin_protection,
    edge_checks.cache_key,
    edge_checks.cookies,
    token_checks.key_rotation,
    edge_checks.trusted_proxies,
    edge_checks.published_secrets,
)


def audit_settings(settings: Settings) -> list[Finding]:
    """Every checklist item judged from the configuration alone."""
    return [finding for check in CHECKS for finding in check(settings)]
