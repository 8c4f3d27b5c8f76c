"""The query language that finds images by their tags (`lora-curator find`, the app's `/`).

Grammar (loosest binding first)::

    query  := item ("," item)*          AND; empty items are ignored ("a, , b" = "a, b")
    item   := unary ("|" unary)*        OR: binds tighter than ","
    unary  := "-" unary | atom          NOT
    atom   := "(" query ")" | qualifier | '"' literal '"' | term

A **term** is a tag, matched against the image's tags as the strategy sees them (after aliases
and per-image edits, before the pattern removes anything). Matching ignores case, collapses
runs of whitespace and treats `_` as a space (except in emoticons of three characters or less,
as captions are read), so `Black_Hair` finds `black hair`. `*` inside a term matches any run of
characters (`* hair`, `*uniform*`); `-*` finds images without any tag. A term spelled like an
alias source (`gray pants` with the alias `gray pants = grey pants`) finds its target, and the
strategy's trigger finds every image, since every rendered caption starts with it (a
wildcard expands over the dataset's tags only).

**Qualifiers** (their words are case-insensitive):

- `name:GLOB`: the file name (`name:*_0?.png`); a glob holding `/` matches the path relative
  to the dataset (`name:10_kaede/*`). `*`, `?` and `[...]` as in the shell, case-insensitive.
- `folder:GLOB`: the image's folder relative to the dataset, or any one of its parts
  (`folder:10_*` finds `10_kaede/extra/x.png`); `folder:.` is the dataset's own folder.
- `bucket:B`: has a tag in bucket B (`trait`, `context`, `flaw`, `drop` or `unsorted`).
- `changed` (its caption file will change on save), `flagged` (it or its caption has a problem).
- `tags<N`, `tags>N`, `tags=N`: its number of tags.
- `concept:NAME` (with concepts) and `score:TAG<X`, `score:TAG>X` (with tagger scores; a tag
  the tagger gave no score counts as 0).

**Real tags hold the operators' characters**; these rules let a caption fragment pasted as a
query find the image it came from:

- `,` always separates (no tag holds one; quote it: `"a, b"`).
- `(` opens a group only where a term would start; inside a term it is part of the tag, with
  its `)`: `kaede (blue archive), bow (weapon)`. A `)` that closes no `(` of its term closes
  the group when there is one, else it is part of the tag (`;)`, `>:)`).
- `-` negates only at the start of a term, and not an emoticon: `-` followed by `_` or `.`,
  or a short term that ends in `-` too (`-_-`, `-.-`, `-3-`). `t-shirt` is a tag. Before a
  quote or a `(` it always negates: `-"-_-"`, `-(a | b)`.
- `|` is OR, except right after one of `_ : ; < \\ |` or right before one of `_ > / |`:
  then it is part of the tag (`:|`, `;|`, `|_|`, `<|>_<|>`); `smile|:d` is OR.
- `:`, `<`, `>` are plain characters (`:d`, `re:zero`, `>_<`) unless the item starts with a
  qualifier word: `name:`, `folder:`, `bucket:`, `concept:`, `score:`, or is exactly
  `changed`, `flagged` or `tags<N` (quote such a tag: `"changed"`).
- `"..."` at the start of a term quotes it: nothing inside is an operator nor a wildcard;
  `\\"` and `\\\\` inside stand for `"` and `\\`. A quote not followed by the end of the term
  is a plain character (`"pour la justice" (genshin impact)`).
- Outside quotes, `\\` makes the next `( ) , | * " - \\` a plain character (so `kaede
  \\(blue archive\\)` from a caption written with escaped parentheses still matches); before
  anything else it is itself (`\\m/`).

A malformed query raises `QueryError`, which names the 1-based column and what was expected.

Evaluation is set algebra over an inverted index (`TagIndex`): each tag key maps to the ids of
its images, and a set of images is a *bytemap*, a Python int with one byte (0 or 1) per image,
so AND, OR and NOT are single C-level integer operations on 100k images. Wildcards are
expanded over the distinct tags; qualifiers are evaluated over per-image facts cached on first
use.
"""

from __future__ import annotations

import fnmatch
import re
from array import array
from bisect import bisect_left
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, compress, islice, repeat
from operator import lt, rshift, sub

from tui.core.captions import normalize_tag
from tui.core.postings import PackedTags, unpacked

BUCKET_NAMES = ("trait", "context", "flaw", "drop", "unsorted")

# Characters that, right before or right after a `|`, make it part of an emoticon tag rather
# than OR: `:|`, `;|`, `|_|`, `<|>_<|>`, `\\||/` (and not `smile|:d`, which is OR).
_GLUE_BEFORE = frozenset("_:;<\\|")
_GLUE_AFTER = frozenset("_>/|")
# Characters a backslash makes plain outside quotes.
_ESCAPABLE = frozenset('(),|*"-\\')
# A wildcard inside a term while it is normalised (a private-use character no tag holds).
_WILD = "\ue000"
_QUALIFIER = re.compile(r"(name|folder|bucket|concept|score):", re.IGNORECASE)
_COUNT = re.compile(r"tags\s*([<>=])\s*([0-9]+)", re.IGNORECASE)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SCORE = re.compile(rf"(.*?)\s*([<>])\s*({_NUMBER})\s*", re.DOTALL)
_SCORE_TAIL = re.compile(rf"\s*([<>])\s*({_NUMBER})\s*")
_EMOTICON_DASH = re.compile(r"-[_.].*|-\S{0,3}-", re.DOTALL)


