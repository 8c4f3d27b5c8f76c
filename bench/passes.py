"""Benchmark of the passes over every image when the app opens a dataset: implied tags (for the
suggestions; edits wait for them) and the query index (built after edits come on), each from
the images' interned tag ids (as the app runs them) and from per-image strings (as before).

    .venv/bin/python bench/passes.py            # 10k images, median of 3 runs
    .venv/bin/python bench/passes.py 100k

Two vocabularies of 3,000 tags, 30 tags per image drawn Zipf-skewed: the engine bench's
synthetic one ("t0042 kamiro": no tag implies another) and a WD14-like one where colours x
garments imply their garment ("white shirt" -> "shirt"), so implied pairs are counted. The
per-image strings are given decoded: the "strings" rows leave out what making them cost. The
floor, in the same run: one array of ids per image (the least a pass over every image does).
"""

from __future__ import annotations

import argparse
import random
from array import array
from itertools import accumulate

from engine import Row, make_vocabulary, print_table
from suggest import median_seconds

from tui.core.implied import implied_counts, implied_counts_ids
from tui.core.postings import PackedTags
from tui.core.query import TagIndex
from tui.core.workspace import pack_ids

COLOURS = ["white", "black", "red", "blue", "light blue", "grey", "pink", "brown", "green"]
THINGS = ["shirt", "skirt", "thighhighs", "bow", "hair", "eyes", "jacket", "dress", "ribbon"]


def wd14_like(rng: random.Random, size: int = 3000) -> list[str]:
    tags = [*THINGS, *(f"{c} {t}" for c in COLOURS for t in THINGS)]
    tags += ["long hair", "very long hair", "hair bow", "pleated skirt", "serafuku"]
    tags += [f"t{i:04d} filler" for i in range(size - len(tags))]
    rng.shuffle(tags)
    return tags


def images_of(vocabulary: list[str], n: int, rng: random.Random) -> list[list[str]]:
    weights = list(accumulate(1.0 / (r + 1) ** 0.9 for r in range(len(vocabulary))))
    return [
        list(dict.fromkeys(rng.choices(vocabulary, cum_weights=weights, k=45)))[:30]
        for _ in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", default="10k", help="images: 10k, 100k or a number")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = int(args.count.lower().replace("k", "000").replace("m", "000000"))
    print(f"lora-curator open passes bench: N = {n:,} images, median of {args.runs} runs")
    rows: list[Row] = []
    for label, vocabulary in (
        ("synthetic", make_vocabulary(random.Random(0))),
        ("wd14-like", wd14_like(random.Random(0))),
    ):
        images = images_of(vocabulary, n, random.Random(1))
        ids = {t: i for i, t in enumerate(vocabulary)}
        packed = [pack_ids([ids[t] for t in tags]) for tags in images]
        paths = [f"{i:07d}.png" for i in range(n)]
        floor = median_seconds(lambda: [array("I", p) for p in packed], args.runs)  # noqa: B023
        found = len(implied_counts_ids(PackedTags(vocabulary, packed)))
        timed = {
            f"implied ({found} tags), strings": lambda: implied_counts(images),  # noqa: B023
            f"implied ({found} tags), ids": lambda: implied_counts_ids(
                PackedTags(vocabulary, packed)  # noqa: B023
            ),
            "query index, strings": lambda: TagIndex(paths, images),  # noqa: B023
            "query index, ids": lambda: TagIndex(
                paths,  # noqa: B023
                PackedTags(vocabulary, packed),  # noqa: B023
            ),
        }
        rows.append(Row(f"{label}: floor, an array of ids per image", floor))
        for name, fn in timed.items():
            rows.append(Row(f"{label}: {name}", median_seconds(fn, args.runs), floor=floor))
    print_table(rows)


if __name__ == "__main__":
    main()
