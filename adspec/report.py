"""The review page: build/<ad>/index.html (and build/index.html for all ads), static and
self-contained (inline CSS, no scripts or fonts from elsewhere; media by relative path), plus
build/<ad>/storyboard.png, a contact sheet of the storyboard for quick looks and PR comments.

`report:<ad>` (after `mix:<ad>`) writes the ad's page and contact sheet; `report` writes the
index of all ads. The pages show the final video in a player, each beat's storyboard frame with
its type, timing and prompts, the cost table (cost.json's figures) and the status.
"""

from __future__ import annotations

import dataclasses
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from . import media
from .approvals import APPROVED, own_footage, state_of, storyboard_sha256
from .build_files import AdStatus, CostFile, read_model_or_none
from .config import load_settings
from .cost import ad_cost
from .fsutil import atomic_path, write_text_atomic
from .hashing import sha256_json
from .money import fmt_usd
from .paths import AdPaths, build_index
from .plan_file import load_plan
from .status import OFFLINE_LABEL, render_mode
from .tasknames import PAID_PHASES, task_name

_STAMP = "<!-- adspec-report-inputs: {} -->"


@lru_cache(maxsize=1)
def _env() -> Any:
    from importlib import resources

    import jinja2

    loader = jinja2.FunctionLoader(
        lambda name: resources.files("adspec").joinpath("report").joinpath(name).read_text(encoding="utf-8"))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["usd"] = fmt_usd
    return env


# ---- contact sheet -------------------------------------------------------------------------------

THUMB_W = 320
PAD = 12
CAPTION_H = 46


