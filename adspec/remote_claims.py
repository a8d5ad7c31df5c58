"""One payment per request across machines: claims in the shared store (ADSPEC_REMOTE_CACHE).

A runner about to pay for a key that neither its own cache nor the store holds first claims the
key with a conditional write (`PUT claims/<key>.json` with `If-None-Match: *`): one claim wins.
The winner records in its claim when it sends the create and, as soon as it exists, the
provider's job id, and rewrites the claim (`If-Match` its last ETag) every `HEARTBEAT_S` while it
waits. Another runner that needs the key waits for the store's entry instead of paying. If the
claim stops changing for `STALE_S` of the waiting runner's own clock (no clock is compared
across machines), its holder is taken for dead: the waiter takes the claim over (`If-Match` the
stale ETag: one taker wins) and resumes the **same** prediction by its id (or, when only "a create
was sent" is known, looks it up by its inputs before paying, as after a lost answer at home).

A store that ignores conditional writes is found out once (two `If-None-Match: *` writes of one
probe object both succeed) and reported; the build goes on without claims, as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .remote import RemoteCache, describe_error

log = logging.getLogger("adspec.remote")

#: how often a holder rewrites its claim, and how long a claim may stay unchanged before a waiting
#: runner takes it over (ADSPEC_CLAIM_STALE overrides)
HEARTBEAT_S = 10.0
STALE_S = 60.0
#: how often a waiting runner looks for the entry and the claim
POLL_S = 1.0


def runner_id(cache_dir: Path) -> str:
    """This runner's id: stable per local cache (a rerun on the same machine knows its own claims)."""
    path = cache_dir / "runner-id"
    try:
        return path.read_text(encoding="utf-8").strip() or _new_id(path)
    except OSError:
        return _new_id(path)


def _new_id(path: Path) -> str:
    rid = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rid + "\n", encoding="utf-8")
    except OSError:
        pass
    return rid


def _status(e: BaseException) -> tuple[int | None, str | None]:
    response = getattr(e, "response", None) or {}
    return ((response.get("ResponseMetadata") or {}).get("HTTPStatusCode"), (response.get("Error") or {}).get("Code"))


def _precondition_failed(e: BaseException) -> bool:
    status, code = _status(e)
    return status == 412 or code in ("PreconditionFailed", "412")


def _conflict(e: BaseException) -> bool:
    """AWS S3's answer to a conditional write that raced another write of the same key while it
    was in flight (409 ConditionalRequestConflict, "retry"): not a failure of the store."""
    status, code = _status(e)
    return status == 409 or code == "ConditionalRequestConflict"


def _missing(e: BaseException) -> bool:
    status, code = _status(e)
    return status == 404 or code in ("NoSuchKey", "404", "NotFound")


@dataclass
class Seen:
    """Another runner's claim as last read: its body and ETag, and when this runner first saw
    that ETag (its own monotonic clock)."""

    body: dict[str, Any]
    etag: str
    since: float


