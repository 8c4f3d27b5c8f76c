"""Suggested buckets: a bucket and a one-line reason for every unsorted tag.

Precedence (the first that has an answer wins):

1. the profile's explicit buckets: such a tag is not unsorted, so it gets no suggestion;
2. the profile's own rules, its ``[suggest]`` table of glob patterns per bucket;
3. the built-in knowledge of tag families (:mod:`tui.core.tag_knowledge`);
4. dataset statistics: a tag of no known family on nearly every image is probably part of the
   character's look (``trait``), otherwise it varies between images (``context``).

Steps 2 and 3 depend on the tag alone and are cached per tag (per set of rules), so the app can
call :func:`suggest_buckets` after every key press on a dataset of thousands of tags.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fnmatch import translate

from tui.core.profile import CHECK_DEFAULTS
from tui.core.strategy import UNSORTED, Strategy
from tui.core.tag_knowledge import classify_tag, is_character_tag, normalise_tag

SOURCES = ("rule", "knowledge", "statistics")
"""Where a suggestion comes from, strongest first."""

# Rules are compiled once per distinct `[suggest]` table; a few profiles are in use at a time.
_RULE_SETS_CACHED = 16
# Bound of the per-tag cache of one rule set (a dataset has a few thousand distinct tags).
_TAGS_CACHED = 200_000
_MISSING = object()


@dataclass(frozen=True)
class Suggestion:
    """The bucket suggested for one unsorted tag, and why."""

    tag: str
    """The tag to put in the bucket: the dataset's tag as written after aliases."""
    bucket: str
    """``"trait"``, ``"context"``, ``"flaw"`` or ``"drop"``."""
    reason: str
    """One line for the user, e.g. ``profile rule "* hair" → trait``."""
    source: str
    """``"rule"``, ``"knowledge"`` or ``"statistics"``."""


def trait_share(strategy: Strategy) -> float:
    """The share of images from which statistics suggest ``trait`` for a tag of no family.

    It is the profile's ``inconsistent_trait`` threshold (default 80%): a tag suggested as a
    trait by statistics is never reported as an inconsistent trait by ``lora-curator check``.
    """
    return float(strategy.checks.get("inconsistent_trait", CHECK_DEFAULTS["inconsistent_trait"]))


def percent(count: int, total: int) -> int:
    """``count`` out of ``total`` as a whole percentage, rounded down (0 when total is 0).

    Rounded down so that a share under a threshold never prints as the threshold itself.
    """
    return count * 100 // total if total > 0 else 0


