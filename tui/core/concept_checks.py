"""Diagnostics of a multi-concept strategy (tagging.md, "Several outfits"): what the article
implies goes wrong when several outfits share one LoRA.

The rules take plain inputs (the strategy, each image's tags as written after aliases, the
concepts of each image) so that they are tested without a dataset on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tui.core.export import folder_repeats
from tui.core.strategy import Concept, Strategy

# A concept outweighing another by more than this (images × repeats) dominates the trigger.
BALANCE_RATIO = 3.0
# A trait of one concept on at least this share of another concept's images is shared.
SHARED_TRAIT_SHARE = 0.5


@dataclass(frozen=True)
class ConceptFinding:
    """One diagnostic about the concepts (the fields of `checks.Finding`)."""

    kind: str
    severity: str
    message: str
    images: tuple[str, ...]
    tag: str = ""


def _names(concepts: Iterable[Concept]) -> str:
    return " and ".join(f'"{c.name}"' for c in concepts)


def concept_findings(
    strategy: Strategy,
    tags_by_image: Mapping[str, frozenset[str]],
    concepts_by_image: Mapping[str, list[Concept]],
    inconsistent_share: float,
) -> list[ConceptFinding]:
    """Every concept diagnostic. `tags_by_image` holds each image's tags as written after
    aliases, casefolded; `concepts_by_image` each image's concepts in the strategy's order."""
    if not strategy.concepts:
        return []
    findings: list[ConceptFinding] = []
    members: dict[str, list[str]] = {c.name: [] for c in strategy.concepts}
    overlaps: dict[tuple[str, ...], list[str]] = {}
    for image, concepts in concepts_by_image.items():
        if concepts:
            members[concepts[0].name].append(image)
        if len(concepts) > 1:
            overlaps.setdefault(tuple(c.name for c in concepts), []).append(image)
    for names, images in sorted(overlaps.items()):
        findings.append(
            ConceptFinding(
                "concept-overlap",
                "problem",
                f"{len(images)} image(s) belong to the concepts "
                f"{' and '.join(repr(n) for n in names)} (by folder or tag): each renders with "
                f'"{names[0]}", listed first; move the image or narrow the concepts\' tags',
                tuple(sorted(images)),
            )
        )
    all_tags: set[str] = set().union(*tags_by_image.values()) if tags_by_image else set()
    for concept in strategy.concepts:
        images = members[concept.name]
        trigger = concept.trigger.casefold()
        if trigger and trigger in all_tags:
            tagged = tuple(sorted(i for i, t in tags_by_image.items() if trigger in t))
            findings.append(
                ConceptFinding(
                    "concept-trigger-is-a-tag",
                    "problem",
                    f'the trigger of concept "{concept.name}", "{concept.trigger}", is also a '
                    f"tag on {len(tagged)} image(s): it means something there already; choose "
                    "a word no caption uses",
                    tagged,
                    concept.trigger,
                )
            )
        pattern = concept.pattern or strategy.pattern
        if pattern == "absorb" and images:
            for tag in concept.tags_in("trait"):
                key = tag.casefold()
                missing = tuple(sorted(i for i in images if key not in tags_by_image[i]))
                have = len(images) - len(missing)
                if missing and have < inconsistent_share * len(images):
                    findings.append(
                        ConceptFinding(
                            "concept-inconsistent-trait",
                            "problem",
                            f'trait "{tag}" of concept "{concept.name}" is on only {have} of '
                            f"its {len(images)} images: under absorb its trigger learns the "
                            "outfit both with and without it; tag it where it shows, or sort "
                            "it as context in the concept",
                            missing,
                            tag,
                        )
                    )
    findings += _shared_traits(strategy, tags_by_image, members)
    findings += _balance(strategy, members)
    return findings


def _shared_traits(
    strategy: Strategy,
    tags_by_image: Mapping[str, frozenset[str]],
    members: Mapping[str, list[str]],
) -> list[ConceptFinding]:
    """Under traits-only, a trait tag of one concept that another concept also has (as a
    trait, or on most of its images) interferes: the tag summons both outfits."""
    findings: list[ConceptFinding] = []
    concepts = strategy.concepts
    for i, a in enumerate(concepts):
        for b in concepts[i + 1 :]:
            if "traits-only" not in (
                (a.pattern or strategy.pattern),
                (b.pattern or strategy.pattern),
            ):
                continue
            shared: list[str] = []
            for one, other in ((a, b), (b, a)):
                images = members[other.name]
                other_traits = {t.casefold() for t in other.tags_in("trait")}
                for tag in one.tags_in("trait"):
                    key = tag.casefold()
                    on = sum(key in tags_by_image[img] for img in images)
                    is_shared = key in other_traits or (
                        images and on >= SHARED_TRAIT_SHARE * len(images)
                    )
                    if is_shared and key not in {s.casefold() for s in shared}:
                        shared.append(tag)
            for tag in shared:
                findings.append(
                    ConceptFinding(
                        "concept-shared-trait",
                        "problem",
                        f'trait "{tag}" is shared by the concepts {_names((a, b))}: under '
                        "traits-only the tag summons both outfits; word them apart (e.g. "
                        '"blue uniform" vs "navy school outfit") on one concept\'s images, or '
                        "use absorb, where each concept's trigger keeps them apart",
                        tuple(sorted(members[a.name] + members[b.name])),
                        tag,
                    )
                )
    return findings


def _balance(strategy: Strategy, members: Mapping[str, list[str]]) -> list[ConceptFinding]:
    """A concept with more than `BALANCE_RATIO` × another's images × repeats dominates what
    the character trigger learns."""
    weight = {
        c.name: sum(
            folder_repeats(i.rsplit("/", 1)[0] if "/" in i else "") for i in members[c.name]
        )
        for c in strategy.concepts
        if members[c.name]
    }
    if len(weight) < 2:
        return []
    heavy = max(weight, key=lambda n: weight[n])
    light = min(weight, key=lambda n: weight[n])
    if weight[heavy] <= BALANCE_RATIO * weight[light]:
        return []
    listing = ", ".join(f'"{n}" {w}' for n, w in sorted(weight.items(), key=lambda kv: -kv[1]))
    return [
        ConceptFinding(
            "concept-balance",
            "problem",
            f'concept "{heavy}" outweighs "{light}" {weight[heavy] / weight[light]:.1f}× in '
            f'images × repeats ({listing}): the character trigger learns mostly "{heavy}"; '
            "raise the lighter folder's repeats (the N_ prefix) or add images",
            tuple(sorted(members[light])),
        )
    ]
