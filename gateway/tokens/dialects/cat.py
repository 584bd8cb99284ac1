"""CTA-5007 Common Access Token (CAT): a CWT in COSE_Mac0 (HMAC 256/256) or COSE_Sign1 (ES256).

Signed bytes (see `cat_cose`): `cbor(["MAC0" | "Signature1", h'a10105' | h'a10126', h'', payload])`,
where `payload` is the CBOR claims map, in this order (our issuing profile, docs/dialects/cat.md):

    iss 1, sub 2 (grant.user_id), aud 3, exp 4, nbf 5, iat 6 (= nbf when known), cti 7 (16 random bytes),
    catv 310 = 1, catnip 311 (grant.client_network, RFC 9164 tag 52/54), catu 312 ({scheme, host} as
    configured, path prefix-match = the grant's prefix, percent-encoded canonically, then the configured
    [dialects.cat.catu] port/query/... matches), catm 313 (configured, or the signing option's method),
    cath 315 (the signing option's headers), catr 323 (configured renewal), then private -65537 session
    id, -65538 scope, -65539 session end when set.
The CTA-5007-B claims judged by policy (crit, catif/catifdata, catdpop, cattprint) are `cat_policy`'s.

Token: `61(17([protected, {4: kid}, payload, tag]))` (tag 18 for ES256), base64url without padding.
Where it goes: request header `CTA-Common-Access-Token` (legacy `Common-Access-Token` accepted), a
cookie of either name, or the query parameter `cat` / `CAT`; looked up in that order, and the place it
was found decides where an automatic renewal goes (`renew`, `cat_renewal`). Verification runs the steps
of docs/dialects/cat.md ("Verification"); `verify` returns the Grant, `verify_token` also the claims that
`renew` needs.

Spec: CTA-5007-B (https://shop.cta.tech/products/cta-5007), RFC 8392 (CWT), RFC 9052 (COSE), RFC 9164;
IANA CWT claims registry; what we implement of them: docs/dialects/cat.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from gateway.config_schema import NO_ENVIRONMENT
from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.acl import normalise_path
from gateway.tokens.dialects.base import (
    NO_OPTIONS,
    Cookie,
    Credentials,
    EdgePath,
    EdgeRequest,
    EdgeVerdict,
    Jwks,
    SigningOptions,
)
from gateway.tokens.dialects.support import cat_claims as c
from gateway.tokens.dialects.support.cat_cbor import TAG_IPV4, TAG_IPV6, CborError, CborValue, decode, encode
from gateway.tokens.dialects.support.cat_checks import check_request, check_time_and_parties, extract_token, grant_from
from gateway.tokens.dialects.support.cat_config import dialect_options
from gateway.tokens.dialects.support.cat_cose import CatKey, Es256CatKey, open_token, seal
from gateway.tokens.dialects.support.cat_policy import ClaimPolicy
from gateway.tokens.dialects.support.cat_renewal import (
    HEADER_NAMES,
    Channel,
    Renewal,
    RenewalResult,
    deliver,
    parse_renewal,
)
from gateway.tokens.dialects.support.cat_replay import MemoryReplayStore, ReplayStore
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import b64url_decode, b64url_encode

NAME = "cat"
DEFAULT_QUERY_PARAMS = ("cat", "CAT")
CTI_BYTES = 16


@dataclass(frozen=True, slots=True)
class VerifiedCat:
    """A token that passed `verify_token`: what it grants, its claims, and how it arrived."""

    grant: Grant
    claims: c.Claims = field(repr=False)
    key_id: bytes
    channel: Channel
    query_param: str
    request_url: str


@dataclass(frozen=True)
class CatDialect:
    """CAT bound to its keys (newest first), issuer/audience policy, catu/catm/catr profile and transport."""

    keys: tuple[CatKey, ...]
    issuer: str | None = None
    accepted_issuers: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    accepted_audiences: tuple[str, ...] = ()
    scheme: str | None = None
    host: str | None = None
    methods: tuple[str, ...] = ("GET", "HEAD")
    renewal: Renewal | None = None
    delivery: Literal["query", "header", "cookie"] = "query"
    query_params: tuple[str, ...] = DEFAULT_QUERY_PARAMS
    cookie_names: tuple[str, ...] = HEADER_NAMES
    leeway_seconds: float = 0.0
    max_token_chars: int = 4096
    require_cwt_tag: bool = False
    accept_untagged: bool = False
    catnip_full_bytes: bool = True
    country_header: str | None = None
    catu_matches: tuple[tuple[int, int, str], ...] = ()  # (URI component, match type, text) from [dialects.cat.catu]
    policy: ClaimPolicy = field(default_factory=ClaimPolicy)
    replay_store: ReplayStore = field(default_factory=MemoryReplayStore, repr=False, compare=False)
    name: str = field(default=NAME, init=False)
    prefix_signing: bool = field(default=True, init=False)

    @property
    def signing_key(self) -> CatKey:
        for key in self.keys:
            if key.can_sign:
                return key
        raise ConfigError(f"dialects.{NAME}.keys: no key can sign")

    # --- issuing ------------------------------------------------------------------------------------

    def claims_for(
        self, grant: Grant, *, issued_at: int | None, cti: bytes, options: SigningOptions = NO_OPTIONS
    ) -> c.Claims:
        """The claims map for `grant`, in the documented order; `options.method` replaces catm and
        `options.headers` add a cath exact match each."""
        if len(grant.path_prefixes) != 1:
            raise ValueError(f"{NAME}: catu holds one path prefix; the grant has {len(grant.path_prefixes)}")
        claims: c.Claims = {}
        if self.issuer is not None:
            claims[c.ISS] = self.issuer
        if grant.user_id is not None:
            claims[c.SUB] = grant.user_id
        if self.audience:
            claims[c.AUD] = self.audience[0] if len(self.audience) == 1 else list(self.audience)
        claims[c.EXP] = grant.expires_at
        if grant.not_before is not None:
            claims[c.NBF] = grant.not_before
        if issued_at is not None:
            claims[c.IAT] = issued_at
        claims[c.CTI] = cti
        claims[c.CATV] = 1
        if grant.client_network is not None:
            claims[c.CATNIP] = [c.encode_catnip(grant.client_network, full_bytes=self.catnip_full_bytes)]
        catu: dict[int | str, CborValue] = {}
        if self.scheme is not None:
            catu[0] = {c.EXACT: self.scheme}
        if self.host is not None:
            catu[1] = {c.EXACT: self.host}
        catu[3] = {c.PREFIX: _encoded_prefix(grant.path_prefixes[0])}
        for component, kind, text in self.catu_matches:
            catu[component] = {kind: text}
        claims[c.CATU] = dict(sorted(catu.items(), key=lambda item: int(item[0])))
        methods = (options.method,) if options.method else self.methods
        if methods:
            claims[c.CATM] = list(methods)
        if options.headers:
            claims[c.CATH] = {name: {c.EXACT: value} for name, value in options.headers}
        if self.renewal is not None:
            claims[c.CATR] = self.renewal.to_cbor()
        if grant.session_id is not None:
            claims[c.GW_SESSION_ID] = grant.session_id
        if grant.scope is not Scope.ALL:
            claims[c.GW_SCOPE] = grant.scope.value
        if grant.session_ends_at is not None:
            claims[c.GW_SESSION_ENDS_AT] = grant.session_ends_at
        return claims

    def encode_claims(self, claims: c.Claims, key: CatKey | None = None) -> str:
        return b64url_encode(seal(encode(claims), key or self.signing_key))

    def issue(
        self,
        grant: Grant,
        *,
        issued_at: int | None = None,
        cti: bytes | None = None,
        options: SigningOptions = NO_OPTIONS,
    ) -> str:
        """A token for `grant`; `cti` defaults to 16 random bytes (fixed only for known-answer tests)."""
        cti = cti or os.urandom(CTI_BYTES)
        return self.encode_claims(self.claims_for(grant, issued_at=issued_at, cti=cti, options=options))

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        options.refuse_unsupported(NAME, supported=frozenset({"method", "headers"}))
        token = self.issue(grant, issued_at=grant.not_before, options=options)
        if self.delivery == "header":
            return Credentials(headers=((HEADER_NAMES[0], token),), url=url, token=token)
        if self.delivery == "cookie":
            cookie = Cookie(
                self.cookie_names[0],
                token,
                path=_encoded_prefix(grant.path_prefixes[0]),  # browsers match Path against the encoded path
                expires_at=grant.expires_at,
                same_site="None",
            )
            return Credentials(cookies=(cookie,), url=url, token=token)
        param = self.query_params[0]
        signed = f"{url}{'&' if '?' in url else '?'}{param}={token}" if url else None
        return Credentials(query=((param, token),), url=signed, token=token)

    # --- verifying (docs/dialects/cat.md, "Verification") -----------------------------------------

    def verify_token(self, request: EdgeRequest, *, now: float) -> VerifiedCat:
        text, channel, param = extract_token(request, query_params=self.query_params, cookie_names=self.cookie_names)
        if len(text) > self.max_token_chars:
            raise TokenDenied(Denial.MALFORMED, f"token longer than {self.max_token_chars} characters")
        try:  # lenient base64url (verification step 1): padding and the standard alphabet are accepted
            raw = b64url_decode(text.strip().rstrip("=").replace("+", "-").replace("/", "_"))
        except ValueError as exc:
            raise TokenDenied(Denial.MALFORMED, "token is not base64url") from exc
        keys = {key.kid: key for key in self.keys}
        payload, key = open_token(raw, keys, require_cwt_tag=self.require_cwt_tag, accept_untagged=self.accept_untagged)
        try:
            claims = decode(payload, allowed_tags=frozenset({TAG_IPV4, TAG_IPV6}))
        except CborError as exc:
            raise TokenDenied(Denial.MALFORMED, f"claims are not strict CBOR: {exc}") from exc
        if not isinstance(claims, dict):
            raise TokenDenied(Denial.MALFORMED, "claims are not a CBOR map")
        c.check_well_formed(claims)
        self.policy.refuse_unsupported(claims)
        if c.CATR in claims:
            parse_renewal(claims[c.CATR])
        expires_at = check_time_and_parties(
            claims,
            now=now,
            leeway_seconds=self.leeway_seconds,
            issuers=self.accepted_issuers,
            audiences=self.accepted_audiences,
        )
        checked = normalise_path(urlsplit(request.url).path)
        check_request(claims, request, checked, token_params=self.query_params, country_header=self.country_header)
        self.policy.check_fingerprint(claims, request.headers)
        if claims.get(c.CATREPLAY) == 1:
            cti = claims.get(c.CTI)
            if not isinstance(cti, bytes):
                raise TokenDenied(Denial.MALFORMED, "catreplay 1 needs a cti")
            uses = self.replay_store.use(cti, expires_at=expires_at, now=now)
            if uses > 1:
                raise TokenDenied(Denial.REVOKED, f"single-use token replayed ({uses} uses)", {"cti": cti.hex()})
        grant = grant_from(claims, checked, key, expires_at=expires_at)
        return VerifiedCat(grant, claims, key.kid, channel, param, request.url)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        return self.verify_token(request, now=now).grant

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return EdgePath(raw_path)  # catu matches the request's own path: no token or id rides in it

    # --- renewal (docs/dialects/cat.md, "Renewal") ------------------------------------------------

    def renew(self, verified: VerifiedCat, *, now: float) -> RenewalResult | None:
        """A renewed token and its delivery when the token has a catr and is inside its window, else None.

        Copies every claim, then sets iat = now, exp = now + expadd (never past the grant's session_ends_at;
        a token already at that end is not renewed), a new cti, iss = our issuer (when
        configured); signs with our newest key. nbf is kept, as Eyevinn does (Akamai's README moves it to now,
        which makes a renewed token bounce off an edge whose clock is a second behind).
        """
        if c.CATR not in verified.claims:
            return None
        renewal = parse_renewal(verified.claims[c.CATR])
        exp = verified.claims[c.EXP]
        assert isinstance(exp, int | float)
        ends_at = verified.grant.session_ends_at
        if not renewal.is_due(exp, now) or (ends_at is not None and exp >= ends_at):
            return None
        issued_at = int(now)
        expires_at = issued_at + renewal.expadd_seconds
        if ends_at is not None:
            expires_at = min(expires_at, ends_at)  # a session's hard end is never renewed past
        claims = dict(verified.claims)
        claims.update({c.IAT: issued_at, c.EXP: expires_at, c.CTI: os.urandom(CTI_BYTES)})
        if self.issuer is not None:
            claims[c.ISS] = self.issuer
        return deliver(
            renewal,
            self.encode_claims(claims),
            expires_at=expires_at,
            channel=verified.channel,
            request_url=verified.request_url,
            query_param=verified.query_param,
            token_params=self.query_params,
        )

    def verify_edge(self, request: EdgeRequest, *, now: float) -> EdgeVerdict:
        """Verify, and renew when the token's catr says it is due.

        CAT reads one token (header, cookie, then `cat`, then `CAT`), so only that one rides on playlist URIs,
        and a token that came by header or cookie needs nothing written. When renewed, playlists served to a
        query-token player carry the renewed token, so the player moves onto it with no code of its own.
        """
        verified = self.verify_token(request, now=now)
        renewal = self.renew(verified, now=now)
        presented = ""
        if verified.channel == "query":
            prefix = f"{verified.query_param}="
            query = urlsplit(request.url).query
            presented = next((pair for pair in query.split("&") if pair.startswith(prefix)), "")
            if presented and renewal is not None:
                presented = prefix + renewal.token
        if renewal is None:
            return EdgeVerdict(verified.grant, presented)
        redirect = renewal.status if renewal.delivered_by == "redirect" else None
        return EdgeVerdict(verified.grant, presented, renewal.headers, redirect)

    def jwks(self) -> Jwks:
        """The ES256 public keys (HMAC keys are secret and never published)."""
        return {"keys": [key.public_jwk() for key in self.keys if isinstance(key, Es256CatKey)]}


def _encoded_prefix(prefix: str) -> str:
    """A grant prefix as catu compares it: the canonical percent-encoded form `normalise_path` forwards."""
    return normalise_path(quote(prefix, safe="/")).encoded


def from_config(table: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> CatDialect:
    """Build from `[dialects.cat]` (see docs/dialects/cat.md)."""
    return CatDialect(**dialect_options(table, base_dir=base_dir, environ=environ))
