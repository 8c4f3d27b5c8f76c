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

The child is a `tui.core.helper` process: it starts in milliseconds, and this module
imports the standard library only.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from tui.core.helper import HelperProcess

SAME, DIFFERENT = b"=", b"!"


def stat_keys(stat: Callable[[str], os.stat_result], names: Iterable[str], pack: Any) -> bytes:
    """The packed stat (size, mtime in ns, inode, mode: `store.stat_key`) of each name,
    joined; `OSError` when one cannot be stat'ed."""
    return b"".join(
        [pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode) for st in map(stat, names)]
    )


class Prestat(HelperProcess):
    """The child taking a reopen's stats; `next_block` in block order, `close` always."""

    def __init__(self, proc: Any, folder: tuple[int, int]) -> None:
        super().__init__(proc, folder)
        self._answers = b""
        self._at = 0

    @classmethod
    def start(cls, root: str, names: bytes, stats: bytes, block: int, fmt: str) -> Prestat | None:
        """The child stat'ing `names` (NUL-joined, `reopen.encode_names`) under `root` and
        comparing each block of `block` captions with `stats` (packed by `fmt`); None when
        it cannot be started here (no folder descriptors, no interpreter to run)."""
        return cls.spawn("prestat", root, names + stats, [fmt, str(block), str(len(names))])

    def stats_folder(self, folder: os.stat_result) -> bool:
        """Whether the child stats in this folder (see `HelperProcess.works_in`)."""
        return self.works_in(folder)

    def next_block(self) -> bool | None:
        """Whether every stat of the next block is the record's (None: not known, the
        caller stats the block itself)."""
        if self._at >= len(self._answers) and not self._more():
            return None
        answer = self._answers[self._at : self._at + 1]
        self._at += 1
        return answer == SAME

    def _more(self) -> bool:
        data = self._read()
        if not data or data.strip(SAME + DIFFERENT):  # ended, stalled, or not ours
            self.close()
            return False
        self._answers, self._at = data, 0
        return True


def child(dir_fd: int, payload: bytes, argv: list[str]) -> int:
    """The child's side: answer each block of the names and stats in `payload`."""
    fmt, block, names_size = argv[0], int(argv[1]), int(argv[2])
    layout = struct.Struct(fmt)
    names_data, stats = payload[:names_size], payload[names_size:]
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
