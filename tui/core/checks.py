"""Diagnostics of a dataset: what the caption mechanism (tui/ARCHITECTURE.md, "The domain")
predicts will go wrong. The rules only: they take plain inputs (the strategy, each image's
source tags, the measures of tui/core/measures.py) and never read a file.

Two kinds of checks:

- tag checks, from the tags and the working strategy alone (fast): inconsistent traits,
  constant context, the double-up risk, uncaptioned images, empty captions, stem collisions;
- image checks, from measures of the pictures (`tui.core.measures.measure_images`, slow the
  first time, then cached in the dataset's state): untagged blur, untagged low resolution,
  identical files and near-identical images.

:func:`find_problems` gives both as :class:`Finding` objects (:func:`run_checks` on a
workspace); without measures it gives the tag checks only, so the app can show them at once
and add the image checks when measuring is done.

An image is "much less sharp" when its sharpness is under ``blur_ratio`` times the **median**
of the dataset. The median is the reference whatever the dataset: with one image nothing is
ever flagged, with two the lesser must be under ``blur_ratio / (2 - blur_ratio)`` of the
other, and when most images are blurry the median is blurry too, so only the worst stand out.
Images already tagged ``blurry`` (or ``motion blur``) are part of the median but never flagged.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tui.core.captions import escape_tag
from tui.core.concept_checks import concept_findings
from tui.core.dataset import ImageEntry
from tui.core.implied import implied_by
from tui.core.preview import MAX_PREVIEW_PIXELS
from tui.core.profile import CHECK_DEFAULTS
from tui.core.strategy import Renderer, Strategy
from tui.core.suggest import percent
from tui.core.tag_knowledge import classify_tag

if TYPE_CHECKING:
    from tui.core.measures import ImageMeasure
    from tui.core.tokens import TokenCounter
    from tui.core.workspace import Workspace

KINDS = (
    "inconsistent-trait",
    "constant-context",
    "double-up",
    "untagged-blur",
    "untagged-lowres",
    "identical-files",
    "near-duplicates",
    "unreadable-image",
    "uncaptioned",
    "empty-caption",
    "stem-collision",
    "implied-tags",
    "long-caption",
    "concept-overlap",
    "concept-trigger-is-a-tag",
    "concept-inconsistent-trait",
    "concept-shared-trait",
    "concept-balance",
    # How the trainers will read the files (tui/core/trainers.py).
    "unread-image",
    "kohya-folder-mode",
    "read-twice",
    "caption-extension",
    "weighted-comma",
    "trigger-comma",
    "empty-caption-file",
)
"""Every kind of finding, in the order `run_checks` reports them."""

SEVERITIES = ("problem", "advice")

# Tags that already bind an image's blur / low resolution (compared case-insensitively, as
# written after aliases).
BLUR_TAGS = frozenset({"blurry", "motion blur"})
LOWRES_TAGS = frozenset({"lowres"})
# Families of absorbed traits that users naturally type in a prompt (the four-ears case).
PROMPTABLE_TRAIT_FAMILIES = frozenset({"hair", "eyes", "body", "clothing"})

# Near-duplicate search falls back to comparing every pair above this Hamming distance.
_MAX_INDEXED_DISTANCE = 15


@dataclass(frozen=True)
class Finding:
    """One diagnostic for the user.

    ``images`` names the images concerned (relative paths). For the tag findings
    (``inconsistent-trait``, ``constant-context``) they are the images *without* the tag: the
    ones to look at. ``double-up`` names none (it is about prompting)."""

    kind: str
    severity: str
    message: str
    images: tuple[str, ...]
    tag: str = ""
    trainer: str = ""  # a finding about how a trainer reads the files: which ("all": every one)


def thresholds(strategy: Strategy) -> dict[str, float]:
    """The check thresholds in force: the profile's ``[checks]`` over ``CHECK_DEFAULTS``."""
    return {**CHECK_DEFAULTS, **strategy.checks}


# ---- the checks ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _share(threshold: float) -> str:
    return f"{threshold * 100:g}%"


