"""Atomic file writes: the only code in the project that writes a caption file.

A write goes to a temp file in the same folder, is fsynced, gets the old file's mode bits and
replaces the old file with `os.replace`, so a crash leaves either the old or the new bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

TEMP_PREFIX = ".lora-curator-tmp-"


class UnsafePathError(OSError):
    """A write that would land outside the dataset root (e.g. through a symlink)."""


def write_file_atomic(path: Path, data: bytes) -> None:
    """Replace `path`'s content with `data` atomically, keeping its mode bits."""
    folder = path.parent
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = folder / temp_name(path.name)
    # A stale temp file of this name (a crash of a process with our pid) is removed, and the
    # new one created exclusively: whatever sat there (a link, a FIFO) is never opened.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# The longest file name most filesystems take (ext4, btrfs, xfs, APFS: 255 bytes).
NAME_MAX = 255


def temp_name(name: str) -> str:
    """The temp file name a write of `name` uses: the name itself when it fits, else a short
    hash of it, so any name that fits can be written (both start with `TEMP_PREFIX`)."""
    suffix = f".{os.getpid()}"
    full = f"{TEMP_PREFIX}{name}{suffix}"
    if len(os.fsencode(full)) <= NAME_MAX:
        return full
    digest = hashlib.blake2b(os.fsencode(name), digest_size=8).hexdigest()
    return f"{TEMP_PREFIX}{digest}{suffix}"


def fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def resolve_inside(root: Path, path: Path) -> Path:
    """The real path `path` names, refused when it resolves outside `root` (a resolved path).

    A caption symlinked to a file outside the dataset is never written through.
    """
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise UnsafePathError(f"{path} resolves to {real}, outside the dataset; not written")
    return real


def is_temp_file(name: str) -> bool:
    """A temp file a write of ours creates (and an interrupted one leaves behind)."""
    return name.startswith(TEMP_PREFIX)


def remove_temp_file(path: Path) -> bool:
    """Remove a temp file an interrupted write left behind; False if it could not be."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
