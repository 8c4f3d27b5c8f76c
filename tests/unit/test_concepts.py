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
