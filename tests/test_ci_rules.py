"""The suite's CI rules (README "Tests"): in CI (`CI=true`) nothing is skipped and an empty run fails.

A test may skip for a missing tool or reference package only through `tests/support/tools.py`
(`unavailable`, `require_tool`, `require_module`, `require_file`), which fails instead in CI; the only
other skip is the `--run-slow` opt-in (tests/conftest.py). The scan below keeps new skips from creeping
in; `tests/support/ci_guard.py` fails a CI run in which anything skipped after all.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import read_only_fixtures
from tests.support.paths import REPO

# Where a skip may be written, and how many: the CI-guarded helper and the `--run-slow` opt-in.
ALLOWED = {"tests/support/tools.py": 1, "tests/conftest.py": 1}
SKIP_NAMES = frozenset({"skip", "skipif", "importorskip", "xfail", "SkipTest", "skipTest", "skipIf", "skipUnless"})
SKIP_MODULES = frozenset({"pytest", "unittest", "mark"})


def skip_sites(source: str) -> list[int]:
    """Line numbers of every skip in `source`: calls, marks and decorators, however pytest is imported."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in ("pytest", "unittest", "_pytest.outcomes"):
            lines += [node.lineno for alias in node.names if alias.name in SKIP_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in SKIP_NAMES:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in SKIP_MODULES or node.attr in ("skipTest", "SkipTest"):
                lines.append(node.lineno)
    return sorted(lines)


def suite_files() -> list[Path]:
    return sorted(p for p in (REPO / "tests").rglob("*.py") if "node_modules" not in p.parts)


def test_no_skip_outside_the_ci_guarded_helper() -> None:
    found = {str(p.relative_to(REPO)): skip_sites(p.read_text()) for p in suite_files()}
    unexpected = {path: lines for path, lines in found.items() if lines and len(lines) != ALLOWED.get(path, 0)}
    assert unexpected == {}, (
        "skips outside tests/support/tools.py (use require_tool / require_module / require_file / "
        f"unavailable, which fail in CI): {unexpected}"
    )
    assert {path: len(found[path]) for path in ALLOWED} == ALLOWED  # the scan still sees the allowed ones


def test_the_scan_sees_every_form_of_skip() -> None:
    source = "\n".join(
        [
            "import pytest, unittest",
            "from pytest import skip, importorskip",
            "@pytest.mark.skipif(True, reason='x')",
            "@pytest.mark.xfail",
            "def test_a(self) -> None:",
            "    pytest.skip('x')",
            "    pytest.importorskip('y')",
            "    pytest.xfail('z')",
            "    self.skipTest('w')",
            "    raise unittest.SkipTest('v')",
            "    pytest.param(1, marks=pytest.mark.skip)",
            "mark = pytest.mark",
            "@mark.skip",
            "@unittest.skipIf(True, 'u')",
            "def test_b() -> None: pass",
        ]
    )
    assert skip_sites(source) == [2, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13, 14]
    assert skip_sites("import pytest\nskip_slow = 1\ndef skipped(x): x.skipped\npytest.mark.slow\n") == []


def run_pytest(tmp_path: Path, test_source: str, *args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess over one test file, with the CI guard plugin, CI=true or not."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_case.py").write_text(test_source)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci:
        env["CI"] = "true"
    command = [sys.executable, "-m", "pytest", "-p", "tests.support.ci_guard", "-p", "no:cacheprovider"]
    command += ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path / "test_case.py")]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


SKIPPING = (
    "import pytest\n\ndef test_ok() -> None:\n    pass\n\ndef test_skips() -> None:\n    pytest.skip('no nginx')\n"
)
MISSING = (
    "from tests.support.tools import require_tool\n\n"
    "def test_needs_a_tool() -> None:\n    require_tool('no-such-tool-anywhere')\n"
)


def test_in_ci_a_skipped_test_fails_the_run(tmp_path: Path) -> None:
    in_ci = run_pytest(tmp_path, SKIPPING, ci=True)
    assert in_ci.returncode == 1, in_ci.stdout
    assert "skipped in CI" in in_ci.stdout and "test_case.py::test_skips: no nginx" in in_ci.stdout
    assert run_pytest(tmp_path, SKIPPING, ci=False).returncode == 0  # elsewhere a skip is a skip


