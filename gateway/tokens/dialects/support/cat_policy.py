"""What a CAT verifier does with the CTA-5007-B claims it does not simply match: crit, catif/catifdata,
catdpop and cattprint (pure: claims and request headers in, a TokenDenied or nothing out).

- crit (45): every listed claim must be one we act on, else the token is refused naming the claim.
- catif (322) / catifdata (320): issuer-defined responses to a failing claim (e.g. a redirect to an auth
  service, possibly with a token the verifier mints from the issuer's template). `ignore` (default): a
  request is judged exactly as without them, so they never grant anything; only the refusal loses the
  issuer's decoration. We never mint tokens on a token's instructions. `refuse`: any token carrying them is
  refused. Either way, when crit lists them the token is refused (we do not implement them).
- catdpop (321): the token is bound to a DPoP proof (RFC 9449) we do not verify. `refuse` (default),
  because accepting it would turn a key-bound token into a bearer token; `ignore` accepts it as a bearer token.
- cattprint (324): `{0: fingerprint type, 1: value}`, types numbered as Fastly's rust-cat (0 JA3 … 12 JA4D6).
  We cannot see the TLS handshake, so the deployment's TLS terminator passes the fingerprint in a request
  header (`tls_fingerprint_headers`); a missing header, a type with no header configured, or another value
  (compared case-insensitively, as rust-cat does) is denied `ip`: the token is bound to another client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects.support import cat_claims as c

# IANA CWT claim names (RFC 8392, CTA-5007-B) and the provisional composite/crit keys Akamai uses.
CLAIM_NAMES: dict[int, str] = {
    c.ISS: "iss",
    c.SUB: "sub",
    c.AUD: "aud",
    c.EXP: "exp",
    c.NBF: "nbf",
    c.IAT: "iat",
    c.CTI: "cti",
    c.CNF: "cnf",
    41: "or",
    42: "nor",
    43: "and",
    44: "enc",
    c.CRIT: "crit",
    282: "geohash",
    c.CATREPLAY: "catreplay",
    c.CATPOR: "catpor",
    c.CATV: "catv",
    c.CATNIP: "catnip",
    c.CATU: "catu",
    c.CATM: "catm",
    c.CATALPN: "catalpn",
    c.CATH: "cath",
    c.CATGEOISO3166: "catgeoiso3166",
    c.CATGEOCOORD: "catgeocoord",
    c.CATGEOALT: "catgeoalt",
    c.CATTPK: "cattpk",
    c.CATIFDATA: "catifdata",
    c.CATDPOP: "catdpop",
    c.CATIF: "catif",
    c.CATR: "catr",
    c.CATTPRINT: "cattprint",
}
# cattprint fingerprint types by number (rust-cat's FingerprintType), as `tls_fingerprint_headers` names them.
FINGERPRINT_TYPES: tuple[str, ...] = ("ja3", "ja3s", "ja4", "ja4s", "ja4h", "ja4l", "ja4x", "ja4ssh", "ja4t", "ja4ts")
FINGERPRINT_TYPES += ("ja4tscan", "ja4d", "ja4d6")
CatifPolicy = Literal["ignore", "refuse"]
CatdpopPolicy = Literal["refuse", "ignore"]


def claim_name(label: object) -> str:
    """`catdpop (321)` for a registered label, the label itself otherwise."""
    name = CLAIM_NAMES.get(label) if isinstance(label, int) and not isinstance(label, bool) else None
    return f"{name} ({label})" if name else repr(label)


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """The operator's choices for the claims above (`[dialects.cat]` catif, catdpop, tls_fingerprint_headers)."""

    catif: CatifPolicy = "ignore"
    catdpop: CatdpopPolicy = "refuse"
    tls_fingerprint_headers: tuple[tuple[str, str], ...] = ()  # (fingerprint type, request header)

    def refuse_unsupported(self, claims: c.Claims) -> None:
        """crit, catif/catifdata and catdpop (after the claims are well formed, before time and request checks)."""
        for critical in c.claim_list(claims, c.CRIT):
            if critical not in c.UNDERSTOOD:
                raise _refused(critical, "is critical (crit) and not implemented here")
        if self.catif == "refuse":
            for label in (c.CATIF, c.CATIFDATA):
                if label in claims:
                    raise _refused(label, 'is refused by policy (dialects.cat.catif = "refuse")')
        if self.catdpop == "refuse" and c.CATDPOP in claims:
            raise _refused(c.CATDPOP, 'binds the token to a DPoP proof, not verified here (catdpop = "refuse")')
        if c.CATTPRINT in claims:
            tls_fingerprint(claims[c.CATTPRINT])  # a broken one is `malformed` whatever the request

    def check_fingerprint(self, claims: c.Claims, headers: Mapping[str, str]) -> None:
        """cattprint against the fingerprint header the TLS terminator set."""
        if c.CATTPRINT not in claims:
            return
        kind, expected = tls_fingerprint(claims[c.CATTPRINT])
        header = dict(self.tls_fingerprint_headers).get(kind)
        values = {"claim": "cattprint", "fingerprint_type": kind, "header": header}
        if header is None:
            raise TokenDenied(Denial.IP, f"cattprint: no tls_fingerprint_headers entry for {kind}", values)
        seen = next((value for name, value in headers.items() if name.lower() == header.lower()), None)
        if seen is None:
            raise TokenDenied(Denial.IP, f"cattprint: no {header} header from the TLS terminator", values)
        if seen.strip().lower() != expected.lower():
            raise TokenDenied(Denial.IP, f"cattprint: the client's {kind} fingerprint is not the token's", values)


def tls_fingerprint(value: object) -> tuple[str, str]:
    """(type name, value) of a well-formed cattprint, else `malformed`."""
    if isinstance(value, dict) and set(value) == {0, 1}:
        kind, fingerprint = value[0], value[1]
        if (
            isinstance(kind, int)
            and not isinstance(kind, bool)
            and 0 <= kind < len(FINGERPRINT_TYPES)
            and isinstance(fingerprint, str)
            and fingerprint
        ):
            return FINGERPRINT_TYPES[kind], fingerprint
    raise c.malformed("cattprint is {0: fingerprint type 0..12, 1: value}", claim="cattprint", value=value)


def _refused(label: object, why: str) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, f"claim {claim_name(label)} {why}", {"claim": claim_name(label)})
