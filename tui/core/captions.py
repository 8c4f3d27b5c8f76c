"""Caption files: decoding bytes, parsing tags, formatting a caption line.

One parser and one formatter serve the whole project; the app and the CLI never split tags
themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

UNDERSCORE_MODES = ("spaces", "keep")

_WHITESPACE = re.compile(r"\s+")
# Emoticon tags keep their underscores (`^_^`, `o_o`, `>_<`): WD14 and trainers do the same.
_EMOTICON_MAX_LEN = 3
# `(tag:1.2)`: a weighted prompt tag, kept verbatim (never unescaped nor re-escaped).
_WEIGHTED = re.compile(r"^\(.*:\s*-?[0-9.]+\s*\)$", re.DOTALL)


_BOM_STARTS = (b"\xef", b"\xff", b"\xfe")


@dataclass(frozen=True)
class DecodedCaption:
    """The text of a caption file and what had to be assumed to read it."""

    text: str
    warnings: tuple[str, ...] = ()


# Hiragana and katakana (Shift-JIS bytes read as these only in Japanese text), and kanji.
_KANA = re.compile("[\u3040-\u30ff]")
_CJK = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")


def content_hash(data: bytes | None) -> bytes | None:
    """A short digest of a file's bytes (None for an absent file)."""
    if data is None:
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


def _decode_legacy(data: bytes) -> tuple[str, str]:
    """Text and codec of a caption file that is not UTF-8: Shift-JIS (Windows' cp932) when it
    reads as Japanese, else cp1252, else latin-1 (which never fails).

    Western text almost never decodes as cp932 into kana (its lead bytes are cp1252's rare
    `‚` and `ƒ`), so kana, or kanji in a file cp1252 cannot read, decide for Shift-JIS."""
    try:
        western: str | None = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    try:
        japanese = data.decode("cp932")
    except UnicodeDecodeError:
        japanese = ""
    if _KANA.search(japanese) or (western is None and _CJK.search(japanese)):
        return japanese, "cp932"
    if western is not None:
        return western, "cp1252"
    return data.decode("latin-1"), "latin-1"


