"""PNG plots of the results (matplotlib, the `bench` extra): makespan vs number of ads, no-op
rebuild time vs number of ads."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def makespan_plot(makespan: dict[str, Any], out: Path) -> Path:
    plt = _pyplot()
    runs = sorted(makespan["runs"], key=lambda r: r["ads"])
    n = [r["ads"] for r in runs]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    how = "doit" if makespan.get("jobs") is None else f"doit -n {makespan['jobs']} -P thread"
    ax.plot(n, [r["makespan_s"] for r in runs], "o-", label=f"makespan, {how}")
    ax.plot(n, [r["critical_path_s"] for r in runs], "s--", label="critical path")
    ax.plot(n, [r["lower_bound_s"] for r in runs], "^:", label="lower bound max(CP, local CPU-s / cores)")
    ax.plot(n, [r["sequential_s"] for r in runs], "x-.", label="seed's sequential schedule")
    ax.set_xlabel("ads built at once (30 s each, live mode on the fakes)")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")
    ax.set_xticks(n)
    ax.set_title(f"Makespan vs number of ads (latencies x{makespan['scale']:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def noop_plot(noop: dict[str, Any], out: Path) -> Path:
    plt = _pyplot()
    rows = sorted(noop["rows"], key=lambda r: r["ads"])
    n = [r["ads"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.plot(n, [r["noop_s"] for r in rows], "o-", label="no-op `doit`, nothing changed since the last")
    checked = [(r["ads"], r["noop_check_s"]) for r in rows if r.get("noop_check_s") is not None]
    if checked:
        ax.plot([a for a, _ in checked], [t for _, t in checked], "^-", label="no-op `doit`, every task checked")
    est = [(r["ads"], r["estimate_s"]) for r in rows if r.get("estimate_s") is not None]
    if est:
        ax.plot([a for a, _ in est], [t for _, t in est], "s--", label="`adspec estimate`")
    ax.plot([1, 100], [0.3, 1.5], "v", color="grey", label="targets: <= 0.3 s at 1 ad, <= 1.5 s at 100")
    ax.set_xlabel("ads in the project (the 30 s example, 18 tasks each)")
    ax.set_ylabel("seconds")
    ax.set_title("No-op rebuild time vs number of ads")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
