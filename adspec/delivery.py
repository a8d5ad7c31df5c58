"""The steps of delivery, run by the tasks after the mix (all local, none ever paid):

  export:<ad>/<placement>   final.mp4 -> export/<placement>.mp4 (loudness to the placement's target,
                            within its bitrate and container; video stream-copied where it may be)
  check:<ad>                the final and its exports against the placements -> checks.json; fails
                            the ad with one line per violation
  timeline:<ad>             the cut as timeline.otio (OpenTimelineIO) for editors
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from doit.exceptions import TaskFailed

from . import media_delivery
from .checks import check_ad
from .config import load_settings
from .paths import AdPaths
from .placements import load_placements

log = logging.getLogger(__name__)


def make_export(ad: str, placement: str) -> None:
    p = load_placements()[placement]
    paths = AdPaths.of(load_settings().build_dir, ad)
    paths.export_dir.mkdir(parents=True, exist_ok=True)
    copied = media_delivery.export(paths.final, paths.export(placement), lufs=p.loudness.lufs,
                                   true_peak=p.loudness.true_peak, max_video_kbps=p.video.max_kbps,
                                   audio_kbps=min(192, p.audio.max_kbps))
    from . import provenance

    if provenance.enabled():
        provenance.sign_file(paths.export(placement), paths, ad, load_settings().build_dir)
    log.info("%s: export %s (%s)", ad, placement, "video stream-copied" if copied else "video re-encoded to its bitrate")


def make_timeline(ad: str) -> None:
    from .timeline_otio import write_timeline

    write_timeline(AdPaths.of(load_settings().build_dir, ad), ad)


def drop_unlisted_exports(paths: AdPaths, placements: Sequence[str]) -> list[str]:
    """Remove the exports of placements the ad no longer lists (export/ is what a CI job ships: a
    file made for a placement since dropped, of an older final, must not stay beside the others).
    Only `<placement>.mp4` of a known placement is removed: a file adspec did not make stays."""
    gone = []
    for name in sorted(set(load_placements()) - set(placements)):
        old = paths.export(name)
        if old.is_file():
            old.unlink()
            gone.append(name)
            log.info("%s: removed export/%s.mp4 (no longer one of its placements)", paths.root.name, name)
    return gone


def check_action(ad: str, placements: Sequence[str]) -> TaskFailed | None:
    """doit action of check:<ad>: the report written; the ad fails with one line per violation.
    It runs whenever the ad's placements change, so it also drops the exports of those removed."""
    paths = AdPaths.of(load_settings().build_dir, ad)
    drop_unlisted_exports(paths, placements)
    report = check_ad(paths, ad, placements)
    if report.passed:
        return None
    return TaskFailed("\n".join(report.lines()))
