"""ruff over adspec/, tests/, bench/ and dodo.py, and mypy over adspec/, with the rules in pyproject.toml: part of the test command, so CI and
a contributor see the same verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff() -> None:
    run = _run("ruff", "check", "--no-cache", "adspec", "tests", "bench", "dodo.py")
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy() -> None:
    run = _run("mypy", "--no-incremental", "--config-file", "pyproject.toml")
    assert run.returncode == 0, run.stdout + run.stderr
