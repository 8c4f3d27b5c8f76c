"""Memory: the engine's RSS after opening 10k/100k/1M images, and a long curating session.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/memory.py                       # curve 10k, 100k; 100k, 2000 keys
    .venv/bin/python bench/memory.py --huge --no-keys      # curve 10k, 100k, 1M (not in CI)
    .venv/bin/python bench/memory.py --images 10000 --keys 500 --every 100 --no-curve

The curve: for each size, a fresh subprocess opens the dataset (`Workspace.open` +
`tag_counts`) with no state (first open) and again with the state (reopen, nothing changed);
printed are its RSS with the workspace open (VmRSS, after a full collection) and its peak
(VmHWM), beside the floor measured in the same run: a fresh subprocess that only imports the
engine. Memory should grow with the number of distinct tags, not tags x images: the
"per image" column is (RSS open - floor) / N.

The session:

After loading, the app freezes the objects it has (`gc.freeze()`) and raises the gen-2
threshold so that a full collection (15-50 ms at 100k images) never lands in the middle of a
keystroke. Cyclic garbage made later is then only reclaimed by a full collection. This bench
measures what that costs: it makes a synthetic dataset of N images (bench/engine.py's: tiny
PNGs and Zipf-skewed 30-tag captions, fixed seed, temporary folder removed at the end) and
runs the app headless (`App.run_test()`, 120x40) in a fresh interpreter per variant:

- `no idle gc`: the app with its idle collection turned off (`idle_gc_seconds = None`):
  what it was before the collection was wired;
- `as shipped`: the app as it is (a full collection once typing pauses for 1.5 s).

Each session presses `--keys` keys through the pilot, cycling `]`, bucket keys (1-4, 0), `j`
and `v` (image/dataset tag view), and pauses 2 s (a user stopping to look) every 100 keys in
both variants, so the only difference is the collection. Printed: the process's current RSS
(VmRSS) and the number of objects the collector tracks, after the dataset is open and every
`--every` keys; each cell is the median over `--runs` sessions. The `shipped / no idle gc`
column is the ratio of the two RSS figures, both measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import (
    HUGE,
    backdate,
    current_rss_mb,
    make_dataset,
    make_or_reuse,
    make_strategy,
    measure_rss_both,
    open_and_count,
)

PAUSE_EVERY = 100  # keys between two pauses of a user (both variants)
PAUSE_SECONDS = 2.0  # longer than the app's IDLE_GC_SECONDS
# One cycle of keys: next image, bucket keys, cursor down, the dataset view and back.
CYCLE = ("right_square_bracket", "1", "2", "j", "3", "v", "4", "v", "0", "1")
VARIANTS = ("no idle gc", "as shipped")


async def session(root: Path, keys: int, every: int, idle_gc: bool) -> list[dict[str, float]]:
    """One headless session; the RSS and tracked objects at each checkpoint."""
    from tui.app.app import CuratorApp

    class NoIdleGcApp(CuratorApp):
        idle_gc_seconds = None

    app = CuratorApp(root) if idle_gc else NoIdleGcApp(root)
    points: list[dict[str, float]] = []

    def checkpoint(pressed: int) -> None:
        points.append(
            {"keys": pressed, "rss_mb": current_rss_mb(), "objects": len(gc.get_objects())}
        )

    async with app.run_test(size=(120, 40)) as pilot:
        while app.ws is None:
            await asyncio.sleep(0.05)
        await pilot.pause()
        checkpoint(0)
        for pressed in range(1, keys + 1):
            await pilot.press(CYCLE[pressed % len(CYCLE)])
            if pressed % PAUSE_EVERY == 0:
                await asyncio.sleep(PAUSE_SECONDS)
            if pressed % every == 0 or pressed == keys:
                checkpoint(pressed)
    return points


def child(args: argparse.Namespace) -> None:
    points = asyncio.run(session(Path(args.child), args.keys, args.every, args.idle_gc))
    print(json.dumps(points))


def run_variant(root: Path, args: argparse.Namespace, idle_gc: bool) -> list[dict[str, float]]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(root),
        "--keys",
        str(args.keys),
        "--every",
        str(args.every),
    ]
    if idle_gc:
        cmd.append("--idle-gc")
    # A fresh state per session: every session starts from the same first open.
    shutil.rmtree(root / ".lora-curator", ignore_errors=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def curve(args: argparse.Namespace) -> None:
    """RSS after first open and reopen at each size, beside the imports-only floor."""
    sizes = [10_000, 100_000] + ([HUGE] if args.huge else [])
    print("lora-curator memory curve: RSS of a fresh process with the workspace open")
    header = ["images", "floor MB", "first open MB", "reopen MB", "peak reopen MB", "per image"]
    table = []
    with tempfile.TemporaryDirectory(prefix="lora-curator-memory-", dir=args.dir) as tmp:
        for n in sizes:
            data, _ = make_or_reuse(Path(tmp) / str(n), n, args.seed, args.cache)
            floor, _ = measure_rss_both(None)
            _, first = measure_rss_both(data.root)
            from tui.core.workspace import Workspace

            with Workspace.open(data.root) as ws:
                ws.use_strategy(make_strategy(data.vocabulary), "bench")
            backdate(data)
            open_and_count(data.root)  # records what it saw: the reopen reads nothing
            peak, reopen = measure_rss_both(data.root)
            shutil.rmtree(data.root / ".lora-curator", ignore_errors=True)
            per = (reopen - floor) * 1024 * 1024 / n
            table.append(
                [
                    f"{n:,}",
                    f"{floor:.0f}",
                    f"{first:.0f}",
                    f"{reopen:.0f}",
                    f"{peak:.0f}",
                    f"{per:,.0f} B",
                ]
            )
            if args.cache is None:
                shutil.rmtree(Path(tmp) / str(n), ignore_errors=True)
    widths = [max(len(r[c]) for r in [header, *table]) for c in range(len(header))]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000, help="number of images (N)")
    parser.add_argument("--keys", type=int, default=2000, help="keys pressed per session")
    parser.add_argument("--every", type=int, default=500, help="keys between two rows")
    parser.add_argument("--runs", type=int, default=1, help="sessions per variant; median")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.add_argument("--dir", default=None, help="where to make the temp folder")
    parser.add_argument("--huge", action="store_true", help="add 1M images to the curve")
    parser.add_argument("--no-curve", action="store_true", help="only the session")
    parser.add_argument("--no-keys", action="store_true", help="only the curve")
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep generated datasets here (engine.py's)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--idle-gc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if not args.no_curve:
        curve(args)
    if args.no_keys:
        return

    base = Path(tempfile.mkdtemp(prefix="lora-curator-memory-bench-", dir=args.dir))
    try:
        data = make_dataset(base, args.images, args.seed)
        print(f"lora-curator memory bench: N = {args.images:,} images, {args.keys} keys")
        print(
            f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
            f"CPython {platform.python_version()}"
        )
        print(
            f"keys cycle {' '.join(CYCLE)}; a {PAUSE_SECONDS:g} s pause every {PAUSE_EVERY} "
            f"keys; median of {args.runs} session(s) per variant"
        )
        print()
        results = {v: [] for v in VARIANTS}
        for _ in range(args.runs):
            for variant in VARIANTS:
                results[variant].append(run_variant(data.root, args, variant == "as shipped"))
        header = [
            "after keys",
            "RSS no idle gc MB",
            "RSS shipped MB",
            "shipped / no idle gc",
            "objects no idle gc",
            "objects shipped",
        ]
        rows = []
        for i, point in enumerate(results["no idle gc"][0]):

            def median(variant: str, key: str, i: int = i) -> float:
                return statistics.median(run[i][key] for run in results[variant])

            off, shipped = median("no idle gc", "rss_mb"), median("as shipped", "rss_mb")
            rows.append(
                [
                    "open" if point["keys"] == 0 else str(int(point["keys"])),
                    f"{off:.1f}",
                    f"{shipped:.1f}",
                    f"{shipped / off:.3f}" if off else "-",
                    f"{median('no idle gc', 'objects'):,.0f}",
                    f"{median('as shipped', 'objects'):,.0f}",
                ]
            )
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        first, last = rows[0], rows[-1]
        print()
        print(
            f"growth from open to the last key: no idle gc "
            f"{float(last[1]) - float(first[1]):+.1f} MB, as shipped "
            f"{float(last[2]) - float(first[2]):+.1f} MB"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