def test_in_ci_a_missing_tool_is_a_failure_and_elsewhere_a_skip(tmp_path: Path) -> None:
    in_ci = run_pytest(tmp_path, MISSING, "-rA", ci=True)
    assert in_ci.returncode == 1 and "1 failed" in in_ci.stdout, in_ci.stdout
    assert "no-such-tool-anywhere is not available" in in_ci.stdout and "CI=true" in in_ci.stdout
    locally = run_pytest(tmp_path, MISSING, ci=False)
    assert locally.returncode == 0 and "1 skipped" in locally.stdout, locally.stdout


def test_a_run_in_which_no_test_ran_cannot_pass(tmp_path: Path) -> None:
    nothing = run_pytest(tmp_path, SKIPPING, "-k", "no_test_is_named_like_this", ci=True)
    assert nothing.returncode == 5, nothing.stdout  # pytest's "no tests ran": non-zero, so CI fails
    script = (REPO / "scripts" / "test.sh").read_text().splitlines()
    assert "set -euo pipefail" in script
    assert script[-1] == 'exec .venv/bin/pytest "$@"'  # pytest's own exit status is the script's


def literal_arguments(function: str) -> set[str]:
    """Every string literal passed to `function(...)` anywhere in the suite."""
    found: set[str] = set()
    for path in suite_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == function:
                found |= {
                    arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                }
    return found


def test_setup_installs_every_tool_and_package_the_suite_requires() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    debian = set(re.findall(r"\[([\w-]+)\]=[\w-]+", setup.split("declare -A DEB=(", 1)[1].split(")", 1)[0]))
    tools = literal_arguments("require_tool") | {"chromium"}  # chromium: require_file(/usr/bin/chromium)
    assert {"nginx", "redis-server", "ffmpeg", "node", "npm"} <= tools
    assert tools <= debian, (
        f"tools the suite requires that scripts/setup.sh --system does not install: {tools - debian}"
    )
    locked = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (REPO / "requirements.lock").read_text().splitlines()
    }
    distributions = importlib.metadata.packages_distributions()
    for module in literal_arguments("require_module"):
        names = {re.sub(r"[-_.]+", "-", name).lower() for name in distributions[module.split(".")[0]]}
        assert names & locked, f"{module} comes from {names}, which requirements.lock does not pin"
    npm_dirs = re.search(r"for dir in ([^;]+); do", setup)
    assert npm_dirs is not None
    for directory in npm_dirs.group(1).split():
        assert (REPO / directory / "package-lock.json").is_file(), directory


def test_golden_files_are_read_only_for_the_suite(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Tests read golden files; scripts/update_goldens.py alone writes them (no UPDATE_GOLDEN switch)."""
    for path in suite_files():
        assert "UPDATE_GOLDEN" not in path.read_text() or path.name == "test_ci_rules.py", path
    assert request.config.pluginmanager.is_registered(read_only_fixtures)  # fails a run that writes fixtures/
    (tmp_path / "cdn").mkdir()
    (tmp_path / "cdn" / "a.expected.m3u8").write_bytes(b"#EXTM3U\n")
    (tmp_path / "cdn" / "b.expected.m3u8").write_bytes(b"#EXTM3U\n")
    (tmp_path / "__pycache__").mkdir()
    before = read_only_fixtures.snapshot(tmp_path)
    (tmp_path / "cdn" / "a.expected.m3u8").write_bytes(b"#EXTM3U\n#EXT-X-ENDLIST\n")
    (tmp_path / "cdn" / "b.expected.m3u8").unlink()
    (tmp_path / "cdn" / "c.expected.m3u8").write_bytes(b"")
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"")
    assert read_only_fixtures.changes(before, read_only_fixtures.snapshot(tmp_path)) == [
        "added cdn/c.expected.m3u8",
        "removed cdn/b.expected.m3u8",
        "rewritten cdn/a.expected.m3u8",
    ]