class QueryError(ValueError):
    """A query that cannot be read or evaluated: `column` (1-based) and what was wrong."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


def tag_key(tag: str) -> str:
    """The key a tag is matched by: normalised as captions are read (whitespace collapsed,
    `\\(` unescaped, `_` as a space except in emoticons), then case-folded."""
    return normalize_tag(tag, "spaces").casefold()


# ---- syntax tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A tag (`pattern` set when it holds a wildcard)."""

    key: str
    column: int
    pattern: str | None = None  # a regex over tag keys


@dataclass(frozen=True)
class Not:
    operand: Node
    column: int


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]
    column: int


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]
    column: int


@dataclass(frozen=True)
class Qualifier:
    """`kind` is name, folder, bucket, concept, score, changed, flagged or tags; `value` the
    glob, bucket, concept or tag key; `op` and `number` the comparison of tags/score."""

    kind: str
    column: int
    value: str = ""
    op: str = ""
    number: float = 0.0


Node = Term | Not | And | Or | Qualifier


def _show(ch: str) -> str:
    """One character of the query for an error message (never a raw control character)."""
    return repr(ch) if ch.isprintable() else ascii(ch)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.depth = 0  # open groups

    def error(self, at: int, message: str) -> QueryError:
        return QueryError(at + 1, message)

    def found(self) -> str:
        return "the end" if self.i >= self.n else _show(self.s[self.i])

    def skip_ws(self) -> None:
        s, n = self.s, self.n
        while self.i < n and s[self.i].isspace():
            self.i += 1

    def at(self, ch: str) -> bool:
        return self.i < self.n and self.s[self.i] == ch

    def pipe_is_operator(self, pos: int) -> bool:
        s = self.s
        before = s[pos - 1] if pos > 0 else " "
        after = s[pos + 1] if pos + 1 < self.n else " "
        return before not in _GLUE_BEFORE and after not in _GLUE_AFTER

    def at_operator_pipe(self) -> bool:
        return self.at("|") and self.pipe_is_operator(self.i)

    def parse(self) -> Node:
        node = self.query()
        self.skip_ws()
        if self.i < self.n:
            raise self.error(self.i, f"expected ',', '|' or the end, found {self.found()}")
        return node

    def query(self) -> Node:
        start = self.i
        items: list[Node] = []
        while True:
            self.skip_ws()
            if self.i >= self.n or (self.at(")") and self.depth):
                break
            if self.at(","):
                self.i += 1
                continue
            items.append(self.item())
            self.skip_ws()
            if self.at(","):
                self.i += 1
                continue
            break
        if len(items) == 1:
            return items[0]
        return And(tuple(items), start + 1)

    def item(self) -> Node:
        start = self.i
        operands = [self.unary()]
        while True:
            self.skip_ws()
            if not self.at_operator_pipe():
                break
            self.i += 1
            operands.append(self.unary("after '|'"))
        return operands[0] if len(operands) == 1 else Or(tuple(operands), start + 1)

    def unary(self, after: str = "") -> Node:
        self.skip_ws()
        if self.at("-") and (
            self.s[self.i + 1 : self.i + 2] in ('"', "(")
            or not _EMOTICON_DASH.fullmatch(self.peek_bare())
        ):
            start = self.i
            self.i += 1
            return Not(self.unary("after '-'"), start + 1)
        return self.atom(after)

    def peek_bare(self) -> str:
        """The raw text of the bare term starting here (nothing consumed)."""
        saved = self.i
        chars, _ = self.scan_bare()
        self.i = saved
        return "".join(ch for ch, _ in chars)

    def atom(self, after: str) -> Node:
        self.skip_ws()
        start = self.i
        expected = f"expected a tag or a qualifier{' ' + after if after else ''}"
        closes = self.at(")") and self.depth > 0  # at the top level `)` is part of a tag
        if self.i >= self.n or self.at(",") or self.at_operator_pipe() or closes:
            raise self.error(self.i, f"{expected}, found {self.found()}")
        if self.at("("):
            self.i += 1
            self.depth += 1
            self.skip_ws()
            if self.at(")"):
                raise self.error(self.i, "expected a tag or a qualifier inside '( )'")
            node = self.query()
            self.skip_ws()
            if not self.at(")"):
                raise self.error(
                    self.i, f"expected ')' to close the '(' of column {start + 1}, "
                    f"found {self.found()}"
                )  # fmt: skip
            self.i += 1
            self.depth -= 1
            return node
        if self.at('"'):
            quoted = self.try_quoted()
            if quoted is not None:
                return _term([(ch, True) for ch in quoted], start)
        match = _QUALIFIER.match(self.s, self.i)
        if match:
            self.i = match.end()
            return self.qualifier(match.group(1).lower(), start)
        chars, _ = self.scan_bare()
        text = "".join(ch for ch, _ in chars).strip()
        word = text.lower()
        if word in ("changed", "flagged") and all(not lit for _, lit in chars):
            return Qualifier(word, start + 1)
        count = _COUNT.fullmatch(text)
        if count:
            return Qualifier("tags", start + 1, op=count.group(1), number=int(count.group(2)))
        if re.match(r"tags\s*[<>=]", word):
            raise self.error(start, "expected a whole number after 'tags<', 'tags>' or 'tags='")
        return _term(chars, start)

    def try_quoted(self) -> str | None:
        """A quoted term at self.i (consumed), or None when the quote is a plain character
        (what follows the closing quote is not the end of the term)."""
        s, n = self.s, self.n
        text, j = self.quoted_text()
        k = j + 1
        while k < n and s[k].isspace():
            k += 1
        if k < n and s[k] not in ",)" and not (s[k] == "|" and self.pipe_is_operator(k)):
            return None
        self.i = j + 1
        return text

    def quoted_text(self) -> tuple[str, int]:
        """The text of the quote opening at self.i (escapes resolved) and where it closes;
        an error when it never does."""
        s, n = self.s, self.n
        j = self.i + 1
        out: list[str] = []
        while j < n:
            ch = s[j]
            if ch == "\\" and j + 1 < n and s[j + 1] in '"\\':
                out.append(s[j + 1])
                j += 2
                continue
            if ch == '"':
                return "".join(out), j
            out.append(ch)
            j += 1
        raise self.error(self.i, "expected a closing '\"' for this quote")

    def scan_bare(self) -> tuple[list[tuple[str, bool]], int]:
        """Characters of a bare term from self.i (consumed) with whether each was escaped,
        and where it started."""
        s, n = self.s, self.n
        start = self.i
        out: list[tuple[str, bool]] = []
        inner = 0  # parentheses opened inside this term
        i = self.i
        while i < n:
            ch = s[i]
            if ch == "\\" and i + 1 < n and s[i + 1] in _ESCAPABLE:
                out.append((s[i + 1], True))
                i += 2
                continue
            if ch == ",":
                break
            if ch == "|" and self.pipe_is_operator(i):
                break
            if ch == "(":
                inner += 1
            elif ch == ")":
                if inner:
                    inner -= 1
                elif self.depth:
                    break
            out.append((ch, False))
            i += 1
        while out and out[-1][0].isspace() and not out[-1][1]:
            out.pop()
        self.i = i
        return out, start

    def qualifier_value(self, kind: str, start: int) -> tuple[str, int]:
        """The raw text after `kind:` (a quoted value keeps its operators as plain
        characters) and the index it starts at."""
        at = self.i
        if self.at('"'):
            quoted = self.try_quoted()
            if quoted is not None:
                return quoted, at
        chars, _ = self.scan_bare()
        text = "".join(ch for ch, _ in chars).strip()
        if not text:
            raise self.error(at, f"expected a value after '{kind}:'")
        return text, at

    def qualifier(self, kind: str, start: int) -> Node:
        column = start + 1
        if kind == "score":
            return self.score(start)
        value, at = self.qualifier_value(kind, start)
        if kind == "bucket":
            bucket = value.lower()
            if bucket not in BUCKET_NAMES:
                raise self.error(at, f"expected a bucket: {', '.join(BUCKET_NAMES)}")
            return Qualifier("bucket", column, bucket)
        if kind == "concept":
            return Qualifier("concept", column, value.casefold())
        return Qualifier(kind, column, value.casefold())  # name, folder: globs

    def score(self, start: int) -> Node:
        at = self.i
        if self.at('"'):
            # A quoted tag, then the comparison: `score:"a, b">0.5`.
            tag = self.read_quoted_anyway()
            tail_start = self.i
            chars, _ = self.scan_bare()
            tail = _SCORE_TAIL.fullmatch("".join(ch for ch, _ in chars))
            if not tail:
                raise self.error(tail_start, "expected '<' or '>' and a number after the tag")
            op, number = tail.group(1), tail.group(2)
            key = tag_key(tag)
        else:
            chars, _ = self.scan_bare()
            text = "".join(ch for ch, _ in chars)
            match = _SCORE.fullmatch(text)
            if not match or not match.group(1).strip():
                raise self.error(at, "expected a tag, '<' or '>' and a number: score:TAG>0.5")
            op, number = match.group(2), match.group(3)
            key = _term([(ch, False) for ch in match.group(1)], at).key
        return Qualifier("score", start + 1, key, op, float(number))

    def read_quoted_anyway(self) -> str:
        text, j = self.quoted_text()
        self.i = j + 1
        return text


