"""Disk and cache faults (issue 8, item 6): an unwritable build or cache folder, a full disk (a
real tiny filesystem: tmpfs mounted for the test), a cache entry deleted or edited behind
adspec's back (the blob, diskcache's sqlite row, the sqlite file itself). Each ends in a clear
error or a correct rebuild; never a traceback, a half-written target or a bad artifact served."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from adspec.cache import RequestCache
from conftest import Project, small_spec
from reliability import assert_no_traceback, broken_targets, cache_problems, check_final, failed_tasks, report_row


@contextlib.contextmanager
def tiny_fs(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` at `path` (tmpfs; the tests run as root, where chmod would
    not stop a write)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here ({done.stderr.strip()}): the full-disk cases need root and mount")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def _clear_failure(out: subprocess.CompletedProcess, *words: str) -> list[str]:
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert_no_traceback(out.stdout, out.stderr)
    lines = [ln for v in failed_tasks(text).values() for ln in v] or [ln for ln in text.splitlines() if ln.startswith("adspec:")]
    assert lines, text[-3000:]
    for word in words:
        assert any(word in ln for ln in lines), (word, lines)
    return lines


# ---- unwritable folders ------------------------------------------------------------------------

def test_unwritable_build_folder_is_one_clear_line(project: Project) -> None:
    blocker = project.root / "not-a-folder"
    blocker.write_text("a file where the build folder's parent should be")
    project.write_spec("zip", small_spec())
    out = project.doit(check=False, ADSPEC_BUILD=str(blocker / "build"))
    assert out.returncode != 0
    assert_no_traceback(out.stdout, out.stderr)
    message = (out.stdout + out.stderr).strip().splitlines()
    assert any("not-a-folder" in ln and "not writable" in ln and "ADSPEC_BUILD" in ln for ln in message), message
    assert blocker.read_text().startswith("a file")


def test_unwritable_cache_folder_is_one_clear_line(project: Project) -> None:
    blocker = project.root / "not-a-folder"
    blocker.write_text("x")
    project.write_spec("zip", small_spec())
    out = project.doit(check=False, ADSPEC_CACHE_DIR=str(blocker / "cache"))
    lines = _clear_failure(out, "ADSPEC_CACHE_DIR")
    assert all("not writable" in ln for ln in lines), lines
    assert not (project.build / "zip" / "final.mp4").exists()


# ---- a full disk -----------------------------------------------------------------------------

def test_full_build_disk_then_room_again(project: Project) -> None:
    project.write_spec("zip", small_spec())
    with tiny_fs(project.build, "400k"):
        full = project.doit(check=False)
        _clear_failure(full, "No space left on device")
        assert broken_targets(project.build) == []  # whatever was written is whole
        assert not (project.build / "zip" / "final.mp4").exists()
        ledger = len(project.ledger())
        grow(project.build, "64m")
        project.doit()
        check_final(project.build / "zip" / "final.mp4", 8)
        assert broken_targets(project.build) == []
        assert len(project.ledger()) == 5 and ledger <= 5  # nothing made twice
    report_row("full disk (build/)", "build/ on a 400 KiB tmpfs, then grown", 2, 1, 2, 0, 0)


def test_full_disk_reads_the_same_under_adspec_plan_and_doit(project: Project) -> None:
    """One fault, one line: `adspec plan` once showed a traceback where doit showed a line
    (adspec.errors.error_line now makes both)."""
    project.write_spec("zip", small_spec())
    with tiny_fs(project.build / "zip", "64k") as ad_dir:
        fd = os.open(ad_dir / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):  # fill the ad's folder to the last byte
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        lines = {}
        for name, run in (("adspec plan", lambda: project.adspec("plan", "zip")),
                          ("doit plan:zip", lambda: project.doit("plan:zip", check=False))):
            out = run()
            assert out.returncode != 0, (name, out.stdout, out.stderr)
            assert_no_traceback(out.stdout, out.stderr)
            text = out.stdout + out.stderr
            found = [ln for ln in text.splitlines() if "No space left on device" in ln]
            assert found, (name, text[-3000:])
            lines[name] = found[0].split("No space left on device", 1)[1]
        assert lines["adspec plan"] == lines["doit plan:zip"]
        assert lines["adspec plan"].startswith(" (free some space, then run doit again")


def test_full_cache_disk_then_room_again(project: Project) -> None:
    project.write_spec("zip", small_spec())
    with tiny_fs(project.cache, "300k"):
        full = project.doit(check=False)
        _clear_failure(full, "No space left on device")
        assert broken_targets(project.build) == []
        assert cache_problems(project.cache) == []  # no entry without its whole blob
        grow(project.cache, "64m")
        project.doit()
        check_final(project.build / "zip" / "final.mp4", 8)
        assert cache_problems(project.cache) == []
        keys = [e["key"] for e in project.ledger()]
        assert len(keys) == len(set(keys)) == 5
    report_row("full disk (cache)", "cache on a 300 KiB tmpfs, then grown", 2, 1, 2, 0, 0)


def test_read_only_build_disk_is_one_line_per_target(project: Project) -> None:
    project.write_spec("zip", small_spec())
    with tiny_fs(project.build, "8m"):
        subprocess.run(["mount", "-o", "remount,ro", str(project.build)], check=True, capture_output=True)
        out = project.doit(check=False)
        lines = _clear_failure(out, "Read-only file system")
        assert all("Read-only file system" in ln for ln in lines), lines
        assert not any(project.build.iterdir())
        subprocess.run(["mount", "-o", "remount,rw", str(project.build)], check=True, capture_output=True)
        project.doit()
        check_final(project.build / "zip" / "final.mp4", 8)


# ---- the cache edited behind adspec's back -----------------------------------------------------

@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One offline build, copied by each case below (a build costs seconds, a copy nothing)."""
    project = Project(tmp_path_factory.mktemp("built") / "proj")
    project.write_spec("zip", small_spec())
    project.doit()
    return project


