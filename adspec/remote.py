"""A request cache shared between machines: `ADSPEC_REMOTE_CACHE=s3://bucket/prefix`.

Any S3-compatible store, through boto3 (`pip install 'adspec[remote]'`). Layout under the prefix:

    entries/<key>.json        the cache entry of a recipe key (JSON, as the local cache keeps it)
    blobs/<sha256>            the artifact, named by the sha256 of its bytes

Both are immutable and content-addressed: a blob's name is its hash, an entry's name is its
recipe's key, and nothing is ever rewritten except a blob found corrupt. The blob is put before
its entry, so an entry never names a missing blob. Two runners that pay for the same key at the
same time both push; the second entry overwrites the first with one that is just as valid (both
blobs exist), so a second writer is harmless. A blob whose bytes do not hash to its name is
reported and never used: the request is made, and the good artifact replaces it.

The local cache (adspec.cache) asks the remote after a local miss, holding the key's lock, before
running the provider; after paying it pushes. Network or permission trouble with the remote is
logged and costs only the sharing: the build goes on with the local cache.

Endpoint: `ADSPEC_REMOTE_ENDPOINT` (an S3-compatible server: MinIO, R2, moto...), else boto3's own
`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS. Region: `AWS_REGION` / `AWS_DEFAULT_REGION`.
Credentials: boto3's usual chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, roles).
No message of this module quotes a credential: errors are reduced to their S3 error code.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .cache_entry import Entry
from .errors import RemoteConfigError
from .hashing import canonical_json, sha256_file

log = logging.getLogger("adspec.remote")

ENV = "ADSPEC_REMOTE_CACHE"
ENDPOINT_ENV = "ADSPEC_REMOTE_ENDPOINT"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN")


def _redact(text: str) -> str:
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


#: S3's answers to credentials that are wrong or not allowed
_CREDENTIALS_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                      "AllAccessDisabled")


def describe_error(e: BaseException) -> str:
    """A remote failure in words that never carry a credential: the S3 error code and status."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        code = err.get("Code") or "error"
        # a HEAD's error has no code: botocore puts the status there ("403 (HTTP 403)" said it twice)
        said = f"HTTP {status}" if status and str(code) == str(status) else f"{code}{f' (HTTP {status})' if status else ''}"
        if code in _CREDENTIALS_CODES or status == 403:  # a HEAD's 403 has no code: the same cause
            said += ": check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a profile) and that " \
                    "they may use this bucket"
        return _redact(said)
    if type(e).__name__ == "NoCredentialsError":
        return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile"
    return type(e).__name__  # e.g. EndpointConnectionError, ReadTimeoutError: no text, no secrets


