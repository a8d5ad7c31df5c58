"""The `adspec` command. The one place where errors become messages: an AdspecError is printed
as one line (file:line: field: message) with a non-zero exit, never as a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import load_settings
from .errors import SpecError, SpecWarning, error_line

# Each command imports what it needs when it runs (start-up time: `adspec status` loads no provider).

EXIT_ERROR = 1
EXIT_USAGE = 2


def _specs_for(names: Sequence[str]) -> list[tuple[str, Path]]:
    """(ad, spec file) of the ads named, variants expanded (a spec with variants names them all);
    every ad when none is named. SpecError for a name that is no ad."""
    from .ads import choose_ads

    return choose_ads(load_settings().specs_dir, tuple(names))[0]


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_paths

    settings = load_settings()
    paths = [Path(p) for p in args.paths] or [settings.specs_dir]
    found = validate_paths(paths, settings.specs_dir.parent)
    for e in found:
        print(e.one_line(), file=sys.stderr)
    errors = [e for e in found if not isinstance(e, SpecWarning)]
    if not errors:
        warned = f" ({len(found)} warning{'s' if len(found) != 1 else ''})" if found else ""
        print(f"ok: {', '.join(str(p) for p in paths)}{warned}")
    return EXIT_ERROR if errors else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .ads import resolve_ad
    from .plan_step import plan_ad

    for ad, spec_path in _specs_for(args.names):
        plan = plan_ad(ad, spec_path, force=args.force)
        resolved = resolve_ad(ad, spec_path)
        where = f"the inline beats of {spec_path}" if resolved.spec.beats is not None else str(resolved.beats_path)
        print(f"{ad}: {len(plan.beats)} beats, {plan.duration} s -> {where}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from .ads import resolve_ad
    from .approve import ads_named, approve, listing

    if args.list:  # a spec of variants: each of them
        for target in [t for name in args.targets for t in ads_named(name, load_settings().specs_dir)]:
            rows = listing(target)
            for beat_id, state, sha in rows:
                print(f"{target.partition('/')[0]}/{beat_id}\t{state}" + (f"\t{sha[:12]}" if sha else ""))
            counts = {s: sum(1 for _, x, _ in rows if x == s) for s in ("approved", "pending", "stale")}
            ad = target.partition("/")[0]
            needs = resolve_ad(ad, _specs_for([ad])[0][1]).spec.approval == "required"
            print(f"{target}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                  + ("" if needs else " (it does not require approval: its videos are made without it)"), file=sys.stderr)
        return 0
    for line in approve(args.targets):
        print(line, file=sys.stderr if line.startswith("note: ") else sys.stdout)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .ci import run_build

    return run_build(args.names, jobs=args.jobs, as_json=args.json)


def cmd_schema(args: argparse.Namespace) -> int:
    from .validate import json_schema, write_schemas

    if args.write:
        written = write_schemas(args.write)
        print(f"wrote {', '.join(str(p) for p in written)}")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .project import init_project

    root = Path(args.dir)
    made = init_project(root)
    for path, written, outdated in made:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        note = " (not this adspec's schema: `adspec schema --write schema` brings it up to date)" if outdated else ""
        print(f"{'wrote' if written else 'kept '} {shown}{note}")
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {args.dir} && "
    print(f"next: {where}doit   (builds build/<ad>/final.mp4 for every spec in specs/; offline without API keys)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import models_table

    rows = models_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="adspec model registry (prices marked * are third-party figures)", show_lines=False)
    for column in ("name", "kind", "replicate / openai ref", "clips (s) / voices", "reference images", "price", "checked"):
        table.add_column(column, overflow="fold")
    for r in rows:
        name = r["name"] + (f" ({r['aliases']})" if r["aliases"] else "")
        price = r["price"] + ("" if r["verified"] else " *")
        table.add_row(name, r["kind"], r["ref"], r["clip_lengths"] or r.get("voices", ""), r["references"], price,
                      r["checked"])
    Console(width=max(Console().width, 120)).print(table)
    return 0


def cmd_placements(args: argparse.Namespace) -> int:
    from .placements import load_placements

    rows = [p.model_dump(mode="json") for p in load_placements().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="adspec placements (sources: adspec/library/placements.yaml)")
    for column in ("id", "name", "aspect", "duration", "loudness", "safe zone l/r/t/b", "captions", "format"):
        table.add_column(column, overflow="fold")
    for p in load_placements().values():
        z = p.safe_zone
        table.add_row(p.id, p.name, p.aspect_ratio, p.duration.describe(),
                      f"{p.loudness.lufs:g} LUFS, TP {p.loudness.true_peak:g} dBTP",
                      f"{z.left:.0%}/{z.right:.0%}/{z.top:.0%}/{z.bottom:.0%}",
                      "required" if p.captions_required else "-",
                      f"{'/'.join(p.video.codecs)}+{'/'.join(p.audio.codecs)} {'/'.join(p.video.containers)}, "
                      f"<= {p.video.max_kbps} kbps")
    Console(width=max(Console().width, 140)).print(table)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The delivery checks of built ads, now, on the files in build/ (nothing is rebuilt)."""
    from .ads import ad_source
    from .checks import check_ad
    from .paths import AdPaths
    from .plan_file import load_plan
    from .status import read_status

    settings = load_settings()
    failed = False
    for ad, spec_path in _build_ads(args.names):
        paths = AdPaths.of(settings.build_dir, ad)
        if load_plan(paths) is None or not paths.final.is_file():
            print(f"{ad}: not built yet (run doit {ad})", file=sys.stderr)
            failed = True
            continue
        status = read_status(settings.build_dir, ad)
        behind = {"waiting": f"its videos wait for approval (adspec approve --list {ad})",
                  "partial": f"its last run made some of its targets, not its final (doit {ad})"}
        if status is not None and status.state in behind:  # a gate never passes an earlier cut
            print(f"{ad}: final.mp4 is an earlier cut: {behind[status.state]}", file=sys.stderr)
            failed = True
            continue
        try:  # the placements the spec lists now (a placement added since the build is checked too)
            placements = ad_source(ad, spec_path)[0].placements
        except SpecError as e:
            print(e.one_line(), file=sys.stderr)
            failed = True
            continue
        unmade = [p for p in placements if not paths.export(p).is_file()]
        if unmade:
            print(f"{ad}: no export for {', '.join(unmade)} yet (`doit {ad}` makes it): checked on final.mp4",
                  file=sys.stderr)
        report = check_ad(paths, ad, placements)
        for line in report.lines():
            print(line)
        if report.passed:
            print(f"{ad}: ok ({', '.join(placements) or 'the rules of every ad'})")
        failed = failed or not report.passed
    return EXIT_ERROR if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Read a file's C2PA manifest back: its signature, its hash, its ingredients against the receipts."""
    from .provenance import verify

    bad = False
    for name in args.files:
        verdict = verify(Path(name), Path(args.build) if args.build else None)
        for line in verdict.chain:
            print(line)
        for problem in verdict.problems:
            print(f"{name}: {problem}", file=sys.stderr)
        print(f"{name}: {'ok' if verdict.ok else 'FAILED'}")
        bad = bad or not verdict.ok
    return EXIT_ERROR if bad else 0