def _term(chars: Sequence[tuple[str, bool]], start: int) -> Term:
    """A term from its characters (escaped or quoted ones are plain)."""
    raw = "".join(_WILD if ch == "*" and not plain else ch for ch, plain in chars)
    key = tag_key(raw)
    if not key:
        raise QueryError(start + 1, "expected a tag, found only spaces")
    if _WILD not in key:
        return Term(key, start + 1)
    pattern = ".*".join(re.escape(part) for part in key.split(_WILD))
    return Term(key.replace(_WILD, "*"), start + 1, pattern)


@lru_cache(maxsize=256)
def parse_query(text: str) -> Node | None:
    """The syntax tree of a query; None for an empty query (it matches every image).

    Raises `QueryError` naming the column and what was expected."""
    if not text.strip(" \t,"):
        return None
    parser = _Parser(text)
    node = parser.parse()
    return node


def quote_term(tag: str) -> str:
    """A query term that finds exactly this tag (quoted when it holds an operator)."""
    try:
        node = parse_query(tag)
    except QueryError:
        node = None
    plain = "\\" not in tag  # a backslash may escape what follows it in the query
    if plain and isinstance(node, Term) and node.pattern is None and node.key == tag_key(tag):
        return tag
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _kept(postings: dict[str, list[int]], order: Iterable[str]) -> dict[str, array]:
    """The posting lists as the index keeps them, in `order`: arrays of 4-byte ids, half
    the memory of lists of ints (30 million ids at a million images)."""
    return {key: array("I", postings[key]) for key in order}


