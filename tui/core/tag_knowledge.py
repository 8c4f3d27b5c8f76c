"""Built-in tag knowledge: which bucket a common Danbooru-style tag suggests.

The knowledge itself is data, in ``tui/core/data/tag_families.toml``: families of tags (hair,
eyes, expression, place, ...), each with a bucket and a one-line reason. The file header
documents the format and the matching order; this module only loads, validates and applies it.

Matching order (see the data file for the full description):

1. normalise the tag (:func:`normalise_tag`);
2. a tag listed exactly in a family's ``tags`` belongs to that family;
3. otherwise, among the families whose ``patterns`` match and whose ``except`` list does not,
   the highest ``priority`` wins (ties: the family written first);
4. otherwise the tag is unknown (``None``).

Stdlib only; never imports Textual.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

# A family may suggest any bucket (``unsorted`` is never suggested).
from tui.core.buckets import BUCKETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


DATA_PACKAGE = "tui.core.data"
DATA_FILE = "tag_families.toml"

_FAMILY_KEYS = frozenset({"name", "bucket", "reason", "priority", "tags", "patterns", "except"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TagKnowledgeError(ValueError):
    """The tag knowledge data is malformed (raised at load time, never by classify)."""


@dataclass(frozen=True)
class FamilyMatch:
    """The suggestion for one tag: its bucket, the family that claimed it, and why."""

    bucket: str
    """``"trait"``, ``"context"``, ``"flaw"`` or ``"drop"``."""
    family: str
    """Family name, e.g. ``"hair"`` or ``"expression"``."""
    reason: str
    """One line for the user, e.g. ``"hair colour/style: part of the character's ..."``."""


def normalise_tag(tag: str) -> str:
    """Return ``tag`` in the form the knowledge is written in.

    Trims, lower-cases, unescapes ``\\(`` and ``\\)``, turns underscores into spaces unless the
    tag is an emoticon of at most 3 characters (``^_^``, ``o_o``, ``>_<``) and collapses runs
    of whitespace.
    """
    text = tag.strip().lower().replace("\\(", "(").replace("\\)", ")")
    if len(text) > 3:
        text = text.replace("_", " ")
    return " ".join(text.split())


def _glob_regex(glob: str) -> str:
    """Translate a glob whose only special character is ``*`` into a regex source."""
    return ".*".join(re.escape(part) for part in glob.split("*"))


def _compile_alternatives(globs: Iterable[str]) -> re.Pattern[str] | None:
    """Compile globs into one regex meant for ``fullmatch``; ``None`` when there are none."""
    sources = sorted({_glob_regex(glob) for glob in globs})
    if not sources:
        return None
    return re.compile("|".join(f"(?:{source})" for source in sources))


class TagKnowledge:
    """Validated, indexed tag families; :meth:`classify` maps a tag to a :class:`FamilyMatch`."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        """Build the indexes from parsed TOML data; raise :class:`TagKnowledgeError` if invalid."""
        unknown = set(data) - {"vocab", "family"}
        if unknown:
            raise TagKnowledgeError(f"unknown top-level keys: {sorted(unknown)}")
        self._vocab = self._read_vocab(data.get("vocab", {}))
        raw_families = data.get("family", [])
        if not isinstance(raw_families, list) or not raw_families:
            raise TagKnowledgeError("no [[family]] tables")

        parsed = [self._read_family(index, raw) for index, raw in enumerate(raw_families)]
        names = [family["name"] for family in parsed]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise TagKnowledgeError(f"family names used twice: {duplicates}")

        # Rank 0 is tried first: highest priority, then file order (sort is stable).
        ordered = sorted(parsed, key=lambda family: -family["priority"])
        self._matches: tuple[FamilyMatch, ...] = tuple(
            FamilyMatch(bucket=family["bucket"], family=family["name"], reason=family["reason"])
            for family in ordered
        )
        self._exact: dict[str, int] = {}
        self._literal: dict[str, list[int]] = {}
        self._suffix: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        self._excluded: list[re.Pattern[str] | None] = []
        regex_families: list[tuple[int, re.Pattern[str]]] = []

        for rank, family in enumerate(ordered):
            for tag in family["tags"]:
                owner = self._exact.setdefault(tag, rank)
                if owner != rank:
                    raise TagKnowledgeError(
                        f"tag {tag!r} listed in both {self._matches[owner].family!r} "
                        f"and {family['name']!r}"
                    )
            other_globs: list[str] = []
            for pattern in family["patterns"]:
                if self._index_simple_pattern(pattern, rank):
                    continue
                other_globs.append(pattern)
            regex = _compile_alternatives(other_globs)
            if regex is not None:
                regex_families.append((rank, regex))
            self._excluded.append(_compile_alternatives(family["except"]))
        self._regex_families = tuple(regex_families)

    @classmethod
    def from_toml(cls, text: str) -> TagKnowledge:
        """Parse TOML text (same format as the built-in data file)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise TagKnowledgeError(f"invalid TOML: {error}") from error
        return cls(data)

    @property
    def families(self) -> tuple[FamilyMatch, ...]:
        """Every family, in matching-priority order (highest first)."""
        return self._matches

    def classify(self, tag: str) -> FamilyMatch | None:
        """Return the family ``tag`` belongs to, or ``None`` if no family claims it."""
        text = normalise_tag(tag)
        if not text:
            return None
        rank = self._exact.get(text)
        if rank is not None:
            return self._matches[rank]

        candidates: list[int] = list(self._literal.get(text, ()))
        space = text.find(" ")
        while space >= 0:
            candidates.extend(self._suffix.get(text[space + 1 :], ()))
            candidates.extend(self._prefix.get(text[:space], ()))
            space = text.find(" ", space + 1)

        best = len(self._matches)
        for rank in sorted(set(candidates)):
            if not self._is_excluded(rank, text):
                best = rank
                break
        for rank, regex in self._regex_families:
            if rank >= best:
                break
            if regex.fullmatch(text) and not self._is_excluded(rank, text):
                best = rank
                break
        return self._matches[best] if best < len(self._matches) else None

    def _is_excluded(self, rank: int, text: str) -> bool:
        excluded = self._excluded[rank]
        return excluded is not None and excluded.fullmatch(text) is not None

    def _index_simple_pattern(self, pattern: str, rank: int) -> bool:
        """Index ``x``, ``* x`` and ``x *`` patterns in dicts; False for any other shape."""
        stars = pattern.count("*")
        if stars == 0:
            index, key = self._literal, pattern
        elif stars == 1 and pattern.startswith("* ") and len(pattern) > 2:
            index, key = self._suffix, pattern[2:]
        elif stars == 1 and pattern.endswith(" *") and len(pattern) > 2:
            index, key = self._prefix, pattern[:-2]
        else:
            return False
        owners = index.setdefault(key, [])
        if rank not in owners:
            owners.append(rank)
        return True

    @staticmethod
    def _read_vocab(raw: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise TagKnowledgeError("[vocab] must be a table of word lists")
        vocab: dict[str, tuple[str, ...]] = {}
        for name, words in raw.items():
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise TagKnowledgeError(f"vocab {name!r} must be a list of strings")
            for word in words:
                if normalise_tag(word) != word or "*" in word or "{" in word:
                    raise TagKnowledgeError(f"vocab {name!r}: {word!r} is not a plain word")
            vocab[name] = tuple(words)
        return vocab

    def _expand(self, entry: str, where: str) -> list[str]:
        """Expand ``{placeholders}`` in ``entry`` into every combination of vocab words."""
        parts = _PLACEHOLDER.split(entry)  # literal, name, literal, name, ..., literal
        literals, names = parts[0::2], parts[1::2]
        if not names:
            return [entry]
        for name in names:
            if name not in self._vocab:
                raise TagKnowledgeError(f"{where}: unknown placeholder {{{name}}} in {entry!r}")
        expanded = []
        for words in itertools.product(*(self._vocab[name] for name in names)):
            pieces = [literals[0]]
            for word, literal in zip(words, literals[1:], strict=True):
                pieces += [word, literal]
            expanded.append("".join(pieces))
        return expanded

    def _read_family(self, index: int, raw: object) -> dict[str, Any]:
        where = f"family #{index + 1}"
        if not isinstance(raw, dict):
            raise TagKnowledgeError(f"{where} must be a table")
        unknown = set(raw) - _FAMILY_KEYS
        if unknown:
            raise TagKnowledgeError(f"{where}: unknown keys {sorted(unknown)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TagKnowledgeError(f"{where}: missing name")
        where = f"family {name!r}"
        bucket = raw.get("bucket")
        if bucket not in BUCKETS:
            raise TagKnowledgeError(f"{where}: bucket must be one of {BUCKETS}, not {bucket!r}")
        reason = raw.get("reason")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            raise TagKnowledgeError(f"{where}: reason must be one non-empty line")
        priority = raw.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TagKnowledgeError(f"{where}: priority must be an integer")

        lists: dict[str, list[str]] = {}
        for key in ("tags", "patterns", "except"):
            entries = raw.get(key, [])
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise TagKnowledgeError(f"{where}: {key} must be a list of strings")
            expanded = [item for entry in entries for item in self._expand(entry, where)]
            for item in expanded:
                if normalise_tag(item) != item:
                    raise TagKnowledgeError(
                        f"{where}: {item!r} in {key} is not normalised "
                        f"(write {normalise_tag(item)!r})"
                    )
                if key == "tags" and "*" in item:
                    raise TagKnowledgeError(f"{where}: exact tag {item!r} contains '*'")
            if key == "tags" and len(set(expanded)) != len(expanded):
                twice = sorted({item for item in expanded if expanded.count(item) > 1})
                raise TagKnowledgeError(f"{where}: tags listed twice: {twice}")
            lists[key] = expanded
        return {
            "name": name,
            "bucket": bucket,
            "reason": reason.strip(),
            "priority": priority,
            **lists,
        }


@functools.lru_cache(maxsize=1)
def load_knowledge() -> TagKnowledge:
    """Load the built-in knowledge from the package data (cached after the first call)."""
    text = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return TagKnowledge.from_toml(text)


@functools.lru_cache(maxsize=65536)
def classify_tag(tag: str) -> FamilyMatch | None:
    """Suggest a bucket for ``tag`` from the built-in knowledge; ``None`` if unknown.

    ``tag`` is written with spaces as users write it; matching is case-insensitive and
    underscores are accepted (``long_hair``), except in emoticons of at most 3 characters
    (``^_^`` stays as is).
    """
    return load_knowledge().classify(tag)


QUALIFIERS_FILE = "qualifiers.toml"
_QUALIFIED = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<qualifier>[^()]+)\)$")


@functools.lru_cache(maxsize=1)
def general_qualifiers() -> frozenset[str]:
    """Danbooru's common qualifiers of general tags (``weapon`` in ``bow (weapon)``), from
    ``tui/core/data/qualifiers.toml``."""
    text = resources.files(DATA_PACKAGE).joinpath(QUALIFIERS_FILE).read_text(encoding="utf-8")
    return frozenset(q.casefold() for q in tomllib.loads(text).get("general", ()))


def is_character_tag(tag: str, characters: Collection[str] | None = None) -> bool:
    """Whether ``tag`` names a character: in ``characters`` (the tags a WD14 model puts in its
    character category, when scores are known; given case-folded, with spaces), or shaped
    ``name (series)`` with a series in the parentheses rather than one of Danbooru's general
    qualifiers (``bow (weapon)``). Case-insensitive; underscores count as spaces."""
    key = tag.replace("_", " ").strip().casefold()
    if characters is not None and key in characters:
        return True
    return _shaped_like_character(key)


@functools.lru_cache(maxsize=65536)
def _shaped_like_character(key: str) -> bool:
    match = _QUALIFIED.match(key)
    if match is None or not match["name"].strip():
        return False
    return match["qualifier"].strip() not in general_qualifiers()
