"""A first open's reading, half of it done by a second process on the other core.

A first open reads and parses every caption (the state holds nothing yet), one core's
work. A `tui.core.helper` child reads the same files from the last block of captions
downwards while the open reads from the first upwards; where they meet, the open takes the
child's blocks as they are: each file's bytes, stat, digest and tags. The child parses with a
tag table of its own and sends the names new to it with each block; the open maps its ids
onto its own table, in the order a reading of those captions would have made them.

The child does only the plain case: a block holding any name it was not given (a FIFO or
device the scan saw), a file it cannot open as a regular file without following a link, one
over the size limit, changing while read, or decoded with a warning, is sent back undone,
and the open reads that block itself, as it reads every block when the child fails, stalls,
ends early or sends anything it does not expect. The outcome never depends on the child,
only the time does. This module imports the standard library and `captions` only.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from array import array
from itertools import accumulate, pairwise
from typing import Any

from tui.core.captions import TagParser, content_hash, decode_caption
from tui.core.helper import HelperProcess

# A block's frame: its index, captions, whether done (1) or left to the open (0), the names
# new to the child's table (count, bytes), the bytes of its files, its tag ids, and the ids
# of the tags its parse learned, in the order learned.
_HEADER = struct.Struct("<8I")
_DIGEST = 16
ABSENT = 0xFFFFFFFF  # a file length meaning: no caption file (no tags, nothing read)
_PIPE_SIZE = 1 << 20  # Linux lets a process grow its pipe to this (fs.pipe-max-size)
_F_SETPIPE_SZ = 1031


def _ids(data: Any) -> array:
    ids = array("I")  # both processes' own byte order
    ids.frombytes(data)
    return ids


class Preread(HelperProcess):
    """The child reading a first open's captions; `take` each block in order, `close`
    always."""

    def __init__(self, proc: Any, folder: tuple[int, int]) -> None:
        super().__init__(proc, folder)
        self._buffer = bytearray()
        self._frames: dict[int, tuple[Any, ...]] = {}
        self._names: list[str] = []  # the child's tag table, as it sends it
        self._map: list[int | None] = []  # the child's id → the open's (None: not yet)
        self._block = self._low = self._count = self._size = 0
        self._stat_size = 0
        self._root = ""
        self._checked = False

    @classmethod
    def start(
        cls,
        root: str,
        names: list[str],
        block: int,
        fmt: str,
        underscores: str,
        limit: int,
        racy: int,
    ) -> Preread | None:
        """The child reading `names` (captions under `root`; "" for one it must leave) in
        blocks of `block`, its stats packed by `fmt` (all 0xff when changed at `racy` or
        later), parsing with `underscores`, refusing files over `limit` bytes; None when it
        cannot be started here."""
        if not names or block < 1:
            return None
        payload = "\0".join(names).encode("utf-8", "surrogatepass")
        args = [fmt, str(block), underscores, str(limit), str(racy), str(len(names))]
        child = cls.spawn("preread", root, payload, args)
        if child is None:
            return None
        assert isinstance(child, Preread)
        if sys.platform.startswith("linux"):  # a bigger pipe: the child waits less on it
            try:
                import fcntl

                fcntl.fcntl(child._fd, _F_SETPIPE_SZ, _PIPE_SIZE)
            except (OSError, ValueError, ImportError):
                pass
        child._root, child._block, child._size = root, block, len(names)
        child._count = child._low = -(-len(names) // block)
        child._stat_size = struct.calcsize(fmt)
        return child

    def take(self, index: int, intern: Any) -> tuple[list[Any], ...] | None:
        """Block `index` as the child read it: its files' bytes (None: absent), digests,
        stat keys (None: absent) and tags as packed ids of the open's table (made by
        `intern`, the open's `TagParser.intern`); None: the open reads it itself."""
        if self._fd is not None and index < self._low:
            self._drain()
        frame = self._frames.pop(index, None)
        if frame is None:
            return None
        if self._fd is not None:
            self.close()  # it works below here, where the open has read already
        if not self._checked:
            try:
                here = os.stat(self._root)
            except OSError:
                here = None
            if here is None or not self.works_in(here):
                self._frames.clear()
                return None
            self._checked = True
        count, lengths, data, stats, digests, id_counts, ids, order = frame
        mapping, names = self._map, self._names
        try:
            if None in map(mapping.__getitem__, order):
                # Tags new to the open: learned as a reading of these captions learns them
                # (the ids of every tag are then what a plain open gives it).
                for local in order:
                    if mapping[local] is None:
                        mapping[local] = intern(names[local])
            packed = array("I", map(mapping.__getitem__, ids))
        except (IndexError, TypeError):  # an id of no name it sent, or of none it learned
            self.close()
            self._frames.clear()
            return None
        if sys.byteorder != "little":  # pragma: no cover
            packed.byteswap()
        tag_bytes = packed.tobytes()
        ends = list(accumulate(id_counts, initial=0))
        tags = [tag_bytes[a * 4 : b * 4] for a, b in pairwise(ends)]
        size = self._stat_size
        keys: list[bytes | None] = [stats[k : k + size] for k in range(0, count * size, size)]
        sums: list[bytes | None]
        sums = [digests[k : k + _DIGEST] for k in range(0, count * _DIGEST, _DIGEST)]
        if ABSENT not in lengths:
            ends = list(accumulate(lengths, initial=0))
            datas: list[bytes | None] = [data[a:b] for a, b in pairwise(ends)]
            return datas, sums, keys, tags
        datas, at = [], 0
        for k, length in enumerate(lengths):
            if length == ABSENT:
                datas.append(None)
                keys[k] = sums[k] = None
            else:
                datas.append(data[at : at + length])
                at += length
        return datas, sums, keys, tags

    def _drain(self) -> None:
        """Read what the child has written, and take each whole frame it holds."""
        while self._fd is not None:
            data = self._read(0)
            if not data:
                break
            self._buffer += data
            if not self._frames_in_buffer():
                self.close()  # not what this child writes: nothing more is taken from it
                break

    def _frames_in_buffer(self) -> bool:
        """Take the whole frames at the buffer's start; False when one is malformed."""
        buffer = self._buffer
        view = memoryview(buffer)
        at = 0
        try:
            while len(buffer) - at >= _HEADER.size:
                index, count, done, new, names_size, data_size, n_ids, n_order = (
                    _HEADER.unpack_from(buffer, at)
                )
                expected = self._low - 1
                want = min(self._block, self._size - expected * self._block)
                if index != expected or count != want or done not in (0, 1):
                    return False
                size = _HEADER.size + 4 * new + names_size
                if done:
                    size += count * (self._stat_size + _DIGEST + 8) + data_size
                    size += 4 * (n_ids + n_order)
                elif data_size or n_ids or n_order:
                    return False
                if len(buffer) - at < size:
                    break
                p = at + _HEADER.size
                name_lengths = _ids(view[p : p + 4 * new])
                p += 4 * new
                if sum(name_lengths) != names_size:
                    return False
                raw = bytes(view[p : p + names_size])
                p += names_size
                ends = list(accumulate(name_lengths, initial=0))
                names = [raw[a:b].decode("utf-8", "surrogatepass") for a, b in pairwise(ends)]
                if not all(names):
                    return False
                self._names += names
                self._map += [None] * len(names)
                if done:
                    stats = bytes(view[p : p + count * self._stat_size])
                    p += count * self._stat_size
                    digests = bytes(view[p : p + count * _DIGEST])
                    p += count * _DIGEST
                    lengths = _ids(view[p : p + 4 * count])
                    p += 4 * count
                    id_counts = _ids(view[p : p + 4 * count])
                    p += 4 * count
                    data = bytes(view[p : p + data_size])
                    p += data_size
                    ids = _ids(view[p : p + 4 * n_ids])
                    p += 4 * n_ids
                    order = _ids(view[p : p + 4 * n_order])
                    p += 4 * n_order
                    read = [n for n in lengths if n != ABSENT]
                    absent = [c for n, c in zip(lengths, id_counts, strict=True) if n == ABSENT]
                    if sum(read) != data_size or sum(id_counts) != n_ids or any(absent):
                        return False
                    if order and max(order) >= len(self._names):
                        return False  # (an id of its tags out of range is found at `take`)
                    self._frames[index] = (
                        count,
                        lengths,
                        data,
                        stats,
                        digests,
                        id_counts,
                        ids,
                        order,
                    )
                at += size
                self._low = index
        except (ValueError, struct.error, UnicodeDecodeError):
            return False
        finally:
            view.release()
            del buffer[:at]
        return True


