"""The trainers' files rendered from plain inputs, checked against the trainers' rules (data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer_rules import CHECKERS, PARSERS, folders_of, kohya_violations, parse_kohya
from tui.core.export import (
    TRAINERS,
    ExportError,
    ExportPlan,
    build_subsets,
    folder_repeats,
    keep_token_count,
    render_export,
    trigger_prefix,
)

ROOT = Path("/data/kaede set")


def plan_of(images, triggers=("kaede",), folder_triggers=None, **kw) -> ExportPlan:
    ext = kw.pop("caption_extension", ".txt")
    subsets = build_subsets(images, ext, triggers, folder_triggers)
    return ExportPlan(kw.pop("root", ROOT), subsets, **kw)


def exported(trainer: str, plan: ExportPlan):
    """The file parsed, after checking it against the trainer's rules."""
    text = render_export(trainer, plan)
    parsed = PARSERS[trainer](text)
    assert CHECKERS[trainer](parsed) == []
    return parsed


def kohya_subsets(plan: ExportPlan) -> list[dict]:
    doc = exported("kohya", plan)
    assert len(doc["datasets"]) == 1
    return doc["datasets"][0]["subsets"]


def test_one_folder_kohya():
    plan = plan_of(["10_kaede/a.png", "10_kaede/b.jpg"])
    doc = exported("kohya", plan)
    assert set(doc) == {"general", "datasets"}
    dataset = doc["datasets"][0]
    assert dataset["resolution"] == 1024
    assert dataset["min_bucket_reso"] <= 1024 <= dataset["max_bucket_reso"]
    assert dataset["subsets"] == [
        {
            "image_dir": "/data/kaede set/10_kaede",
            "num_repeats": 10,
            "caption_extension": ".txt",
            "shuffle_caption": True,
            "keep_tokens": 1,
            "class_tokens": "kaede",
        }
    ]


def test_two_repeat_folders_with_their_own_triggers():
    images = ["10_school/a.png", "10_school/b.png", "5_casual/c.png"]
    triggers = {"10_school": ["kaede", "kaede school"], "5_casual": ["kaede", "kaede casual"]}
    plan = plan_of(images, folder_triggers=triggers)
    subsets = kohya_subsets(plan)
    assert [(s["image_dir"], s["num_repeats"]) for s in subsets] == [
        ("/data/kaede set/10_school", 10),
        ("/data/kaede set/5_casual", 5),
    ]
    assert [s["class_tokens"] for s in subsets] == ["kaede, kaede school", "kaede, kaede casual"]
    assert [s["keep_tokens"] for s in subsets] == [2, 2]

    concepts = exported("onetrainer", plan)
    assert [(c["name"], c["balancing"], c["text"]["keep_tags_count"]) for c in concepts] == [
        ("10_school", 10.0, 2),
        ("5_casual", 5.0, 2),
    ]
    block = exported("ai-toolkit", plan)
    assert [(d["num_repeats"], d["trigger_word"], d["keep_tokens"]) for d in block["datasets"]] == [
        (10, "kaede, kaede school", 2),
        (5, "kaede, kaede casual", 2),
    ]


def test_nested_folders_are_subsets_of_their_own_with_the_enclosing_repeats():
    images = ["a.png", "10_school/b.png", "10_school/extra/c.png", "10_school/3_pe/d.png"]
    subsets = kohya_subsets(plan_of(images))
    assert [(s["image_dir"], s["num_repeats"]) for s in subsets] == [
        ("/data/kaede set", 1),
        ("/data/kaede set/10_school", 10),
        ("/data/kaede set/10_school/3_pe", 3),
        ("/data/kaede set/10_school/extra", 10),
    ]


@pytest.mark.parametrize(
    ("folder", "repeats"),
    [("10_kaede", 10), ("010_kaede", 10), ("0_kaede", 1), ("kaede", 1), ("10kaede", 1), ("", 1)],
)
def test_folder_repeats(folder, repeats):
    assert folder_repeats(folder) == repeats


def test_trigger_with_a_comma_counts_every_part():
    plan = plan_of(["10_kaede/a.png"], triggers=["kaede, blue archive"])
    (subset,) = kohya_subsets(plan)
    assert subset["keep_tokens"] == 2
    assert subset["class_tokens"] == "kaede, blue archive"
    (concept,) = exported("onetrainer", plan)
    assert concept["text"]["keep_tags_count"] == 2


def test_no_trigger_no_keep_tokens_and_no_shuffle():
    plan = plan_of(["10_kaede/a.png"], triggers=[])
    (subset,) = kohya_subsets(plan)
    assert subset == {
        "image_dir": "/data/kaede set/10_kaede",
        "num_repeats": 10,
        "caption_extension": ".txt",
    }
    (concept,) = exported("onetrainer", plan)
    assert concept["text"]["enable_tag_shuffling"] is False
    (entry,) = exported("ai-toolkit", plan)["datasets"]
    assert "trigger_word" not in entry and "keep_tokens" not in entry


def test_caption_extension_is_written_as_the_profile_has_it():
    plan = plan_of(["10_kaede/a.png"], caption_extension=".caption")
    assert kohya_subsets(plan)[0]["caption_extension"] == ".caption"
    assert exported("ai-toolkit", plan)["datasets"][0]["caption_ext"] == ".caption"


