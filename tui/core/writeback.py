"""Writing captions back and restoring the originals: the only code that writes them.

Functions of an open `Workspace` (its scan, sources, hashes and store): `apply` renders and
writes every caption that changes, `restore` puts the original bytes back. Each file is
checked on disk right before it is written; what is not written is reported, never lost.

Files are written in batches (`writer.write_files_atomic`): the temp files of a batch are
written, made durable together (one `syncfs` where the filesystem honours it, else an fsync
of each, by up to `WRITE_WORKERS` threads so the fsyncs wait together), then renamed over
their files one by one. Each file stays atomic on its own: its name points at its old bytes
until its rename, and at new bytes already on disk after it. The state records every hash
about to be written before the first file is touched (`Store.set_pending`) and what was
written once the writes are over and their folders fsynced (`Store.set_known`): one
transaction each, whatever the number of files. A process killed in the middle leaves each
file with its old or its new bytes, both known to the state, so the next open settles it
and `restore` still puts the originals back.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from tui.core.dataset import (
    CaptionRefused,
    ImageEntry,
    NotRegularFileError,
    Problem,
    read_caption_stat,
)
from tui.core.store import StateError, content_hash
from tui.core.writer import BatchItem, fsync_folder, syncs_in_batches, write_files_atomic

if TYPE_CHECKING:  # the workspace calls in here; this module never needs it at run time
    from tui.core.workspace import Workspace

# Progress callback, as `Workspace.open` takes it: (phase, done, total).
Progress = Callable[[str, int, int], None]

# Threads checking and writing files at once. Measured (bench/apply.py, ext4, 2 cores): where
# each file needs its own fsync, 16 threads write 10k-100k atomic files ~3x faster than one
# (their fsyncs wait together); more gain nothing. A few files are handled by the calling
# thread itself: one thread per `FILES_PER_WORKER` files, at most this many.
WRITE_WORKERS = 16
FILES_PER_WORKER = 16
# Files written in one batch (`write_files_atomic`: one wait for the disk per batch), and the
# threads writing batches where one `syncfs` makes a batch durable: no fsync is left to wait
# for together, and the creates and renames in one folder take its lock in turn, so more
# threads only contend (measured at 10k, ext4: 1 thread writes in ~6.2 s, 2 in ~7.2 s).
WRITE_BATCH = 1024
BATCH_WORKERS = 1
# How often the progress callback hears of the writes (and always at the last one).
PROGRESS_EVERY = 100
# Captions rendered (then their files looked at) by one thread in one go.
CHECK_CHUNK = 64

_T = TypeVar("_T")
_R = TypeVar("_R")


def _in_parallel(
    fn: Callable[[_T], _R],
    items: Iterable[_T],
    workers: int = WRITE_WORKERS,
    files: int | None = None,
) -> Iterator[tuple[int, _R]]:
    """`fn` on every item, by up to `workers` threads: (index, result) in the order they end
    (a few files: in order, by the calling thread). `files` is how many files the items
    stand for (default: one each), which sets how many threads are worth it.

    Items are taken one at a time under a lock: an item generator runs on one thread at a
    time. `fn` must catch what it expects (the `OSError` of one file is that file's result).
    Any other exception, in `fn` or the generator, stops new calls and is raised here once
    the running ones have ended; so is the caller's own (Ctrl-C): calls that are running
    end, none starts."""
    if files is None:
        items = list(items)
        files = len(items)
    count = min(workers, files // FILES_PER_WORKER)
    if count <= 1:  # not worth a thread (and the order stays the plan's)
        for i, item in enumerate(items):
            yield i, fn(item)
        return
    lock = threading.Lock()
    todo = iter(enumerate(items))
    stop = threading.Event()
    results: queue.SimpleQueue[tuple[int, _R] | BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            while not stop.is_set():
                with lock:
                    nxt = next(todo, None)
                if nxt is None:
                    break
                results.put((nxt[0], fn(nxt[1])))
        except BaseException as exc:  # a bug, MemoryError: the caller raises it
            stop.set()
            results.put(exc)
        finally:
            results.put(None)  # this thread is done

    threads = [threading.Thread(target=work, name=f"write-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    running = count
    error: BaseException | None = None
    try:
        while running:
            got = results.get()
            if got is None:
                running -= 1
            elif isinstance(got, BaseException):
                error = error or got
            else:
                yield got
    finally:
        stop.set()  # an early stop (the caller's exception, or `close`): nothing new starts
        for thread in threads:
            thread.join()
    if error is not None:
        raise error


@dataclass
class ApplyReport:
    """The outcome of writing captions."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): not an error
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why): an error

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.skipped) + len(self.failed)} skipped"
        )


