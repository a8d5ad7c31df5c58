"""Hostile and broken input (issue 8, item 4): random and mutated spec and beat files, YAML alias
bombs, huge numbers, unicode and control characters, names and asset paths that try to leave the
project, templates that reach for Python internals, prompts that look like shell or ffmpeg
options, a provider answering with something that is not media. Each ends in a clear error (one
line, no traceback) or a correct build; nothing is written outside build/ and the cache; ffmpeg
only ever gets argument lists."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adspec.errors import SpecError
from adspec.library import TemplateProblem, render_template
from adspec.loader import beat_file_errors_text, parse_spec_text
from conftest import REPO, Project, small_spec
from reliability import assert_no_traceback, broken_targets, check_final, snapshot

GOOD_SPEC = yaml.safe_dump(small_spec(), sort_keys=False)
GOOD_BEATS = yaml.safe_dump({"version": 1, "music": {"prompt": "upbeat", "bpm": 120}, "beats": small_spec()["beats"]},
                            sort_keys=False)
YAML_BITS = ["{{", "}}", "*a", "&a ", "!!python/object:os.system", "- ", ": ", "\n", "  ", "'", '"', "#", "[", "]",
             "{", "}", "%", "@", "`", "|", ">", "~", "1e400", "99999999999999999999999", "-1", "\x00", "\x1b", "\u202e",
             "\ud800", "duration", "beats", "id", "../", "/etc/passwd", "null", "true", ".inf", ".nan", "0x10"]


def _mutate(text: str, data: st.DataObject) -> str:
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        bit = data.draw(st.sampled_from(YAML_BITS) | st.text(max_size=4))
        j = min(len(text), i + data.draw(st.integers(1, 12)))
        text = text[:i] + (bit if op != "delete" else "") + (text[j:] if op != "insert" else text[i:])
    return text


def _only_spec_errors(errors: list[SpecError]) -> None:
    for e in errors:
        assert isinstance(e, SpecError)
        line = e.one_line()
        assert line and "\n" not in line and "Traceback" not in line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_specs_give_spec_errors_or_a_spec(data: st.DataObject) -> None:
    text = _mutate(GOOD_SPEC, data)
    raw = text.encode("utf-8", "surrogatepass")
    spec, errors = parse_spec_text(raw, "specs/x.yaml")
    _only_spec_errors(errors)
    assert (spec is None) == bool(errors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_beat_files_give_spec_errors_or_beats(data: st.DataObject) -> None:
    spec, _ = parse_spec_text(GOOD_SPEC, "specs/x.yaml")
    text = _mutate(GOOD_BEATS, data)
    bf, errors = beat_file_errors_text(text.encode("utf-8", "surrogatepass"), "specs/x.beats.yaml", spec)
    _only_spec_errors(errors)
    assert (bf is None) == bool(errors)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20))
def test_random_yaml_documents_as_beat_files(doc) -> None:
    text = yaml.safe_dump({"version": 1, "music": doc, "beats": [doc]})
    bf, errors = beat_file_errors_text(text, "specs/x.beats.yaml")
    _only_spec_errors(errors)
    assert bf is None and errors


TEMPLATE_BITS = ["{{", "}}", "{%", "%}", " if ", " else ", " endif ", "brand", "title", "self", "loop", "__class__",
                 "__mro__", "__subclasses__", "__globals__", ".", "|", "(", ")", "[", "]", "'", "upper", "format",
                 "attr", "join", "~", "+", "*", "lipsum", "range", "cycler", "namespace", "config", "0", "1", ",",
                 "__init__", "__builtins__", "mro", "items", "import", "os", "popen", "truncate", " is ", "defined"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TEMPLATE_BITS), max_size=14).map("".join))
def test_random_templates_never_reach_python_internals(text: str) -> None:
    try:
        out = render_template(text, {"brand": "Zip", "title": "T", "n": 3})
    except TemplateProblem:
        return
    # nothing that names a Python object or a memory address (which would also change the prompt,
    # so the recipe key and the payment, on every run)
    assert not re.search(r"0x[0-9a-f]{6,}|<(built-in|function|bound|class|module|TemplateReference)", out), (text, out)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ brand.__class__.__base__.__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self }}",
    "{{ brand.upper }}",
    "{{ [brand.format] }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch /tmp/pwned').read() }}",
    "{{ brand|attr('__class__') }}",
    "{% for x in range(10**9) %}{{ x }}{% endfor %}",
    "{{ 'a' * 999999999 }}",
    "{% set x = 1 %}{{ x }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
])
def test_templates_reaching_for_internals_are_refused(template: str) -> None:
    with pytest.raises(TemplateProblem):
        render_template(template, {"brand": "Zip", "title": "T"})


# ---- the command line over hostile files -----------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n" \
       "title: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
HOSTILE_FILES = {
    "bomb": BOMB,
    "huge-int": GOOD_SPEC.replace("duration: 8", "duration: " + "9" * 50_000),
    "huge-float": GOOD_SPEC.replace("duration: 8", "duration: 1e400"),
    "nan": GOOD_SPEC.replace("seed: 3", "seed: .nan"),
    "negative": GOOD_SPEC.replace("seed: 3", "seed: -99999999999999999999999"),
    "bpm-huge": GOOD_SPEC.replace("bpm: 120", "bpm: 1e308"),
    "deep": "title: " + "[" * 5000 + "]" * 5000 + "\n",
    "python-tag": "title: !!python/object/apply:os.system ['touch /tmp/pwned']\nprompt: x\n",
    "binary": "\x00\x01\x02 not yaml",
    "merge-keys": "base: &b {title: x}\n<<: *b\nprompt: y\n",
    "control-in-key": "ti\x07tle: x\nprompt: y\n",
    "big": "title: " + "x" * (2 << 20) + "\n",
    "list-top": "- title: x\n",
    "beat-id-escape": GOOD_SPEC.replace("id: hook", "id: ../../../etc/x"),
    "asset-dotdot": GOOD_SPEC + "assets: {product: ../../../../etc/passwd}\n",
    "asset-absolute": GOOD_SPEC + "assets: {product: /etc/passwd}\n",
    "asset-symlink": GOOD_SPEC + "assets: {product: assets/evil.png}\n",
    "asset-loop": GOOD_SPEC + "assets: {product: assets/loop.png}\n",
    "asset-folder": GOOD_SPEC + "assets: {product: assets}\n",
    "template-escape": GOOD_SPEC.replace("A bottle on a rock", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    "template-method": GOOD_SPEC.replace("A bottle on a rock", "{{ brand.upper }}"),
}


def _one_line_errors(stderr: str) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        assert re.match(r"^\S.*?(\.ya?ml|specs)(:\d+)?: ", ln), ln  # file[:line]: message
    return lines


def test_validate_and_doit_refuse_hostile_files_in_one_line(project: Project, tmp_path: Path) -> None:
    assets = project.specs / "assets"
    assets.mkdir()
    (assets / "evil.png").symlink_to("/etc/passwd")
    (assets / "loop.png").symlink_to(assets / "loop.png")
    for name, text in HOSTILE_FILES.items():
        (project.specs / f"{name}.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    (project.specs / "passwd.yaml").symlink_to("/etc/passwd")
    canary = Path("/tmp") / "pwned"
    before = snapshot([project.root], skip=[project.build, project.cache])
    checked = project.adspec("validate")
    assert checked.returncode == 1
    assert_no_traceback(checked.stdout, checked.stderr)
    lines = _one_line_errors(checked.stderr)
    named = {Path(ln.split(":", 1)[0]).stem for ln in lines}
    assert named >= set(HOSTILE_FILES) | {"passwd"}, set(HOSTILE_FILES) - named
    built = project.doit(check=False)
    assert built.returncode != 0
    assert_no_traceback(built.stdout, built.stderr)
    failed = [ln for ln in built.stdout.splitlines() if ln.startswith("FAILED ")]
    assert {ln.split()[1].split(":", 1)[1].rstrip(":") for ln in failed} >= set(HOSTILE_FILES) | {"passwd"}
    assert not canary.exists()
    assert snapshot([project.root], skip=[project.build, project.cache]) == before
    assert not any(project.build.rglob("final.mp4"))


def test_ad_names_that_leave_build_stay_inside_it(project: Project) -> None:
    """Names that are no folder fail their plan, and every file written for them (status, cost)
    stays inside build/. Dotfiles (`..yaml`, `...yaml`, `.hidden.yaml`: the ads '.', '..') are
    never ads (issue 12, 6b): no task, nothing written for them."""
    for name in ("..yaml", "...yaml", ".hidden.yaml", "Evil Name.yaml", "UPPER.yaml"):
        (project.specs / name).write_text(GOOD_SPEC)
    before = snapshot([project.root], skip=[project.build, project.cache])
    built = project.doit(check=False)
    assert built.returncode != 0
    assert_no_traceback(built.stdout, built.stderr)
    assert snapshot([project.root], skip=[project.build, project.cache]) == before
    failed = sorted(ln.split()[1] for ln in built.stdout.splitlines() if ln.startswith("FAILED plan:"))
    assert failed == ["plan:Evil", "plan:UPPER:"], failed  # "FAILED plan:Evil Name: ..."
    assert sorted(p.name for p in project.build.iterdir() if not p.name.startswith(".")) == ["Evil Name", "UPPER"]
    assert not (project.root / "status.json").exists() and not (project.build.parent / "cost.json").exists()


# ---- prompts and titles that are hostile but valid: a correct build ---------------------------

def test_unicode_control_and_shell_looking_text_builds_correctly(project: Project, monkeypatch) -> None:
    tag = uuid.uuid4().hex[:8]
    canaries = [Path(f"/tmp/pwned-{tag}-{i}") for i in range(4)]
    spec = small_spec(title="Zip \u202e\u0000 title \x1b[31mred\x1b[0m \U0001F680 \u0645\u0631\u062d\u0628\u0627")
    spec["brand"]["name"] = "Zip'; DROP TABLE ads;--"
    spec["beats"][0]["image_prompt"] = f"-i /etc/passwd -f lavfi $(touch {canaries[0]}) `touch {canaries[1]}`"
    spec["beats"][0]["motion_prompt"] = f"; touch {canaries[2]} && -filter_complex [0]drawtext=text='%{{pts}}' | touch {canaries[3]}"
    spec["beats"][1]["image_prompt"] = "\u0301\u0301\u0301 Z\u0351\u0352a\u0353l\u0354g\u0355o \ufeff\u200b\u2028\u2029 \ud7ff end"
    spec["beats"][1]["motion_prompt"] = "pan left \t\r\x07\x08 " + "\U0001F600" * 50
    spec["music"]["prompt"] = "$(reboot) -af volume=100 " + "\u4e2d\u6587" * 20
    project.write_spec("zip", spec)
    before = snapshot([project.root], skip=[project.build, project.cache])
    out = project.doit()
    assert_no_traceback(out.stdout, out.stderr)
    check_final(project.build / "zip" / "final.mp4", 8)
    assert broken_targets(project.build) == []
    assert not any(c.exists() for c in canaries)
    assert snapshot([project.root], skip=[project.build, project.cache]) == before
    # the prompt reached the storyboard as text (the offline backend draws it), not as an option
    receipt = (project.build / "zip" / "beats" / "hook" / "storyboard.receipt.json").read_text()
    assert "-i /etc/passwd" in receipt


def test_ffmpeg_is_only_called_with_argument_lists(project: Project, monkeypatch) -> None:
    """Run the offline pipeline in this process and record every process it starts: argument
    lists, never a shell, and no prompt text among the arguments."""
    hostile = "-i /etc/passwd; $(touch /tmp/pwned) -filter_complex"
    spec = small_spec()
    spec["beats"][0]["image_prompt"] = hostile
    spec["beats"][0]["motion_prompt"] = hostile + " push in"
    spec["music"]["prompt"] = hostile
    spec_path = project.write_spec("zip", spec)
    for k, v in project.run_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(project.root)
    calls: list[tuple[object, dict]] = []
    real_popen_init = subprocess.Popen.__init__

    def recording_init(self, args, *a, **kw):
        calls.append((args, kw))
        return real_popen_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail(f"os.system{a}"))
    from adspec import actions, planning

    actions._context_for.cache_clear()
    plan = planning.plan_ad("zip", spec_path)
    for beat in plan.beats:
        actions.make_storyboard("zip", beat.id)
        for k in range(beat.chunk_count):
            actions.make_chunk("zip", beat.id, k)
    actions.make_music("zip")
    actions.make_stitch("zip")
    actions.make_mix("zip")
    actions._context_for.cache_clear()
    check_final(project.build / "zip" / "final.mp4", 8)
    assert calls, "no process was started"
    for args, kw in calls:
        assert isinstance(args, (list, tuple)), args
        assert not kw.get("shell"), args
        assert all(isinstance(a, (str, bytes, os.PathLike)) for a in args)
        assert not any("passwd" in str(a) or "pwned" in str(a) for a in args), args
    # and nowhere in the package is a shell asked for
    for path in (REPO / "adspec").rglob("*.py"):
        source = path.read_text()
        assert "shell=True" not in source and "os.system(" not in source and "os.popen(" not in source, path


def test_provider_output_that_only_looks_like_media_is_rejected(project: Project) -> None:
    """A clip with an MP4 header and garbage after it passes the download's sniffing; the
    cache's verifier catches it: one clear line, nothing cached, nothing in build/."""
    from fakes.replicate_server import FakeReplicate
    from reliability import live_env

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=0.05, output_mode="url") as rep:
        live_env(project, rep)
        real = rep._output_for

        def fake_mp4(p):
            out = real(p)
            if p["slug"].startswith("minimax/"):
                name = out.rsplit("/", 1)[1]
                rep.outputs[name] = (b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000), "video/mp4")
            return out

        rep._output_for = fake_mp4
        out = project.doit(check=False)
    assert out.returncode != 0
    assert_no_traceback(out.stdout, out.stderr)
    failed = [ln for ln in out.stdout.splitlines() if ln.startswith("FAILED ")]
    assert failed and all(ln.startswith("FAILED chunk:zip/") and "clip" in ln for ln in failed), failed
    assert not list(project.build.rglob("chunk-*.mp4"))
    assert list((project.cache / "rejected").iterdir())
