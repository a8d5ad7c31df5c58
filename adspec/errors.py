"""Typed errors, and the one place an error becomes the line a user sees (`error_line`).

The tree:

    AdspecError                  anything adspec reports as one line, without a traceback
    ├── SpecError                a spec or beat file is invalid: file, line, field
    │   ├── SpecErrors           all the errors of one file at once (the first few shown)
    │   └── SpecWarning          not an error: a rule of the beat library broken (validate says so)
    │   └── LibraryError         the beat library's own data (adspec.library)
    ├── LockError                the spec changed and the hand-edited beat file no longer fits it
    ├── MediaError               ffmpeg failed, or an artifact is not the media it claims to be
    ├── ProviderError            a provider call failed (retryable / resumable)
    │   └── BadOutputError       a paid prediction served a file that is not media
    ├── CacheError               the request cache or blob store cannot be used
    ├── BuildFileError           a file of adspec's own under build/ is of another version, or damaged
    ├── BudgetError              a run would spend more than ADSPEC_BUDGET_USD
    ├── ShardError               ADSPEC_SHARD is not i/n
    ├── RemoteConfigError        ADSPEC_REMOTE_CACHE is malformed or cannot be used
    └── ProvenanceError          a C2PA manifest cannot be signed (key, certificate, c2pa)
    config.SettingsError         another ADSPEC_* value adspec cannot use (ADSPEC_MAX_INFLIGHT=0)
    OSError of the machine       disk full, read-only, no permission...: also one line
    anything else                a bug: its traceback is shown

`error_line` is used by every edge: the `adspec` commands, doit's task actions (adspec.graph)
and the dodo file, so the same fault reads the same under `adspec plan`, `adspec build` and
`doit`. Nothing here may contain a secret: messages are built from our own data, never from
request headers or environment values.
"""

from __future__ import annotations

import errno
import os
from os import PathLike
from pathlib import Path

from .config import SettingsError, load_settings


class AdspecError(Exception):
    """Base of every error adspec reports to a user as one line, without a traceback."""

    def one_line(self) -> str:
        return " ".join(str(self).split())


def shown_path(path: str) -> str:
    """A file as its user would type it: relative to the current folder when it is inside it
    (`specs/x.yaml:3: ...` under doit as under `adspec validate specs/x.yaml`)."""
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return str(p.relative_to(Path.cwd()))
    except (ValueError, OSError):  # elsewhere, or the current folder is gone
        return path


