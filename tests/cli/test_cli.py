"""The command line, run as a real subprocess (`python -m tui ...`) on copies of the sample."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUMMARY = re.compile(r"^(\d+) written, (\d+) unchanged, (\d+) skipped$")

# The sample's captions rendered with profiles/kaede.toml (absorb, trigger `kaede`), worked out
# by hand from the caption files: traits removed, `general`/`sensitive`/`kaede (sample)` dropped,
# `cup`/`holding`/`holding cup` unsorted (kept), underscores read as spaces.
SAMPLE_ABSORB = {
    "10_kaede/kaede_01.png": "kaede, 1girl, blush, closed eyes, cushion, simple background, "
    "sitting, smile, solo, window",
    "10_kaede/kaede_02.png": "kaede, 1girl, full body, looking at viewer, simple background, "
    "smile, solo, standing, white background",
    "10_kaede/kaede_03.png": "kaede, 1girl, blue sky, cloud, day, open mouth, outdoors, sky, "
    "smile, solo, standing",
    "10_kaede/kaede_04.png": "kaede, 1girl, cup, cushion, holding, holding cup, indoors, "
    "looking at viewer, sitting, smile, solo",
    "10_kaede/kaede_05.jpg": "kaede, 1girl, blush, looking at viewer, open mouth, "
    "simple background, solo, upper body",
    "10_kaede/kaede_06.png": "kaede, 1girl, blurry, simple background, solo, standing",
    "10_kaede/kaede_07.webp": "kaede, 1girl, closed eyes, day, grass, outdoors, sitting, sky, "
    "smile, solo",
    "10_kaede/kaede_08.png": "kaede, 1girl, blurry, cup, holding cup, solo, upper body",
    "10_kaede/kaede_09.png": "kaede",  # no caption file: no source tags, just the trigger
    "10_kaede/kaede_10.jpg": "kaede, 1girl, indoors, looking at viewer, solo, standing, window",
    "10_kaede/kaede_11.png": "kaede, 1girl, looking at viewer, simple background, smile, solo, "
    "upper body, white background",
    "10_kaede/kaede_12.png": "kaede, 1girl, closed eyes, full body, simple background, smile, "
    "solo, standing",
}


def profile_of(dataset: Path) -> str:
    return str(dataset / "profiles" / "kaede.toml")


def caption_path(dataset: Path, image: str) -> Path:
    return dataset / (image.rsplit(".", 1)[0] + ".txt")


def summary_of(result: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    last = result.stderr.strip().splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, f"no summary as the last line of stderr: {result.stderr!r}"
    written, unchanged, skipped = map(int, match.groups())
    return written, unchanged, skipped


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lora-curator: error: ")
    return lines[0]


def dry_run_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == sorted(lines)
    pairs = [line.split("\t") for line in lines]
    assert all(len(p) == 2 for p in pairs), lines
    return dict(pairs)


def originals(dataset: Path) -> dict[str, bytes]:
    return {p.relative_to(dataset).as_posix(): p.read_bytes() for p in dataset.rglob("*.txt")}


# ---- apply --dry-run ---------------------------------------------------------------------------


def test_dry_run_prints_the_absorb_captions_and_writes_nothing(run_cli, sample_copy, tree_snapshot):
    before = tree_snapshot(sample_copy)
    result = run_cli("apply", sample_copy, "--profile", profile_of(sample_copy), "--dry-run")
    assert dry_run_lines(result) == SAMPLE_ABSORB
    assert result.stdout.splitlines()[0] == (
        "10_kaede/kaede_01.png\tkaede, 1girl, blush, closed eyes, cushion, simple background, "
        "sitting, smile, solo, window"
    )
    assert tree_snapshot(sample_copy) == before
    assert not (sample_copy / ".lora-curator").exists()


def test_dry_run_with_pattern_and_trigger_overrides(run_cli, sample_copy):
    result = run_cli(
        "apply",
        sample_copy,
        "--profile",
        profile_of(sample_copy),
        "--pattern",
        "keep-all",
        "--trigger",
        "kd",
        "--dry-run",
    )
    lines = dry_run_lines(result)
    assert lines["10_kaede/kaede_01.png"] == (
        "kd, 1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
        "orange shirt, short hair, simple background, sitting, smile, solo, window"
    )
    assert lines["10_kaede/kaede_12.png"] == (
        "kd, 1girl, bangs, black hair, closed eyes, full body, grey pants, grey socks, "
        "orange shirt, short hair, simple background, smile, solo, standing"
    )
    profile = profile_of(sample_copy)
    traits_only = run_cli(
        "apply", sample_copy, "--profile", profile, "--pattern", "traits-only", "--dry-run"
    )
    assert dry_run_lines(traits_only)["10_kaede/kaede_06.png"] == (
        "kaede, black hair, blurry, grey pants, orange shirt, short hair"
    )


def test_dry_run_paths_use_slashes_relative_to_the_dataset(run_cli, make_dataset, tmp_path):
    root = make_dataset({"b/deep/x.png": None, "b/deep/x.txt": "smile", "a.png": None})
    profile = tmp_path / "p.toml"
    profile.write_text('schema = 1\ntrigger = "kd"\n')
    result = run_cli("apply", root, "--profile", profile, "--dry-run")
    assert result.stdout == "a.png\tkd\nb/deep/x.png\tkd, smile\n"


# ---- apply -------------------------------------------------------------------------------------


def test_apply_writes_captions_then_nothing(run_cli, sample_copy):
    first = run_cli("apply", sample_copy, "--profile", profile_of(sample_copy))
    assert first.returncode == 0, first.stderr
    # 11 captions change (the trigger is added) and kaede_09.txt is created.
    assert summary_of(first) == (12, 0, 0)
    for image, caption in SAMPLE_ABSORB.items():
        assert caption_path(sample_copy, image).read_bytes() == (caption + "\n").encode()
    assert (sample_copy / ".lora-curator" / "state.sqlite3").is_file()

    second = run_cli("apply", sample_copy, "--profile", profile_of(sample_copy))
    assert second.returncode == 0, second.stderr
    assert summary_of(second) == (0, 12, 0)


def test_working_strategy_is_used_without_profile(run_cli, sample_copy):
    assert run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)).returncode == 0
    # The profile file may even disappear: the dataset remembers its working strategy.
    os.remove(profile_of(sample_copy))
    again = run_cli("apply", sample_copy)
    assert again.returncode == 0, again.stderr
    assert summary_of(again) == (0, 12, 0)
    assert dry_run_lines(run_cli("apply", sample_copy, "--dry-run")) == SAMPLE_ABSORB


def test_a_second_profile_becomes_the_working_strategy(run_cli, sample_copy, tmp_path):
    other = tmp_path / "other.toml"
    text = Path(profile_of(sample_copy)).read_text(encoding="utf-8")
    other.write_text(text.replace('trigger = "kaede"', 'trigger = "kd"'), encoding="utf-8")
    assert run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)).returncode == 0
    switched = run_cli("apply", sample_copy, "--profile", other)
    assert summary_of(switched) == (12, 0, 0)
    kaede_01 = caption_path(sample_copy, "10_kaede/kaede_01.png")
    assert kaede_01.read_text().startswith("kd, 1girl, ")
    # A later apply without --profile keeps the last profile applied.
    later = run_cli("apply", sample_copy)
    assert summary_of(later) == (0, 12, 0)
    assert kaede_01.read_text().startswith("kd, 1girl, ")


def test_apply_without_any_strategy_is_a_usage_error(run_cli, sample_copy):
    message = assert_one_line_error(run_cli("apply", sample_copy))
    assert "--profile" in message
    message = assert_one_line_error(run_cli("apply", sample_copy, "--dry-run"))
    assert "--profile" in message
    assert originals(sample_copy) == originals(Path(__file__).parents[2] / "sample_dataset")


def test_dry_run_after_apply_writes_nothing(run_cli, sample_copy, tree_snapshot):
    assert run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)).returncode == 0
    before = tree_snapshot(sample_copy)
    result = run_cli("apply", sample_copy, "--dry-run", "--trigger", "kd")
    assert dry_run_lines(result)["10_kaede/kaede_09.png"] == "kd"
    after = tree_snapshot(sample_copy)
    assert sorted(after) == sorted(before)
    assert after == before


def test_empty_caption_is_skipped_and_reported(run_cli, make_dataset, tmp_path):
    root = make_dataset(
        {"a.png": None, "a.txt": "general, sensitive\n", "b.png": None, "b.txt": "smile\n"}
    )
    profile = tmp_path / "drop.toml"
    profile.write_text('schema = 1\n[buckets]\ndrop = ["general", "sensitive"]\n')
    result = run_cli("apply", root, "--profile", profile)
    assert result.returncode == 0, result.stderr
    assert "a.png: empty caption" in result.stderr
    assert summary_of(result) == (0, 1, 1)
    assert (root / "a.txt").read_bytes() == b"general, sensitive\n"


def test_write_refused_outside_the_dataset_exits_1(run_cli, make_dataset, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"smile\n")
    root = make_dataset({"a.png": None, "b.png": None, "b.txt": "blush\n"})
    os.symlink(outside, root / "a.txt")
    profile = tmp_path / "p.toml"
    profile.write_text('schema = 1\ntrigger = "kd"\n')
    result = run_cli("apply", root, "--profile", profile)
    assert result.returncode == 1
    assert "a.txt" in result.stderr
    assert summary_of(result) == (1, 0, 1)
    assert outside.read_bytes() == b"smile\n"
    assert (root / "b.txt").read_bytes() == b"kd, blush\n"


# ---- restore -----------------------------------------------------------------------------------


def test_restore_puts_the_originals_back(run_cli, sample_copy):
    before = originals(sample_copy)
    assert run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)).returncode == 0
    assert (sample_copy / "10_kaede" / "kaede_09.txt").exists()
    result = run_cli("restore", sample_copy)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "12 restored, 0 unchanged, 0 failed"
    assert originals(sample_copy) == before
    assert not (sample_copy / "10_kaede" / "kaede_09.txt").exists()


# ---- tags --------------------------------------------------------------------------------------


def hand_counts(dataset: Path) -> dict[str, int]:
    """Tag → number of images, read from the sample's captions without the engine."""
    counts: dict[str, int] = {}
    for path in dataset.rglob("*.txt"):
        text = path.read_text(encoding="utf-8").replace("\\(", "(").replace("\\)", ")")
        for tag in {t.strip().replace("_", " ") for t in text.split(",")}:
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_tags_json(run_cli, sample_copy):
    result = run_cli("tags", sample_copy, "--json", "--profile", profile_of(sample_copy))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(set(row) == {"tag", "images", "percent", "bucket"} for row in rows)
    counts = hand_counts(sample_copy)
    assert {row["tag"]: row["images"] for row in rows} == counts
    assert [row["images"] for row in rows] == sorted((row["images"] for row in rows), reverse=True)
    by_tag = {row["tag"]: row for row in rows}
    assert by_tag["1girl"] == {"tag": "1girl", "images": 11, "percent": 91.7, "bucket": "context"}
    assert by_tag["blurry"] == {"tag": "blurry", "images": 2, "percent": 16.7, "bucket": "flaw"}
    assert by_tag["general"]["bucket"] == "drop"
    assert by_tag["kaede (sample)"]["bucket"] == "drop"
    assert by_tag["black hair"]["bucket"] == "trait"
    assert by_tag["cup"]["bucket"] == "unsorted"
    # `tags` only reads: no state folder.
    assert not (sample_copy / ".lora-curator").exists()


