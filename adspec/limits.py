"""How much runs at once inside one doit run: provider calls in flight and local CPU work.

doit runs tasks on many threads (adspec sets `-n 32 -P thread` as its default), so a task that
waits on a provider costs a sleeping thread, not a core. Two gates keep that safe:

- `inflight(provider)`: a prediction (or speech request) holds a slot of its provider from create
  to the end adspec has seen; the figures are data (library/limits.yaml) and
  `ADSPEC_MAX_INFLIGHT` overrides them;
- `cpu_slot()`: local work (ffmpeg, Pillow, numpy, eSpeak) holds one of the machine's cores, so
  thirty waiting tasks finishing at once never run thirty encoders on two cores.

Both are re-entrant per thread (an offline render that runs ffmpeg takes one CPU slot, not two)
and process-wide (doit's threads share them)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

from .config import load_settings
from .data_yaml import load_data

_held = threading.local()
_guard = threading.Lock()
_provider_gates: dict[str, threading.BoundedSemaphore] = {}
_cpu_gate: threading.BoundedSemaphore | None = None


def cores() -> int:
    """The cores this process may use (its CPU affinity where the system says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def _limits_data() -> dict[str, dict[str, int]]:
    text = resources.files("adspec.library").joinpath("limits.yaml").read_text(encoding="utf-8")
    data = load_data(text) or {}
    return {name: dict(v or {}) for name, v in (data.get("providers") or {}).items()}


def max_inflight(provider: str) -> int | None:
    """Slots for `provider`'s calls in flight at once: ADSPEC_MAX_INFLIGHT, else its figure in
    library/limits.yaml; None for no limit (the offline provider: it takes CPU slots instead)."""
    override = load_settings().max_inflight
    if override is not None:
        return override
    figure = _limits_data().get(provider, {}).get("max_inflight")
    return int(figure) if figure else None


def _depth(name: str) -> int:
    return int(getattr(_held, name, 0))


@contextmanager
def _hold(name: str, gate: threading.BoundedSemaphore | None) -> Iterator[None]:
    if gate is None or _depth(name) > 0:  # no limit, or this thread holds the slot already
        setattr(_held, name, _depth(name) + 1)
        try:
            yield
        finally:
            setattr(_held, name, _depth(name) - 1)
        return
    gate.acquire()
    setattr(_held, name, 1)
    try:
        yield
    finally:
        setattr(_held, name, 0)
        gate.release()


@contextmanager
def inflight(provider: str) -> Iterator[None]:
    """Hold one of `provider`'s in-flight slots for the duration of the block."""
    with _guard:
        if provider not in _provider_gates:
            n = max_inflight(provider)
            _provider_gates[provider] = threading.BoundedSemaphore(n) if n else None  # type: ignore[assignment]
        gate = _provider_gates[provider]
    with _hold("inflight:" + provider, gate):
        yield


def cpu_jobs() -> int:
    """Local media jobs at once: `ADSPEC_CPU_JOBS`, else one per core."""
    return load_settings().cpu_jobs or cores()


@contextmanager
def cpu_slot() -> Iterator[None]:
    """Hold one core for local work for the duration of the block."""
    global _cpu_gate
    with _guard:
        if _cpu_gate is None:
            _cpu_gate = threading.BoundedSemaphore(cpu_jobs())
        gate = _cpu_gate
    with _hold("cpu", gate):
        yield