def _changed_message(gone: bool) -> str:
    if gone:
        return (
            "deleted on disk since lora-curator read it: not created again "
            "(--adopt takes it as having no tags, --overwrite writes ours)"
        )
    return (
        "changed on disk since lora-curator last wrote it: not overwritten "
        "(--adopt takes its tags as the source, --overwrite writes ours)"
    )


def save_outcome(ws: Workspace, entry: ImageEntry) -> tuple[str, bytes | str]:
    """What a save does with one image's caption, before touching the disk:
    ("write", bytes) | ("unchanged", "") | ("collision" | "empty", "") | ("refuse", why)."""
    return _outcome(ws, entry)[:2]


def _outcome(ws: Workspace, entry: ImageEntry) -> tuple[str, bytes | str, bytes | None]:
    """`save_outcome` and, for a write, the digest of the bytes written."""
    caption = entry.caption
    if caption in ws.scan.collisions:
        return "collision", "", None
    text = ws.caption_for(entry.image)
    if not text:
        return "empty", "", None
    data = text.encode("utf-8")
    digest = content_hash(data)
    if digest == ws.disk_hash.get(caption):
        return "unchanged", "", None
    why = ws.unreadable.get(caption)
    if why is not None:
        if why.startswith("cannot read"):
            return "refuse", "could not be read: not written (its tags would be lost)", None
        return "refuse", why, None
    if caption in ws.changed_on_disk:
        return "refuse", _changed_message(ws.disk_hash.get(caption) is None), None
    return "write", data, digest


def _real_path(root: str, caption: str) -> str:
    """`os.path.realpath` of `root/caption` for a resolved `root`: where no part of the
    caption's path is a link (nearly always), one `lstat` per part of it, not per part of
    the whole path; `realpath` itself settles links and missing parts."""
    path = root
    for part in caption.split("/"):
        if part in ("", ".", ".."):  # not a path the scan gives: realpath normalises it
            break
        path = f"{path}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                break
        except OSError:
            break
    else:
        return path
    return os.path.realpath(f"{root}/{caption}")


def _current(ws: Workspace, caption: str) -> tuple[str, bytes | None, int | None]:
    """Where a caption is written, its bytes there now and their mode bits (None, None:
    absent), checked right before writing; `CaptionRefused` or `OSError` when it must not
    be written."""
    real = _real_path(str(ws.root), caption)
    why = ws.write_refusal(caption, real)
    if why is not None:
        raise CaptionRefused(why)
    try:
        data, st = read_caption_stat(real, follow=True, stat_first=True)
    except FileNotFoundError:
        return real, None, None
    except NotRegularFileError as exc:
        raise CaptionRefused(f"{exc.strerror}: not written") from None
    return real, data, stat.S_IMODE(st.st_mode)


@dataclass(frozen=True)
class _Probe:
    """A caption file as it is on disk right before it is written (or why it cannot be)."""

    target: str | None = None
    digest: bytes | None = None  # of its bytes now (None: absent)
    mode: int | None = None  # its mode bits (None: absent)
    refused: str = ""  # CaptionRefused's message
    error: str = ""  # an OSError reading it


def _probe(ws: Workspace, caption: str) -> _Probe:
    """`_current` and what a write needs of it; safe on any thread (it only reads `ws`)."""
    try:
        target, current, mode = _current(ws, caption)
    except CaptionRefused as exc:
        return _Probe(refused=str(exc))
    except OSError as exc:
        return _Probe(error=exc.strerror or str(exc))
    return _Probe(target, content_hash(current), mode)