def test_tags_text_without_profile(run_cli, sample_copy):
    result = run_cli("tags", sample_copy)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["1girl", "11", "91.7%", "unsorted"]
    assert {r[3] for r in rows} == {"unsorted"}
    assert len(rows) == len(hand_counts(sample_copy))


def test_tags_with_a_library_profile(run_cli, sample_copy, isolated_config):
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    shutil.copy(profile_of(sample_copy), library / "kaede.toml")
    result = run_cli("tags", sample_copy, "--json", "--profile", "kaede")
    assert result.returncode == 0, result.stderr
    by_tag = {row["tag"]: row["bucket"] for row in json.loads(result.stdout)}
    assert by_tag["short hair"] == "trait"


# ---- profile -----------------------------------------------------------------------------------


def test_profile_new_list_show(run_cli, isolated_config, sample_copy):
    created = run_cli("profile", "new", "kaede2", "--trigger", "kd", "--pattern", "traits-only")
    assert created.returncode == 0, created.stderr
    path = isolated_config / "lora-curator" / "profiles" / "kaede2.toml"
    assert created.stdout.strip() == str(path)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["trigger"] == "kd"

    listed = run_cli("profile", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["kaede2"]
    assert "kd" in listed.stdout
    assert "traits-only" in listed.stdout

    shown = run_cli("profile", "show", "kaede2")
    assert shown.returncode == 0, shown.stderr
    data = tomllib.loads(shown.stdout)
    assert (data["schema"], data["name"], data["trigger"], data["pattern"]) == (
        1,
        "kaede2",
        "kd",
        "traits-only",
    )

    # The new library profile can drive apply by name (no buckets: every tag unsorted, kept).
    applied = run_cli("apply", sample_copy, "--profile", "kaede2", "--dry-run")
    assert dry_run_lines(applied)["10_kaede/kaede_06.png"] == (
        "kd, 1girl, black hair, blurry, general, grey pants, orange shirt, short hair, "
        "simple background, solo, standing"
    )

    again = run_cli("profile", "new", "kaede2")
    assert "already exists" in assert_one_line_error(again)


def test_profile_show_accepts_a_path(run_cli, sample_copy):
    shown = run_cli("profile", "show", profile_of(sample_copy))
    assert shown.returncode == 0, shown.stderr
    assert tomllib.loads(shown.stdout)["buckets"]["flaw"] == ["blurry"]


@pytest.mark.parametrize("name", ["../../x", "../../../../x", "..", ".hidden"])
def test_profile_names_cannot_escape_the_library(run_cli, tmp_path, name):
    config = tmp_path / "a" / "b" / "config"
    result = run_cli("profile", "new", name, env={"XDG_CONFIG_HOME": str(config)})
    assert_one_line_error(result)
    assert list(tmp_path.rglob("*.toml")) == []


def test_unknown_library_profile(run_cli, sample_copy):
    message = assert_one_line_error(run_cli("apply", sample_copy, "--profile", "ghost"))
    assert "'ghost'" in message
    assert_one_line_error(run_cli("profile", "show", "ghost"))


# ---- errors and exit codes ---------------------------------------------------------------------


def test_missing_dataset(run_cli, tmp_path):
    message = assert_one_line_error(run_cli("tags", tmp_path / "nope"))
    assert str(tmp_path / "nope") in message
    assert_one_line_error(run_cli("apply", tmp_path / "nope", "--dry-run"))
    assert_one_line_error(run_cli("restore", tmp_path / "nope"))


def test_broken_profile_names_the_file(run_cli, sample_copy, tmp_path):
    profile = tmp_path / "broken.toml"
    profile.write_text('schema = 1\npattern = "absorbs"\n')
    message = assert_one_line_error(run_cli("apply", sample_copy, "--profile", profile))
    assert str(profile) in message
    assert "keep-all" in message
    assert not (sample_copy / ".lora-curator").exists()


def test_missing_profile_file(run_cli, sample_copy, tmp_path):
    message = assert_one_line_error(
        run_cli("apply", sample_copy, "--profile", tmp_path / "nope.toml")
    )
    assert str(tmp_path / "nope.toml") in message


def test_unreadable_state_is_a_failure(run_cli, sample_copy):
    (sample_copy / ".lora-curator").mkdir()
    (sample_copy / ".lora-curator" / "state.sqlite3").write_bytes(b"not a database\n")
    before = originals(sample_copy)
    message = assert_one_line_error(
        run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)), code=1
    )
    assert "state.sqlite3" in message
    assert_one_line_error(run_cli("tags", sample_copy), code=1)
    assert originals(sample_copy) == before


