"""Typed errors. They carry facts; the CLI edge (adspec.cli / the doit reporter) turns them
into one-line messages. Nothing here may contain a secret: messages are built from our own
data, never from request headers or environment values."""

from __future__ import annotations


class AdspecError(Exception):
    """Base of every error adspec reports to a user as one line, without a traceback."""

    def one_line(self) -> str:
        return " ".join(str(self).split())


class SpecError(AdspecError):
    """A spec or beat file is invalid: names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class LockError(AdspecError):
    """The beat file was edited by hand and the spec changed since planning."""


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


class BudgetError(AdspecError):
    """A run would spend more than ADSPEC_BUDGET_USD."""