def test_class_tokens_are_written_as_the_caption_writes_the_trigger():
    plan = plan_of(["1_k/a.png"], triggers=["kaede (blue archive)"], escape_parentheses=True)
    assert kohya_subsets(plan)[0]["class_tokens"] == "kaede \\(blue archive\\)"
    assert trigger_prefix(["a", "", "b"], ", ") == "a, b"


def test_a_separator_without_comma_pins_nothing():
    assert keep_token_count("kaede", " ") == 0
    assert keep_token_count("kaede", ",") == 1
    assert keep_token_count("", ", ") == 0


ODD_NAMES = [
    'say "cheese"',
    "back\\slash",
    "new\nline",
    "tab\there",
    "楓 カエデ",
    "emoji 😀",
    "del\x7f and c1 \x9b",
    "line\u2028sep",
    "it's",
    "#not a comment",
    "colon: yes",
    "- dash",
]


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_folder_names_come_back_exactly(trainer, name):
    root = Path("/data/odd ] [root")
    plan = plan_of([f"2_{name}/a.png"], triggers=[f'trig "{name}"'], root=root)
    parsed = exported(trainer, plan)
    assert folders_of(trainer, parsed) == [f"{root}/2_{name}"]
    text = render_export(trainer, plan)
    # Nothing a terminal acts on is left raw in the file.
    assert not any(ch in text for ch in "\t\r\x7f\x9b\u2028")
    if trainer == "kohya":
        assert parsed["datasets"][0]["subsets"][0]["class_tokens"] == f'trig "{name}"'
    if trainer == "ai-toolkit":
        assert parsed["datasets"][0]["trigger_word"] == f'trig "{name}"'


def test_onetrainer_file_is_ascii():
    text = render_export("onetrainer", plan_of(["1_楓/a.png"]))
    assert text.isascii()
    assert PARSERS["onetrainer"](text)[0]["path"] == "/data/kaede set/1_楓"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_name_that_is_not_utf8_is_refused(trainer):
    bad = b"1_caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(ExportError, match="not valid UTF-8"):
        render_export(trainer, plan_of([f"{bad}/a.png"]))


def test_folders_a_trainer_reads_nothing_in_are_left_out():
    images = ["1_gif/a.gif", "2_tif/b.tif", "3_mixed/c.Png", "4_ok/d.png"]
    plan = plan_of(images)
    kohya = [s.rsplit("/", 1)[-1] for s in folders_of("kohya", exported("kohya", plan))]
    assert kohya == ["4_ok"]
    onetrainer = [c["name"] for c in exported("onetrainer", plan)]
    assert onetrainer == ["2_tif", "3_mixed", "4_ok"]
    ai = [d.rsplit("/", 1)[-1] for d in folders_of("ai-toolkit", exported("ai-toolkit", plan))]
    assert ai == ["3_mixed", "4_ok"]
    with pytest.raises(ExportError, match="reads none of its images"):
        render_export("kohya", plan_of(["1_gif/a.gif"]))


def test_resolution():
    doc = exported("kohya", plan_of(["1_k/a.png"], resolution=1536))
    dataset = doc["datasets"][0]
    assert dataset["resolution"] == 1536
    assert dataset["min_bucket_reso"] <= 1536 <= dataset["max_bucket_reso"]
    assert dataset["max_bucket_reso"] % 64 == 0
    small = exported("kohya", plan_of(["1_k/a.png"], resolution=100))["datasets"][0]
    assert small["min_bucket_reso"] <= 100 <= small["max_bucket_reso"]
    for bad in (0, 63, 10000):
        with pytest.raises(ExportError, match="between 64 and 8192"):
            render_export("kohya", plan_of(["1_k/a.png"], resolution=bad))


def test_unknown_trainer():
    with pytest.raises(ExportError, match="unknown trainer"):
        render_export("everydream", plan_of(["1_k/a.png"]))


def test_the_rules_check_rejects_what_kohya_rejects():
    """The checker itself: each of kohya's refusals is caught (else the tests above prove
    nothing)."""
    good = parse_kohya(render_export("kohya", plan_of(["1_k/a.png"])))
    assert kohya_violations(good) == []
    subset = good["datasets"][0]["subsets"][0]
    cases = [
        ({**good, "trigger": "kaede"}, "unknown key 'trigger'"),
        ({**good, "general": {"image_dir": "/x"}}, "general: unknown key 'image_dir'"),
        ({"datasets": [{"subsets": [{**subset, "resolution": 1024}]}]}, "resolution"),
        ({"datasets": [{"subsets": [{**subset, "num_repeats": "10"}]}]}, "num_repeats"),
        ({"datasets": [{"subsets": [{**subset, "shuffle_caption": "true"}]}]}, "shuffle_caption"),
        ({"datasets": [{"subsets": [{**subset, "keep_tokens": True}]}]}, "keep_tokens"),
        ({"datasets": [{"resolution": 1.0, "subsets": [subset]}]}, "resolution"),
        ({"datasets": [{"subsets": [{"num_repeats": 1}]}]}, "missing 'image_dir'"),
    ]
    for doc, expected in cases:
        found = kohya_violations(doc)
        assert any(expected in v for v in found), (doc, found)
