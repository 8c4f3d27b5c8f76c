"""Benchmark of `lora-curator tag` against two floors measured in the same run.

    .venv/bin/python bench/tagger.py                 # CPU, 48 images, median of 5 runs
    .venv/bin/python bench/tagger.py --device cuda   # on a machine with onnxruntime-gpu
    .venv/bin/python bench/tagger.py --model DIR     # a real WD14 folder instead of the bench model

Floors: (1) inference only, a bare loop of `session.run` on pre-made batches; (2) decode and
preprocess only, a bare single-threaded loop over the same images. `tag` (scan, decode pool,
inference, packing, SQLite commits; model loading excluded, as in floor 1) should cost at most
1.1 × the sum of the floors, and less than the sum when inference leaves a core free for
decoding (shown with the inference threads limited to 1). Then: peak RSS of a real `tag`
process for a small and a large dataset of small images (flat: the queue is bounded), and the
state size per 1,000 images (measured, and for 100k images written directly to the store).
The bench model (three strided convolutions on 448×448, 2,000 labels, ~5% above the 0.05
floor) is built with `onnx` in a temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.tagger_models import build_bench_model, build_test_model  # noqa: E402
from tui.core.scores import ScoredImage, ScoreStore, encode_pairs, scores_path  # noqa: E402
from tui.core.tagger.images import prepare, read_image  # noqa: E402
from tui.core.tagger.pipeline import open_tagger, plan_tagging  # noqa: E402


def make_images(folder: Path, n: int, size: tuple[int, int], fmt: str, seed: int = 1) -> None:
    """`n` photo-like pictures (flat colour plus noise), JPEG or PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    noise = Image.effect_noise(size, 50).convert("RGB")
    for i in range(n):
        base = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        picture = Image.blend(base, noise.rotate(rng.randrange(360)), 0.35)
        picture.save(folder / f"{i:05d}.{fmt}", quality=90)


def per_image(seconds: list[float], n: int) -> float:
    return statistics.median(seconds) / n * 1000.0


def time_inference(model: str, device: str, threads: int | None, n: int, batch: int, runs: int):
    tagger, _ = open_tagger(model, device, intra_op_threads=threads)
    rng = np.random.default_rng(0)
    batches = [
        rng.uniform(0, 255, (min(batch, n - i), tagger.size, tagger.size, 3)).astype(np.float32)
        for i in range(0, n, batch)
    ]
    tagger.run(batches[0])  # warm-up (allocations, CUDA kernels)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for b in batches:
            tagger.run(b)
        times.append(time.perf_counter() - start)
    return per_image(times, n), tagger.size


def time_decode(folder: Path, size: int, runs: int) -> float:
    files = sorted(folder.glob("*.jpg"))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for path in files:
            prepare(read_image(path)[0], size, np)
        times.append(time.perf_counter() - start)
    return per_image(times, len(files))


def time_tag(folder: Path, model: str, device: str, threads: int | None, batch: int, runs: int):
    tagger, labels = open_tagger(model, device, intra_op_threads=threads)
    times = []
    n = 0
    for _ in range(runs):
        shutil.rmtree(folder / ".lora-curator", ignore_errors=True)
        start = time.perf_counter()
        with ScoreStore.open_for_tagging(folder) as store:
            job, _ = plan_tagging(folder, tagger, labels, store, batch_size=batch)
            n, failures = job.run(store)
        times.append(time.perf_counter() - start)
        assert not failures, failures
    return per_image(times, n), tagger.report.message


# The child reports its own high-water mark: a child's ru_maxrss (wait4, getrusage) starts
# from the parent's RSS at fork, so it would measure this benchmark process, not `tag`.
_RSS_PROBE = """
import sys
from tui.cli import main
code = main(sys.argv[1:])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(int(hwm.split()[1]))
sys.exit(code)
"""


