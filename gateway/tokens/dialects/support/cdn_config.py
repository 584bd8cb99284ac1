"""Reading a `[dialects.<name>]` TOML table for the CDN dialects: typed fields, secrets and key files.

Every error is a `ConfigError` that names the dialect and the field (`[dialects.cloudfront] keys[0].id: ...`)
and never the secret itself. A secret or key is given in exactly one of three ways:

    <field> = "..."           inline (tests, throwaway keys)
    <field>_file = "k.pem"    a file, relative to the config file's directory (`base_dir`)
    <field>_env = "CF_KEY"    the name of an environment variable holding it, looked up in the
                              environment the loader was given (`load_settings(path, environ)`),
                              never in the process's own
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from gateway.config_schema import NO_ENVIRONMENT, environment_value, refuse_unknown
from gateway.errors import ConfigError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

IP_BINDINGS = ("strict", "best-effort")
_SECRET_SUFFIXES = ("", "_file", "_env")


class TableReader:
    """Typed access to one config table; unknown fields are refused (a typo must not disable a check).

    `environ` is where `<field>_env` references are looked up (the mapping `load_settings` was given).
    """

    def __init__(
        self,
        dialect: str,
        table: Mapping[str, Any],
        base_dir: Path,
        *,
        known: Iterable[str],
        where: str = "",
        environ: Mapping[str, str] = NO_ENVIRONMENT,
    ) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(f"[dialects.{dialect}] {where or 'table'}: expected a table")
        self.dialect = dialect
        self.table = table
        self.base_dir = base_dir
        self.where = where
        self.environ = environ
        refuse_unknown(table, known, f"[dialects.{dialect}]" + (f" {where}" if where else ""))

    def name(self, field: str) -> str:
        """How errors name `field`: `[dialects.cloudfront] keys[0].private_key`."""
        return f"[dialects.{self.dialect}] " + (f"{self.where}.{field}" if self.where else field)

    def error(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.name(field)}: {problem}")

    def text(self, field: str, default: str | None = None) -> str:
        value = self.table.get(field, default)
        if value is None:
            raise self.error(field, "is required")
        if not isinstance(value, str) or not value:
            raise self.error(field, "must be a non-empty string")
        return value

    def optional_text(self, field: str) -> str | None:
        return self.text(field) if field in self.table else None

    def integer(self, field: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
        value = self.table.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(field, f"must be an integer in {minimum}..{maximum}")
        return value

    def boolean(self, field: str, default: bool) -> bool:
        value = self.table.get(field, default)
        if not isinstance(value, bool):
            raise self.error(field, "must be true or false")
        return value

    def choice(self, field: str, choices: Sequence[str], default: str) -> str:
        value = self.table.get(field, default)
        if value not in choices:
            raise self.error(field, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return str(value)

    def ip_binding(self) -> str:
        return self.choice("ip_binding", IP_BINDINGS, "strict")

    def base_url(self, field: str = "base_url") -> str:
        """`https://host[:port]`, no path, query or fragment; returned without a trailing '/'."""
        value = self.text(field)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise self.error(field, f"must look like https://host[:port] with no path, not {value!r}")
        if parts.query or parts.fragment or "@" in parts.netloc or re.search(r"[\s\"\\*?~]", value):
            raise self.error(field, f"must be a plain https://host[:port], not {value!r}")
        return f"{parts.scheme}://{parts.netloc}"

    def tables(self, field: str, *, known: Iterable[str]) -> list[TableReader]:
        """An array of tables (`[[dialects.x.keys]]` or `keys = [{...}, ...]`), at least one."""
        value = self.table.get(field)
        if not isinstance(value, list) or not value:
            raise self.error(field, "must be a non-empty array of tables")
        names = list(known)
        return [
            TableReader(self.dialect, item, self.base_dir, known=names, where=f"{field}[{index}]", environ=self.environ)
            for index, item in enumerate(value)
        ]

    def has_secret(self, field: str) -> bool:
        return any(field + suffix in self.table for suffix in _SECRET_SUFFIXES)

    def secret(self, field: str) -> str:
        """The secret text given as `<field>`, `<field>_file` or `<field>_env` (exactly one of them)."""
        given = [field + suffix for suffix in _SECRET_SUFFIXES if field + suffix in self.table]
        if len(given) != 1:
            options = ", ".join(field + suffix for suffix in _SECRET_SUFFIXES)
            raise self.error(field, f"give exactly one of {options} (found {len(given)})")
        name = given[0]
        raw = self.table[name]
        if not isinstance(raw, str) or not raw:
            raise self.error(name, "must be a non-empty string")
        if name.endswith("_file"):
            path = (self.base_dir / raw).resolve()
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise self.error(name, f"cannot read {str(path)!r}: {type(exc).__name__}") from None
        elif name.endswith("_env"):
            value = environment_value(self.environ, raw, self.name(name))
        else:
            value = raw
        if not value.strip():
            raise self.error(name, "is empty")
        return value

    def b64_secret(self, field: str, *, min_bytes: int = 16) -> bytes:
        """A secret given as base64 / base64url (padding optional), or an `oct` JWK."""
        text = self.secret(field).strip()
        jwk = _jwk_or_none(text)
        try:
            if jwk is not None:
                if jwk.get("kty") != "oct":
                    raise ValueError("JWK is not a symmetric (oct) key")
                raw = _b64_any(str(jwk["k"]))
            else:
                raw = _b64_any(text)
        except (ValueError, KeyError, binascii.Error) as exc:
            raise self.error(field, f"is not base64 or an oct JWK ({exc})") from None
        if len(raw) < min_bytes:
            raise self.error(field, f"has {len(raw)} bytes; at least {min_bytes} are needed")
        return raw

    def private_key(self, field: str) -> PrivateKey:
        """A PEM (PKCS#1/SEC1/PKCS#8) or JWK private key (RSA, EC P-256, Ed25519)."""
        text = self.secret(field)
        try:
            jwk = _jwk_or_none(text)
            key = _jwk_private(jwk) if jwk is not None else load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise self.error(field, "is not a readable unencrypted PEM or JWK private key") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise self.error(field, f"unsupported key type {type(key).__name__}")
        return key

    def public_key(self, field: str) -> PublicKey:
        text = self.secret(field)
        try:
            jwk = _jwk_or_none(text)
            key = _jwk_public(jwk) if jwk is not None else load_pem_public_key(text.encode())
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise self.error(field, "is not a readable PEM or JWK public key") from None
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise self.error(field, f"unsupported key type {type(key).__name__}")
        return key


def _b64_any(text: str) -> bytes:
    cleaned = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9+/]*", cleaned) or len(cleaned) % 4 == 1:
        raise ValueError("not base64")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)


def _jwk_or_none(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("JWK must be a JSON object")
    return value


def _int(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_b64_any(str(jwk[name])), "big")


def _jwk_public(jwk: Mapping[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n")).public_key()
    if kty == "EC" and jwk.get("crv") == "P-256":
        return ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), ec.SECP256R1()).public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(_b64_any(str(jwk["x"])))
    raise ValueError(f"unsupported JWK kty={kty!r} crv={jwk.get('crv')!r}")


def _jwk_private(jwk: Mapping[str, Any]) -> PrivateKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        public = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n"))
        numbers = rsa.RSAPrivateNumbers(
            _int(jwk, "p"),
            _int(jwk, "q"),
            _int(jwk, "d"),
            _int(jwk, "dp"),
            _int(jwk, "dq"),
            _int(jwk, "qi"),
            public,
        )
        return numbers.private_key()
    if kty == "EC" and jwk.get("crv") == "P-256":
        ec_public = ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), ec.SECP256R1())
        return ec.EllipticCurvePrivateNumbers(_int(jwk, "d"), ec_public).private_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(_b64_any(str(jwk["d"])))
    raise ValueError(f"unsupported JWK kty={kty!r} crv={jwk.get('crv')!r}")
