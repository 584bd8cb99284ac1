"""The one error a manifest rewriter raises: the input is not a manifest it can rewrite safely.

Defined in the gateway's error tree (`gateway/errors.py`, a leaf module that imports nothing of the gateway,
so this core stays free of tokens and the rim) and re-exported here, where the rewriters raise it.
"""

from __future__ import annotations

from gateway.errors import ManifestError

__all__ = ["ManifestError"]
