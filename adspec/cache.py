"""The request cache: recipe key -> artifact, so no request is ever paid for twice.

- Entries live in a diskcache `Cache` with eviction off (it would otherwise drop paid results
  silently past 1 GiB); artifacts live in a content-addressed blob store beside it.
- A per-key file lock (`flock`) makes two threads or processes asking the same key make one
  call; the kernel drops the lock when its holder dies, so a killed build never deadlocks the next.
- The provider's job id is stored before waiting on it, and "a create is being sent" (with the
  time) before sending it, so a run killed mid-wait resumes the same job instead of paying for
  another. Only the provider's terminal answer (`ProviderError.ended`) forgets them.
- A corrupt output (a succeeded prediction whose file is not media): the first run keeps the
  prediction and downloads it again next time; when the same bad bytes come back in a second
  run the output is corrupt at the provider, and it is re-requested once (a paid retry, in the
  ledger). A second corrupt output stops the target until `adspec cache forget KEY`.
- An entry whose blob is missing or whose bytes do not match is reported and treated as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import diskcache

from .cache_entry import Entry
from .errors import AdspecError, BadOutputError, CacheError, ProviderError
from .file_locks import locked
from .fsutil import atomic_path
from .hashing import canonical_json, sha256_file
from .providers.base import RunResult
from .recipes import LOCAL_PROVIDERS, Recipe
from .remote import describe_error, open_remote
from .remote_claims import POLL_S, ClaimLost, Claims, Holding, Seen, runner_id

log = logging.getLogger("adspec.cache")

Runner = Callable[[Recipe, "DurableJob", Path], RunResult]  # a provider's `run`
Verifier = Callable[[Path], None]

_PENDING = "pending:"
_ENTRY = "entry:"
_CHECK = "check"  # a digest of the rest of an entry's record: an edited record is not served
# what unpickling a value edited behind our back raises
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
                    KeyError, UnicodeDecodeError, MemoryError)


@dataclass(frozen=True)
class Fetched:
    """An artifact served by the cache: `hit` says whether this call paid for it."""

    path: Path  # the blob (read-only: copy it, never edit it)
    entry: Entry
    hit: bool


class DurableJob:
    """The Job handed to a provider: every state change is written to the cache at once."""

    def __init__(self, cache: "RequestCache", key: str, on_progress: Callable[[str], None] | None = None,
                 label: str | None = None, holding: Holding | None = None):
        self._cache, self._key, self._on_progress = cache, key, on_progress
        self._holding = holding  # this runner's claim in the shared store, told what happens
        self.label = label  # e.g. "trailrunner/hook chunk 1": providers put it in their errors
        pending = cache.pending(key) or {}
        self.resume_id: str | None = pending.get("job_id")
        self.sent_before: bool = bool(pending.get("sending")) and not self.resume_id
        # when the earlier create was sent (its look-up lists back to then); None if unknown
        sent_at = pending.get("time")
        self.sent_at: float | None = float(sent_at) if self.sent_before and isinstance(sent_at, (int, float)) else None
        # what outlives one prediction: the corrupt-output rule's record
        self._history: dict[str, Any] = {k: pending[k] for k in ("corrupt_retries", "corrupt") if k in pending}
        self._first_send: float | None = None

    def sending(self) -> None:
        """Recorded before each create goes out: the time of this run's first send, so a look-up
        after a lost answer lists back far enough for every attempt."""
        first = self._first_send or time.time()
        if self._holding is not None:  # ClaimLost: another runner took the key over; nothing is sent
            self._holding.before_sending(sending=True, sent_at=first, job_id=None)
        self._first_send = self.sent_at = first
        self._cache._set_pending(self._key, {**self._history, "sending": True, "job_id": None, "time": first})

    def started(self, job_id: str) -> None:
        self.resume_id = job_id
        self._cache._set_pending(self._key, {**self._history, "sending": False, "job_id": job_id, "time": time.time()})
        if self._holding is not None:
            self._holding.record(sending=False, job_id=job_id)

    def progress(self, status: str) -> None:
        if self._on_progress:
            self._on_progress(status)


def shared(recipe: Recipe) -> bool:
    """Whether a request goes through the shared cache: a paid provider's (offline renders and your
    own media are made here for free, and uploading them only fills the bucket)."""
    return recipe.provider not in LOCAL_PROVIDERS


def pays_nothing_new(pending: dict[str, Any] | None) -> bool:
    """Whether the next run settles a pending request without a new payment: a prediction paid
    for and pending is resumed; a corrupt output already re-requested once stops (see
    `describe_pending`, whose cases these are). The budget and the estimate price it at $0."""
    if not pending:
        return False
    bad = isinstance(pending.get("bad_output"), dict)
    job = pending.get("job_id")
    corrupt = [str(x) for x in pending.get("corrupt") or []]
    if bad:
        return job in corrupt or int(pending.get("corrupt_retries") or 0) > 0
    return bool(job)


def describe_pending(pending: dict[str, Any] | None) -> str | None:
    """For people (`adspec estimate`, `adspec cache show`): what the next run does with a
    request that has a pending record, or None when there is none."""
    if not pending:
        return None
    corrupt = [str(x) for x in pending.get("corrupt") or []]
    retries = int(pending.get("corrupt_retries") or 0)
    bad = pending.get("bad_output") if isinstance(pending.get("bad_output"), dict) else None
    job = pending.get("job_id")
    if bad and job in corrupt:
        return (f"stopped: prediction {job}'s output is corrupt, after one paid re-request "
                f"({', '.join(corrupt)}); `adspec cache forget KEY` to pay for another")
    if bad and retries:
        return (f"prediction {job}, the paid re-request of corrupt {', '.join(corrupt)}, gave a file that is not media: "
                "the next run downloads it again and stops if it is the same (no third payment)")
    if bad:
        return (f"prediction {job} gave a file that is not media: the next run downloads it again and, if it is "
                "the same file, re-requests it once (a paid retry)")
    if job:
        return f"prediction {job} is paid for and pending: the next run resumes it (no new payment)"
    if pending.get("sending"):
        when = pending.get("time")
        at = time.strftime(" at %Y-%m-%d %H:%M UTC", time.gmtime(when)) if isinstance(when, (int, float)) else ""
        return (f"a create was sent{at} and its answer lost: the next run looks for that prediction before "
                "paying, and stops if it cannot tell")
    if retries:
        return f"re-requesting corrupt output of {', '.join(corrupt)} (a paid retry)"
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
        # some filesystems cannot sync a folder: the rename is still atomic
    finally:
        os.close(fd)


def _check_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode("utf-8")).hexdigest()


def _entry_of(raw: Any) -> Entry | None:
    """The Entry a stored record describes, or None when the record is damaged or was edited
    (its check digest differs; records written before the digest existed have none)."""
    if not isinstance(raw, dict):
        return None
    fields = dict(raw)
    check = fields.pop(_CHECK, None)
    if check is not None and check != _check_of(fields):
        return None
    try:
        entry = Entry(**fields)
    except TypeError:
        return None
    sha = entry.sha256
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
            and isinstance(entry.size, int)):
        return None
    return entry


def _db_failure(root: Path, e: BaseException) -> CacheError:
    if "full" in str(e):
        what = "is full: free some space"
    else:
        what = "is damaged: move it aside to start afresh (the paid artifacts in blobs/ stay)"
    return CacheError(f"the request cache's database {root / 'requests'} {what} ({e}); then run doit again")


class _Guarded:
    """The diskcache.Cache, its failures in adspec's terms: a damaged or full database is a
    CacheError (one line, what to do); a value that no longer unpickles is reported and
    dropped, a miss."""

    def __init__(self, db: diskcache.Cache, root: Path, on_damage: Callable[[str, BaseException], None]):
        self._inner, self._root, self._on_damage = db, root, on_damage

    @property
    def eviction_policy(self) -> str:
        return self._inner.eviction_policy

    def _failure(self, e: BaseException) -> CacheError:
        return _db_failure(self._root, e)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self._inner.get(name, default)
        except sqlite3.DatabaseError as e:
            raise self._failure(e) from None
        except _UNPICKLE_ERRORS as e:
            self._on_damage(name, e)
            return default

    def set(self, name: str, value: Any) -> bool:
        try:
            return self._inner.set(name, value)
        except sqlite3.DatabaseError as e:
            raise self._failure(e) from None

    def delete(self, name: str) -> bool:
        try:
            return self._inner.delete(name)
        except sqlite3.DatabaseError as e:
            raise self._failure(e) from None

    def iterkeys(self) -> Iterator[Any]:
        try:
            yield from self._inner.iterkeys()
        except sqlite3.DatabaseError as e:
            raise self._failure(e) from None

    def close(self) -> None:
        self._inner.close()


class RequestCache:
    def __init__(self, root: str | Path, remote: Any = None, claim_stale_s: float | None = None):
        self.root = Path(root)
        self.remote = remote  # adspec.remote.RemoteCache (ADSPEC_REMOTE_CACHE) or None
        self.claim_stale_s = claim_stale_s  # a claim unchanged this long is a dead runner's (remote_claims)
        self._claims_obj: Claims | None = None
        self._claims_lock = threading.Lock()
        self.blob_dir = self.root / "blobs"
        self.lock_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self.rejected_dir = self.root / "rejected"
        try:
            for d in (self.blob_dir, self.lock_dir, self.tmp_dir, self.rejected_dir):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.tmp_dir / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
            db = diskcache.Cache(str(self.root / "requests"), eviction_policy="none", size_limit=2**62)
        except OSError as e:
            raise CacheError(f"cache folder {self.root} is not writable ({e.strerror}); set ADSPEC_CACHE_DIR") from None
        except sqlite3.DatabaseError as e:
            raise _db_failure(self.root, e) from None
        self._db = _Guarded(db, self.root, self._damaged)
        if self._db.eviction_policy != "none":  # pragma: no cover - diskcache honours the argument
            raise CacheError(f"cache {self.root} would evict paid results; open it with eviction off")
        self.problems: list[str] = []  # corrupt entries seen by this process, for reporting
        self.ledger_path = self.root / "ledger.jsonl"

    def close(self) -> None:
        self._db.close()

    def _damaged(self, name: str, e: BaseException) -> None:
        """A record that no longer unpickles: reported and dropped, never served."""
        message = f"cache record {name[:20]} dropped: it is unreadable ({type(e).__name__}); it will be regenerated"
        log.warning(message)
        self.problems.append(message)
        try:
            self._db._inner.delete(name)
        except Exception:  # noqa: BLE001 - the report above is what matters
            pass

    def _put_entry(self, key: str, entry: Entry) -> None:
        fields = entry.to_dict()
        self._db.set(_ENTRY + key, {**fields, _CHECK: _check_of(fields)})

    # ---- entries -------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256

    def get(self, key: str) -> Entry | None:
        """The entry for `key` if its blob is present and intact; a damaged one is reported and
        dropped (a miss), never served."""
        raw = self._db.get(_ENTRY + key)
        if raw is None:
            return None
        entry = _entry_of(raw)
        if entry is None or entry.key != key:
            message = f"cache entry {key[:12]} dropped: its record is damaged or was edited; it will be regenerated"
            log.warning(message)
            self.problems.append(message)
            self._db.delete(_ENTRY + key)
            return None
        blob = self.blob_path(entry.sha256)
        problem = None
        if not blob.is_file():
            problem = "its artifact is missing"
        elif blob.stat().st_size != entry.size or sha256_file(blob) != entry.sha256:
            problem = "its artifact's bytes do not match their sha256"
        if problem is None:
            try:  # its blob's time is when it was last made or used: `adspec cache gc` keeps what is used
                os.utime(blob)
            except OSError:
                pass  # a cache this process may not write: still served
            return entry
        message = f"cache entry {key[:12]} ({entry.kind} {entry.model}) dropped: {problem}; it will be regenerated"
        log.warning(message)
        self.problems.append(message)
        self._db.delete(_ENTRY + key)
        if blob.exists():
            self._quarantine(blob, entry.sha256)
        return None

    def peek(self, key: str) -> bool:
        """Whether `key` is cached, without hashing the blob (for estimates)."""
        entry = _entry_of(self._db.get(_ENTRY + key))
        return entry is not None and entry.key == key and self.blob_path(entry.sha256).is_file()

    def pending(self, key: str) -> dict[str, Any] | None:
        value = self._db.get(_PENDING + key)
        return value if isinstance(value, dict) else None  # anything else was not written by us

    def _set_pending(self, key: str, value: dict[str, Any]) -> None:
        self._db.set(_PENDING + key, value)

    def _clear_pending(self, key: str) -> None:
        self._db.delete(_PENDING + key)

    def forget(self, key: str) -> bool:
        """Drop what the cache knows of `key`: its entry and its pending record (a stored job
        id, a "create was sent" mark, a corrupt-output record). The blob stays (gc removes it).
        The next request of `key` creates anew and pays. True if anything was dropped."""
        with self.claim(key):
            entry, pending = self.drop_records(key)
        return entry is not None or pending is not None

    def entries(self) -> Iterator[Entry]:
        for k in self._db.iterkeys():
            if isinstance(k, str) and k.startswith(_ENTRY):
                entry = _entry_of(self._db.get(k))
                if entry is not None:
                    yield entry

    # ---- blobs ---------------------------------------------------------------------------------

    def put_blob(self, src: Path) -> tuple[str, int]:
        sha = sha256_file(src)
        dest = self.blob_path(sha)
        if not (dest.is_file() and sha256_file(dest) == sha):
            with atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
                _fsync(tmp)  # a paid artifact is on disk before its entry says so (power loss)
            _fsync(dest.parent)
        else:
            try:
                os.utime(dest)  # made again now (the time `adspec cache gc` goes by)
            except OSError:
                pass  # a blob of another user's: kept as it is
        return sha, dest.stat().st_size

    def _quarantine(self, path: Path, name: str) -> None:
        try:
            os.replace(path, self.rejected_dir / f"{name}-{int(time.time())}")
        except OSError:
            pass

    @contextmanager
    def _scratch(self, key: str, suffix: str) -> Iterator[Path]:
        """A temporary file for the provider's output, removed afterwards (its bytes live on as
        the blob). Call with the key claimed: leftovers of a killed run for this key (nobody else
        writes them while we hold the key) are swept first."""
        for stale in [*self.tmp_dir.glob(f".{key}.*"), self.tmp_dir / f"{key}{suffix}"]:
            try:
                stale.unlink()
            except OSError:
                pass
        fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=suffix, dir=self.tmp_dir)
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    # ---- locking -------------------------------------------------------------------------------

    @contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the key: one caller at a time, across threads and processes."""
        with locked(self.lock_dir / f"{key}.lock", wait=True):
            yield

    # ---- seeing and clearing records (`adspec cache show/forget/gc`) -----------------------------

    @contextmanager
    def try_claim(self, key: str) -> Iterator[bool]:
        """Hold the key if nobody does (True), else yield False at once: a running build has it."""
        with locked(self.lock_dir / f"{key}.lock", wait=False) as held:
            yield held

    def drop_records(self, key: str) -> tuple[Entry | None, dict[str, Any] | None]:
        """Drop the key's entry and pending request records (call with the key claimed); what was
        there is returned. The next build asks the provider again: it may pay again. The blob
        stays until `adspec cache gc`."""
        entry = _entry_of(self._db.get(_ENTRY + key))
        pending = self.pending(key)
        self._db.delete(_ENTRY + key)
        self._db.delete(_PENDING + key)
        return entry, pending

    def remove_stale_lock(self, key: str) -> bool:
        """Remove the key's lock file when nobody holds it and no request is pending; `claim`
        notices a lock file unlinked under it and takes the new one, so two holders never meet."""
        path = self.lock_dir / f"{key}.lock"
        with locked(path, wait=False, create=False) as held:
            if not held or self.pending(key) is not None:
                return False
            path.unlink(missing_ok=True)
            return True

    # ---- the one entry point for every request --------------------------------------------------

    def fetch(
        self,
        recipe: Recipe,
        run: Runner,
        verify: Verifier,
        *,
        suffix: str,
        on_progress: Callable[[str], None] | None = None,
        label: str | None = None,
    ) -> Fetched:
        """Serve `recipe` from the cache, or run it once (whoever else asks waits) and keep it.

        `verify` checks the produced file (raising MediaError); a bad artifact is moved aside to
        `rejected/` for inspection and never cached as good."""
        key = recipe.key
        entry = self.get(key)
        if entry is not None:
            return Fetched(self.blob_path(entry.sha256), entry, hit=True)
        with self.claim(key):
            entry = self.get(key)
            if entry is not None:
                return Fetched(self.blob_path(entry.sha256), entry, hit=True)
            holding: Holding | None = None
            # another machine may have paid for it already (what is made here for free, the offline
            # animatic and your own media, is neither looked for nor pushed: it is no payment to share)
            if self.remote is not None and shared(recipe):
                fetched = self._from_remote(key, verify)
                if fetched is not None:
                    return fetched
                claimed = self._claim_remote(key, verify, on_progress)  # one runner pays, the others wait
                if isinstance(claimed, Fetched):
                    return claimed
                holding = claimed
            try:
                while True:
                    try:
                        return self._make(recipe, run, verify, suffix, on_progress, label, holding)
                    except ClaimLost:  # taken over while this runner was stopped: the taker pays; wait for it
                        assert holding is not None
                        holding.end(release=False)
                        holding = None
                        claimed = self._claim_remote(key, verify, on_progress)
                        if isinstance(claimed, Fetched):
                            return claimed
                        if claimed is None:  # another runner may be paying: never pay without a claim now
                            raise CacheError(f"request {key[:12]}: another runner took it over and the shared store "
                                             f"cannot be read now; nothing was sent: run again") from None
                        holding = claimed
            finally:
                if holding is not None:  # kept while a paid prediction is pending: another runner resumes it
                    holding.end(release=self.pending(key) is None)

    def _make(self, recipe: Recipe, run: Runner, verify: Verifier, suffix: str,
              on_progress: Callable[[str], None] | None, label: str | None, holding: Holding | None) -> Fetched:
        """Run `recipe` (the key is held) and keep what it made."""
        key = recipe.key
        for _ in range(2):  # a second pass only to re-request a corrupt output, once
            job = DurableJob(self, key, on_progress, label, holding)
            started = time.time()
            with self._scratch(key, suffix) as tmp:
                try:
                    result = run(recipe, job, tmp)
                except BadOutputError as e:
                    if not job.resume_id:
                        raise
                    problem = self._bad_output(recipe, job.resume_id, e.sha256, e.cost_usd, e)
                    if problem is not None:
                        raise problem from None
                    continue
                except ProviderError as e:
                    if getattr(e, "ended", False):
                        self._clear_pending(key)  # the provider ended the job: a retry creates anew
                    if getattr(e, "spent_usd", 0) > 0 or getattr(e, "maybe_billed", False):
                        self._append_failed(recipe, e, started)  # billed (or maybe): on the account
                    raise
                try:
                    verify(tmp)
                except AdspecError as e:
                    bad = sha256_file(tmp)
                    self._quarantine(tmp, key)
                    if not job.resume_id:  # nothing to fetch again (a local render): run it anew
                        self._clear_pending(key)
                        raise
                    problem = self._bad_output(recipe, job.resume_id, bad, result.cost_usd, e)
                    if problem is not None:
                        raise problem from None
                    continue
                sha, size = self.put_blob(tmp)
            break
        else:  # pragma: no cover - _bad_output allows one re-request per fetch at most
            raise CacheError(f"request {key[:12]}: re-requested more than once in one run")
        entry = Entry(
            key=key,
            sha256=sha,
            size=size,
            provider=recipe.provider,
            kind=recipe.kind,
            model=recipe.model,
            job_id=result.job_id,
            cost_usd=round(float(result.cost_usd), 6),
            created_at=started,
            seconds=round(time.time() - started, 3),
            suffix=suffix,
            meta={**result.meta, **job._history},  # a paid retry after a corrupt output says so
        )
        self._put_entry(key, entry)
        self._clear_pending(key)
        self._append_ledger(entry)
        if self.remote is not None and shared(recipe):  # share what was paid for; a failed push only warns
            self.remote.put(entry, self.blob_path(sha))
            self._take_remote_problems()
        return Fetched(self.blob_path(sha), entry, hit=False)

    def _claims(self) -> Claims | None:
        """This runner's claims in the shared store, or None when the store cannot do them."""
        if self.remote is None:
            return None
        with self._claims_lock:
            if self._claims_obj is None:
                self._claims_obj = Claims(self.remote, runner_id(self.root), self.claim_stale_s)
        return self._claims_obj if self._claims_obj.supported() else None

    def _claim_remote(self, key: str, verify: Verifier,
                      on_progress: Callable[[str], None] | None) -> Fetched | Holding | None:
        """Before paying for `key`: claim it in the shared store (a Holding), or wait while
        another runner pays and return its artifact (Fetched), or take a dead runner's claim
        over and resume its prediction (a Holding, its job id adopted as this cache's pending).
        None: the store cannot do claims (reported once); pay as before."""
        claims = self._claims()
        if claims is None:
            return None
        mine = self.pending(key) or {}
        state = {"sending": bool(mine.get("sending")), "sent_at": mine.get("time"), "job_id": mine.get("job_id")}
        seen: Seen | None = None
        told = False
        while True:
            try:
                etag = claims.create(key, state)
                if etag is not None:
                    holding = Holding(claims, key, etag, state)
                    fetched = self._from_remote(key, verify)  # made and released just before our claim
                    if fetched is not None:
                        holding.end(release=True)
                        return fetched
                    return holding
                fetched = self._from_remote(key, verify)
                if fetched is not None:
                    return fetched
                got = claims.read(key)
            except Exception as e:  # noqa: BLE001 - the store failed us: pay as before, said once
                self.remote._failed(e)
                self.remote._report(f"remote cache {self.remote.url}: cannot claim {key[:12]} "
                                    f"({describe_error(e)}); going on without a claim", once="claim failed")
                self._take_remote_problems()
                return None
            if got is None:
                continue  # released meanwhile: claim it (or find its entry) now
            body, tag = got
            now = time.monotonic()
            if seen is None or seen.etag != tag:
                seen = Seen(body, tag, now)
            ours = body.get("runner") == claims.runner  # an earlier run of this runner (we hold the key here)
            if ours or now - seen.since >= claims.stale_after(body):
                taken = {"sending": bool(body.get("sending")), "sent_at": body.get("sent_at"),
                         "job_id": body.get("job_id")}
                try:
                    etag = claims.replace(key, tag, taken)
                except Exception:  # noqa: BLE001 - try again on the next pass
                    etag = None
                if etag is None:  # another taker won, or the store would not say: look again shortly
                    seen = None
                    time.sleep(POLL_S)
                    continue
                if not ours:
                    log.warning("remote cache: runner %s stopped answering while paying for %s; taking it over%s",
                                body.get("runner"), key[:12],
                                f" and resuming prediction {taken['job_id']}" if taken["job_id"] else "")
                if not mine.get("job_id"):
                    if taken["job_id"]:
                        self._set_pending(key, {"sending": False, "job_id": taken["job_id"], "time": time.time()})
                    elif taken["sending"]:
                        self._set_pending(key, {"sending": True, "job_id": None, "time": taken["sent_at"] or time.time()})
                return Holding(claims, key, etag, taken)
            if not told:  # a line in the log too: a CI job waiting here looked hung
                log.warning("remote cache: runner %s is paying for %s; waiting for it (taken over if its claim goes "
                            "%.0f s without a heartbeat)", body.get("runner"), key[:12], claims.stale_after(body))
                if on_progress is not None:
                    on_progress("another runner is paying for it")
                told = True
            time.sleep(POLL_S)

    def _bad_output(self, recipe: Recipe, job_id: str, sha: str, cost: float, error: AdspecError) -> ProviderError | None:
        """The corrupt-output rule: None to re-request now (once), else the error to stop with.

        A succeeded prediction whose file is not media is paid for, and a bad download can pass:
        the first time, its id is kept and the next run downloads it again. The same bad bytes
        from the same prediction in a second run mean the provider's output is corrupt: it is
        written to the ledger (paid, corrupt) and re-requested once. If the re-request is
        corrupt too the target stops, and stays stopped (no third payment) until
        `adspec cache forget KEY`."""
        key = recipe.key
        pending = self.pending(key) or {}
        raw_seen = pending.get("bad_output")
        seen: dict[str, Any] = raw_seen if isinstance(raw_seen, dict) else {}
        retries = int(pending.get("corrupt_retries") or 0)
        what = error.one_line()
        if not (seen.get("job_id") == job_id and seen.get("sha256") == sha):
            self._set_pending(key, {**pending, "sending": False, "job_id": job_id,
                                    "bad_output": {"job_id": job_id, "sha256": sha}})
            if retries:
                note = ("if it is the same file again, adspec stops: it has already paid for one re-request")
            else:
                note = ("if it is the same file again, the output is corrupt at the provider and adspec "
                        "re-requests it once (a paid retry)")
            return ProviderError(f"{what}; {note}", retryable=True, resumable=True)
        corrupt = list(pending.get("corrupt") or [])
        if job_id not in corrupt:
            corrupt.append(job_id)
            self._write_ledger_line({
                "time": round(time.time(), 3), "key": key, "provider": recipe.provider, "kind": recipe.kind,
                "model": recipe.model, "job_id": job_id, "cost_usd": round(float(cost), 6), "seconds": 0.0,
                "outcome": "corrupt output",
            })
        if retries >= 1:
            self._set_pending(key, {**pending, "corrupt": corrupt})
            message = (f"{what}; the same file came back again: prediction {job_id}'s output is corrupt at the "
                       f"provider, and so was the one re-request adspec paid for ({', '.join(corrupt)}); adspec does "
                       f"not pay a third time: see `adspec cache show {key}`, and `adspec cache forget {key}` "
                       "lets the next run request it again (paid)")
            log.warning(message)
            return ProviderError(message, retryable=False, resumable=True)
        log.warning("%s: prediction %s's output is corrupt at the provider (the same bad file twice): "
                    "re-requesting it once (a paid retry)", key[:12], job_id)
        self._set_pending(key, {"sending": False, "job_id": None, "time": time.time(), "corrupt_retries": retries + 1,
                                "corrupt": corrupt})
        return None

    def _from_remote(self, key: str, verify: Verifier) -> Fetched | None:
        """The remote's entry for `key`, its blob checked (sha256, then `verify`) and kept
        locally; None on a miss or anything wrong (reported by the remote)."""
        got = self.remote.get(key, self.tmp_dir)
        self._take_remote_problems()
        if got is None:
            return None
        raw, local = got
        try:
            try:
                verify(local)
            except AdspecError as e:
                message = f"remote cache entry {key[:12]} rejected: {e.one_line()}; it will be regenerated"
                log.warning(message)
                self.problems.append(message)
                return None
            sha, _ = self.put_blob(local)
        finally:
            local.unlink(missing_ok=True)
        entry = Entry(**raw)
        self._put_entry(key, entry)
        # a request this runner had sent (then was stopped) was finished by another that took it over:
        # nothing is left to collect here (`cache du` counted it pending, `cache show` said both)
        self._clear_pending(key)
        log.info("remote cache hit %s (%s %s)", key[:12], entry.kind, entry.model)
        return Fetched(self.blob_path(sha), entry, hit=True)

    def _take_remote_problems(self) -> None:
        if self.remote is not None and self.remote.problems:
            self.problems += self.remote.problems
            self.remote.problems.clear()

    def _append_ledger(self, entry: Entry) -> None:
        """One line per request actually run (paid or local): the account of what was spent."""
        record = {
            "time": round(entry.created_at, 3), "key": entry.key, "provider": entry.provider,
            "kind": entry.kind, "model": entry.model, "job_id": entry.job_id,
            "cost_usd": entry.cost_usd, "seconds": entry.seconds,
        }
        retries = int(entry.meta.get("corrupt_retries") or 0)
        if retries:
            record["paid_retry"] = retries  # this request was paid again after a corrupt output
        if isinstance(entry.meta.get("requests"), int):  # requests sent, the unbilled resends included
            record["requests"] = entry.meta["requests"]
        self._write_ledger_line(record)

    def _write_ledger_line(self, record: dict[str, Any]) -> None:
        line = canonical_json(record) + "\n"
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def absorb(self, other: "RequestCache", *, since: float | None = None) -> dict[str, int]:
        """Copy into this cache what `other` has and this one lacks: each intact entry (made at
        or after `since`) with its blob and ledger line, and each provider job still pending
        (so a run elsewhere that was stopped mid-wait is resumed here, not paid again). What
        CI's shards paid for becomes one cache (`adspec cache merge`). Entries already here
        are kept as they are: both describe the same request."""
        added = {"entries": 0, "pending": 0, "bytes": 0}
        for found in list(other.entries()):
            if since is not None and found.created_at < since:
                continue
            if self.get(found.key) is not None:
                continue
            entry = other.get(found.key)  # its blob checked against its sha256
            if entry is None:
                continue
            with self.claim(entry.key):
                if self.get(entry.key) is not None:
                    continue
                self.put_blob(other.blob_path(entry.sha256))
                self._put_entry(entry.key, entry)
                self._clear_pending(entry.key)
                self._append_ledger(entry)
            added["entries"] += 1
            added["bytes"] += entry.size
        for name in list(other._db.iterkeys()):
            if not (isinstance(name, str) and name.startswith(_PENDING)):
                continue
            key = name[len(_PENDING):]
            pending = other.pending(key)
            # a prediction known by its id, or a create sent whose answer was lost (the next run
            # looks it up by its inputs before paying): either way, paid for or maybe paid for
            if pending is None or not (pending.get("job_id") or pending.get("sending")) \
                    or self.get(key) is not None or self.pending(key):
                continue
            if since is not None and float(pending.get("time") or 0) < since:
                continue
            self._set_pending(key, pending)
            added["pending"] += 1
        return added

    def _append_failed(self, recipe: Recipe, error: ProviderError, started: float) -> None:
        """The ledger line of a call that failed but was (or may have been) billed: `cost_usd`
        is what is known to be billed, `maybe_billed` says a lost answer may add to it."""
        self._write_ledger_line({
            "time": round(started, 3), "key": recipe.key, "provider": recipe.provider, "kind": recipe.kind,
            "model": recipe.model, "job_id": None, "cost_usd": round(float(error.spent_usd), 6),
            "seconds": round(time.time() - started, 3), "outcome": "failed", "requests": error.attempts,
            "maybe_billed": bool(error.maybe_billed),
        })

    def ledger(self) -> list[dict[str, Any]]:
        try:
            lines = self.ledger_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in lines if x.strip()]


_caches: dict[Path, RequestCache] = {}
_caches_lock = threading.Lock()


def open_cache(root: str | Path, remote_url: str | None = None, remote_endpoint: str | None = None,
               claim_stale_s: float | None = None) -> RequestCache:
    """One RequestCache per folder per process (diskcache handles are thread-safe), sharing with
    the remote cache at `remote_url` (ADSPEC_REMOTE_CACHE) when one is given."""
    root = Path(root).absolute()
    with _caches_lock:
        cache = _caches.get(root)
        if cache is None:
            cache = _caches[root] = RequestCache(root, remote=open_remote(remote_url, remote_endpoint),
                                                 claim_stale_s=claim_stale_s)
        return cache
