"""Bad input and odd environments (issue 12, point 7): one clear line, no traceback, no hang.

A non-image named `.png`, a decompression bomb (400 Mpx in 48 kB), a 144 Mpx photo, control
characters in brand text: `adspec validate` names file, line and field before any build, and
doit refuses them at plan time. A named pipe as a spec or beat file never hangs validate,
estimate or doit; a 246-character spec name is one line; `rm -rf build` during a run gives
lines, and the next run pays for nothing twice."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import yaml

from adspec.errors import MediaError
from conftest import REPO, Project, small_spec
from reliability import assert_no_traceback, check_final, failed_tasks, live_env, paid_twice

HANG = 60  # seconds: far beyond what any of these commands needs; reaching it means a hang


def bilevel_png(w: int, h: int) -> bytes:
    """A valid all-black 1-bit PNG of w x h, built row by row (a 20000x20000 one is 48 kB):
    what a decompression bomb looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (w + 7) // 8)
    body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _adspec(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`adspec ARGS` in the project; a hang fails the test (TimeoutExpired)."""
    return subprocess.run([sys.executable, "-m", "adspec.cli", *args], cwd=project.root, env=project.run_env(),
                          text=True, capture_output=True, timeout=HANG)


def _located(line: str, file: str, field: str) -> bool:
    """`specs/<file>:<line>: <field>: ...`"""
    return re.match(rf"^\S*{re.escape(file)}:\d+: {re.escape(field)}: ", line) is not None


# ---- images and brand text: refused by validate, before any build ----------------------------

@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = bilevel_png(20_000, 20_000)
    assert len(data) < 60_000  # 400 Mpx in ~48 kB
    return data


def test_validate_refuses_bad_images_and_control_characters_before_any_build(project: Project, bomb: bytes) -> None:
    (project.specs / "bomb.png").write_bytes(bomb)
    (project.specs / "huge.png").write_bytes(bilevel_png(12_000, 12_000))  # 144 Mpx
    (project.specs / "fake.png").write_text("<html>not an image</html>")
    (project.specs / "cut.png").write_bytes(bilevel_png(64, 64)[:-30])  # truncated: IEND lost
    for name in ("bomb", "huge", "fake", "cut"):
        project.write_spec(name, small_spec(assets={"product": f"{name}.png"}))
    text = yaml.safe_dump(small_spec(), sort_keys=False)  # written as a person would: YAML escapes
    text = text.replace("name: Zip", 'name: "Zip\\rCo"').replace("tagline: Drink more", 'tagline: "Drink \\e[31mmore"')
    (project.specs / "ctrl.yaml").write_text(text)
    checked = _adspec(project, "validate")
    assert checked.returncode == 1
    assert_no_traceback(checked.stdout, checked.stderr)
    lines = checked.stderr.splitlines()
    expect = {
        ("bomb.yaml", "assets.product"): "400 megapixels",
        ("huge.yaml", "assets.product"): "144 megapixels",
        ("fake.yaml", "assets.product"): "is not an image",
        ("cut.yaml", "assets.product"): "damaged",
        ("ctrl.yaml", "brand.name"): "control character \\r",
        ("ctrl.yaml", "brand.tagline"): "control character \\x1b",
    }
    for (file, field), words in expect.items():
        assert any(_located(ln, file, field) and words in ln for ln in lines), (file, field, words, lines)
    assert not project.build.exists() and not project.cache.exists()  # validate builds nothing

    # doit refuses the same specs at plan time: one line each, nothing rendered, little memory
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")
    built = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")],
                           cwd=project.root, env=project.run_env(), text=True, capture_output=True, timeout=600)
    assert built.returncode != 0
    assert_no_traceback(built.stdout, built.stderr)
    failed = failed_tasks(built.stdout)
    assert set(failed) == {f"plan:{n}" for n in ("bomb", "huge", "fake", "cut", "ctrl")}, failed
    max_rss_kb = int(built.stderr.strip().splitlines()[-1])
    assert max_rss_kb < 400_000, max_rss_kb  # the 144 Mpx photo alone took 1.2 GB to decode
    assert not list(project.build.rglob("*.png"))


def test_image_decodes_are_capped(tmp_path: Path, bomb: bytes) -> None:
    """Every decode goes through open_image: a file too big is refused from its header."""
    from adspec import media
    from adspec.images import MAX_PIXELS, open_image

    big = tmp_path / "big.png"
    big.write_bytes(bilevel_png(8_000, 7_000))  # 56 Mpx: over the cap, under Pillow's own bomb limit
    assert 8_000 * 7_000 > MAX_PIXELS
    for path in (big, tmp_path / "bomb.png"):
        path.write_bytes(bomb) if path.name == "bomb.png" else None
        with pytest.raises(MediaError, match="megapixels"):
            with open_image(path):
                pass
        with pytest.raises(MediaError, match="megapixels"):
            media.normalise_image(path, tmp_path / "out.png", 64, 36)
    assert not (tmp_path / "out.png").exists()


def test_a_provider_image_that_is_a_bomb_is_one_line(project: Project, bomb: bytes) -> None:
    from fakes.replicate_server import FakeReplicate

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=0.05, output_mode="url") as rep:
        live_env(project, rep)
        real = rep._output_for

        def bomb_images(p):
            out = real(p)
            if p["slug"].startswith("black-forest-labs/"):
                name = out[0].rsplit("/", 1)[1]
                rep.outputs[name] = (bomb, "image/png")
            return out

        rep._output_for = bomb_images
        out = project.doit(check=False, timeout=300)
    assert out.returncode != 0
    assert_no_traceback(out.stdout, out.stderr)
    failed = failed_tasks(out.stdout)
    storyboards = {t: v for t, v in failed.items() if t.startswith("storyboard:")}
    assert set(storyboards) == {"storyboard:zip/hook", "storyboard:zip/cta"}, failed
    assert all("megapixels" in " ".join(v) for v in storyboards.values()), storyboards
    assert not list(project.build.rglob("storyboard.png"))


# ---- named pipes and long names: never a hang, always a line -----------------------------------

def _finishes(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `adspec ARGS` or doit (args[0] == "doit"); a hang fails the test (TimeoutExpired)."""
    if args[0] == "doit":
        return project.doit(*args[1:], check=False, timeout=HANG)
    return _adspec(project, *args)


def test_a_named_pipe_as_spec_or_beat_file_never_hangs(project: Project) -> None:
    os.mkfifo(project.specs / "pipe.yaml")
    spec = small_spec()
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    os.mkfifo(project.beats_file("zip"))
    checked = _finishes(project, "validate")
    assert checked.returncode == 1
    assert_no_traceback(checked.stderr)
    lines = checked.stderr.splitlines()
    assert any(ln.startswith(("specs/pipe.yaml: ", str(project.specs / "pipe.yaml"))) and "named pipe" in ln
               for ln in lines), lines
    assert any("zip.beats.yaml: " in ln and "named pipe" in ln for ln in lines), lines
    estimated = _finishes(project, "estimate")
    assert estimated.returncode == 1 and "named pipe" in estimated.stdout, estimated.stdout
    assert_no_traceback(estimated.stdout, estimated.stderr)
    built = _finishes(project, "doit")
    assert built.returncode != 0
    assert_no_traceback(built.stdout, built.stderr)
    assert any("named pipe" in ln for ln in failed_tasks(built.stdout).get("plan:zip", [])), built.stdout


def test_a_246_character_spec_name_is_one_line(project: Project) -> None:
    name = "a" * 246  # the beat file's name would be 257 bytes: longer than any filesystem allows
    (project.specs / f"{name}.yaml").write_text(yaml.safe_dump(small_spec()))
    for args in (("validate",), ("estimate",), ("doit",)):
        out = _finishes(project, *args)
        assert out.returncode != 0, args
        assert_no_traceback(out.stdout, out.stderr)
        text = out.stdout + out.stderr
        about = [ln for ln in text.splitlines() if "ad name" in ln]
        assert about and all("246 characters" in ln and "1-64" in ln for ln in about), (args, text[-2000:])


# ---- the build folder removed during a run ------------------------------------------------------

def test_rm_rf_build_during_a_run_gives_lines_and_the_next_run_pays_nothing_twice(project: Project) -> None:
    from fakes.replicate_server import FakeReplicate

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=1.0) as rep:
        live_env(project, rep)
        cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-n", "2", "-P", "thread"]
        proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while rep.paid_creates < 1 and proc.poll() is None:  # a paid request is in flight
                time.sleep(0.02)
            # as a person would: rm -rf ignores files the running build removes meanwhile (rmtree does not)
            subprocess.run(["rm", "-rf", str(project.build)], check=False)  # "not empty" if the build writes meanwhile
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode != 0
        assert_no_traceback(out, err)
        assert failed_tasks(out), out
        again = project.doit(check=False, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert paid_twice(rep) == {}
    check_final(project.build / "zip" / "final.mp4", 8)


def test_a_folded_style_with_a_line_break_builds(project: Project) -> None:
    # `style: >` keeps a trailing line break: validate said ok and the offline storyboard crashed
    # ("can't measure length of multiline text"), in the studio as "PythonAction Error"
    spec = small_spec()
    spec["style"] = "energetic\nand bright\n"
    project.write_spec("zip", spec)
    assert project.adspec("validate").returncode == 0
    project.doit()
    assert (project.build / "zip" / "final.mp4").is_file()
