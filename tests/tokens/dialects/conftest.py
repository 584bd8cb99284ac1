"""Fixtures for the CDN dialect tests (helpers that tests import live in `dialect_helpers`)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
