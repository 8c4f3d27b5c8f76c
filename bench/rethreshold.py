"""Benchmark: moving a tagger threshold re-derives every image's source tags from the stored
scores (no model run). How long one step takes, against floors measured in the same run.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/rethreshold.py                    # 20k images, 7 steps
    .venv/bin/python bench/rethreshold.py --images 100000 --runs 5

The dataset (N empty image files, no captions) and its `scores.sqlite3` are made from a fixed
seed in a temporary folder, removed at the end: a 10,000-label model (four ratings, 500
characters), per image `--stored` scores above the 0.05 floor drawn so that about a third are
at or above 0.35, as WD14 v3 gives. Rows (medians over `--runs`, time.perf_counter):

- floor, unpack: every image's BLOB unpacked into its label indexes and quantised scores
  (nothing selected), the least any derivation does;
- floor, select_tags: the reference rule (`tui.core.tagger.select_tags`) on every image's
  decoded (tag, category, score) triples, as a straightforward derivation would run it;
- step (fixed): `Workspace.tagger_tags` for a threshold not derived yet (what a `-`/`=` key
  costs before the caption is drawn);
- step (mcut): the same in `mcut` mode (it goes through `select_tags`).
Ratios are against the unpack floor. Target: a fixed step well under the select_tags floor
(measured: 6 µs an image, 4× under it; 0.6 s a step at 100k images on one core).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from tui.core.scores import (
    Label,
    ScoredImage,
    ScoreStore,
    encode_pairs,
    quantise,
    unpack_pairs,
)
from tui.core.strategy import Strategy
from tui.core.tagger import TaggerSettings, select_tags
from tui.core.workspace import Workspace


def make(root: Path, images: int, stored: int, seed: int) -> None:
    rng = random.Random(seed)
    labels = [Label(n, 9, n) for n in ("general", "sensitive", "questionable", "explicit")]
    labels += [Label(f"tag {i}", 4 if i < 500 else 0, f"tag_{i}") for i in range(9996)]
    with ScoreStore.open_for_tagging(root) as store:
        model = store.register_model("bench", "bench", labels)
        rows = []
        for k in range(images):
            name = f"{k:06d}.png"
            (root / name).write_bytes(b"")
            chosen = sorted({0, 1, 2, 3} | set(rng.sample(range(4, len(labels)), stored)))
            # A third at or above 0.35, the rest between the floor and it.
            scores = [
                rng.uniform(0.35, 1.0) if rng.random() < 0.33 else rng.uniform(0.05, 0.35)
                for _ in chosen
            ]
            rows.append(
                ScoredImage(name, 0, 0, encode_pairs(chosen, list(map(quantise, scores)), False))
            )
            if len(rows) == 5000:
                store.write_batch(model, rows)
                rows = []
        store.write_batch(model, rows)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--stored", type=int, default=45, help="scores stored per image")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make(root, args.images, args.stored, args.seed)
        ws = Workspace.open(root, strategy=Strategy(name="bench"), read_only=True)
        with ScoreStore.open_read(root) as store:
            model = store.latest_model()
            blobs = [b for _, b in store.packed_scores(model)]
        images = [e.image for e in ws.images]
        rows: dict[str, list[float]] = {k: [] for k in ("unpack", "select", "fixed", "mcut")}
        for run in range(args.runs):
            rows["unpack"].append(timed(lambda: [unpack_pairs(b, False) for b in blobs]))
            settings = TaggerSettings(general_threshold=0.30 + run / 100)
            rows["select"].append(
                timed(lambda s=settings: [select_tags(ws.image_scores(i), s) for i in images])
            )
            settings = TaggerSettings(general_threshold=0.20 + run / 100)
            rows["fixed"].append(timed(lambda s=settings: ws.tagger_tags(s)))
            settings = TaggerSettings(mode="mcut", character_threshold=0.5 + run / 100)
            rows["mcut"].append(timed(lambda s=settings: ws.tagger_tags(s)))
        ws.close()
    floor = statistics.median(rows["unpack"])
    names = {
        "unpack": "floor, unpack",
        "select": "floor, select_tags",
        "fixed": "step (fixed)",
        "mcut": "step (mcut)",
    }
    print(f"{args.images:,} images, {args.stored} stored scores each, {args.runs} runs")
    print(f"{'row':<20} {'median ms':>10} {'µs/image':>9} {'× unpack':>9}")
    for key, values in rows.items():
        median = statistics.median(values)
        per = median / args.images * 1e6
        print(f"{names[key]:<20} {median * 1000:>10.1f} {per:>9.2f} {median / floor:>9.2f}")


if __name__ == "__main__":
    main()