def parse_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix')."""
    parts = urlsplit(url.strip())
    if parts.scheme != "s3" or not parts.hostname:
        raise RemoteConfigError(f"{ENV} must look like s3://bucket/prefix (got a {parts.scheme or 'schemeless'} URL)")
    if parts.username or parts.password or "@" in parts.netloc:
        raise RemoteConfigError(f"{ENV} must not carry credentials; use the AWS environment variables or a profile")
    if parts.query or parts.fragment:
        raise RemoteConfigError(f"{ENV} takes no ?query or #fragment: s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


#: what this process has said about a store (`RemoteCache._report(once=...)`), whichever instance said it
_REPORTED: set[str] = set()
_REPORTED_LOCK = threading.Lock()


class RemoteCache:
    """Entries and blobs in an S3 bucket (see the module doc)."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 client: Any = None, quick: bool = False):
        self.url = url
        self.quick = quick  # for questions that must not wait (estimate): one try, short timeouts
        self.bucket, self.prefix = parse_url(url)
        self.endpoint_url = endpoint_url
        self.region = region
        self._client = client
        self._lock = threading.Lock()
        self._bad_blobs: set[str] = set()  # corrupt in the remote: the next push replaces them
        self._bad_keys: dict[str, str] = {}  # key -> the corrupt blob its remote entry names
        self._down_until = 0.0  # after a connection failure the remote is skipped for a while
        self._bucket_seen = False  # a miss has been told apart from a bucket that is not there
        self.problems: list[str] = []
        self.store_problems: list[str] = []  # of the store itself (unreachable, denied), not of one entry's data

    def __repr__(self) -> str:
        return f"RemoteCache({self.url!r})"

    # ---- S3 ------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise RemoteConfigError(f"{ENV} needs boto3: pip install 'adspec[remote]'") from None
                timing: dict[str, Any] = (
                    {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 2, "read_timeout": 4}
                    if self.quick else
                    # a store that takes the connection and never answers costs 3 x 20 s once, then is
                    # skipped for DOWN_SECONDS (20 s without a byte: no S3 answers that slowly)
                    {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 20})
                config = Config(**timing, s3={"addressing_style": "path"} if self.endpoint_url else {})
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                                              config=config)
            return self._client

    def _name(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def entry_name(self, key: str) -> str:
        return self._name("entries", f"{key}.json")

    def blob_name(self, sha256: str) -> str:
        return self._name("blobs", sha256)

    def _exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
            return True
        except ClientError as e:
            status = (e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if status == 404 or (e.response.get("Error") or {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    #: after the store could not be reached, skip it for this long (each try costs the retries)
    DOWN_SECONDS = 120.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, e: BaseException) -> None:
        from botocore.exceptions import ClientError

        if not isinstance(e, ClientError):  # not an answer from the store: it is down or unreachable
            self._down_until = time.monotonic() + self.DOWN_SECONDS

    def _report(self, message: str, once: str | None = None, artifact: bool = False) -> None:
        """Warn (and keep for the build's report); with `once`, only the first time per process
        (e.g. AccessDenied would otherwise repeat for every request). `artifact`: a problem of one
        entry's data, not of the store (the store still answers the others)."""
        message = _redact(message)
        if once is not None:  # per process: the budget check's quick instance and the build's say it once
            said = f"{self.url} {once}"
            with _REPORTED_LOCK:
                if said in _REPORTED:
                    log.debug(message)
                    return
                _REPORTED.add(said)
        log.warning(message)
        self.problems.append(message)
        if not artifact:
            self.store_problems.append(message)

    def found_bad(self, key: str) -> bool:
        """Whether this process found `key`'s entry or artifact in the store unusable."""
        return key in self._bad_keys

    def has(self, key: str) -> bool | None:
        """Whether the store holds an entry for `key` (a HEAD, no download); None when it cannot
        be asked (unreachable, denied: reported once, and skipped for a while if unreachable)."""
        if not self._available():
            return None
        try:
            found = self._exists(self.entry_name(key))
            if not found and not self._bucket_seen:
                self._bucket_seen = True
                if self._no_bucket():  # a HEAD says 404 for both: the first miss asks which it is
                    self._report(f"remote cache {self.url}: bucket '{self.bucket}' does not exist"
                                 + (f" at {self.endpoint_url}" if self.endpoint_url else ""), once="has")
                    return None
            return found
        except Exception as e:  # noqa: BLE001 - whatever goes wrong, the caller goes on without it
            self._failed(e)
            self._report(f"remote cache {self.url}: cannot be asked ({describe_error(e)})", once="has")
            return None

    def _no_bucket(self) -> bool:
        """Whether the store says the bucket is not there (HEAD bucket: 404). Any other answer
        (403 to a runner allowed only its objects) is no evidence either way: False."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            status = (e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return status == 404 or (e.response.get("Error") or {}).get("Code") in ("404", "NoSuchBucket")
        return False

    # ---- the two operations the local cache uses ------------------------------------------------

    def get(self, key: str, tmp_dir: Path) -> tuple[dict[str, Any], Path] | None:
        """(the entry, a verified local copy of its blob in `tmp_dir`) or None: a miss, an
        unreachable remote, or a corrupt blob (reported; the caller makes the request)."""
        from botocore.exceptions import ClientError

        if not self._available():
            return None
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.entry_name(key))["Body"].read(1 << 20)
        except ClientError as e:
            code = (e.response.get("Error") or {}).get("Code")
            if code not in ("NoSuchKey", "404", "NotFound"):
                self._report(f"remote cache {self.url}: cannot read entry {key[:12]}: {describe_error(e)}",
                             once=f"read {describe_error(e)}")
            return None
        except Exception as e:  # noqa: BLE001 - unreachable, timeouts, bad config: go on without it
            self._failed(e)
            self._report(f"remote cache {self.url}: cannot be reached ({describe_error(e)}); going on without it "
                         f"for {self.DOWN_SECONDS:.0f} s")
            return None
        try:
            raw = json.loads(body)
            known = {f.name for f in fields(Entry)}
            entry = {k: v for k, v in raw.items() if k in known}
            if entry.get("key") != key or not _HEX64.match(str(entry.get("sha256"))) or not isinstance(entry.get("size"), int):
                raise ValueError("entry does not describe this key")
            Entry(**entry)  # every field present
        except (ValueError, TypeError) as e:
            self._report(f"remote cache {self.url}: entry {key[:12]} is not a valid entry ({type(e).__name__}); ignored",
                         once=f"entry {key}", artifact=True)
            self._bad_keys[key] = ""
            return None
        sha = entry["sha256"]
        tmp_dir.mkdir(parents=True, exist_ok=True)
        local = tmp_dir / f"remote-{sha}-{os.getpid()}-{threading.get_ident()}"
        try:
            self._download(self.blob_name(sha), local)
        except Exception as e:  # noqa: BLE001 - whatever the store says, the build goes on without it
            self._failed(e)
            local.unlink(missing_ok=True)
            self._report(f"remote cache {self.url}: entry {key[:12]} has no readable artifact ({describe_error(e)}); "
                         f"it will be regenerated", once=f"artifact {key}", artifact=True)
            self._bad_blobs.add(sha)
            self._bad_keys[key] = sha
            return None
        if local.stat().st_size != entry["size"] or sha256_file(local) != sha:
            local.unlink(missing_ok=True)
            self._report(f"remote cache {self.url}: artifact of {key[:12]} ({entry.get('kind')} {entry.get('model')}) "
                         f"does not match its sha256; not used, it will be regenerated", once=f"artifact {key}",
                         artifact=True)
            self._bad_blobs.add(sha)
            self._bad_keys[key] = sha
            return None
        return entry, local

    def put(self, entry: Entry, blob: Path) -> bool:
        """Push an entry and its blob (blob first). Existing objects are kept (they are
        immutable), except a blob found corrupt. Returns False when the remote could not be
        written (reported; the build goes on)."""
        if not self._available():
            return False
        try:
            name = self.blob_name(entry.sha256)
            if entry.sha256 in self._bad_blobs or not self._exists(name):
                with open(blob, "rb") as f:
                    self.client.put_object(Bucket=self.bucket, Key=name, Body=f, ContentLength=entry.size)
                self._bad_blobs.discard(entry.sha256)
            healing = self._bad_keys.pop(entry.key, None) is not None  # its entry named a corrupt blob
            if healing or not self._exists(self.entry_name(entry.key)):
                self.client.put_object(Bucket=self.bucket, Key=self.entry_name(entry.key),
                                       Body=canonical_json(entry.to_dict()).encode("utf-8"),
                                       ContentType="application/json")
            return True
        except Exception as e:  # noqa: BLE001 - a failed push costs only the sharing
            self._failed(e)
            self._report(f"remote cache {self.url}: cannot push {entry.key[:12]}: {describe_error(e)}",
                         once=f"push {describe_error(e)}")
            return False

    def _download(self, name: str, dest: Path) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        try:
            with open(dest, "wb") as f:
                for chunk in body.iter_chunks(1 << 20):
                    f.write(chunk)
        finally:
            body.close()


def from_env(env: Mapping[str, str] | None = None) -> RemoteCache | None:
    """The remote cache ADSPEC_REMOTE_CACHE names, or None. RemoteConfigError when malformed."""
    env = os.environ if env is None else env
    return open_remote((env.get(ENV) or "").strip() or None, (env.get(ENDPOINT_ENV) or "").strip() or None, env)


def open_remote(url: str | None, endpoint: str | None = None, env: Mapping[str, str] | None = None,
                *, quick: bool = False) -> RemoteCache | None:
    """The remote cache at `url` (settings.remote_cache), or None without one. The AWS region
    comes from the AWS variables, as boto3 reads them. RemoteConfigError when it cannot be used."""
    if not url:
        return None
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise RemoteConfigError(f"{ENV} is set but boto3 is not installed: pip install 'adspec[remote]'") from None
    env = os.environ if env is None else env
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None
    return RemoteCache(url, endpoint_url=endpoint, region=region, quick=quick)


__all__ = ["RemoteCache", "from_env", "open_remote", "parse_url", "describe_error", "ENV", "ENDPOINT_ENV"]