def _batches(total: int, workers: int) -> list[range]:
    """The plan's files cut into batches for `write_files_atomic`: as large as `WRITE_BATCH`
    where there are many (one wait for the disk per batch), small enough that each of the
    `workers` threads gets some where there are few."""
    count = max(1, min(workers, total // FILES_PER_WORKER))
    size = max(FILES_PER_WORKER, min(WRITE_BATCH, -(-total // (count * 4))))
    return [range(start, min(start + size, total)) for start in range(0, total, size)]


def _each_file(
    items: list[BatchItem],
    outcome: list[str | None],
    progress: Progress | None,
    phase: str,
    failed: str,
    workers: int,
) -> None:
    """Write (or remove: bytes None) every file of `items` in batches by up to `workers`
    threads, each result in `outcome` at the file's index as soon as it is final ("", or
    `failed` and why not), so an interrupted run knows what was done."""
    total = len(items)

    def write(batch: range) -> int:
        start = batch.start

        def done(i: int, error: OSError | None) -> None:
            outcome[start + i] = "" if error is None else f"{failed}: {error.strerror or error}"

        write_files_atomic(items[batch.start : batch.stop], done)
        return len(batch)

    if progress is not None:
        progress(phase, 0, total)
    if items and syncs_in_batches(os.path.dirname(items[0][0])):
        workers = min(workers, BATCH_WORKERS)
    batches = _batches(total, workers)
    finished = reported = 0
    with closing(_in_parallel(write, batches, workers, files=total)) as results:
        for _, count in results:
            finished += count
            if progress is not None and (
                finished - reported >= PROGRESS_EVERY or finished == total
            ):
                reported = finished
                progress(phase, finished, total)


def apply(
    ws: Workspace,
    overwrite_changed: bool = False,
    adopt_changed: bool = False,
    progress: Progress | None = None,
    workers: int = WRITE_WORKERS,
) -> ApplyReport:
    """Write every caption whose bytes change, atomically; report the rest.

    A caption file changed by another tool since lora-curator last read or wrote it is
    never overwritten silently: it fails, unless `adopt_changed` (its content becomes the
    source first) or `overwrite_changed` (ours wins). Each file is checked again right
    before it is written: one changed (created, deleted) since it was read joins
    `changed_on_disk` exactly as at open. The files are written by up to `workers` threads;
    `progress(phase, done, total)` hears of it ("check": rendering and looking at the
    files, then "write"), on the calling thread."""
    for _ in range(2):  # a second round settles what the check before writing found
        for caption in sorted(ws.changed_on_disk):
            if adopt_changed:
                ws.adopt_disk_version(caption)
            elif overwrite_changed:
                ws.keep_ours(caption)
        report = ApplyReport()
        plan = _plan(ws, report, progress, workers)
        if not ws.changed_on_disk or not (adopt_changed or overwrite_changed):
            break
    _write(ws, plan, report, progress, workers)
    return report


class _Write(NamedTuple):
    """One file a save writes: its caption, real path, new bytes, their digest, and the
    mode bits it keeps (None: a new file)."""

    caption: str
    target: str
    data: bytes
    digest: bytes
    mode: int | None


def _plan(
    ws: Workspace, report: ApplyReport, progress: Progress | None, workers: int
) -> list[_Write]:
    """The writes a save makes, each file checked on disk now; the rest reported."""
    images = ws.images
    total = len(images)
    outcomes: list[tuple[str, bytes | str, bytes | None]] = [("", "", None)] * total
    probes: dict[str, _Probe] = {}

    def rendered() -> Iterator[range]:
        # Taken under the pool's lock: one thread renders at a time (the workspace's caches
        # are not for several), while the others look at the files of the chunks before.
        for start in range(0, total, CHECK_CHUNK):
            chunk = range(start, min(start + CHECK_CHUNK, total))
            for i in chunk:
                outcomes[i] = _outcome(ws, images[i])
            yield chunk

    def look(chunk: range) -> tuple[int, list[tuple[str, _Probe]]]:
        # Every file about to be written is looked at on disk (it is waiting for the disk).
        found = [
            (images[i].caption, _probe(ws, images[i].caption))
            for i in chunk
            if outcomes[i][0] == "write"
        ]
        return len(chunk), found

    done = 0
    if progress is not None:
        progress("check", 0, total)
    with closing(_in_parallel(look, rendered(), workers, files=total)) as looked:
        for _, (count, found) in looked:
            probes.update(found)
            done += count
            if progress is not None:
                progress("check", done, total)
    # The plan is settled in image order, as one file at a time would.
    plan: list[_Write] = []
    seen_captions: set[str] = set()
    targets: dict[str, str] = {}
    plan_index: dict[str, int] = {}  # caption → its place in the plan
    settled: list[tuple[str, bytes | None]] = []
    for entry, (outcome, detail, new_digest) in zip(images, outcomes, strict=True):
        caption = entry.caption
        if outcome == "write":
            assert isinstance(detail, bytes) and new_digest is not None
            probe = probes[caption]
            if probe.refused:
                report.failed.append((caption, probe.refused))
                continue
            if probe.error:
                report.failed.append((caption, f"not written: {probe.error}"))
                continue
            assert probe.target is not None
            digest = probe.digest
            if digest == new_digest:  # another tool wrote just what we would
                ws.disk_hash[caption] = digest
                settled.append((caption, digest))
                report.unchanged.append(caption)
                continue
            if digest != ws.disk_hash.get(caption):
                # Changed, created or deleted since it was read: flagged as at open.
                message = _changed_message(digest is None)
                ws.disk_hash[caption] = digest
                ws.changed_on_disk.add(caption)
                ws.problems.append(Problem(caption, message))
                report.failed.append((caption, message))
                continue
            if probe.mode is not None and not probe.mode & 0o222:
                # Nobody may write it (mode bits): the user asked for it to stay as it is.
                report.failed.append(
                    (caption, "read-only file: not written (make it writable to let it change)")
                )
                continue
            target = probe.target
            first = targets.get(target)
            if first is not None:  # two captions leading to one file: neither written
                report.failed.append((caption, f"the same file as {first}: not written"))
                if plan_index.pop(first, None) is not None:
                    report.failed.append((first, f"the same file as {caption}: not written"))
                continue
            targets[target] = caption
            plan_index[caption] = len(plan)
            plan.append(_Write(caption, target, detail, new_digest, probe.mode))
        elif outcome == "unchanged":
            report.unchanged.append(caption)
        elif outcome == "collision":
            if caption not in seen_captions:  # one line per shared caption file
                report.skipped.append((caption, "stem collision: not written"))
                seen_captions.add(caption)
        elif outcome == "empty":
            report.skipped.append((entry.image, "empty caption: file left as is"))
        else:
            report.failed.append((caption, str(detail)))
    if settled and ws.store is not None and not ws.store.read_only:
        ws.store.set_known(settled)
    if len(plan_index) == len(plan):
        return plan
    kept = set(plan_index.values())
    return [w for i, w in enumerate(plan) if i in kept]


def _write(
    ws: Workspace,
    plan: list[_Write],
    report: ApplyReport,
    progress: Progress | None,
    workers: int,
) -> None:
    store = ws.store
    if store is not None:
        store.set_pending([(w.caption, w.digest) for w in plan])
    outcome: list[str | None] = [None] * len(plan)  # None: not (known to be) attempted
    items = [(w.target, w.data, w.mode) for w in plan]
    try:
        _each_file(items, outcome, progress, "write", "not written", workers)
    except BaseException:
        # Interrupted (Ctrl-C): what is known to be written is recorded; a file whose write
        # was running stays pending (its old or its new bytes: the next open tells).
        with suppress(StateError):
            _record_writes(ws, plan, outcome, report)
        raise
    _record_writes(ws, plan, outcome, report)


def _record_writes(
    ws: Workspace,
    plan: list[_Write],
    outcome: list[str | None],
    report: ApplyReport,
) -> None:
    """Report and record the writes, in plan order: hashes, folders made durable, state."""
    done: list[tuple[str, bytes | None]] = []
    kept: list[tuple[str, bytes | None]] = []
    folders: set[str] = set()
    disk_hash = ws.disk_hash
    changed = ws.changed_on_disk
    written = report.written
    for write, why in zip(plan, outcome, strict=True):
        if why is None:
            continue
        caption = write.caption
        if why:
            # The old bytes are left (the temp file is removed): their hash stays known.
            report.failed.append((caption, why))
            kept.append((caption, disk_hash.get(caption)))
            continue
        folders.add(os.path.dirname(write.target))
        done.append((caption, write.digest))
        disk_hash[caption] = write.digest
        changed.discard(caption)
        written.append(caption)
    for folder in folders:
        fsync_folder(Path(folder))
    if ws.store is not None:
        ws.store.set_known(done + kept)


def restore(
    ws: Workspace, progress: Progress | None = None, workers: int = WRITE_WORKERS
) -> ApplyReport:
    """Put every original caption file back byte for byte (removing those that did not
    exist). The working strategy and edits are kept.

    Only a file whose bytes are what lora-curator last wrote (or still the original) is
    touched: one another tool changed or created is reported and kept, and the rules of
    `apply` hold (never through a link into an image, the state or outside the dataset).
    Files are checked and written by up to `workers` threads; `progress(phase, done,
    total)` hears of it ("check", then "restore"), on the calling thread."""
    report = ApplyReport()
    if ws.store is None:
        return report
    records = ws.store.file_records()
    originals = sorted(ws.store.originals().items())
    current: dict[str, tuple[str, bytes | None, int | None] | str] = {}

    def look(caption: str) -> tuple[str, bytes | None, int | None] | str:
        try:
            return _current(ws, caption)
        except CaptionRefused as exc:
            return str(exc).replace("not written", "not restored")
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}"

    captions = [c for c, _ in originals]
    total = len(captions)
    if progress is not None:
        progress("check", 0, total)
    with closing(_in_parallel(look, captions, workers)) as looked:
        for n, (i, seen) in enumerate(looked, start=1):
            current[captions[i]] = seen
            if progress is not None and (n % PROGRESS_EVERY == 0 or n == total):
                progress("check", n, total)
    # Decided in name order as before; `why` by caption keeps the report in that order.
    why_not: dict[str, str] = {}
    plan: list[tuple[str, str, bytes | None, int | None]] = []
    for caption, original in originals:
        seen = current[caption]
        if isinstance(seen, str):
            why_not[caption] = seen
            continue
        target, now, mode = seen
        if now == original:
            why_not[caption] = ""  # unchanged
            continue
        record = records.get(caption)
        digest = content_hash(now)
        # Bytes another tool put there are never replaced nor removed; a file that is gone
        # is simply put back (nothing on disk is lost by that).
        ours = now is None or (
            record is not None
            and (
                digest == record.known_hash
                or (record.pending_hash is not None and digest == record.pending_hash)
            )
        )
        if not ours:
            why_not[caption] = (
                "changed by another tool since lora-curator last wrote it: "
                "not restored (kept as it is)"
            )
            continue
        plan.append((caption, target, original, mode))

    outcome: list[str | None] = [None] * len(plan)
    items = [(target, original, mode) for _, target, original, mode in plan]
    try:
        _each_file(items, outcome, progress, "restore", "not restored", workers)
    finally:
        # Recorded even when interrupted: a file put back and not recorded would read as
        # changed by another tool at the next open.
        done: list[tuple[str, bytes | None]] = []
        folders: set[str] = set()
        for (caption, target, original, _), why in zip(plan, outcome, strict=True):
            if why is None:
                continue
            why_not[caption] = why or "written"
            if not why:
                folders.add(os.path.dirname(target))
                digest = content_hash(original)
                done.append((caption, digest))
                ws.disk_hash[caption] = digest
                ws.changed_on_disk.discard(caption)
        for caption, _ in originals:
            why = why_not.get(caption)
            if why == "written":
                report.written.append(caption)
            elif why == "":
                report.unchanged.append(caption)
            elif why is not None:
                report.failed.append((caption, why))
        for folder in folders:
            fsync_folder(Path(folder))
        ws.store.set_known(done)
    return report
