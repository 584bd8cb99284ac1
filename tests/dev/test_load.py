"""`python -m gateway load` as a user runs it: players against a real demo gateway, bounded, reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.dev.demo import build_demo, build_demo_origin
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
