"""The prompt guide (tui/core/guide.py): its sections for each pattern, with and without counts."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from tui.core.guide import render_guide
from tui.core.profile import load_profile
from tui.core.strategy import PATTERNS, Strategy
from tui.core.workspace import Workspace

KAEDE = Strategy(
    name="kaede",
    trigger="kaede",
    pattern="absorb",
    buckets={
        "black hair": "trait",
        "rabbit ears": "trait",
        "smile": "context",
        "sitting": "context",
        "window": "context",
        "blurry": "flaw",
        "jpeg artifacts": "flaw",
        "general": "drop",
    },
    aliases={"gray hair": "black hair"},
)
# Counts as `Workspace.tag_counts()` gives them (per source tag) for a dataset of 10 images.
COUNTS = {
    "black hair": 7,
    "gray hair": 2,
    "rabbit ears": 10,
    "smile": 6,
    "sitting": 3,
    "window": 1,
    "blurry": 2,
    "general": 10,
    "cup": 4,
}
TOTAL = 10

SECTIONS = [
    "Trigger",
    "Absorbed — don't prompt these",
    "Promptable",
    "Negative prompt",
]


def sections(markdown: str) -> dict[str, str]:
    """`## heading` → the text under it (up to the next `## `)."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def listed(text: str) -> list[tuple[str, str]]:
    """The bullet list entries of a section: (tag, the rest of the line)."""
    return re.findall(r"^- `([^`]+)`(.*)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_has_every_section(pattern: str) -> None:
    guide = render_guide(replace(KAEDE, pattern=pattern), COUNTS, TOTAL)
    assert guide.startswith("# Prompt guide: kaede\n")
    found = sections(guide)
    assert list(found) == [*SECTIONS, f"Pattern: {pattern}"]
    assert "`kaede`" in found["Trigger"]
    assert guide.endswith("\n") and not guide.endswith("\n\n")


def test_absorb_lists_the_absorbed_traits_with_the_double_up_warning() -> None:
    found = sections(render_guide(KAEDE, COUNTS, TOTAL))
    absorbed = found["Absorbed — don't prompt these"]
    # `gray hair` is written `black hair` (alias): 7 + 2 images; most trained first.
    assert listed(absorbed) == [
        ("rabbit ears", " — 10 of 10 images"),
        ("black hair", " — 9 of 10 images"),
    ]
    assert "four ears" in absorbed and "Double-up" in absorbed
    promptable = found["Promptable"]
    assert "### Traits" not in promptable
    context, unsorted = promptable.split("### Context")[1].split("### Not sorted yet")
    assert listed(context) == [
        ("smile", " — 6 of 10 images"),
        ("sitting", " — 3 of 10 images"),
        ("window", " — 1 of 10 images"),
    ]
    assert listed(unsorted) == [("cup", " — 4 of 10 images")]
    assert "alone reproduces" in found["Pattern: absorb"]


def test_keep_all_absorbs_nothing_and_lists_traits_and_context_as_promptable() -> None:
    found = sections(render_guide(replace(KAEDE, pattern="keep-all"), COUNTS, TOTAL))
    absorbed = found["Absorbed — don't prompt these"]
    assert listed(absorbed) == []
    assert "keep-all keeps every trait tag" in absorbed
    promptable = found["Promptable"]
    assert "### Traits" in promptable and "### Context" in promptable
    tags = [tag for tag, _ in listed(promptable)]
    assert tags[:2] == ["rabbit ears", "black hair"]
    assert {"smile", "sitting", "window"} <= set(tags)
    assert "weakly" in found["Pattern: keep-all"]


def test_traits_only_makes_traits_promptable_and_context_not() -> None:
    found = sections(render_guide(replace(KAEDE, pattern="traits-only"), COUNTS, TOTAL))
    assert listed(found["Absorbed — don't prompt these"]) == []
    promptable = found["Promptable"]
    assert "### Traits" in promptable and "### Context" not in promptable
    tags = [tag for tag, _ in listed(promptable)]
    assert "rabbit ears" in tags and "smile" not in tags and "sitting" not in tags
    assert "Context tags were removed" in promptable
    assert "precisely" in found["Pattern: traits-only"]


def test_negative_prompt_lists_the_flaws_present() -> None:
    found = sections(render_guide(KAEDE, COUNTS, TOTAL))
    negative = found["Negative prompt"]
    assert "```\nblurry\n```" in negative  # `jpeg artifacts` is on no image of this dataset
    assert listed(negative) == [("blurry", " — 2 of 10 images")]


def test_dropped_tags_are_never_promptable() -> None:
    guide = render_guide(KAEDE, COUNTS, TOTAL)
    assert "general" not in guide


def test_no_flaw_and_no_trigger() -> None:
    strategy = Strategy(name="x", pattern="absorb", buckets={"red hair": "trait"})
    found = sections(render_guide(strategy, {"red hair": 3}, 3))
    assert "No trigger is set" in found["Trigger"]
    assert "No flaw tags" in found["Negative prompt"]
    assert "```" not in found["Negative prompt"]


def test_unsorted_tags_dropped_by_the_profile_are_not_listed() -> None:
    guide = render_guide(replace(KAEDE, unsorted="drop"), COUNTS, TOTAL)
    assert "cup" not in guide and "Not sorted yet" not in guide


def test_without_a_dataset_counts_are_unknown() -> None:
    guide = render_guide(KAEDE)
    assert "counts are unknown" in guide
    found = sections(guide)
    # Profile order, no counts.
    assert listed(found["Absorbed — don't prompt these"]) == [
        ("black hair", ""),
        ("rabbit ears", ""),
    ]
    assert listed(found["Promptable"]) == [("smile", ""), ("sitting", ""), ("window", "")]
    assert "```\nblurry, jpeg artifacts\n```" in found["Negative prompt"]
    assert "trained on" not in guide


def test_long_lists_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.core import guide as guide_module

    monkeypatch.setattr(guide_module, "MAX_LISTED", 2)
    found = sections(render_guide(replace(KAEDE, unsorted="drop"), COUNTS, TOTAL))
    assert [t for t, _ in listed(found["Promptable"])] == ["smile", "sitting"]
    assert "… and 1 more" in found["Promptable"]


def test_a_workspace_gives_its_strategy_and_counts(sample_copy: Path) -> None:
    strategy = load_profile(sample_copy / "profiles" / "kaede.toml")
    with Workspace.open(sample_copy, strategy=strategy, read_only=True) as ws:
        from_ws = render_guide(ws.strategy, ws.tag_counts(), len(ws.images))
    assert "trained on 12 images" in from_ws
    # The sample's captions (tests/cli/test_cli.py): `1girl` on 11 images, `blurry` on 2.
    assert "`1girl` — 11 of 12 images" in from_ws
    assert "`blurry` — 2 of 12 images" in from_ws
