"""The self-contained HTML report: a summary and, per player, a timeline (inline SVG, no external assets).

Per player, on one time axis: token lifetimes (bars from first use to expiry: session/cookie, playlist and
media tokens on their own lanes), renewals (ticks), the rendition played (a step line), pauses (grey
bands), seeks, client address changes and session events, stalls (red bands) and denials (markers:
red = unexpected, orange = expected; the reason is in the hover title). Generated from the JSON report only,
so it can be re-rendered later; every text is escaped and URL schemes are dropped from it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

WIDTH, LEFT, RIGHT = 1140, 118, 16
PLOT = WIDTH - LEFT - RIGHT
LANES = (("session", "session / cookie"), ("playlist", "playlist tokens"), ("media", "media tokens"))
COLOURS = {"session": "#3b6fb6", "cookie": "#c28a12", "playlist": "#7a4fb0", "media": "#1f9a8a"}
EVENT_MARKS = {"seek": "◀", "ip_change": "◆", "session": "●", "revoke": "✕", "stop": "■", "refresh": "↻"}
MAX_DENIAL_MARKS = 400
CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:14px 18px;color:#1d2330;background:#fff}
h1{font-size:19px;margin:0 0 6px}h2{font-size:15px;margin:16px 0 6px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;margin-left:8px}
.pass{background:#2b8a3e}.fail{background:#c92a2a}
.figs{display:flex;flex-wrap:wrap;gap:6px 18px;margin:6px 0 4px}.figs b{font-size:16px;display:block}
.figs div{min-width:86px}.muted{color:#667085;fill:#667085}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #d6dae2;padding:2px 7px;text-align:left}
th{background:#f2f4f7}.bad{color:#c92a2a;font-weight:600}.exp{color:#b35c00}
svg text{font:11px system-ui,sans-serif;fill:#344054}.legend span{margin-right:12px}
"""


def _plain(value: object) -> str:
    """Escaped text without URL schemes (the report references no external resource, not even as text)."""
    return html.escape(re.sub(r"(?i)\bhttps?://", "", str(value)))


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def _tick_step(duration: float) -> float:
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200):
        if duration / step <= 12:
            return float(step)
    return 86400.0


class _Svg:
    def __init__(self, duration: float) -> None:
        self.duration = max(duration, 1e-9)
        self.parts: list[str] = []

    def x(self, t: float | None) -> float:
        t = 0.0 if t is None else min(max(t, 0.0), self.duration)
        return round(LEFT + t / self.duration * PLOT, 1)

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def rect(
        self, t0: float | None, t1: float | None, y: float, h: float, fill: str, title: str, extra: str = ""
    ) -> None:
        x0, x1 = self.x(t0), self.x(t1)
        self.add(
            f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 1.0):.1f}" height="{h}" fill="{fill}" {extra}>'
            f"<title>{_plain(title)}</title></rect>"
        )


