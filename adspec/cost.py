"""What things cost: the price of one recipe, the cost ledger of an ad's build (cost.json), and
the per-run budget (ADSPEC_BUDGET_USD).

- `recipe_price` prices a request *before* it is made, from the registry's price rule (exact for
  per-image, per-second and per-run prices; an estimate for compute-time and token prices).
  The provider's own figure (predict time, token usage) is what the receipt records afterwards.
- `ad_cost` reads the receipts of an ad's current artifacts: what the build that made them spent,
  and what the cache saved it (a hit's value is what the request cost when it was paid).
- `RunBudget` is shared by the threads and processes of one `doit` run (a JSON file under a
  file lock): a paid call reserves its price first and settles with the real cost after, so
  spent + in flight never exceeds the cap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .build_files import CostFile, CostItem, LastRun, PhaseCost, read_model_or_none, write_pretty
from .config import load_settings
from .errors import BudgetError
from .file_locks import exclusive
from .fsutil import write_json_atomic
from .money import fmt_usd, usd
from .paths import AdPaths, receipt_path, runs_dir
from .plan_file import load_plan
from .receipts import Receipt, read_receipt
from .recipes import OFFLINE, OWN_MEDIA, Recipe
from .registry import load_registry, planner_price, price_for
from .runs import run_id
from .status import ad_lock
from .tasknames import PAID_PHASES, task_name

# ---- prices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    usd: float
    exact: bool  # False: an estimate (billed by compute time or tokens)
    rule: str  # how it was priced, for people


def _template_values(entry: Any, params: dict[str, Any]) -> dict[str, Any]:
    """placeholder -> the value sent, read back from the recipe's params via the input template."""
    out: dict[str, Any] = {}
    for field, template in entry.input.items():
        if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
            if field in params:
                out[template[1:-1]] = params[field]
    return out


def _seconds(entry: Any, values: dict[str, Any]) -> float | None:
    if values.get("seconds") is not None:
        return float(values["seconds"])
    if values.get("frames") is not None:
        return (float(values["frames"]) - 1) / float(values.get("fps") or entry.fps)
    return None


# Planner replies: about this many tokens per beat of JSON, plus the envelope.
_PLAN_TOKENS_PER_BEAT = 90
_PLAN_TOKENS_BASE = 60


def planner_estimate(recipe: Recipe) -> Price:
    """A chat completion's price before it is made: the prompt's tokens (about 4 characters
    each) and a reply of about 90 tokens per beat (one beat per ~5 s); a translation's reply is
    about as long as the texts it was given (the user message)."""
    sent = {k: v for k, v in recipe.params.items() if k != "check"}
    prompt_tokens = math.ceil(len(json.dumps(sent, ensure_ascii=False)) / 4)
    check = recipe.params.get("check") or {}
    if "translate" in check:
        user = next((m.get("content", "") for m in recipe.params.get("messages", []) if m.get("role") == "user"), "")
        completion = _PLAN_TOKENS_BASE + math.ceil(len(user) / 4)
    else:
        duration = int(check.get("duration") or 30)
        completion = _PLAN_TOKENS_BASE + _PLAN_TOKENS_PER_BEAT * (duration // 5 + 2)
    return Price(usd(planner_price(recipe.model, prompt_tokens, completion)), False,
                 f"~{prompt_tokens} prompt + ~{completion} reply tokens")


def recipe_price(recipe: Recipe) -> Price:
    """What running `recipe` would cost, from the registry's price rule."""
    if recipe.provider == OFFLINE:
        return Price(0.0, True, "offline (free)")
    if recipe.provider == OWN_MEDIA:  # your own still or footage (adspec.own_media)
        return Price(0.0, True, "your own media (free)")
    if recipe.kind == "plan":
        return planner_estimate(recipe)
    entry = load_registry().models.get(recipe.model)
    if entry is None:
        return Price(0.0, False, f"unknown model {recipe.model}")
    values = _template_values(entry, recipe.params)
    seconds = _seconds(entry, values)
    chars = len(str(values.get("text") or "")) if "text" in values else None
    price = price_for(entry, seconds=seconds, native_audio=bool(values.get("native_audio")),
                      resolution=values.get("resolution"), chars=chars)
    exact = "per_predict_second" not in entry.price
    if chars is not None:
        return Price(usd(price), exact, f"per 1k characters, {chars} characters")
    rule = next((r for r in ("per_image", "per_second", "per_run", "per_predict_second") if r in entry.price), "free")
    what = f"{rule.replace('_', ' ')}" + (f", {seconds:g} s" if seconds is not None and rule != "per_image" else "")
    if values.get("resolution"):
        what += f", {values['resolution']}"
    if not exact:
        what += " (estimated compute time)"
    return Price(usd(price), exact, what)


# ---- the cost ledger of an ad: build/<ad>/cost.json ---------------------------------------------


def read_json(path: Path) -> Any:
    """A run's budget file (RunBudget), or None."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Artifact:
    """A paid artifact of the ad's current plan and its receipt (None: not built, or no receipt
    this version reads)."""

    target: str
    phase: str
    path: Path
    rel: str  # relative to build/<ad>
    receipt: Receipt | None


def ad_artifacts(build_dir: Path, ad: str) -> list[Artifact]:
    """The paid artifacts of the ad's current plan, in order."""
    paths = AdPaths.of(build_dir, ad)
    out: list[Artifact] = []

    def add(target: str, phase: str, path: Path) -> None:
        receipt = read_receipt(path) if path.exists() else None
        out.append(Artifact(target, phase, path, str(path.relative_to(paths.root)), receipt))

    if paths.plan.exists() and receipt_path(paths.plan).exists():
        add(task_name("plan", ad), "plan", paths.plan)
    if paths.translation.exists() and receipt_path(paths.translation).exists():  # the plan's second paid call
        add(task_name("plan", ad), "plan", paths.translation)
    plan = load_plan(paths)
    if plan is None:
        return out
    for beat in plan.beats:
        add(task_name("storyboard", ad, beat.id), "storyboard", paths.storyboard(beat.id))
        for k in range(beat.chunk_count):
            add(task_name("chunk", ad, beat.id, k), "chunks", paths.chunk(beat.id, k))
    for beat in plan.voiced:
        add(task_name("voice", ad, beat.id), "voice", paths.voice(beat.id))
    if not plan.native_audio:
        add(task_name("music", ad), "music", paths.music)
    return out


