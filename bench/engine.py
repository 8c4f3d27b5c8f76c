"""Benchmark of the caption engine (tui/core) on a synthetic dataset, against I/O floors.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/engine.py                    # 10k, then 100k images
    .venv/bin/python bench/engine.py --huge             # 10k, 100k and 1M (not in CI)
    .venv/bin/python bench/engine.py 10000              # one size, median of 5 runs
    .venv/bin/python bench/engine.py 100000 --runs 3    # adds peak-RSS rows (N >= 100k)
    .venv/bin/python bench/engine.py 100000 --rss       # only the peak-RSS rows (any N)
    .venv/bin/python bench/engine.py 100000 --profile   # cProfile of first open, reopen, render
    .venv/bin/python bench/engine.py 1000000 --cache /var/tmp/lc-bench --skip-apply
        # keeps the generated dataset in that folder for the next run (remove it yourself)

The dataset (N tiny PNGs and N caption files of 30 tags drawn, Zipf-skewed, from a synthetic
3,000-tag vocabulary; half the files WD14-style with underscores) is generated from a fixed
seed in a temporary folder, removed at the end. Each row is the median of `--runs` runs:

- floor: read / floor: write -- plain loops reading every caption file's bytes, and writing
  every caption (open "w", write; no temp file, no fsync) into a copy of the folder.
- first open -- `Workspace.open` + `tag_counts` with no state (`.lora-curator` deleted before
  each run): scan, read, parse, count, until the workspace is usable (from 5k captions a
  second process reads from the last captions while the open reads from the first, and the
  open takes its blocks where they meet: `tui/core/preread.py`); the snapshot of the
  originals into SQLite runs on a background thread meanwhile. "+close" also waits for that
  snapshot to commit (the close of a real session does, and any write waits for it first).
- reopen -- the same with the state present (and a working strategy recorded), nothing
  changed on disk: one stat per caption, nothing read, no folder listed (the listing kept
  by the open before is reused while no folder changed), and no file record read nor
  copy of an original checked (the reopen record holds what is needed while no record
  changed: `tui/core/reopen.py`). From 20k captions on the stats are taken by a second
  process while the open does the rest (`tui/core/prestat.py`), so a reopen can beat
  "floor: stat", a plain loop of `os.stat` over every caption file: the target is that
  plus a fixed cost.
- tags --json (process) -- the whole `python -m tui tags DATASET --json` (what
  `lora-curator tags` runs) as a subprocess, against "floor: read (process)", a subprocess
  of a bare Python loop reading every caption's bytes; first open (no state) and reopen
  (state present, nothing changed). Both floors and commands run in this run, same files.
- render all -- `render_all` with a fresh `Renderer` (a new but equal strategy object, as
  after a bucket change): 1/3 of the vocabulary trait, 1/3 context, pattern absorb, trigger.
- apply all -- `apply` writing every file (originals put back with `restore`, untimed);
  left out with `--skip-apply` and at 1M.
- peak RSS -- a fresh subprocess's own peak RSS (VmHWM; `ru_maxrss` off Linux) after
  `Workspace.open` + `tag_counts`, with no state (first open) and with it (reopen).

Targets (issue 13): first open <= 1.5x the read floor; reopen <= the stat floor + 0.25 s
(a fixed cost: the state, the imports aside); at 1M first open <= 15 s and reopen <= 5 s;
`tags --json` first open <= 1.5x and reopen <= 0.7x its process floor; render all <= 0.3 s
per 10k images; peak RSS <= 400 MB per 100k images (scaled linearly above 100k). Dropping
the page cache needs root, so every run is warm-cache; the floors are measured in the same
run on the same files, which is what makes the ratios fair.
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

LOAD_RATIO_TARGET = 1.5
REOPEN_FIXED_SECONDS = 0.25
HUGE = 1_000_000
HUGE_FIRST_SECONDS = 15.0
HUGE_REOPEN_SECONDS = 5.0
TAGS_FIRST_RATIO = 1.5
TAGS_REOPEN_RATIO = 0.7
# A bare Python loop reading every caption's bytes, as its own process (the floor of a
# whole `tags` run): the folder listing included, nothing else.
READ_LOOP = """
import os, sys
stack = [sys.argv[1]]
n = 0
while stack:
    with os.scandir(stack.pop()) as it:
        for e in it:
            if e.is_dir():
                if not e.name.startswith("."):
                    stack.append(e.path)
            elif e.name.endswith(".txt"):
                with open(e.path, "rb") as fh:
                    n += len(fh.read())
print(n)
"""
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


def floor_stat(paths: list[Path]) -> None:
    """Stat every caption file: the least a reopen that reads nothing must do."""
    for path in map(str, paths):
        os.stat(path)


def run_process(cmd: list[str]) -> None:
    """Run a command to its end, its output thrown away (a failure stops the bench)."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def tags_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "tui", "tags", str(root), "--json"]


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