def _player_block(svg: _Svg, lane: dict[str, Any], top: float) -> float:
    """Draw one player's timeline from `top`; returns the next free y."""
    svg.add(f'<text x="4" y="{top + 12}" font-weight="600">{_plain(lane["player"])}</text>')
    y = top + 18
    body_top = y
    rows: dict[str, float] = {}
    for key, label in LANES:
        rows[key] = y
        svg.add(f'<text x="4" y="{y + 10}">{label}</text>')
        y += 18
    rows["renewals"], rows["rendition"], rows["events"] = y, y + 16, y + 50
    for key, label, dy in (("renewals", "renewals", 9), ("rendition", "rendition", 18), ("events", "events", 10)):
        svg.add(f'<text x="4" y="{rows[key] + dy}">{label}</text>')
    bottom = rows["events"] + 16
    frame = f'x="{LEFT}" y="{body_top - 2}" width="{PLOT}" height="{bottom - body_top + 2}"'
    svg.add(f'<rect {frame} fill="none" stroke="#d6dae2"/>')
    for start, end, expected in lane.get("stalls", []):
        svg.rect(
            start,
            end,
            body_top,
            bottom - body_top,
            "#e03131",
            f"stall {_clock(start)}–{_clock(end or start)}" + (" (expected)" if expected else ""),
            'opacity="0.18"',
        )
    events = lane["events"]
    pause_start = None
    for event in events:
        if event["type"] == "pause":
            pause_start = event["t"]
        elif event["type"] == "resume" and pause_start is not None:
            svg.rect(
                pause_start,
                event["t"],
                body_top,
                bottom - body_top,
                "#98a2b3",
                f"paused {_clock(pause_start)}–{_clock(event['t'])}",
                'opacity="0.25"',
            )
            pause_start = None
    for i, token in enumerate(sorted(lane["tokens"], key=lambda tk: tk["from"])):
        kind = token["kind"]
        row = rows["session" if kind in ("session", "cookie") else kind]
        expiry = _clock(token["to"]) if token["to"] is not None else "?"
        title = f"{kind} token: first used {_clock(token['from'])}, expires {expiry}"
        svg.rect(
            token["from"],
            token["to"],
            row + (0 if i % 2 else 7),
            7,
            COLOURS.get(kind, "#667085"),
            title,
            'opacity="0.85"',
        )
    ticks = " ".join(f"M{svg.x(t)} {rows['renewals']}v10" for t in lane["renewals"])
    if ticks:
        svg.add(f'<path d="{ticks}" stroke="#1f9a8a" stroke-width="1"/>')
    _renditions(svg, lane, rows["rendition"])
    taken: dict[int, int] = {}  # markers at the same place are set side by side
    for event in events:
        mark = EVENT_MARKS.get(event["type"])
        if mark:
            x = svg.x(event["t"])
            shift = taken.get(int(x), 0)
            taken[int(x)] = shift + 1
            title = _plain(f"{event['type']} at {_clock(event['t'])}: {event['detail']}")
            svg.add(f'<text x="{x - 4 + 10 * shift}" y="{rows["events"] + 11}">{mark}<title>{title}</title></text>')
    _denials(svg, lane["denials"], body_top, bottom)
    return bottom + 14


def _renditions(svg: _Svg, lane: dict[str, Any], y: float) -> None:
    changes = lane["renditions"]
    if not changes:
        return
    names = sorted({name for _, name in changes}, key=lambda n: (len(n), n))
    level = {name: y + 26 - 26 * i / max(len(names) - 1, 1) for i, name in enumerate(names)}
    points = []
    for i, (t, name) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else svg.duration
        points += [f"{svg.x(t)},{level[name]:.1f}", f"{svg.x(end)},{level[name]:.1f}"]
    svg.add(f'<polyline points="{" ".join(points)}" fill="none" stroke="#3b6fb6" stroke-width="1.5"/>')
    for name in {names[0], names[-1]}:  # the lowest and highest rendition, at their levels
        svg.add(f'<text x="{LEFT - 4}" y="{level[name] + 4:.1f}" text-anchor="end" class="muted">{_plain(name)}</text>')


def _denials(svg: _Svg, denials: list[dict[str, Any]], top: float, bottom: float) -> None:
    groups: dict[tuple[int, bool], list[dict[str, Any]]] = {}
    for denial in denials:
        groups.setdefault((int(svg.x(denial["t"])), bool(denial["expected"])), []).append(denial)
    for (x, expected), group in list(groups.items())[:MAX_DENIAL_MARKS]:
        colour = "#e8590c" if expected else "#e03131"
        reasons = sorted({f"{d['reason']} on {d['kind']}" for d in group})
        verdict = "expected" if expected else "UNEXPECTED"
        title = f"{len(group)} {verdict} denial(s) at {_clock(group[0]['t'])}: {', '.join(reasons)}; {group[0]['why']}"
        svg.add(
            f'<g class="denial {"expected" if expected else "unexpected"}"><title>{_plain(title)}</title>'
            f'<path d="M{x} {top}V{bottom}" stroke="{colour}" stroke-width="1.5"/>'
            f'<path d="M{x - 5} {top - 8}h10l-5 8z" fill="{colour}"/></g>'
        )