class Claims:
    """Claims on keys in one store, for one runner."""

    def __init__(self, remote: RemoteCache, runner: str, stale_s: float | None = None):
        self.remote = remote
        self.runner = runner
        self.stale_s = stale_s or STALE_S
        self.heartbeat_s = min(HEARTBEAT_S, self.stale_s / 4)
        self._supported: bool | None = None
        self._lock = threading.Lock()

    def name(self, key: str) -> str:
        return self.remote._name("claims", f"{key}.json")

    # ---- can this store do it ------------------------------------------------------------------

    def supported(self) -> bool:
        """Whether the store honours `If-None-Match: *` (probed once per process, when it answers:
        while it cannot be reached there are no claims, and no wait for it)."""
        with self._lock:
            if self._supported is None:
                if not self.remote._available():
                    return False  # down (reported where it was found): asked again when it is back
                found = self._probe()
                if found is None:
                    return False
                self._supported = found
            return self._supported

    def _probe(self) -> bool | None:
        """True or False as the store answers; None when it could not be reached (marked down)."""
        from botocore.exceptions import ClientError

        client, bucket = self.remote.client, self.remote.bucket
        name = self.remote._name("claims", f".probe-{uuid.uuid4().hex}")
        try:
            client.put_object(Bucket=bucket, Key=name, Body=b"1", IfNoneMatch="*")
            try:
                client.put_object(Bucket=bucket, Key=name, Body=b"2", IfNoneMatch="*")
            except Exception as e:  # noqa: BLE001 - sorted below
                if _precondition_failed(e):
                    return True
                raise
            self.remote._report(
                f"remote cache {self.remote.url}: the store does not honour conditional writes (If-None-Match); "
                "two runners that need the same new request at the same moment may both pay for it", once="claims")
            return False
        except Exception as e:  # noqa: BLE001 - no claims, the build goes on as before
            if not isinstance(e, ClientError):  # no answer at all: down, as any other question finds it
                self.remote._failed(e)
                self.remote._report(f"remote cache {self.remote.url}: cannot be reached ({describe_error(e)}); "
                                    f"going on without it for {self.remote.DOWN_SECONDS:.0f} s")
                return None
            self.remote._report(f"remote cache {self.remote.url}: cannot claim requests ({describe_error(e)}); "
                                "two runners may pay for the same new request", once="claims")
            return False
        finally:
            if self.remote._available():  # a store that does not answer is not asked again here
                try:
                    client.delete_object(Bucket=bucket, Key=name)
                except Exception:  # noqa: BLE001 - a probe left behind is harmless
                    pass

    # ---- the operations ------------------------------------------------------------------------

    def _body(self, extra: dict[str, Any]) -> bytes:
        # the holder's heartbeat is in its claim: a waiter with a shorter ADSPEC_CLAIM_STALE must not
        # take a claim over whose holder is alive and beating at its own (slower) pace
        return json.dumps({"runner": self.runner, "pid": os.getpid(), "beat": time.time(),
                           "heartbeat_s": self.heartbeat_s, **extra}, sort_keys=True).encode("utf-8")

    def stale_after(self, body: dict[str, Any]) -> float:
        """How long a claim with `body` may stay unchanged before its holder is taken for dead:
        this runner's STALE_S, and never less than four of the holder's own heartbeats."""
        try:
            theirs = float(body.get("heartbeat_s") or 0)
        except (TypeError, ValueError):
            theirs = 0.0
        return max(self.stale_s, 4 * min(theirs, HEARTBEAT_S))

    def create(self, key: str, state: dict[str, Any]) -> str | None:
        """Claim `key`: its ETag when this runner won, None when it did not (another holds the
        claim, or AWS answered 409 because another runner's claim was being written at that
        moment: the caller reads the claim and tries again, it never pays without one)."""
        try:
            got = self.remote.client.put_object(Bucket=self.remote.bucket, Key=self.name(key),
                                                Body=self._body(state), IfNoneMatch="*",
                                                ContentType="application/json")
            return str(got["ETag"])
        except Exception as e:
            if _precondition_failed(e) or _conflict(e):
                return None
            raise

    def replace(self, key: str, etag: str, state: dict[str, Any]) -> str | None:
        """Rewrite the claim if it is still the one with `etag`: the new ETag, else None. A 409
        (another write of the claim in flight) raises: it says nothing about who holds it, and
        both callers try again (the heartbeat on its next beat, a taker on its next look)."""
        try:
            got = self.remote.client.put_object(Bucket=self.remote.bucket, Key=self.name(key),
                                                Body=self._body(state), IfMatch=etag,
                                                ContentType="application/json")
            return str(got["ETag"])
        except Exception as e:
            if _precondition_failed(e) or _missing(e):
                return None
            raise

    def read(self, key: str) -> tuple[dict[str, Any], str] | None:
        """(body, ETag) of the claim on `key`, or None when there is none."""
        try:
            got = self.remote.client.get_object(Bucket=self.remote.bucket, Key=self.name(key))
            raw = got["Body"].read(1 << 16)
        except Exception as e:
            if _missing(e):
                return None
            raise
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return (body if isinstance(body, dict) else {}), str(got["ETag"])

    def release(self, key: str) -> None:
        """Remove this runner's claim (the entry is in the store, or nothing was paid)."""
        try:
            self.remote.client.delete_object(Bucket=self.remote.bucket, Key=self.name(key))
        except Exception as e:  # noqa: BLE001 - a claim left behind goes stale; nothing is paid twice
            log.debug("remote cache: cannot release claim %s: %s", key[:12], describe_error(e))


class ClaimLost(Exception):
    """This runner's claim was taken over before it sent the create (or the store would not
    confirm it was still this runner's): send nothing, read the claim again."""


class Holding:
    """This runner's claim on one key while it pays for it: the state it records, and a
    heartbeat that rewrites the claim so waiting runners know the holder is alive."""

    def __init__(self, claims: Claims, key: str, etag: str, state: dict[str, Any]):
        self.claims, self.key, self.etag, self.state = claims, key, etag, dict(state)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.lost = False  # another runner took the claim over (this one looked dead)
        self._thread = threading.Thread(target=self._beat, name=f"claim-{key[:8]}", daemon=True)
        self._thread.start()

    def record(self, **state: Any) -> None:
        """Write `state` (sending, sent_at, job_id) into the claim now."""
        with self._lock:
            self.state.update(state)
            self._rewrite()

    def before_sending(self, **state: Any) -> None:
        """Record that a create is about to go out; ClaimLost if the claim is no longer this
        runner's (another took it over while this one was stopped or cut off, and pays or resumes
        it): the create must not be sent. Both writes are conditional on one ETag, so of a holder
        coming back and a taker, exactly one goes on."""
        with self._lock:
            self.state.update(state)
            for attempt in range(3):
                if self.lost:
                    break
                try:
                    etag = self.claims.replace(self.key, self.etag, self.state)
                except Exception as e:  # noqa: BLE001 - e.g. AWS's 409 while a taker writes: unconfirmed
                    log.debug("remote cache: claim %s not confirmed before sending: %s", self.key[:12], describe_error(e))
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if etag is None:
                    self.lost = True
                    break
                self.etag = etag
                return
            # lost, or not confirmed: send nothing; the caller reads the claim again (and takes it
            # straight back if it is still this runner's)
            raise ClaimLost(self.key)

    def _rewrite(self) -> None:
        if self.lost:
            return
        try:
            etag = self.claims.replace(self.key, self.etag, self.state)
        except Exception as e:  # noqa: BLE001 - the next beat tries again
            log.debug("remote cache: claim %s not renewed: %s", self.key[:12], describe_error(e))
            return
        if etag is None:
            self.lost = True
            log.warning("remote cache: another runner took over request %s (this runner was taken for dead)",
                        self.key[:12])
        else:
            self.etag = etag

    def _beat(self) -> None:
        while not self._stop.wait(self.claims.heartbeat_s):
            with self._lock:
                self._rewrite()

    def end(self, *, release: bool) -> None:
        """Stop the heartbeat; `release` removes the claim (kept when a paid prediction is
        pending: a runner that needs it takes it over once stale and resumes that prediction)."""
        self._stop.set()
        self._thread.join(timeout=5)
        if release and not self.lost:
            self.claims.release(self.key)
