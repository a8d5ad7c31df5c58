"""`adspec serve --watch`: saving a spec or beat file in an editor rebuilds that ad.

watchfiles (the Rust `notify` watcher behind uvicorn's reload) reports changes under specs/,
already debounced (a burst of writes, as editors make when saving, is one change); each changed
file maps to the ads it shapes (a spec: all its variants; a beat file: the ads that use it), and
each such ad is asked of the build queue, which runs one build per ad at a time and starts the
next after the one in flight (never killing it). Temp files (dotfiles, editor swap files) and
uploads are ignored. The estimate is checked first: over the budget the ad is not built (the
page shows the refusal).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..config import Settings
from ..paths import SPEC_SUFFIXES, is_beat_file
from .builds import BuildQueue, estimate_ad

log = logging.getLogger("adspec.serve")
DEBOUNCE_MS = 400


def ads_of(settings: Settings, changed: Path) -> list[tuple[str, Path]]:
    """The ads a changed file under specs/ shapes."""
    from ..ads import beats_path_of, list_ads

    name = changed.name
    if changed.parent != settings.specs_dir or name.startswith(".") or not name.endswith(SPEC_SUFFIXES):
        return []
    try:
        ads = list_ads(settings.specs_dir)[0]
    except Exception:  # a spec that does not load is still its own ad (its build reports why)
        return []
    if is_beat_file(name):
        out = []
        for ad, spec in ads:
            try:
                if beats_path_of(ad, spec) == changed:
                    out.append((ad, spec))
            except Exception:
                continue
        return out
    return [(ad, spec) for ad, spec in ads if spec == changed]


class Watcher:
    def __init__(self, settings: Settings, queue: BuildQueue):
        self.settings, self.queue = settings, queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adspec-watch", daemon=True)

    def start(self) -> None:
        self.settings.specs_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from watchfiles import watch

        for changes in watch(self.settings.specs_dir, debounce=DEBOUNCE_MS, step=50, stop_event=self._stop,
                             recursive=False, raise_interrupt=False):
            wanted: dict[str, Path] = {}
            for _, path in changes:
                for ad, spec in ads_of(self.settings, Path(path)):
                    wanted[ad] = spec
            for ad, spec in wanted.items():
                self.rebuild(ad, spec)

    def rebuild(self, ad: str, spec: Path) -> None:
        try:
            est = estimate_ad(ad, spec)
        except Exception as e:  # the build itself will say what is wrong
            log.warning("adspec serve --watch: cannot estimate %s: %s", ad, e)
            est = {"refusal": None}
        if est.get("refusal"):
            log.warning("adspec serve --watch: not rebuilding %s: %s", ad, est["refusal"])
            self.queue.refuse(ad, est["refusal"])
            return
        log.info("adspec serve --watch: %s changed, rebuilding", ad)
        self.queue.request(ad, "file saved")
