"""Run Akamai's reference `akamai-edgeauth` on a batch of cases: JSON list on stdin, JSON list of tokens out.

A subprocess because importing `akamai.edgeauth` sets TZ=GMT for the whole process. Every case passes
an explicit start time or end time, so the reference never reads the clock.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    from akamai.edgeauth import EdgeAuth  # type: ignore[import-not-found, import-untyped, unused-ignore]

    cases: list[dict[str, Any]] = json.load(sys.stdin)
    tokens = []
    for case in cases:
        auth = EdgeAuth(
            key=case["key"],
            algorithm=case.get("algorithm", "sha256"),
            start_time=case.get("start"),
            end_time=case.get("end"),
            window_seconds=case.get("window"),
            ip=case.get("ip"),
            session_id=case.get("session_id"),
            payload=case.get("payload"),
            salt=case.get("salt"),
            escape_early=case.get("escape_early", False),
        )
        if "acl" in case:
            tokens.append(auth.generate_acl_token(case["acl"]))
        else:
            tokens.append(auth.generate_url_token(case["url"]))
    json.dump(tokens, sys.stdout)


if __name__ == "__main__":
    main()