def contact_sheet(plan: Any, paths: AdPaths, out: Path) -> Path:
    """A grid of the storyboard frames (up to 4 per row), each captioned with its number, beat
    id, type and timing."""
    from PIL import Image, ImageDraw, ImageFont

    from .images import open_image

    beats = list(plan.beats)
    thumb_h = max(1, round(THUMB_W * plan.height / plan.width))
    cols = min(4, max(1, len(beats)))
    rows = max(1, (len(beats) + cols - 1) // cols)
    header = 40
    sheet = Image.new("RGB", (PAD + cols * (THUMB_W + PAD), header + rows * (thumb_h + CAPTION_H + PAD) + PAD),
                      (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    title_font = ImageFont.load_default(size=20)
    font = ImageFont.load_default(size=14)
    draw.text((PAD, 10), f"{plan.ad} - {plan.title} ({plan.duration} s, {plan.aspect_ratio})", fill=(240, 240, 240),
              font=title_font)
    for i, beat in enumerate(beats):
        r, c = divmod(i, cols)
        x = PAD + c * (THUMB_W + PAD)
        y = header + r * (thumb_h + CAPTION_H + PAD)
        src = paths.storyboard(beat.id)
        if src.exists():
            with open_image(src) as im:
                sheet.paste(im.convert("RGB").resize((THUMB_W, thumb_h), Image.Resampling.LANCZOS), (x, y))
        else:
            draw.rectangle((x, y, x + THUMB_W - 1, y + thumb_h - 1), outline=(120, 120, 120))
            draw.text((x + 8, y + 8), "not built", fill=(200, 200, 200), font=font)
        end = beat.start + beat.duration
        draw.text((x, y + thumb_h + 4), f"{i + 1}. {beat.id}  [{beat.type}]", fill=(240, 240, 240), font=font)
        draw.text((x, y + thumb_h + 24), f"{beat.start}-{end} s ({beat.duration} s, {beat.chunk_count} chunk"
                  f"{'s' if beat.chunk_count != 1 else ''})", fill=(170, 170, 180), font=font)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")  # not optimize=True: 9x slower (0.8 s per ad, bench/) for 5 % fewer bytes
    return out


# ---- the ad's page -----------------------------------------------------------------------------------


def page_inputs(build_dir: Path, ad: str) -> str:
    """What the page shows, hashed: the plan, the cost ledger's per-target figures and the final
    video's identity (size and mtime). The page is rewritten only when this changes."""
    paths = AdPaths.of(build_dir, ad)
    cost = ad_cost(build_dir, ad)
    items = [(i.target, i.cost_usd, i.cache_hit, i.key) for i in cost.items]
    try:
        st = paths.final.stat()
        final = (st.st_size, st.st_mtime_ns)
    except OSError:
        final = None
    plan = load_plan(paths)
    shown = [storyboard_sha256(paths.storyboard(b.id)) for b in plan.beats] \
        if plan is not None and plan.approval_required else None  # the approval marks follow the storyboards
    return sha256_json({"plan": plan.to_json() if plan is not None else None, "items": items, "final": final,
                        "v": 3, **({"approval": shown} if shown else {})})  # v3: own-media marks, no "running"


def report_is_current(ad: str) -> bool:
    """doit `uptodate` of report:<ad>: the page and sheet exist and show what is built now."""
    build_dir = load_settings().build_dir
    paths = AdPaths.of(build_dir, ad)
    page, sheet = paths.review_page, paths.contact_sheet
    if not (page.exists() and sheet.exists()):
        return False
    try:
        text = page.read_text(encoding="utf-8")
    except OSError:
        return False
    return _STAMP.format(page_inputs(build_dir, ad)) in text


def ad_context(build_dir: Path, ad: str) -> dict[str, Any]:
    paths = AdPaths.of(build_dir, ad)
    plan = load_plan(paths)
    cost = ad_cost(build_dir, ad)
    status = read_model_or_none(AdStatus, paths.status)
    by_target = {i.target: i for i in cost.items}
    beats = []
    if plan is not None:
        for i, b in enumerate(plan.beats):
            chunks = [by_target.get(task_name("chunk", ad, b.id, k)) for k in range(b.chunk_count)]
            sb = by_target.get(task_name("storyboard", ad, b.id))
            vo = by_target.get(task_name("voice", ad, b.id))
            chunks = [*chunks, vo] if vo else chunks
            beat_cost = sum(x.cost_usd for x in [sb, *chunks] if x)
            beats.append({
                "n": i + 1, "id": b.id, "type": b.type, "start": b.start, "end": b.start + b.duration,
                "duration": b.duration, "clips": list(b.clips), "image_prompt": b.image_prompt,
                "motion_prompt": b.motion_prompt, "image": f"beats/{b.id}/storyboard.png",
                "voiceover": b.voiceover, "voice": f"beats/{b.id}/voice.wav" if paths.voice(b.id).exists() else None,
                "image_exists": paths.storyboard(b.id).exists(), "cost_usd": beat_cost,
                "from_cache": all(x.cache_hit for x in [sb, *chunks] if x) and any([sb, *chunks]),
                # `approval: required`: approved / pending / stale (the storyboard on disk against `approved:`)
                "approval": None if not plan.approval_required else APPROVED if own_footage(b) else state_of(
                    b.approved, storyboard_sha256(paths.storyboard(b.id))),
                # made of the person's own media: its prompts are not what made its picture
                "own": "your footage" if own_footage(b) else "your still" if (b.own or {}).get("own_image") else None,
            })
    final = None
    if paths.final.exists():
        try:
            info = media.probe(paths.final)
            final = {"src": paths.final.name, "duration": round(info.duration, 3), "width": info.width,
                     "height": info.height, "vcodec": info.vcodec, "acodec": info.acodec}
        except Exception:  # a broken file still gets a page that says so
            final = {"src": paths.final.name, "duration": None, "width": None, "height": None, "vcodec": None, "acodec": None}
    # beats waiting for approval: a final still there is an earlier cut (the build leaves it), not this plan's
    waiting = any(b["approval"] not in (None, APPROVED) for b in beats)
    phases = [{"name": p, **dataclasses.asdict(cost.phases[p])} for p in PAID_PHASES]
    captions = paths.captions_vtt.name if paths.captions_vtt.exists() else None
    mode = render_mode(cost.items)
    return {
        "rendered": mode, "offline": mode in (OFFLINE_LABEL, "partly offline"),
        "captions": captions,
        "voice": f"{plan.voice_model} · {plan.voice_name} · ×{plan.voice_speed:g}" if plan is not None and plan.voiced else None,
        "ad": ad, "plan": plan, "beats": beats, "final": final, "cost": cost, "phases": phases,
        "earlier_cut": waiting and final is not None,
        "status": {
            # the page is written during a run: "running" there would stay after it ended
            "state": "waiting" if waiting else "built" if final else "not built",
            "updated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "tasks": dataclasses.asdict(status.tasks) if status else {},
            "last_error": status.last_error if status else None,
            "run": status.run if status else None,
            "run_cost": dataclasses.asdict(status.run_cost) if status else {},
        },
        "sheet": paths.contact_sheet.name,
        "music": plan is not None and not plan.native_audio,
    }


def write_ad_page(build_dir: Path, ad: str) -> Path:
    """build/<ad>/storyboard.png and build/<ad>/index.html."""
    paths = AdPaths.of(build_dir, ad)
    plan = load_plan(paths)
    if plan is not None:
        contact_sheet(plan, paths, paths.contact_sheet)
    ctx = ad_context(build_dir, ad)
    ctx["stamp"] = _STAMP.format(page_inputs(build_dir, ad))
    html = _env().get_template("ad.html.j2").render(**ctx)
    write_text_atomic(paths.review_page, html)
    return paths.review_page


def make_report(ad: str) -> None:
    """The action of report:<ad>."""
    write_ad_page(load_settings().build_dir, ad)


# ---- all ads ----------------------------------------------------------------------------------------


def _link(build_dir: Path, path: Path) -> str:
    """A file of an ad as build/index.html links it."""
    return path.relative_to(build_dir).as_posix()


def write_index(build_dir: Path, ads: Sequence[str]) -> Path:
    rows: list[dict[str, Any]] = []
    for ad in ads:
        paths = AdPaths.of(build_dir, ad)
        plan = load_plan(paths)
        cost = read_model_or_none(CostFile, paths.cost) or ad_cost(build_dir, ad)
        status = read_model_or_none(AdStatus, paths.status)
        state = status.state if status else None
        poster = None
        if plan is not None and plan.beats and paths.storyboard(plan.beats[0].id).exists():
            poster = _link(build_dir, paths.storyboard(plan.beats[0].id))
        rows.append({
            "ad": ad, "title": plan.title if plan else ad, "duration": plan.duration if plan else None,
            "aspect": plan.aspect_ratio if plan else "", "beats": len(plan.beats) if plan else 0,
            "page": _link(build_dir, paths.review_page) if paths.review_page.exists() else None,
            "final": _link(build_dir, paths.final) if paths.final.exists() else None, "poster": poster,
            # waiting for approval: a final there is an earlier cut (the ad's page says so)
            "state": "built" if paths.final.exists() and state not in ("failed", "waiting") else (state or "not built"),
            "last_error": status.last_error.message if status and status.last_error else None,
            "rendered": render_mode(cost.items),
            "spent_usd": cost.spent_usd, "saved_usd": cost.saved_usd, "total_usd": cost.total_usd,
        })
    totals = {k: sum(r[k] for r in rows) for k in ("spent_usd", "saved_usd", "total_usd")}
    html = _env().get_template("index.html.j2").render(
        rows=rows, totals=totals, updated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    out = build_index(build_dir)
    write_text_atomic(out, html)
    return out


def make_index(ads: Sequence[str]) -> None:
    """The action of `report`."""
    write_index(load_settings().build_dir, list(ads))
