"""Benchmark of the suggested buckets, against a floor measured in the same run.

    .venv/bin/python bench/suggest.py            # 3,000 tags, median of 9 runs

`suggest_buckets` runs on every bucket key in the app for the tags that changed, and on the
whole dataset after an undo or a strategy switch: this times the whole-dataset call on a
vocabulary made of real-looking family tags (colours × garments, hair, eyes, expressions...)
and made-up tags that only statistics can place. The floor is one dict lookup per tag (the
least any per-tag decision costs in Python). Rows: the first call (it loads the knowledge file
and classifies every tag), warm calls, and `classify_tag` per tag on uncached tags.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

from tui.core.strategy import Strategy
from tui.core.suggest import suggest_buckets
from tui.core.tag_knowledge import TagKnowledge, load_knowledge

COLOURS = ["black", "white", "red", "blue", "green", "pink", "grey", "orange", "purple", "brown"]
GARMENTS = ["shirt", "skirt", "dress", "jacket", "pants", "socks", "gloves", "hat", "bow", "ribbon"]
FAMILY_WORDS = [
    "{c} hair", "{c} eyes", "{c} {g}", "holding {g}", "{c} background", "short hair",
    "long hair", "smile", "open mouth", "sitting", "standing", "looking at viewer", "blurry",
]  # fmt: skip


def vocabulary(n: int, seed: int) -> dict[str, int]:
    """`n` tags with image counts: family tags first, then made-up ones."""
    rng = random.Random(seed)
    tags: list[str] = []
    for pattern in FAMILY_WORDS:
        for c in COLOURS:
            for g in GARMENTS:
                tag = pattern.format(c=c, g=g)
                if tag not in tags:
                    tags.append(tag)
    i = 0
    while len(tags) < n:
        tags.append(f"made-up tag {i:05d}")
        i += 1
    return {tag: rng.randint(1, 1000) for tag in tags[:n]}


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    counts = vocabulary(args.tags, seed=0)
    strategy = Strategy(buckets={t: "trait" for t in list(counts)[:100]})
    print(f"lora-curator suggest bench: {len(counts):,} tags, median of {args.runs} runs")
    print(
        f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}"
    )

    floor = median_seconds(lambda: [counts.get(t) for t in counts], args.runs)
    start = time.perf_counter()
    suggest_buckets(counts, 1000, strategy)
    first = time.perf_counter() - start
    warm = median_seconds(lambda: suggest_buckets(counts, 1000, strategy), args.runs)
    knowledge: TagKnowledge = load_knowledge()
    # Uncached classification: the class method, not the lru-cached module function.
    per_tag = median_seconds(lambda: [knowledge.classify(t) for t in counts], args.runs)
    per_tag /= len(counts)

    rows = [
        ("floor: dict lookup per tag", floor * 1000, "-", "-"),
        ("suggest_buckets, first call", first * 1000, f"{first / floor:.0f}x", "-"),
        ("suggest_buckets, warm", warm * 1000, f"{warm / floor:.0f}x", "<= 33 ms (a frame pair)"),
        ("classify, per tag (µs)", per_tag * 1e6, "-", "<= 20 µs"),
    ]
    print(f"\n{'step':32}  {'median':>9}  {'vs floor':>8}  target")
    for name, value, ratio, target in rows:
        unit = "" if "µs" in name else " ms"
        print(f"{name:32}  {value:7.2f}{unit:3}  {ratio:>8}  {target}")


if __name__ == "__main__":
    main()
