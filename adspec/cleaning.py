"""`doit clean`: remove the files adspec's tasks made, and say so in status.json.

Only targets are removed (the files the ad's tasks declare, and the mix's kept pieces); receipts, the request cache, beat
files and anything else in build/ stay, so the next `doit` rebuilds from the cache and pays
nothing, and a file adspec did not make is never touched. (Which files an ad's tasks make is the
graph's to say: graph.ad_targets, graph.clean_ad.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from .build_files import AdStatus
from .status import as_cleaned, now_iso, status_path, update_status


def remove_files(paths: Iterable[str], dryrun: bool = False) -> None:
    """doit clean action: remove these files (when they exist), printing each as doit does."""
    for path in sorted(set(paths), reverse=True):
        if os.path.isfile(path):
            print(f"removing file '{path}'")
            if not dryrun:
                os.remove(path)


def remove_folder(path: str, dryrun: bool = False) -> None:
    """doit clean action: remove a folder of kept intermediates (the mix's drawn pieces)."""
    if os.path.isdir(path):
        print(f"removing dir '{path}'")
        if not dryrun:
            shutil.rmtree(path, ignore_errors=True)


def mark_cleaned(build_dir: str, ad: str, dryrun: bool = False) -> None:
    """After its final is removed, build/<ad>/status.json says "cleaned" (not "done" with no final)."""
    if dryrun or not status_path(Path(build_dir), ad).exists():
        return

    def change(d: AdStatus) -> None:
        as_cleaned(d)
        d.cleaned_at = now_iso()
        d.pid = None

    try:
        update_status(Path(build_dir), ad, change)
    except OSError:
        pass
