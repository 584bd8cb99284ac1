"""Issue 14.1 in a browser: with `[sessions] max_streams = 2`, the demo page opened in a third tab of Debian's
Chromium (the same viewer) is refused with `stream_limit` and says why, while the first two keep playing.
`players/tests/stream_limit.mjs` drives the tabs and prints what each shows; this test asserts on it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.browser import test_demo_playback as vod

pytestmark = pytest.mark.browser

# The session-scoped fixture of the VOD browser tests: node, npm and chromium present (required in CI).
node = vod.node
DRIVER = vod.PLAYERS / "tests" / "stream_limit.mjs"


def test_a_third_tab_is_refused_and_the_page_says_why(node: str, tmp_path: Path) -> None:
    with vod.running_demo(tmp_path, max_streams=2) as demo:
        asset = demo.asset(paid=True)
        done = subprocess.run(
            [node, str(DRIVER), "--gateway", demo.url, "--user", vod.PAID_USER, "--asset", asset, "--tabs", "3"],
            cwd=vod.PLAYERS,
            capture_output=True,
            text=True,
            timeout=vod.PLAY_TIMEOUT_SECONDS,
            check=False,
        )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], result["error"]
    first, second, third = result["tabs"]
    for tab in (first, second):
        assert tab["playing"] and tab["denial"] is None, tab
    assert not third["playing"] and third["currentTime"] == 0
    denial = third["denial"]
    assert denial["reason"] == "stream_limit" and denial["status"] == "403", denial
    assert "max_streams = 2" in denial["detail"] and "already has 2 streams" in denial["detail"]
    assert "stream_limit" in denial["text"]  # what the viewer reads on the page
