"""`adspec init [DIR]`: a working adspec project in a folder of one's own — a `dodo.py` equal to
this repository's, `specs/` with one example ad, the editor schemas in `schema/` (where each spec's
`# yaml-language-server` comment points), and a `.gitignore`. Nothing already there is overwritten
(a schema file that differs from this adspec's is kept and named: `adspec schema --write schema`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .fsutil import write_text_atomic
from .validate import schema_texts

# The repository's own dodo.py is exactly this text (tests/test_init.py keeps them equal).
DODO_PY = '''\
"""doit entry point: `doit` builds every ad in specs/ (see README). Thin by design: the task
graph lives in adspec.graph."""

from adspec.noop_stamp import replay_or_watch

# nothing changed since the last clean no-op of this command: print its output again and stop
replay_or_watch()

from adspec.dodo_support import creators_from_env, default_task_names, doit_config  # noqa: E402

_creators = creators_from_env()
DOIT_CONFIG = doit_config(default_task_names(_creators))
globals().update(_creators)
'''

EXAMPLE_SPEC = '''\
# yaml-language-server: $schema=../schema/spec.schema.json
# An ad. `doit` plans it into example.beats.yaml (the plan: yours to edit and commit), then builds
# build/example/final.mp4. Without API keys it renders offline, for free, as an animatic.
title: Aurora desk lamp launch
prompt: >
  A 15-second ad for the Aurora desk lamp, calm style: a warm lamp lighting a
  tidy desk at dusk, ending on the tagline "Light that listens".
duration: 15            # seconds; the beats' durations sum to it
aspect_ratio: "16:9"    # 16:9 | 9:16 | 1:1 | 4:5
style: calm
brand: {name: Aurora, tagline: Light that listens, colors: ["#F2B134", "#1B1B1B"]}
seed: 1
'''

GITIGNORE = '''\
# adspec: every generated file (rebuilt by `doit`, paid calls served from the request cache)
build/
# the request cache, if you keep it in the project (ADSPEC_CACHE_DIR=cache; default ~/.cache/adspec),
# and the folders examples/github-actions.yml keeps in the workspace
cache/
.adspec-cache/
paid-cache/
paid.json
.doit.db*
__pycache__/
'''


class Made(NamedTuple):
    path: Path
    written: bool  # False: a file was already there and is kept as it is
    outdated: bool = False  # kept, and it differs from what this adspec would write (a schema)


def init_project(root: str | Path) -> list[Made]:
    """Make the project files under `root` (created if missing), keeping every file already there."""
    root = Path(root)
    (root / "specs").mkdir(parents=True, exist_ok=True)
    out: list[Made] = []
    has_spec = any(p.suffix in (".yaml", ".yml") for p in (root / "specs").iterdir())
    files = {root / "dodo.py": DODO_PY, root / ".gitignore": GITIGNORE}
    if not has_spec:  # a folder that has ads already gets no example among them
        files[root / "specs" / "example.yaml"] = EXAMPLE_SPEC
    schemas = {root / "schema" / name: text for name, text in schema_texts().items()}
    for path, text in {**files, **schemas}.items():
        if path.exists():
            outdated = path in schemas and path.read_text(encoding="utf-8", errors="replace") != text
            out.append(Made(path, False, outdated))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
            out.append(Made(path, True))
    return out
