"""Settings: every ADSPEC_* variable (and whether the providers' keys are set), read here only and
passed down as one value. The keys themselves stay in the environment, where the provider clients
read them: a secret never travels through adspec's own values."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """An ADSPEC_* variable with a value adspec cannot use (a one-line error: adspec.errors)."""


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "adspec"


@dataclass(frozen=True)
class Settings:
    specs_dir: Path
    build_dir: Path
    cache_dir: Path
    offline_forced: bool
    has_openai_key: bool
    has_replicate_token: bool
    budget_usd: float
    shard: str | None = None  # ADSPEC_SHARD, `i/n` (parsed by adspec.shard where ads are chosen)
    progress: str = "auto"  # ADSPEC_PROGRESS: plain | live | auto (live on a terminal)
    wait_notice_s: float = 10.0  # ADSPEC_WAIT_NOTICE: a provider wait this long gets a line (plain mode)
    ffmpeg: str | None = None  # ADSPEC_FFMPEG: the ffmpeg binary
    replicate_timeout_s: float = 1800.0  # ADSPEC_REPLICATE_TIMEOUT: the longest wait for one prediction
    remote_cache: str | None = None  # ADSPEC_REMOTE_CACHE: s3://bucket/prefix (adspec.remote)
    remote_endpoint: str | None = None  # ADSPEC_REMOTE_ENDPOINT: an S3-compatible server
    max_inflight: int | None = None  # ADSPEC_MAX_INFLIGHT: provider calls in flight at once (adspec.limits)
    cpu_jobs: int | None = None  # ADSPEC_CPU_JOBS: local media jobs at once (default: one per core)
    claim_stale_s: float = 60.0  # ADSPEC_CLAIM_STALE: a shared-store claim unchanged this long is a dead runner's

    @property
    def live_planner(self) -> bool:
        return self.has_openai_key and not self.offline_forced

    @property
    def live_media(self) -> bool:
        return self.has_replicate_token and not self.offline_forced


PROJECT_MARKERS = ("dodo.py", "specs")  # what makes a folder an adspec project's root


def find_project(start: Path) -> Path | None:
    """The adspec project `start` is in: the nearest folder, `start` or one above it, holding a
    dodo.py or a specs/ folder (as `doit -k` seeks dodo.py upwards); None when there is none."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / "dodo.py").is_file() or (folder / "specs").is_dir():
            return folder
    return None


def as_live(settings: Settings) -> Settings:
    """`settings` as a build with every provider key would see them (`adspec estimate --live`):
    only the choice of providers changes; no key is made up, none is read."""
    return replace(settings, offline_forced=False, has_openai_key=True, has_replicate_token=True)


