"""Benchmark of the query language (`find`, the app's `/`), against a floor measured in the
same run.

    .venv/bin/python bench/query.py                  # 100,000 images, median of 7 runs
    .venv/bin/python bench/query.py --images 20000 --runs 5

The dataset is made up when the bench runs: each image gets 15-40 tags drawn from the Danbooru
general tags weighted by their post counts (`--tags-csv`, default
/work/shared/data/danbooru-general-tags.csv, read at run time and never copied; without it, a
Zipf-like vocabulary of made-up tags), spread over five kohya folders. Rows: building the
`TagIndex`, then each typical query, *cold* (nothing cached since the index was built: the
first keystroke that makes this term) and *warm* (its terms cached: the next keystrokes), and
`bucket:` after a tag moved to another bucket (`set_buckets(..., moved=[tag])`). A match is
the whole answer the app needs: evaluation plus the list of matching ids. The floor is one
Python-level pass over a list of 100k ints (`for x in ints: pass`), the least any per-image
work in Python costs; the frame is 16 ms (60 Hz).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

from tui.core import query as query_module
from tui.core.query import TagIndex

DEFAULT_CSV = Path("/work/shared/data/danbooru-general-tags.csv")
FRAME = 0.016
QUERIES = [
    ("a tag", "black hair"),
    ("AND", "black hair, smile"),
    ("OR", "smile | grin | open mouth"),
    ("NOT", "1girl, -solo"),
    ("OR, AND, NOT", "smile | grin, -blurry, long hair"),
    ("wildcard", "* hair"),
    ("wildcard inside", "*shirt*"),
    ("name:glob", "name:img_0012*"),
    ("name:glob (regex)", "name:img_00?2[0-4]*"),
    ("folder:glob", "folder:10_*"),
    ("tags>N", "tags>30"),
    ("bucket:unsorted", "bucket:unsorted"),
]


def vocabulary(path: Path) -> tuple[list[str], list[int]]:
    """Tags (underscores read as spaces, as captions are) and their post counts."""
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as f:
            rows = [(r["name"], int(r["post_count"])) for r in csv.DictReader(f)]
        tags = [name.replace("_", " ") if len(name) > 3 else name for name, _ in rows]
        return tags, [n for _, n in rows]
    tags = [f"tag {i}" for i in range(20000)]
    return tags, [int(1e6 / (i + 1)) for i in range(20000)]


def dataset(n: int, seed: int, tags_csv: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    rng = random.Random(seed)
    vocab, weights = vocabulary(tags_csv)
    cum = list(accumulate(weights))
    folders = ["10_kaede", "5_casual", "3_school", "2_swimsuit", "1_misc"]
    images = sorted(f"{folders[i % 5]}/img_{i:06d}.png" for i in range(n))
    tags = []
    for _ in range(n):
        drawn = rng.choices(vocab, cum_weights=cum, k=rng.randint(15, 40))
        tags.append(tuple(dict.fromkeys(drawn)))
    return images, tags


def median_seconds(fn: Callable[[], object], runs: int, before: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tags-csv", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args()
    images, tags = dataset(args.images, 0, args.tags_csv)
    buckets = {"black hair": "trait", "long hair": "trait", "smile": "context", "1girl": "context"}
    postings = sum(map(len, tags))
    print(
        f"lora-curator query bench: {len(images):,} images, {postings:,} tags on them, "
        f"median of {args.runs} runs"
    )
    print(
        f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}"
    )
    ints = list(range(len(images)))

    def one_pass() -> None:
        for _x in ints:
            pass

    nothing = lambda: None  # noqa: E731
    floor = median_seconds(one_pass, args.runs, nothing)

    def build() -> TagIndex:
        return TagIndex(images, tags, buckets=buckets, trigger="kd")

    build_time = median_seconds(build, max(3, args.runs // 2), nothing)
    index = build()
    print(f"distinct tags: {len(index.keys):,}; floor (one pass over {len(ints):,} ints): "
          f"{floor * 1e3:.2f} ms")  # fmt: skip
    print()
    header = f"{'what':<20} {'query':<34} {'found':>7} {'cold ms':>8} {'× floor':>8} "
    header += f"{'warm ms':>8} {'× floor':>8}  under a frame (cold)"
    print(header)
    print("-" * len(header))
    print(
        f"{'build the index':<20} {'':<34} {'':>7} {build_time * 1e3:8.1f} "
        f"{build_time / floor:8.1f} {'':>8} {'':>8}  (once per open)"
    )

    def cold() -> None:
        """Forget everything the index learnt since it was built (not what it built)."""
        index._cache.clear()
        index._key_bucket = None
        index._bucket_counts = {}
        query_module.parse_query.cache_clear()

    for what, text in QUERIES:
        found = len(index.match_ids(text))
        t_cold = median_seconds(lambda t=text: index.match_ids(t), args.runs, cold)
        index.match_ids(text)
        t_warm = median_seconds(lambda t=text: index.match_ids(t), args.runs, nothing)
        verdict = "yes" if t_cold < FRAME else "NO"
        print(
            f"{what:<20} {text:<34} {found:>7} {t_cold * 1e3:8.2f} {t_cold / floor:8.1f} "
            f"{t_warm * 1e3:8.2f} {t_warm / floor:8.1f}  {verdict}"
        )

    # Sorting a tag in the app changes the buckets: `bucket:` is counted again for its images.
    flip = {"smile": "context"}

    def move() -> None:
        flip["smile"] = "trait" if flip["smile"] == "context" else "context"
        index.set_buckets({**buckets, **flip}, moved=["smile"])

    index.match_ids("bucket:unsorted")
    t_move = median_seconds(lambda: index.match_ids("bucket:context"), args.runs, move)
    verdict = "yes" if t_move < FRAME else "NO"
    print(
        f"{'a tag moved':<20} {'set_buckets, then bucket:context':<34} {'':>7} "
        f"{t_move * 1e3:8.2f} {t_move / floor:8.1f} {'':>8} {'':>8}  {verdict}"
    )
    # What the app's file list does on each keystroke of `/` (FileList.set_filter): match;
    # its rows are the index's images in the same order, so the answer is the list shown.
    # With a concept scope (another subset), the rows are kept by one pass over a set.
    rows = list(images)
    scoped = " (scope)"
    for text in ("black hair, smile", "* hair", "* hair" + scoped):

        def keystroke(t: str = text) -> list[str]:
            if t.endswith(scoped):
                found = frozenset(index.match(t.removesuffix(scoped)))
                return list(filter(found.__contains__, rows))
            return list(index.match(t))

        found = len(keystroke())
        t_key = median_seconds(keystroke, args.runs, cold)
        verdict = "yes" if t_key < FRAME else "NO"
        print(
            f"{'file list keystroke':<20} {text:<34} {found:>7} {t_key * 1e3:8.2f} "
            f"{t_key / floor:8.1f} {'':>8} {'':>8}  {verdict}"
        )
    print()
    print("cold: nothing cached since the index was built (the first keystroke that makes the")
    print("term); warm: the same query again (its terms cached, as while typing the next term).")


if __name__ == "__main__":
    main()
