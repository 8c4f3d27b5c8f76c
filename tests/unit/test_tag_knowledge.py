"""Tests for the built-in tag knowledge (tui/core/tag_knowledge.py + data/tag_families.toml)."""

from __future__ import annotations

import dataclasses

import pytest

from tui.core.tag_knowledge import (
    BUCKETS,
    FamilyMatch,
    TagKnowledge,
    TagKnowledgeError,
    classify_tag,
    load_knowledge,
    normalise_tag,
)

FAMILY_BUCKET = {family.family: family.bucket for family in load_knowledge().families}


def bucket_of(tag: str) -> str | None:
    match = classify_tag(tag)
    return None if match is None else match.bucket


def family_of(tag: str) -> str | None:
    match = classify_tag(tag)
    return None if match is None else match.family


# --- (a) the worked example of docs/tagging.md -------------------------------------------

EXAMPLE_TRAITS = ["bangs", "black hair", "grey pants", "grey socks", "orange shirt", "short hair"]
EXAMPLE_CONTEXT = [
    "1girl", "blush", "closed eyes", "cushion", "simple background", "sitting", "smile",
    "solo", "window",
]  # fmt: skip


@pytest.mark.parametrize("tag", EXAMPLE_TRAITS)
def test_worked_example_traits(tag: str) -> None:
    assert bucket_of(tag) == "trait"


@pytest.mark.parametrize("tag", EXAMPLE_CONTEXT)
def test_worked_example_context(tag: str) -> None:
    assert bucket_of(tag) == "context"


def test_worked_example_sorts_exactly_like_the_doc() -> None:
    line = (
        "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
        "orange shirt, short hair, simple background, sitting, smile, solo, window"
    )
    source = [tag.strip() for tag in line.split(",")]
    traits = [tag for tag in source if bucket_of(tag) == "trait"]
    context = [tag for tag in source if bucket_of(tag) == "context"]
    assert traits == EXAMPLE_TRAITS
    assert context == EXAMPLE_CONTEXT


# --- (b) common tags of each family (none taken from the worked example) -----------------

