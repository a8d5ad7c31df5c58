"""The ads to build: spec files -> ads (variants expanded, see adspec.variants), chosen by name
and by `ADSPEC_SHARD` in one place (`choose_ads`), each resolved once into a `ResolvedAd` (its
name, spec file, spec, variant and beat file) that the steps are handed.
"""

from __future__ import annotations

import difflib
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import SpecError
from .fsutil import read_regular
from .loader import load_spec
from .paths import VARIANT_SEPARATOR as SEPARATOR
from .paths import ad_name, beat_file_path, find_specs
from .shard import parse_shard, shards_of, take
from .spec import Spec
from .spec_checks import ResolvedVariant, resolve_variants


@dataclass(frozen=True)
class ResolvedAd:
    """One ad, resolved once: what every step of it needs to know about where it comes from."""

    name: str  # "<spec>" or "<spec>@<variant>"
    spec_path: Path
    spec: Spec  # the variant's spec for a variant
    beats_path: Path  # its beat file (the lock); unused when the spec has inline beats

    @property
    def base(self) -> str:
        """The spec's ad name: the planner request names it, so equal variants pay once."""
        return ad_name(self.spec_path)

    @property
    def variant(self) -> str | None:
        return self.name.split(SEPARATOR, 1)[1] if SEPARATOR in self.name else None


@dataclass(frozen=True)
class Expansion:
    """A spec file and its variants (none for a spec without `variants:`)."""

    base_ad: str
    spec_path: Path
    spec: Spec
    variants: tuple[ResolvedVariant, ...]

    def beats_path(self, tag: str | None) -> Path:
        return beat_file_path(self.spec_path, tag)

    @property
    def ads(self) -> list[str]:
        return [v.ad for v in self.variants] if self.variants else [self.base_ad]


_memo: dict[str, tuple[str, Expansion]] = {}
_memo_lock = threading.Lock()


def expansion(spec_path: str | Path) -> Expansion:
    """Load a spec and its variants (memoised on the file's bytes). Raises SpecError."""
    spec_path = Path(spec_path)
    try:
        digest = hashlib.sha256(read_regular(spec_path)).hexdigest()
    except OSError:
        digest = ""
    key = str(spec_path.absolute())
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] == digest and digest:
        return hit[1]
    spec = load_spec(spec_path)  # validates the variants too (file:line errors)
    base_ad = ad_name(spec_path)
    resolved, issues = resolve_variants(spec, base_ad, spec_path)
    if issues:  # pragma: no cover - load_spec reports these first
        raise SpecError(spec_path, None, ".".join(map(str, issues[0][0])), issues[0][1])
    exp = Expansion(base_ad, spec_path, spec, tuple(resolved))
    with _memo_lock:
        _memo[key] = (digest, exp)
    return exp


def ad_source(ad: str, spec_path: str | Path) -> tuple[Spec, Path]:
    """The spec an ad is built from and its beat file: the spec itself for a plain ad, the
    variant's spec for `<base>@<variant>`. Raises SpecError."""
    spec_path = Path(spec_path)
    if SEPARATOR not in ad:
        spec = load_spec(spec_path)
        if spec.variants is not None:
            names = ", ".join(v.ad for v in expansion(spec_path).variants)
            raise SpecError(spec_path, None, "variants",
                            f"'{ad}' has variants and is built as them: {names} (`doit {ad}` builds them all)")
        return spec, beat_file_path(spec_path)
    exp = expansion(spec_path)
    for v in exp.variants:
        if v.ad == ad:
            return v.spec, exp.beats_path(v.beats_tag)
    names = ", ".join(v.ad for v in exp.variants) or "none"
    raise SpecError(spec_path, None, "variants", f"no variant '{ad}' (variants: {names})")


def beats_path_of(ad: str, spec_path: str | Path) -> Path:
    """The beat file of an ad or a variant (a plain ad's without reading its spec). SpecError."""
    if SEPARATOR not in ad:
        return beat_file_path(spec_path)
    return ad_source(ad, spec_path)[1]


def beat_files(spec_path: str | Path) -> list[tuple[Path, Spec]]:
    """Each distinct beat file the variants of a spec use, with a spec to check it against."""
    exp = expansion(spec_path)
    out: dict[Path, Spec] = {}
    for v in exp.variants:
        out.setdefault(exp.beats_path(v.beats_tag), v.spec)
    return list(out.items())