class _RuleSet:
    """A profile's ``[suggest]`` globs, compiled, with per-tag caches of the answers."""

    def __init__(self, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self.rules = tuple(
            (bucket, glob, re.compile(translate(glob.casefold()), re.DOTALL))
            for bucket, globs in rules
            for glob in globs
        )
        self._cache: dict[str, Suggestion | None] = {}
        self._stats: dict[tuple[str, int, bool], Suggestion] = {}

    def static(self, tag: str) -> Suggestion | None:
        """The suggestion from the rules or the knowledge (None when neither knows the tag)."""
        hit = self._cache.get(tag, _MISSING)
        if hit is _MISSING:
            hit = self._compute(tag)
            if len(self._cache) >= _TAGS_CACHED:
                self._cache.clear()
            self._cache[tag] = hit
        return hit  # type: ignore[return-value]

    def _compute(self, tag: str) -> Suggestion | None:
        if self.rules:
            folded = tag.casefold()
            forms = (folded,) if normalise_tag(tag) == folded else (folded, normalise_tag(tag))
            for bucket, glob, regex in self.rules:
                if any(regex.match(form) for form in forms):
                    return Suggestion(tag, bucket, f'profile rule "{glob}" → {bucket}', "rule")
        match = classify_tag(tag)
        if match is not None:
            return Suggestion(tag, match.bucket, match.reason, "knowledge")
        return None

    def statistics(self, tag: str, count: int, total_images: int, share: float) -> Suggestion:
        """The suggestion from the tag's share of images (for a tag no rule or family knows)."""
        pct = percent(count, total_images)
        trait = total_images > 0 and count >= share * total_images
        key = (tag, pct, trait)
        hit = self._stats.get(key)
        if hit is None:
            if trait:
                reason = f"on {pct}% of images: probably part of the character's look"
            else:
                reason = f"on {pct}% of images: varies between images"
            hit = Suggestion(tag, "trait" if trait else "context", reason, "statistics")
            if len(self._stats) >= _TAGS_CACHED:
                self._stats.clear()
            self._stats[key] = hit
        return hit


@functools.lru_cache(maxsize=_RULE_SETS_CACHED)
def _rule_set(rules: tuple[tuple[str, tuple[str, ...]], ...]) -> _RuleSet:
    return _RuleSet(rules)


def implied_suggestion(tag: str, count: int, implied: tuple[int, str]) -> Suggestion | None:
    """``drop`` for a generic tag that a more specific tag implies on most of its images
    (``implied``: on how many, and by which tag most often, see
    :func:`tui.core.implied.implied_counts`); None when it stands alone on half or more."""
    n, implier = implied
    if count <= 0 or n * 2 <= count:
        return None
    return Suggestion(
        tag,
        "drop",
        f"implied by a more specific tag on {percent(min(n, count), count)}% of its images "
        f"(e.g. {implier}): it teaches nothing that tag does not",
        "knowledge",
    )


def character_suggestion(tag: str, trigger: str) -> Suggestion:
    """The suggestion for the character's own name tag (``kaede (blue archive)``): ``drop``
    when a trigger is set, for the trigger takes its place; without one ``trait`` (never
    ``context``: kept in every caption it would bind the character like a second trigger)."""
    if trigger:
        return Suggestion(
            tag,
            "drop",
            f"the character's own name tag: the trigger {trigger} takes its place",
            "knowledge",
        )
    return Suggestion(
        tag,
        "trait",
        "the character's own name tag: set a trigger and drop it (the trigger takes its place)",
        "knowledge",
    )


def suggest_buckets(
    counts: Mapping[str, int],
    total_images: int,
    strategy: Strategy,
    implied: Mapping[str, tuple[int, str]] | None = None,
    characters: Collection[str] | None = None,
) -> dict[str, Suggestion]:
    """Suggest a bucket for every unsorted tag of a dataset.

    ``counts`` maps each tag of the dataset to the number of images it is on (as
    ``Workspace.tag_counts()`` gives it) and ``total_images`` is the number of images. A tag
    is unsorted when ``strategy.effective_bucket(tag)`` is ``"unsorted"``; the
    result has one entry for each, keyed like ``counts``, and none for the other tags.

    Rules of the profile (``strategy.suggest``: bucket → globs) are tried in the order the
    profile lists them, first match wins; globs are ``fnmatch`` patterns matched
    case-insensitively against the tag as written after aliases (and against its
    underscore-free form). Statistics use the tag's share of images, counting together the
    tags that aliases write the same way.

    ``implied`` (from :func:`tui.core.implied.implied_counts`, keyed by the tag as written)
    adds, after the profile's rules, ``drop`` for a generic tag that a more specific tag of
    the same image implies on most of the images it is on.

    The character's own name tag (``kaede (blue archive)``, or one of ``characters``: the
    tags a WD14 model puts in its character category) is suggested ``drop`` when the
    strategy has a trigger (:func:`character_suggestion`), after the profile's rules.
    """
    character_keys = (
        frozenset(c.replace("_", " ").casefold() for c in characters) if characters else None
    )
    rules = tuple((bucket, tuple(globs)) for bucket, globs in strategy.suggest.items())
    rule_set = _rule_set(rules)
    aliases = strategy.alias_index
    buckets = strategy.bucket_index
    share = trait_share(strategy)
    merged: dict[str, int] | None = None  # written tag (casefold) → images, when aliases merge
    out: dict[str, Suggestion] = {}
    for tag, count in counts.items():
        written = aliases.get(tag.casefold(), tag) if aliases else tag
        if buckets.get(written.casefold(), UNSORTED) != UNSORTED:
            continue
        suggestion = rule_set.static(written)
        if (suggestion is None or suggestion.source != "rule") and is_character_tag(
            written, character_keys
        ):
            out[tag] = character_suggestion(written, strategy.trigger)
            continue
        if implied and (suggestion is None or suggestion.source != "rule"):
            hit = implied.get(written)
            if hit is not None:
                suggestion = implied_suggestion(written, count, hit) or suggestion
        if suggestion is None:
            if aliases:
                if merged is None:
                    merged = {}
                    for other, n in counts.items():
                        key = aliases.get(other.casefold(), other).casefold()
                        merged[key] = merged.get(key, 0) + n
                count = min(merged[written.casefold()], total_images)
            suggestion = rule_set.statistics(written, count, total_images, share)
        out[tag] = suggestion
    return out