def render_html(report: dict[str, Any]) -> str:
    totals, timing = report["totals"], report["timing"]
    duration = float(timing["simulated_seconds"] or 0.0)
    svg = _Svg(duration)
    y = 22.0
    step = _tick_step(duration)
    for lane in report["timeline"]:
        y = _player_block(svg, lane, y)
    axis = [
        f'<text x="{svg.x(i * step) - 10}" y="12">{_clock(i * step)}</text>' for i in range(int(duration // step) + 1)
    ]
    grid = " ".join(f"M{svg.x(i * step)} 16V{y - 10}" for i in range(int(duration // step) + 1))
    figures = [
        ("requests", totals["requests"]),
        ("renewals", totals["renewals"]),
        ("refreshes", totals["refreshes"]),
        ("denials", totals["denials"]),
        ("expected", totals["expected_denials"]),
        ("unexpected", totals["unexpected_denials"]),
        ("errors", totals["errors"]),
        ("stalls", totals["stalls"]),
        ("gaps", totals["gaps"]),
        ("session", _clock(duration)),
        ("wall", f"{timing['wall_seconds']:.1f} s"),
    ]
    verdict = report["verdict"]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gateway replay report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Replay: {_plain(report['scenario']['name'])}<span class='badge {verdict}'>{verdict.upper()}</span></h1>",
        f"<div class='muted'>{_plain(_describe_target(report['target']))}</div>",
        "<div class='figs'>" + "".join(f"<div><b>{_plain(v)}</b>{k}</div>" for k, v in figures) + "</div>",
        "<div class='legend muted'>" + "".join(f"<span style='color:{c}'>■ {k}</span>" for k, c in COLOURS.items()),
        "<span style='color:#e03131'>▼ unexpected denial</span><span style='color:#e8590c'>▼ expected denial</span>",
        "<span>◀ seek ◆ IP change ● session ↻ refresh ✕ revoke ■ stop; grey: pause; red: stall</span></div>",
        f"<svg width='{WIDTH}' height='{int(y)}' viewBox='0 0 {WIDTH} {int(y)}' role='img' aria-label='timeline'>",
        f"<path d='{grid}' stroke='#eef0f4'/>",
        *axis,
        *svg.parts,
        "</svg>",
        _tables(report),
        "</body></html>",
    ]
    return "\n".join(out)


def _describe_target(target: dict[str, Any]) -> str:
    origin = target.get("origin")
    origin_text = " ".join(f"{k}={v}" for k, v in origin.items()) if isinstance(origin, dict) else str(origin or "")
    rest = " ".join(f"{k}={v}" for k, v in target.items() if k not in ("origin", "kind"))
    return f"{target.get('kind', '')}: {rest}; origin: {origin_text}"


class _Html(str):
    """Already-escaped markup (passed through by `_table`)."""


def _table(title: str, headers: tuple[str, ...], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)

    def cell(value: object) -> str:
        return value if isinstance(value, _Html) else f"<td>{_plain(value)}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


def _verdict_cell(denial: dict[str, Any]) -> _Html:
    if denial["expected"]:
        return _Html(f"<td class='exp'>expected: {_plain(denial['why'])}</td>")
    return _Html("<td class='bad'>NO</td>")


def _tables(report: dict[str, Any]) -> str:
    by_reason = [
        (reason, c.get("expected", 0), _Html(f"<td class='bad'>{c.get('unexpected', 0) or ''}</td>"))
        for reason, c in report["denials_by_reason"].items()
    ]
    keys = ("player", "state", "requests", "renewals", "sessions", "switches", "denials", "stalls", "stop_reason")
    players = [tuple(p[k] for k in keys) for p in report["players"]]
    denials = [
        (_clock(d["t"]), d["player"], d["kind"], d["path"], d["denial"], _verdict_cell(d), d["detail"])
        for d in report["denials"][:100]
    ]
    intervals = [
        (s["player"], s["kind"], _clock(s["start"] or 0), s["seconds"], s["expected"], s["detail"])
        for s in (report["stalls"] + report["gaps"])[:200]
    ]
    return "\n".join(
        [
            _table("Denials by reason", ("reason", "expected", "unexpected"), by_reason),
            _table("Players", tuple(k.replace("_", " ") for k in keys), players),
            _table("Denials (first 100)", ("t", "player", "request", "path", "reason", "expected?", "detail"), denials),
            _table("Stalls and gaps", ("player", "kind", "from", "seconds", "expected", "detail"), intervals),
        ]
    )