FAMILY_SAMPLES: dict[str, list[str]] = {
    "hair": [
        "long hair", "very long hair", "medium hair", "blonde hair", "brown hair", "white hair",
        "pink hair", "silver hair", "multicolored hair", "streaked hair", "gradient hair",
        "ahoge", "braid", "twin braids", "side braid", "ponytail", "high ponytail",
        "side ponytail", "twintails", "low twintails", "blunt bangs", "swept bangs",
        "sidelocks", "hair bun", "double bun", "hair ornament", "hairclip", "hair ribbon",
        "hair flower", "x hair ornament", "hairband", "drill hair", "bob cut", "hair intakes",
        "wavy hair", "messy hair", "hair bow", "braided ponytail", "crossed bangs",
    ],
    "eyes": [
        "blue eyes", "red eyes", "green eyes", "purple eyes", "yellow eyes", "aqua eyes",
        "brown eyes", "heterochromia", "slit pupils", "symbol-shaped pupils", "bright pupils",
        "star-shaped pupils", "tsurime", "tareme", "eyelashes", "colored sclera",
        "black sclera", "multicolored eyes", "thick eyebrows", "colored eyelashes",
    ],
    "body": [
        "animal ears", "cat ears", "fox ears", "rabbit ears", "wolf ears", "tail", "cat tail",
        "fox tail", "wings", "bat wings", "feathered wings", "horns", "demon horns", "halo",
        "pointy ears", "elf", "large breasts", "small breasts", "flat chest", "dark skin",
        "dark-skinned female", "pale skin", "fang", "skin fang", "freckles", "mole under eye",
        "facial mark", "tattoo", "muscular", "abs", "nail polish", "red nails",
        "animal ear fluff", "cat girl", "fangs",
    ],
    "clothing": [
        "school uniform", "serafuku", "white shirt", "collared shirt", "black skirt",
        "pleated skirt", "white dress", "black jacket", "open jacket", "hoodie", "sweater",
        "thighhighs", "black thighhighs", "white socks", "kneehighs", "pantyhose",
        "black footwear", "boots", "high heels", "sneakers", "gloves", "black gloves",
        "elbow gloves", "hat", "beret", "witch hat", "red ribbon", "neck ribbon", "bow",
        "red bow", "bowtie", "necktie", "red necktie", "glasses", "round eyewear", "earrings",
        "necklace", "choker", "jewelry", "long sleeves", "detached sleeves", "bikini",
        "one-piece swimsuit", "maid headdress", "apron", "belt", "hood", "scarf", "blue pants",
        "black shorts", "white panties", "kimono", "armor", "cape", "fur trim", "frills",
        "sailor collar", "crop top", "tank top", "baseball cap", "shirt tucked in",
    ],
    "expression": [
        "open mouth", "closed mouth", "grin", ":d", ":o", ";d", "tears", "crying",
        "one eye closed", "tongue out", "parted lips", "teeth", "frown", "pout", "angry",
        "surprised", "embarrassed", "expressionless", "light smile", "nose blush",
        "sweatdrop", "^_^", ">_<", "v-shaped eyebrows", "clenched teeth", "wavy mouth",
        "raised eyebrows", ":3", "smirk",
    ],
    "gaze": [
        "looking at viewer", "looking away", "looking back", "looking to the side",
        "looking at another", "looking down", "looking up", "eye contact", "sideways glance",
        "looking ahead",
    ],
    "pose": [
        "standing", "lying", "kneeling", "squatting", "on back", "on side", "on stomach",
        "crossed arms", "crossed legs", "arm up", "arms up", "hands up", "arm support",
        "arms behind back", "leaning forward", "spread legs", "head tilt", "walking",
        "running", "jumping", "v", "outstretched arm", "all fours", "seiza", "hug",
    ],
    "gesture": [
        "hand on own hip", "hand on own chest", "hand on own face", "hand in pocket",
        "adjusting hair", "hand in own hair", "hair flip", "skirt lift", "clothes pull",
        "covering mouth", "finger to mouth", "adjusting eyewear", "holding hands",
        "own hands together",
    ],
    "held objects": [
        "holding", "holding weapon", "holding sword", "holding cup", "holding food",
        "holding book", "holding phone", "holding umbrella", "cup", "book", "sword",
        "weapon", "gun", "katana", "umbrella", "phone", "food", "bag", "flower",
        "stuffed toy", "bottle", "microphone", "unworn hat", "bow (weapon)",
    ],
    "place": [
        "indoors", "outdoors", "classroom", "bedroom", "bed", "on bed", "chair", "table",
        "desk", "couch", "pillow", "bed sheet", "curtains", "door", "tree", "beach", "ocean",
        "water", "grass", "city", "building", "street", "stairs", "on floor",
    ],
    "background": [
        "white background", "grey background", "gradient background", "black background",
        "blue background", "pink background", "transparent background",
        "two-tone background", "striped background", "polka dot background",
        "floral background", "checkered background",
    ],
    "weather & time": [
        "day", "night", "sky", "blue sky", "cloudy sky", "night sky", "starry sky", "cloud",
        "rain", "snow", "sunset", "sunlight", "moon", "full moon", "backlighting",
        "light rays", "twilight", "wind", "christmas",
    ],
    "framing": [
        "upper body", "full body", "cowboy shot", "portrait", "close-up", "from side",
        "from behind", "from above", "from below", "profile", "dutch angle", "pov",
        "multiple views", "feet out of frame", "head out of frame", "cropped legs",
        "facing viewer", "foreshortening", "blurry background", "depth of field",
    ],
    "people": [
        "1boy", "2girls", "3girls", "4girls", "6+girls", "2boys", "multiple girls",
        "multiple boys", "1other", "no humans", "solo focus", "male focus", "yuri", "hetero",
    ],
    "state": [
        "nude", "completely nude", "topless", "barefoot", "no shoes", "no bra", "wet",
        "sweat", "wet clothes", "torn clothes", "blood", "bandages", "floating hair",
        "no headwear", "shiny skin", "wet hair",
    ],
    "bare skin": ["bare shoulders", "midriff", "navel", "cleavage", "collarbone", "bare arms"],
    "effects": ["heart", "star (symbol)", "sparkle", "musical note", "motion lines", "!", "?"],
    "variant": [
        "alternate costume", "official alternate costume", "alternate hairstyle", "cosplay",
        "genderswap", "aged down",
    ],
    "defects": [
        "blurry", "lowres", "jpeg artifacts", "watermark", "signature", "artist name",
        "twitter username", "web address", "dated", "logo", "chromatic aberration",
        "film grain", "motion blur", "pixelated", "border", "white border", "letterboxed",
        "scan", "upscaled", "english text", "speech bubble", "mosaic censoring", "censored",
        "patreon username", "character name",
    ],
    "medium": [
        "monochrome", "greyscale", "sketch", "comic", "4koma", "chibi", "lineart",
        "traditional media", "3d", "pixel art", "spot color", "partially colored", "sepia",
        "watercolor (medium)",
    ],
    "meta": [
        "highres", "absurdres", "incredibly absurdres", "official art", "translated",
        "commentary request", "photoshop (medium)", "commission", "translation request",
    ],
    "rating": ["general", "sensitive", "questionable", "explicit"],
}  # fmt: skip

