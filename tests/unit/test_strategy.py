"""Rendering: source tags + strategy → caption (tagging.md is the ground truth)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tui.core.captions import parse_tags
from tui.core.strategy import BUCKETS, UNSORTED, CaptionFormat, Renderer, Strategy, render

# ---- tagging.md, "The worked example" (copied by hand: it is the specification) ----------------

WORKED_SOURCE = parse_tags(
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, short hair, simple background, sitting, smile, solo, window"
)
WORKED_TRAITS = ["bangs", "black hair", "grey pants", "grey socks", "orange shirt", "short hair"]
WORKED_CONTEXT = [
    "1girl",
    "blush",
    "closed eyes",
    "cushion",
    "simple background",
    "sitting",
    "smile",
    "solo",
    "window",
]
WORKED_BUCKETS = {
    **{t: "trait" for t in WORKED_TRAITS},
    **{t: "context" for t in WORKED_CONTEXT},
}

WORKED_EXPECTED = {
    "keep-all": "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, short hair, simple background, sitting, smile, solo, window",
    "absorb": "1girl, blush, closed eyes, cushion, simple background, sitting, smile, solo, window",
    "traits-only": "bangs, black hair, grey pants, grey socks, orange shirt, short hair",
}


@pytest.mark.parametrize("pattern", ["keep-all", "absorb", "traits-only"])
def test_worked_example_without_trigger(pattern):
    strategy = Strategy(pattern=pattern, buckets=WORKED_BUCKETS)
    assert render(WORKED_SOURCE, strategy) == WORKED_EXPECTED[pattern] + "\n"


@pytest.mark.parametrize("pattern", ["keep-all", "absorb", "traits-only"])
def test_worked_example_with_trigger(pattern):
    strategy = Strategy(trigger="kaede", pattern=pattern, buckets=WORKED_BUCKETS)
    assert render(WORKED_SOURCE, strategy) == "kaede, " + WORKED_EXPECTED[pattern] + "\n"


def test_worked_example_absorb_with_trigger_literal():
    strategy = Strategy(trigger="kaede", pattern="absorb", buckets=WORKED_BUCKETS)
    assert render(WORKED_SOURCE, strategy) == (
        "kaede, 1girl, blush, closed eyes, cushion, simple background, sitting, smile, solo, "
        "window\n"
    )


# ---- the bucket × pattern table ----------------------------------------------------------------

# tagging.md, "Patterns": True = the tag stays in the caption.
TABLE = {
    "keep-all": {"trait": True, "context": True, "flaw": True, "drop": False},
    "absorb": {"trait": False, "context": True, "flaw": True, "drop": False},
    "traits-only": {"trait": True, "context": False, "flaw": True, "drop": False},
}
ONE_PER_BUCKET = {"black hair": "trait", "smile": "context", "blurry": "flaw", "general": "drop"}


@pytest.mark.parametrize("unsorted", ["keep", "drop"])
@pytest.mark.parametrize("pattern", ["keep-all", "absorb", "traits-only"])
def test_bucket_pattern_table(pattern, unsorted):
    source = ["black hair", "smile", "blurry", "general", "cup"]
    strategy = Strategy(pattern=pattern, unsorted=unsorted, buckets=ONE_PER_BUCKET)
    expected = [t for t in source[:4] if TABLE[pattern][ONE_PER_BUCKET[t]]]
    if unsorted == "keep":
        expected.append("cup")
    assert render(source, strategy) == ", ".join(expected) + "\n"


def test_bucket_lookup_ignores_case():
    strategy = Strategy(pattern="absorb", buckets={"Black Hair": "trait", "GENERAL": "drop"})
    assert render(["black hair", "general", "smile"], strategy) == "smile\n"


def test_fate_reports_bucket_and_decision():
    renderer = Renderer(Strategy(pattern="absorb", unsorted="drop", buckets=ONE_PER_BUCKET))
    assert (renderer.fate("black hair").bucket, renderer.fate("black hair").kept) == (
        "trait",
        False,
    )
    assert (renderer.fate("blurry").bucket, renderer.fate("blurry").kept) == ("flaw", True)
    assert (renderer.fate("cup").bucket, renderer.fate("cup").kept) == ("unsorted", False)


# ---- trigger -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        ["kaede", "smile", "blush"],
        ["smile", "Kaede", "blush"],
        ["smile", "blush", "KAEDE"],
    ],
)
def test_trigger_first_and_exactly_once(source):
    caption = render(source, Strategy(trigger="kaede"))
    assert caption == "kaede, smile, blush\n"


@pytest.mark.parametrize("order", ["source", "alphabetical", "frequency"])
def test_trigger_first_in_every_order(order):
    strategy = Strategy(trigger="zed", caption=CaptionFormat(order=order))
    caption = render(["b", "zed", "a"], strategy, {"zed": 99, "a": 1, "b": 1})
    expected = {"source": "zed, b, a\n", "alphabetical": "zed, a, b\n", "frequency": "zed, a, b\n"}
    assert caption == expected[order]


def test_trigger_even_on_an_image_without_tags():
    assert render([], Strategy(trigger="kaede")) == "kaede\n"


def test_trigger_is_written_as_the_strategy_spells_it():
    assert render(["KAEDE", "smile"], Strategy(trigger="Kaede")) == "Kaede, smile\n"


# ---- aliases -----------------------------------------------------------------------------------


def test_alias_applied_before_bucket_lookup():
    buckets = {"grey pants": "trait", "smile": "context"}
    aliases = {"gray pants": "grey pants"}
    source = ["gray pants", "smile"]
    absorb = Strategy(pattern="absorb", buckets=buckets, aliases=aliases)
    keep_all = Strategy(pattern="keep-all", buckets=buckets, aliases=aliases)
    # The alias's target is a trait: absorbed under `absorb`, written by its new name otherwise.
    assert render(source, absorb) == "smile\n"
    assert render(source, keep_all) == "grey pants, smile\n"


def test_alias_lookup_ignores_case():
    strategy = Strategy(aliases={"gray pants": "grey pants"})
    assert render(["Gray Pants", "smile"], strategy) == "grey pants, smile\n"


def test_alias_onto_an_existing_tag_is_written_once():
    strategy = Strategy(aliases={"gray pants": "grey pants"})
    assert render(["grey pants", "smile", "gray pants"], strategy) == "grey pants, smile\n"


def test_alias_onto_the_trigger_is_not_repeated():
    strategy = Strategy(trigger="kaede", aliases={"kaede (sample)": "kaede"})
    assert render(["smile", "kaede (sample)"], strategy) == "kaede, smile\n"


# ---- order -------------------------------------------------------------------------------------


def test_source_order_is_default():
    assert render(["window", "1girl", "blush"], Strategy()) == "window, 1girl, blush\n"


def test_alphabetical_order_ignores_case():
    strategy = Strategy(caption=CaptionFormat(order="alphabetical"))
    assert render(["smile", "Blush", "window", "1girl"], strategy) == (
        "1girl, Blush, smile, window\n"
    )


def test_frequency_order_descending_ties_alphabetical():
    strategy = Strategy(trigger="kaede", caption=CaptionFormat(order="frequency"))
    frequency = {"kaede": 100, "solo": 3, "Blush": 3, "apple": 3, "window": 1, "smile": 12}
    source = ["window", "solo", "smile", "Blush", "cup", "apple"]  # `cup` has no count: 0
    assert render(source, strategy, frequency) == (
        "kaede, smile, apple, Blush, solo, window, cup\n"
    )


# ---- caption format ----------------------------------------------------------------------------


@pytest.mark.parametrize("separator", [",", " , ", " | "])
def test_separator(separator):
    strategy = Strategy(trigger="kaede", caption=CaptionFormat(separator=separator))
    assert render(["smile", "blush"], strategy) == f"kaede{separator}smile{separator}blush\n"


def test_escape_parentheses():
    source = ["kaede (blue archive)", "smile"]
    plain = Strategy()
    escaped = Strategy(caption=CaptionFormat(escape_parentheses=True))
    assert render(source, plain) == "kaede (blue archive), smile\n"
    assert render(source, escaped) == "kaede \\(blue archive\\), smile\n"


def test_weighted_tag_written_verbatim_even_when_escaping():
    strategy = Strategy(caption=CaptionFormat(escape_parentheses=True))
    assert render(["(smile:1.2)", "solo"], strategy) == "(smile:1.2), solo\n"


def test_caption_is_one_line():
    strategy = Strategy(trigger="kaede", buckets=WORKED_BUCKETS)
    caption = render(WORKED_SOURCE, strategy)
    assert caption.endswith("\n")
    assert caption.count("\n") == 1
    assert "\r" not in caption


# ---- empty result ------------------------------------------------------------------------------


def test_empty_result_is_empty_string():
    strategy = Strategy(pattern="absorb", unsorted="drop", buckets=ONE_PER_BUCKET)
    assert render(["black hair", "general", "cup"], strategy) == ""
    assert render([], Strategy()) == ""


# ---- editing a strategy ------------------------------------------------------------------------


def with_bucket(strategy: Strategy, tag: str, bucket: str) -> Strategy:
    """A copy with `tag` moved to `bucket` (`unsorted` removes it from every bucket)."""
    key = tag.casefold()
    buckets = {t: b for t, b in strategy.buckets.items() if t.casefold() != key}
    if bucket != UNSORTED:
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}")
        buckets[tag] = bucket
    return replace(strategy, buckets=buckets)


def test_with_bucket_moves_a_tag_case_insensitively():
    strategy = Strategy(buckets={"Black Hair": "trait"})
    moved = with_bucket(strategy, "black hair", "context")
    assert moved.bucket_of("BLACK HAIR") == "context"
    assert moved.tags_in("trait") == []
    assert strategy.bucket_of("black hair") == "trait"  # the original is unchanged
    assert with_bucket(moved, "black hair", "unsorted").bucket_of("black hair") == "unsorted"


def test_with_bucket_refuses_unknown_bucket():
    with pytest.raises(ValueError):
        with_bucket(Strategy(), "smile", "keep")