def current_rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MB; 0 where /proc has none."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_rss(root: str) -> None:
    """In a fresh interpreter: open the dataset, count tags, report own peak RSS and the
    RSS with the workspace open (after a full collection) as JSON."""
    import gc

    start = time.perf_counter()
    now = 0.0
    if root:
        ws = open_and_count_usable(Path(root))
        ws.store.wait_for_snapshot()  # type: ignore[union-attr]
        gc.collect()
        now = current_rss_mb()
        ws.close()
    else:
        now = current_rss_mb()
    seconds = time.perf_counter() - start
    print(json.dumps({"rss_mb": peak_rss_mb(), "rss_now_mb": now, "seconds": seconds}))


def measure_rss_both(root: Path | None) -> tuple[float, float]:
    """(peak RSS, RSS with the workspace open) in MB of a fresh subprocess opening `root`
    (None: only the imports)."""
    cmd = [sys.executable, os.path.abspath(__file__), "0", "--child-rss", str(root or "")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return float(got["rss_mb"]), float(got["rss_now_mb"])


def measure_rss(root: Path | None) -> float:
    """Peak RSS (MB) of a fresh subprocess opening `root` (None: only the imports)."""
    return measure_rss_both(root)[0]


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


def backdate(data: Dataset) -> None:
    """Make every caption and folder an hour old: a file changed within seconds of being read
    is read again at the next open (its mtime could still change within the same tick), and
    a folder changed within seconds of being listed is listed again (making the state adds
    an entry to the dataset's folder), so a bench run right after generating the files, or
    right after a first open, would measure that, not a reopen."""
    old = time.time_ns() - 3600 * 10**9
    for path in data.captions:
        os.utime(path, ns=(old, old))
    for folder in {data.root, *(p.parent for p in data.captions)}:
        os.utime(folder, ns=(old, old))


def time_rows(
    data: Dataset, n: int, runs: int, scratch: Path, skip_apply: bool = False
) -> list[Row]:
    """The timed rows: floors, first open, reopen, tags --json, render all, apply all."""
    root = data.root
    strategy = make_strategy(data.vocabulary)
    rows: list[Row] = []

    floor_read(data.captions)  # warm the page cache for everyone
    read = timed(lambda: floor_read(data.captions), runs)
    stat = timed(lambda: floor_stat(data.captions), runs)
    rows.append(Row("floor: read", read))
    rows.append(Row("floor: stat", stat))
    write = 0.0
    if not skip_apply:
        copies = [scratch / p.name for p in data.captions]
        floor_write(copies, data.texts)  # create the files: timed runs overwrite, as apply does
        write = timed(lambda: floor_write(copies, data.texts), runs)
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
    if n >= HUGE:
        rows.append(
            Row(
                "first open (1M target)",
                usable,
                target=f"<= {HUGE_FIRST_SECONDS:g} s",
                met=usable <= HUGE_FIRST_SECONDS,
            )
        )

    with Workspace.open(root) as ws:
        check_workspace(ws, n)
        ws.use_strategy(strategy, "bench")  # the dataset's working strategy from now on
    backdate(data)
    open_and_count(root)  # records what it saw, so the timed reopens read nothing
    reopen = timed(lambda: open_and_count(root), runs)
    rows.append(
        Row(
            "reopen + count",
            reopen,
            floor=stat,
            target=f"<= stat + {REOPEN_FIXED_SECONDS:g} s",
            met=reopen <= stat + REOPEN_FIXED_SECONDS,
        )
    )
    rows.append(Row("reopen vs read floor", reopen, floor=read))
    if n >= HUGE:
        rows.append(
            Row(
                "reopen (1M target)",
                reopen,
                target=f"<= {HUGE_REOPEN_SECONDS:g} s",
                met=reopen <= HUGE_REOPEN_SECONDS,
            )
        )

    # Whole processes: `tags --json` against a bare reading loop, in this run.
    loop = [sys.executable, "-c", READ_LOOP, str(root)]
    floor_process = timed(lambda: run_process(loop), runs)
    rows.append(Row("floor: read (process)", floor_process))
    tags_first = timed(
        lambda: run_process(tags_command(root)), runs, before=lambda: drop_state(root)
    )
    rows.append(
        Row(
            "tags --json, first open",
            tags_first,
            floor=floor_process,
            target=f"<= {TAGS_FIRST_RATIO:g}x",
            met=tags_first <= TAGS_FIRST_RATIO * floor_process,
        )
    )
    with Workspace.open(root) as ws:  # a state, as the app or `apply` leaves it
        ws.use_strategy(strategy, "bench")
    backdate(data)  # the state was made just now: a reopen comes later
    open_and_count(root)
    tags_reopen = timed(lambda: run_process(tags_command(root)), runs)
    rows.append(
        Row(
            "tags --json, reopen",
            tags_reopen,
            floor=floor_process,
            target=f"<= {TAGS_REOPEN_RATIO:g}x",
            met=tags_reopen <= TAGS_REOPEN_RATIO * floor_process,
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

        if not skip_apply:
            applied = timed(apply_all, runs, before=ws.restore)
            rows.append(Row("apply all", applied, floor=write))
            ws.restore()

    return rows


def rss_rows(data: Dataset, n: int) -> list[Row]:
    """Peak RSS of fresh subprocesses (one each): imports only, first open, reopen."""
    root = data.root
    limit = RSS_MB_PER_100K * max(1.0, n / 100_000)
    target = f"<= {limit:.0f} MB"
    imports = measure_rss(None)
    rows = [Row("peak RSS: imports only", imports, unit="MB")]
    drop_state(root)
    first, first_now = measure_rss_both(root)
    rows.append(Row("peak RSS: first open", first, unit="MB", target=target, met=first <= limit))
    with Workspace.open(root) as ws:
        ws.use_strategy(make_strategy(data.vocabulary), "bench")
    backdate(data)
    open_and_count(root)
    reopen, reopen_now = measure_rss_both(root)
    rows.append(Row("peak RSS: reopen", reopen, unit="MB", target=target, met=reopen <= limit))
    rows.append(Row("RSS open: first open", first_now, unit="MB", floor=imports))
    huge = n >= HUGE
    rows.append(
        Row(
            "RSS open: reopen",
            reopen_now,
            unit="MB",
            floor=imports,
            target="<= 800 MB (app)" if huge else "-",
            met=reopen_now <= 800 if huge else None,
        )
    )
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


def make_or_reuse(base: Path, n: int, seed: int, cache: Path | None) -> tuple[Dataset, float]:
    """The dataset of `n` images: generated under `base`, or kept in `cache` across runs
    (generating a million files takes minutes). Its state is dropped first."""
    start = time.perf_counter()
    if cache is None:
        return make_dataset(base, n, seed), time.perf_counter() - start
    folder = cache / f"n{n}-seed{seed}"
    done = folder / "complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        make_dataset(folder, n, seed)
        done.write_text("ok\n")
    rng = random.Random(seed)
    vocabulary = make_vocabulary(rng)
    texts = caption_lines(n, vocabulary, rng)
    root = folder / "dataset"
    captions = [root / FOLDER / f"{i:06d}.txt" for i in range(n)]
    drop_state(root)
    return Dataset(root, captions, texts, vocabulary), time.perf_counter() - start


def bench_one(args: argparse.Namespace, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lora-curator-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        print(f"lora-curator engine bench: N = {n:,} images")
        print(
            f"machine: {platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
            f"{platform.python_implementation()} {platform.python_version()}"
        )
        print(f"engine: git {engine_version()}; temp folder: {base} ({filesystem_of(base)})")
        data, made = make_or_reuse(base, n, args.seed, args.cache)
        print(
            f"dataset: {n:,} PNG + caption pairs in one folder, {TAGS_PER_IMAGE} tags each "
            f"from {VOCABULARY:,} (Zipf s={ZIPF_S:g}, seed {args.seed}); "
            f"{'made' if args.cache is None else 'made or reused'} in {made:.1f} s"
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
            skip_apply = args.skip_apply or n >= HUGE
            rows += time_rows(data, n, args.runs, scratch, skip_apply)
        if args.rss or n >= 100_000:
            print("RSS: one fresh subprocess per row (Workspace.open + tag_counts); peak is")
            print("VmHWM, 'RSS open' is VmRSS with the workspace open after a collection")
            rows += rss_rows(data, n)
        drop_state(data.root)
        print()
        print_table(rows)
        print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, nargs="*", help="numbers of images (default: 10000 100000)")
    parser.add_argument("--huge", action="store_true", help="add 1M images (not in CI)")
    parser.add_argument("--runs", type=int, default=5, help="runs per step; the median is shown")
    parser.add_argument(
        "--rss",
        action="store_true",
        help="only the peak-RSS rows (full runs add them at N >= 100k)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the temp folder")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the generated datasets in this folder, reused by the next run",
    )
    parser.add_argument("--skip-apply", action="store_true", help="leave out apply all")
    parser.add_argument("--profile", action="store_true", help="cProfile load and render instead")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_rss is not None:
        child_rss(args.child_rss)
        return
    sizes = list(args.n) or [10_000, 100_000]
    if args.huge and HUGE not in sizes:
        sizes.append(HUGE)
    if min(sizes) < 1 or args.runs < 1:
        parser.error("N and --runs must be at least 1")
    for n in sizes:
        bench_one(args, n)


if __name__ == "__main__":
    main()