def _build_ads(names: Sequence[str]) -> list[tuple[str, Path]]:
    """The ads `doit` would build (variants expanded, ADSPEC_SHARD applied), or the named ones
    (an ad, or a spec name standing for all its variants)."""
    from .ads import choose_ads

    settings = load_settings()
    return choose_ads(settings.specs_dir, tuple(names), settings.shard)[0]


def cmd_estimate(args: argparse.Namespace) -> int:
    from .estimate import estimate, render_text

    run = estimate(_build_ads(args.names), live=args.live)
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        print(render_text(run), end="")
    return EXIT_ERROR if any(a.error for a in run.ads) else 0


def cmd_status(args: argparse.Namespace) -> int:
    from .ads import choose_ads, list_ads
    from .build_files import AdStatus
    from .status import known_ads, print_table, read_status, rendered, watch

    settings = load_settings()
    if args.watch and len(args.names) != 1:
        print("adspec status --watch follows one ad: adspec status --watch AD", file=sys.stderr)
        return EXIT_USAGE
    # the project's ads (a spec with variants named: its variants); an ad built before that has no
    # spec now only when named; a name that is neither is an error, not a row saying "not built"
    if args.names:
        built = set(known_ads(settings.build_dir))
        ads, groups = list_ads(settings.specs_dir)
        current = {a for a, _ in ads} | set(groups)
        # a name the specs give is theirs (a spec that now has variants: its variants, not the
        # folder of its build before them); only a name no spec gives falls back to its build
        names = list(dict.fromkeys(a for n in args.names for a in (
            [n] if n in built and n not in current else [a for a, _ in choose_ads(settings.specs_dir, [n])[0]])))
    else:
        names = [a for a, _ in list_ads(settings.specs_dir)[0]]
    if args.watch:
        if len(names) != 1:
            print(f"adspec status --watch follows one ad: {args.names[0]} is {len(names)} ads ({', '.join(names)})",
                  file=sys.stderr)
            return EXIT_USAGE
        return watch(settings.build_dir, names[0], interval=args.interval)
    found = {n: read_status(settings.build_dir, n) for n in names}
    statuses = [d if d is not None else AdStatus(ad=n, state="not built") for n, d in found.items()]
    for d in statuses:  # "offline animatic", "live", ...: not only model names
        d.rendered = rendered(settings.build_dir, d.ad)
    if args.json:
        print(json.dumps([d.to_json() if d is not None else {"ad": n, "state": "not built"} for n, d in found.items()],
                         indent=2))
    elif not statuses:
        print(f"no ads in {settings.specs_dir} yet (write a spec there, or run `adspec init`)")
    else:
        print_table(statuses)
    return 0


