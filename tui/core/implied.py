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

from tui.core.postings import PackedTags, unpacked

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


def implied_counts_ids(
    tags: PackedTags, aliases: Mapping[str, str] | None = None
) -> dict[str, tuple[int, str]]:
    """`implied_counts` of images given as packed tag ids (`Workspace.tag_ids`): the same
    result, worked per pair of tags (a generic one and one that implies it) over the images
    holding both, instead of per image x tag.

    Per image, `implied_by` names the image's first spelling of a tag and, of several tags
    implying it, the first one: an image where that order matters (two impliers of one tag,
    or two spellings of one key) is counted by `implied_by` itself, the others by set sizes.
    """
    names, packed = tags.names, tags.packed
    written = [aliases.get(t.casefold(), t) for t in names] if aliases else list(names)
    spell_id: dict[str, int] = {}
    spell_of = [spell_id.setdefault(w, len(spell_id)) for w in written]  # id → spelling
    spellings = list(spell_id)
    key_id: dict[str, int] = {}
    key_of = [key_id.setdefault(_key(s), len(key_id)) for s in spellings]  # spelling → key
    # generic key → the keys that imply it (each once), from the vocabulary alone
    impliers: dict[int, dict[int, None]] = {}
    for k, key in enumerate(key_id):
        for generic in _candidates(key):
            g = key_id.get(generic)
            if g is not None:
                impliers.setdefault(g, {})[k] = None
    if not impliers:
        return {}
    wanted = set(impliers).union(*impliers.values())
    ids = [i for i, s in enumerate(spell_of) if key_of[s] in wanted]
    # Only those ids' images (a few of the vocabulary's), unless the whole table is made.
    lists = tags.postings(ids)
    spell_sets: dict[int, set[int]] = {}
    for i in ids:
        if lists[i]:
            spell_sets.setdefault(spell_of[i], set()).update(lists[i])
    key_spellings: dict[int, list[int]] = {}
    for s in spell_sets:
        key_spellings.setdefault(key_of[s], []).append(s)
    # Images whose order matters, counted one by one below.
    hard: set[int] = set()
    key_sets: dict[int, set[int]] = {}
    for k, same in key_spellings.items():
        if len(same) == 1:
            key_sets[k] = spell_sets[same[0]]
            continue
        union: set[int] = set()
        for s in same:
            hard |= union & spell_sets[s]
            union |= spell_sets[s]
        key_sets[k] = union
    pairs: list[tuple[int, int, set[int]]] = []
    for g, ks in impliers.items():
        on = key_sets.get(g)
        if not on:
            continue
        covered: set[int] = set()
        for k in ks:
            both = on & key_sets.get(k, set())
            if both:
                hard |= covered & both
                covered |= both
                pairs.append((g, k, both))
    seen: dict[str, int] = {}
    by: dict[str, dict[str, int]] = {}

    def add(tag: str, implier: str, n: int) -> None:
        seen[tag] = seen.get(tag, 0) + n
        counts = by.setdefault(tag, {})
        counts[implier] = counts.get(implier, 0) + n

    for g, k, both in pairs:
        for sg in key_spellings[g]:
            for sk in key_spellings[k]:
                common = both
                if len(key_spellings[g]) > 1:
                    common = common & spell_sets[sg]
                if len(key_spellings[k]) > 1:
                    common = common & spell_sets[sk]
                n = len(common) - len(common & hard) if hard else len(common)
                if n:
                    add(spellings[sg], spellings[sk], n)
    for image in hard:
        tags = [spellings[spell_of[i]] for i in unpacked([packed[image]])]
        for tag, implier in implied_by(tags).items():
            add(tag, implier, 1)
    return {
        tag: (n, max(by[tag].items(), key=lambda kv: (kv[1], kv[0]))[0]) for tag, n in seen.items()
    }


def workspace_implied(
    ws: object, aliases: Mapping[str, str] | None = None
) -> dict[str, tuple[int, str]]:
    """`implied_counts` over every image of an open `Workspace` (its tags as `image_tags`
    has them, written after `aliases`, default the strategy's)."""
    from tui.core.workspace import Workspace  # implied tags themselves need none of it

    assert isinstance(ws, Workspace)
    names, packed = ws.tag_ids(e.image for e in ws.images)
    if aliases is None:
        aliases = ws.strategy.alias_index
    return implied_counts_ids(PackedTags(names, packed), aliases)