class _TagIndex:
    """Each image's tags as written after aliases (casefolded), and the images of each tag."""

    def __init__(self, strategy: Strategy, image_tags: Mapping[str, Sequence[str]]) -> None:
        aliases = strategy.alias_index
        self.by_image: dict[str, frozenset[str]] = {}
        self.spelling: dict[str, str] = {}  # casefold → the tag as first seen (written)
        self.count: dict[str, int] = defaultdict(int)
        self.captioned: list[str] = []
        for image, tags in image_tags.items():
            keys = set()
            for tag in tags:
                written = aliases.get(tag.casefold(), tag)
                key = written.casefold()
                keys.add(key)
                self.spelling.setdefault(key, written)
            frozen = frozenset(keys)
            self.by_image[image] = frozen
            if frozen:
                self.captioned.append(image)
            for key in frozen:
                self.count[key] += 1

    def without(self, key: str) -> tuple[str, ...]:
        """The captioned images that lack a tag."""
        by_image = self.by_image
        return tuple([i for i in self.captioned if key not in by_image[i]])


def _tag_findings(
    strategy: Strategy, index: _TagIndex, limits: Mapping[str, float]
) -> list[Finding]:
    total = len(index.captioned)
    if total == 0:
        return []
    findings: list[Finding] = []
    by_count = sorted(index.count, key=lambda k: (-index.count[k], k))
    inconsistent = limits["inconsistent_trait"]
    constant = limits["constant_context"]
    pattern = strategy.pattern
    for key in by_count:
        bucket = strategy.bucket_of(index.spelling[key])
        n = index.count[key]
        tag = index.spelling[key]
        if bucket == "trait" and n < inconsistent * total:
            missing = index.without(key)
            if pattern == "absorb":
                why = (
                    "under absorb the trigger learns the look both with and without it; "
                    "tag it on the images that show it, or sort it as context if it varies"
                )
            else:
                why = (
                    f"{pattern} keeps the tag, but where the feature shows untagged the "
                    "trigger learns it (and under absorb it would learn the look both with "
                    "and without it); tag it on the images that show it"
                )
            findings.append(
                Finding(
                    "inconsistent-trait",
                    "problem",
                    f'trait "{tag}" is on only {n} of {total} captioned images '
                    f"({percent(n, total)}%, under {_share(inconsistent)}): {why}; "
                    f"missing on {_plural(len(missing), 'image')}",
                    missing,
                    tag,
                )
            )
        elif bucket == "context" and n >= constant * total:
            missing = index.without(key)
            where = (
                f"on every one of the {total} captioned images"
                if not missing
                else f"on {n} of {total} captioned images ({percent(n, total)}%)"
            )
            findings.append(
                Finding(
                    "constant-context",
                    "problem",
                    f'context "{tag}" is {where}: it cannot be separated from the trigger, '
                    "which learns it whether it is tagged or not; add images without it, or "
                    "sort it as a trait",
                    missing,
                    tag,
                )
            )
    if pattern == "absorb":
        natural = [
            index.spelling[key]
            for key in by_count
            if strategy.bucket_of(index.spelling[key]) == "trait"
            and (match := classify_tag(index.spelling[key])) is not None
            and match.family in PROMPTABLE_TRAIT_FAMILIES
        ]
        if natural:
            shown = ", ".join(natural[:15])
            if len(natural) > 15:
                shown += f", … ({len(natural) - 15} more in `lora-curator guide`)"
            findings.append(
                Finding(
                    "double-up",
                    "advice",
                    f"absorbed by the trigger: {shown} — don't prompt these; they stack on "
                    "what the trigger learned (the four-ears case)",
                    (),
                )
            )
    return findings