def cmd_cache_merge(args: argparse.Namespace) -> int:
    """Fold other request caches (CI shards' results) into one: nothing paid for is lost."""
    from .cache import RequestCache
    from .errors import CacheError

    into = Path(args.into) if args.into else load_settings().cache_dir
    dest = RequestCache(into)
    total = {"entries": 0, "pending": 0, "bytes": 0}
    for src in args.sources:
        if not (Path(src) / "requests").is_dir():
            raise CacheError(f"{src}: not a request cache (no requests/ folder)")
        got = dest.absorb(RequestCache(Path(src)), since=args.since)
        total = {k: total[k] + got[k] for k in total}
        if not args.json:
            print(f"{src}: {got['entries']} entries ({got['bytes']} bytes), {got['pending']} pending jobs -> {into}")
    if args.json:
        print(json.dumps({"into": str(into), **total}))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from . import cache_admin

    settings = load_settings()
    root, builds = settings.cache_dir, [settings.build_dir]
    if args.cache_command == "du":
        u = cache_admin.usage(root, builds)
        print(json.dumps(u, indent=2) if args.json else cache_admin.render_usage(u), end="\n" if args.json else "")
    elif args.cache_command == "gc":
        if not args.older_than >= 0:
            print("adspec cache gc: --older-than takes a number of days (0 or more)", file=sys.stderr)
            return EXIT_USAGE
        if not settings.build_dir.is_dir() and not args.dry_run:  # no receipts to keep anything: it would take all
            print(f"adspec cache gc: no build folder at {settings.build_dir}: run it in a project (its receipts keep "
                  "the artifacts they use), set ADSPEC_BUILD, or look first with --dry-run", file=sys.stderr)
            return EXIT_ERROR
        out = cache_admin.collect(root, builds, max_age_days=args.older_than, dry_run=args.dry_run)
        if args.json:
            print(json.dumps({"dry_run": args.dry_run, **out.to_json()}, indent=2))
        else:
            print(cache_admin.render_gc(out, dry_run=args.dry_run, max_age_days=args.older_than,
                                        build_dir=settings.build_dir), end="")
    elif args.cache_command == "show":
        info = cache_admin.show(root, builds, args.key)
        print(json.dumps(info, indent=2, default=str) if args.json else cache_admin.render_show(info), end="\n" if args.json else "")
    else:
        print(cache_admin.forget(root, builds, args.key), end="")
    return 0