def _index_tags(
    tags: Iterable[Sequence[str]], n: int
) -> tuple[dict[str, array], dict[str, str], list[int]]:
    """Posting lists (tag key → ascending image ids, keys in order of first appearance), each
    key's first spelling, and each image's number of distinct keys, from tags as strings."""
    # Each image's id is appended once per distinct key: ids stay ascending per key.
    key_of: dict[str, str] = {}
    postings: dict[str, list[int]] = {}
    spelling: dict[str, str] = {}
    counts = [0] * n
    for i, image_tags in enumerate(tags):
        distinct = 0
        for tag in image_tags:
            key = key_of.get(tag)
            if key is None:
                key = key_of[tag] = tag_key(tag)
                spelling.setdefault(key, tag)
            ids = postings.get(key)
            if ids is None:
                postings[key] = [i]
            elif ids[-1] != i:
                ids.append(i)
            else:
                continue
            distinct += 1
        counts[i] = distinct
    return _kept(postings, postings), spelling, counts


def _index_packed(
    tags: PackedTags,
) -> tuple[dict[str, array], dict[str, str], list[int]]:
    """What `_index_tags` makes, the same, from packed ids: the posting lists are made per
    id in C (`id_postings`) and only the few keys several ids share ("Smile", "smile") are
    merged; the order of the keys and the first spellings come from the images that hold
    each key first."""
    names, packed = tags.names, tags.packed
    ids_of: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        ids_of.setdefault(tag_key(name), []).append(i)
    lists = tags.postings()
    counts = list(map(rshift, map(len, packed), repeat(2)))
    postings: dict[str, list[int]] = {}
    single: dict[str, int] = {}  # keys one id holds: that id
    shared: dict[str, list[int]] = {}  # keys several ids hold ("Smile", "smile"): those ids
    for key, ids in ids_of.items():
        present = [i for i in ids if lists[i]]
        if len(present) == 1:
            postings[key] = lists[present[0]]
            single[key] = present[0]
        elif present:
            shared[key] = present
            merged = Counter(chain.from_iterable(lists[i] for i in present))
            if len(merged) != sum(len(lists[i]) for i in present):
                for image, times in merged.items():  # an image holding two of them
                    if times > 1:
                        counts[image] -= times - 1
            postings[key] = sorted(merged)
    # The keys that first appear in one image, in their order there (of a shared key, its
    # first id there is its first spelling).
    by_first: dict[int, list[str]] = {}
    for key, ids in postings.items():
        by_first.setdefault(ids[0], []).append(key)
    place: dict[str, tuple[int, int]] = {}
    spelling: dict[str, str] = {}
    for image, keys in by_first.items():
        if len(keys) == 1 and keys[0] in single:
            place[keys[0]] = (image, 0)
            continue
        at = {i: p for p, i in enumerate(unpacked([packed[image]]))}
        for key in keys:
            held = [i for i in shared.get(key, [single.get(key, -1)]) if i in at]
            first = min(held, key=at.__getitem__)
            place[key] = (image, at[first])
            spelling[key] = names[first]
    ordered = sorted(postings, key=place.__getitem__)
    spelling = {key: spelling[key] if key in spelling else names[single[key]] for key in ordered}
    return _kept(postings, ordered), spelling, counts


# ---- the index ----------------------------------------------------------------------------------

ImageSet = Collection[str] | Callable[[str], bool]
ScoreSource = Mapping[str, Mapping[str, float]] | Callable[[str], Mapping[str, float] | None]


class _Lru(OrderedDict):
    """A small least-recently-used cache of bytemaps (each is one byte per image): at most
    `size` of them, and at most `budget` bytes (at a million images a bytemap is 1 MB)."""

    def __init__(self, size: int, budget: int = 48 << 20) -> None:
        super().__init__()
        self.size, self.budget, self.held = size, budget, 0

    def fetch(self, key: object, make: Callable[[], int]) -> int:
        hit = self.get(key)
        if hit is None:
            hit = self[key] = make()
            self.held += _bytes_of(hit)
            while len(self) > 1 and (len(self) > self.size or self.held > self.budget):
                self.held -= _bytes_of(self.popitem(last=False)[1])
        else:
            self.move_to_end(key)
        return hit

    def __delitem__(self, key: object) -> None:
        self.held -= _bytes_of(self[key])
        super().__delitem__(key)

    def clear(self) -> None:
        super().clear()
        self.held = 0


def _bytes_of(bytemap: int) -> int:
    return (bytemap.bit_length() + 7) >> 3


# A union of tags is evaluated as the user types (no worker) when it sets at most this many
# ids one by one (~2-4 ms) and ORs at most this many kept bitmaps (then one bytemap of them:
# ~3 ms at a million images).
QUICK_IDS = 150_000
QUICK_BITMAPS = 512
QUICK_KEYS = 20_000  # tags a wildcard is matched against in a frame (~5 ms of regex)


