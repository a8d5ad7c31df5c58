"""The typed shapes of adspec's own files under build/<ad>/, and how each is read and written.

    beats/<id>/beat.json   BeatInputs    what a beat's storyboard and chunks are made from
    beats/<id>/voice.json  VoiceInputs   what a beat's spoken line is made from, and its fit
    music.json             MusicInputs   what the music is made from
    timeline.json          Timeline      what stitch and mix are made from
    speech.json            Speech        where the lines are placed, how captions look
    plan.json              (adspec.plan_file.AdPlan, read and written with the helpers here)
    cost.json              CostFile      the ad's cost ledger (adspec.cost)
    status.json            AdStatus      the ad's live status (adspec.status)

Every file carries a `version`; the four plain records below carry theirs too (`RECORD_VERSIONS`):

    text.json              the text layer's inputs (written by the plan, compared byte for byte)
    text_layout.json       where the mix drew words (the delivery checks read it)
    stitch.json            what the stitch copied and re-encoded (for people)
    checks.json            the delivery checks' results

One of another version, or damaged (not JSON, a field missing or
of the wrong kind), reads as a `BuildFileError`: one line naming the file, never a KeyError. The
plan's files are derived, so the plan step treats such a file as stale and rewrites it
(adspec.plan_step.plan_is_current); cost.json and status.json are recomputed or started afresh.

The plan's files are written byte-stable (sorted keys, the same formatting every time, rewritten
only when their content changes): doit hashes them in `file_dep`. Receipts have their own module
(adspec.receipts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import BuildFileError
from .fsutil import write_if_changed, write_json_atomic
from .hashing import canonical_json

__all__ = [
    "BeatInputs", "VoiceInputs", "MusicInputs", "Timeline", "TimelineBeat", "Speech", "SpokenLineEntry",
    "CostFile", "CostItem", "PhaseCost", "LastRun", "AdStatus", "TaskCounts", "ChunkCounts", "RunningTask", "StatusCost",
    "RunCost", "LastError", "decode", "read_model", "read_model_or_none", "compact_text", "write_compact",
    "write_pretty", "RECORD_VERSIONS", "record_version",
]

#: the version each plain JSON record is written with; a record of another one is out of date
#: (its task runs again: it is derived, free, and never part of a paid recipe)
RECORD_VERSIONS: dict[str, int] = {"text.json": 1, "text_layout.json": 1, "stitch.json": 1, "checks.json": 1}


def record_version(path: str | Path) -> int | None:
    """The `version` a plain record was written with; None when it is missing, damaged or has none."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, int) else None


M = TypeVar("M")


# ---- decoding: JSON -> a model, every fault one line -----------------------------------------------