def _image_findings(
    index: _TagIndex, measures: Mapping[str, ImageMeasure], limits: Mapping[str, float]
) -> list[Finding]:
    findings: list[Finding] = []
    images = [i for i in index.by_image if i in measures]
    good = [i for i in images if not measures[i].error]

    # Untagged blur: much less sharp than the dataset's median.
    if good:
        median = statistics.median(measures[i].sharpness for i in good)
        ratio = limits["blur_ratio"]
        if median > 0:
            blurred = sorted(
                (
                    i
                    for i in good
                    if measures[i].sharpness < ratio * median and not index.by_image[i] & BLUR_TAGS
                ),
                key=lambda i: (measures[i].sharpness, i),
            )
            if blurred:
                findings.append(
                    Finding(
                        "untagged-blur",
                        "problem",
                        f"{_plural(len(blurred), 'image')} much less sharp than the rest "
                        f"(under {_share(ratio)} of the dataset's median sharpness) without "
                        "`blurry`: tag them `blurry` (a flaw) so the blur binds to that tag, "
                        "not to the trigger",
                        tuple(blurred),
                    )
                )

    # Untagged low resolution: both sides at most `lowres_side`.
    side = limits["lowres_side"]
    small = [
        i
        for i in images
        if 0 < measures[i].width <= side
        and 0 < measures[i].height <= side
        and not index.by_image[i] & LOWRES_TAGS
    ]
    if small:
        findings.append(
            Finding(
                "untagged-lowres",
                "problem",
                f"{_plural(len(small), 'image')} of at most {side:g}×{side:g} px without "
                "`lowres`: tag them `lowres` (a flaw) or replace them with larger ones",
                tuple(small),
            )
        )

    # Identical files: the same bytes.
    groups: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    for i in images:
        m = measures[i]
        if m.digest:
            groups[(m.size, m.digest)].append(i)
    for same in sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0]):
        findings.append(
            Finding(
                "identical-files",
                "problem",
                f"{_plural(len(same), 'file')} with identical bytes: the same picture trains "
                f"{len(same)} times; keep one",
                tuple(same),
            )
        )

    # Near-identical images: perceptual hashes within `near_duplicate_distance` bits.
    distance = int(limits["near_duplicate_distance"])
    for cluster in _near_duplicates(good, measures, distance):
        findings.append(
            Finding(
                "near-duplicates",
                "problem",
                f"{_plural(len(cluster), 'image')} that look nearly the same (perceptual hashes "
                f"within {distance} bits, same shape): they weigh as one picture trained "
                f"{len(cluster)} times; keep the best",
                tuple(cluster),
            )
        )

    # Images that could not be measured.
    broken = sorted(i for i in images if measures[i].error and not measures[i].too_large)
    for i in broken:
        findings.append(
            Finding(
                "unreadable-image",
                "problem",
                f"{measures[i].error}: trainers will fail on it too; replace or remove it",
                (i,),
            )
        )
    huge = sorted(i for i in images if measures[i].too_large)
    if huge:
        findings.append(
            Finding(
                "unreadable-image",
                "advice",
                f"{_plural(len(huge), 'image')} too large to measure (over "
                f"{MAX_PREVIEW_PIXELS // 1_000_000} MP): not checked for blur or duplicates",
                tuple(huge),
            )
        )
    return findings


def _same_aspect(a: ImageMeasure, b: ImageMeasure) -> bool:
    """Whether two images have the same aspect ratio, within 1% or one pixel of rounding.

    A resized, re-encoded or retouched copy keeps its aspect ratio; different pictures of one
    pose on a flat background can share a 64-bit hash but seldom their exact shape."""
    if min(a.width, a.height, b.width, b.height) <= 0:
        return False
    ra, rb = a.width / a.height, b.width / b.height
    tolerance = max(0.01, 1 / min(a.width, a.height, b.width, b.height))
    return abs(ra - rb) <= tolerance * max(ra, rb)


def _near_duplicates(
    images: list[str], measures: Mapping[str, ImageMeasure], distance: int
) -> list[list[str]]:
    """Clusters (connected by pairs within `distance` bits) of images with different bytes.

    Candidate pairs come from a pigeonhole index: two 64-bit hashes within d bits agree
    exactly on at least one of d + 1 disjoint slices, so only images sharing a slice value
    are compared."""
    if distance < 0 or len(images) < 2:
        return []
    parent = {i: i for i in images}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def close(a: str, b: str) -> bool:
        ma, mb = measures[a], measures[b]
        return (
            ma.digest != mb.digest
            and (ma.dhash ^ mb.dhash).bit_count() <= distance
            and _same_aspect(ma, mb)
        )

    if distance > _MAX_INDEXED_DISTANCE:
        pairs: Iterable[tuple[str, str]] = (
            (a, b) for n, a in enumerate(images) for b in images[n + 1 :]
        )
    else:
        slices = distance + 1
        bounds = [round(64 * k / slices) for k in range(slices + 1)]
        seen: set[tuple[str, str]] = set()
        found: list[tuple[str, str]] = []
        for k in range(slices):
            lo, hi = bounds[k], bounds[k + 1]
            mask = (1 << (hi - lo)) - 1
            buckets: dict[int, list[str]] = defaultdict(list)
            for i in images:
                buckets[(measures[i].dhash >> lo) & mask].append(i)
            for members in buckets.values():
                for n, a in enumerate(members):
                    for b in members[n + 1 :]:
                        if (a, b) not in seen:
                            seen.add((a, b))
                            found.append((a, b))
        pairs = found
    linked: set[str] = set()
    for a, b in pairs:
        if close(a, b):
            parent[find(a)] = find(b)
            linked.update((a, b))
    clusters: dict[str, list[str]] = defaultdict(list)
    for i in sorted(linked):
        clusters[find(i)].append(i)
    return sorted((c for c in clusters.values() if len(c) > 1), key=lambda c: c[0])


