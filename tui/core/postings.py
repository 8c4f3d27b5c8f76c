"""Posting lists of interned tag ids: which images hold each tag, found in C.

A dataset-wide pass (the query index, implied tags) used to walk every image's tags as
strings, a Python step per image x tag (3 million at 100k images). The workspace keeps each
image's tags as packed ids (4 little-endian bytes each, see `Workspace.tag_ids`): joined, they
are one array, and appending every image's number to its ids' lists is a `map` the
interpreter runs without a bytecode per tag.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import lshift, or_, rshift

from tui.core.captions import unpack_ids


def unpacked(packed: Sequence[bytes]) -> array:
    """Every image's ids, one after the other (`packed` as `Workspace.tag_ids` gives it)."""
    return unpack_ids(b"".join(packed))


# Images per step of `id_postings`: a step is one long call in C, which holds the GIL (the
# app's UI thread waits meanwhile); ~4k images are a few milliseconds.
_CHUNK = 4096


def id_postings(
    packed: Sequence[bytes], size: int, wanted: Collection[int] | None = None
) -> list[list[int]]:
    """For each id below `size`: the positions in `packed` of the images holding it,
    ascending (an image is there once per time it holds the id). With `wanted`, the lists
    of those ids only (the others stay empty): the entries holding them are picked out
    first (`_picked`), and only theirs are appended."""
    lists: list[list[int]] = [[] for _ in range(size)]
    rows = _rows(size, wanted) if wanted is not None else None
    for start in range(0, len(packed), _CHUNK):
        part = packed[start : start + _CHUNK]
        lengths = map(rshift, map(len, part), repeat(2))
        images: Iterable[int] = chain.from_iterable(
            map(repeat, range(start, start + len(part)), lengths)
        )
        if rows is None:
            ids: Iterable[int] = unpacked(part)
        else:
            ids, images = _picked(part, rows, images)
        deque(map(list.append, map(lists.__getitem__, ids), images), 0)
    return lists


# Picking entries by their two low bytes costs a few passes over them per 256 ids of `wanted`.
_MOST_ROWS = 16


def _rows(size: int, wanted: Collection[int]) -> dict[int, bytearray] | bytearray:
    """How `_picked` tells a wanted id: per 256 ids (`id >> 8`), a translate table of the
    low byte; or, for many rows or ids of more than two bytes, one flag per id."""
    rows: dict[int, bytearray] = {}
    for i in wanted:
        rows.setdefault(i >> 8, bytearray(256))[i & 255] = 1
    if size <= 1 << 16 and len(rows) <= _MOST_ROWS:
        return rows
    flags = bytearray(size)
    for i in wanted:
        flags[i] = 1
    return flags


def _picked(
    packed: Sequence[bytes], rows: dict[int, bytearray] | bytearray, images: Iterable[int]
) -> tuple[Iterable[int], Iterable[int]]:
    """The ids, and with them the images, of the entries holding a wanted id (`_rows`).
    Turning every entry into an int is most of a pass's cost: with ids below 65536 (a
    dataset's tag table) the entries are marked with `bytes.translate` on their two low
    bytes instead, and only the marked ones become ints."""
    if isinstance(rows, bytearray):
        ids = unpacked(packed)
        keep = bytes(map(rows.__getitem__, ids))
        return compress(ids, keep), compress(images, keep)
    blob = b"".join(packed)
    low, high = blob[0::4], blob[1::4]  # little-endian: the third and fourth bytes are 0
    marks = 0
    for row, table in rows.items():
        in_row = bytearray(256)
        in_row[row] = 1
        marks |= int.from_bytes(low.translate(table), "little") & int.from_bytes(
            high.translate(in_row), "little"
        )
    keep = marks.to_bytes(len(low), "little")
    ids = map(or_, map(lshift, compress(high, keep), repeat(8)), compress(low, keep))
    return ids, compress(images, keep)


@dataclass(frozen=True)
class PackedTags:
    """The tags of many images as packed ids: `packed[i]` the ids of image i (4 little-endian
    bytes each, distinct within an image, in its order) into `names`."""

    names: Sequence[str]
    packed: Sequence[bytes]
    _postings: list[list[list[int]]] = field(default_factory=list, repr=False, compare=False)

    def postings(self, wanted: Collection[int] | None = None) -> list[list[int]]:
        """`id_postings` of these images: of every id made once (the passes over them
        share it), of the `wanted` ones only (made each time) unless that is made already."""
        if not self._postings:
            if wanted is not None:
                return id_postings(self.packed, len(self.names), wanted)
            self._postings.append(id_postings(self.packed, len(self.names)))
        return self._postings[0]
