"""Suggested buckets (tui/core/suggest.py): the worked example, families, precedence, speed."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tui.core.profile import parse_profile
from tui.core.strategy import UNSORTED, Strategy
from tui.core.suggest import Suggestion, suggest_buckets
from tui.core.workspace import Workspace

# docs/tagging.md, "The worked example": the interrogator's line and how the doc sorts it.
EXAMPLE_LINE = (
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, short hair, simple background, sitting, smile, solo, window"
)
EXAMPLE_TRAITS = ["bangs", "black hair", "grey pants", "grey socks", "orange shirt", "short hair"]
EXAMPLE_CONTEXT = [
    "1girl", "blush", "closed eyes", "cushion", "simple background", "sitting", "smile",
    "solo", "window",
]  # fmt: skip


def example_tags() -> list[str]:
    return [tag.strip() for tag in EXAMPLE_LINE.split(",")]


def test_the_worked_example_sorts_exactly_like_the_doc() -> None:
    tags = example_tags()
    suggestions = suggest_buckets({tag: 1 for tag in tags}, 1, Strategy())
    assert set(suggestions) == set(tags)
    assert [t for t in tags if suggestions[t].bucket == "trait"] == EXAMPLE_TRAITS
    assert [t for t in tags if suggestions[t].bucket == "context"] == EXAMPLE_CONTEXT
    assert all(s.source == "knowledge" for s in suggestions.values())


@pytest.mark.parametrize("share", [0.05, 0.5, 1.0])
def test_the_worked_example_does_not_depend_on_counts(share: float) -> None:
    """Known families win over statistics, whatever share of images a tag is on."""
    tags = example_tags()
    total = 40
    counts = {tag: max(1, round(share * total)) for tag in tags}
    suggestions = suggest_buckets(counts, total, Strategy())
    assert [t for t in tags if suggestions[t].bucket == "trait"] == EXAMPLE_TRAITS
    assert [t for t in tags if suggestions[t].bucket == "context"] == EXAMPLE_CONTEXT


# Tags of each family, written for these tests (none from tests/unit/test_tag_knowledge.py),
# with the bucket tagging.md's reasoning gives them.
SUGGEST_CASES: dict[str, list[str]] = {
    "trait": [
        # hair
        "grey hair", "dark blue hair", "light brown hair", "two-tone hair", "split-color hair",
        "colored inner hair", "shoulder-length hair", "absurdly long hair", "asymmetrical bangs",
        "parted bangs", "single braid", "french braid", "hair bobbles", "hair scrunchie",
        "short ponytail", "one side up", "two side up", "hime cut", "curly hair",
        "straight hair", "hair rings", "spiked hair", "short twintails", "low ponytail",
        "hair behind ear",
        # eyes
        "pink eyes", "orange eyes", "grey eyes", "black eyes", "light blue eyes",
        "two-tone eyes", "gradient eyes", "long eyelashes",
        # body and species
        "dog ears", "horse ears", "mouse ears", "bear ears", "dog tail", "wolf tail",
        "multiple tails", "dragon horns", "single horn", "angel wings", "black wings",
        "demon tail", "dragon tail", "medium breasts", "huge breasts", "mole", "scar",
        "fox girl", "dog girl", "dragon girl", "demon girl", "toned",
        # clothing and worn accessories
        "black shirt", "t-shirt", "blue skirt", "miniskirt", "red dress", "sundress",
        "white jacket", "blazer", "cardigan", "coat", "trench coat", "white gloves",
        "fingerless gloves", "black pantyhose", "white thighhighs", "striped thighhighs",
        "loafers", "sandals", "brown footwear", "sunglasses", "red scarf", "black choker",
        "pendant", "bracelet", "wristwatch", "gym uniform", "military uniform", "suit",
        "vest", "sweater vest", "turtleneck", "off-shoulder shirt", "short sleeves",
        "sleeveless", "puffy sleeves", "wide sleeves", "sailor shirt", "japanese clothes",
        "hakama", "leotard", "bodysuit", "pajamas", "shorts", "denim shorts", "jeans",
        "overalls", "mask", "headphones", "black bow",
    ],
    "context": [
        # expression
        "happy", "sad", "scared", "shy", ":p", "laughing", "smug", "serious", "annoyed",
        "streaming tears", "puffy cheeks", "drooling", "licking lips", "evil smile",
        "seductive smile", "confused", "nervous", "sleepy",
        # gaze
        "looking afar", "looking at hand", "looking over eyewear", "looking outside",
        # pose
        "on one knee", "leg up", "knees up", "hugging own legs", "stretching", "bent over",
        "arched back", "arms at sides", "waving", "pointing", "salute", "dancing",
        "fighting stance", "sleeping", "reclining", "standing on one leg", "arm behind head",
        "arms behind head", "clenched hands", "fetal position", "sitting on chair",
        # gesture
        "hand on own cheek", "hands on own cheeks", "headpat", "adjusting clothes",
        "adjusting headwear", "hand to own mouth", "heart hands", "index finger raised",
        "thumbs up", "shushing", "covering face", "dress lift",
        # held objects, props, animals
        "holding knife", "holding gun", "holding flower", "holding staff", "holding bag",
        "holding fan", "holding pen", "holding bottle", "knife", "staff", "wand", "spear",
        "polearm", "shield", "smartphone", "teacup", "mug", "apple", "ice cream", "cake",
        "balloon", "cat", "dog", "bird", "car", "bicycle",
        # place
        "kitchen", "bathroom", "library", "cafe", "park", "forest", "mountain", "river",
        "lake", "shrine", "school", "hallway", "rooftop", "office", "train interior",
        "bookshelf", "fence", "road", "bench", "flower field", "field",
        # background
        "yellow background", "red background", "purple background", "green background",
        "dark background", "abstract background", "patterned background",
        "halftone background", "sparkle background",
        # weather and time
        "morning", "evening", "dusk", "sunrise", "rainbow", "autumn leaves", "autumn",
        "winter", "summer", "fog", "lightning", "crescent moon", "snowing",
        # framing
        "lower body", "straight-on", "wide shot", "upside-down", "fisheye", "eye focus",
        # people
        "5girls", "3boys", "6+boys", "multiple others", "couple", "siblings", "sisters",
        "twins",
        # temporary state
        "open clothes", "torn shirt", "wet shirt", "undressing", "injury", "bruise", "dirty",
        # body in view
        "armpits", "thighs", "feet", "legs", "back", "toes", "soles",
        # effects
        "spoken heart", "spoken question mark", "speed lines", "petals", "light particles",
        "emphasis lines", "notice lines", "flying sweatdrops", "anger vein", "zzz",
        # variant
        "aged up", "alternate hair length", "alternate hair color", "casual",
        "costume switch",
    ],
    "flaw": [
        # defects and overlays
        "artist logo", "copyright name", "bar censor", "heart censor", "pixiv username",
        "instagram username", "bad anatomy", "bad hands", "compression artifacts",
        # medium / style of the source image
        "realistic", "photorealistic", "oekaki", "colored pencil (medium)",
        "marker (medium)", "graphite (medium)", "screentones", "flat color",
        "limited palette", "photo (medium)",
    ],
    "drop": [
        "md5 mismatch", "bad id", "bad pixiv id", "bad twitter id", "third-party edit",
        "artist request", "character request", "copyright request", "source request",
        "tagme", "check translation", "partial commentary", "english commentary",
        "symbol-only commentary", "General", "Questionable", "EXPLICIT", "rating:sensitive",
    ],
}  # fmt: skip


def _hits(bucket: str) -> tuple[int, list[str]]:
    """How many tags of `bucket` the knowledge suggests right, and the misses."""
    tags = SUGGEST_CASES[bucket]
    # On 1 image of 10: statistics alone would say "context"; only knowledge counts as a hit.
    suggestions = suggest_buckets(dict.fromkeys(tags, 1), 10, Strategy())
    misses = [
        f"{tag} → {suggestions[tag].bucket} ({suggestions[tag].source})"
        for tag in tags
        if (suggestions[tag].bucket, suggestions[tag].source) != (bucket, "knowledge")
    ]
    return len(tags) - len(misses), misses


def test_family_list_is_right_at_least_nine_times_in_ten() -> None:
    total = sum(len(tags) for tags in SUGGEST_CASES.values())
    right = 0
    misses: list[str] = []
    for bucket in SUGGEST_CASES:
        hits, missed = _hits(bucket)
        right += hits
        misses += missed
    assert right / total >= 0.9, f"{right}/{total} right; misses: {misses}"


@pytest.mark.parametrize("bucket", ["trait", "context", "flaw"])
def test_each_main_bucket_is_right_at_least_nine_times_in_ten(bucket: str) -> None:
    hits, misses = _hits(bucket)
    assert hits / len(SUGGEST_CASES[bucket]) >= 0.9, misses


def test_the_traps_of_the_brief() -> None:
    tags = ["closed eyes", "blue eyes", "hair between eyes", "general", "jpeg artifacts"]
    suggestions = suggest_buckets(dict.fromkeys(tags, 3), 10, Strategy())
    assert {t: s.bucket for t, s in suggestions.items()} == {
        "closed eyes": "context",
        "blue eyes": "trait",
        "hair between eyes": "trait",
        "general": "drop",
        "jpeg artifacts": "flaw",
    }


# ---- precedence ---------------------------------------------------------------------------


def test_precedence_explicit_bucket_then_rule_then_knowledge_then_statistics() -> None:
    strategy = Strategy(
        buckets={"silver hair": "context"},
        suggest={"drop": ("* hair",)},
    )
    counts = {
        "silver hair": 10,  # explicit bucket: not unsorted, no suggestion
        "pink hair": 10,  # rule (drop) beats the knowledge (trait)
        "sitting": 10,  # knowledge (context) beats statistics (on 100%: trait)
        "zorblax": 10,  # no family: statistics
    }
    suggestions = suggest_buckets(counts, 10, strategy)
    assert "silver hair" not in suggestions
    assert suggestions["pink hair"] == Suggestion(
        "pink hair", "drop", 'profile rule "* hair" → drop', "rule"
    )
    assert (suggestions["sitting"].bucket, suggestions["sitting"].source) == (
        "context",
        "knowledge",
    )
    assert (suggestions["zorblax"].bucket, suggestions["zorblax"].source) == (
        "trait",
        "statistics",
    )


def test_without_rules_the_knowledge_answers() -> None:
    suggestions = suggest_buckets({"pink hair": 1}, 10, Strategy())
    assert suggestions["pink hair"].source == "knowledge"
    assert suggestions["pink hair"].bucket == "trait"
    assert "hair" in suggestions["pink hair"].reason


def test_rules_match_case_insensitively_in_profile_order() -> None:
    strategy = Strategy(suggest={"trait": ("*Uniform",), "context": ("school *",)})
    suggestions = suggest_buckets(
        {"School Uniform": 1, "school bag": 1, "maid UNIFORM": 1}, 10, strategy
    )
    # Both rules match "School Uniform": the one the profile lists first wins.
    assert suggestions["School Uniform"].bucket == "trait"
    assert suggestions["School Uniform"].reason == 'profile rule "*Uniform" → trait'
    assert suggestions["school bag"].reason == 'profile rule "school *" → context'
    assert suggestions["maid UNIFORM"].source == "rule"


def test_rules_accept_fnmatch_globs_and_underscored_tags() -> None:
    strategy = Strategy(suggest={"flaw": ("[0-9]girls",), "trait": ("* hair",)})
    suggestions = suggest_buckets({"3girls": 1, "long_hair": 1, "12girls": 1}, 10, strategy)
    assert suggestions["3girls"].source == "rule"
    assert suggestions["long_hair"].reason == 'profile rule "* hair" → trait'
    assert suggestions["12girls"].source != "rule"


def test_rules_from_a_profile_file() -> None:
    strategy = parse_profile(
        'schema = 1\n[suggest]\ntrait = ["* hair", "*uniform"]\n', "test.toml", "t"
    )
    suggestions = suggest_buckets({"school uniform": 2, "floating hair": 2}, 4, strategy)
    assert suggestions["school uniform"].reason == 'profile rule "*uniform" → trait'
    # "floating hair" is a state (context) in the knowledge: the profile's rule comes first.
    assert suggestions["floating hair"].bucket == "trait"


def test_statistics_reason_says_the_share_of_images() -> None:
    counts = {"zorblax": 46, "quuxle": 6, "fnord": 39, "blorp": 40}
    suggestions = suggest_buckets(counts, 50, Strategy())
    assert suggestions["zorblax"] == Suggestion(
        "zorblax",
        "trait",
        "on 92% of images: probably part of the character's look",
        "statistics",
    )
    assert suggestions["quuxle"] == Suggestion(
        "quuxle", "context", "on 12% of images: varies between images", "statistics"
    )
    # 78% is under 80%: context, and the share is rounded down so it never reads "80%".
    assert suggestions["fnord"].bucket == "context"
    assert suggestions["fnord"].reason.startswith("on 78% of images")
    assert suggestions["blorp"].bucket == "trait"  # exactly 80%


def test_statistics_threshold_follows_the_inconsistent_trait_check() -> None:
    strategy = Strategy(checks={"inconsistent_trait": 0.5})
    suggestions = suggest_buckets({"zorblax": 6, "quuxle": 4}, 10, strategy)
    assert suggestions["zorblax"].bucket == "trait"
    assert suggestions["quuxle"].bucket == "context"


def test_no_images_means_context() -> None:
    suggestions = suggest_buckets({"zorblax": 0}, 0, Strategy())
    assert suggestions["zorblax"].bucket == "context"
    assert suggestions["zorblax"].reason.startswith("on 0% of images")


def test_aliases_decide_what_is_unsorted_and_what_to_bucket() -> None:
    strategy = Strategy(
        buckets={"grey pants": "trait"},
        aliases={"gray pants": "grey pants", "gray skirt": "grey skirt", "zorb": "Zorblax"},
    )
    counts = {"gray pants": 3, "gray skirt": 3, "zorb": 5, "zorblax": 4}
    suggestions = suggest_buckets(counts, 10, strategy)
    assert "gray pants" not in suggestions  # its written form is in a bucket
    assert suggestions["gray skirt"].tag == "grey skirt"  # the tag to put in the bucket
    assert suggestions["gray skirt"].bucket == "trait"
    # Statistics count the tags that aliases write the same way together: 9 of 10 images.
    assert suggestions["zorb"].tag == "Zorblax"
    assert suggestions["zorb"].bucket == "trait"
    assert suggestions["zorb"].reason.startswith("on 90% of images")


def test_one_suggestion_for_every_unsorted_tag_of_a_dataset(sample_copy) -> None:
    from tui.core.profile import load_profile

    strategy = load_profile(sample_copy / "profiles" / "kaede.toml")
    with Workspace.open(sample_copy, strategy=strategy, read_only=True) as ws:
        counts = ws.tag_counts()
        suggestions = suggest_buckets(counts, len(ws.images), ws.strategy)
        unsorted = ws.unsorted_tags()
    assert sorted(suggestions) == sorted(unsorted)
    assert {t: s.bucket for t, s in suggestions.items()} == {
        "cup": "context",
        "holding": "context",
        "holding cup": "context",
    }
    with Workspace.open(sample_copy, strategy=Strategy(), read_only=True) as ws:
        every = suggest_buckets(ws.tag_counts(), len(ws.images), ws.strategy)
        assert set(every) == set(ws.tag_counts())
        for tag, s in every.items():
            assert ws.strategy.bucket_of(ws.strategy.alias_of(tag)) == UNSORTED
            assert s.bucket in ("trait", "context", "flaw", "drop")
            assert s.reason and "\n" not in s.reason
            assert s.source in ("rule", "knowledge", "statistics")


def test_suggestion_is_frozen() -> None:
    suggestion = suggest_buckets({"smile": 1}, 1, Strategy())["smile"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        suggestion.bucket = "trait"  # type: ignore[misc]


def _vocabulary(n: int) -> dict[str, int]:
    rng = random.Random(5)
    words = ["long", "red", "blue", "holding", "school", "zorb", "frilled", "starry", "tiny"]
    nouns = ["hair", "eyes", "skirt", "cup", "background", "quux", "sky", "ears", "blade"]
    counts: dict[str, int] = {}
    while len(counts) < n:
        tag = f"{rng.choice(words)} {rng.choice(nouns)} {len(counts)}"
        if rng.random() < 0.5:
            tag = f"{rng.choice(words)} {rng.choice(nouns)}" + "x" * (len(counts) % 7)
        counts[tag] = rng.randint(1, 1000)
    return counts


def test_three_thousand_tags_one_suggestion_each_unsorted() -> None:
    # (Its speed is measured by bench/suggest.py, not here.)
    counts = _vocabulary(3000)
    strategy = Strategy(
        buckets={tag: "trait" for tag in list(counts)[:300]},
        aliases={"scarlet hair": "crimson hair"},
        suggest={"trait": ("* ears*",), "drop": ("tiny *",)},
    )
    result = suggest_buckets(counts, 1000, strategy)
    assert len(result) == 2700
    assert set(result) == set(list(counts)[300:])
