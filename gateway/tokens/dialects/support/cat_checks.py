"""The CAT verification steps after the MAC and the Grant a token maps to.

Steps 1, 5 and 6 of docs/dialects/cat.md, "Verification".

Denials: a missing token is `missing`; exp/nbf are `expired`/`not_yet_valid`; an untrusted iss is
`unknown_key`; an aud, method (catm) or header (cath) that does not fit is `scope`; a URL outside catu
(after `normalise_path`, so `..` tricks are `acl` first) is `acl`; catnip and catgeoiso3166 are `ip`
(cattprint too, in `cat_policy`).
"""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qsl, urlsplit

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import CheckedPath, normalise_path
from gateway.tokens.dialects.base import EdgeRequest
from gateway.tokens.dialects.support import cat_claims as c
from gateway.tokens.dialects.support.cat_cbor import Tagged
from gateway.tokens.dialects.support.cat_cose import CatKey
from gateway.tokens.dialects.support.cat_renewal import HEADER_NAMES, Channel
from gateway.tokens.grant import Grant, Scope


def extract_token(
    request: EdgeRequest, *, query_params: tuple[str, ...], cookie_names: tuple[str, ...]
) -> tuple[str, Channel, str]:
    """(token text, channel, query parameter name): header, then cookie, then query."""
    lowered = {name.lower(): value for name, value in request.headers.items()}
    for header in HEADER_NAMES:
        if header.lower() in lowered:
            return lowered[header.lower()], "header", query_params[0]
    cookies = {name.lower(): value for name, value in request.cookies.items()}
    for cookie in cookie_names:
        if cookie.lower() in cookies:
            return cookies[cookie.lower()], "cookie", query_params[0]
    query = parse_qsl(urlsplit(request.url).query, keep_blank_values=True)
    for param in query_params:
        found = [value for name, value in query if name == param]
        if found:  # a raw '+' of standard base64 arrives as ' ' after form decoding
            return found[0].replace(" ", "+"), "query", param
    raise TokenDenied(Denial.MISSING, "no CTA-Common-Access-Token header, cookie or query parameter")


def check_time_and_parties(
    claims: c.Claims,
    *,
    now: float,
    leeway_seconds: float,
    issuers: tuple[str, ...],
    audiences: tuple[str, ...],
) -> float:
    """exp (required), nbf, iss and aud (verification step 5); returns exp."""
    exp = claims.get(c.EXP)
    if not isinstance(exp, int | float):
        raise TokenDenied(Denial.MALFORMED, "token has no exp claim")
    if now >= exp + leeway_seconds:
        raise TokenDenied(
            Denial.EXPIRED,
            f"token expired at {exp}, now {int(now)}",
            {"expires_at": exp, "now": int(now)},
        )
    nbf = claims.get(c.NBF)
    if isinstance(nbf, int | float) and nbf > now + leeway_seconds:
        raise TokenDenied(
            Denial.NOT_YET_VALID,
            f"token not valid before {nbf}, now {int(now)}",
            {"not_before": nbf, "now": int(now)},
        )
    issuer = claims.get(c.ISS)
    if issuers and issuer not in issuers:
        raise TokenDenied(Denial.UNKNOWN_KEY, f"issuer {issuer!r} is not trusted", {"iss": issuer})
    if audiences:
        audience = claims.get(c.AUD)
        granted = audience if isinstance(audience, list) else [audience]
        if not set(audiences).intersection(a for a in granted if isinstance(a, str)):
            raise TokenDenied(Denial.SCOPE, f"audience {audience!r} is not ours", {"aud": audience})
    return float(exp)


