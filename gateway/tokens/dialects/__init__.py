"""CDN token dialects: one module each, same anatomy (see `base.py`), registered here and nowhere else."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from gateway.config_schema import NO_ENVIRONMENT
from gateway.errors import ConfigError
from gateway.tokens.dialects.base import Dialect

# name -> module; a module exposes `NAME` and `from_config(table, *, base_dir, environ) -> Dialect`.
DIALECT_MODULES: dict[str, str] = {
    "cloudfront": "gateway.tokens.dialects.cloudfront",
    "akamai": "gateway.tokens.dialects.akamai",
    "cloud_cdn": "gateway.tokens.dialects.cloud_cdn",
    "media_cdn": "gateway.tokens.dialects.media_cdn",
    "media_cdn_dualtoken": "gateway.tokens.dialects.media_cdn_dualtoken",
    "cloudflare_stream": "gateway.tokens.dialects.cloudflare_stream",
    "mux": "gateway.tokens.dialects.mux",
    "nginx_secure_link": "gateway.tokens.dialects.nginx_secure_link",
    "cat": "gateway.tokens.dialects.cat",
}


def load_dialect(
    name: str, table: Mapping[str, Any], *, base_dir: Path = Path(), environ: Mapping[str, str] = NO_ENVIRONMENT
) -> Dialect:
    """Build dialect `name` from its config table; ConfigError names the dialect and what is wrong.

    Key material is read inline, from `<field>_file` (relative to `base_dir`) or from `<field>_env`, a
    variable of `environ` (the mapping `load_settings` was given; the process environment is never read here).
    """
    if name not in DIALECT_MODULES:
        raise ConfigError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECT_MODULES))}")
    module = importlib.import_module(DIALECT_MODULES[name])
    return cast(Dialect, module.from_config(table, base_dir=base_dir, environ=environ))