def load_settings(env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
    """Folders are relative to `root` unless absolute: by default the project the working
    directory is in (see `find_project`), so adspec works from any subfolder of it."""
    env = os.environ if env is None else env
    if root is None:
        cwd = Path.cwd()
        root = find_project(cwd) or cwd
    backend = env.get("ADSPEC_BACKEND", "").strip().lower()
    if backend not in ("", "offline"):  # a typo must not leave a build free to pay the providers
        raise SettingsError(f"ADSPEC_BACKEND={env.get('ADSPEC_BACKEND')!r}: expected offline (or unset: the "
                            "providers whose keys are set)")
    _check_video_kbps(env)
    _check_base_urls(env, backend)
    for name, values in _SWITCHES.items():
        _check_choice(env, name, values)
    return Settings(
        specs_dir=(root / env.get("ADSPEC_SPECS", "specs")).absolute(),
        build_dir=(root / env.get("ADSPEC_BUILD", "build")).absolute(),
        cache_dir=Path(env.get("ADSPEC_CACHE_DIR") or _default_cache_dir(env)).absolute(),
        offline_forced=backend == "offline",
        has_openai_key=bool(env.get("OPENAI_API_KEY")),
        has_replicate_token=bool(env.get("REPLICATE_API_TOKEN")),
        budget_usd=_number(env, "ADSPEC_BUDGET_USD", 5.00),
        shard=env.get("ADSPEC_SHARD"),
        progress=env.get("ADSPEC_PROGRESS", "auto").strip().lower(),
        wait_notice_s=_number(env, "ADSPEC_WAIT_NOTICE", 10.0),
        ffmpeg=_program(env, "ADSPEC_FFMPEG"),
        replicate_timeout_s=_number(env, "ADSPEC_REPLICATE_TIMEOUT", 1800.0, above_zero=True),
        remote_cache=(env.get("ADSPEC_REMOTE_CACHE") or "").strip() or None,
        remote_endpoint=(env.get("ADSPEC_REMOTE_ENDPOINT") or "").strip() or None,
        max_inflight=_positive_int(env, "ADSPEC_MAX_INFLIGHT"),
        cpu_jobs=_positive_int(env, "ADSPEC_CPU_JOBS"),
        claim_stale_s=_number(env, "ADSPEC_CLAIM_STALE", 60.0, above_zero=True),
    )


def _number(env: Mapping[str, str], name: str, default: float, above_zero: bool = False) -> float:
    """A finite number >= 0 (> 0 with `above_zero`) from `name` (`default` when unset); anything
    else is a one-line error (`inf` is no cap and no wait a user can mean; 0 is no wait at all)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and (value > 0 if above_zero else value >= 0)):  # also NaN
        raise SettingsError(f"{name}={raw!r}: expected a number {'above' if above_zero else 'of at least'} 0")
    return value


_ON_OFF = ("on", "off", "1", "0", "true", "false", "yes", "no")
#: variables read where they act (adspec.progress, provenance, noop_stamp), checked here once
_SWITCHES = {"ADSPEC_PROGRESS": ("auto", "plain", "live"), "ADSPEC_C2PA": _ON_OFF, "ADSPEC_FAST_NOOP": _ON_OFF}


def _check_choice(env: Mapping[str, str], name: str, values: tuple[str, ...]) -> None:
    """A variable that takes one of a few words: another is a one-line error, not the default."""
    raw = (env.get(name) or "").strip()
    if raw and raw.lower() not in values:
        raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(values)}")


#: `video_kbps_setting` when ADSPEC_VIDEO_KBPS is unset (and what a record of none reads as)
VIDEO_KBPS_DEFAULT = "table"


def video_kbps_setting(env: Mapping[str, str] | None = None) -> str:
    """ADSPEC_VIDEO_KBPS as the encoder takes it: "table" (unset: the platforms' figures, see
    adspec.media.video_kbps), "crf", or the kb/s it comes to. The config of the tasks that encode
    the ad's video (adspec.graph): another value re-encodes their files, locally."""
    raw = ((os.environ if env is None else env).get("ADSPEC_VIDEO_KBPS") or "").strip().lower()
    if raw in ("", "crf"):
        return raw or VIDEO_KBPS_DEFAULT
    try:
        return str(max(100, int(float(raw))))
    except ValueError:
        return raw  # refused by _check_video_kbps before any task runs


def _check_video_kbps(env: Mapping[str, str]) -> None:
    """ADSPEC_VIDEO_KBPS (read where videos are encoded, adspec.media): said here, once, before any
    work, not as a traceback from the first encode."""
    raw = (env.get("ADSPEC_VIDEO_KBPS") or "").strip()
    if not raw or raw.lower() == "crf":
        return
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 100:  # also NaN
        raise SettingsError(f"ADSPEC_VIDEO_KBPS={raw!r}: expected a number of kb/s of at least 100, or crf")


#: the providers' base URLs (read by their clients), with the key that makes them used
_BASE_URLS = {"REPLICATE_BASE_URL": "REPLICATE_API_TOKEN", "OPENAI_BASE_URL": "OPENAI_API_KEY"}


def _check_base_urls(env: Mapping[str, str], backend: str) -> None:
    """A provider's base URL without http:// or https:// (`127.0.0.1:9000`): said here, once,
    instead of every paid target failing as if its request might have been sent."""
    if backend == "offline":
        return
    for name, key in _BASE_URLS.items():
        raw = (env.get(name) or "").strip()
        if raw and env.get(key) and urlsplit(raw).scheme.lower() not in ("http", "https"):
            shown = repr(raw) if "@" not in raw else "(an address with user info, not shown)"
            raise SettingsError(f"{name}={shown}: expected an http:// or https:// address")


def _program(env: Mapping[str, str], name: str) -> str | None:
    """A program to run (a path or a name on PATH), None when unset; one that cannot be found is a
    one-line error here, not a traceback from every task that runs it."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if shutil.which(raw) is None:
        raise SettingsError(f"{name}={raw!r}: no such program (a path to an executable, or a name on PATH)")
    return raw


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    """A whole number >= 1 from `name`, None when unset; anything else is a one-line error."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: expected a whole number of at least 1")
    return value