def test_bad_arguments_exit_2(run_cli, sample_copy):
    bad_pattern = run_cli("apply", sample_copy, "--pattern", "absorb-all")
    assert bad_pattern.returncode == 2
    assert "absorb-all" in bad_pattern.stderr
    assert "Traceback" not in bad_pattern.stderr
    assert run_cli("profile").returncode == 2
    assert run_cli("apply").returncode == 2


def test_help_and_version(run_cli):
    helped = run_cli("--help")
    assert helped.returncode == 0
    for command in ("apply", "tags", "restore", "profile"):
        assert command in helped.stdout
    version = run_cli("apply", "--help")
    assert version.returncode == 0
    assert "--dry-run" in version.stdout


def test_console_script_matches_python_m_tui(run_cli, sample_copy, isolated_config):
    script = Path(sys.executable).parent / "lora-curator"
    assert script.exists(), "the package is not installed (pip install -e '.[test]')"
    env = dict(os.environ, XDG_CONFIG_HOME=str(isolated_config))
    args = ["apply", str(sample_copy), "--profile", profile_of(sample_copy), "--dry-run"]
    by_script = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, timeout=60
    )
    by_module = run_cli(*args)
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout
    assert by_script.stderr == by_module.stderr
    failing = subprocess.run(
        [str(script), "apply", str(sample_copy)], capture_output=True, text=True, env=env
    )
    assert failing.returncode == run_cli("apply", str(sample_copy)).returncode == 2
