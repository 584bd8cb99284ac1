"""The secrets the audit looks for on pages: every configured secret, in every spelling a page could show."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.audit.findings import Status
from gateway.audit.secrets import leaks, secret_material
from gateway.audit.token_checks import hash_algorithms
from gateway.config import load_settings
from gateway.tokens.keys import b64url_decode
from tests.audit.test_audit_checks import AKAMAI_KEY, HARDENED, K1, K2, ORIGIN_SECRET, SEED1


def test_every_configured_secret_is_found_in_any_spelling(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "cf.pem").write_bytes(pem)
    config = HARDENED.replace(
        "[gateway]", '[revocations]\nredis_url = "redis://:hunter2-redis@10.0.0.9:6379/0"\n\n[gateway]'
    )
    config += f"""
[dialects.akamai]
key = "{AKAMAI_KEY}"

[dialects.cloudfront]
base_url = "https://d111111abcdef8.cloudfront.net/"
keys = [{{id = "K2JCJMDEHXQW5F", private_key_file = "cf.pem"}}]

[dialects.nginx_secure_link]
secret = "nginx-shared-secret"

[[users]]
credential = "viewer-credential-1"
id = "u-1"
"""
    (tmp_path / "gateway.toml").write_text(config)
    settings = load_settings(tmp_path / "gateway.toml", {})
    material = secret_material(settings)
    d = rsa_key.private_numbers().d.to_bytes(256, "big")
    pages = {
        "GATEWAY_KEYS / [keys] ring: k1": f"var k = '{K1}';",  # base64url, as configured
        "GATEWAY_KEYS / [keys] ring: k2": b64url_decode(K2).hex(),  # hex
        "[origin] auth_secret": base64.b64encode(b64url_decode(ORIGIN_SECRET)).decode(),  # padded base64
        "[dialects.media_cdn_dualtoken].keys[1].private": SEED1,  # an Ed25519 seed
        "[dialects.akamai].keys[0]": AKAMAI_KEY.upper(),
        "[dialects.cloudfront].keys[0].private_key": pem.decode().splitlines()[2],  # one line of the PEM file
        "[dialects.nginx_secure_link].secret": "<!-- nginx-shared-secret -->",
        "[revocations] redis_url (password)": "hunter2-redis",
        "[[users]] credential of u-1": json.dumps({"user": "viewer-credential-1"}),
    }
    for name, page in pages.items():
        assert leaks(page, material) == [name]
    jwk_d = json.dumps({"kty": "RSA", "d": base64.urlsafe_b64encode(d).decode().rstrip("=")})
    assert leaks(jwk_d, material) == ["[dialects.cloudfront].keys[0].private_key"]
    assert leaks("nothing to see: k1 k2 token=AAAA", material) == []
    # and the algorithms: CloudFront's RSA key still on SHA-1 is a failure, nginx's MD5 a warning
    judged = {f.setting: f.status for f in hash_algorithms(settings)}
    assert judged == {
        "[dialects.cloudfront] hash_algorithm": Status.FAIL,
        "[dialects.nginx_secure_link] expression": Status.WARN,
    }