class SpecError(AdspecError):
    """A spec or beat file is invalid: names the file, the line and the field."""

    def __init__(self, path: str | PathLike[str], line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        shown = shown_path(self.path)
        where = shown if line is None else f"{shown}:{line}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class SpecErrors(SpecError):
    """Every error of one file at once: reads as its first error; `one_line` shows the first
    SHOWN, one per line, then how many more there are and to run `adspec validate`."""

    SHOWN = 5

    def __init__(self, errors: "list[SpecError]"):
        first = errors[0]
        super().__init__(first.path, first.line, first.field, first.message)
        self.errors = list(errors)

    def one_line(self) -> str:
        lines = [e.one_line() for e in self.errors[: self.SHOWN]]
        more = len(self.errors) - self.SHOWN
        if more > 0:
            shown = shown_path(self.path)
            lines.append(f"{shown}: ... and {more} more error{'s' if more != 1 else ''}; "
                         f"run `adspec validate {shown}` to see them all")
        return "\n".join(lines)


class SpecWarning(SpecError):
    """Not an error: the file builds, but breaks a rule worth knowing (e.g. the beat library's)."""

    def __init__(self, path: str | PathLike[str], line: int | None, field: str | None, message: str):
        super().__init__(path, line, field, f"warning: {message}")


def raise_errors(errors: "list[SpecError]") -> None:
    """Raise the errors of one file: the error itself when there is one, else SpecErrors."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)


class LockError(AdspecError):
    """The spec changed since planning and the beat file, edited by hand, no longer fits it."""


class MediaError(AdspecError):
    """An ffmpeg operation failed or an artifact is not the media it claims to be."""


class ProviderError(AdspecError):
    """A provider call failed (the target can be retried by running doit again).

    `retryable`: running doit again may succeed (false for bad input such as a 422).
    `resumable`: the provider's job may still finish or be fetched (e.g. polling failed).
    `ended`: the provider itself answered that this request is over (its prediction failed, was
    cancelled, or its output expired): only then does the cache forget the stored job id or
    "a create was sent" mark, so a retry creates anew. Any other failure (401, 403, 404, a
    dropped connection, a failing list) says nothing about the prediction: the mark stays.
    `spent_usd`: what the failed call was billed for all the same (e.g. planner replies that
    could not be used); `maybe_billed`: its last request went out and the answer was lost, so
    it may have been billed too. The budget and the cache's ledger count both."""

    def __init__(self, message: str, *, retryable: bool = True, resumable: bool = False, ended: bool = False,
                 spent_usd: float = 0.0, maybe_billed: bool = False, attempts: int = 0):
        self.retryable = retryable
        self.resumable = resumable
        self.ended = ended
        self.spent_usd = spent_usd
        self.maybe_billed = maybe_billed
        self.attempts = attempts  # requests sent (0: not counted by this provider)
        super().__init__(message)


class BadOutputError(ProviderError):
    """A prediction succeeded (it is paid for) but the file it serves is not media: `sha256` of
    the bytes served and what the prediction cost, for the cache's corrupt-output rule."""

    def __init__(self, message: str, *, sha256: str, cost_usd: float):
        super().__init__(message, retryable=True, resumable=True)
        self.sha256 = sha256
        self.cost_usd = cost_usd


class CacheError(AdspecError):
    """The request cache or blob store cannot be used (unwritable, evicting, corrupt)."""


class BuildFileError(AdspecError, ValueError):
    """One of adspec's own build files (beat.json, plan.json, cost.json...) is of another
    version or damaged (adspec.build_files). A ValueError too: readers that treat an unreadable
    file as stale (an `uptodate` check) see it as they see bad JSON."""


class BudgetError(AdspecError):
    """A run would spend more than ADSPEC_BUDGET_USD."""


class ShardError(AdspecError):
    """ADSPEC_SHARD is not `i/n` with 1 <= i <= n."""


class RemoteConfigError(AdspecError):
    """ADSPEC_REMOTE_CACHE cannot be used (malformed, carries credentials, boto3 missing)."""


#: OSErrors that are the machine's fault, not a bug: reported as one line
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                            errno.ENOTDIR, errno.EMFILE, errno.ENFILE, errno.EFBIG})


def os_error_line(e: OSError) -> str:
    """One line for an OSError of the machine: the file, the reason, what to do."""
    where = e.filename2 or e.filename
    text = f"{where}: {e.strerror}" if where else f"{e.strerror or e}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space, then run doit again: nothing half-written is kept)"
    return " ".join(text.split())


def removed_meanwhile(e: OSError) -> bool:
    """Whether a missing file is one of the build's own (under the build folder): something
    removed it while the task ran. A missing file elsewhere is a bug and keeps its traceback."""
    build = Path(load_settings().build_dir).absolute()
    for name in (e.filename, e.filename2):
        if name is not None and Path(os.fsdecode(name)).absolute().is_relative_to(build):
            return True
    return False


class ProvenanceError(AdspecError):
    """A C2PA manifest cannot be made or signed (adspec.provenance)."""


def error_line(e: BaseException) -> str | None:
    """The one line a user sees for `e`, or None when `e` is a bug (show its traceback)."""
    if isinstance(e, AdspecError):
        return e.one_line()
    if isinstance(e, SettingsError):
        return str(e)
    if isinstance(e, OSError) and e.errno in MACHINE_ERRNOS:
        return os_error_line(e)
    if isinstance(e, OSError) and e.errno == errno.ENOENT and removed_meanwhile(e):
        return os_error_line(e) + " (removed during the run: `rm -rf build` or `doit clean`?); run doit again"
    return None
