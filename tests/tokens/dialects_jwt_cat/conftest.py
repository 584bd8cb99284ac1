"""Fixtures for the JWT and CAT dialect tests: key tables and the @eyevinn/cat side-car."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.tools import require_tool
from tests.tokens.dialects_jwt_cat.support import EyevinnOracle

ORACLE_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def second_rsa_pem() -> str:
    """A fresh RSA key for rotation tests (the newest key in a ring)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


@pytest.fixture(scope="module")
def eyevinn() -> Iterator[EyevinnOracle]:
    """One node process per test module running cat_oracle.mjs over @eyevinn/cat@0.16.4 (npm ci if needed)."""
    node, npm = require_tool("node"), require_tool("npm")
    if not (ORACLE_DIR / "node_modules" / "@eyevinn" / "cat" / "package.json").is_file():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=ORACLE_DIR,
            check=True,
            timeout=600,
            capture_output=True,
        )
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [node, "cat_oracle.mjs"],
            cwd=ORACLE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            yield EyevinnOracle(process, stderr)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
