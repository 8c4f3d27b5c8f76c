"""Implied tags: a generic tag beside a more specific one that says it already.

WD14 taggers write ``shirt`` beside ``orange shirt`` and ``thighhighs`` beside ``black
thighhighs``: the generic tag teaches nothing the specific one does not, and under absorb it
leaks what the trigger should have absorbed. A tag ``X`` is implied on an image by another
tag of the same image when

- the other tag ends in ``X`` after a space (the structural rule: ``orange shirt`` → ``shirt``),
- or the project's implication data (``tui/core/data/implications.toml``) says so, for pairs
  the wording does not show (``serafuku`` → ``school uniform``).

Tags compare case-insensitively, underscores as spaces. :func:`implied_by` is per image and
depends on the image's tags only, so the renderer calls it on the tags after aliases.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA_PACKAGE = "tui.core.data"
DATA_FILE = "implications.toml"


@functools.lru_cache(maxsize=200_000)
def _key(tag: str) -> str:
    return tag.replace("_", " ").strip().casefold()


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    text = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    table = data.get("implies", {})
    implies = {_key(tag): tuple(_key(g) for g in generic) for tag, generic in table.items()}
    not_after = frozenset(_key(w) for w in data.get("structural", {}).get("not_after", ()))
    return implies, not_after


def load_implications() -> Mapping[str, tuple[str, ...]]:
    """The project's implication data: specific tag → the generic tags it implies (keys
    and values case-folded, underscores as spaces); cached after the first call."""
    return _load()[0]


def _structural(key: str, not_after: frozenset[str]) -> bool:
    """Whether the structural rule applies to a tag: not when its first word makes it an
    action or an absence ("holding cup", "no shirt")."""
    first = key.split(" ", 1)[0]
    return first not in not_after and not first.endswith("ing")


@functools.lru_cache(maxsize=200_000)
def _candidates(key: str) -> tuple[str, ...]:
    """The tags that `key` (a case-folded tag) implies wherever they are beside it: every
    proper suffix after a space ("light blue shirt" → "blue shirt", "shirt"), then the data's.
    Cached: an image's check is then a few set lookups per tag."""
    data, not_after = _load()
    out: list[str] = []
    if _structural(key, not_after):
        start = key.find(" ")
        while start != -1:
            out.append(key[start + 1 :])
            start = key.find(" ", start + 1)
    out += [g for g in data.get(key, ()) if g != key]
    return tuple(out)


def implied_by(tags: Iterable[str]) -> dict[str, str]:
    """The tags of one image that another of its tags implies: implied tag → the tag that
    implies it (both as given in ``tags``), in the order of ``tags``.

    A tag never implies itself, and of two tags with the same key neither is removed by the
    other. When several tags imply one, the first of them in ``tags`` is named.
    """
    given: dict[str, str] = {}
    for tag in tags:
        given.setdefault(_key(tag), tag)
    if len(given) < 2:
        return {}
    out: dict[str, str] = {}
    for key, tag in given.items():
        for generic in _candidates(key):
            if generic in given and generic not in out:
                out[generic] = tag
    # In the image's order: the caption pane lists them so.
    return {tag: out[key] for key, tag in given.items() if key in out}


def implied_counts(
    images_tags: Iterable[Iterable[str]], aliases: Mapping[str, str] | None = None
) -> dict[str, tuple[int, str]]:
    """Over many images: tag → (number of images on which another of their tags implies it,
    the tag that implies it most often). Tags are taken as written after ``aliases``
    (case-folded keys, as ``Strategy.alias_index``), keyed as written."""
    seen: dict[str, int] = {}
    by: dict[str, dict[str, int]] = {}
    for tags in images_tags:
        written = [aliases.get(t.casefold(), t) for t in tags] if aliases else list(tags)
        for tag, implier in implied_by(written).items():
            seen[tag] = seen.get(tag, 0) + 1
            counts = by.setdefault(tag, {})
            counts[implier] = counts.get(implier, 0) + 1
    return {
        tag: (n, max(by[tag].items(), key=lambda kv: (kv[1], kv[0]))[0]) for tag, n in seen.items()
    }
