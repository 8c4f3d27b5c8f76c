"""The atomic writer: the only code that writes a caption file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

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
