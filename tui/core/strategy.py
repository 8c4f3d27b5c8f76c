"""Buckets, patterns and rendering: the strategy that turns source tags into a caption.

`render(source_tags, strategy)` is a pure function; everything else in the engine feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from tui.core.buckets import BUCKETS, PATTERNS, REMOVED_BY_PATTERN, UNSORTED
from tui.core.captions import format_caption
from tui.core.implied import implied_by
from tui.core.tagger.settings import TaggerSettings

# Re-exported: the bucket and pattern names have always been importable from here.
__all__ = [
    "BUCKETS",
    "ORDERS",
    "PATTERNS",
    "REMOVED_BY_PATTERN",
    "UNSORTED",
    "UNSORTED_MODES",
    "CaptionFormat",
    "Renderer",
    "Strategy",
    "TagFate",
    "render",
]

UNSORTED_MODES = ("keep", "drop")
ORDERS = ("source", "alphabetical", "frequency")


@dataclass(frozen=True)
class CaptionFormat:
    """How a caption file is named and written."""

    extension: str = ".txt"
    separator: str = ", "
    underscores: str = "spaces"
    escape_parentheses: bool = False
    order: str = "source"
    # Remove, per image, a tag that a more specific tag of the image implies (tui/core/implied.py).
    drop_implied: bool = False


@dataclass(frozen=True)
class Concept:
    """One outfit (or any look) of a multi-concept LoRA: its own trigger and buckets.

    An image belongs to the concept when it lies under one of `folders` (relative to the
    dataset, '/' separators) or carries one of `tags`. Inside the concept a tag's bucket is
    the concept's when `buckets` names it, else the strategy's; `pattern` (empty: the
    strategy's) decides what the caption keeps.
    """

    name: str
    trigger: str = ""
    folders: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    pattern: str = ""
    buckets: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def bucket_index(self) -> dict[str, str]:
        return {t.casefold(): b for t, b in self.buckets.items()}

    @cached_property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(t.casefold() for t in self.tags)

    def holds_folder(self, image: str) -> bool:
        """Whether the image (relative path) lies under one of the concept's folders."""
        return any(image.startswith(f.rstrip("/") + "/") for f in self.folders if f)

    def tags_in(self, bucket: str) -> list[str]:
        """The concept's own tags of one bucket, in the order they were added."""
        return [t for t, b in self.buckets.items() if b == bucket]


@dataclass(frozen=True)
class Strategy:
    """A character's strategy: what a profile TOML holds.

    `buckets` maps a tag to its bucket; lookups are case-insensitive (see `bucket_of`).
    """

    name: str = ""
    trigger: str = ""
    pattern: str = "keep-all"
    unsorted: str = "keep"
    buckets: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    caption: CaptionFormat = field(default_factory=CaptionFormat)
    suggest: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    checks: Mapping[str, float] = field(default_factory=dict)
    concepts: tuple[Concept, ...] = ()
    # How stored tagger scores become source tags (the profile's [tagger] table).
    tagger: TaggerSettings = field(default_factory=TaggerSettings)

    # Case-insensitive lookup tables, derived once per (frozen) strategy.
    @cached_property
    def bucket_index(self) -> dict[str, str]:
        return {t.casefold(): b for t, b in self.buckets.items()}

    @cached_property
    def alias_index(self) -> dict[str, str]:
        return {t.casefold(): a for t, a in self.aliases.items()}

    def bucket_of(self, tag: str) -> str:
        """The bucket of a tag, `unsorted` when it is in none."""
        return self.bucket_index.get(tag.casefold(), UNSORTED)

    def alias_of(self, tag: str) -> str:
        """The tag that `tag` is written as (itself when it has no alias)."""
        return self.alias_index.get(tag.casefold(), tag)

    def effective_bucket(self, tag: str, concept: Concept | None = None) -> str:
        """The bucket a source tag counts in: that of the tag it is written as (its alias),
        inside `concept` the concept's when it names the tag."""
        written = self.alias_of(tag)
        if concept is not None:
            own = concept.bucket_index.get(written.casefold())
            if own is not None:
                return own
        return self.bucket_of(written)

    def tags_in(self, bucket: str) -> list[str]:
        """Tags of one bucket, in the order they were added."""
        return [t for t, b in self.buckets.items() if b == bucket]

    def concept_named(self, name: str) -> Concept | None:
        return next((c for c in self.concepts if c.name == name), None)

    def concepts_of(self, image: str, tags: Iterable[str]) -> list[Concept]:
        """Every concept the image belongs to (by folder or by one of its tags), in the
        order the strategy lists them; the first one renders it."""
        if not self.concepts:
            return []
        keys: set[str] | None = None
        out = []
        for concept in self.concepts:
            if concept.holds_folder(image):
                out.append(concept)
                continue
            if concept.tags:
                if keys is None:
                    keys = {self.alias_of(t).casefold() for t in tags} | {
                        t.casefold() for t in tags
                    }
                if not concept.tag_keys.isdisjoint(keys):
                    out.append(concept)
        return out


@dataclass(frozen=True)
class TagFate:
    """What the strategy does with one source tag."""

    tag: str  # as written (after aliases)
    bucket: str
    kept: bool


class Renderer:
    """Renders many images with one strategy; per-tag decisions are computed once.

    `frequency` (tag → number of images) is needed only for `order = "frequency"`.
    """

    def __init__(
        self,
        strategy: Strategy,
        frequency: Mapping[str, int] | None = None,
        concept: Concept | None = None,
    ) -> None:
        self.strategy = strategy
        self.concept = concept
        self.frequency = frequency or {}
        self._fates: dict[str, TagFate] = {}
        pattern = strategy.pattern
        # The character trigger, then the concept's: each once, first in the caption.
        triggers = [strategy.trigger]
        if concept is not None:
            pattern = concept.pattern or pattern
            triggers.append(concept.trigger)
        self.triggers: list[str] = []
        for trigger in triggers:
            if trigger and trigger.casefold() not in {t.casefold() for t in self.triggers}:
                self.triggers.append(trigger)
        self.pattern = pattern
        self._removed = REMOVED_BY_PATTERN[pattern]
        self._keep_unsorted = strategy.unsorted == "keep"
        self._trigger_keys = {t.casefold() for t in self.triggers}
        self.drop_implied = strategy.caption.drop_implied

    def implied(self, source_tags: Iterable[str]) -> dict[str, str]:
        """The tags of one image that `drop_implied` removes: tag as written (after aliases)
        → the more specific tag of the image that implies it; {} when the option is off.

        Decided per image, after aliases and before the pattern: `shirt` goes when the image
        has `orange shirt`, whichever bucket either is in."""
        if not self.drop_implied:
            return {}
        fates = self._fates
        return implied_by([(fates.get(t) or self.fate(t)).tag for t in source_tags])

    def fate(self, tag: str) -> TagFate:
        """The bucket of a source tag and whether the caption keeps it."""
        hit = self._fates.get(tag)
        if hit is None:
            written = self.strategy.alias_of(tag)
            bucket = self.strategy.effective_bucket(tag, self.concept)
            kept = self._keep_unsorted if bucket == UNSORTED else bucket not in self._removed
            hit = TagFate(written, bucket, kept)
            self._fates[tag] = hit
        return hit

    def caption_tags(self, source_tags: Iterable[str]) -> list[str]:
        """The tags of the caption, trigger first, in the strategy's order."""
        fates = self._fates
        seen = set(self._trigger_keys)
        out: list[str] = []
        if self.drop_implied:
            source_tags = list(source_tags)
            seen.update(t.casefold() for t in self.implied(source_tags))
        for tag in source_tags:
            f = fates.get(tag) or self.fate(tag)
            if not f.kept:
                continue
            key = f.tag.casefold()
            if key in seen:
                continue
            seen.add(key)
            out.append(f.tag)
        order = self.strategy.caption.order
        if order == "alphabetical":
            out.sort(key=str.casefold)
        elif order == "frequency":
            freq = self.frequency
            out.sort(key=lambda t: (-freq.get(t, 0), t.casefold()))
        if self.triggers:
            out[:0] = self.triggers
        return out

    def render(self, source_tags: Iterable[str]) -> str:
        """The caption text for these source tags; "" when nothing is left (never written)."""
        tags = self.caption_tags(source_tags)
        if not tags:
            return ""
        fmt = self.strategy.caption
        return format_caption(tags, fmt.separator, fmt.escape_parentheses)


def render(
    source_tags: Iterable[str],
    strategy: Strategy,
    frequency: Mapping[str, int] | None = None,
    concept: Concept | None = None,
) -> str:
    """Render one image's caption: the bucket × pattern table (tui/core/buckets.py, explained
    in tui/ARCHITECTURE.md, "The domain"), trigger first.

    Returns the file's text (one line ending in LF), or "" when no tag is left: such an image
    is reported as an "empty caption" and its file is never written.
    """
    return Renderer(strategy, frequency, concept).render(source_tags)