def decode_caption(data: bytes) -> DecodedCaption:
    """Decode a caption file's bytes.

    UTF-8 (a BOM is stripped), UTF-16 with a BOM, else Shift-JIS, cp1252 or latin-1 (see
    `_decode_legacy`) with a warning. Line endings become LF. Several non-empty lines are
    joined (their tags are all used) with a warning.
    """
    if data[:1] not in _BOM_STARTS and b"\r" not in data and b"\n" not in data.rstrip(b"\n"):
        # The common case (one UTF-8 line, as taggers write): no warning can arise.
        try:
            return DecodedCaption(data.decode("utf-8").rstrip("\n"))
        except UnicodeDecodeError:
            pass
    warnings: list[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, codec = _decode_legacy(data)
            if codec == "cp932":
                warnings.append("not UTF-8: read as Shift-JIS (cp932); check its tags")
            else:
                warnings.append(f"not UTF-8: read as {codec}; check the accents in its tags")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in text.strip("\n"):
        lines = [line for line in text.split("\n") if line.strip()]
        if len(lines) > 1:
            warnings.append(
                f"{len(lines)} lines: the tags of every line are used, "
                "but trainers read only the first line"
            )
        text = ", ".join(lines)
    return DecodedCaption(text.strip("\n"), tuple(warnings))


def _scan_parentheses(text: str) -> tuple[list[int], int, bool]:
    """Where `text` may be split: the commas outside unescaped `( ... )`, the depth left open
    at its end, and whether it ends in a backslash that escapes what follows."""
    commas: list[int] = []
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i == n - 1:
                return commas, depth, True
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == "," and depth == 0:
            commas.append(i)
        i += 1
    return commas, depth, False


def _split_top_level(text: str) -> list[str]:
    """Split on commas, except inside an unescaped `( ... )` (a weighted tag may hold commas)."""
    if "(" not in text:
        return text.split(",")
    commas, depth, _ = _scan_parentheses(text)
    if depth:
        # An unclosed parenthesis: do not let it swallow the rest of the caption.
        return text.split(",")
    bounds = [-1, *commas, len(text)]
    return [text[a + 1 : b] for a, b in itertools.pairwise(bounds)]


def normalize_tag(raw: str, underscores: str = "spaces") -> str:
    """One tag as the engine holds it: trimmed, inner whitespace collapsed, `\\(` unescaped,
    underscores turned into spaces (except in emoticons) when `underscores == "spaces"`."""
    tag = raw.strip()
    if not tag:
        return ""
    # A lone ASCII space is already normal; any other whitespace (tab, NBSP, U+3000, ...) is
    # non-printable, so this skips the regex for the common tag.
    if "  " in tag or not tag.isprintable():
        tag = _WHITESPACE.sub(" ", tag)
    if _WEIGHTED.match(tag):
        return tag
    if "\\" in tag:
        tag = tag.replace("\\(", "(").replace("\\)", ")")
    if underscores == "spaces" and "_" in tag and len(tag) > _EMOTICON_MAX_LEN:
        tag = _WHITESPACE.sub(" ", tag.replace("_", " ")).strip()
    return tag


def _stands_alone(piece: str) -> bool:
    """Whether a piece of a plain comma split is a whole tag: its unescaped parentheses close
    (as `_split_top_level` counts them) and no trailing backslash escapes the comma."""
    if "(" not in piece and "\\" not in piece:
        return True
    _, depth, dangling = _scan_parentheses(piece)
    return depth == 0 and not dangling


# The id `TagParser.parse_ids` gives a piece that is no tag (blank): never kept.
EMPTY_ID = -1
# Bump when the parsing rules change: tags cached in a state under another version are
# parsed again (see `TagParser.signature`).
PARSER_VERSION = 1


class TagParser:
    """Parses caption text into tags, interned: every distinct tag is one `str` object and
    one small int (its id, the index in `names`), shared by every caption that has it.

    It remembers every raw piece it has seen, since a dataset repeats the same few thousand
    tags across all its captions (opening a dataset is mostly this, so the common case runs
    in C: dict lookups over a plain comma split). Memory then grows with the distinct tags,
    not with tags x images: an image's tags can be kept as an array of ids."""

    def __init__(self, underscores: str = "spaces") -> None:
        if underscores not in UNDERSCORE_MODES:
            raise ValueError(f"underscores must be one of {', '.join(UNDERSCORE_MODES)}")
        self.underscores = underscores
        self.names: list[str] = []  # id → tag (one object per distinct tag)
        self._id: dict[str, int] = {}  # tag → id
        self._keys: list[str] = []  # id → case-insensitive key
        self._key_ids: dict[str, int] = {}  # key → the first id with that key
        self._shared: set[int] = set()  # ids whose key another id has too ("Smile", "smile")
        self._piece: dict[str, int] = {}  # raw piece → id (EMPTY_ID when blank)
        self._split_pieces: set[str] = set()  # pieces whose parentheses span a comma
        self._normal: dict[str, int] = {}  # stripped piece → id

    def signature(self) -> str:
        """What the ids of this parser depend on: tags parsed under another signature must
        be parsed again."""
        return f"{PARSER_VERSION} {self.underscores}"

    def load_names(self, names: list[str]) -> bool:
        """Start from a vocabulary kept earlier (id = index), before any parse; False (and
        nothing loaded) when it cannot be one: a name not text, blank, or twice."""
        if self.names or len(set(names)) != len(names):
            return False
        if not all(isinstance(n, str) and n for n in names):
            return False
        for name in names:
            self._intern(name)
        return True

    def intern(self, tag: str) -> int:
        """The id of a tag (normalised already), made when it is new."""
        found = self._id.get(tag)
        return found if found is not None else self._intern(tag)

    def _intern(self, tag: str) -> int:
        i = len(self.names)
        self.names.append(tag)
        self._id[tag] = i
        key = tag.casefold()
        self._keys.append(key)
        first = self._key_ids.setdefault(key, i)
        if first != i:
            self._shared.update((first, i))
        return i

    def _learn(self, pieces: list[str]) -> None:
        for piece in pieces:
            if piece not in self._piece:
                # " smile" and "smile" are one tag: normalise each stripped spelling once.
                stripped = piece.strip()
                i = self._normal.get(stripped)
                if i is None:
                    tag = normalize_tag(stripped, self.underscores)
                    i = self._normal[stripped] = self.intern(tag) if tag else EMPTY_ID
                self._piece[piece] = i
                if not _stands_alone(piece):
                    self._split_pieces.add(piece)

    def parse_ids(self, text: str) -> list[int]:
        """The ids of a caption's tags (see `parse`)."""
        pieces = text.split(",")
        try:
            ids = list(map(self._piece.__getitem__, pieces))
        except KeyError:
            self._learn(pieces)
            ids = list(map(self._piece.__getitem__, pieces))
        if self._split_pieces and not self._split_pieces.isdisjoint(pieces):
            # A weighted tag like `(a, b:1.2)` spans a comma: split the careful way.
            pieces = _split_top_level(text)
            self._learn(pieces)
            ids = list(map(self._piece.__getitem__, pieces))
        if (
            EMPTY_ID not in ids
            and len(set(ids)) == len(ids)
            and (not self._shared or self._shared.isdisjoint(ids))
        ):
            return ids
        out: list[int] = []
        seen: set[str] = set()
        keys = self._keys
        for i in ids:
            if i != EMPTY_ID and keys[i] not in seen:
                seen.add(keys[i])
                out.append(i)
        return out

    def learned_ids(self, text: str) -> list[int]:
        """After `parse_ids(text)`: the ids of every tag its parse learns, in the order it
        learns them (those it drops as duplicates or half of a weighted tag included), so
        that another table can learn the same tags in the same order (`preread`)."""
        pieces = text.split(",")
        ids = list(map(self._piece.__getitem__, pieces))
        if self._split_pieces and not self._split_pieces.isdisjoint(pieces):
            ids += map(self._piece.__getitem__, _split_top_level(text))
        return [i for i in ids if i != EMPTY_ID]

    def parse(self, text: str) -> tuple[str, ...]:
        """Tags of a caption: split on commas, normalised, empty ones and duplicates dropped
        (the first spelling is kept; duplicates compare case-insensitively)."""
        return tuple(map(self.names.__getitem__, self.parse_ids(text)))


def parse_tags(text: str, underscores: str = "spaces") -> tuple[str, ...]:
    """Tags of one caption text (see `TagParser.parse`)."""
    return TagParser(underscores).parse(text)


def escape_tag(tag: str) -> str:
    """Escape parentheses the way A1111 prompts read them literally: `(` → `\\(`."""
    if ("(" not in tag and ")" not in tag) or _WEIGHTED.match(tag):
        return tag
    return tag.replace("(", "\\(").replace(")", "\\)")


def format_caption(tags: list[str] | tuple[str, ...], separator: str, escape: bool) -> str:
    """The caption file's text: one line, tags joined by the separator, ending in LF."""
    if escape:
        tags = [escape_tag(t) for t in tags]
    return separator.join(tags) + "\n"


def pack_ids(ids: Iterable[int]) -> bytes:
    """Tag ids as 4 little-endian bytes each (how sources are kept, in memory and state)."""
    packed = array("I", ids)
    if sys.byteorder != "little":  # pragma: no cover - the state's byte order is fixed
        packed.byteswap()
    return packed.tobytes()


def unpack_ids(packed: bytes) -> array:
    """The ids `pack_ids` packed."""
    ids = array("I", packed)
    if sys.byteorder != "little":  # pragma: no cover
        ids.byteswap()
    return ids