def _kind(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`; lists become tuples, objects dataclasses. Numbers are
    kept as written (an int in a float field stays an int), so a file read and written again is
    the same bytes."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        last: BuildFileError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except BuildFileError as e:
                last = e
        raise last or BuildFileError(f"{where}: unexpected value {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _fields_of(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise BuildFileError(f"{where}: a list was expected, not {type(value).__name__}")
        item = get_args(tp)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise BuildFileError(f"{where}: an object was expected, not {type(value).__name__}")
        item = get_args(tp)[1]
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }.get(tp)
    if ok is None:  # pragma: no cover - a model with a field type this decoder does not know
        raise TypeError(f"build_files: cannot decode {_kind(tp)}")
    if not ok(value):
        raise BuildFileError(f"{where}: {_kind(tp)} expected, not {value!r}")
    return value


@lru_cache(maxsize=None)
def _schema(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, optional) of each init field of a model. Cached: resolving the string
    annotations (`get_type_hints`) compiled them anew on every read, ~70 ms per ad of a no-op."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name],
                  f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
                 for f in fields(cls) if f.init)


def _fields_of(cls: type[M], data: Any, where: str) -> M:
    if not isinstance(data, dict):
        raise BuildFileError(f"{where}: an object was expected, not {type(data).__name__}")
    values: dict[str, Any] = {}
    for name, tp, optional in _schema(cls):  # type: ignore[arg-type]  # a class is hashable
        if name not in data:
            if optional:
                continue
            raise BuildFileError(f"{where}: the field '{name}' is missing")
        values[name] = _convert(tp, data[name], f"{where}: {name}")
    return cls(**values)


def decode(cls: type[M], data: Any, where: str | Path = "") -> M:
    """The model `cls` from parsed JSON: BuildFileError (one line, naming `where`) when it is of
    another version than `cls.VERSION`, or damaged."""
    where = str(where) or cls.__name__
    hint = getattr(cls, "REBUILT", "")
    try:
        if not isinstance(data, dict):
            raise BuildFileError(f"{where}: damaged (not a JSON object)")
        version = data.get("version")
        wanted = getattr(cls, "VERSION", None)
        if version != wanted:
            said = "no version" if version is None else f"version {version!r}"
            raise BuildFileError(f"{where}: written by another adspec ({said}; this one reads version {wanted})")
        return _fields_of(cls, data, where)
    except BuildFileError as e:
        raise BuildFileError(f"{e}{'; ' + hint if hint else ''}") from None


# what each file held when last read, by (model, path): a no-op `doit` asks for the same beat
# files in many tasks' up-to-date checks, and decoding them again cost ~30 ms per ad. Only frozen
# models are kept, and only while the file is the same (inode, size, mtime: adspec replaces a
# build file by renaming a new one over it, which gives it a new inode).
_read_cache: dict[tuple[type, str], tuple[tuple[int, int, int], Any]] = {}


def read_model(cls: type[M], path: str | Path) -> M:
    """The model in the file at `path`. A missing file is FileNotFoundError (as open() says it);
    a damaged one or one of another version, BuildFileError."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        key = (cls, str(path))
        hit = _read_cache.get(key)
        if hit is not None and hit[0] == stamp:
            model: M = hit[1]
            return model
        text = f.read().decode("utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        hint = getattr(cls, "REBUILT", "")
        raise BuildFileError(f"{path}: damaged (not JSON){'; ' + hint if hint else ''}") from None
    model = decode(cls, data, path)
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and params.frozen:
        _read_cache[key] = (stamp, model)
    return model


def read_model_or_none(cls: type[M], path: str | Path) -> M | None:
    """The model in the file at `path`, or None when it is missing, unreadable, damaged or of
    another version (for files that are recomputed or started afresh when so)."""
    try:
        return read_model(cls, path)
    except (OSError, BuildFileError):
        return None


# ---- encoding ----------------------------------------------------------------------------------------


def _to_json(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = asdict(model)
    return out


def compact_text(model: Any) -> str:
    """The file's bytes for one of the plan's files: canonical JSON (sorted keys, no spaces) and
    a newline, the same for the same content."""
    return canonical_json(model.to_json()) + "\n"


def write_compact(path: str | Path, model: Any) -> bool:
    """Write one of the plan's files, only when its content changes (doit hashes it)."""
    return write_if_changed(path, compact_text(model))


def write_pretty(path: str | Path, data: dict[str, Any]) -> None:
    """Write a file people read (cost.json, status.json): indented, sorted keys, atomically."""
    write_json_atomic(path, data)


_PLAN_FILES = "run doit again: the plan step rewrites the plan's files"


# ---- the plan's files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BeatInputs:
    """beats/<id>/beat.json: a beat's own fields and the ad-wide look, never its position."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = _PLAN_FILES

    id: str
    type: str
    duration: int
    clips: tuple[int, ...]  # clip lengths of its chunks; the last one is trimmed
    image_prompt: str | None  # None: your own still or footage (nothing asked with it)
    motion_prompt: str | None  # None: your own footage
    aspect_ratio: str
    width: int
    height: int
    seed: int
    style: str
    palette: tuple[str, ...]
    brand_name: str | None
    reference: str | None  # absolute path of the product reference image
    image_model: str  # the beat's own model, else the ad's
    video_model: str
    native_audio: bool
    local: bool = False  # an end card the text layer composes: its picture is rendered locally, never paid
    version: int = VERSION
    # a beat's own still or footage, and what it shows: written only when set, so the inputs of
    # beats without them stay byte for byte as they were
    own_image: str | None = None  # absolute path of the beat's own still
    own_image_sha256: str | None = None
    footage: str | None = None  # absolute path of the beat's own footage
    footage_sha256: str | None = None
    footage_from: float | None = None  # where in the footage the beat starts (seconds)
    references: tuple[dict[str, Any], ...] | None = None  # what it shows: [{name, role, path}]

    OPTIONAL: ClassVar[tuple[str, ...]] = ("own_image", "own_image_sha256", "footage", "footage_sha256",
                                            "footage_from", "references")

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self)
        if not out["local"]:  # only when set: other beats' files stay as they were
            del out["local"]
        for key in self.OPTIONAL:
            if out[key] is None:
                del out[key]
        return out

    @property
    def is_own(self) -> bool:
        """Whether the beat is made of your own still or footage (no image model is asked)."""
        return bool(self.own_image or self.footage)


@dataclass(frozen=True)
class VoiceInputs:
    """beats/<id>/voice.json: the paid part of a line (text, model, voice, speed) and its local
    fit (the beat's duration and the library's rules), never its position."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = _PLAN_FILES

    id: str
    text: str
    model: str
    voice: str
    speed: float
    duration: int
    lead_in: float
    tail: float
    max_speedup: float
    language: str = "en"  # BCP 47: which voice the offline model speaks the line with
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True)
class MusicInputs:
    """music.json: the plan's music fields and the total duration only."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = _PLAN_FILES

    prompt: str
    bpm: int
    seconds: int
    seed: int
    model: str
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True)
class TimelineBeat:
    id: str
    start: int
    duration: int
    clips: tuple[int, ...]


@dataclass(frozen=True)
class Timeline:
    """timeline.json: the beats in order, each trimmed to its duration (stitch and mix)."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = _PLAN_FILES

    width: int
    height: int
    fps: int
    duration: int
    native_audio: bool
    beats: tuple[TimelineBeat, ...]
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    def shown_clips(self) -> list[tuple[str, int, int]]:
        """(beat id, chunk index, seconds shown) of every clip, in the order the stitch joins
        them: a beat's last clip is cut to what the beat has left."""
        out = []
        for beat in self.beats:
            left = beat.duration
            for index, clip in enumerate(beat.clips):
                use = min(clip, left)
                out.append((beat.id, index, use))
                left -= use
        return out


@dataclass(frozen=True)
class SpokenLineEntry:
    id: str
    start: int
    duration: int
    lead_in: float
    text: str


@dataclass(frozen=True)
class Speech:
    """speech.json: each spoken line at its beat's start, and how captions look."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = _PLAN_FILES

    width: int
    height: int
    aspect_ratio: str
    palette: tuple[str, ...]
    captions: dict[str, Any] | None  # burn, font (absolute path or None), color, box, size
    lines: tuple[SpokenLineEntry, ...]
    safe_zones: dict[str, dict[str, float]] | None = None  # placement id -> its safe zone (AdPlan.safe_zones)
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


# ---- cost.json -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostItem:
    """One current paid artifact and what its receipt says."""

    target: str
    phase: str
    path: str  # relative to build/<ad>
    cost_usd: float
    cache_hit: bool
    model: str | None
    provider: str | None
    job_id: str | None
    key: str | None
    generated_at: str | None


@dataclass(frozen=True)
class PhaseCost:
    spent_usd: float
    saved_usd: float
    total_usd: float
    requests: int
    from_cache: int


@dataclass(frozen=True)
class LastRun:
    """What the last doit run did for the ad (adspec.progress)."""

    run: str
    started_at: str
    finished_at: str
    spent_usd: float
    saved_usd: float
    ran: int
    up_to_date: int
    failed: int
    paid_requests: int
    from_cache: int


@dataclass(frozen=True)
class CostFile:
    """cost.json: what the build of the current artifacts spent (`spent_usd`), what came from the
    cache (`saved_usd`), and `total_usd` = spent + saved, per phase and in total."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = "it is recomputed from the receipts by the next doit"

    ad: str
    currency: str
    spent_usd: float
    saved_usd: float
    total_usd: float
    phases: dict[str, PhaseCost]
    items: tuple[CostItem, ...]
    not_built: tuple[str, ...]
    last_run: LastRun | None = None  # absent until a run ends
    updated_at: str | None = None
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self)
        for optional in ("last_run", "updated_at"):  # absent, not null, as before versions
            if out[optional] is None:
                del out[optional]
        return out


# ---- status.json -----------------------------------------------------------------------------------


@dataclass
class TaskCounts:
    total: int = 0
    done: int = 0
    run: int = 0
    up_to_date: int = 0
    failed: int = 0


@dataclass
class ChunkCounts:
    done: int = 0
    total: int = 0
    current: tuple[str, ...] = ()  # `<beat>/<k>` of the chunks being made


@dataclass
class RunningTask:
    since: float
    provider_status: str | None = None
    status_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"since": self.since}
        if self.provider_status is not None:
            out.update(provider_status=self.provider_status, status_since=self.status_since)
        return out


@dataclass
class StatusCost:
    spent_usd: float = 0.0
    saved_usd: float = 0.0
    total_usd: float = 0.0
    run_spent_usd: float = 0.0
    run_saved_usd: float = 0.0


@dataclass
class RunCost:
    spent_usd: float = 0.0
    saved_usd: float = 0.0


@dataclass
class LastError:
    task: str
    message: str
    time: str


@dataclass
class AdStatus:
    """status.json: the ad's live progress (see adspec.status for who writes what)."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = "the next doit starts it afresh"

    ad: str
    state: str | None = None  # running, done, waiting (for approval), partial (some targets), failed, interrupted, ignored, cleaned
    phase: str | None = None
    progress_pct: float = 0.0
    ignored: tuple[str, ...] = ()
    tasks: TaskCounts = field(default_factory=TaskCounts)
    chunks: ChunkCounts = field(default_factory=ChunkCounts)
    running: dict[str, RunningTask] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # task -> path relative to build/<ad>
    cost: StatusCost = field(default_factory=StatusCost)
    run_cost: RunCost = field(default_factory=RunCost)
    final: str | None = None
    review: str | None = None
    last_error: LastError | None = None
    run: str | None = None
    pid: int | None = None
    started_at: str | None = None
    updated_at: str | None = None
    cleaned_at: str | None = None
    rendered: str | None = None  # how the picture was made (`adspec status` fills it in from cost.json)
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self)
        out["running"] = {task: r.to_json() for task, r in sorted(self.running.items())}
        for optional in ("pid", "cleaned_at", "rendered"):  # absent, not null, as before versions
            if out[optional] is None:
                del out[optional]
        return out
