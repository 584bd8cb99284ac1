"""The config loader on arbitrary TOML: it builds settings or refuses with a ConfigError naming what is
wrong — never a crash (TypeError, KeyError, AttributeError, ...) on a typo, a wrong type or a missing key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.errors import ConfigError
from tests.fuzz import FUZZ

KEY = "k1:" + "A" * 43
TABLES = ["gateway", "keys", "origin", "sessions", "cors", "revocations", "junk"]
KEYS = [
    "token_param", "leeway_seconds", "max_manifest_bytes", "client_ip_header", "trusted_proxies", "delta_updates",
    "ring", "retired", "connect_timeout_seconds", "read_timeout_seconds", "vod_manifest_cache_seconds",
    "token_ttl_seconds", "media_ttl_seconds", "max_life_seconds", "ip_binding", "ipv4_prefix", "title_root_depth",
    "cookie_same_site", "cookie_name", "allowed_origins", "redis_url", "mount", "origin", "delivery", "cdn",
    "cdn_base_url", "edge", "forward_query", "prefix", "paid", "credential", "id", "plan", "typo_key",
]  # fmt: skip
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["", "/", "/vod/", "http://127.0.0.1:8080/", "query", "cookie", "None", "full", "x" * 300]),
    st.text(max_size=20),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def toml(document: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, body in document.items():
        for table in body if isinstance(body, list) else [body]:
            lines.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


documents = st.dictionaries(
    st.sampled_from([*TABLES, "routes", "users", "titles"]),
    tables,
    max_size=5,
).map(lambda d: {k: ([v] if k in ("routes", "users", "titles") else v) for k, v in d.items()})


@FUZZ
@given(documents, st.booleans())
def test_arbitrary_toml_builds_settings_or_a_config_error(document: dict[str, Any], with_key: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gateway.toml"
        path.write_text(toml(document))
        env = {"GATEWAY_KEYS": KEY} if with_key else {}
        try:
            load_settings(path, env)
        except ConfigError as error:
            assert str(error)  # it says what is wrong
