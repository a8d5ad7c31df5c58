"""The package's shape: no import circles, and no module importing a higher layer at import time.

The import graph is read from the source (ast), so the test needs no third-party tool and sees
imports inside functions too. Layers, bottom up (a module may import its own layer or below):

  1 values     errors, settings, hashing, atomic writes, file locks, paths, task names, money,
               recipes, the provider interfaces, the variants block
  2 knowledge  the beat library, the model registry, the plan rules and the spec and beat-file
               models validated against them, the YAML loader, the platforms' safe areas
  3 planning   the lock, the offline planner, the ads to build (variants, shard), validation
  4 effects    the request cache and remote, providers, media, renderers, verifiers, the speech
               mix and caption files
  5 records    prices and spend, status.json, progress, receipts, review pages: what the build's
               steps write down as they run (below the build, which writes them)
  6 build      the steps the tasks run (voice among them), the plan step, the estimate, the graph
  7 edges      the command line, `adspec build`, dodo support: where errors become messages

A lazy import (inside a function) is allowed downwards or within a layer, only where it buys
start-up time; a lazy import may never close a circle, and nothing imports upwards at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "adspec"

LAYERS: dict[str, int] = {
    # 1 values
    "adspec": 1, "adspec.errors": 1, "adspec.config": 1, "adspec.hashing": 1, "adspec.fsutil": 1, "adspec.data_yaml": 1,
    "adspec.file_locks": 1, "adspec.kept_files": 1, "adspec.paths": 1, "adspec.tasknames": 1, "adspec.money": 1,
    "adspec.recipes": 1, "adspec.providers.base": 1, "adspec.variants": 1, "adspec.plan_file": 1,
    "adspec.shard": 1, "adspec.prompt_text": 1, "adspec.redact": 1, "adspec.build_files": 1, "adspec.languages": 1,
    # 2 knowledge
    "adspec.library": 2, "adspec.registry": 2, "adspec.spec": 2, "adspec.plan_rules": 2,
    "adspec.spec_checks": 2, "adspec.loader": 2, "adspec.images": 2, "adspec.safe_areas": 2, "adspec.limits": 2,
    "adspec.placements": 2, "adspec.text_fit": 2,
    # 3 planning
    "adspec.beat_lock": 3, "adspec.beat_edit": 3, "adspec.approvals": 3, "adspec.offline_planner": 3, "adspec.ads": 3, "adspec.validate": 3,
    # 4 effects
    "adspec.cache": 4, "adspec.cache_entry": 4, "adspec.remote_claims": 4, "adspec.cache_view": 4, "adspec.remote": 4,
    "adspec.media": 4, "adspec.media_overlay": 4, "adspec.mp4_table": 4, "adspec.media_requests": 4, "adspec.verify": 4, "adspec.own_media": 4, "adspec.media_delivery": 4,
    "adspec.providers": 4, "adspec.render": 4, "adspec.captions": 4, "adspec.speech_mix": 4,
    # 5 records
    "adspec.prices": 5, "adspec.cost": 5, "adspec.status": 5, "adspec.progress": 5,
    "adspec.receipts": 5, "adspec.noop_stamp": 5, "adspec.checks": 5, "adspec.timeline_otio": 5, "adspec.provenance": 5, "adspec.runs": 5, "adspec.budget_refusal": 5, "adspec.report": 5, "adspec.cache_admin": 5, "adspec.cleaning": 5,
    # 6 build
    "adspec.actions": 6, "adspec.plan_step": 6, "adspec.estimate": 6, "adspec.graph": 6, "adspec.voice": 6, "adspec.delivery": 6,
    "adspec.approve": 6,
    # 7 edges
    "adspec.cli": 7, "adspec.ci": 7, "adspec.dodo_support": 7, "adspec.doit_commands": 7, "adspec.serve": 7, "adspec.mcp_server": 7,
    "adspec.project": 7,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int | None:
    """A module's layer: its own entry, else its subpackage's (providers.*, render.*)."""
    name = module
    while name != "adspec":
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return LAYERS[name] if module == name else None


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports(modules: dict[str, Path]) -> dict[str, dict[str, bool]]:
    """module -> {imported adspec module: imported at module level?}; `if TYPE_CHECKING:` imports
    are not imports at run time and are left out."""
    graph: dict[str, dict[str, bool]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for block in ast.walk(tree) if _type_checking_block(block) for n in ast.walk(block)}
        top = {id(n) for n in tree.body}
        edges = graph.setdefault(module, {})
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module and target.startswith("adspec"):
                    edges[target] = edges.get(target, False) or id(node) in top
    return graph


def circles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    found = circles(imports(_modules()))
    assert not found, "import circles (lazy imports count too): " + "; ".join(" <-> ".join(c) for c in found)


def test_every_module_has_a_layer() -> None:
    missing = [m for m in _modules() if layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS in {Path(__file__).name}: {', '.join(missing)}"


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for module, edges in imports(_modules()).items():
        mine = layer_of(module)
        for target in edges:
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not bad, "\n".join(bad)


def test_the_walk_sees_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks themselves: a made-up package with a lazy circle is caught."""
    pkg = tmp_path / "adspec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("def f():\n    from .cli import main\n")
    (pkg / "cli.py").write_text("from .errors import f\nmain = f\n")
    modules = {"adspec": pkg / "__init__.py", "adspec.errors": pkg / "errors.py", "adspec.cli": pkg / "cli.py"}
    graph = imports(modules)
    assert graph["adspec.errors"] == {"adspec.cli": False} and graph["adspec.cli"] == {"adspec.errors": True}
    assert circles(graph) == [["adspec.cli", "adspec.errors"]]


def test_the_readme_maps_every_module() -> None:
    """The README's Development map names every module (a subpackage by its folder), so a newcomer
    finds each one's job there."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    dev = readme[readme.index("## Development"):]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            continue
        listed = f"{rel.parts[0]}/" if len(rel.parts) > 1 else rel.name
        if listed not in dev:
            missing.append(str(rel))
    assert missing == []
