"""The atomic writer: the only code that writes a caption file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tui.core import writer
from tui.core.dataset import scan_dataset
from tui.core.writer import (
    TEMP_PREFIX,
    UnsafePathError,
    remove_temp_file,
    resolve_inside,
    write_file_atomic,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


def test_creates_a_new_file(tmp_path):
    path = tmp_path / "a.txt"
    write_file_atomic(path, b"kaede, smile\n")
    assert path.read_bytes() == b"kaede, smile\n"
    assert leftovers(tmp_path) == []


def test_replaces_content_and_keeps_mode_bits(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o640)
    write_file_atomic(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_failed_replace_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_bytes(b"old, tags\r\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_file_atomic(path, b"new\n")
    assert path.read_bytes() == b"old, tags\r\n"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_bytes(b"old\n")

    def boom(fd, data):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "write", boom)
    with pytest.raises(OSError):
        write_file_atomic(path, b"new\n")
    assert path.read_bytes() == b"old\n"
    assert leftovers(tmp_path) == []


def test_resolve_inside_accepts_paths_in_the_root(tmp_path):
    root = tmp_path.resolve()
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("x")
    os.symlink("sub/b.txt", root / "link.txt")  # a link that stays inside is fine
    assert resolve_inside(root, root / "sub" / "a.txt") == root / "sub" / "a.txt"
    assert resolve_inside(root, root / "link.txt") == root / "sub" / "b.txt"


def test_resolve_inside_refuses_links_and_dotdot_leaving_the_root(tmp_path):
    root = (tmp_path / "ds").resolve()
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    os.symlink(outside, root / "a.txt")
    os.symlink(tmp_path, root / "up")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, root / "a.txt")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, root / "up" / "b.txt")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, root / ".." / "c.txt")


def test_the_scan_finds_only_temp_files_and_removing_one_keeps_the_rest(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}a.txt.123").write_bytes(b"half")
    (tmp_path / "a.png").write_bytes(b"img")
    (tmp_path / "a.txt").write_bytes(b"keep")
    (tmp_path / ".hidden.txt").write_bytes(b"keep")
    found = scan_dataset(tmp_path).temp_files
    assert found == [f"{TEMP_PREFIX}a.txt.123"]
    assert remove_temp_file(tmp_path / found[0])
    assert not remove_temp_file(tmp_path / found[0])  # already gone: says so, no crash
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.txt", "a.png", "a.txt"]


# ---- a batch of files (apply, restore) ----------------------------------------------------------


def write_batch(items: list[tuple[Path, bytes | None, int | None]]) -> dict[int, OSError | None]:
    heard: dict[int, OSError | None] = {}

    def done(i: int, error: OSError | None) -> None:
        assert i not in heard  # each file is heard of once
        heard[i] = error

    writer.write_files_atomic([(str(p), d, m) for p, d, m in items], done)
    return heard


def test_a_batch_writes_keeps_modes_creates_and_removes(tmp_path):
    (tmp_path / "sub").mkdir()
    old = {name: tmp_path / name for name in ("a.txt", "b.txt", "sub/c.txt", "gone.txt")}
    for path in old.values():
        path.write_bytes(b"old\n")
    os.chmod(old["b.txt"], 0o600)
    items = [
        (old["a.txt"], b"new a\n", 0o644),
        (old["b.txt"], b"new b\n", 0o600),
        (old["sub/c.txt"], b"new c\n", 0o644),
        (tmp_path / "fresh.txt", b"fresh\n", None),
        (old["gone.txt"], None, None),
    ]
    assert write_batch(items) == dict.fromkeys(range(5))
    assert (tmp_path / "a.txt").read_bytes() == b"new a\n"
    assert (tmp_path / "b.txt").read_bytes() == b"new b\n"
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    assert (tmp_path / "sub/c.txt").read_bytes() == b"new c\n"
    assert (tmp_path / "fresh.txt").read_bytes() == b"fresh\n"
    assert not (tmp_path / "gone.txt").exists()
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sub") == []


@pytest.fixture(params=["syncfs", "fsync each"])
def durability(request, monkeypatch) -> str:
    """Both ways a batch is made durable: one syncfs (where the filesystem honours it) and
    an fsync of each file (anywhere else)."""
    if request.param == "fsync each":
        monkeypatch.setattr(writer, "_syncfs_api", lambda: None)
    return request.param


def test_no_file_is_renamed_before_every_temp_file_is_on_disk(tmp_path, monkeypatch, durability):
    paths = [tmp_path / f"{i}.txt" for i in range(5)]
    for path in paths:
        path.write_bytes(b"old\n")
    calls: list[str] = []
    real_fsync, real_syncfs, real_replace = os.fsync, writer._syncfs, os.replace
    monkeypatch.setattr(writer.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(writer, "_syncfs", lambda fd: (calls.append("syncfs"), real_syncfs(fd))[1])

    def replace(src, dst):
        calls.append("replace")
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", replace)
    assert write_batch([(p, b"new\n", 0o644) for p in paths]) == dict.fromkeys(range(5))
    monkeypatch.undo()
    batched = durability == "syncfs" and writer.syncs_in_batches(str(tmp_path))
    durable = ["syncfs"] if batched else ["fsync"] * 5
    assert calls == durable + ["replace"] * 5
    assert all(p.read_bytes() == b"new\n" for p in paths)


def test_a_failing_file_keeps_its_old_bytes_and_the_rest_are_written(
    tmp_path, monkeypatch, durability
):
    paths = [tmp_path / f"{i}.txt" for i in range(4)]
    for path in paths:
        path.write_bytes(b"old\n")
    real_write = os.write
    opened: dict[int, str] = {}
    real_open = os.open

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = os.path.basename(path)
        return fd

    def write(fd, data):
        if opened.get(fd, "").startswith(f"{TEMP_PREFIX}1.txt"):
            real_write(fd, bytes(data)[:2])  # part of it lands, then the disk is full
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writer.os, "open", tracking_open)
    monkeypatch.setattr(writer.os, "write", write)
    heard = write_batch([(p, b"new\n", 0o644) for p in paths])
    monkeypatch.undo()
    assert {i: e and e.strerror for i, e in heard.items()} == {
        0: None,
        1: "No space left on device",
        2: None,
        3: None,
    }
    assert [p.read_bytes() for p in paths] == [b"new\n", b"old\n", b"new\n", b"new\n"]
    assert leftovers(tmp_path) == []


def test_a_batch_whose_sync_fails_renames_nothing(tmp_path, monkeypatch):
    if not writer.syncs_in_batches(str(tmp_path)):
        pytest.skip("this filesystem is made durable file by file")
    paths = [tmp_path / f"{i}.txt" for i in range(3)]
    for path in paths:
        path.write_bytes(b"old\n")
    monkeypatch.setattr(writer, "_syncfs", lambda fd: OSError(5, "Input/output error"))
    heard = write_batch([(p, b"new\n", 0o644) for p in paths])
    assert {i: e and e.strerror for i, e in heard.items()} == dict.fromkeys(
        range(3), "Input/output error"
    )
    assert [p.read_bytes() for p in paths] == [b"old\n"] * 3  # which one failed is not known
    assert leftovers(tmp_path) == []


def test_an_interrupted_batch_leaves_each_file_old_or_new_and_no_temp(
    tmp_path, monkeypatch, durability
):
    paths = [tmp_path / f"{i}.txt" for i in range(4)]
    for path in paths:
        path.write_bytes(b"old\n")
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "2.txt":
            raise KeyboardInterrupt  # Ctrl-C between two renames
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", replace)
    heard: dict[int, OSError | None] = {}
    with pytest.raises(KeyboardInterrupt):
        writer.write_files_atomic(
            [(str(p), b"new\n", 0o644) for p in paths], lambda i, e: heard.update({i: e})
        )
    monkeypatch.undo()
    assert heard == {0: None, 1: None}  # what was not heard of has its old bytes
    assert [p.read_bytes() for p in paths] == [b"new\n", b"new\n", b"old\n", b"old\n"]
    assert leftovers(tmp_path) == []


def test_a_stale_temp_file_or_a_link_in_its_place_is_replaced_never_followed(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"old\n")
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    os.symlink(outside, tmp_path / writer.temp_name("a.txt"))  # what a crash could leave
    assert write_batch([(path, b"new\n", 0o644)]) == {0: None}
    assert path.read_bytes() == b"new\n"
    assert outside.read_bytes() == b"precious\n"
    assert leftovers(tmp_path) == []
