"""Posting lists of interned tag ids: which images hold each tag, found in C.

A dataset-wide pass (the query index, implied tags) used to walk every image's tags as
strings, a Python step per image x tag (3 million at 100k images). The workspace keeps each
image's tags as packed ids (4 little-endian bytes each, see `Workspace.tag_ids`): joined, they
are one array, and appending every image's number to its ids' lists is a `map` the
interpreter runs without a bytecode per tag.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import rshift


def unpacked(packed: Sequence[bytes]) -> array:
    """Every image's ids, one after the other (`packed` as `Workspace.tag_ids` gives it)."""
    ids = array("I", b"".join(packed))
    if sys.byteorder != "little":  # pragma: no cover - packed ids are little-endian
        ids.byteswap()
    return ids


def id_postings(
    packed: Sequence[bytes], size: int, wanted: Collection[int] | None = None
) -> list[list[int]]:
    """For each id below `size`: the positions in `packed` of the images holding it,
    ascending (an image is there once per time it holds the id). With `wanted`, the lists
    of those ids only (the others stay empty): a pass picks them out first, and only their
    ids are appended."""
    lists: list[list[int]] = [[] for _ in range(size)]
    ids: Iterable[int] = unpacked(packed)
    lengths = map(rshift, map(len, packed), repeat(2))
    images: Iterable[int] = chain.from_iterable(map(repeat, range(len(packed)), lengths))
    if wanted is not None:
        flags = bytearray(size)
        for i in wanted:
            flags[i] = 1
        keep = bytes(map(flags.__getitem__, ids))
        ids, images = compress(ids, keep), compress(images, keep)
    deque(map(list.append, map(lists.__getitem__, ids), images), 0)
    return lists


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
