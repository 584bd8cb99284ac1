"""Every secret a configuration holds, and the spellings it could leak in.

`secret_material(settings)` collects the key ring's secrets and private keys, the origin secret, each
dialect's keys and secrets, the Redis password and the viewers' bearer credentials ([[users]]). Dialect
objects are walked field by field: bytes are secrets, a string field kept out of `repr` is a secret (the
codebase's convention for key material), and any private key object counts with its DER, PEM and JWK `d`.
`leaks(text, material)` names the secrets a text carries, in any of the forms a page or log would show:
raw, hex, base64 and base64url (padded or not).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.config import Settings
from gateway.sessions.entitlements import Viewer
from gateway.tokens.keys import Ed25519Key, HmacKey

MIN_SECRET_CHARS = 8  # shorter strings would match by chance (a demo credential is 9 characters)
_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Secret:
    """`name` says where it is configured (never the value); `forms` the strings that would give it away."""

    name: str
    forms: frozenset[str]


def _spellings(raw: bytes) -> set[str]:
    forms = {raw.hex(), raw.hex().upper()}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        forms.add(text)
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def _private_forms(key: object) -> set[str]:
    """A private key as raw bytes (Ed25519 seed), PKCS#8 DER and its PEM lines, and its JWK `d`."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _spellings(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return set()
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    number = key.private_numbers().d if isinstance(key, rsa.RSAPrivateKey) else key.private_numbers().private_value
    d = number.to_bytes((number.bit_length() + 7) // 8, "big")
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return _spellings(der) | set(body[1:2]) | _spellings(d)  # the 2nd PEM line: past the common header bytes


def _walk(value: object, name: str, depth: int = 0) -> Iterator[Secret]:
    """Secrets inside a dialect's object: bytes, `repr=False` strings, private keys, recursively."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, bytes):
        yield Secret(name, frozenset(_spellings(value)))
    elif forms := _private_forms(value):
        yield Secret(name, frozenset(forms))
    elif isinstance(value, tuple | list):
        for index, entry in enumerate(value):
            yield from _walk(entry, f"{name}[{index}]", depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            field_value = getattr(value, spec.name, None)
            if isinstance(field_value, str) and not spec.repr:
                yield Secret(f"{name}.{spec.name}", frozenset(_spellings(field_value.encode())))
            else:
                yield from _walk(field_value, f"{name}.{spec.name}", depth + 1)
    # Public keys, private ones `private_value` covers, and everything else: nothing secret


def secret_material(settings: Settings) -> list[Secret]:
    """Every configured secret (with the setting it comes from), empty forms dropped."""
    found: list[Secret] = []
    for key in settings.keys.keys:
        if isinstance(key, HmacKey):
            found.append(Secret(f"GATEWAY_KEYS / [keys] ring: {key.key_id}", frozenset(_spellings(key.secret))))
        elif isinstance(key, Ed25519Key) and key.private_key is not None:
            found.append(
                Secret(f"GATEWAY_KEYS / [keys] ring: {key.key_id}", frozenset(_private_forms(key.private_key)))
            )
    if settings.origin.auth_secret:
        found.append(Secret("[origin] auth_secret", frozenset(_spellings(settings.origin.auth_secret))))
    for table, dialect in settings.dialects.items():
        found.extend(_walk(dialect, f"[dialects.{table}]"))
    password = urlsplit(settings.redis_url).password if settings.redis_url else None
    if password:
        found.append(Secret("[revocations] redis_url (password)", frozenset(_spellings(password.encode()))))
    users: Mapping[str, Viewer] = settings.catalog.users
    for credential, viewer in users.items():
        found.append(Secret(f"[[users]] credential of {viewer.user_id}", frozenset(_spellings(credential.encode()))))
    return [secret for secret in found if secret.forms]


def leaks(text: str, material: list[Secret]) -> list[str]:
    """The names of the secrets `text` carries (each once)."""
    return sorted({secret.name for secret in material if any(form in text for form in secret.forms)})