def _totals(items: list[CostItem]) -> tuple[float, float, float]:
    spent = sum(i.cost_usd for i in items if not i.cache_hit)
    saved = sum(i.cost_usd for i in items if i.cache_hit)
    return usd(spent), usd(saved), usd(spent + saved)


def ad_cost(build_dir: Path, ad: str) -> CostFile:
    """cost.json: per phase and in total, what the build of the current artifacts spent
    (`spent_usd`: requests it paid for), what came from the cache (`saved_usd`: what those
    requests cost when they were paid), and `total_usd` = spent + saved (what the ad is worth)."""
    items: list[CostItem] = []
    missing: list[str] = []
    for a in ad_artifacts(build_dir, ad):
        r = a.receipt
        if r is None or not a.path.exists():
            missing.append(a.target)
            continue
        items.append(CostItem(
            target=a.target, phase=a.phase, path=a.rel, cost_usd=usd(r.cost_usd or 0.0), cache_hit=bool(r.cache_hit),
            model=(r.recipe or {}).get("model"), provider=(r.recipe or {}).get("provider"),
            job_id=r.job_id, key=r.key, generated_at=r.generated_at,
        ))
    phases: dict[str, PhaseCost] = {}
    for phase in PAID_PHASES:
        mine = [i for i in items if i.phase == phase]
        spent, saved, total = _totals(mine)
        phases[phase] = PhaseCost(spent_usd=spent, saved_usd=saved, total_usd=total, requests=len(mine),
                                  from_cache=sum(1 for i in mine if i.cache_hit))
    spent, saved, total = _totals(items)
    return CostFile(ad=ad, currency="USD", spent_usd=spent, saved_usd=saved, total_usd=total, phases=phases,
                    items=tuple(items), not_built=tuple(missing))


def read_cost(build_dir: Path, ad: str) -> CostFile | None:
    """build/<ad>/cost.json, or None (none yet, damaged, or of another version: recomputed by the
    next write)."""
    return read_model_or_none(CostFile, AdPaths.of(build_dir, ad).cost)


