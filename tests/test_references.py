"""Docs, docstrings and comments point at files of this repository, and those files exist.

A reference to a document that lives elsewhere (a path outside the repository, a notes file that was
never committed) leaves a reader with nothing to open; a repository path that a move left behind sends
them to nothing. Both are caught here for the code, the tests, the docs and the fixtures' READMEs.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.manifests import dash, hls
from tests.support.paths import REPO

TOP_LEVEL = ("gateway", "tests", "docs", "fixtures", "scripts", "players", "docker")
# A path into the repository as prose names it: `gateway/http/edge.py`, `fixtures/cdn/`, `docs/uri-places.md`.
REPO_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP_LEVEL) + r")/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")
# Upper-case notes files (`NOTES.md`, `CAT.md`, `URI-PLACES.md`): only README.md exists in this repository.
NOTES_FILE = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_-]*\.md)\b")
OUTSIDE = re.compile(r"(?<![\w.])(/work/|/home/|/root/|~/|\bshared/)")
# Paths a test makes up on purpose (in a temporary tree), and this module's own examples.
INVENTED = {"gateway/manifests/probe.py"}
SELF = Path(__file__).resolve()


def documents() -> list[Path]:
    """What a reader reads for explanations: the README, docs, fixtures' READMEs, code, tests, scripts."""
    found = [
        REPO / "README.md",
        *sorted((REPO / "docs").rglob("*.md")),
        *sorted((REPO / "fixtures").glob("*/README.md")),
    ]
    for top in ("gateway", "tests", "scripts", "fixtures"):
        found += sorted(
            p for p in (REPO / top).rglob("*") if p.suffix in (".py", ".sh") and "node_modules" not in p.parts
        )
    return found


def references(pattern: re.Pattern[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in documents():
        if path.resolve() == SELF:
            continue
        for match in pattern.finditer(path.read_text()):
            found.setdefault(match.group(1), set()).add(str(path.relative_to(REPO)))
    return found


def test_nothing_points_outside_the_repository() -> None:
    outside = references(OUTSIDE)
    assert outside == {}, f"references to files outside the repository: {outside}"
    notes = {name: where for name, where in references(NOTES_FILE).items() if not (REPO / name).exists()}
    assert notes == {}, f"documents that are not in the repository: {notes}"


def test_every_repository_path_named_exists() -> None:
    missing = {
        path: where
        for path, where in references(REPO_PATH).items()
        if not (REPO / path).exists() and path not in INVENTED
    }
    assert missing == {}, f"paths named in docs or code that do not exist (moved or renamed?): {missing}"


def test_the_scans_see_what_they_look_for() -> None:
    text = "see /work/notes/X.md, `shared/CAT.md`, URI-PLACES.md §1 and gateway/http/edge.py or tests/gone.py."
    assert [m.group(1) for m in OUTSIDE.finditer(text)] == ["/work/", "shared/"]
    assert [m.group(1) for m in NOTES_FILE.finditer(text)] == ["URI-PLACES.md"]  # the others are paths
    assert [m.group(1) for m in REPO_PATH.finditer(text)] == ["gateway/http/edge.py", "tests/gone.py"]
    assert REPO_PATH.findall("players/tests/play.mjs and `fixtures/cdn/`") == [
        "players/tests/play.mjs",
        "fixtures/cdn/",
    ]


def test_docs_uri_places_names_every_place_the_rewriters_handle() -> None:
    """docs/uri-places.md is what the rewriters' docstrings send a reader to: it must list what they do."""
    text = (REPO / "docs" / "uri-places.md").read_text()
    tags = {place.tag for place in (*hls.URI_PLACES, *dash.URI_PLACES) if place.tag is not None}
    assert tags, "the rewriters list their places"
    missing = sorted(tag for tag in tags if not re.search(rf"(?<![\w-]){re.escape(tag)}(?![\w-])", text))
    assert missing == [], f"docs/uri-places.md does not mention {missing}"