def _write(data: bytes) -> bool:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(1, view) :]
    except OSError:  # the open needs no more (a closed pipe)
        return False
    return True


def child(dir_fd: int, payload: bytes, argv: list[str]) -> int:
    """The child's side: read the captions in `payload`, last block first."""
    fmt, block, underscores = argv[0], int(argv[1]), argv[2]
    limit, racy, expected = int(argv[3]), int(argv[4]), int(argv[5])
    names = payload.decode("utf-8", "surrogatepass").split("\0") if payload else []
    if len(names) != expected or block < 1:
        return 2
    layout = struct.Struct(fmt)
    pack, unchecked = layout.pack, b"\xff" * layout.size
    parser = TagParser(underscores)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= getattr(os, "O_NOCTTY", 0)
    sent = 0
    for index in range((len(names) - 1) // block, -1, -1):
        part = names[index * block : (index + 1) * block]
        done = True
        stats: list[bytes] = []
        digests: list[bytes] = []
        datas: list[bytes] = []
        lengths = array("I")
        id_counts = array("I")
        ids = array("I")
        learned: list[int] = []
        for name in part:
            if not name:
                done = False
                break
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                stats.append(unchecked)
                digests.append(b"\0" * _DIGEST)
                lengths.append(ABSENT)
                id_counts.append(0)
                continue
            except OSError:
                done = False
                break
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                    done = False
                    break
                data = os.read(fd, st.st_size + 1)
            except OSError:
                done = False
                break
            finally:
                os.close(fd)
            if len(data) != st.st_size:
                done = False
                break
            decoded = decode_caption(data)
            if decoded.warnings:
                done = False
                break
            text = decoded.text
            got = parser.parse_ids(text)
            # Every piece one distinct tag: it learned those (else, ask what it learned).
            learned += got if len(got) == text.count(",") + 1 else parser.learned_ids(text)
            stats.append(pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
            if st.st_mtime_ns >= racy:
                stats[-1] = unchecked
            digests.append(content_hash(data) or b"")
            datas.append(data)
            lengths.append(len(data))
            id_counts.append(len(got))
            ids.extend(got)
        new = parser.names[sent:]
        sent = len(parser.names)
        encoded = [n.encode("utf-8", "surrogatepass") for n in new]
        name_lengths = array("I", map(len, encoded))
        data = b"".join(datas) if done else b""
        parts = [b"", name_lengths.tobytes(), b"".join(encoded)]
        if done:
            parts += [b"".join(stats), b"".join(digests), lengths.tobytes()]
            order = array("I", dict.fromkeys(learned))
            parts += [id_counts.tobytes(), data, ids.tobytes(), order.tobytes()]
        parts[0] = _HEADER.pack(
            index,
            len(part),
            int(done),
            len(new),
            len(parts[2]),
            len(data),
            len(ids) if done else 0,
            len(order),
        )
        if not _write(b"".join(parts)):
            return 0
    return 0
