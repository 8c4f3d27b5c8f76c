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
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import rshift


def unpacked(packed: Sequence[bytes]) -> array:
    """Every image's ids, one after the other (`packed` as `Workspace.tag_ids` gives it)."""
    ids = array("I", b"".join(packed))
    if sys.byteorder != "little":  # pragma: no cover - packed ids are little-endian
        ids.byteswap()
    return ids


def id_postings(packed: Sequence[bytes], size: int) -> list[list[int]]:
    """For each id below `size`: the positions in `packed` of the images holding it,
    ascending (an image is there once per time it holds the id)."""
    lists: list[list[int]] = [[] for _ in range(size)]
    images = chain.from_iterable(
        map(repeat, range(len(packed)), map(rshift, map(len, packed), repeat(2)))
    )
    deque(map(list.append, map(lists.__getitem__, unpacked(packed)), images), 0)
    return lists


@dataclass(frozen=True)
class PackedTags:
    """The tags of many images as packed ids: `packed[i]` the ids of image i (4 little-endian
    bytes each, distinct within an image, in its order) into `names`."""

    names: Sequence[str]
    packed: Sequence[bytes]
    _postings: list[list[list[int]]] = field(default_factory=list, repr=False, compare=False)

    def postings(self) -> list[list[int]]:
        """`id_postings` of these images, made once (the passes over them share it)."""
        if not self._postings:
            self._postings.append(id_postings(self.packed, len(self.names)))
        return self._postings[0]
