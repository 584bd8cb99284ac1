"""Fuzz suites with a fixed budget in CI (`GATEWAY_FUZZ_EXAMPLES`, 150 per test by default) and a long one
behind `--run-slow` (5,000 per test). Inputs are arbitrary and mutated real manifests and tokens; the
properties are the ones the README promises: no crash, lossless outside URIs, idempotent, bounded output,
one canonical token spelling."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
