"""`ADSPEC_SHARD=i/n`: build one stable shard of the ads (variants expanded), for CI runners.

The split: the ad names sorted, cut into n contiguous blocks of sizes that differ by at most one;
shard i (1-based) is block i. So every ad is in exactly one shard, the shards are balanced, every
runner computes the same split from the same specs, and neighbours stay together: the variants of
one spec sit side by side, and so do the variants sharing a first matrix value
(`trailrunner@9x16-austin`, `trailrunner@9x16-denver` share the storyboard images and chunks of
every beat that does not mention the city), so most shared requests are paid on one runner.
Adding an ad can move a neighbour to the next shard; with the request cache shared (actions/cache,
or ADSPEC_REMOTE_CACHE) that costs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from .errors import ShardError

ENV = "ADSPEC_SHARD"
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4); None or '' -> None (everything). ShardError otherwise."""
    if text is None or not text.strip():
        return None
    m = _SHARD_RE.match(text)
    if not m:
        raise ShardError(f"{ENV}={text!r}: write i/n, e.g. 2/4 (shard 2 of 4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ShardError(f"{ENV}={text!r}: n is the number of shards, at least 1")
    if not 1 <= i <= n:
        raise ShardError(f"{ENV}={text!r}: i must be between 1 and n (shards are numbered 1..n)")
    return i, n


def shard_of(names: Sequence[str], i: int, n: int) -> list[str]:
    """The names in shard i of n (see the module doc), sorted."""
    ordered = sorted(set(names))
    total = len(ordered)
    return ordered[(i - 1) * total // n: i * total // n]


def shards_of(names: Sequence[str], n: int) -> dict[str, int]:
    """Each name's shard (1-based) of n: the one `shard_of` puts it in, found without visiting
    every shard (n may be far larger than the number of names)."""
    ordered = sorted(set(names))
    total = len(ordered)
    return {name: -(-(j + 1) * n // total) for j, name in enumerate(ordered)}


def take(ads: list[tuple[str, Path]], groups: dict[str, list[str]], shard: tuple[int, int] | None
         ) -> tuple[list[tuple[str, Path]], dict[str, list[str]]]:
    """Keep the ads of `shard` (all when None); groups keep only their members in it."""
    if shard is None:
        return ads, groups
    keep = set(shard_of([a for a, _ in ads], *shard))
    kept_groups = {base: [a for a in members if a in keep] for base, members in groups.items()}
    return [(a, p) for a, p in ads if a in keep], {b: m for b, m in kept_groups.items() if m}
