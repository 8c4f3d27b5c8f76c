"""The reopen record: what an open of a dataset needs when nothing changed, in one value.

An open keeps, for every caption of the dataset (in the order of its images), the file's
stat as that open saw it (`store.stat_key`), the digest of its bytes and its source tags as
ids of the tag table. The next open then needs only one `lstat` per caption and this one
value: no row of the file records is read, and, since the state's triggers forget the record
whenever a file record or the tag table changes (`store.Store.reopen_record`), no original
copy is checked again either. A caption whose stat differs, or that the record does not hold
(new, changed on disk, unreadable, a link, adopted, with decoding warnings), is opened the
general way. The record is a cache: one that does not add up is ignored, never trusted.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass

from tui.core.captions import pack_ids, unpack_ids
from tui.core.store import NO_STAT, SEEN_STAT_SIZE

MAGIC = b"LCR2"  # another layout gets another magic: a record is never misread
# magic, captions, then the sizes of: signature, names, gone, unrecorded, tags, tag counts
_HEAD = struct.Struct("<4sIIIIIQI")
DIGEST_SIZE = 16
STAT_SIZE = SEEN_STAT_SIZE
# The stat of a caption file that did not exist (no real stat is ever this, nor `NO_STAT`).
ABSENT = b"\xfe" * STAT_SIZE
# The stat of a caption the record does not hold: the next open takes the general way.
NOT_HELD = NO_STAT
NO_DIGEST = bytes(DIGEST_SIZE)


def encode_names(names: list[str]) -> bytes:
    """Names joined by NUL (which no file name holds), as bytes (any text: lone surrogates,
    as Python gives the bytes of a name that is not UTF-8, included)."""
    return "\0".join(names).encode("utf-8", "surrogatepass")


def _decode_names(data: bytes) -> list[str]:
    if not data:
        return []
    try:
        text = data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # not what `encode_names` made: names no caption has
        text = data.decode("utf-8", "replace")
    return text.split("\0")


@dataclass
class ReopenRecord:
    signature: str  # the tag parser's (`TagParser.signature`): what the ids mean
    names: bytes  # the captions, `encode_names`
    gone: list[str]  # captions the state has records of that were not in the dataset
    unrecorded: list[str]  # captions of the dataset the state has no record of
    stats: bytes  # per caption: `STAT_SIZE` bytes, its stat (`NOT_HELD`, `ABSENT`)
    digests: bytes  # per caption: `DIGEST_SIZE` bytes, the digest of its bytes
    counts: array  # per caption: how many tag ids it has in `tags` (uint32)
    tags: bytes  # every held caption's source tags, 4 bytes an id, in caption order
    # How many captions have each tag id (as `workspace.count_ids` gives them, in order of
    # first appearance), when every caption is held; else empty.
    tag_counts: dict[int, int]

    def __len__(self) -> int:
        return len(self.counts)

    def caption_names(self) -> list[str]:
        return _decode_names(self.names)


def pack_record(
    signature: str,
    names: bytes,
    gone: list[str],
    unrecorded: list[str],
    stats: bytes,
    digests: bytes,
    counts: array,
    tags: bytes,
    tag_counts: dict[int, int],
) -> bytes:
    """The record's bytes (see `parse_record`)."""
    sig = signature.encode("utf-8", "surrogatepass")
    gone_bytes, unrecorded_bytes = encode_names(gone), encode_names(unrecorded)
    count_bytes = pack_ids(counts)
    pairs = pack_ids([x for pair in tag_counts.items() for x in pair])
    sizes = (len(sig), len(names), len(gone_bytes), len(unrecorded_bytes), len(tags))
    head = _HEAD.pack(MAGIC, len(counts), *sizes, len(pairs))
    parts = (sig, names, gone_bytes, unrecorded_bytes, stats, digests, count_bytes, tags, pairs)
    return head + b"".join(parts)


def parse_record(data: bytes | None) -> ReopenRecord | None:
    """The record in `data`, when it adds up (None otherwise: a cache, never trusted)."""
    if data is None or len(data) < _HEAD.size:
        return None
    magic, n, sig_len, names_len, gone_len, unrecorded_len, tags_len, pairs_len = _HEAD.unpack_from(
        data
    )
    parts = (
        *(sig_len, names_len, gone_len, unrecorded_len),
        *(n * STAT_SIZE, n * DIGEST_SIZE, n * 4, tags_len, pairs_len),
    )
    if magic != MAGIC or _HEAD.size + sum(parts) != len(data) or tags_len % 4 or pairs_len % 8:
        return None
    pieces = []
    at = _HEAD.size
    for size in parts:
        pieces.append(data[at : at + size])
        at += size
    sig, names, gone, unrecorded, stats, digests, count_bytes, tags, pair_bytes = pieces
    counts = unpack_ids(count_bytes)
    if sum(counts) * 4 != tags_len or (names.count(b"\0") + 1 if names else 0) != n:
        return None
    pairs = unpack_ids(pair_bytes)
    tag_counts = dict(zip(pairs[::2], pairs[1::2], strict=True))
    if len(tag_counts) * 2 != len(pairs):
        return None  # an id twice
    signature = sig.decode("utf-8", "replace")
    gone_names, unrecorded_names = _decode_names(gone), _decode_names(unrecorded)
    return ReopenRecord(
        signature,
        names,
        gone_names,
        unrecorded_names,
        stats,
        digests,
        counts,
        tags,
        tag_counts,
    )