def write_cost(build_dir: Path, ad: str, last_run: LastRun | None = None) -> CostFile | None:
    """Recompute build/<ad>/cost.json from the receipts (keeping or replacing `last_run`)."""
    paths = AdPaths.of(build_dir, ad)
    if not paths.root.exists():
        return None
    with ad_lock(paths.root):
        old = read_cost(build_dir, ad)
        data = dataclasses.replace(
            ad_cost(build_dir, ad),
            last_run=last_run if last_run is not None else (old.last_run if old is not None else None),
            updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_pretty(paths.cost, data.to_json())
    return data


# ---- the budget of one run --------------------------------------------------------------------


def raise_hint(needed: float) -> str:
    return f"raise it with ADSPEC_BUDGET_USD={max(needed, 0.01) * 1.2:.2f} (e.g. `ADSPEC_BUDGET_USD={max(needed, 0.01) * 1.2:.2f} doit`)"


class RunBudget:
    """Spent and reserved USD of one run, in build/.adspec/runs/<run>.json under a file lock."""

    def __init__(self, build_dir: Path, cap: float, rid: str | None = None):
        self.cap = float(cap)
        self.rid = rid or run_id()
        self.dir = runs_dir(build_dir)
        self.path = self.dir / f"{self.rid}.json"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with exclusive(self.path.with_suffix(".lock")):
            state = read_json(self.path) or {"run": self.rid, "cap_usd": self.cap, "spent_usd": 0.0,
                                              "reserved": {}, "calls": 0}
            yield state
            write_json_atomic(self.path, state)

    def state(self) -> dict[str, Any]:
        return read_json(self.path) or {"spent_usd": 0.0, "reserved": {}}

    def reserve(self, token: str, amount: float, label: str) -> None:
        """Hold `amount` for a call about to be made, or raise BudgetError if spent + in flight
        + amount would pass the cap."""
        with self._locked() as s:
            in_flight = sum(r["usd"] for r in s["reserved"].values())
            if s["spent_usd"] + in_flight + amount > self.cap + 1e-9:
                would = s["spent_usd"] + in_flight + amount
                raise BudgetError(
                    f"budget: {label} ({fmt_usd(amount)}) would bring this run to {fmt_usd(would)} "
                    f"(spent {fmt_usd(s['spent_usd'])}, in flight {fmt_usd(in_flight)}), over the cap "
                    f"of {fmt_usd(self.cap)}; {raise_hint(would)}"
                )
            s["reserved"][token] = {"usd": usd(amount), "label": label, "pid": os.getpid()}
            s["calls"] += 1

    def settle(self, token: str, spent: float) -> None:
        with self._locked() as s:
            s["reserved"].pop(token, None)
            s["spent_usd"] = usd(s["spent_usd"] + spent)

    def remove(self) -> None:
        for p in (self.path, self.path.with_suffix(".lock")):
            try:
                p.unlink()
            except OSError:
                pass

    @staticmethod
    def prune(build_dir: Path, older_than_s: float = 86400) -> None:
        d = runs_dir(build_dir)
        now = time.time()
        for p in d.glob("*") if d.exists() else []:
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
            except OSError:
                pass


def failed_call_spent(error: BaseException, job: Any, price_usd: float) -> float:
    """What a paid call that failed counts as spent in the budget: what the provider says it
    was billed (e.g. planner replies it could not use), plus the price of a request whose
    answer was lost (it may have been billed) or of a prediction that was created (it may be
    billed though it failed). The cap must hold even when the bill is not known."""
    billed = float(getattr(error, "spent_usd", 0.0) or 0.0)
    unknown = bool(getattr(error, "maybe_billed", False)) or bool(getattr(job, "resume_id", None))
    return usd(billed + (price_usd if unknown else 0.0))


def guarded(run: Callable[..., Any], label: str) -> Callable[..., Any]:
    """`run` (a provider's) behind the run's budget: reserve the price before the call, settle
    with the provider's own figure after. Free recipes pass straight through."""

    def call(recipe: Recipe, job: Any, out: Path) -> Any:
        price = recipe_price(recipe)
        if price.usd <= 0:
            return run(recipe, job, out)
        if getattr(job, "resume_id", None):  # paid for in an earlier run and resumed: polled, never created
            return run(recipe, job, out)  # (nothing new to pay: the estimate prices it at $0 too)
        settings = load_settings()
        budget = RunBudget(settings.build_dir, settings.budget_usd)
        token = f"{recipe.key}:{uuid.uuid4().hex[:8]}"
        budget.reserve(token, price.usd, label)
        try:
            result = run(recipe, job, out)
        except BaseException as e:
            budget.settle(token, failed_call_spent(e, job, price.usd))
            raise
        budget.settle(token, float(getattr(result, "cost_usd", 0.0) or 0.0))
        return result

    return call
