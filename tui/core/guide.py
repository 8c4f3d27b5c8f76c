"""The prompt guide: how to prompt the LoRA a strategy trains, as Markdown.

Sections, for every pattern: the trigger; "Absorbed — don't prompt these" (the traits the
trigger learned under ``absorb``, with the double-up warning; under the other patterns what
the pattern keeps instead); "Promptable" (the tags left in the captions, with image counts);
"Negative prompt" (the flaw tags); and what the pattern means for prompting.

Without a dataset the tags come from the profile's buckets and their counts are unknown; the
guide says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from tui.core.buckets import BUCKETS, UNSORTED
from tui.core.strategy import Strategy

# Longest list of tags shown in one section (a dataset may have thousands of context tags).
MAX_LISTED = 100

PATTERN_MEANING: dict[str, str] = {
    "keep-all": (
        "Every tag stayed in the captions, so each feature was learned weakly and on its own. "
        "The trigger alone does little: prompt the trigger *and* each trait you want to see, "
        "then the context of the picture you want."
    ),
    "absorb": (
        "The trait tags were removed from the captions, so the trigger absorbed the whole look: "
        "the trigger alone reproduces it. Context tags stayed, so poses, expressions and scenes "
        "remain promptable and do not leak into outputs unless prompted. Never prompt an "
        "absorbed trait again: it stacks on what the trigger learned. With several outfits, "
        "one trigger per outfit keeps them apart."
    ),
    "traits-only": (
        "Only the trait tags (and flaws) stayed in the captions, so each trait was learned "
        "precisely and can be summoned alone; the trigger alone has little effect. Prompt the "
        "traits you want. Context was not tagged, so describe the pose and scene in the "
        "base model's own words. With several outfits, overlapping trait tags interfere: "
        'word them apart ("blue uniform" vs "navy school outfit").'
    ),
}

DOUBLE_UP_WARNING = (
    "**Double-up warning:** the trigger already draws these. Typing one of them again stacks "
    "it on top of what the trigger learned: a bunny-eared character trained this way and "
    "prompted with `rabbit ears` came out with four ears."
)


def _tag_table(
    strategy: Strategy, counts: Mapping[str, int] | None, total_images: int | None
) -> dict[str, list[tuple[str, int | None]]]:
    """Bucket → [(tag as written, images or None)], most frequent first (profile order
    without counts). With counts only the tags present in the dataset are listed."""
    table: dict[str, list[tuple[str, int | None]]] = {}
    if counts is None:
        for bucket in BUCKETS:
            table[bucket] = [(tag, None) for tag in strategy.tags_in(bucket)]
        table[UNSORTED] = []
        return table
    merged: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for tag, n in counts.items():
        written = strategy.alias_of(tag)
        key = written.casefold()
        spelling.setdefault(key, written)
        merged[key] = merged.get(key, 0) + n
    cap = total_images if total_images is not None else None
    for key in sorted(merged, key=lambda k: (-merged[k], k)):
        tag = spelling[key]
        n = merged[key] if cap is None else min(merged[key], cap)
        if n <= 0:
            continue
        table.setdefault(strategy.bucket_of(tag), []).append((tag, n))
    for bucket in (*BUCKETS, UNSORTED):
        table.setdefault(bucket, [])
    return table


def _bullets(rows: list[tuple[str, int | None]], total_images: int | None) -> list[str]:
    lines = []
    for tag, n in rows[:MAX_LISTED]:
        if n is None:
            lines.append(f"- `{tag}`")
        else:
            if total_images:
                lines.append(
                    f"- `{tag}` — {n} of {total_images} image{'s' if total_images != 1 else ''}"
                )
            else:
                lines.append(f"- `{tag}` — {n} image{'s' if n != 1 else ''}")
    if len(rows) > MAX_LISTED:
        lines.append(f"- … and {len(rows) - MAX_LISTED} more, on fewer images")
    return lines


def _concept_sections(strategy: Strategy) -> list[str]:
    """One section per concept: its prompt, what its trigger absorbed, what stays promptable."""
    out: list[str] = []
    for concept in strategy.concepts:
        pattern = concept.pattern or strategy.pattern
        triggers = [t for t in (strategy.trigger, concept.trigger) if t]
        out += [f"## Concept: {concept.name}", ""]
        if triggers:
            out += [f"Prompt `{', '.join(triggers)}` for this outfit (pattern **{pattern}**).", ""]
        traits = concept.tags_in("trait")
        context = concept.tags_in("context")
        if pattern == "absorb" and traits:
            out += [
                f"Absorbed by `{concept.trigger or strategy.trigger}` — don't prompt these:",
                "",
            ]
            out += [*_bullets([(t, None) for t in traits], None), ""]
            out += [f"> {DOUBLE_UP_WARNING}", ""]
        promptable = (traits if pattern != "absorb" else []) + (
            context if pattern != "traits-only" else []
        )
        if promptable:
            out += ["Promptable in this outfit:", ""]
            out += [*_bullets([(t, None) for t in promptable], None), ""]
        if traits and pattern != "absorb":
            out += [
                "On the other outfits' images these tags stayed ordinary tags, so prompting "
                "one outside this outfit adds just that piece.",
                "",
            ]
    return out


def render_guide(
    strategy: Strategy,
    counts: Mapping[str, int] | None = None,
    total_images: int | None = None,
) -> str:
    """The Markdown prompt guide of a strategy.

    ``counts`` (tag → images, as ``Workspace.tag_counts()`` gives them) and ``total_images``
    come from a dataset; without counts the tags are listed from the profile's buckets and
    the guide says their counts are unknown.
    """
    pattern = strategy.pattern
    table = _tag_table(strategy, counts, total_images)
    traits, context, flaws = table["trait"], table["context"], table["flaw"]
    unsorted_kept = table[UNSORTED] if strategy.unsorted == "keep" else []
    name = strategy.name or "untitled profile"
    out: list[str] = [f"# Prompt guide: {name}", ""]

    facts = [f"Pattern: **{pattern}**"]
    if counts is not None and total_images is not None:
        facts.append(f"trained on {total_images} image{'s' if total_images != 1 else ''}")
    out += [" · ".join(facts), ""]
    if counts is None:
        out += [
            "_No dataset given: image counts are unknown. Tags are listed from the profile's "
            "buckets; give the dataset to see how often each one was trained._",
            "",
        ]

    # The trigger.
    out += ["## Trigger", ""]
    if strategy.trigger:
        if pattern == "absorb":
            what = "On its own it draws the character's whole look (the traits below)."
        elif pattern == "traits-only":
            what = "On its own it has little effect: prompt the traits you want with it."
        else:
            what = "On its own it does little: prompt the traits you want with it."
        out += [f"Start every prompt with `{strategy.trigger}`. {what}", ""]
    else:
        out += [
            "No trigger is set: the features that no tag names were learned by the tags on "
            "most captions (often `1girl`, `solo`). Set one to give the look a handle.",
            "",
        ]

    # Absorbed traits.
    out += ["## Absorbed — don't prompt these", ""]
    if pattern == "absorb":
        if traits:
            out += ["The trigger learned these traits; leave them out of the prompt:", ""]
            out += _bullets(traits, total_images)
            out += ["", f"> {DOUBLE_UP_WARNING}", ""]
        else:
            out += [
                "No tag is sorted as a trait, so nothing named was absorbed: the trigger "
                "learned only what no tag names.",
                "",
            ]
    elif pattern == "keep-all":
        out += [
            "Nothing: keep-all keeps every trait tag in the captions, so no trait is absorbed "
            "by the trigger. Prompt the traits you want (listed under Promptable).",
            "",
        ]
    else:
        out += [
            "Nothing: traits-only keeps the trait tags in the captions, so no trait is "
            "absorbed by the trigger. Prompt the traits you want (listed under Promptable).",
            "",
        ]

    # Promptable tags.
    out += ["## Promptable", ""]
    sections: list[tuple[str, str, list[tuple[str, int | None]]]] = []
    if pattern in ("keep-all", "traits-only"):
        sections.append(("Traits", "prompt them to summon the character's look", traits))
    if pattern in ("keep-all", "absorb"):
        sections.append(("Context", "prompt them for that pose, expression or scene", context))
    if unsorted_kept:
        sections.append(
            ("Not sorted yet", "kept in the captions (`unsorted = keep`)", unsorted_kept)
        )
    if counts is not None:
        out += ["Most trained first; a tag on few images is learned weakly.", ""]
    for title, hint, rows in sections:
        out += [f"### {title}", "", f"{hint.capitalize()}:" if rows else "None.", ""]
        if rows:
            out += [*_bullets(rows, total_images), ""]
    if pattern == "traits-only" and context:
        out += [
            "Context tags were removed from the captions, so they were not learned as tags: "
            "describe poses and scenes as you would with the base model.",
            "",
        ]

    out += _concept_sections(strategy)

    # Negative prompt.
    out += ["## Negative prompt", ""]
    if flaws:
        out += [
            "These defects were bound to their own tags: put them in the negative prompt (or "
            "just leave them out) for clean output.",
            "",
            "```",
            ", ".join(tag for tag, _ in flaws),
            "```",
            "",
            *_bullets(flaws, total_images),
            "",
        ]
    else:
        out += [
            "No flaw tags: nothing from this dataset to put in the negative prompt. (Tag "
            "defects such as `blurry` as flaws so they can be prompted away.)",
            "",
        ]

    # The pattern.
    out += [f"## Pattern: {pattern}", "", PATTERN_MEANING[pattern], ""]
    return "\n".join(out).rstrip("\n") + "\n"
