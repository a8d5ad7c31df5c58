"""A smoke run of the benchmark harness (`python -m bench --quick`): tiny sizes, every figure
computed and written, so the harness keeps working as adspec changes. The real figures come from
`python -m bench` (see bench/), which is not part of the test command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.timeout(900)
def test_bench_quick_writes_every_figure(tmp_path: Path) -> None:
    results, docs = tmp_path / "results", tmp_path / "docs"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--results", str(results), "--docs", str(docs)],
                          cwd=REPO, capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    read = lambda name: json.loads((results / f"{name}.json").read_text())  # noqa: E731

    makespan = read("makespan")["runs"][0]
    assert makespan["ads"] == 1 and makespan["makespan_s"] > 0
    assert makespan["critical_path_s"] <= makespan["makespan_s"]  # no build beats its critical path
    assert makespan["paid_calls"]["openai"] == 1
    edit = read("edit")
    assert edit["paid_over_minimal"] == 1.0  # editing one beat pays for exactly that beat
    assert {"storyboard", "chunk"} <= {t.split(":")[0] for t in edit["executed_tasks"]}

    offline = read("offline")["rows"][0]
    assert offline["cold_build_s"] > 0 and offline["stitch"]["reencoded"] == 0 and offline["stitch"]["copied"] > 0
    noop = read("noop")["rows"]
    assert [r["ads"] for r in noop] == [1, 2] and all(r["noop_s"] > 0 for r in noop)
    cost = read("cost")["rows"]
    assert cost and all(r["waste"] >= 1.0 for r in cost)
    summary = read("summary")
    assert set(summary) >= {"meta", "makespan", "edit", "offline", "noop", "cost"}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert summary["plots"].startswith("skipped")
    else:
        assert (docs / "bench-makespan.png").stat().st_size > 1000 and (docs / "bench-noop.png").stat().st_size > 1000