FAMILY_CASES = [(family, tag) for family, tags in FAMILY_SAMPLES.items() for tag in tags]


@pytest.mark.parametrize(("family", "tag"), FAMILY_CASES, ids=[t for _, t in FAMILY_CASES])
def test_common_tag_family_and_bucket(family: str, tag: str) -> None:
    match = classify_tag(tag)
    assert match is not None, f"{tag!r} is not classified"
    assert (match.family, match.bucket) == (family, FAMILY_BUCKET[family])


def test_named_buckets_of_the_brief() -> None:
    expected = {
        "hair": "trait", "eyes": "trait", "body": "trait", "clothing": "trait",
        "expression": "context", "gaze": "context", "pose": "context",
        "held objects": "context", "place": "context", "background": "context",
        "weather & time": "context", "framing": "context", "people": "context",
        "defects": "flaw", "rating": "drop",
    }  # fmt: skip
    assert {name: FAMILY_BUCKET[name] for name in expected} == expected


# --- (c) traps ---------------------------------------------------------------------------

TRAPS = {
    # eye expressions are not eye traits
    "closed eyes": ("expression", "context"),
    "half-closed eyes": ("expression", "context"),
    "rolling eyes": ("expression", "context"),
    "empty eyes": ("expression", "context"),
    "crazy eyes": ("expression", "context"),
    "wide-eyed": ("expression", "context"),
    "constricted pupils": ("expression", "context"),
    "covering eyes": ("gesture", "context"),
    "covering own eyes": ("gesture", "context"),
    # ... but eye looks that are permanent stay traits
    "glowing eyes": ("eyes", "trait"),
    "heart-shaped pupils": ("eyes", "trait"),
    # hairstyles vs actions on hair
    "hair between eyes": ("hair", "trait"),
    "hair over one eye": ("hair", "trait"),
    "hair over eyes": ("hair", "trait"),
    "hair over shoulder": ("hair", "trait"),
    "eyes visible through hair": ("hair", "trait"),
    "hand in own hair": ("gesture", "context"),
    "hair flip": ("gesture", "context"),
    "adjusting hair": ("gesture", "context"),
    "hair pull": ("gesture", "context"),
    "tying hair": ("gesture", "context"),
    "holding own hair": ("held objects", "context"),
    "alternate hairstyle": ("variant", "context"),
    "pubic hair": ("sexual content", "context"),
    "facial hair": ("body", "trait"),
    # clothes acted upon
    "skirt lift": ("gesture", "context"),
    "shirt lift": ("gesture", "context"),
    "adjusting eyewear": ("gesture", "context"),
    "holding hat": ("held objects", "context"),
    "unworn headwear": ("held objects", "context"),
    "hat removed": ("state", "context"),
    "no shirt": ("state", "context"),
    "torn pantyhose": ("state", "context"),
    # word collisions between families
    "arm ribbon": ("clothing", "trait"),
    "leg ribbon": ("clothing", "trait"),
    "girl on top": ("sexual content", "context"),
    "swim ring": ("held objects", "context"),
    "hair ribbon": ("hair", "trait"),
    "wrist scrunchie": ("clothing", "trait"),
    "scar on face": ("body", "trait"),
    "mole under mouth": ("body", "trait"),
    "scar across eye": ("body", "trait"),
    "cropped jacket": ("clothing", "trait"),
    "head wings": ("body", "trait"),
    "checkered background": ("background", "context"),
    "checkered floor": ("place", "context"),
    # blur: a defect of the image vs a depth-of-field choice
    "blurry": ("defects", "flaw"),
    "blurry background": ("framing", "context"),
    "motion blur": ("defects", "flaw"),
    # visible media stays a flaw; software used to draw is meta
    "traditional media": ("medium", "flaw"),
    "clip studio paint (medium)": ("meta", "drop"),
    "1girl": ("people", "context"),
    "no humans": ("people", "context"),
}


@pytest.mark.parametrize(("tag", "expected"), TRAPS.items(), ids=list(TRAPS))
def test_traps(tag: str, expected: tuple[str, str]) -> None:
    match = classify_tag(tag)
    assert match is not None
    assert (match.family, match.bucket) == expected


