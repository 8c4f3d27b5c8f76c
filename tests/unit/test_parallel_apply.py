"""`apply` and `restore` write many files in batches (by several threads where each file needs
its own fsync), and stay exact: every file right, the state's record of what is on disk
right, a failing file named while the rest are written, an interrupted run finished by the
next one, the originals back byte for byte.

(Killed `apply` processes: tests/cli/test_kill_apply.py; the disk full in the middle:
tests/hostile/test_files.py; failures of a few files: tests/unit/test_nothing_lost.py.)
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from tui.core import writeback, writer
from tui.core.store import content_hash
from tui.core.strategy import Strategy
from tui.core.workspace import Workspace
from tui.core.writer import TEMP_PREFIX

N = 400  # enough files for every writer thread to get some
KD = Strategy(name="kd", trigger="kd", pattern="keep-all")


def names() -> list[str]:
    return [f"img{i:03d}" for i in range(N)]


@pytest.fixture
def root(make_dataset) -> Path:
    files: dict[str, str | None] = {}
    for i, name in enumerate(names()):
        files[f"{name}.png"] = None
        files[f"{name}.txt"] = f"smile, tag {i}\n"
    return make_dataset(files)


def on_disk(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.txt"))}


def old_bytes(name: str) -> bytes:
    return f"smile, tag {int(name[3:])}\n".encode()


def new_bytes(name: str) -> bytes:
    return b"kd, " + old_bytes(name)


def temp_files(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]


def assert_state_agrees(root: Path) -> None:
    """The next open finds nothing changed by another tool and no write left pending."""
    disk = on_disk(root)
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()
        assert ws.store is not None
        for caption, record in ws.store.file_records().items():
            assert record.pending_hash is None, caption
            assert record.known_hash == content_hash(disk[caption]), caption


@pytest.mark.parametrize("durability", ["syncfs", "fsync each"])
def test_every_file_written_and_recorded(durability, root, monkeypatch):
    if durability == "fsync each":  # where each file needs its own fsync: several threads
        monkeypatch.setattr(writer, "_syncfs_api", lambda: None)
    threads: set[str] = set()
    real = writeback.write_files_atomic

    def tracking(items, done) -> None:
        threads.add(threading.current_thread().name)
        real(items, done)

    monkeypatch.setattr(writeback, "write_files_atomic", tracking)
    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        report = writeback.apply(ws)
        assert report.written == [f"{n}.txt" for n in names()]  # in image order
        assert report.failed == [] and report.unchanged == []
    monkeypatch.undo()
    if durability == "fsync each":
        assert len(threads) > 1
    assert on_disk(root) == {f"{n}.txt": new_bytes(n) for n in names()}
    assert temp_files(root) == []
    assert_state_agrees(root)
    with Workspace.open(root) as ws:  # nothing left to write
        report = writeback.apply(ws)
        assert report.written == [] and len(report.unchanged) == N
        report = writeback.restore(ws)
        assert len(report.written) == N and report.failed == []
    assert on_disk(root) == {f"{n}.txt": old_bytes(n) for n in names()}
    assert_state_agrees(root)


def test_one_failing_file_is_named_and_every_other_file_written(root, monkeypatch):
    real_replace = writer.os.replace

    def replace(src, dst, **kwargs):
        if os.path.basename(dst) == "img123.txt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(writer.os, "replace", replace)
    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        report = writeback.apply(ws)
    monkeypatch.undo()
    assert report.failed == [("img123.txt", "not written: No space left on device")]
    assert len(report.written) == N - 1
    expected = {f"{n}.txt": new_bytes(n) for n in names()}
    expected["img123.txt"] = old_bytes("img123")
    assert on_disk(root) == expected
    assert temp_files(root) == []
    assert_state_agrees(root)
    with Workspace.open(root) as ws:  # the disk has room again: the next apply finishes
        report = writeback.apply(ws)
        assert report.written == ["img123.txt"]
        writeback.restore(ws)
    assert on_disk(root) == {f"{n}.txt": old_bytes(n) for n in names()}


def test_disk_full_part_way_leaves_each_file_whole_and_the_next_apply_finishes(root, monkeypatch):
    real_write = writer.os.write
    lock = threading.Lock()
    budget = {"writes": N // 3}  # the disk fills after this many files, whichever they are

    def full_disk_write(fd, data):
        with lock:
            budget["writes"] -= 1
            full = budget["writes"] < 0
        if full:
            real_write(fd, bytes(data)[:2])  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        monkeypatch.setattr(writer.os, "write", full_disk_write)  # os.write: caption files only
        report = writeback.apply(ws)
        monkeypatch.undo()
    disk = on_disk(root)
    written = {c for c, data in disk.items() if data == new_bytes(c[:-4])}
    assert set(report.written) == written and len(written) == N // 3
    assert {c for c, _ in report.failed} == set(disk) - written
    assert all(why == "not written: No space left on device" for _, why in report.failed)
    for caption in set(disk) - written:
        assert disk[caption] == old_bytes(caption[:-4])  # the old bytes, whole
    assert temp_files(root) == []
    assert_state_agrees(root)
    with Workspace.open(root) as ws:
        report = writeback.apply(ws)
        assert set(report.written) == set(disk) - written and report.failed == []
        report = writeback.restore(ws)
        assert len(report.written) == N
    assert on_disk(root) == {f"{n}.txt": old_bytes(n) for n in names()}


def test_interrupted_apply_is_recorded_and_finished_by_the_next(root):
    seen: list[tuple[str, int, int]] = []

    def interrupt(phase: str, done: int, total: int) -> None:
        seen.append((phase, done, total))
        if phase == "write" and done >= N // 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the writes

    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        with pytest.raises(KeyboardInterrupt):
            writeback.apply(ws, progress=interrupt)
    assert ("check", N, N) in seen
    disk = on_disk(root)
    for caption, data in disk.items():
        assert data in (old_bytes(caption[:-4]), new_bytes(caption[:-4]))
    assert sum(data == new_bytes(c[:-4]) for c, data in disk.items()) >= N // 2
    assert temp_files(root) == []
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()  # what was written is ours, recorded or pending
        report = writeback.apply(ws)
        assert report.failed == []
        assert len(report.written) + len(report.unchanged) == N
    assert on_disk(root) == {f"{n}.txt": new_bytes(n) for n in names()}
    assert_state_agrees(root)
    with Workspace.open(root) as ws:
        writeback.restore(ws)
    assert on_disk(root) == {f"{n}.txt": old_bytes(n) for n in names()}


def test_a_bug_in_one_write_stops_the_rest_and_is_raised(root, monkeypatch):
    real = writer.os.replace

    def buggy(src, dst, **kwargs):
        if os.path.basename(dst) == "img050.txt":
            raise RuntimeError("a bug")
        return real(src, dst, **kwargs)

    monkeypatch.setattr(writer.os, "replace", buggy)
    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        with pytest.raises(RuntimeError, match="a bug"):
            writeback.apply(ws)
    monkeypatch.undo()
    assert on_disk(root)["img050.txt"] == old_bytes("img050")
    for caption, data in on_disk(root).items():  # each file whole, old or new
        assert data in (old_bytes(caption[:-4]), new_bytes(caption[:-4]))
    assert temp_files(root) == []  # the temp files of the batch it stopped are gone
    with Workspace.open(root) as ws:  # the files written before it stopped are ours
        assert ws.changed_on_disk == set()
        writeback.apply(ws)
    assert on_disk(root) == {f"{n}.txt": new_bytes(n) for n in names()}


def test_progress_counts_every_phase_to_its_end(root):
    applied: list[tuple[str, int, int]] = []
    restored: list[tuple[str, int, int]] = []
    with Workspace.open(root) as ws:
        ws.use_strategy(KD)
        writeback.apply(ws, progress=lambda *a: applied.append(a))
        writeback.restore(ws, progress=lambda *a: restored.append(a))
    phases = [p for p, _, _ in applied]
    assert sorted(set(phases), key=phases.index) == ["check", "write"]
    assert applied[-1] == ("write", N, N)
    phases = [p for p, _, _ in restored]
    assert sorted(set(phases), key=phases.index) == ["check", "restore"]
    assert restored[-1] == ("restore", N, N)
    for seen in (applied, restored):
        for phase in ("check", "write", "restore"):
            counts = [d for p, d, _ in seen if p == phase]
            assert counts == sorted(counts)  # never backwards
