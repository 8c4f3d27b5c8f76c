"""`lora-curator export`, run as a real subprocess; its files checked against the trainers'
rules (data), never by importing a trainer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer_rules import CHECKERS, PARSERS, folders_of

TRAINERS = ("kohya", "onetrainer", "ai-toolkit")


def checked(trainer: str, text: str):
    parsed = PARSERS[trainer](text)
    assert CHECKERS[trainer](parsed) == []
    return parsed


def profile_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text("schema = 1\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize("trainer", TRAINERS)
def test_export_the_sample_writes_nothing_in_the_dataset(
    run_cli, sample_copy, tree_snapshot, trainer
):
    before = tree_snapshot(sample_copy)
    profile = sample_copy / "profiles" / "kaede.toml"
    result = run_cli("export", trainer, sample_copy, "--profile", profile)
    assert result.returncode == 0, result.stderr
    parsed = checked(trainer, result.stdout)
    assert folders_of(trainer, parsed) == [str(sample_copy.resolve() / "10_kaede")]
    assert tree_snapshot(sample_copy) == before
    assert not (sample_copy / ".lora-curator").exists()


def test_kohya_export_of_the_sample(run_cli, sample_copy):
    profile = sample_copy / "profiles" / "kaede.toml"
    result = run_cli("export", "kohya", sample_copy, "--profile", profile, "--resolution", "768")
    doc = checked("kohya", result.stdout)
    dataset = doc["datasets"][0]
    assert dataset["resolution"] == 768
    assert dataset["subsets"] == [
        {
            "image_dir": str(sample_copy.resolve() / "10_kaede"),
            "num_repeats": 10,
            "caption_extension": ".txt",
            "shuffle_caption": True,
            "keep_tokens": 1,
            "class_tokens": "kaede",
        }
    ]


def test_export_uses_the_working_strategy(run_cli, sample_copy):
    profile = sample_copy / "profiles" / "kaede.toml"
    before = run_cli("export", "kohya", sample_copy, "--profile", profile)
    assert "run `lora-curator apply` first" in before.stderr  # the captions are not rendered yet
    assert run_cli("apply", sample_copy, "--profile", profile, "--trigger", "kd").returncode == 0
    result = run_cli("export", "kohya", sample_copy)
    assert result.returncode == 0, result.stderr
    assert checked("kohya", result.stdout)["datasets"][0]["subsets"][0]["class_tokens"] == "kd"
    assert "apply` first" not in result.stderr


def test_no_strategy_yet_is_a_usage_error(run_cli, sample_copy):
    result = run_cli("export", "kohya", sample_copy)
    assert result.returncode == 2
    assert "no working strategy yet" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (sample_copy / ".lora-curator").exists()


def test_two_repeat_folders_nested_folders_and_a_comma_trigger(run_cli, make_dataset, tmp_path):
    root = make_dataset(
        {
            "10_school/a.png": None,
            "10_school/a.txt": "serafuku, smile",
            "10_school/extra/b.png": None,
            "5_casual/c.jpg": None,
            "5_casual/c.txt": "orange shirt",
        }
    )
    profile = profile_file(tmp_path, 'trigger = "kaede, blue archive"\n')
    for trainer in TRAINERS:
        result = run_cli("export", trainer, root, "--profile", profile)
        assert result.returncode == 0, result.stderr
        parsed = checked(trainer, result.stdout)
        assert folders_of(trainer, parsed) == [
            str(root.resolve() / "10_school"),
            str(root.resolve() / "10_school" / "extra"),
            str(root.resolve() / "5_casual"),
        ]
    kohya = checked("kohya", run_cli("export", "kohya", root, "--profile", profile).stdout)
    subsets = kohya["datasets"][0]["subsets"]
    assert [s["num_repeats"] for s in subsets] == [10, 10, 5]
    assert {s["keep_tokens"] for s in subsets} == {2}
    # ai-toolkit reads folders recursively: the nested folder's image would train twice.
    ai = run_cli("export", "ai-toolkit", root, "--profile", profile)
    assert "ai-toolkit reads folders recursively" in ai.stderr
    # The export counts the comma trigger's parts itself: no note about it.
    assert "holds a comma" not in ai.stderr


def test_no_trigger(run_cli, make_dataset, tmp_path):
    root = make_dataset({"3_k/a.png": None, "3_k/a.txt": "smile"})
    profile = profile_file(tmp_path, 'trigger = ""\n')
    result = run_cli("export", "kohya", root, "--profile", profile)
    (subset,) = checked("kohya", result.stdout)["datasets"][0]["subsets"]
    assert subset == {
        "image_dir": str(root.resolve() / "3_k"),
        "num_repeats": 3,
        "caption_extension": ".txt",
    }


@pytest.mark.parametrize("trainer", TRAINERS)
def test_odd_folder_names(run_cli, make_dataset, tmp_path, trainer):
    names = ['2_say "hi"', "3_back\\slash", "4_new\nline", "5_楓", "6_it's: #1"]
    root = make_dataset({f"{n}/a.png": None for n in names}, name="odd [set]")
    profile = profile_file(tmp_path, 'trigger = "kaede"\n')
    result = run_cli("export", trainer, root, "--profile", profile)
    assert result.returncode == 0, result.stderr
    parsed = checked(trainer, result.stdout)
    assert sorted(folders_of(trainer, parsed)) == sorted(str(root.resolve() / n) for n in names)


def test_output_file(run_cli, sample_copy, tmp_path, tree_snapshot):
    profile = sample_copy / "profiles" / "kaede.toml"
    out = tmp_path / "kaede.toml"
    before = tree_snapshot(sample_copy)
    result = run_cli("export", "kohya", sample_copy, "--profile", profile, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    stdout = run_cli("export", "kohya", sample_copy, "--profile", profile).stdout
    assert out.read_text(encoding="utf-8") == stdout
    checked("kohya", out.read_text(encoding="utf-8"))
    assert tree_snapshot(sample_copy) == before

    out.write_text("mine\n")
    again = run_cli("export", "kohya", sample_copy, "--profile", profile, "-o", out)
    assert again.returncode == 2 and "--force" in again.stderr
    assert out.read_text() == "mine\n"
    forced = run_cli("export", "kohya", sample_copy, "--profile", profile, "-o", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_text(encoding="utf-8") == stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lora-curator-tmp")]


def test_output_never_lands_on_the_datasets_files(run_cli, sample_copy, tree_snapshot):
    profile = sample_copy / "profiles" / "kaede.toml"
    before = tree_snapshot(sample_copy)
    for target in (
        sample_copy / "10_kaede" / "kaede_01.txt",
        sample_copy / "10_kaede" / "kaede_09.txt",  # a caption that does not exist yet
        sample_copy / "10_kaede" / "kaede_01.png",
        sample_copy / ".lora-curator" / "x.toml",
    ):
        result = run_cli(
            "export", "kohya", sample_copy, "--profile", profile, "-o", target, "--force"
        )
        assert result.returncode == 2, (target, result.stderr)
        assert "Traceback" not in result.stderr
    assert tree_snapshot(sample_copy) == before
    # Beside the images, under a name no caption can have, is allowed.
    beside = sample_copy / "kohya.toml"
    assert (
        run_cli("export", "kohya", sample_copy, "--profile", profile, "-o", beside).returncode == 0
    )
    checked("kohya", beside.read_text(encoding="utf-8"))


def test_output_folder_missing(run_cli, sample_copy, tmp_path):
    profile = sample_copy / "profiles" / "kaede.toml"
    target = tmp_path / "nope" / "k.toml"
    result = run_cli("export", "kohya", sample_copy, "--profile", profile, "-o", target)
    assert result.returncode == 2
    assert "no such folder" in result.stderr


def test_notes_on_what_the_trainer_will_not_see(run_cli, make_dataset, tmp_path):
    root = make_dataset(
        {
            "2_k/a.png": None,
            "2_k/a.txt": "(red eyes, glowing:0.8), smile",
            "2_k/b.Png": None,
            "2_k/b.txt": "smile",
            "2_k/c.gif": None,
        }
    )
    profile = profile_file(tmp_path, 'trigger = "kaede"\n')
    kohya = run_cli("export", "kohya", root, "--profile", profile)
    assert kohya.returncode == 0, kohya.stderr
    assert "kohya sd-scripts never reads 1 image(s)" in kohya.stderr
    assert "no trainer reads" in kohya.stderr
    assert "(red eyes:0.8), (glowing:0.8)" in kohya.stderr
    onetrainer = run_cli("export", "onetrainer", root, "--profile", profile)
    assert "OneTrainer never reads" not in onetrainer.stderr  # it reads .Png
    (concept,) = checked("onetrainer", onetrainer.stdout)
    assert concept["path"] == str(root.resolve() / "2_k")


def test_caption_extension_onetrainer_ignores(run_cli, make_dataset, tmp_path):
    root = make_dataset({"2_k/a.png": None, "2_k/a.caption": "smile"})
    profile = profile_file(tmp_path, 'trigger = "kaede"\n[caption]\nextension = ".caption"\n')
    result = run_cli("export", "onetrainer", root, "--profile", profile)
    assert result.returncode == 0
    assert "OneTrainer reads only .txt caption files" in result.stderr
    kohya = run_cli("export", "kohya", root, "--profile", profile)
    subset = checked("kohya", kohya.stdout)["datasets"][0]["subsets"][0]
    assert subset["caption_extension"] == ".caption"
    assert "OneTrainer" not in kohya.stderr


def test_bad_resolution_and_trainer(run_cli, sample_copy):
    profile = sample_copy / "profiles" / "kaede.toml"
    bad = run_cli("export", "kohya", sample_copy, "--profile", profile, "--resolution", "10")
    assert bad.returncode == 2 and "between 64 and 8192" in bad.stderr
    unknown = run_cli("export", "everydream", sample_copy, "--profile", profile)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_nothing_a_trainer_reads_is_one_line_error(run_cli, make_dataset, tmp_path):
    root = make_dataset({"2_k/a.gif": None}, name="bad\nname")
    profile = profile_file(tmp_path, 'trigger = "kaede"\n')
    result = run_cli("export", "kohya", root, "--profile", profile)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lora-curator: error: ")
    assert "kohya sd-scripts reads none of its images" in lines[0]
    assert "bad\\nname" in lines[0]
