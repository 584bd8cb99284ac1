"""The JSON report, the exit status and the console summary of a replay.

Failures (exit status 1): unexpected denials, unexpected stalls, other request errors (origin 404/5xx,
transport errors, playlist parse mismatches), players that crashed or stopped unexpectedly, and a run cut
short by its wall-clock limit. Expected denials (see expectations.py) are reported but do not fail a run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.replay.result import ReplayResult
from gateway.replay.scenario import scenario_as_json

MAX_LISTED = 500  # denials/errors listed in full in the report (all are counted)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def build_report(result: ReplayResult) -> dict[str, Any]:
    by_kind: dict[str, Counter[str]] = {}
    by_reason: dict[str, Counter[str]] = {}
    denials: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    stalls: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    for player in result.players:
        log = player.log
        for (kind, status), count in log.counts.items():
            by_kind.setdefault(kind, Counter())[str(status)] += count
        for (reason, expected), count in log.denial_counts.items():
            by_reason.setdefault(reason, Counter())["expected" if expected else "unexpected"] += count
        denials += [d.as_json() for d in log.denials]
        errors += [e.as_json() for e in log.errors]
        for interval, into in [(s, stalls) for s in log.stalls] + [(g, gaps) for g in log.gaps]:
            into.append(
                {
                    "player": player.spec.name,
                    "kind": interval.kind,
                    "start": _r(interval.start),
                    "end": _r(interval.end),
                }
                | {"seconds": _r((interval.end or interval.start) - interval.start), "expected": interval.expected}
                | {"detail": interval.detail}
            )
        timeline.append(_timeline(player))
    denials.sort(key=lambda d: d["t"])
    errors.sort(key=lambda e: e["t"])
    totals = {
        "requests": sum(p.log.requests for p in result.players),
        "requests_by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(by_kind.items())},
        "renewals": sum(len(p.log.renewals) for p in result.players),
        "refreshes": sum(p.refreshes for p in result.players),
        "sessions": sum(p.sessions for p in result.players),
        "denials": sum(sum(c.values()) for c in by_reason.values()),
        "expected_denials": sum(c["expected"] for c in by_reason.values()),
        "unexpected_denials": sum(c["unexpected"] for c in by_reason.values()),
        "errors": sum(p.log.error_total for p in result.players),
        "stalls": len(stalls),
        "unexpected_stalls": sum(1 for s in stalls if not s["expected"]),
        "gaps": len(gaps),
    }
    failures = {
        "unexpected_denials": totals["unexpected_denials"],
        "unexpected_stalls": totals["unexpected_stalls"],
        "errors": totals["errors"],
        "players_crashed": sum(1 for p in result.players if p.state == "failed"),
        "players_stopped_unexpectedly": sum(1 for p in result.players if p.state == "stopped"),
        "aborted": 1 if result.aborted else 0,
    }
    failed = any(failures.values())
    return {
        "tool": "gateway replay",
        "report_version": 1,
        "verdict": "fail" if failed else "pass",
        "exit_status": 1 if failed else 0,
        "failures": failures,
        "target": result.target,
        "scenario": scenario_as_json(result.scenario),
        "timing": {
            "start_epoch": result.start_epoch,
            "simulated_seconds": _r(result.simulated_seconds),
            "wall_seconds": _r(result.wall_seconds),
            "aborted": result.aborted,
        },
        "totals": totals,
        "denials_by_reason": {reason: dict(c) for reason, c in sorted(by_reason.items())},
        "denials": denials[:MAX_LISTED],
        "errors": errors[:MAX_LISTED],
        "stalls": stalls,
        "gaps": gaps,
        "players": [player.summary() for player in result.players],
        "timeline": timeline,
    }


def _timeline(player: Any) -> dict[str, Any]:
    log = player.log
    return {
        "player": player.spec.name,
        "tokens": [
            {"kind": s.kind, "session": s.session, "from": _r(s.first_used), "to": _r(s.expires)}
            | {"last_used": _r(s.last_used)}
            for s in log.tokens.values()
        ],
        "renewals": [_r(t) for t in log.renewals],
        "renditions": [[_r(t), name] for t, name in log.renditions],
        "events": [{"t": _r(e.t), "type": e.type, "detail": e.detail} for e in log.events],
        "denials": [
            {"t": _r(d.t), "reason": d.denial, "expected": d.expected, "kind": d.kind, "path": d.path, "why": d.why}
            for d in log.denials
        ],
        "stalls": [[_r(s.start), _r(s.end), s.expected] for s in log.stalls],
    }


def write_reports(result: ReplayResult, directory: Path) -> dict[str, Any]:
    """Write report.json and report.html (and requests.jsonl when the run logged every request)."""
    from gateway.replay.report_html import render_html

    report = build_report(result)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1))
    (directory / "report.html").write_text(render_html(report))
    if any(player.log.log_requests is not None for player in result.players):
        with (directory / "requests.jsonl").open("w") as out:
            for player in result.players:
                for record in player.log.log_requests or ():
                    out.write(json.dumps(record.as_json()) + "\n")
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    totals, timing = report["totals"], report["timing"]
    kinds = ", ".join(f"{kind} {sum(c.values())}" for kind, c in totals["requests_by_kind"].items())
    reasons = ", ".join(
        f"{reason} {c.get('expected', 0)} expected/{c.get('unexpected', 0)} unexpected"
        for reason, c in report["denials_by_reason"].items()
    )
    covered = round(timing["simulated_seconds"])
    clock = f"{covered // 3600}:{covered % 3600 // 60:02d}:{covered % 60:02d}"
    lines = [
        f"replay: {len(report['players'])} player(s), {clock} of session in {timing['wall_seconds']:.1f} s wall",
        f"requests: {totals['requests']} ({kinds}); errors {totals['errors']}",
        f"renewals: {totals['renewals']} (refresh API calls {totals['refreshes']}, sessions {totals['sessions']})",
        f"denials: {totals['denials']} ({reasons or 'none'})",
        f"stalls: {totals['stalls']} ({totals['unexpected_stalls']} unexpected); gaps: {totals['gaps']}",
    ]
    for player in report["players"]:
        if player["state"] not in ("playing", "paused"):
            lines.append(f"  {player['player']}: {player['state']}: {player['stop_reason']}")
    if timing["aborted"]:
        lines.append(f"ABORTED: {timing['aborted']}")
    failing = ", ".join(f"{k} {v}" for k, v in report["failures"].items() if v)
    lines.append(f"verdict: {report['verdict'].upper()}" + (f" ({failing})" if failing else ""))
    return lines