def _whole_number(raw: str, low: int, high: int | None, expected: str) -> int:
    """An argparse value: a whole number in [low, high], else argparse's one line saying `expected`."""
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {raw!r}")
    return value


def _at_least_one(raw: str) -> int:
    """A count of at least 1 (`-n 0` was taken as 1 without a word)."""
    return _whole_number(raw, 1, None, "a whole number of at least 1")


def _port(raw: str) -> int:
    """A TCP port, 1-65535 (99999 listened on 34463 while it said 99999)."""
    return _whole_number(raw, 1, 65535, "a port from 1 to 65535")


def _missing_extra(e: ImportError, command: str) -> int:
    print(f"adspec {command} needs the serve extra: pip install 'adspec[serve]' (in a clone of adspec: "
          f"pip install -e '.[serve]'; {e.name} is missing)", file=sys.stderr)
    return EXIT_ERROR


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve.app import serve
    except ImportError as e:
        return _missing_extra(e, "serve")
    return serve(args.host, args.port, watch=args.watch)


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp_server import run_stdio
    except ImportError as e:
        return _missing_extra(e, "mcp")
    return run_stdio()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adspec", description="Declarative AI video ads, built like software.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"adspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="make a working adspec project in DIR (default: here): dodo.py, specs/ with an "
                                    "example, schema/, .gitignore; keeps any file already there")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="the project's folder (default: here)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("validate", help="check specs and beat files (file:line: field: message)")
    p.add_argument("paths", nargs="*", help="spec or beat files, or folders (default: specs/)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="write specs/NAME.beats.yaml, the lock of the plan")
    p.add_argument("names", nargs="*", help="ads to plan (default: all)")
    p.add_argument("--force", action="store_true", help="replan even over hand edits of the beat file")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("approve", help="record a beat's storyboard as approved in its beat file (approved: <sha256>); "
                                       "with `approval: required` only approved beats' video is paid for")
    p.add_argument("targets", nargs="+", metavar="AD[/BEAT...]", help="an ad (every beat) or AD/BEAT[/BEAT...]")
    p.add_argument("--list", action="store_true", help="show each beat as approved, pending or stale; change nothing")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("schema", help="JSON Schema of the spec and the beat file")
    p.add_argument("--write", metavar="DIR", help="write spec.schema.json and beats.schema.json into DIR (e.g. schema: where the modelines of specs/ point)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("estimate", help="what doit would run and pay now (cache-aware; calls nothing paid)")
    p.add_argument("names", nargs="*", help="ads to estimate (default: every ad doit would build)")
    p.add_argument("--json", action="store_true", help="machine-readable, with a top-level total_usd")
    p.add_argument("--live", action="store_true",
                   help="price the build as the live providers would make it (models.yaml prices), with no key and no request")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("status", help="table of ads from build/<ad>/status.json; --watch AD follows one")
    p.add_argument("names", nargs="*", help="ads to show (default: the project's ads, and any built ad named)")
    p.add_argument("--watch", action="store_true", help="follow one ad until its build finishes")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between looks with --watch")
    p.add_argument("--json", action="store_true", help="each ad's status.json as a list (not built: its state only)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("models", help="the model registry with prices")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("check", help="delivery checks of built ads against their placements (one line per violation)")
    p.add_argument("names", nargs="*", metavar="AD", help="ads (default: all)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("verify", help="read a file's C2PA manifest: signature, hash, and every ingredient against "
                                      "the receipts in its build; prints the chain")
    p.add_argument("files", nargs="+", metavar="FILE", help="build/<ad>/final.mp4 or build/<ad>/export/<placement>.mp4")
    p.add_argument("--build", metavar="DIR", help="the ad's build folder (build/<ad>) for a file copied out of it; "
                                                  "without one beside the file, only its signature and hash are checked")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("placements", help="the delivery placements an ad can list (placements: [...]) and their rules")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(func=cmd_placements)

    p = sub.add_parser("cache", help="see and bound the request cache: du, gc [--dry-run], show KEY, forget KEY, merge SRC...")
    cache_sub = p.add_subparsers(dest="cache_command", required=True)
    c = cache_sub.add_parser("du", help="size of the cache by kind and by ad (reads only)")
    c.add_argument("--json", action="store_true", help="machine-readable")
    c = cache_sub.add_parser("gc", help="remove artifacts no receipt under build/ and no recent ledger line uses; "
                                        "blobs no entry names, old rejected outputs, leftovers, unheld lock files")
    c.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    c.add_argument("--older-than", type=float, default=30.0, metavar="DAYS",
                   help="keep whatever was made or used in the last DAYS days (default 30; "
                        "whatever was made or used in the last hour is always kept)")
    c.add_argument("--json", action="store_true", help="machine-readable")
    c = cache_sub.add_parser("show", help="one key: state (cached, corrupt, pending, claimed), artifact, cost, job id, "
                                          "ledger lines, receipts and recipe (reads only)")
    c.add_argument("key", help="a cache key, or its first 6+ characters")
    c.add_argument("--json", action="store_true", help="machine-readable")
    c = cache_sub.add_parser("forget", help="clear a key's records (e.g. a stuck request) so the next build asks "
                                            "again: this may pay again")
    c.add_argument("key", help="a cache key, or its first 6+ characters")
    p.set_defaults(func=cmd_cache)
    c = cache_sub.add_parser("merge", help="copy into one cache what other caches have and it lacks (CI shards' results)")
    c.add_argument("sources", nargs="+", metavar="SRC", help="request cache folders to copy from")
    c.add_argument("--into", metavar="DIR", help="the cache to copy into (default: ADSPEC_CACHE_DIR)")
    c.add_argument("--since", type=float, metavar="UNIX_TIME", help="only entries made at or after this time")
    c.add_argument("--json", action="store_true", help='print {"entries", "pending", "bytes"} added')
    c.set_defaults(func=cmd_cache_merge)

    p = sub.add_parser("build", help="build ads for CI: finishes the others when one fails, non-zero exit if any "
                                     "failed; honours ADSPEC_SHARD=i/n")
    p.add_argument("names", nargs="*", metavar="AD", help="ads, variants, or specs with variants (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (doit's output goes to stderr)")
    p.add_argument("-n", "--jobs", type=_at_least_one, default=None, metavar="N",
                   help="run N tasks at once (threads; default: doit's, which adspec sets to parallel)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("serve", help="live studio in the browser and the seed's REST API (pip install 'adspec[serve]')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond loopback needs ADSPEC_SERVE_TOKEN)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--watch", action="store_true", help="rebuild an ad when its spec or beat file is saved")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="Model Context Protocol server over stdio, for agents (pip install 'adspec[serve]')")
    p.set_defaults(func=cmd_mcp)
    return parser


NEEDS_PROJECT = ("validate", "plan", "estimate", "build", "approve", "status", "check", "mcp")  # commands of a project
EXIT_CLOSED_PIPE = 128 + 13  # as a program killed by SIGPIPE (`cat big | head`)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `adspec` command; the reader of its output leaving early (`adspec schema | head`)
    ends it quietly, as it ends `cat`: no traceback, the exit status of a SIGPIPE."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here for output still buffered
        return code
    except BrokenPipeError:
        # nothing more can be said to this reader; keep Python's exit-time flush from trying again
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_CLOSED_PIPE


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if args.command in NEEDS_PROJECT and not (args.command == "validate" and args.paths):
            specs = load_settings().specs_dir  # a bad ADSPEC_* value: its one line, below
            if not specs.is_dir():
                print(f"adspec: no adspec project here: no {specs.name}/ folder in {Path.cwd()} or above; run "
                      "`adspec init` to make one, cd into one, or set ADSPEC_SPECS", file=sys.stderr)
                return EXIT_ERROR
        return func(args)
    except BrokenPipeError:
        raise  # see main
    except Exception as e:  # the one line of adspec.errors.error_line; a bug keeps its traceback
        line = error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("adspec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
