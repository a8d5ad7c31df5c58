"""A real `adspec serve` for tests: the command a user runs, in a subprocess on a free loopback
port, spoken to over HTTP with httpx."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import httpx

from conftest import Project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, project: Project, *args: str, **env: str):
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "adspec.cli", "serve", "--port", str(self.port), *args]
        self.log = project.root / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(**env), stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        self.headers: dict[str, str] = {}
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"adspec serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("adspec serve did not start") from None
                time.sleep(0.1)
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.put(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def wait_status(self, ad: str, states: tuple[str, ...] = ("done", "failed"), timeout: float = 300,
                    seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Poll GET /api/status/{ad} until its status is one of `states` (every answer kept in `seen`)."""
        deadline = time.time() + timeout
        while True:
            r = self.get(f"/api/status/{ad}")
            assert r.status_code == 200, r.text
            body = r.json()
            if seen is not None:
                seen.append(body)
            if body["status"] in states:
                return body
            if time.time() > deadline:
                raise AssertionError(f"{ad} still {body['status']} after {timeout} s: {body}")
            time.sleep(0.2)

    def idle(self, timeout: float = 300) -> None:
        """Wait until no build is queued or running (a build is never killed by stopping the server)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get("/api/ads")
            if r.status_code != 200 or all(a["state"] not in ("queued", "running") for a in r.json()):
                return
            time.sleep(0.2)
        raise AssertionError("builds still running")

    def close(self) -> None:
        try:
            self.idle()
        finally:
            self.http.close()
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