def _caption_findings(
    strategy: Strategy,
    images: Sequence[ImageEntry],
    image_tags: Mapping[str, Sequence[str]],
    collisions: Mapping[str, Sequence[str]],
    index: _TagIndex,
) -> list[Finding]:
    findings: list[Finding] = []
    untagged = [e for e in images if not index.by_image[e.image]]
    if untagged:
        missing = sum(not e.caption_exists for e in untagged)
        how = (
            "no caption file"
            if missing == len(untagged)
            else "a caption file without tags"
            if missing == 0
            else f"{missing} without a caption file, the others with no tags in it"
        )
        them = "it" if len(untagged) == 1 else "them"
        findings.append(
            Finding(
                "uncaptioned",
                "problem",
                f"{_plural(len(untagged), 'image')} without tags ({how}): everything in "
                f"{them} binds to the trigger; tag {them} (e.g. with a WD14 tagger) or remove "
                f"{them}",
                tuple(e.image for e in untagged),
            )
        )
    # Emptiness does not depend on the order; inside a concept its pattern and buckets count.
    plain = Renderer(strategy)
    by_concept = {c.name: Renderer(strategy, concept=c) for c in strategy.concepts}

    def renders_empty(image: str) -> bool:
        tags = image_tags[image]
        found = strategy.concepts_of(image, tags) if by_concept else []
        renderer = by_concept[found[0].name] if found else plain
        return not renderer.render(tags)

    empty = [e.image for e in images if index.by_image[e.image] and renders_empty(e.image)]
    if empty:
        findings.append(
            Finding(
                "empty-caption",
                "problem",
                f"{_plural(len(empty), 'image')} whose caption renders empty: the strategy "
                "removes all their tags and there is no trigger, so no caption is written "
                "(kohya fails on an empty caption file); set a trigger or keep some tags",
                tuple(empty),
            )
        )
    for caption, names in sorted(collisions.items()):
        findings.append(
            Finding(
                "stem-collision",
                "problem",
                f"{len(names)} images share the caption file {caption} in every trainer; "
                "rename all but one (lora-curator does not write it)",
                tuple(names),
            )
        )
    return findings


def _implied_findings(
    strategy: Strategy, images: Sequence[ImageEntry], image_tags: Mapping[str, Sequence[str]]
) -> list[Finding]:
    """Generic tags beside a more specific tag of the same image (advice: `shirt` beside
    `orange shirt`), counted as written after aliases."""
    aliases = strategy.alias_index
    on: list[str] = []
    total = 0
    example: tuple[str, str] | None = None
    for e in images:
        tags = image_tags[e.image]
        written = [aliases.get(t.casefold(), t) for t in tags] if aliases else tags
        found = implied_by(written)
        if found:
            on.append(e.image)
            total += len(found)
            if example is None:
                example = next(iter(found.items()))
    if not on or example is None:
        return []
    if strategy.caption.drop_implied:
        what = "[caption] drop_implied removes them from the captions"
    else:
        what = (
            "they teach nothing the specific tag does not; set [caption] drop_implied = true "
            "to remove them"
        )
    return [
        Finding(
            "implied-tags",
            "advice",
            f"{_plural(total, 'implied tag')} on {_plural(len(on), 'image')} (e.g. "
            f"{example[0]} beside {example[1]}): {what}",
            tuple(on),
        )
    ]


