"""A reopen's stats, taken by a second process while this one lists the dataset.

A reopen of a million captions spends half its time in one `lstat` per caption (the floor
it is measured against) and most of the rest in work of its own (the listing, the state,
the maps) that needs no stat until it compares them with the reopen record. With two
cores both halves run at once: a child Python process gets the record's caption names and
stats, stats every caption through a descriptor of the dataset's folder, and writes one
byte per block of captions on a pipe: `=` when every stat in the block is what the record
holds, `!` otherwise. The open reads those bytes as it reaches each block. A block said
different, and every block once the child fails, stalls or is missing, is stat'ed by the
open itself: the outcome never depends on the child, only the time does.

The child runs this file with `-I -S` (isolated, no site packages): it imports the
standard library only, never this package, so it starts in milliseconds.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

SAME, DIFFERENT = b"=", b"!"
# No answer for this long (a stopped child, a hung mount): the open stats the rest itself.
STALL_SECONDS = 30.0


def stat_keys(stat: Callable[[str], os.stat_result], names: Iterable[str], pack: Any) -> bytes:
    """The packed stat (size, mtime in ns, inode, mode: `store.stat_key`) of each name,
    joined; `OSError` when one cannot be stat'ed."""
    return b"".join(
        [pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode) for st in map(stat, names)]
    )


class Prestat:
    """The child taking a reopen's stats; `next_block` in block order, `close` always."""

    def __init__(self, proc: Any, folder: tuple[int, int]) -> None:
        self._proc = proc
        self._folder = folder  # the device and inode of the folder it stats in
        self._fd: int | None = proc.stdout.fileno()
        self._answers = b""
        self._at = 0
        self._poll: Any = None

    @classmethod
    def start(cls, root: str, names: bytes, stats: bytes, block: int, fmt: str) -> Prestat | None:
        """The child stat'ing `names` (NUL-joined, `reopen.encode_names`) under `root` and
        comparing each block of `block` captions with `stats` (packed by `fmt`); None when
        it cannot be started here (no folder descriptors, no interpreter to run)."""
        if os.name != "posix" or os.stat not in os.supports_dir_fd or not sys.executable:
            return None
        if getattr(sys, "frozen", False):  # the executable is the app, not an interpreter
            return None
        import subprocess
        import tempfile

        dir_fd = data_fd = -1
        try:
            dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            folder = os.fstat(dir_fd)
            if hasattr(os, "memfd_create"):
                data_fd = os.memfd_create("lora-curator-prestat")
            else:  # an unnamed temporary file (gone once both processes close it)
                with tempfile.TemporaryFile() as temp:
                    data_fd = os.dup(temp.fileno())
            view = memoryview(names + stats)
            while view:
                view = view[os.write(data_fd, view) :]
            os.lseek(data_fd, 0, os.SEEK_SET)
            # The names as this process encodes them (`-I` ignores PYTHONUTF8).
            argv = [sys.executable, "-I", "-S", "-X", f"utf8={sys.flags.utf8_mode}"]
            argv += [os.path.abspath(__file__), fmt]
            argv += [str(block), str(dir_fd), str(data_fd), str(len(names))]
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(dir_fd, data_fd),
            )
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        finally:
            for fd in (dir_fd, data_fd):
                if fd >= 0:
                    os.close(fd)
        return cls(proc, (folder.st_dev, folder.st_ino))

    def stats_folder(self, folder: os.stat_result) -> bool:
        """Whether the child stats in this folder (the caller's view of the dataset's root);
        when not (the folder was replaced since), it is stopped: its answers are not of
        these files."""
        if (folder.st_dev, folder.st_ino) == self._folder:
            return True
        self._fd = None
        self.close()
        return False

    def next_block(self) -> bool | None:
        """Whether every stat of the next block is the record's (None: not known, the
        caller stats the block itself)."""
        if self._at >= len(self._answers) and not self._more():
            return None
        answer = self._answers[self._at : self._at + 1]
        self._at += 1
        return answer == SAME

    def _more(self) -> bool:
        import select

        fd = self._fd
        if fd is None:
            return False
        try:
            if self._poll is None:
                self._poll = select.poll()  # any descriptor number (select: below 1024)
                self._poll.register(fd, select.POLLIN)
            ready = self._poll.poll(STALL_SECONDS * 1000)
            data = os.read(fd, 1 << 16) if ready else b""
        except (OSError, ValueError, AttributeError):
            data = b""
        if not data or data.strip(SAME + DIFFERENT):  # ended, stalled, or not ours
            self._fd = None
            self.close()
            return False
        self._answers, self._at = data, 0
        return True

    def close(self) -> None:
        """Stop the child (if it still runs) and reap it."""
        import subprocess
        from contextlib import suppress

        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        with suppress(subprocess.TimeoutExpired):  # killed: at once, unless stuck in the
            proc.wait(timeout=5)  # kernel (a hung mount): then the open goes on without
        proc.stdout.close()


def _child(argv: list[str]) -> int:
    fmt, block, dir_fd, data_fd, names_size = argv[0], *map(int, argv[1:5])
    layout = struct.Struct(fmt)
    with os.fdopen(data_fd, "rb") as data:
        names_data = data.read(names_size)
        stats = data.read()
    names = names_data.decode("utf-8", "surrogatepass").split("\0") if names_data else []
    size = layout.size
    if len(stats) != len(names) * size or block < 1:
        return 2

    stat = partial(os.stat, dir_fd=dir_fd, follow_symlinks=False)
    for start in range(0, len(names), block):
        part = names[start : start + block]
        try:
            keys = stat_keys(stat, part, layout.pack)
            same = keys == stats[start * size : (start + len(part)) * size]
        except (OSError, ValueError, struct.error):
            same = False
        try:
            os.write(1, SAME if same else DIFFERENT)
        except BrokenPipeError:  # the open needs no more answers
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
