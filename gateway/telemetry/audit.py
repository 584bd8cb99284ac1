"""The audit trail: one log line for every session token the gateway issues or renews (the session API's, and
the session cookie re-issued on playlist responses).

Logged on `gateway.audit` at INFO: who (user), which session, what (the title prefix the grant covers), from
where (the client's network: the grant's bound network, else the client's /24 (IPv4) or /48 (IPv6), never the
full address), until when (expiry) and under which key id. Never the token, a signature or a key: what a log
reader learns here cannot play anything. In JSON logs the same values are keys of the line's object.
"""

from __future__ import annotations

import logging
from typing import Final

from gateway.tokens.grant import Grant, IPAddress, IPNetwork, network_around

log = logging.getLogger("gateway.audit")

# How much of an unbound client's address the trail keeps: enough to tell networks apart, not the viewer.
IPV4_AUDIT_PREFIX: Final = 24
IPV6_AUDIT_PREFIX: Final = 48


def audit_network(grant: Grant, client: IPAddress | None) -> IPNetwork | None:
    """The network an audit line names: the session's bound network, else the client's /24 or /48."""
    if grant.client_network is not None:
        return grant.client_network
    return None if client is None else network_around(client, IPV4_AUDIT_PREFIX, IPV6_AUDIT_PREFIX)


def token_issued(event: str, grant: Grant, *, key_id: str, client: IPAddress | None, via: str = "session_api") -> None:
    """`event`: token_issued (a new session) or token_renewed (a refresh); `via`: `session_api`, or `cookie` for
    the session cookie the gateway re-issues on a playlist response (cookie and hybrid delivery)."""
    if not log.isEnabledFor(logging.INFO):
        return
    network = audit_network(grant, client)
    fields: dict[str, object] = {
        "event": event,
        "user": grant.user_id,
        "session": grant.session_id,
        "title_prefix": grant.path_prefixes[0],
        "client_network": str(network) if network is not None else None,
        "expires_at": grant.expires_at,
        "session_ends_at": grant.session_ends_at,
        "key_id": key_id,
        "via": via,
    }
    log.info(" ".join(f"{name}={value}" for name, value in fields.items()), extra={"fields": fields})
