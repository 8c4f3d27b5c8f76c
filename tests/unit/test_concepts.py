"""Several outfits in one LoRA: concepts with their own triggers and buckets (tagging.md,
"Several outfits"), rendered exactly, through the profile and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui import cli
from tui.core.profile import ProfileError, dump_profile, load_profile, parse_profile
from tui.core.workspace import Workspace

PROFILE = """\
schema = 1
name = "kaede"
trigger = "kaede"
pattern = "{pattern}"
[buckets]
trait = ["black hair", "short hair", "brown eyes"]
context = ["1girl", "sitting", "smile", "standing"]
[aliases]
"red bow" = "red neckerchief"

[[concepts]]
name = "school"
trigger = "kaede school"
folders = ["10_school"]
tags = ["serafuku"]
{school_pattern}
[concepts.buckets]
trait = ["serafuku", "red neckerchief", "pleated skirt"]

[[concepts]]
name = "casual"
trigger = "kaede casual"
folders = ["5_casual"]
[concepts.buckets]
trait = ["orange shirt", "grey pants"]
"""

CAPTIONS = {
    # in the school folder
    "10_school/s1": "1girl, black hair, short hair, brown eyes, serafuku, red neckerchief, "
    "pleated skirt, sitting, smile",
    # the school folder, with an alias onto a concept trait
    "10_school/s2": "1girl, black hair, red bow, serafuku, smile",
    # the casual folder
    "5_casual/c1": "1girl, black hair, short hair, brown eyes, orange shirt, grey pants, "
    "standing, smile",
    # the casual folder *and* the school concept's tag: in two concepts, school listed first
    "5_casual/c2": "1girl, black hair, orange shirt, grey pants, serafuku, standing",
    # in no concept: school's traits are ordinary tags here
    "extra/n1": "1girl, black hair, short hair, brown eyes, sweater, pleated skirt, smile",
}

EXPECTED = {
    "absorb": {
        "10_school/s1.png": "kaede, kaede school, 1girl, sitting, smile",
        "10_school/s2.png": "kaede, kaede school, 1girl, smile",
        "5_casual/c1.png": "kaede, kaede casual, 1girl, standing, smile",
        "5_casual/c2.png": "kaede, kaede school, 1girl, orange shirt, grey pants, standing",
        "extra/n1.png": "kaede, 1girl, sweater, pleated skirt, smile",
    },
    "keep-all": {
        "10_school/s1.png": "kaede, kaede school, 1girl, black hair, short hair, brown eyes, "
        "serafuku, red neckerchief, pleated skirt, sitting, smile",
        "10_school/s2.png": "kaede, kaede school, 1girl, black hair, red neckerchief, serafuku, "
        "smile",
        "5_casual/c1.png": "kaede, kaede casual, 1girl, black hair, short hair, brown eyes, "
        "orange shirt, grey pants, standing, smile",
        "5_casual/c2.png": "kaede, kaede school, 1girl, black hair, orange shirt, grey pants, "
        "serafuku, standing",
        "extra/n1.png": "kaede, 1girl, black hair, short hair, brown eyes, sweater, "
        "pleated skirt, smile",
    },
    "traits-only": {
        "10_school/s1.png": "kaede, kaede school, black hair, short hair, brown eyes, serafuku, "
        "red neckerchief, pleated skirt",
        "10_school/s2.png": "kaede, kaede school, black hair, red neckerchief, serafuku",
        "5_casual/c1.png": "kaede, kaede casual, black hair, short hair, brown eyes, "
        "orange shirt, grey pants",
        "5_casual/c2.png": "kaede, kaede school, black hair, orange shirt, grey pants, serafuku",
        "extra/n1.png": "kaede, black hair, short hair, brown eyes, sweater, pleated skirt",
    },
}


def make_dataset(root: Path) -> Path:
    from PIL import Image

    for stem, caption in CAPTIONS.items():
        path = root / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "white").save(path)
        path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    return root


def write_profile(tmp_path: Path, pattern: str, school_pattern: str = "") -> Path:
    path = tmp_path / "kaede.toml"
    text = PROFILE.format(
        pattern=pattern,
        school_pattern=f'pattern = "{school_pattern}"' if school_pattern else "",
    )
    path.write_text(text, encoding="utf-8")
    return path


def dry_run(capsys, dataset: Path, profile: Path) -> dict[str, str]:
    capsys.readouterr()
    assert cli.main(["apply", str(dataset), "--profile", str(profile), "--dry-run"]) == 0
    out = capsys.readouterr().out
    return dict(line.split("\t", 1) for line in out.splitlines())


@pytest.mark.parametrize("pattern", ["absorb", "keep-all", "traits-only"])
def test_every_pattern_renders_each_concept_exactly(tmp_path, capsys, pattern):
    dataset = make_dataset(tmp_path / "ds")
    assert dry_run(capsys, dataset, write_profile(tmp_path, pattern)) == EXPECTED[pattern]


def test_a_concepts_own_pattern_applies_inside_it_only(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    got = dry_run(capsys, dataset, write_profile(tmp_path, "absorb", school_pattern="keep-all"))
    assert got["10_school/s1.png"] == EXPECTED["keep-all"]["10_school/s1.png"]
    # The other concept and the images in none keep the profile's pattern.
    assert got["5_casual/c1.png"] == EXPECTED["absorb"]["5_casual/c1.png"]
    assert got["extra/n1.png"] == EXPECTED["absorb"]["extra/n1.png"]


def test_the_workspace_names_each_images_concepts(tmp_path):
    dataset = make_dataset(tmp_path / "ds")
    strategy = load_profile(write_profile(tmp_path, "absorb"))
    with Workspace.open(dataset, strategy=strategy, read_only=True) as ws:
        names = {e.image: [c.name for c in ws.concepts_of(e.image)] for e in ws.images}
    assert names == {
        "10_school/s1.png": ["school"],
        "10_school/s2.png": ["school"],
        "5_casual/c1.png": ["casual"],
        "5_casual/c2.png": ["school", "casual"],  # by tag, and by folder
        "extra/n1.png": [],
    }


def test_per_image_edits_move_an_image_into_a_concept_by_tag(tmp_path):
    dataset = make_dataset(tmp_path / "ds")
    strategy = load_profile(write_profile(tmp_path, "absorb"))
    with Workspace.open(dataset, strategy=strategy) as ws:
        ws.use_strategy(strategy)
        ws.edit_image_tags("extra/n1.png", add=["serafuku"])
        assert ws.caption_for("extra/n1.png") == ("kaede, kaede school, 1girl, sweater, smile\n")
        ws.undo()
        assert ws.caption_for("extra/n1.png") == EXPECTED["absorb"]["extra/n1.png"] + "\n"


def test_a_trigger_is_written_once_even_when_it_is_also_a_tag(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    (dataset / "10_school/s1.txt").write_text("kaede school, smile, kaede\n", encoding="utf-8")
    got = dry_run(capsys, dataset, write_profile(tmp_path, "absorb"))
    assert got["10_school/s1.png"] == "kaede, kaede school, smile"


def test_concepts_round_trip_through_the_profile(tmp_path):
    strategy = load_profile(write_profile(tmp_path, "absorb", school_pattern="traits-only"))
    again = parse_profile(dump_profile(strategy), "again.toml")
    assert again == strategy
    school = again.concept_named("school")
    assert school is not None
    assert school.pattern == "traits-only"
    assert school.folders == ("10_school",)
    assert school.tags == ("serafuku",)
    assert school.tags_in("trait") == ["serafuku", "red neckerchief", "pleated skirt"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('[[concepts]]\ntrigger = "x"\n', "concepts[1]: missing 'name'"),
        ('[[concepts]]\nname = ""\n', "concepts[1].name"),
        ('[[concepts]]\nname = "a"\n[[concepts]]\nname = "a"\n', "concepts[2].name"),
        ('[[concepts]]\nname = "a"\ntrigger = 3\n', "concepts[1].trigger"),
        ('[[concepts]]\nname = "a"\nfolders = "10_school"\n', "concepts[1].folders"),
        ('[[concepts]]\nname = "a"\nfolders = ["../up"]\n', "concepts[1].folders"),
        ('[[concepts]]\nname = "a"\nfolders = ["/abs"]\n', "concepts[1].folders"),
        ('[[concepts]]\nname = "a"\ntags = [1]\n', "concepts[1].tags"),
        ('[[concepts]]\nname = "a"\npattern = "soak"\n', "concepts[1].pattern"),
        ('[[concepts]]\nname = "a"\ncolour = "red"\n', "unknown key 'colour' in [concepts[1]]"),
        (
            '[[concepts]]\nname = "a"\n[concepts.buckets]\ntrait = ["x"]\ndrop = ["X"]\n',
            "concepts[1].buckets: tag 'X' is in two buckets",
        ),
        ('[[concepts]]\nname = "a"\n[concepts.buckets]\nwear = ["x"]\n', "concepts[1].buckets"),
        ('concepts = "school"\n', "[[concepts]]"),
    ],
)
def test_concept_errors_name_the_file_and_the_key(tmp_path, body, where):
    path = tmp_path / "bad.toml"
    path.write_text("schema = 1\n" + body, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value)
    assert where in str(info.value)


# ---- diagnostics per concept ----------------------------------------------------------------


def check_json(capsys, dataset: Path, profile: Path) -> dict[str, list[dict]]:
    import json

    capsys.readouterr()
    code = cli.main(["check", str(dataset), "--profile", str(profile), "--json"])
    findings = json.loads(capsys.readouterr().out)
    assert code == (1 if any(f["severity"] == "problem" for f in findings) else 0)
    by_kind: dict[str, list[dict]] = {}
    for f in findings:
        by_kind.setdefault(f["kind"], []).append(f)
    return by_kind


def test_check_names_an_image_in_two_concepts(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    found = check_json(capsys, dataset, write_profile(tmp_path, "absorb"))
    [overlap] = found["concept-overlap"]
    assert overlap["images"] == ["5_casual/c2.png"]
    assert "'school' and 'casual'" in overlap["message"]
    assert '"school", listed first' in overlap["message"]


def test_check_names_a_concept_trait_missing_from_part_of_the_concept(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    found = check_json(capsys, dataset, write_profile(tmp_path, "absorb"))
    by_tag = {f["tag"]: f for f in found["concept-inconsistent-trait"]}
    # school's members: s1, s2 (by folder) and c2 (by tag, listed first)
    assert by_tag["pleated skirt"]["images"] == ["10_school/s2.png", "5_casual/c2.png"]
    assert 'concept "school"' in by_tag["pleated skirt"]["message"]
    assert "serafuku" not in by_tag  # on all three
    assert "red neckerchief" in by_tag  # s2's `red bow` counts through the alias; c2 lacks it
    assert by_tag["red neckerchief"]["images"] == ["5_casual/c2.png"]
    # Under keep-all nothing is absorbed: no such finding.
    assert "concept-inconsistent-trait" not in check_json(
        capsys, dataset, write_profile(tmp_path, "keep-all")
    )


def test_check_names_a_concept_trigger_that_is_a_tag(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    (dataset / "extra/n1.txt").write_text("1girl, kaede casual, smile\n", encoding="utf-8")
    found = check_json(capsys, dataset, write_profile(tmp_path, "absorb"))
    [hit] = found["concept-trigger-is-a-tag"]
    assert hit["images"] == ["extra/n1.png"]
    assert '"kaede casual"' in hit["message"]


def test_check_names_a_trait_shared_by_two_concepts_under_traits_only(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    profile = write_profile(tmp_path, "traits-only")
    text = profile.read_text(encoding="utf-8").replace(
        'trait = ["orange shirt", "grey pants"]',
        'trait = ["orange shirt", "grey pants", "pleated skirt"]',
    )
    profile.write_text(text, encoding="utf-8")
    found = check_json(capsys, dataset, profile)
    tags = {f["tag"] for f in found["concept-shared-trait"]}
    # In both concepts' buckets; and casual's `orange shirt` is on c2, school's by its tag.
    assert "pleated skirt" in tags
    message = next(f for f in found["concept-shared-trait"] if f["tag"] == "pleated skirt")
    assert '"school" and "casual"' in message["message"]
    # absorb keeps outfits apart by their triggers: no interference reported.
    assert "concept-shared-trait" not in check_json(
        capsys, dataset, write_profile(tmp_path, "absorb")
    )


def test_check_flags_a_concept_outweighing_another_by_images_times_repeats(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds")
    found = check_json(capsys, dataset, write_profile(tmp_path, "absorb"))
    # school: s1, s2 × 10 + c2 × 5 = 25; casual: c1 × 5 = 5
    [balance] = found["concept-balance"]
    assert '"school" outweighs "casual" 5.0×' in balance["message"]
    assert balance["images"] == ["5_casual/c1.png"]
    # Even them out: 10_school → 2_school makes school 2 + 2 + 5 = 9 ≤ 3 × 5.
    (dataset / "10_school").rename(dataset / "2_school")
    profile = write_profile(tmp_path, "absorb")
    profile.write_text(
        profile.read_text(encoding="utf-8").replace("10_school", "2_school"), encoding="utf-8"
    )
    assert "concept-balance" not in check_json(capsys, dataset, profile)


def test_the_guide_has_a_section_per_concept(tmp_path, capsys):
    profile = write_profile(tmp_path, "absorb", school_pattern="keep-all")
    capsys.readouterr()
    assert cli.main(["guide", "--profile", str(profile)]) == 0
    guide = capsys.readouterr().out
    school = guide.split("## Concept: school", 1)[1].split("## ", 1)[0]
    casual = guide.split("## Concept: casual", 1)[1].split("## ", 1)[0]
    assert "Prompt `kaede, kaede school`" in school
    assert "don't prompt" not in school  # keep-all: nothing absorbed
    assert "- `serafuku`" in school  # promptable
    assert "Prompt `kaede, kaede casual`" in casual
    assert "Absorbed by `kaede casual` — don't prompt these" in casual
    assert "- `orange shirt`" in casual
    assert "four ears" in casual.lower() or "stacks" in casual


def test_concept_edits_are_undoable_and_survive_a_reopen(tmp_path):
    from tui.core.strategy import Concept

    dataset = make_dataset(tmp_path / "ds")
    strategy = load_profile(write_profile(tmp_path, "absorb"))
    with Workspace.open(dataset, strategy=strategy) as ws:
        ws.use_strategy(strategy)
        # `sweater` becomes a trait of a new concept made from the `extra` folder.
        ws.add_concept(Concept(name="extra", trigger="kaede extra", folders=("extra",)))
        ws.set_buckets([("sweater", "trait")], concept="extra")
        assert ws.caption_for("extra/n1.png") == "kaede, kaede extra, 1girl, pleated skirt, smile\n"
        # The concept's bucket does not reach other images.
        ws.edit_image_tags("5_casual/c1.png", add=["sweater"])
        assert "sweater" in ws.caption_for("5_casual/c1.png")
    with Workspace.open(dataset) as ws:
        assert ws.caption_for("extra/n1.png") == "kaede, kaede extra, 1girl, pleated skirt, smile\n"
        ws.undo()  # the per-image add
        ws.undo()  # the concept bucket
        assert (
            ws.caption_for("extra/n1.png")
            == "kaede, kaede extra, 1girl, sweater, pleated skirt, smile\n"
        )
        ws.undo()  # the concept
        assert ws.caption_for("extra/n1.png") == EXPECTED["absorb"]["extra/n1.png"] + "\n"
        assert [c.name for c in ws.strategy.concepts] == ["school", "casual"]
        with pytest.raises(ValueError, match="no concept named 'extra'"):
            ws.set_buckets([("sweater", "trait")], concept="extra")


# ---- hand-off: the export knows each folder's triggers --------------------------------------


def test_kohya_export_pins_the_concept_trigger_of_each_folder(tmp_path, capsys):
    import tomllib

    dataset = make_dataset(tmp_path / "ds")
    profile = write_profile(tmp_path, "absorb")
    capsys.readouterr()
    assert cli.main(["export", "kohya", str(dataset), "--profile", str(profile)]) == 0
    config = tomllib.loads(capsys.readouterr().out)
    subsets = {Path(s["image_dir"]).name: s for s in config["datasets"][0]["subsets"]}
    school = subsets["10_school"]
    assert (school["class_tokens"], school["keep_tokens"]) == ("kaede, kaede school", 2)
    assert school["num_repeats"] == 10
    # 5_casual holds c1 (casual) and c2 (school, by its tag): only the character trigger
    # leads both, so only it is pinned.
    casual = subsets["5_casual"]
    assert (casual["class_tokens"], casual["keep_tokens"]) == ("kaede", 1)
    assert subsets["extra"]["class_tokens"] == "kaede"
