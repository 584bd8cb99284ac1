"""Reading keys and settings for the JWT and CAT dialects: PEM or JWK, from a table, a file or the environment.

A key or secret is given in exactly one of three ways (`<field>` inline for tests, `<field>_file`
relative to the config file's directory, `<field>_env` naming a variable of the environment the loader
was given, never the process's own). Material may be PEM, JWK JSON, or either one base64-wrapped, as
Cloudflare's `/stream/keys` and Mux's signing-key API deliver them. Errors are `ConfigError`s naming
the dialect and field, never the material.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config_schema import NO_ENVIRONMENT, environment_value
from gateway.errors import ConfigError
from gateway.tokens.keys import b64url_decode

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


KEY_MATERIAL_FIELDS = frozenset(
    f"{name}{suffix}" for name in ("secret", "private_key", "public_key") for suffix in ("", "_file", "_env")
)


def read_material(
    table: Mapping[str, Any],
    name: str,
    *,
    where: str,
    base_dir: Path,
    environ: Mapping[str, str] = NO_ENVIRONMENT,
) -> str | None:
    """The text of `name`, `name_file` (relative to base_dir) or `name_env` (a variable of `environ`);
    at most one may be set."""
    given = [option for option in (name, f"{name}_file", f"{name}_env") if option in table]
    if len(given) > 1:
        raise ConfigError(f"{where}: set only one of {', '.join(given)}")
    if not given:
        return None
    option = given[0]
    value = table[option]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{option}: expected a non-empty string")
    if option.endswith("_file"):
        try:
            return (base_dir / value).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}.{option}: cannot read {value!r}: {exc.strerror}") from exc
    if option.endswith("_env"):
        return environment_value(environ, value, f"{where}.{option}")
    return value


def _unwrap(text: str, where: str) -> str:
    stripped = text.strip()
    if stripped.startswith(("-----BEGIN", "{")):
        return stripped
    try:
        decoded = base64.b64decode("".join(stripped.split()), validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: neither PEM, JWK JSON, nor base64 of either") from exc
    if decoded.startswith(("-----BEGIN", "{")):
        return decoded
    raise ConfigError(f"{where}: neither PEM, JWK JSON, nor base64 of either")


def _jwk_int(jwk: Mapping[str, Any], name: str, where: str) -> int:
    try:
        return int.from_bytes(b64url_decode(str(jwk[name])), "big")
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{where}: JWK member {name!r} is missing or not base64url") from exc


def _key_from_jwk(jwk: Mapping[str, Any], where: str) -> PrivateKey | PublicKey:
    if jwk.get("kty") == "RSA":
        n, e = _jwk_int(jwk, "n", where), _jwk_int(jwk, "e", where)
        public = rsa.RSAPublicNumbers(e, n)
        if "d" not in jwk:
            return public.public_key()
        d = _jwk_int(jwk, "d", where)
        if "p" in jwk and "q" in jwk:
            p, q = _jwk_int(jwk, "p", where), _jwk_int(jwk, "q", where)
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), public
        )
        return numbers.private_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        point = ec.EllipticCurvePublicNumbers(_jwk_int(jwk, "x", where), _jwk_int(jwk, "y", where), ec.SECP256R1())
        if "d" not in jwk:
            return point.public_key()
        return ec.EllipticCurvePrivateNumbers(_jwk_int(jwk, "d", where), point).private_key()
    raise ConfigError(f"{where}: JWK must be RSA or EC P-256 (kty {jwk.get('kty')!r})")


def parse_key(text: str, where: str) -> PrivateKey | PublicKey:
    """A private or public RSA / EC P-256 key from PEM or JWK text (possibly base64-wrapped)."""
    material = _unwrap(text, where)
    try:
        if material.startswith("{"):
            return _key_from_jwk(json.loads(material), where)
        data = material.encode("ascii")
        if b"PRIVATE KEY" in data.split(b"\n", 1)[0]:
            key: Any = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ConfigError(f"{where}: key cannot be loaded ({type(exc).__name__})") from exc
    if not isinstance(
        key, rsa.RSAPrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey
    ):
        raise ConfigError(f"{where}: only RSA and EC P-256 keys are supported")
    return key


def leeway_from(table: Mapping[str, Any], dialect: str, default: float = 0) -> float:
    value = table.get("leeway_seconds", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 300:
        raise ConfigError(f"dialects.{dialect}.leeway_seconds: a number of seconds in 0..300")
    return float(value)
