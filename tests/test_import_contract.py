"""The architecture as a test: the pure cores never reach into the rim (see README "Layout").

`gateway/tokens` and `gateway/manifests` know nothing of HTTP, origins or sessions, and
`gateway/manifests` knows nothing of tokens. Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"
RIM = ("gateway.http", "gateway.origin", "gateway.sessions", "gateway.dev", "gateway.replay", "starlette", "httpx")
FORBIDDEN = {
    "tokens": RIM,
    "manifests": (*RIM, "gateway.tokens"),
}


def imported_modules(source: Path, root: Path) -> set[str]:
    """Every module `source` imports, absolute names (relative imports resolved against its package)."""
    package = ".".join(source.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(core: str, package: Path = PACKAGE) -> list[str]:
    found = []
    for source in sorted((package / core).rglob("*.py")):
        for name in sorted(imported_modules(source, package.parent)):
            if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[core]):
                found.append(f"{source.relative_to(package.parent)} imports {name}")
    return found


@pytest.mark.parametrize("core", sorted(FORBIDDEN))
def test_the_cores_stay_free_of_the_rim(core: str) -> None:
    assert (PACKAGE / core).is_dir()
    assert violations(core) == []


def test_the_contract_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself: a function-level import of the rim is found."""
    (tmp_path / "gateway" / "manifests").mkdir(parents=True)
    probe = tmp_path / "gateway" / "manifests" / "probe.py"
    probe.write_text("def f():\n    from gateway.http.edge import Edge\n    import httpx\n    from . import hls\n")
    assert violations("manifests", tmp_path / "gateway") == [
        "gateway/manifests/probe.py imports gateway.http.edge",
        "gateway/manifests/probe.py imports gateway.http.edge.Edge",
        "gateway/manifests/probe.py imports httpx",
    ]