# --- (d) unknown tags ----------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["zxqv", "", "   ", "kaede (blue archive)", "qwzx hairz"])
def test_unknown_tags_return_none(tag: str) -> None:
    assert classify_tag(tag) is None


# --- (e) normalisation: underscores, case, spaces, escapes --------------------------------


@pytest.mark.parametrize(
    ("written", "family"),
    [
        ("long_hair", "hair"),
        ("looking_at_viewer", "gaze"),
        ("hair_between_eyes", "hair"),
        ("simple_background", "background"),
        ("jpeg_artifacts", "defects"),
        ("Black_Hair", "hair"),
        ("  SMILE ", "expression"),
        ("grey   pants", "clothing"),
        ("star \\(symbol\\)", "effects"),
        ("bow_\\(weapon\\)", "held objects"),
        ("^_^", "expression"),
        ("o_o", "expression"),
        (">_<", "expression"),
        ("x_x", "expression"),
    ],
)
def test_normalised_input(written: str, family: str) -> None:
    assert family_of(written) == family


def test_normalise_tag_keeps_short_emoticons() -> None:
    assert normalise_tag("^_^") == "^_^"
    assert normalise_tag("O_O") == "o_o"
    assert normalise_tag("long_hair") == "long hair"
    assert normalise_tag(" Hair_Between__Eyes ") == "hair between eyes"
    assert normalise_tag("kaede \\(blue archive\\)") == "kaede (blue archive)"


# --- the API and the data file -------------------------------------------------------------


def test_family_match_is_frozen_and_reasons_are_one_line() -> None:
    match = classify_tag("long hair")
    assert match == FamilyMatch("trait", "hair", match.reason)
    with pytest.raises(dataclasses.FrozenInstanceError):
        match.bucket = "context"  # type: ignore[misc]
    for family in load_knowledge().families:
        assert family.bucket in BUCKETS
        assert family.reason and "\n" not in family.reason


def test_knowledge_is_loaded_once() -> None:
    assert load_knowledge() is load_knowledge()


# --- the matching order, on small hand-made data ------------------------------------------

SMALL = """
[vocab]
colour = ["red", "blue"]
garment = ["shirt", "hat"]

[[family]]
name = "low"
bucket = "trait"
reason = "low priority"
priority = 1
tags = ["exact low"]
patterns = ["* thing", "{colour} {garment}"]

[[family]]
name = "high"
bucket = "context"
reason = "high priority"
priority = 9
tags = ["red hat"]
patterns = ["holding *", "* thing"]
except = ["odd thing"]

[[family]]
name = "tie"
bucket = "flaw"
reason = "same priority as high, written later"
priority = 9
patterns = ["holding *", "*-middle-*"]
"""


def test_matching_order_on_small_data() -> None:
    knowledge = TagKnowledge.from_toml(SMALL)

    def family(tag: str) -> str | None:
        match = knowledge.classify(tag)
        return None if match is None else match.family

    assert family("red hat") == "high"  # exact beats every pattern
    assert family("exact low") == "low"  # exact beats higher-priority patterns
    assert family("blue shirt") == "low"  # {colour} {garment} expanded
    assert family("green shirt") is None  # not in the vocab
    assert family("some thing") == "high"  # higher priority wins
    assert family("odd thing") == "low"  # high's exception lets low claim it
    assert family("holding cup") == "high"  # tie: the family written first wins
    assert family("a-middle-b") == "tie"  # general glob
    assert family("thing") is None  # "* thing" needs a word before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SMALL.replace('tags = ["red hat"]', 'tags = ["exact low"]'), "listed in both"),
        (SMALL.replace('bucket = "flaw"', 'bucket = "unsorted"'), "bucket"),
        (SMALL.replace("{colour} {garment}", "{size} {garment}"), "unknown placeholder"),
        (SMALL.replace('tags = ["red hat"]', 'tags = ["red_hat"]'), "not normalised"),
        (SMALL.replace('tags = ["red hat"]', 'tags = ["red *"]'), "contains '*'"),
        (SMALL.replace('reason = "low priority"', 'reason = """a\nb"""'), "one non-empty line"),
        (SMALL.replace("priority = 1\n", "priority = 1\nweight = 2\n"), "unknown keys"),
        (SMALL.replace('name = "tie"', 'name = "high"'), "used twice"),
        (SMALL.replace('tags = ["exact low"]', 'tags = ["a", "a"]'), "listed twice"),
        ("[[family]\n", "invalid TOML"),
    ],
)
def test_malformed_data_is_rejected(text: str, message: str) -> None:
    with pytest.raises(TagKnowledgeError, match=message):
        TagKnowledge.from_toml(text)