def _built(project: Project, template: Project) -> tuple[dict[str, dict], bytes]:
    shutil.rmtree(project.root)
    shutil.copytree(template.root, project.root, symlinks=True)
    (project.build / ".doit.sqlite3").unlink(missing_ok=True)  # its paths are the template's
    cache = RequestCache(project.cache)
    try:
        entries = {e.kind + ":" + e.key: e.to_dict() for e in cache.entries()}
    finally:
        cache.close()
    return entries, (project.build / "zip" / "beats" / "hook" / "storyboard.png").read_bytes()


def _rebuild(project: Project) -> subprocess.CompletedProcess:
    project.doit("clean")
    out = project.doit(check=False)
    assert_no_traceback(out.stdout, out.stderr)
    return out


def _db(project: Project) -> sqlite3.Connection:
    return sqlite3.connect(project.cache / "requests" / "cache.db")


@pytest.mark.parametrize("damage", ["blob-deleted", "blob-truncated", "blob-swapped", "row-pointing-elsewhere",
                                    "row-garbage", "row-deleted", "pending-garbage"])
def test_cache_edited_behind_our_back_is_never_served(project: Project, built_once: Project, damage: str) -> None:
    entries, storyboard = _built(project, built_once)
    hook_key = next(k.split(":", 1)[1] for k, e in entries.items()
                    if k.startswith("image:") and e["sha256"] == __import__("hashlib").sha256(
                        _blob(project, e["sha256"]).read_bytes()).hexdigest() and _is_hook(project, k.split(":", 1)[1]))
    entry = next(e for k, e in entries.items() if k.endswith(hook_key))
    other_image = next(e for k, e in entries.items() if k.startswith("image:") and not k.endswith(hook_key))
    music = next(e for k, e in entries.items() if k.startswith("music:"))
    blob = _blob(project, entry["sha256"])
    if damage == "blob-deleted":
        blob.unlink()
    elif damage == "blob-truncated":
        blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    elif damage == "blob-swapped":  # another artifact's bytes under this blob's name
        shutil.copyfile(_blob(project, other_image["sha256"]), blob)
    elif damage == "row-pointing-elsewhere":  # the row edited to name another valid blob
        cache = RequestCache(project.cache)
        cache._db.set("entry:" + hook_key, dict(cache._db.get("entry:" + hook_key), sha256=music["sha256"],
                                                 size=music["size"]))
        cache.close()
    elif damage == "row-garbage":
        with contextlib.closing(_db(project)) as con:
            con.execute("UPDATE Cache SET value = ?, mode = 4 WHERE key = ?", (b"\x80\x04garbage", "entry:" + hook_key))
            con.commit()
    elif damage == "row-deleted":
        with contextlib.closing(_db(project)) as con:
            con.execute("DELETE FROM Cache WHERE key = ?", ("entry:" + hook_key,))
            con.commit()
    elif damage == "pending-garbage":
        cache = RequestCache(project.cache)
        cache._db.set("pending:" + hook_key, ["not", "a", "mapping"])
        cache._db.delete("entry:" + hook_key)
        cache.close()
    out = _rebuild(project)
    assert out.returncode == 0, out.stdout[-3000:]
    check_final(project.build / "zip" / "final.mp4", 8)
    # the storyboard is the hook's own picture again, never another artifact
    assert (project.build / "zip" / "beats" / "hook" / "storyboard.png").read_bytes() == storyboard
    assert broken_targets(project.build) == []
    assert cache_problems(project.cache) == []
    if damage not in ("row-deleted", "pending-garbage"):
        assert "dropped" in out.stdout + out.stderr  # and it was reported


def _blob(project: Project, sha: str) -> Path:
    return project.cache / "blobs" / sha[:2] / sha


def _is_hook(project: Project, key: str) -> bool:
    import json

    receipt = json.loads((project.build / "zip" / "beats" / "hook" / "storyboard.receipt.json").read_text())
    return receipt["key"] == key


def test_damaged_cache_database_is_one_clear_line(project: Project, built_once: Project) -> None:
    _built(project, built_once)
    db = project.cache / "requests" / "cache.db"
    with open(db, "r+b") as f:
        f.seek(0)
        f.write(b"this is not a database" * 50)
    out = _rebuild(project)
    lines = _clear_failure(out, "is damaged: move it aside")
    assert all(str(project.cache / "requests") in ln for ln in lines), lines
    assert not (project.build / "zip" / "final.mp4").exists()  # nothing served from a cache it cannot read