def list_ads(specs_dir: str | Path) -> tuple[list[tuple[str, Path]], dict[str, list[str]]]:
    """Every ad under `specs_dir` with its spec file, variants expanded, sorted by spec; and the
    groups (base name -> its variants) of specs with variants.

    A spec that does not load is listed as its plain name: its plan task reports the error, and
    the other ads still build."""
    ads: list[tuple[str, Path]] = []
    groups: dict[str, list[str]] = {}
    for path in find_specs(specs_dir):
        base = ad_name(path)
        try:
            exp = expansion(path)
        except SpecError:
            ads.append((base, path))
            continue
        if exp.variants:
            groups[base] = [v.ad for v in exp.variants]
            ads += [(v.ad, path) for v in exp.variants]
        else:
            ads.append((base, path))
    seen: dict[str, Path] = {}
    for ad, path in ads:  # only a spec file whose (invalid) name holds '@' can collide with a variant
        if ad in seen and ad == ad_name(seen[ad]) == ad_name(path) and seen[ad] != path:
            raise SpecError(path, None, None, f"{seen[ad].name} and {path.name} are both the ad '{ad}'; keep one of them")
        if ad in seen:
            first, second = sorted([seen[ad], path], key=lambda p: SEPARATOR in p.stem)
            raise SpecError(second, None, None, f"ad name '{ad}' collides with the variant {ad} of {first}; "
                                                f"rename the file (a spec's name may not contain '{SEPARATOR}')")
        seen[ad] = path
    return ads, groups


def select_ads(names: list[str] | tuple[str, ...], specs_dir: str | Path) -> list[tuple[str, Path]]:
    """The ads named (an ad, a variant, or a spec with variants: all of them); all when none."""
    ads, groups = list_ads(specs_dir)
    if not names:
        return ads
    by_name = dict(ads)
    out: list[tuple[str, Path]] = []
    missing = []
    for n in names:
        if n in groups:
            out += [(v, by_name[v]) for v in groups[n]]
        elif n in by_name:
            out.append((n, by_name[n]))
        else:
            missing.append(n)
    if missing:
        for n in missing:  # `zip@winter` of a spec that does not load: that spec's own error, not "no ad"
            base = n.split(SEPARATOR, 1)[0]
            if SEPARATOR in n and base in by_name:
                expansion(by_name[base])  # raises the spec's SpecError
        known = sorted(set(by_name) | set(groups))
        close = difflib.get_close_matches(missing[0], known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SpecError(specs_dir, None, None, f"no ad named {', '.join(missing)}{hint} (known: {', '.join(known) or 'none'})")
    unique: dict[str, Path] = {}
    for a, p in out:
        unique.setdefault(a, p)
    return list(unique.items())


def resolve_ad(ad: str, spec_path: str | Path) -> ResolvedAd:
    """The ResolvedAd of `ad` (a plain ad or `<spec>@<variant>`) from its spec file. SpecError."""
    spec, beats_path = ad_source(ad, spec_path)
    return ResolvedAd(ad, Path(spec_path), spec, beats_path)


def left_to_other_shards(names: Sequence[str], specs_dir: str | Path, shard: str | None) -> list[str]:
    """For each of `names` that is an ad of the project (or a spec of variants) none of which
    this runner's ADSPEC_SHARD builds: a line saying whose shard it is (a named ad outside the
    shard was dropped without a word: `adspec build` said "0 ads", doit "Invalid parameter")."""
    parsed = parse_shard(shard)
    if parsed is None or not names:
        return []
    every, groups = list_ads(specs_dir)
    ads = [a for a, _ in every]
    n = parsed[1]
    where = shards_of(ads, n)
    lines = []
    for name in dict.fromkeys(names):
        members = groups.get(name) or ([name] if name in where else [])
        shards = sorted({where[a] for a in members if a in where})
        if shards and parsed[0] not in shards:
            whose = ", ".join(f"{k}/{n}" for k in shards)
            lines.append(f"{name} is built by shard {whose}, not by this runner's {parsed[0]}/{n} (ADSPEC_SHARD): "
                         f"nothing of it is built here")
    return lines


def choose_ads(specs_dir: str | Path, names: list[str] | tuple[str, ...] = (), shard: str | None = None
               ) -> tuple[list[tuple[str, Path]], dict[str, list[str]]]:
    """The ads to build and the spec groups (spec name -> its variants): the ads named (an ad, a
    variant, or a spec with variants: all of them; every ad when none is named), limited to the
    shard `i/n` (ADSPEC_SHARD, see adspec.shard). SpecError for a name that is no ad; ShardError
    for a bad shard."""
    every, groups = list_ads(specs_dir)
    chosen = select_ads(list(names), specs_dir) if names else every
    kept, kept_groups = take(every, groups, parse_shard(shard))
    in_shard = {a for a, _ in kept}
    return [(a, p) for a, p in chosen if a in in_shard], kept_groups
