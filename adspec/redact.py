"""Keeping secrets out of what adspec writes, shows and starts.

A secret is the value of an environment variable whose name says it is one (`OPENAI_API_KEY`,
`REPLICATE_API_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `ADSPEC_SERVE_TOKEN`, ...). Text that comes back
from a provider (a planner's refusal or reply, an error body) is scrubbed of them; child
processes (ffmpeg) get an environment without them; URLs are stored without the parts that carry
tokens (user info, query, fragment: signed delivery URLs put their signature there).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Mapping

__all__ = ["is_secret_name", "secret_values", "scrub", "child_env", "redact_url", "MASK"]

MASK = "***"
#: names of variables that hold credentials: a KEY, TOKEN, SECRET, PASSWORD... word in the name
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|KEYS|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)(?:_|$)", re.I)
#: shorter values are not worth scrubbing (and would mangle ordinary words)
_MIN_SECRET_LEN = 8


def is_secret_name(name: str) -> bool:
    """Whether the environment variable `name` holds a credential (by its name)."""
    return bool(_SECRET_NAME.search(name))


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The credentials in `env` (default: this process's environment), longest first."""
    env = os.environ if env is None else env
    found = {v for k, v in env.items() if is_secret_name(k) and v and len(v) >= _MIN_SECRET_LEN}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, extra: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> str:
    """`text` with every credential of the environment (and `extra`) replaced by ***."""
    text = str(text)
    for secret in (*[s for s in extra if s], *secret_values(env)):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process (ffmpeg...): this one less every credential. No
    child of adspec talks to a provider, so none needs a key."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if not is_secret_name(k)}


def redact_url(url: str) -> str:
    """`url` as it may be stored: scheme, host, port and path; no user info, query or fragment
    (where signed URLs carry their token)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return "(unparseable URL)"
    if parts.scheme == "data":
        return "data:..."
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
