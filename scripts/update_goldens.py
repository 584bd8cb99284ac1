#!/usr/bin/env python3
"""Regenerates the golden files that the code produces, after a deliberate change; tests only read them.

    .venv/bin/python scripts/update_goldens.py          # every set below
    .venv/bin/python scripts/update_goldens.py cdn      # fixtures/cdn/<case>.expected.m3u8
    .venv/bin/python scripts/update_goldens.py dash     # fixtures/dash/<case>.expected.mpd
    .venv/bin/python scripts/update_goldens.py dash-places  # fixtures/dash/places/<case>.expected.<ext>

Then read `git diff fixtures/` line by line before committing: the tests compare against these bytes, so
whatever is written here becomes the specification (fixtures/cdn/README.md and fixtures/dash/README.md
say what every difference may be). fixtures/hls/*.expected.m3u8 are written by hand and never generated.
Each file is rendered exactly as its test renders it (the same functions, imported from the test module).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.http import test_cdn_manifests as cdn  # noqa: E402
from tests.http import test_dash_places as dash_places  # noqa: E402
from tests.manifests import test_dash_rewriter as dash  # noqa: E402
from tests.support.servers import static_origin  # noqa: E402


def write(path: Path, data: bytes) -> bool:
    """Writes `path` if its bytes differ; True if it changed."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def update_cdn() -> list[Path]:
    async def render_all(origin: str) -> dict[str, bytes]:
        return {case: await cdn.golden_body(origin, case) for case in sorted(cdn.CASES)}

    with static_origin(cdn.CDN_DIR / "origin") as (origin, _):
        bodies = asyncio.run(render_all(origin))
    return [cdn.golden_path(case) for case, body in bodies.items() if write(cdn.golden_path(case), body)]


def update_dash() -> list[Path]:
    paths = {case: dash.FIXTURES / f"{case}.expected.mpd" for case in dash.CASES}
    return [path for case, path in paths.items() if write(path, dash.render_case(case))]


def update_dash_places() -> list[Path]:
    paths = {case: dash_places.expected_path(case) for case in dash_places.CASES}
    return [path for case, path in paths.items() if write(path, dash_places.render(case))]


SETS: dict[str, Callable[[], list[Path]]] = {"cdn": update_cdn, "dash": update_dash, "dash-places": update_dash_places}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("sets", nargs="*", metavar="SET", help=f"{' | '.join(sorted(SETS))} (default: all)")
    chosen = parser.parse_args(argv).sets or sorted(SETS)
    if unknown := set(chosen) - set(SETS):
        parser.error(f"unknown golden set(s) {sorted(unknown)}: choose from {sorted(SETS)}")
    changed = [path for name in chosen for path in SETS[name]()]
    for path in changed:
        print(f"rewrote {path.relative_to(REPO)}")
    print(f"{len(changed)} golden file(s) changed; review them with `git diff fixtures/`" if changed else "no change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
