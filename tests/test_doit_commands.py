"""doit's own commands behave as doit documents them, on a fresh checkout (nothing planned yet)
and after a build: clean, clean <ad>, ignore, list, info, forget, status.json after each; and
the build's files are written with the user's umask."""

from __future__ import annotations

import json
import stat

from conftest import Project, executed_tasks, small_spec


def status(project: Project, ad: str) -> dict:
    return json.loads((project.build / ad / "status.json").read_text())


def two_ads(project: Project) -> None:
    project.write_spec("alpha", small_spec(seed=1))
    project.write_spec("beta", small_spec(seed=2))


def test_doit_commands_on_a_fresh_checkout(project: Project) -> None:
    two_ads(project)
    listed = project.doit("list").stdout
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert not [n for n in names if n.startswith("render_")], listed  # no internal names
    for kind in ("plan", "storyboard", "chunk", "voice", "music", "stitch", "mix", "export", "check", "timeline",
                 "report", "alpha", "beta"):  # every kind of task is a group
        assert kind in names, listed
    # bash completion after `doit chunk:` runs `doit list --quiet --all chunk`
    members = project.doit("list", "--quiet", "--all", "chunk").stdout.split()
    assert {"chunk:alpha", "chunk:beta"} <= set(members)

    cleaned = project.doit("clean", check=False)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert "does not exist" not in cleaned.stdout + cleaned.stderr

    ignored = project.doit("ignore", "beta", check=False)
    assert ignored.returncode == 0 and "Traceback" not in ignored.stderr, ignored.stderr
    info = project.doit("info", "plan:alpha", check=False).stdout  # exit 1: it would run
    assert "<function" not in info and "the plan is out of date" in info, info

    run = project.doit("-n", "2", "-P", "thread")
    ran = executed_tasks(run.stdout)
    assert "mix:alpha" in ran and not [t for t in ran if "beta" in t], ran  # ignored: nothing of beta ran
    assert (project.build / "alpha" / "final.mp4").exists() and not (project.build / "beta" / "final.mp4").exists()
    assert status(project, "alpha")["state"] == "done"
    beta = project.build / "beta" / "status.json"
    assert not beta.exists() or json.loads(beta.read_text())["state"] == "ignored"

    # the user's umask, not mkstemp's 0600: a web server running as another user can read them
    for path in (project.build / "alpha").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o044 == 0o044, f"{path.relative_to(project.build)} is {oct(mode)}"
    assert {"index.html", "music.wav", "final.mp4", "music.receipt.json"} <= {p.name for p in (project.build / "alpha").iterdir()}

    # kind groups: `doit mix` is every ad's mix; `doit clean chunk` removes every chunk and nothing else
    project.doit("forget", "beta")
    project.doit("-n", "2", "-P", "thread", "mix")
    assert (project.build / "beta" / "final.mp4").exists()
    chunks = sorted(project.build.glob("*/beats/*/chunk-*.mp4"))
    assert len(chunks) == 4
    project.doit("clean", "chunk")
    assert not any(p.exists() for p in chunks)
    assert (project.build / "alpha" / "final.mp4").exists()


def test_doit_voice_makes_the_spoken_lines_only(project: Project) -> None:
    """`voice` is a group like the other kinds: `doit voice` speaks every line (after the plan)
    and nothing else, `doit list --all voice` lists them, `doit clean voice` removes them."""
    spec = small_spec(seed=3)
    spec["beats"][0]["voiceover"] = "Meet Zip."
    spec["beats"][1]["voiceover"] = "Drink more."
    project.write_spec("alpha", spec)
    ran = executed_tasks(project.doit("voice").stdout)
    assert sorted(ran) == ["plan:alpha", "voice:alpha/cta", "voice:alpha/hook"], ran
    voices = [project.build / "alpha" / "beats" / b / "voice.wav" for b in ("hook", "cta")]
    assert all(v.is_file() for v in voices) and not (project.build / "alpha" / "final.mp4").exists()
    members = project.doit("list", "--quiet", "--all", "voice").stdout.split()
    assert {"voice:alpha", "voice:alpha/hook", "voice:alpha/cta"} <= set(members), members
    project.doit("clean", "voice")
    assert not any(v.exists() for v in voices)


