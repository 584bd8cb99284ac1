"""The reports (JSON, self-contained HTML with denial markers) and the `replay` command line."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from gateway.replay.cli import duration, register
from gateway.replay.report import write_reports
from gateway.replay.scenario import GatewaySpec, IpChange, PlayerSpec, Revoke, Scenario
from gateway.replay.simulate import simulate


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_html_report_is_self_contained_and_marks_every_denial(tmp_path: Path) -> None:
    players = (
        PlayerSpec(name="moves", audio=False, ip_changes=(IpChange(at=120),)),
        PlayerSpec(name="revoked", audio=False, start_variant=1, revokes=(Revoke(at=240, expected=False),)),
    )
    scenario = Scenario(duration_seconds=480, players=players, gateway=GatewaySpec(ip_binding=True))
    report = write_reports(await simulate(scenario, log_requests=True), tmp_path)
    assert report["exit_status"] == 1
    assert report["denials_by_reason"] == {"ip": {"expected": 1}, "revoked": {"unexpected": 1}}

    html = (tmp_path / "report.html").read_text()
    assert not re.search(r"https?://", html), "the report must reference nothing outside itself"
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.IGNORECASE)
    assert "url(" not in html and "@import" not in html
    assert html.count('class="denial expected"') == 1 and html.count('class="denial unexpected"') == 1
    assert "1 UNEXPECTED denial(s) at 4:00: revoked on media_playlist" in html
    assert "1 expected denial(s) at 2:00: ip on media_playlist; client address changed with ip_binding on" in html
    assert "<svg" in html and "FAIL" in html

    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored["totals"] == report["totals"] and stored["scenario"]["credential"] == "<redacted>"
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(lines) == report["totals"]["requests"]
    assert "token=" not in "".join(lines)  # paths only: tokens never reach a report


def test_cli_simulate_exit_status_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = "--minutes 3 --players 2 --pause-at 1m --pause-for 45s --seek-back-at 2m --seek-back-by 20 --no-audio"
    ok = parse(["replay", "simulate", *flags.split(), "--report", str(tmp_path / "ok")])
    assert ok.func(ok) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "renewals:" in out and "wall" in out
    assert (tmp_path / "ok" / "report.html").exists() and (tmp_path / "ok" / "report.json").exists()
    scenario = json.loads((tmp_path / "ok" / "report.json").read_text())["scenario"]
    assert [p["name"] for p in scenario["players"]] == ["p1", "p2"]
    assert scenario["players"][0]["pauses"] == [{"at": 60.0, "duration": 45.0, "resume": "live"}]

    flags = "--minutes 3 --players 1 --no-audio --revoke-at 1m --revoke-unexpected"
    bad = parse(["replay", "simulate", *flags.split(), "--report", str(tmp_path / "bad")])
    assert bad.func(bad) == 1
    assert "verdict: FAIL" in capsys.readouterr().out


def test_cli_scenario_file_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "file"\nminutes = 2\n[gateway]\nmode = "cookie"\nip_binding = true\n'
        '[[players]]\ncount = 2\naudio = false\nip_changes = [{ at = 60, on_denial = "recreate" }]\n'
    )
    args = parse(["replay", "simulate", "--scenario", str(toml), "--report", str(tmp_path / "r")])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["scenario"]["name"] == "file" and report["target"]["mode"] == "cookie"
    assert report["denials_by_reason"] == {"ip": {"expected": 2}}

    toml.write_text("[gateway]\nmode = 'carrier-pigeon'\n")
    assert args.func(args) == 2
    assert "gateway.mode: must be one of query, cookie" in capsys.readouterr().err
    toml.write_text("[[players]]\nbogus = 1\n")
    assert args.func(args) == 2
    with pytest.raises(SystemExit) as usage:
        parse(["replay", "simulate", "--pause-at", "soon"])
    assert usage.value.code == 2


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2.5h", 9000)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds
