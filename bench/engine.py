"""Benchmark of the caption engine (tui/core) on a synthetic dataset, against I/O floors.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/engine.py 10000              # 10k images, median of 5 runs
    .venv/bin/python bench/engine.py 100000 --runs 3    # adds peak-RSS rows (N >= 100k)
    .venv/bin/python bench/engine.py 100000 --rss       # only the peak-RSS rows (any N)
    .venv/bin/python bench/engine.py 10000 --profile    # cProfile of load and render instead

The dataset (N tiny PNGs and N caption files of 30 tags drawn, Zipf-skewed, from a synthetic
3,000-tag vocabulary; half the files WD14-style with underscores) is generated from a fixed
seed in a temporary folder, removed at the end. Each row is the median of `--runs` runs:

- floor: read / floor: write -- plain loops reading every caption file's bytes, and writing
  every caption (open "w", write; no temp file, no fsync) into a copy of the folder.
- first open -- `Workspace.open` + `tag_counts` with no state (`.lora-curator` deleted before
  each run): scan, read, parse, count, until the workspace is usable; the snapshot of the
  originals into SQLite runs on a background thread meanwhile. "+close" also waits for that
  snapshot to commit (the close of a real session does, and any write waits for it first).
- reopen -- the same with the state present (and a working strategy recorded).
- render all -- `render_all` with a fresh `Renderer` (a new but equal strategy object, as
  after a bucket change): 1/3 of the vocabulary trait, 1/3 context, pattern absorb, trigger.
- apply all -- `apply` writing every file (originals put back with `restore`, untimed).
- peak RSS -- a fresh subprocess's own peak RSS (VmHWM; `ru_maxrss` off Linux) after
  `Workspace.open` + `tag_counts`, with no state (first open) and with it (reopen).

Targets are set at a reference size and scale linearly above it (never below): load (first
open and reopen) <= 3x the read floor; render all <= 0.3 s per 10k images; peak RSS <= 400 MB
per 100k images. Dropping the page cache needs root, so every run is warm-cache; the floors
are measured in the same process on the same files, which is what makes the ratios fair.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from tui.core.strategy import Strategy
from tui.core.workspace import Workspace

VOCABULARY = 3000
TAGS_PER_IMAGE = 30
ZIPF_S = 1.0
FOLDER = "10_kaede"
TRIGGER = "kaede"
STATE_DIR = ".lora-curator"

LOAD_RATIO_TARGET = 3.0
RENDER_SECONDS_PER_10K = 0.3
RSS_MB_PER_100K = 400.0

_SYLLABLES = ("ka", "mi", "ro", "su", "te", "na", "lo", "vi", "an", "er", "po", "zu", "he", "ya")
_QUALIFIERS = ("sorano", "mirelune", "original")


# ---- the synthetic dataset -------------------------------------------------------------------


def tiny_png(size: int = 8) -> bytes:
    """A valid `size`x`size` grey RGB PNG, built without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_vocabulary(rng: random.Random, size: int = VOCABULARY) -> list[str]:
    """Synthetic tags ("t0042 kamiro"), most frequent first. Every 40th, from the 6th, has a
    qualifier in parentheses ("t0045 suvi (sorano)") like character and series tags: about
    3 captions in 4 hold one, as in a character dataset where the character tag is common."""
    tags = []
    for i in range(size):
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        tag = f"t{i:04d} {word}"
        if i % 40 == 5:
            tag += f" ({rng.choice(_QUALIFIERS)})"
        tags.append(tag)
    return tags


def caption_lines(n: int, vocabulary: list[str], rng: random.Random) -> list[str]:
    """`n` caption texts of TAGS_PER_IMAGE distinct tags, Zipf-distributed over the vocabulary
    (the top tag is on ~99% of images, the tail on a handful). Half are WD14-style (underscores,
    no final newline), half hand-edited style (spaces, final newline)."""
    cum_weights = list(accumulate(1.0 / (rank + 1) ** ZIPF_S for rank in range(len(vocabulary))))
    population = range(len(vocabulary))
    wd14 = [t.replace(" ", "_") for t in vocabulary]
    lines = []
    for _ in range(n):
        picked = dict.fromkeys(rng.choices(population, cum_weights=cum_weights, k=48))
        while len(picked) < TAGS_PER_IMAGE:
            picked.update(dict.fromkeys(rng.choices(population, cum_weights=cum_weights, k=16)))
        chosen = list(picked)[:TAGS_PER_IMAGE]
        if rng.random() < 0.5:
            lines.append(", ".join(wd14[i] for i in chosen))
        else:
            lines.append(", ".join(vocabulary[i] for i in chosen) + "\n")
    return lines


@dataclass
class Dataset:
    """A generated dataset: its root, caption files (in image order) and their texts."""

    root: Path
    captions: list[Path]  # absolute paths of the caption files
    texts: list[str]  # their content
    vocabulary: list[str]


def make_dataset(base: Path, n: int, seed: int) -> Dataset:
    """Write the synthetic dataset under `base/dataset`."""
    rng = random.Random(seed)
    vocabulary = make_vocabulary(rng)
    texts = caption_lines(n, vocabulary, rng)
    root = base / "dataset"
    folder = root / FOLDER
    folder.mkdir(parents=True)
    png = tiny_png()
    captions = []
    for i, text in enumerate(texts):
        stem = folder / f"{i:06d}"
        with open(f"{stem}.png", "wb") as fh:
            fh.write(png)
        caption = stem.with_suffix(".txt")
        with open(caption, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        captions.append(caption)
    return Dataset(root, captions, texts, vocabulary)


def make_strategy(vocabulary: list[str]) -> Strategy:
    """1/3 of the tags trait, 1/3 context (interleaved, so both span all frequencies), the
    rest unsorted; pattern absorb; a trigger."""
    buckets = {}
    for i, tag in enumerate(vocabulary):
        if i % 3 == 0:
            buckets[tag] = "trait"
        elif i % 3 == 1:
            buckets[tag] = "context"
    return Strategy(name="bench", buckets=buckets, pattern="absorb", trigger=TRIGGER)


# ---- floors ------------------------------------------------------------------------------------


def floor_read(paths: list[Path]) -> None:
    """Read every file's bytes: the least any load must do."""
    for path in paths:
        with open(path, "rb") as fh:
            fh.read()


def floor_write(paths: list[Path], texts: list[str]) -> None:
    """Overwrite every file in place (no temp file, no fsync): less than an atomic write."""
    for path, text in zip(paths, texts, strict=True):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


# ---- measuring ---------------------------------------------------------------------------------


def timed(
    fn: Callable[[], object],
    runs: int,
    before: Callable[[], object] | None = None,
    after: Callable[[object], object] | None = None,
) -> float:
    """Median wall time of `fn` over `runs` runs; `before` runs untimed ahead of each, and
    `after` untimed on each result."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if after is not None:
            after(result)
    return statistics.median(times)


def drop_state(root: Path) -> None:
    """Delete the dataset's state, so the next open is a first open."""
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)


def open_and_count(root: Path) -> None:
    with Workspace.open(root) as ws:
        ws.tag_counts()


def open_and_count_usable(root: Path) -> Workspace:
    """Open + count, until the workspace can be used (closed by the caller, untimed): the
    snapshot of the originals may still be committing on its background thread."""
    ws = Workspace.open(root)
    ws.tag_counts()
    return ws


def check_workspace(ws: Workspace, n: int) -> None:
    """The bench measures what it says: every image paired, every tag parsed (both
    spellings of a tag, underscores and spaces, are one tag)."""
    counts = ws.tag_counts()
    if len(ws.images) != n or sum(counts.values()) != n * TAGS_PER_IMAGE:
        raise SystemExit(f"unexpected load: {len(ws.images)} images, {len(counts)} tags")
    if len(counts) > VOCABULARY:
        raise SystemExit(f"{len(counts)} distinct tags: underscore spellings were not merged")


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM where /proc has it, else `ru_maxrss`.

    On Linux `ru_maxrss` survives exec: a child that Python spawns (vfork + exec) reports the
    parent's peak if that was higher, so it cannot measure a small child of a big parent.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024  # bytes / KiB