def test_clean_info_and_status_after_a_build(project: Project) -> None:
    two_ads(project)
    project.doit("-n", "2", "-P", "thread")
    mine = project.build / "alpha" / "notes.txt"  # a file adspec did not make
    mine.write_text("keep me")

    # `doit clean <ad>` removes that ad's files (no -c needed), and only that ad's
    out = project.doit("clean", "alpha").stdout
    assert not (project.build / "alpha" / "final.mp4").exists(), out
    assert not list((project.build / "alpha").glob("beats/*/chunk-*.mp4"))
    assert (project.build / "beta" / "final.mp4").exists()
    assert mine.read_text() == "keep me"
    st = status(project, "alpha")
    assert st["state"] == "cleaned" and not st.get("final"), st  # not "done" with no final

    project.doit("clean")
    assert mine.exists() and not (project.build / "beta" / "final.mp4").exists()
    assert (project.cache / "ledger.jsonl").exists()  # the request cache is not doit's to clean

    # a chunk of an edited beat is stale before the plan runs, and `doit info` says why in words
    project.doit("-n", "2", "-P", "thread")
    spec = small_spec(seed=1)
    spec["beats"][0]["image_prompt"] = "A bottle on a mossy rock"
    project.write_spec("alpha", spec)
    info = project.doit("info", "chunk:alpha/hook/0", check=False).stdout
    assert "status     : run" in info and "beat hook is planned differently now" in info, info
    assert "<function" not in info
    untouched = project.doit("info", "chunk:alpha/cta/0", check=False).stdout
    assert "up-to-date" in untouched, untouched
    assert "(args=[], kwargs={})" not in info, info  # doit's own suffix, for checks that take none
    # the mix is up to date on what is there now, and said so with no more: an edited super or caption
    # style reaches it only through the plan, which runs first
    mix = project.doit("info", "mix:alpha", check=False).stdout
    assert "status     : up-to-date" in mix and "note       : up to date on what is there now, but it waits on" in mix
    assert "plan:alpha" in mix.split("note")[1], mix
    project.doit()
    assert "note" not in project.doit("info", "mix:alpha", check=False).stdout  # nothing waits: no note


def test_doit_commands_that_crashed_say_one_line(project: Project) -> None:
    """doit's own `info` of a name that is no task raised a KeyError, `dumpdb` a dbm error, and
    `list | head` a BrokenPipeError: adspec's subclasses (doit's plug-in entry points) say one
    line, or end quietly as `cat` does."""
    import subprocess
    import sys

    from conftest import REPO

    two_ads(project)
    project.doit("plan:alpha")
    typo = project.doit("info", "chunk:alpha/hook/O", check=False)
    assert typo.returncode == 3 and "Traceback" not in typo.stderr, typo.stderr
    assert typo.stderr.strip().splitlines() == [
        "ERROR: `info`: no task named chunk:alpha/hook/O (did you mean chunk:alpha/hook/0, chunk:alpha, "
        "chunk:alpha/cta/0?); `doit list --all` lists them"], typo.stderr
    dump = project.doit("dumpdb", check=False)
    assert dump.returncode == 3 and dump.stderr.strip() == (
        "ERROR: `dumpdb` reads dbm files and there is none at .doit.db; this adspec project keeps doit's state "
        "in SQLite: sqlite3 build/.doit.sqlite3 'select * from doit'"), dump.stdout + dump.stderr
    for args in (["list", "--all"], ["info", "mix:alpha"]):  # the reader is gone before the first line
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args], cwd=project.root,
                                env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=120)
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)


def test_a_killed_or_interrupted_run_is_not_running_forever(project: Project) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    project.write_spec("alpha", small_spec(seed=1, resolution="720p", duration=8))
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")], cwd=project.root,
                            env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = project.build / "alpha" / "status.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and json.loads(path.read_text()).get("running"):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert json.loads(path.read_text())["state"] in ("interrupted", "done"), path.read_text()

    # SIGKILL: the process cannot say so; readers see it is gone
    data = json.loads(path.read_text())
    data.update(state="running", pid=2 ** 22 + 12345, running={"chunk:alpha/hook/0": {"since": time.time() - 40}})
    path.write_text(json.dumps(data))  # no such process; it was waiting on a chunk
    shown = project.adspec("status", "--json")
    assert json.loads(shown.stdout)[0]["state"] == "interrupted", shown.stdout
    assert json.loads(shown.stdout)[0]["running"] == {}, shown.stdout  # nothing runs: no wait reads on
    table = project.adspec("status").stdout
    assert "interrupted" in table and "chunk hook/0" not in table, table
