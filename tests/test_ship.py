"""Ready to ship (issue 21): placements as data, checks as build targets, exports, the OTIO
timeline and C2PA provenance. Real doit runs over small offline ads; media facts measured with ffmpeg."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, small_spec

from adspec.placements import load_placements

IDS = ["youtube-instream", "youtube-bumper", "youtube-shorts", "tiktok", "instagram-reels", "meta-feed-1x1",
       "meta-feed-4x5", "ctv-15", "ctv-30"]


def test_placements_are_data_with_sources() -> None:
    placements = load_placements()
    assert list(placements) == IDS
    assert placements["youtube-bumper"].duration.max == 6
    assert placements["ctv-30"].duration.exact == 30 and placements["ctv-30"].loudness.lufs == -24
    assert placements["instagram-reels"].safe_zone.bottom == 0.35
    text = (REPO / "adspec" / "library" / "placements.yaml").read_text()
    for pid in IDS:  # every placement's figures carry a source comment
        block = text.split(f"\n{pid}:\n", 1)[1].split("\n\n", 1)[0]
        figures = [line for line in block.splitlines() if ":" in line and line.startswith("  ") and "name:" not in line]
        assert figures and all("#" in line for line in figures), pid


def test_adspec_placements_lists_them() -> None:
    out = subprocess.run([sys.executable, "-m", "adspec.cli", "placements", "--json"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=True)
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == IDS


def test_unknown_placement_is_a_located_error(project) -> None:
    path = project.write_spec("ad", small_spec(placements=["tiktok", "tiktk"]))
    proc = project.adspec("validate", str(path))
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("specs/ad.yaml:30: ") and "placements.1: unknown placement 'tiktk' (did you mean 'tiktok'?)" in line
    assert "known: youtube-instream, youtube-bumper" in line


def test_a_variant_may_list_its_own_placements(project) -> None:
    spec = small_spec(aspect_ratio="9:16", placements=["tiktok"],
                      variants={"named": {"wide": {"aspect_ratio": "16:9", "placements": ["youtube-bumper"]}}})
    path = project.write_spec("ad", spec)
    assert project.adspec("validate", str(path)).returncode == 0
    bad = dict(spec, variants={"named": {"wide": {"placements": ["nope"]}}})
    path = project.write_spec("ad", bad)
    proc = project.adspec("validate", str(path))
    assert proc.returncode == 1 and "unknown placement 'nope'" in proc.stderr
