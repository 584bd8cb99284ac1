"""CloudFront policy statements, CloudFront-base64 and the key pair: the byte-level half of `cloudfront.py`.

Canned policy (rebuilt by the edge from the URL and `Expires`; must be exactly these bytes):
    {"Statement":[{"Resource":"<URL>","Condition":{"DateLessThan":{"AWS:EpochTime":<EXP>}}}]}
Custom policy (the signed bytes are the bytes carried in `Policy`; we emit botocore's key order):
    {"Statement":[{"Resource":"<R>","Condition":{"DateLessThan":{"AWS:EpochTime":<EXP>},
      "IpAddress":{"AWS:SourceIp":"<IPv4 CIDR>"},"DateGreaterThan":{"AWS:EpochTime":<START>}}}]}
CloudFront-base64: standard base64, then '+' -> '-', '=' -> '_', '/' -> '~'.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.errors import Denial, TokenDenied
from gateway.tokens.dialects.support.cdn_request import b64_decode_canonical, parse_network
from gateway.tokens.grant import IPNetwork

HASH_SHA1 = "SHA1"
HASH_SHA256 = "SHA256"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {HASH_SHA1: hashes.SHA1, HASH_SHA256: hashes.SHA256}
MAX_POLICY_BYTES = 4096


def cf_b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").replace("+", "-").replace("=", "_").replace("/", "~")


def cf_b64decode(field_name: str, text: str) -> bytes:
    if any(char in text for char in "+=/"):
        raise TokenDenied(Denial.MALFORMED, f"{field_name} is not CloudFront-base64", {"field": field_name})
    standard = text.replace("-", "+").replace("_", "=").replace("~", "/")
    return b64_decode_canonical(field_name, standard, alphabet="std", padded=True)


def canned_policy(resource: str, expires_at: int) -> bytes:
    return (
        '{"Statement":[{"Resource":' + json.dumps(resource) + ',"Condition":{"DateLessThan":'
        '{"AWS:EpochTime":' + str(expires_at) + "}}}]}"
    ).encode()


def custom_policy(resource: str, expires_at: int, not_before: int | None, network: IPNetwork | None) -> bytes:
    condition: dict[str, Any] = {"DateLessThan": {"AWS:EpochTime": expires_at}}
    if network is not None:
        condition["IpAddress"] = {"AWS:SourceIp": str(network)}
    if not_before:
        condition["DateGreaterThan"] = {"AWS:EpochTime": not_before}
    statement = {"Statement": [{"Resource": resource, "Condition": condition}]}
    return json.dumps(statement, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Statement:
    resource: str
    expires_at: int
    not_before: int | None
    network: IPNetwork | None


def _bad(detail: str, **values: object) -> TokenDenied:
    return TokenDenied(Denial.MALFORMED, f"Policy: {detail}", {"field": "Policy", **values})


def _epoch(condition: dict[str, Any], name: str) -> int | None:
    if name not in condition:
        return None
    value = condition[name]
    if not isinstance(value, dict) or set(value) != {"AWS:EpochTime"}:
        raise _bad(f"{name} must hold only AWS:EpochTime")
    epoch = value["AWS:EpochTime"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
        raise _bad(f"{name} is not an integer epoch", value=str(epoch)[:40])
    return epoch


def parse_policy(policy: bytes) -> Statement:
    """Parse a custom policy strictly: one statement, a Resource, known conditions only (fail closed)."""
    if len(policy) > MAX_POLICY_BYTES:
        raise _bad(f"longer than {MAX_POLICY_BYTES} bytes")
    try:
        document = json.loads(policy.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad("not JSON") from None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if not isinstance(statements, list) or len(statements) != 1 or set(document) != {"Statement"}:
        raise _bad("must hold exactly one Statement")
    statement = statements[0]
    if not isinstance(statement, dict) or set(statement) != {"Resource", "Condition"}:
        raise _bad("a statement needs exactly Resource and Condition")
    resource, condition = statement["Resource"], statement["Condition"]
    if not isinstance(resource, str) or not resource or not isinstance(condition, dict):
        raise _bad("Resource must be a string and Condition an object")
    unknown = set(condition) - {"DateLessThan", "DateGreaterThan", "IpAddress"}
    if unknown:
        raise _bad(f"unknown condition(s) {sorted(unknown)}")
    expires_at = _epoch(condition, "DateLessThan")
    if expires_at is None:
        raise _bad("DateLessThan is required")
    network = None
    if "IpAddress" in condition:
        ip_value = condition["IpAddress"]
        if not isinstance(ip_value, dict) or set(ip_value) != {"AWS:SourceIp"}:
            raise _bad("IpAddress must hold only AWS:SourceIp")
        source = ip_value["AWS:SourceIp"]
        network = parse_network("AWS:SourceIp", source if isinstance(source, str) else "")
    return Statement(resource, expires_at, _epoch(condition, "DateGreaterThan"), network)


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class CloudFrontKey:
    """One public key of a CloudFront key group (`Key-Pair-Id`), with its private half when we sign."""

    key_pair_id: str
    public_key: PublicKey = field(repr=False)
    private_key: PrivateKey | None = field(default=None, repr=False, compare=False)

    @property
    def is_ecdsa(self) -> bool:
        return isinstance(self.public_key, ec.EllipticCurvePublicKey)

    def sign(self, message: bytes, hash_name: str) -> bytes:
        if self.private_key is None:
            raise ValueError(f"CloudFront key {self.key_pair_id!r} has no private key")
        algorithm = _HASHES[hash_name]()
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(message, ec.ECDSA(algorithm))  # DER, as CloudFront expects
        return self.private_key.sign(message, padding.PKCS1v15(), algorithm)

    def verify(self, message: bytes, signature: bytes, hash_name: str) -> bool:
        algorithm = _HASHES[hash_name]()
        try:
            if isinstance(self.public_key, ec.EllipticCurvePublicKey):
                self.public_key.verify(signature, message, ec.ECDSA(algorithm))
            else:
                self.public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            return False
        return True