def _token_findings(
    strategy: Strategy,
    images: Sequence[ImageEntry],
    image_tags: Mapping[str, Sequence[str]],
    tokens: TokenCounter,
    limit: int,
) -> list[Finding]:
    """Captions longer than `limit` CLIP tokens: what the trainer cuts, silently."""
    plain = Renderer(strategy)
    by_concept = {c.name: Renderer(strategy, concept=c) for c in strategy.concepts}
    fmt = strategy.caption
    over: list[tuple[str, int, tuple[str, ...]]] = []
    for e in images:
        tags = image_tags[e.image]
        found = strategy.concepts_of(e.image, tags) if by_concept else []
        renderer = by_concept[found[0].name] if found else plain
        caption = renderer.caption_tags(tags)
        if fmt.escape_parentheses:
            caption = [escape_tag(t) for t in caption]
        length = tokens.length(caption, fmt.separator, limit)
        if length.cut:
            over.append((e.image, length.tokens, length.cut))
    if not over:
        return []
    image, n, cut = max(over, key=lambda o: (o[1], o[0]))
    shown = ", ".join(cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
    return [
        Finding(
            "long-caption",
            "advice",
            f"{_plural(len(over), 'caption')} over {limit} CLIP tokens: trainers cut the rest "
            f"silently (the longest, {image}, has {n} tokens and loses {shown}); drop tags or "
            "raise the trainer's token limit ([checks] max_tokens to match it)",
            tuple(o[0] for o in over),
        )
    ]


def find_problems(
    strategy: Strategy,
    images: Sequence[ImageEntry],
    image_tags: Mapping[str, Sequence[str]],
    collisions: Mapping[str, Sequence[str]] | None = None,
    measures: Mapping[str, ImageMeasure] | None = None,
    tokens: TokenCounter | None = None,
) -> list[Finding]:
    """Every finding on a dataset, with ``strategy`` and the thresholds of its ``[checks]``
    table (defaults ``CHECK_DEFAULTS``).

    ``images`` are the dataset's images (in order), ``image_tags`` each one's source tags
    (image → tags, edits applied), ``collisions`` the caption files several images share
    (caption → images). Without ``measures`` only the tag checks run (fast enough for the UI
    thread); pass the result of `tui.core.measures.measure_images` to add untagged blur and
    low resolution, identical files, near-duplicates and unreadable images. Findings come in
    the order of ``KINDS``. ``severity`` is ``"problem"`` except for advice (``double-up``,
    images too large to measure), which must not change an exit code. With ``tokens`` (a
    CLIP token counter, :func:`tui.core.tokens.load_counter`) captions over ``max_tokens``
    are reported with the tags a trainer cuts.
    """
    limits = thresholds(strategy)
    index = _TagIndex(strategy, image_tags)
    findings = _tag_findings(strategy, index, limits)
    if measures is not None:
        findings += _image_findings(index, measures, limits)
    findings += _caption_findings(strategy, images, image_tags, collisions or {}, index)
    findings += _implied_findings(strategy, images, image_tags)
    if tokens is not None:
        findings += _token_findings(strategy, images, image_tags, tokens, int(limits["max_tokens"]))
    if strategy.concepts:
        concepts = {e.image: strategy.concepts_of(e.image, image_tags[e.image]) for e in images}
        findings += [
            Finding(f.kind, f.severity, f.message, f.images, f.tag)
            for f in concept_findings(
                strategy, index.by_image, concepts, limits["inconsistent_trait"]
            )
        ]
    order = {kind: n for n, kind in enumerate(KINDS)}
    findings.sort(key=lambda f: order[f.kind])  # stable: each kind keeps its own order
    return findings


def run_checks(
    ws: Workspace,
    measures: Mapping[str, ImageMeasure] | None = None,
    tokens: TokenCounter | None = None,
) -> list[Finding]:
    """:func:`find_problems` on a workspace (its working strategy, images and their tags),
    and what the trainers will not see of it (:func:`trainer_findings`)."""
    findings = find_problems(
        ws.strategy,
        ws.images,
        {e.image: ws.image_tags(e.image) for e in ws.images},
        ws.scan.collisions,
        measures,
        tokens,
    )
    findings += trainer_findings(ws)
    order = {kind: n for n, kind in enumerate(KINDS)}
    findings.sort(key=lambda f: order[f.kind])
    return findings


def trainer_findings(ws: Workspace) -> list[Finding]:
    """What kohya, OneTrainer, SimpleTuner and ai-toolkit will read differently from what the
    curator shows: images they skip, a caption extension they ignore, a weighted tag with a
    comma inside, a trigger with a comma, a caption file left empty."""
    from tui.core.trainers import find_unseen, repeats_prefix

    captions = {e.image: c for e, c in ws.render_all()}
    empty = ws.empty_on_disk([i for i, c in captions.items() if not c])
    # kohya's folder mode matters only to a dataset laid out for it (an `N_` folder on top).
    folder_mode = any(
        "/" in e.image and repeats_prefix(e.image.split("/", 1)[0]) for e in ws.images
    )
    return [
        Finding(f.kind, f.severity, f.message, f.images, f.tag, f.trainer)
        for f in find_unseen(
            [e.image for e in ws.images],
            ws.strategy.caption.extension,
            captions,
            ws.triggers_in_use(),
            empty,
        )
        if folder_mode or f.kind != "kohya-folder-mode"
    ]


def has_problem(findings: Iterable[Finding]) -> bool:
    """Whether any finding is a problem (advice alone is a clean bill)."""
    return any(f.severity == "problem" for f in findings)
