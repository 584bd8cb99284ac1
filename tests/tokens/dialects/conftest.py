"""Fixtures for the CDN dialect tests (helpers that tests import live in `dialect_helpers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.servers import nginx_static
from tests.tokens.dialects.dialect_helpers import EC_PEM, RSA_PEM


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def rsa_pem() -> str:
    """A throwaway RSA-2048 key made for these tests (protects nothing)."""
    return RSA_PEM.read_text()


@pytest.fixture(scope="session")
def ec_pem() -> str:
    """A throwaway EC P-256 key made for these tests."""
    return EC_PEM.read_text()


@pytest.fixture(scope="session")
def rsa_pem_new() -> str:
    """A second RSA key, generated per run, for rotation tests."""
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


# nginx secure_link locations (tests/tokens/dialects/test_nginx_secure_link.py has the matching dialects)
_SECURE = """
    secure_link $arg_md5,$arg_expires;
    secure_link_md5 "{expression}";
    if ($secure_link = "") {{ return 403; }}
    if ($secure_link = "0") {{ return 410; }}
    return 200 "ok";
"""
LOCATIONS = "\n".join(
    f"location {where} {{{_SECURE.format(expression=expression)}}}"
    for where, expression in (
        ("/u/", "$secure_link_expires$uri uri-secret"),
        ("/ip/", "$secure_link_expires$uri$remote_addr ip-secret"),
        ("~ ^(?<tokdir>/d/[^/]+/)", "$secure_link_expires$tokdir dir-secret"),
    )
)


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's nginx with secure_link locations; started once per run, stopped by PID."""
    tmp = tmp_path_factory.mktemp("secure_link")
    (tmp / "www").mkdir()
    with nginx_static(tmp / "www", tmp / "nginx", LOCATIONS) as (base_url, _log):
        yield base_url.rstrip("/")