def child_rss(root: str) -> None:
    """In a fresh interpreter: open the dataset, count tags, report own peak RSS as JSON."""
    start = time.perf_counter()
    if root:
        open_and_count(Path(root))
    seconds = time.perf_counter() - start
    print(json.dumps({"rss_mb": peak_rss_mb(), "seconds": seconds}))


def measure_rss(root: Path | None) -> float:
    """Peak RSS (MB) of a fresh subprocess opening `root` (None: only the imports)."""
    cmd = [sys.executable, os.path.abspath(__file__), "0", "--child-rss", str(root or "")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["rss_mb"])


@dataclass
class Row:
    step: str
    value: float
    unit: str = "s"
    floor: float | None = None
    target: str = "-"
    met: bool | None = None

    def cells(self) -> list[str]:
        value = f"{self.value:.3f} s" if self.unit == "s" else f"{self.value:.0f} MB"
        ratio = f"{self.value / self.floor:.2f}x" if self.floor else "-"
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return [self.step, value, ratio, self.target, met]


def print_table(rows: list[Row]) -> None:
    header = ["step", "median", "vs floor", "target", "met"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for j, line in enumerate(table):
        cells = [
            c.ljust(w) if i in (0, 3) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


def filesystem_of(path: Path) -> str:
    """The filesystem type of `path` from /proc/mounts ("?" elsewhere)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def engine_version() -> str:
    """The commit of the engine measured, and whether tui/core has uncommitted changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tui/core"],
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    if not commit:
        return "?"
    return f"{commit} (tui/core has uncommitted changes)" if dirty else commit


# ---- the bench ---------------------------------------------------------------------------------


def time_rows(data: Dataset, n: int, runs: int, scratch: Path) -> list[Row]:
    """The timed rows: floors, first open, reopen, render all, apply all."""
    root = data.root
    strategy = make_strategy(data.vocabulary)
    rows: list[Row] = []

    floor_read(data.captions)  # warm the page cache for everyone
    read = timed(lambda: floor_read(data.captions), runs)
    copies = [scratch / p.name for p in data.captions]
    floor_write(copies, data.texts)  # create the files: timed runs overwrite, as apply does
    write = timed(lambda: floor_write(copies, data.texts), runs)
    rows.append(Row("floor: read", read))
    rows.append(Row("floor: write", write))

    load_target = f"<= {LOAD_RATIO_TARGET:g}x read"
    usable = timed(
        lambda: open_and_count_usable(root),
        runs,
        before=lambda: drop_state(root),
        after=lambda ws: ws.close(),  # type: ignore[attr-defined]
    )
    rows.append(
        Row(
            "first open + count",
            usable,
            floor=read,
            target=load_target,
            met=usable <= LOAD_RATIO_TARGET * read,
        )
    )
    first = timed(lambda: open_and_count(root), runs, before=lambda: drop_state(root))
    rows.append(Row("first open+count+close", first, floor=read))

    with Workspace.open(root) as ws:
        check_workspace(ws, n)
        ws.use_strategy(strategy, "bench")  # the dataset's working strategy from now on
    reopen = timed(lambda: open_and_count(root), runs)
    rows.append(
        Row(
            "reopen + count",
            reopen,
            floor=read,
            target=load_target,
            met=reopen <= LOAD_RATIO_TARGET * read,
        )
    )

    with Workspace.open(root) as ws:
        check_workspace(ws, n)

        def fresh_renderer() -> None:
            # An equal strategy, but a new object: the workspace builds a new Renderer.
            ws.use_strategy(replace(strategy), "bench")

        render = timed(ws.render_all, runs, before=fresh_renderer)
        render_limit = RENDER_SECONDS_PER_10K * max(1.0, n / 10_000)
        rows.append(
            Row("render all", render, target=f"<= {render_limit:.2f} s", met=render <= render_limit)
        )

        def apply_all() -> None:
            report = ws.apply()
            if len(report.written) != n:
                raise SystemExit(f"apply wrote {report.summary()}; expected {n} written")

        applied = timed(apply_all, runs, before=ws.restore)
        rows.append(Row("apply all", applied, floor=write))
        ws.restore()

    return rows


def rss_rows(data: Dataset, n: int) -> list[Row]:
    """Peak RSS of fresh subprocesses (one each): imports only, first open, reopen."""
    root = data.root
    limit = RSS_MB_PER_100K * max(1.0, n / 100_000)
    target = f"<= {limit:.0f} MB"
    rows = [Row("peak RSS: imports only", measure_rss(None), unit="MB")]
    drop_state(root)
    first = measure_rss(root)
    rows.append(Row("peak RSS: first open", first, unit="MB", target=target, met=first <= limit))
    with Workspace.open(root) as ws:
        ws.use_strategy(make_strategy(data.vocabulary), "bench")
    reopen = measure_rss(root)
    rows.append(Row("peak RSS: reopen", reopen, unit="MB", target=target, met=reopen <= limit))
    return rows


def profile(data: Dataset, top: int) -> None:
    """cProfile of first open, reopen and render all (one run each), by own time."""
    root = data.root
    strategy = make_strategy(data.vocabulary)

    def show(title: str, prof: cProfile.Profile) -> None:
        print(f"\n==== {title}")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(top)

    drop_state(root)
    prof = cProfile.Profile()
    prof.runcall(open_and_count, root)
    show("first open + count", prof)
    with Workspace.open(root) as ws:
        ws.use_strategy(strategy, "bench")
    prof = cProfile.Profile()
    prof.runcall(open_and_count, root)
    show("reopen + count", prof)
    with Workspace.open(root) as ws:
        ws.use_strategy(replace(strategy), "bench")
        prof = cProfile.Profile()
        prof.runcall(ws.render_all)
        show("render all", prof)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, help="number of images (e.g. 10000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per step; the median is shown")
    parser.add_argument(
        "--rss",
        action="store_true",
        help="only the peak-RSS rows (full runs add them at N >= 100k)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the temp folder")
    parser.add_argument("--profile", action="store_true", help="cProfile load and render instead")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_rss is not None:
        child_rss(args.child_rss)
        return
    if args.n < 1 or args.runs < 1:
        parser.error("N and --runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="lora-curator-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        print(f"lora-curator engine bench: N = {args.n:,} images")
        print(
            f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
            f"{platform.python_implementation()} {platform.python_version()}"
        )
        print(f"engine: git {engine_version()}; temp folder: {base} ({filesystem_of(base)})")
        start = time.perf_counter()
        data = make_dataset(base, args.n, args.seed)
        print(
            f"dataset: {args.n:,} PNG + caption pairs in one folder, {TAGS_PER_IMAGE} tags each "
            f"from {VOCABULARY:,} (Zipf s={ZIPF_S:g}, seed {args.seed}); "
            f"made in {time.perf_counter() - start:.1f} s"
        )
        if args.profile:
            profile(data, args.top)
            return
        rows: list[Row] = []
        if not args.rss:
            print(
                f"median of {args.runs} run(s); warm page cache (dropping it needs root); "
                "floors measured in this run on the same files"
            )
            scratch = base / "floor-write"
            scratch.mkdir()
            rows += time_rows(data, args.n, args.runs, scratch)
        if args.rss or args.n >= 100_000:
            print("peak RSS: VmHWM of one fresh subprocess per row (Workspace.open + tag_counts)")
            rows += rss_rows(data, args.n)
        print()
        print_table(rows)


if __name__ == "__main__":
    main()
