"""The character's own name tag: suggested drop when a trigger takes its place."""

from __future__ import annotations

import pytest

from tui.core.scores import Label, ScoreStore, character_tags
from tui.core.strategy import Strategy
from tui.core.suggest import suggest_buckets
from tui.core.tag_knowledge import is_character_tag


@pytest.mark.parametrize(
    "tag", ["kaede (blue archive)", "rem (re:zero)", "Rem_(Re:Zero)", "saber (fate)"]
)
def test_a_name_with_its_series_is_a_character(tag):
    assert is_character_tag(tag)


@pytest.mark.parametrize(
    "tag", ["bow (weapon)", "star (symbol)", "pom pom (clothes)", "black hair", "(", "()"]
)
def test_general_tags_with_a_qualifier_are_not(tag):
    assert not is_character_tag(tag)


COUNTS = {"kaede (blue archive)": 10, "bow (weapon)": 10, "hatsune miku": 10, "smile": 4}


def test_with_a_trigger_the_name_tag_is_suggested_drop_with_the_reason():
    out = suggest_buckets(COUNTS, 10, Strategy(trigger="kaede"))
    s = out["kaede (blue archive)"]
    assert (s.bucket, s.reason) == (
        "drop",
        "the character's own name tag: the trigger kaede takes its place",
    )
    assert out["bow (weapon)"].bucket != "drop"
    # Without scores a name without a series is not known to be a character.
    assert out["hatsune miku"].reason.startswith("on 100% of images")


def test_without_a_trigger_never_context():
    out = suggest_buckets({"kaede (blue archive)": 1, "x": 10}, 10, Strategy())
    s = out["kaede (blue archive)"]
    # On 10% of images statistics alone would say context.
    assert s.bucket == "trait"
    assert "set a trigger" in s.reason


def test_a_profile_rule_still_wins():
    strategy = Strategy(trigger="kaede", suggest={"context": ("kaede *",)})
    assert suggest_buckets(COUNTS, 10, strategy)["kaede (blue archive)"].bucket == "context"


def test_wd14_character_category_from_the_scores(tmp_path):
    assert character_tags(tmp_path) == frozenset()
    with ScoreStore.open_for_tagging(tmp_path) as store:
        store.register_model(
            "m", "sha", [Label("smile", 0), Label("hatsune miku", 4), Label("general", 9)]
        )
    characters = character_tags(tmp_path)
    assert characters == frozenset({"hatsune miku"})
    out = suggest_buckets(COUNTS, 10, Strategy(trigger="miku"), characters=characters)
    assert out["hatsune miku"].bucket == "drop"
    assert out["smile"].bucket == "context"