def peak_rss_of_tag(folder: Path, model: Path, batch: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a real `lora-curator tag` process (Linux)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, "tag", str(folder), "--model", str(model), "--retag",
         "--batch-size", str(batch), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    if result.returncode not in (0, 1):
        raise SystemExit(f"tag failed with exit code {result.returncode}: {result.stderr}")
    return int(result.stdout.split()[-1]) / 1024.0, time.perf_counter() - start


def state_size(root: Path) -> int:
    """Bytes of the scores database, its write-ahead log folded in first."""
    with ScoreStore.open_for_tagging(root) as store:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = scores_path(root)
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def state_per_1k(root: Path, model: str, images: int) -> float:
    """MB of scores per 1,000 images: the database after tagging, less the same database
    holding the model's labels only (a fixed cost, once per model)."""
    from tui.core.tagger import find_model, load_labels

    files = find_model(model)
    labels = load_labels(files.labels)
    empty = root.parent / "empty-state"
    empty.mkdir()
    with ScoreStore.open_for_tagging(empty) as store:
        store.register_model(files.name, labels.sha, labels.labels)
    return (state_size(root) - state_size(empty)) / images * 1000 / 1e6


def synthetic_state(folder: Path, images: int, labels: int, stored: int) -> int:
    """Bytes of scores.sqlite3 holding `images` rows of `stored` pairs each."""
    from tui.core.scores import Label

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    with ScoreStore.open_for_tagging(folder) as store:
        model = store.register_model(
            "synthetic", "0" * 64, [Label(f"tag {i}", 0) for i in range(labels)]
        )
        for start in range(0, images, 1000):
            rows = []
            for i in range(start, min(images, start + 1000)):
                idx = sorted(rng.sample(range(labels), stored))
                q = [rng.randrange(3277, 65536) for _ in idx]
                pairs = encode_pairs(idx, q, False)
                rows.append(ScoredImage(f"10_chara/img_{i:06d}.png", 123456, 0, pairs))
            store.write_batch(model, rows)
    return state_size(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="images timed (640×480 JPEG)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="cpu")
    parser.add_argument("--model", help="a real model folder (default: the bench model)")
    parser.add_argument("--rss-images", default="1000,10000", help="small images per RSS run")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-tagger-"))
    try:
        model = args.model or str(build_bench_model(tmp / "bench-model"))
        photos = tmp / "photos"
        make_images(photos, args.images, (640, 480), "jpg")
        print(
            f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
            f"{args.images} images 640×480 JPEG, batch {args.batch_size}, "
            f"median of {args.runs}"
        )
        rows = []
        for label, threads in (("default threads", None), ("1 inference thread", 1)):
            inference, size = time_inference(
                model, args.device, threads, args.images, args.batch_size, args.runs
            )
            decode = time_decode(photos, size, args.runs)
            tag, device = time_tag(photos, model, args.device, threads, args.batch_size, args.runs)
            rows.append((label, inference, decode, tag, device))
        print(f"# {rows[0][4]}")
        print(f"{'':20} {'inference':>10} {'decode+prep':>12} {'sum':>8} {'tag':>8} {'tag/sum':>8}")
        for label, inference, decode, tag, _ in rows:
            floor = inference + decode
            print(f"{label:20} {inference:8.2f}ms {decode:10.2f}ms {floor:6.2f}ms {tag:6.2f}ms "
                  f"{tag / floor:7.2f}×")  # fmt: skip
        print("targets: tag/sum ≤ 1.10 with default threads; < 1.00 with 1 inference thread")
        per_1k = state_per_1k(photos, model, args.images)
        print(f"\nstate: {per_1k:.2f} MB per 1,000 images (this model's scores)")

        cheap = build_test_model(tmp / "cheap-model", size=448)
        print("\npeak RSS of `tag` (small 96×96 PNGs, a cheap 448×448 model, batch 16)")
        print(f"{'images':>8} {'peak RSS':>10} {'seconds':>8}")
        results = []
        for n in (int(x) for x in args.rss_images.split(",")):
            folder = tmp / f"small-{n}"
            make_images(folder, n, (96, 96), "png", seed=n)
            rss, seconds = peak_rss_of_tag(folder, cheap, 16)
            results.append(rss)
            print(f"{n:8d} {rss:8.1f}MB {seconds:8.1f}")
            shutil.rmtree(folder)
        print(f"ratio largest/smallest: {results[-1] / results[0]:.2f}× (target: flat, ~1.0×)")

        size_100k = synthetic_state(tmp / "synthetic", 100_000, 10_861, 100)
        print(f"\nstate for 100,000 images × 100 scores (vit-v3 label count): "
              f"{size_100k / 1e6:.1f} MB (target: well under 100 MB)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
