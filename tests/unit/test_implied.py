"""Implied tags: `[caption] drop_implied` on tagging.md's worked example extended with the
generic tags a WD14 tagger writes beside the specific ones (`shirt`, `socks`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.test_strategy import WORKED_BUCKETS, WORKED_EXPECTED
from tui.core.captions import parse_tags
from tui.core.checks import find_problems
from tui.core.dataset import ImageEntry
from tui.core.implied import implied_by, implied_counts, load_implications
from tui.core.profile import ProfileError, dump_profile, parse_profile
from tui.core.strategy import CaptionFormat, Renderer, Strategy, render
from tui.core.suggest import suggest_buckets

# The worked example as a tagger writes it: `shirt` beside `orange shirt`, `socks` beside
# `grey socks`.
EXTENDED = parse_tags(
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, shirt, short hair, simple background, sitting, smile, socks, solo, window"
)
DROP = CaptionFormat(drop_implied=True)


@pytest.mark.parametrize("pattern", ["keep-all", "absorb", "traits-only"])
def test_drop_implied_gives_the_worked_example_exactly(pattern):
    strategy = Strategy(pattern=pattern, buckets=WORKED_BUCKETS, caption=DROP)
    assert render(EXTENDED, strategy) == WORKED_EXPECTED[pattern] + "\n"


def test_without_the_option_the_generic_tags_leak_into_absorb():
    strategy = Strategy(pattern="absorb", buckets=WORKED_BUCKETS)
    assert render(EXTENDED, strategy) == (
        "1girl, blush, closed eyes, cushion, shirt, simple background, sitting, smile, socks, "
        "solo, window\n"
    )


def test_with_a_trigger_the_absorb_caption_is_the_worked_one():
    strategy = Strategy(trigger="kaede", pattern="absorb", buckets=WORKED_BUCKETS, caption=DROP)
    assert render(EXTENDED, strategy) == (
        "kaede, 1girl, blush, closed eyes, cushion, simple background, sitting, smile, solo, "
        "window\n"
    )


def test_the_renderer_names_what_implies_each_removed_tag():
    renderer = Renderer(Strategy(buckets=WORKED_BUCKETS, caption=DROP))
    assert renderer.implied(EXTENDED) == {"shirt": "orange shirt", "socks": "grey socks"}
    # Off by default: nothing is implied away.
    assert Renderer(Strategy()).implied(EXTENDED) == {}


def test_removal_is_per_image():
    strategy = Strategy(caption=DROP)
    assert render(["shirt", "smile"], strategy) == "shirt, smile\n"
    assert render(["shirt", "orange shirt"], strategy) == "orange shirt\n"


def test_implication_applies_after_aliases():
    # `orange_top` is written as `orange shirt`, which implies `shirt`.
    strategy = Strategy(aliases={"orange_top": "orange shirt"}, caption=DROP)
    assert render(["orange_top", "shirt", "smile"], strategy) == "orange shirt, smile\n"


def test_structural_rule_and_data():
    assert implied_by(["black thighhighs", "thighhighs"]) == {"thighhighs": "black thighhighs"}
    assert implied_by(["light blue shirt", "blue shirt", "shirt"]) == {
        "blue shirt": "light blue shirt",
        "shirt": "light blue shirt",
    }
    # Not structural: from tui/core/data/implications.toml.
    assert implied_by(["serafuku", "school uniform"]) == {"school uniform": "serafuku"}
    # Case and underscores do not matter; a word inside another word is no suffix.
    assert implied_by(["Black_Thighhighs", "thighhighs"]) == {"thighhighs": "Black_Thighhighs"}
    assert implied_by(["ponytail", "tail"]) == {}
    # An absence or an action does not imply its object.
    assert implied_by(["no shirt", "shirt", "holding cup", "cup"]) == {}
    assert implied_by(["shirt", "Shirt"]) == {}
    assert len(load_implications()) >= 30


def test_check_counts_implied_tags_as_advice():
    images = [ImageEntry("a.png", "a.txt", True), ImageEntry("b.png", "b.txt", True)]
    tags = {"a.png": EXTENDED, "b.png": ["smile"]}
    found = [f for f in find_problems(Strategy(), images, tags) if f.kind == "implied-tags"]
    assert len(found) == 1
    assert found[0].severity == "advice"
    assert found[0].images == ("a.png",)
    assert found[0].message.startswith("2 implied tags on 1 image")
    assert "drop_implied = true" in found[0].message


def test_suggestion_drop_for_a_tag_implied_on_most_of_its_images():
    images = [EXTENDED, EXTENDED, ["shirt", "smile"]]
    counts: dict[str, int] = {}
    for tags in images:
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    implied = implied_counts(images)
    assert implied["shirt"] == (2, "orange shirt")
    out = suggest_buckets(counts, len(images), Strategy(), implied)
    assert out["shirt"].bucket == "drop"
    assert out["shirt"].reason == (
        "implied by a more specific tag on 66% of its images (e.g. orange shirt): "
        "it teaches nothing that tag does not"
    )
    # A generic tag that mostly stands alone keeps its usual suggestion.
    alone = [["shirt"], ["shirt"], ["shirt", "orange shirt"]]
    out = suggest_buckets({"shirt": 3, "orange shirt": 1}, 3, Strategy(), implied_counts(alone))
    assert out["shirt"].bucket != "drop"


def test_profile_option_validated_and_round_trips():
    strategy = Strategy(name="x", caption=replace(DROP, order="alphabetical"))
    assert parse_profile(dump_profile(strategy), "p.toml") == strategy
    assert "drop_implied = true" in dump_profile(strategy)
    with pytest.raises(ProfileError, match="drop_implied"):
        parse_profile('schema = 1\n[caption]\ndrop_implied = "yes"\n', "p.toml")
