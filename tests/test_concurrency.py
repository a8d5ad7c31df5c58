"""Concurrency (issue 8, item 3): two and four `doit` processes at once over the same specs,
build folder and cache, and `doit -n 8 -P thread`, against the fake Replicate: no duplicate paid
request, no corrupted cache entry, identical results."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Project, small_spec
from fakes.replicate_server import FakeReplicate
from reliability import (
    assert_no_traceback,
    broken_targets,
    cache_problems,
    check_final,
    live_env,
    lost_artifacts,
    paid_twice,
    report_row,
    temp_files,
)

ADS = ("zip", "zap")


def _write_specs(project: Project) -> None:
    project.write_spec("zip", small_spec())
    other = small_spec(title="Zap")
    other["beats"][1] = dict(other["beats"][1], image_prompt="The bottle on a summit", motion_prompt="orbit")
    project.write_spec("zap", other)  # shares its hook beat's recipes with zip


def _concurrent(project: Project, runs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")]
    procs = [subprocess.Popen(cmd + args, cwd=project.root, env=project.run_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in runs]
    out = []
    for args, p in zip(runs, procs):
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(args, p.returncode, stdout, stderr))
    return out


def _receipts_match(build: Path) -> None:
    """Every receipt names the bytes beside it (no receipt of one process over another's file)."""
    import hashlib

    for receipt in build.rglob("*.receipt.json"):
        data = json.loads(receipt.read_text())
        artifact = receipt.with_name(data["artifact"])
        assert hashlib.sha256(artifact.read_bytes()).hexdigest() == data["sha256"], receipt


def _digest(path: Path) -> str:
    """sha256 of a file: compared instead of the bytes, so a mismatch reports in a line."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(tmp: Path, name: str, runs: list[list[str]], *, clean_rebuild: bool = False) -> dict[str, str]:
    project = Project(tmp / name)
    project.specs.mkdir(parents=True)
    _write_specs(project)
    with FakeReplicate(latency=0.2, output_mode="url") as rep:
        rep.unique_outputs = True
        rep.latency_by_model["minimax/hailuo-2.3-fast"] = 0.4
        live_env(project, rep)
        results = _concurrent(project, runs)
        for r in results:
            assert_no_traceback(r.stdout, r.stderr)
            assert r.returncode == 0, (r.args, r.stdout[-2000:], r.stderr[-2000:])
        for ad in ADS:
            check_final(project.build / ad / "final.mp4", 8)
        # one create per distinct input, whoever asked first: 3 images, 3 chunks, 1 music
        assert all(n == 1 for n in rep.creates_by_input.values()), rep.creates_by_input
        assert paid_twice(rep) == {} and rep.paid_creates == 7
        assert cache_problems(project.cache) == []
        assert lost_artifacts(rep, project.cache) == set()
        assert broken_targets(project.build) == []
        assert temp_files(project.build) == [] and temp_files(project.cache) == []
        _receipts_match(project.build)
        finals = {ad: _digest(project.build / ad / "final.mp4") for ad in ADS}
        if clean_rebuild:  # a clean rebuild from the cache alone gives the same bytes, paying nothing
            project.doit("clean")
            project.doit()
            assert rep.paid_creates == 7
            assert {ad: _digest(project.build / ad / "final.mp4") for ad in ADS} == finals
    report_row(f"concurrency ({name})", f"{len(runs)} doit process(es) at once: {' | '.join(' '.join(a) or 'doit' for a in runs)}",
               len(runs) + clean_rebuild, len(ADS) * (1 + clean_rebuild), len(ADS) * (1 + clean_rebuild), 0, 0)
    return finals


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _build(tmp_path_factory.mktemp("conc"), "threads", [["-n", "8", "-P", "thread"]], clean_rebuild=True)


@pytest.mark.parametrize("runs", [
    [[], []],
    [[], [], [], []],
    [["-n", "8", "-P", "thread"], ["-n", "8", "-P", "thread"]],
], ids=["2-processes", "4-processes", "2-processes-8-threads"])
def test_concurrent_builds_pay_once_and_agree(tmp_path: Path, reference: dict[str, str], runs) -> None:
    finals = _build(tmp_path, f"{len(runs)}p", runs)
    assert finals == reference  # identical final bytes (sha256), however the work was split
