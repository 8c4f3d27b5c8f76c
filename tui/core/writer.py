"""Atomic file writes: the only code in the project that writes a caption file.

A write goes to a temp file in the same folder, gets the old file's mode bits, is made durable
(its own fsync, or for a batch of files one `syncfs` of their filesystem) and only then
replaces the old file with `os.replace`, so a crash leaves either the old or the new bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

TEMP_PREFIX = ".lora-curator-tmp-"


class UnsafePathError(OSError):
    """A write that would land outside the dataset root (e.g. through a symlink)."""


def write_file_atomic(path: Path, data: bytes) -> None:
    """Replace `path`'s content with `data` atomically, keeping its mode bits."""
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(os.path.dirname(path), temp_name(os.path.basename(path)))
    fd = _create_temp(tmp, data, mode, _umask())
    try:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(tmp: str, data: bytes, mode: int | None, umask: int) -> int:
    """A new temp file `tmp` holding `data` (mode bits `mode`, else 0o644 less the umask,
    `umask`), its fd open; on any error it is removed and the error raised."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    create = 0o644 if mode is None else mode
    try:
        fd = os.open(tmp, flags, create)
    except FileExistsError:
        # A stale temp file of this name (a crash of a process with our pid) is removed, and
        # the new one created exclusively: whatever sat there (a link, a FIFO) is never opened.
        os.unlink(tmp)
        fd = os.open(tmp, flags, create)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if mode is not None and mode & umask:  # the umask took bits the file must keep
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return fd


def _umask() -> int:
    """The process's umask as Linux reports it (no call that changes it, which would race
    with other threads creating files); every bit where it cannot be read."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o7777


# One file of a batch: its path, the bytes it gets (None: it is removed) and its mode bits
# (None: a new file's, 0o644 less the umask).
BatchItem = tuple[str, bytes | None, int | None]


def write_files_atomic(
    items: Sequence[BatchItem], done: Callable[[int, OSError | None], None]
) -> None:
    """Write a batch of files, each atomically, with as few waits for the disk as it allows.

    Each file's bytes go to a temp file beside it; once every temp file of the batch is on
    disk (one `syncfs` for the batch where the filesystem honours it, see `_syncfs_fd`, else
    an fsync of each), each replaces its file with `os.replace`. A file's name points at
    its old bytes until its rename and at its new bytes, already on disk, from then on: a
    crash at any moment leaves each file whole, old or new. The renames are made durable by
    the caller (`fsync_folder` of each folder once its batches are written).

    `done(i, error)` hears of each item as soon as its outcome is final (error None: written
    or removed); a failing file (its `OSError`) keeps its old bytes and the rest go on. Any
    other exception (Ctrl-C, a bug) removes the temp files not yet renamed and is raised: an
    item `done` has not heard of has its old bytes."""
    sync_fds: dict[str, int | None] = {}  # folder → its fd to `syncfs`, None: fsync each file
    umask = _umask()
    temps: dict[int, str] = {}  # index → temp file not yet renamed (removed if we stop)
    try:
        for i, (path, data, mode) in enumerate(items):
            if data is None:
                try:
                    os.unlink(path)
                except OSError as exc:
                    done(i, exc)
                else:
                    done(i, None)
                continue
            folder, name = os.path.split(path)
            if folder not in sync_fds:
                # Opened before the temp files: a writeback error on them shows in `syncfs`.
                sync_fds[folder] = _syncfs_fd(folder)
            tmp = os.path.join(folder, temp_name(name))
            try:
                fd = _create_temp(tmp, data, mode, umask)
            except OSError as exc:
                done(i, exc)
                continue
            temps[i] = tmp
            try:
                if sync_fds[folder] is None:
                    os.fsync(fd)
            except OSError as exc:
                del temps[i]
                _remove(tmp)
                done(i, exc)
            finally:
                os.close(fd)
        failed: dict[str, OSError] = {}
        for folder, fd in sync_fds.items():
            if fd is not None and (error := _syncfs(fd)) is not None:
                failed[folder] = error  # which file it was is not known: none is renamed
        for i, tmp in list(temps.items()):
            path = items[i][0]
            error = failed.get(os.path.dirname(path))
            if error is None:
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    error = exc
            if error is None:
                del temps[i]
                done(i, None)
            else:
                del temps[i]
                _remove(tmp)
                done(i, error)
    finally:
        for tmp in temps.values():
            _remove(tmp)
        for fd in sync_fds.values():
            if fd is not None:
                os.close(fd)


def _remove(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


# Filesystems whose `syncfs` puts every dirty file of theirs on stable storage (its data,
# then the journal or log), as an fsync of each would: ext2/3/4, XFS, Btrfs, F2FS, and tmpfs
# (nothing to write). Elsewhere (FUSE, network filesystems, overlays, anything unknown) each
# file is made durable by its own fsync.
SYNCFS_FILESYSTEMS = frozenset({0xEF53, 0x58465342, 0x9123683E, 0xF2F52010, 0x01021994})


class _SyncFS:
    """Linux's `syncfs` and `fstatfs` through ctypes."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.syncfs = libc.syncfs
        self.syncfs.argtypes = [ctypes.c_int]
        self.fstatfs = libc.fstatfs
        self.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]

    def filesystem(self, fd: int) -> int | None:
        """The magic number of the filesystem holding `fd` (None: not known)."""
        buf = self.ctypes.create_string_buffer(512)  # a struct statfs; f_type comes first
        if self.fstatfs(fd, buf) != 0:
            return None
        return self.ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF

    def sync(self, fd: int) -> OSError | None:
        """`syncfs` of the filesystem holding `fd`: None once all on it is on disk, else
        the error (a failed writeback of any file on it since `fd` was opened)."""
        if self.syncfs(fd) == 0:
            return None
        code = self.ctypes.get_errno()
        return OSError(code, os.strerror(code))


@functools.cache
def _syncfs_api() -> _SyncFS | None:
    """`_SyncFS` on Linux >= 5.8 (where `syncfs` reports writeback errors), else None."""
    if sys.platform != "linux":
        return None
    try:
        release = tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2])
        if release < (5, 8):
            return None
        return _SyncFS()
    except (ImportError, OSError, AttributeError, ValueError):
        return None


def _syncfs_fd(folder: str) -> int | None:
    """An fd of `folder` for `syncfs` once the temp files of a batch are written in it (open
    it before them), None where each file's own fsync must make it durable."""
    api = _syncfs_api()
    if api is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None  # the writes will say what is wrong
    if api.filesystem(fd) not in SYNCFS_FILESYSTEMS:
        os.close(fd)
        return None
    return fd


def syncs_in_batches(folder: str) -> bool:
    """Whether `write_files_atomic` makes the files it writes in `folder` durable with one
    `syncfs` per batch (else with an fsync of each)."""
    fd = _syncfs_fd(folder)
    if fd is None:
        return False
    os.close(fd)
    return True


def _syncfs(fd: int) -> OSError | None:
    api = _syncfs_api()
    assert api is not None  # `_syncfs_fd` gave the fd
    return api.sync(fd)


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
