"""`python -m gateway load` as a user runs it: players against a real demo gateway, bounded, reported."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gateway.dev.demo import build_demo, build_demo_origin
from gateway.dev.load import LoadPlan, Player, Stats
from tests.support.servers import serve_app


def test_load_reports_rates_latencies_errors_and_memory(tmp_path: Path) -> None:
    with serve_app(build_demo_origin()) as origin, serve_app(build_demo(tmp_path, f"{origin}/")) as url:
        out = tmp_path / "load.json"
        args = ["load", "--url", url, "--players", "4", "--duration", "3", "--json", str(out)]
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--pid", str(os.getpid())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr  # exit 1 would mean errors
    report = json.loads(out.read_text())
    assert report["errors"] == {} and report["requests"] > 20
    assert {"session", "manifest", "segment"} <= set(report["by_kind"])
    assert all(row["p99_ms"] >= row["p50_ms"] > 0 for row in report["by_kind"].values())
    assert 2.5 <= report["elapsed_seconds"] < 10  # bounded in time
    assert report["rss_mib"] and all(mib > 10 for _, mib in report["rss_mib"])
    assert "req/s" in result.stdout and "errors: none" in result.stdout


def test_load_counts_refusals_by_type_and_exits_1(tmp_path: Path) -> None:
    with serve_app(build_demo_origin()) as origin, serve_app(build_demo(tmp_path, f"{origin}/")) as url:
        refused = ["--credential", "demo-free", "--asset", "/vod/title-9000/master.m3u8", "--max-requests", "50"]
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "load", "--url", url, "--players", "2", "--duration", "1", *refused],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1 and "session:403 not_entitled" in result.stdout, result.stdout


def test_a_typed_overload_answer_is_waited_out_and_retried_not_counted_as_an_error() -> None:
    """A player meeting `503 origin_busy` (Retry-After) asks again; the report counts it apart from errors."""
    answers = iter([(503, "origin_busy"), (429, "too_many_downloads"), (200, ""), (503, "origin_timeout")])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, code = next(answers) if scope["path"] == "/seg.ts" else (200, "")  # (serve_app's probe)
        headers = [(b"retry-after", b"0")] + ([(b"x-gateway-error", code.encode())] if code else [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async def two_gets(url: str) -> tuple[Stats, list[int | None]]:
        stats = Stats()
        plan = LoadPlan(url, 1, duration=30, max_requests=100, pace=0, assets=(), credential="")
        async with httpx.AsyncClient() as client:
            player = Player(plan, client, stats, random.Random(1))
            got = [await player.get(f"{url}/seg.ts", "segment"), await player.get(f"{url}/seg.ts", "segment")]
        return stats, [response.status_code if response else None for response in got]

    with serve_app(app) as url:
        stats, statuses = asyncio.run(two_gets(url))
    assert statuses == [200, None]  # 503 and 429 retried into a 200; a 503 that is not overload is an error
    assert stats.overloads == {"segment:503 origin_busy": 1, "segment:429 too_many_downloads": 1}
    assert stats.errors == {"segment:503 origin_timeout": 1} and stats.requests == 2