def _glob_regex(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob), re.DOTALL)


class TagIndex:
    """Images by their tags, for queries: build once per dataset, match on every keystroke.

    `images` are the image paths (relative, `/` separators) in the order results come back;
    `tags[i]` the tags of `images[i]` as the strategy sees them (aliases and per-image edits
    applied), or the same as `PackedTags` (ids into a table of tags: built in C, the same
    index). Optional facts: `buckets` (tag → bucket, or a function; tags without one are
    unsorted), `aliases` (tag → the tag it is written as, applied to the query's terms),
    `trigger` (a term that finds every image), `changed` and `flagged` (image paths, or a
    predicate), `concepts` (concept name → image paths) and `scores` (image → tag → tagger
    score, or a function). A qualifier whose facts were not given is a `QueryError`.
    """

    def __init__(
        self,
        images: Sequence[str],
        tags: Iterable[Sequence[str]] | PackedTags,
        *,
        buckets: Mapping[str, str] | Callable[[str], str] | None = None,
        aliases: Mapping[str, str] | None = None,
        trigger: str = "",
        changed: ImageSet | None = None,
        flagged: ImageSet | None = None,
        concepts: Mapping[str, Collection[str]] | None = None,
        scores: ScoreSource | None = None,
    ) -> None:
        self.images = list(images)
        n = self.n = len(self.images)
        # An image's place: found by bisection when the images are sorted (the app's index
        # is), so no map of every image is kept (~60 MB at a million); else by `position`.
        self._sorted = all(map(lt, self.images, islice(self.images, 1, None)))
        self._position: dict[str, int] | None = None
        if isinstance(tags, PackedTags):
            postings, spelling, counts = _index_packed(tags)
        else:
            postings, spelling, counts = _index_tags(tags, n)
        self.postings = postings
        self.spelling = spelling  # key → the first spelling seen
        self.counts = array("I", counts)  # each image's distinct keys (4 bytes, not 8)
        self.keys = list(postings)
        self.all = int.from_bytes(b"\x01" * n, "little")
        self.aliases = {tag_key(k): tag_key(v) for k, v in (aliases or {}).items()}
        self.trigger_key = tag_key(trigger) if trigger.strip() else ""
        self._buckets = buckets
        self._changed = changed
        self._flagged = flagged
        self._concepts = (
            {name.casefold(): (name, members) for name, members in concepts.items()}
            if concepts is not None
            else None
        )
        self._scores = scores
        self._cache = _Lru(128)
        self._wild: dict[str, list[str]] = {}  # pattern -> the keys it fits (`_wild_keys`)
        # The tags on at least 1/64 of the images, made now and kept as bitmaps (`_bits`: an
        # eighth of a bytemap; ~4 MB at 100k images, 37 MB at a million): any single tag is
        # then cheap, and they hold most ids of a wildcard.
        self._bit_bytes = (n + 7) // 8  # the bytes of a bitmap
        self._mask = int.from_bytes(b"\x01" * self._bit_bytes, "little")
        self._frequent_floor = max(n // 64, 32)
        self._frequent = {
            key: self._bits([ids])
            for key, ids in postings.items()
            if len(ids) >= self._frequent_floor
        }
        # bucket:, built on first use: each tag key's bucket, and per bucket how many of
        # each image's tags are in it, kept up to date as tags move (`set_buckets`).
        self._key_bucket: dict[str, str] | None = None
        self._bucket_counts: dict[str, list[int]] = {}
        self._names: list[str] | None = None
        self._paths: list[str] | None = None
        self._folders: dict[str, list[int]] | None = None
        self._score_maps: list[dict[str, float]] | None = None

    # ---- facts that change while curating ---------------------------------------------------

    def set_buckets(
        self,
        buckets: Mapping[str, str] | Callable[[str], str] | None,
        moved: Iterable[str] | None = None,
    ) -> None:
        """New buckets (the user sorted tags). `moved` names the tags whose bucket may have
        changed (None: any): only their images are counted again."""
        self._buckets = buckets
        self._forget("bucket")
        key_bucket = self._key_bucket
        if key_bucket is None:
            return
        bucket_of = self._bucket_lookup()
        if moved is None:
            keys: Iterable[str] = self.keys
        else:
            keys = {self.aliases.get(tag_key(t), tag_key(t)) for t in moved}
        counts = self._bucket_counts
        for key in keys:
            if key not in key_bucket:
                continue
            old, new = key_bucket[key], bucket_of(self.spelling[key])
            if old == new:
                continue
            key_bucket[key] = new
            before, after = counts[old], counts.setdefault(new, [0] * self.n)
            for i in self.postings[key]:
                before[i] -= 1
                after[i] += 1

    def set_changed(self, changed: ImageSet | None) -> None:
        self._changed = changed
        self._forget("changed")

    def set_flagged(self, flagged: ImageSet | None) -> None:
        self._flagged = flagged
        self._forget("flagged")

    def _forget(self, kind: str) -> None:
        for key in [k for k in self._cache if isinstance(k, tuple) and k[0] == kind]:
            del self._cache[key]

    # ---- matching -----------------------------------------------------------------------------

    def match(self, query: str | Node | None) -> list[str]:
        """The images a query finds, in index order."""
        return self.images_of(self.evaluate(query))

    def images_of(self, found: int) -> list[str]:
        """The images of a bytemap (`evaluate`), in index order: one pass in C."""
        return list(compress(self.images, found.to_bytes(self.n, "little")))

    def match_ids(self, query: str | Node | None) -> list[int]:
        """The ids (positions in `images`) of what a query finds, ascending."""
        found = self.evaluate(query)
        return list(compress(range(self.n), found.to_bytes(self.n, "little")))

    def is_quick(self, query: str | Node | None) -> bool:
        """Whether evaluating `query` needs no pass over the images: plain tags (posting
        lists), wildcards over at most `QUICK_KEYS` tags that name few enough ids
        (`_cheap_union`), and parts already evaluated (kept in the cache). A malformed
        query is quick too (its error comes from the parser)."""
        try:
            node = parse_query(query) if isinstance(query, str) else query
        except QueryError:
            return True
        return node is None or self._quick(node)

    def _quick(self, node: Node) -> bool:
        if isinstance(node, Term):
            pattern = node.pattern
            if pattern is None or ("wild", pattern) in self._cache:
                return True
            # A wildcard other than `*`: quick when the tags it names are few enough ids
            # (frequent tags are one OR each; the rest are one byte set per id).
            return (
                pattern != ".*"
                and len(self.keys) <= QUICK_KEYS
                and self._cheap_union(self._wild_keys(pattern))
            )
        if isinstance(node, (And, Or)):
            return all(self._quick(operand) for operand in node.operands)
        if isinstance(node, Not):
            return self._quick(node.operand)
        if node.kind == "tags":
            return ("tags", node.op, node.number) in self._cache
        if node.kind in ("name", "folder", "bucket"):
            return (node.kind, node.value) in self._cache
        if node.kind in ("changed", "flagged"):
            return (node.kind,) in self._cache
        if node.kind == "score":
            return ("score", node.value, node.op, node.number) in self._cache
        return False  # a concept: its members are looked up (cheap, but not kept here)

    def count(self, query: str | Node | None) -> int:
        """How many images a query finds."""
        return self.evaluate(query).bit_count()

    def evaluate(self, query: str | Node | None) -> int:
        """A query's images as a bytemap: byte i of the int is 1 when image i matches."""
        node = parse_query(query) if isinstance(query, str) else query
        if node is None:
            return self.all
        return self._eval(node)

    def _eval(self, node: Node) -> int:
        if isinstance(node, Term):
            return self._term(node)
        if isinstance(node, And):
            result = self.all
            for operand in node.operands:
                result &= self._eval(operand)
                if not result:
                    # Still evaluate the rest: an error in them must not depend on the data.
                    for rest in node.operands:
                        self._check(rest)
                    break
            return result
        if isinstance(node, Or):
            result = 0
            for operand in node.operands:
                result |= self._eval(operand)
            return result
        if isinstance(node, Not):
            return self.all ^ self._eval(node.operand)
        return self._qualifier(node)

    def _check(self, node: Node) -> None:
        """Raise the `QueryError` a qualifier without its facts would (nothing else)."""
        if isinstance(node, (And, Or)):
            for operand in node.operands:
                self._check(operand)
        elif isinstance(node, Not):
            self._check(node.operand)
        elif isinstance(node, Qualifier):
            self._qualifier(node)

    def _marks(self, id_lists: Iterable[Sequence[int]], size: int) -> bytearray:
        marks = bytearray(size)
        put = marks.__setitem__
        for ids in id_lists:
            deque(map(put, ids, repeat(1)), 0)  # in C: one byte per id
        return marks

    def _bytemap(self, id_lists: Iterable[Sequence[int]]) -> int:
        return int.from_bytes(self._marks(id_lists, self.n), "little")

    def _bits(self, id_lists: Iterable[Sequence[int]]) -> int:
        """A bitmap of these ids: bit i is image i. Each eighth of the marks (ids k, k+8,
        ...) is an int of 0/1 bytes; shifted by k they lie in disjoint bits."""
        marks = self._marks(id_lists, self._bit_bytes * 8)
        bits = 0
        for k in range(8):
            bits |= int.from_bytes(marks[k::8], "little") << k
        return bits

    def _bytemap_of_bits(self, bits: int) -> int:
        """The bytemap of a bitmap (`_bits`): bit k of each of its bytes is spread to every
        eighth byte from k, a slice assignment in C."""
        size = self._bit_bytes
        out = bytearray(size * 8)
        mask = self._mask
        for k in range(8):
            out[k::8] = ((bits >> k) & mask).to_bytes(size, "little")
        return int.from_bytes(out, "little")

    def _wild_keys(self, pattern: str) -> list[str]:
        """The tag keys a wildcard's pattern fits (a pass over the keys, kept for the
        patterns seen last: `is_quick` and `evaluate` of one query share it)."""
        keys = self._wild.get(pattern)
        if keys is None:
            if len(self._wild) >= 64:
                self._wild.clear()
            fits = re.compile(pattern, re.DOTALL).fullmatch
            keys = self._wild[pattern] = list(filter(fits, self.keys))
        return keys

    def _cheap_union(self, keys: Iterable[str]) -> bool:
        """Whether `_union` of these keys is a few milliseconds at most at any size."""
        postings, floor = self.postings, self._frequent_floor
        rare = frequent = 0
        for key in keys:
            size = len(postings[key])
            if size >= floor:
                frequent += 1
            else:
                rare += size
            if rare > QUICK_IDS or frequent > QUICK_BITMAPS:
                return False
        return True

    def _union(self, keys: Iterable[str]) -> int:
        """The images having any of these tags: frequent tags by their kept bitmaps (one
        integer OR each, made a bytemap once), the rest by their ids."""
        postings, frequent, floor = self.postings, self._frequent, self._frequent_floor
        bits = 0
        rare: list[array] = []
        for key in keys:
            ids = postings[key]
            if len(ids) >= floor:
                bits |= frequent[key]  # every such tag's bitmap is made with the index
            else:
                rare.append(ids)
        found = self._bytemap_of_bits(bits) if bits else 0
        return found | self._bytemap(rare) if rare else found

    def _term(self, term: Term) -> int:
        if term.pattern is None:
            key = self.aliases.get(term.key, term.key)
            if self.trigger_key and key == self.trigger_key:
                return self.all
            if key not in self.postings:
                return 0
            return self._cache.fetch(("tag", key), lambda: self._union([key]))
        pattern = term.pattern
        if pattern == ".*":  # `*`: any tag at all
            return self._cache.fetch(
                ("wild", pattern),
                lambda: int.from_bytes(bytes(map(bool, self.counts)), "little"),
            )

        def expand() -> int:
            return self._union(self._wild_keys(pattern))

        # Only the dataset's tags: the trigger is no tag of its own (`-*`: images without tags).
        return self._cache.fetch(("wild", pattern), expand)

    def _qualifier(self, q: Qualifier) -> int:
        kind = q.kind
        if kind == "tags":
            return self._cache.fetch(("tags", q.op, q.number), lambda: self._count(q))
        if kind == "name":
            return self._cache.fetch(("name", q.value), lambda: self._name(q.value))
        if kind == "folder":
            return self._cache.fetch(("folder", q.value), lambda: self._folder(q.value))
        if kind == "bucket":
            return self._cache.fetch(("bucket", q.value), lambda: self._bucket(q.value))
        if kind in ("changed", "flagged"):
            source = self._changed if kind == "changed" else self._flagged
            if source is None:
                raise QueryError(q.column, f"'{kind}' is not known here")
            return self._cache.fetch((kind,), lambda: self._image_set(source))
        if kind == "concept":
            return self._concept(q)
        return self._score(q)

    def _count(self, q: Qualifier) -> int:
        n = int(q.number)
        test = {"<": n.__gt__, ">": n.__lt__, "=": n.__eq__}[q.op]
        return int.from_bytes(bytes(map(test, self.counts)), "little")

    def _name(self, glob: str) -> int:
        if "/" in glob:
            if self._paths is None:
                self._paths = [p.casefold() for p in self.images]
            values = self._paths
        else:
            if self._names is None:
                self._names = [p.rsplit("/", 1)[-1].casefold() for p in self.images]
            values = self._names
        if not any(ch in glob for ch in "?["):
            # The usual globs in C string methods (a regex per name costs a frame at 100k).
            parts = glob.split("*")
            if len(parts) == 1:
                ids = [i for i, v in enumerate(values) if v == glob]
                return self._bytemap([ids])
            if len(parts) == 2:
                head, tail = parts
                hits = bytes(map(str.startswith, values, repeat(head)))
                if tail:
                    ends = bytes(map(str.endswith, values, repeat(tail)))
                    # A name shorter than head + tail cannot hold both apart.
                    long = bytes(map(len(head + tail).__le__, map(len, values)))
                    return (
                        int.from_bytes(hits, "little")
                        & int.from_bytes(ends, "little")
                        & int.from_bytes(long, "little")
                    )
                return int.from_bytes(hits, "little")
            if len(parts) == 3 and not parts[0] and not parts[2]:
                inside = bytes(map(str.__contains__, values, repeat(parts[1])))
                return int.from_bytes(inside, "little")
        fits = _glob_regex(glob).match
        return int.from_bytes(bytes(map(bool, map(fits, values))), "little")

    def _folder(self, glob: str) -> int:
        if self._folders is None:
            folders: dict[str, list[int]] = {}
            for i, path in enumerate(self.images):
                folder = path.rsplit("/", 1)[0].casefold() if "/" in path else "."
                folders.setdefault(folder, []).append(i)
            self._folders = folders
        fits = _glob_regex(glob).match
        chosen = [
            ids
            for folder, ids in self._folders.items()
            if fits(folder) or any(map(fits, folder.split("/")))
        ]
        return self._bytemap(chosen)

    def _bucket_lookup(self) -> Callable[[str], str]:
        lookup = self._buckets
        if lookup is None:
            return lambda _tag: "unsorted"
        if callable(lookup):
            return lookup
        folded = {tag_key(t): b for t, b in lookup.items()}
        return lambda tag: folded.get(tag_key(tag), "unsorted")

    def _bucket(self, bucket: str) -> int:
        if self._key_bucket is None:
            bucket_of = self._bucket_lookup()
            self._key_bucket = {key: bucket_of(self.spelling[key]) for key in self.keys}
            grouped: dict[str, list[str]] = {}
            for key, b in self._key_bucket.items():
                grouped.setdefault(b, []).append(key)
            postings = self.postings
            sizes = {b: sum(len(postings[k]) for k in keys) for b, keys in grouped.items()}
            # The bucket holding the most ids is counted as what the others leave.
            largest = max(sizes, key=sizes.__getitem__, default=None)
            rest = list(self.counts)
            for b, keys in grouped.items():
                if b == largest:
                    continue
                counts = self._bucket_counts[b] = [0] * self.n
                for key in keys:
                    for i in postings[key]:
                        counts[i] += 1
                rest = list(map(sub, rest, counts))
            if largest is not None:
                self._bucket_counts[largest] = rest
        counts = self._bucket_counts.get(bucket)
        if counts is None:
            return 0
        return int.from_bytes(bytes(map(bool, counts)), "little")

    def _image_set(self, source: ImageSet) -> int:
        if callable(source):
            return int.from_bytes(bytes(map(bool, map(source, self.images))), "little")
        if self._sorted and len(source) <= self.n // 64:
            places = map(self.place, source)
            return self._bytemap([[i for i in places if i is not None]])
        position = self.position
        return self._bytemap([[position[p] for p in source if p in position]])

    @property
    def position(self) -> dict[str, int]:
        """Each image's place in `images`, as a map (made on first use, then kept)."""
        if self._position is None:
            self._position = {image: i for i, image in enumerate(self.images)}
        return self._position

    def place(self, image: str) -> int | None:
        """The place of `image` in `images` (None: not indexed)."""
        if not self._sorted:
            return self.position.get(image)
        i = bisect_left(self.images, image)
        return i if i < self.n and self.images[i] == image else None

    def _concept(self, q: Qualifier) -> int:
        if self._concepts is None:
            raise QueryError(q.column, "no concepts in this strategy")
        hit = self._concepts.get(q.value)
        if hit is None:
            names = sorted((name for name, _ in self._concepts.values()), key=str.casefold)
            known = ", ".join(names) or "none"
            raise QueryError(q.column, f"no concept named {q.value!r} (concepts: {known})")
        name, members = hit
        return self._cache.fetch(("concept", name), lambda: self._image_set(members))

    def _score(self, q: Qualifier) -> int:
        if self._scores is None:
            raise QueryError(q.column, "no tagger scores: run lora-curator tag first")
        if self._score_maps is None:
            source = self._scores
            maps: list[dict[str, float]] = []
            for image in self.images:
                raw = source(image) if callable(source) else source.get(image)
                maps.append({tag_key(t): float(s) for t, s in (raw or {}).items()})
            self._score_maps = maps
        key, limit = q.value, q.number

        def compute() -> int:
            if "*" in key:
                # A wildcard in a score: the image's best score among the tags it fits.
                term = _term([(ch, False) for ch in key], q.column - 1)
                fits = re.compile(term.pattern or re.escape(term.key), re.DOTALL).fullmatch
                values = [
                    max((s for t, s in m.items() if fits(t)), default=0.0)
                    for m in self._score_maps or []
                ]
            else:
                values = [m.get(key, 0.0) for m in self._score_maps or []]
            test = limit.__gt__ if q.op == "<" else limit.__lt__
            return int.from_bytes(bytes(map(test, values)), "little")

        return self._cache.fetch(("score", key, q.op, limit), compute)


@dataclass(frozen=True)
class IndexSource:
    """What `workspace_index` reads from an open `Workspace`, read at once (`index_source`):
    `build()` needs the workspace no more, so it can run in another thread while the
    workspace is edited (the index is then of the workspace as it was when read)."""

    images: list[str]  # sorted by path
    tags: PackedTags  # their tags as the strategy sees them (aliases already applied)
    buckets: Callable[[str], str]
    aliases: dict[str, str]
    trigger: str
    changed: Callable[[str], bool]  # asked when a query says `changed`, not while building
    flagged: frozenset[str]

    def build(self) -> TagIndex:
        return TagIndex(
            self.images,
            self.tags,
            buckets=self.buckets,
            aliases=self.aliases,
            trigger=self.trigger,
            changed=self.changed,
            flagged=self.flagged,
        )


def index_source(ws: object) -> IndexSource:
    """Read from an open `Workspace` what its `TagIndex` is built of: its images sorted by
    path, their tags as its strategy sees them (as interned ids: no `str` per image x tag),
    `changed` as a save would find it, `flagged` from its problems."""
    from tui.core.workspace import Workspace  # the query language itself needs none of it

    assert isinstance(ws, Workspace)
    strategy = ws.strategy
    images = sorted(e.image for e in ws.images)
    names, packed = ws.tag_ids(images)
    problem_paths = {p.path for p in ws.problems}
    flagged = (
        frozenset(
            image
            for image in images
            if image in problem_paths or ws.by_image[image].caption in problem_paths
        )
        if problem_paths
        else frozenset()
    )
    return IndexSource(
        images,
        PackedTags(list(map(strategy.alias_of, names)), packed),
        buckets=strategy.bucket_of,
        aliases=dict(strategy.aliases),
        trigger=strategy.trigger,
        changed=ws.will_change,
        flagged=flagged,
    )


def build_index(source: IndexSource) -> TagIndex:
    """The index of what `index_source` read (any thread)."""
    return source.build()


def workspace_index(ws: object) -> TagIndex:
    """A `TagIndex` of an open `Workspace`, with its images sorted by path: tags as its
    strategy sees them, `changed` as a save would find it, `flagged` from its problems."""
    return index_source(ws).build()
