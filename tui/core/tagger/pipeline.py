"""Tagging a dataset: images decoded and prepared by a thread pool into a bounded queue while
the model runs on the previous batch (the GPU waits on nothing, memory stays flat), scores
written batch by batch (resumable: a re-run tags only what is not yet tagged)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.dataset import check_root, scan_dataset
from tui.core.scores import (
    QUANT,
    RATING_CATEGORY,
    SCORE_FLOOR,
    ScoredImage,
    ScoreStore,
    encode_pairs,
    needs_wide,
)
from tui.core.tagger.images import ImageReadError, load_prepared
from tui.core.tagger.model import LabelList, TaggerError, find_model, load_labels
from tui.core.tagger.runtime import DeviceReport, TaggerSession, import_runtime, open_session

DEFAULT_BATCH_SIZE = 16


@dataclass
class BatchResult:
    """What one batch produced: scored images (ready to store) and images that failed."""

    scored: list[ScoredImage] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)


def decode_workers() -> int:
    """Threads decoding images: every core (inference runs in C and releases the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def score_rows(
    tagger: TaggerSession,
    labels: LabelList,
    root: Path,
    images: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
) -> Iterator[BatchResult]:
    """Score `images` (paths relative to `root`) batch by batch. At most about two batches of
    prepared images exist at any time, whatever the number of images."""
    _, np = import_runtime()
    wide = needs_wide(len(labels.labels))
    ratings = np.array(
        [i for i, lb in enumerate(labels.labels) if lb.category == RATING_CATEGORY], dtype=np.int64
    )
    # The next batch is being prepared while this one runs (plus a little slack for the
    # pool): enough that inference never waits, and memory is this many images, never more.
    limit = batch_size + 2 * (workers or decode_workers())
    names = iter(images)
    pending: deque[tuple[str, Future[Any]]] = deque()

    with ThreadPoolExecutor(workers or decode_workers(), thread_name_prefix="decode") as pool:

        def fill() -> None:
            while len(pending) < limit:
                rel = next(names, None)
                if rel is None:
                    return
                pending.append((rel, pool.submit(load_prepared, root / rel, tagger.size, np)))

        try:
            yield from _batches(tagger, labels, pending, fill, batch_size, ratings, wide, np)
        finally:
            for _, future in pending:  # stopped early (Ctrl-C, an error): drop the queue
                future.cancel()


def _batches(
    tagger: TaggerSession,
    labels: LabelList,
    pending: deque[tuple[str, Future[Any]]],
    fill: Callable[[], None],
    batch_size: int,
    ratings: Any,
    wide: bool,
    np: Any,
) -> Iterator[BatchResult]:
    """The consuming half of `score_rows`: batches off the queue, through the model."""
    checked = False
    # One float32 batch, filled in place batch after batch (never a new 38 MB array each).
    buffer = np.empty((batch_size, tagger.size, tagger.size, 3), dtype=np.float32)
    fill()
    arrays: list[Any] = []
    meta: list[tuple[str, int, int]] = []
    result = BatchResult()
    while pending:
        rel, future = pending.popleft()
        fill()
        try:
            array, size, mtime_ns = future.result()
        except ImageReadError as exc:
            result.failed.append((rel, str(exc)))
        else:
            arrays.append(array)
            meta.append((rel, size, mtime_ns))
        if len(arrays) < batch_size and pending:
            continue
        if arrays:
            try:
                for i, array in enumerate(arrays):
                    buffer[i] = array  # uint8 → float32, exact
                out = tagger.run(buffer[: len(arrays)])
            except Exception as exc:
                raise TaggerError(f"{tagger.files.onnx}: the model failed: {exc}") from None
            if not checked:
                checked = True
                if out.ndim != 2 or out.shape[1] != len(labels.labels):
                    raise TaggerError(
                        f"{tagger.files.onnx}: gives {out.shape[-1]} scores per image but "
                        f"{tagger.files.labels} lists {len(labels.labels)} labels: "
                        "the two files are not from the same model"
                    )
            for (rel_i, size_i, mtime_i), row in zip(meta, out, strict=True):
                # Every rating is kept (the top one is chosen later, whatever its score).
                keep = np.union1d(np.flatnonzero(row >= SCORE_FLOOR), ratings)
                quantised = np.clip(np.rint(row[keep] * QUANT), 0, QUANT).astype(np.int64)
                pairs = encode_pairs(keep.tolist(), quantised.tolist(), wide)
                result.scored.append(ScoredImage(rel_i, size_i, mtime_i, pairs))
            arrays, meta = [], []
        if result.scored or result.failed:
            yield result
            result = BatchResult()


@dataclass
class TaggingJob:
    """A prepared `tag` run: the model open, the images to tag chosen."""

    root: Path
    tagger: TaggerSession
    labels: LabelList
    todo: list[str]
    already: int
    batch_size: int

    @property
    def device(self) -> DeviceReport:
        return self.tagger.report

    def run(
        self,
        store: ScoreStore,
        progress: Callable[[int, int], None] | None = None,
        failed: Callable[[str, str], None] | None = None,
        workers: int | None = None,
    ) -> tuple[int, list[tuple[str, str]]]:
        """Tag `todo`, committing each batch; returns (tagged, failures). `progress(done,
        total)` after every batch, `failed(path, why)` for each image skipped."""
        model = store.register_model(self.tagger.files.name, self.labels.sha, self.labels.labels)
        tagged, failures, done = 0, [], 0
        total = len(self.todo)
        for batch in score_rows(
            self.tagger, self.labels, self.root, self.todo, self.batch_size, workers
        ):
            store.write_batch(model, batch.scored)
            tagged += len(batch.scored)
            failures += batch.failed
            done += len(batch.scored) + len(batch.failed)
            if failed is not None:
                for path, why in batch.failed:
                    failed(path, why)
            if progress is not None:
                progress(done, total)
        return tagged, failures


def still_to_tag(
    root: Path, images: Sequence[str], tagged: dict[str, tuple[int, int]]
) -> list[str]:
    """The images not tagged yet, or changed (size or mtime) since they were."""
    todo = []
    for rel in images:
        seen = tagged.get(rel)
        if seen is not None:
            try:
                st = os.stat(root / rel)
            except OSError:
                pass  # unreadable now: try it, and say why
            else:
                if (st.st_size, st.st_mtime_ns) == seen:
                    continue
        todo.append(rel)
    return todo


def open_tagger(
    model: str,
    device: str = "auto",
    download: bool = False,
    intra_op_threads: int | None = None,
) -> tuple[TaggerSession, LabelList]:
    """Find and open a model (`--model`), its labels read; nothing is written."""
    import_runtime()  # the install line before anything else
    files = find_model(model, download=download)
    labels = load_labels(files.labels)
    return open_session(files, device, intra_op_threads), labels


def plan_tagging(
    dataset: str | os.PathLike[str],
    tagger: TaggerSession,
    labels: LabelList,
    store: ScoreStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
    retag: bool = False,
) -> tuple[TaggingJob, list[tuple[str, str]]]:
    """Choose the images to tag (all with `retag`, else those this model has not tagged, or
    that changed since). Also returns the scan's problems about images (path, why)."""
    root = check_root(dataset)
    scan = scan_dataset(root)
    # Only what keeps an image from being tagged (not missing captions and the like).
    problems = [
        (p, why)
        for p, why in scan.problems
        if why.endswith("skipped") or why.startswith("cannot read folder")
    ]
    images = [e.image for e in scan.images]
    done: dict[str, tuple[int, int]] = {}
    if not retag:
        existing = store.model_id(tagger.files.name)
        if existing is not None and store.labels(existing) == list(labels.labels):
            done = store.tagged_images(existing)
    todo = images if retag else still_to_tag(root, images, done)
    job = TaggingJob(root, tagger, labels, todo, len(images) - len(todo), batch_size)
    return job, problems