def check_request(
    claims: c.Claims,
    request: EdgeRequest,
    checked: CheckedPath,
    *,
    token_params: tuple[str, ...],
    country_header: str | None,
) -> None:
    """catu, catm, catnip, catgeoiso3166 and cath against the request (verification step 6)."""
    catu = c.claim_map(claims, c.CATU)
    parts = urlsplit(request.url)
    components = c.uri_components(parts, checked.encoded, token_params)
    for component, match in catu.items():
        value = components[int(component)]
        if not c.matches(match, value):
            raise TokenDenied(
                Denial.ACL,
                f"{c.URI_COMPONENTS[int(component)]} {value!r} is outside the token's catu",
                {"component": c.URI_COMPONENTS[int(component)], "value": value, "match": repr(match)},
            )
    methods = claims.get(c.CATM)
    if isinstance(methods, list) and request.method not in methods:
        raise TokenDenied(Denial.SCOPE, f"method {request.method} not in catm {methods}", {"method": request.method})
    catnip = claims.get(c.CATNIP)
    if isinstance(catnip, list) and not c.client_in_catnip(catnip, request.client_ip):
        raise TokenDenied(
            Denial.IP,
            f"client {request.client_ip} is outside the token's catnip",
            {"client_ip": str(request.client_ip)},
        )
    countries = claims.get(c.CATGEOISO3166)
    if isinstance(countries, list):
        country = _header(request, country_header)
        if country is None or not any(country.upper() == str(cc).upper().split("-")[0] for cc in countries):
            raise TokenDenied(Denial.IP, f"client country {country} not in {countries}", {"country": country})
    cath = claims.get(c.CATH)
    if isinstance(cath, dict):
        failing = c.headers_match(cath, request.headers)
        if failing is not None:
            raise TokenDenied(Denial.SCOPE, f"request header {failing} does not satisfy cath", {"header": failing})


def _header(request: EdgeRequest, name: str | None) -> str | None:
    if name is None:
        return None
    return next((value for key, value in request.headers.items() if key.lower() == name.lower()), None)


def grant_from(claims: c.Claims, checked: CheckedPath, key: CatKey, *, expires_at: float) -> Grant:
    """What the token grants, as a Grant that is never wider than the token (as in `cdn_request`).

    A catu that is only a path prefix ending in '/' (plus scheme/host/port) gives that directory; no path
    constraint at all gives '/'; anything narrower (exact path, parent-path, filename, stem, extension,
    query) is reported as the request path plus '/', which covers nothing else that exists.
    """
    catu = c.claim_map(claims, c.CATU)
    narrowing = {3, 4, 5, 6, 7, 8}.intersection(catu)
    prefix = checked.decoded if checked.decoded.endswith("/") else checked.decoded + "/"
    if not narrowing:
        prefix = "/"
    elif narrowing == {3} and isinstance(catu[3], dict):
        value = catu[3].get(c.PREFIX)
        if isinstance(value, str) and value.endswith("/"):
            with contextlib.suppress(TokenDenied):
                prefix = normalise_path(value).decoded
    entries = c.claim_list(claims, c.CATNIP)
    networks = [c.catnip_network(entry) for entry in entries if isinstance(entry, Tagged)]
    sub, session, scope = claims.get(c.SUB), claims.get(c.GW_SESSION_ID), claims.get(c.GW_SCOPE)
    ends_at = claims.get(c.GW_SESSION_ENDS_AT)
    nbf = claims.get(c.NBF)
    try:
        return Grant(
            path_prefixes=(prefix,),
            expires_at=int(expires_at),
            not_before=int(nbf) if isinstance(nbf, int | float) else None,
            client_network=networks[0] if len(networks) == 1 == len(entries) else None,
            session_id=str(session) if session is not None else None,
            user_id=sub if isinstance(sub, str) and 0 < len(sub.encode()) <= 128 else None,
            scope=Scope(scope) if isinstance(scope, str) else Scope.ALL,
            session_ends_at=ends_at if isinstance(ends_at, int) else None,
            key_id=key.kid.decode("utf-8", "replace"),
        )
    except ValueError as exc:
        raise TokenDenied(Denial.MALFORMED, f"claims do not form a grant: {exc}") from exc
