"""Benchmark of writing captions back (`apply`, `restore`) against a plain write loop.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/apply.py              # 10k images, median of 3 runs
    .venv/bin/python bench/apply.py 100000       # 100k images
    .venv/bin/python bench/apply.py 10000 --runs 5 --workers 1   # the writes one at a time

The dataset is `bench/engine.py`'s (N tiny PNGs + N caption files of 30 tags, one folder,
fixed seed), with its strategy (1/3 trait, 1/3 context, absorb, a trigger): every caption
changes. Rows, each the median of `--runs` runs:

- floor: write -- a plain loop writing every new caption over its file in a copy of the
  folder (open "w", write, close: no temp file, no fsync, not atomic).
- apply all -- `Workspace.apply` writing every caption (each atomically: temp file, made
  durable -- one `syncfs` per batch where the filesystem honours it, else an fsync each --
  then `os.replace`), with the check of each file before it and the state's bookkeeping.
- restore all -- `Workspace.restore` putting every original back the same way.

Before each timed run the files hold their old bytes and `os.sync()` has put everything on
disk (untimed), for the floor as for apply: the captions of a real dataset have long been on
disk when they are overwritten, and a rewrite of bytes still in the page cache measures
something else. Target: apply all <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import Row, engine_version, filesystem_of, make_dataset, make_strategy, print_table

from tui.core import writeback
from tui.core.workspace import Workspace

TARGET_RATIO = 1.5


def timed(fn: Callable[[], object], runs: int, before: Callable[[], object]) -> float:
    """Median wall time of `fn` over `runs` runs, `before` (untimed) ahead of each."""
    times = []
    for _ in range(runs):
        before()
        os.sync()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_loop(paths: list[Path], texts: list[str]) -> None:
    """The floor: every file overwritten in place, one after the other."""
    for path, text in zip(paths, texts, strict=True):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, nargs="?", default=10_000, help="images (default 10k)")
    parser.add_argument("--runs", type=int, default=3, help="runs per row; the median is shown")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the temp folder")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads writing files (default: writeback's own choice)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.runs < 1:
        parser.error("N and --runs must be at least 1")
    workers = args.workers if args.workers is not None else writeback.WRITE_WORKERS

    with tempfile.TemporaryDirectory(prefix="lora-curator-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        print(
            f"lora-curator apply bench: N = {args.n:,} images, up to {workers} thread(s) "
            f"(batches synced at once: {writeback.BATCH_WORKERS})"
        )
        print(
            f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
            f"{platform.python_implementation()} {platform.python_version()}"
        )
        print(f"engine: git {engine_version()}; temp folder: {base} ({filesystem_of(base)})")
        data = make_dataset(base, args.n, args.seed)
        strategy = make_strategy(data.vocabulary)
        print(f"median of {args.runs} run(s); os.sync() before each run (untimed)")

        with Workspace.open(data.root) as ws:
            ws.use_strategy(strategy, "bench")
            rendered = [ws.caption_for(e.image) for e in ws.images]
            copies_dir = base / "floor-write"
            copies_dir.mkdir()
            copies = [copies_dir / Path(e.caption).name for e in ws.images]
            old = [(data.root / e.caption).read_text(encoding="utf-8") for e in ws.images]

            floor = timed(
                lambda: write_loop(copies, rendered), args.runs, lambda: write_loop(copies, old)
            )

            def apply_all() -> None:
                report = writeback.apply(ws, workers=workers)
                if len(report.written) != args.n:
                    raise SystemExit(f"apply: {report.summary()}; expected {args.n} written")

            def restore_all() -> None:
                report = writeback.restore(ws, workers=workers)
                if len(report.written) != args.n:
                    raise SystemExit(f"restore: {report.summary()}; expected {args.n} restored")

            applied = timed(apply_all, args.runs, before=lambda: writeback.restore(ws))
            restored = timed(restore_all, args.runs, before=lambda: writeback.apply(ws))
            writeback.restore(ws)

    print()
    print_table(
        [
            Row("floor: write", floor, floor=floor),
            Row(
                "apply all",
                applied,
                floor=floor,
                target=f"<= {TARGET_RATIO:g}x",
                met=applied <= TARGET_RATIO * floor,
            ),
            Row("restore all", restored, floor=floor),
        ]
    )


if __name__ == "__main__":
    main()
