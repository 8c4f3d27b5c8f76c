"""`lora-curator suggest`, `check` and `guide`, run as real subprocesses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pictures import picture
from tui.core.workspace import Workspace


def profile_of(dataset: Path) -> str:
    return str(dataset / "profiles" / "kaede.toml")


def picture_bytes(seed: int, size: tuple[int, int] = (600, 600)) -> bytes:
    """A sharp PNG, distinct per seed."""
    out = io.BytesIO()
    picture(seed, size).save(out, "PNG")
    return out.getvalue()


CLEAN_PROFILE = """schema = 1
name = "clean"
trigger = "kd"
pattern = "absorb"
[buckets]
trait = ["black hair", "red scarf"]
context = ["smile", "sitting", "standing", "blush"]
"""


@pytest.fixture
def clean(make_dataset) -> tuple[Path, Path]:
    """A dataset with nothing wrong (under absorb, only the double-up advice), and its profile."""
    context = ["smile", "sitting", "standing", "blush", "smile, sitting"]
    files: dict[str, bytes | str | None] = {}
    for n, extra in enumerate(context):
        files[f"c{n}.png"] = picture_bytes(n)
        files[f"c{n}.txt"] = f"black hair, red scarf, {extra}"
    root = make_dataset(files, name="clean")
    profile = root.parent / "clean.toml"
    profile.write_text(CLEAN_PROFILE, encoding="utf-8")
    return root, profile


# ---- suggest --------------------------------------------------------------------------------


def test_suggest_prints_every_unsorted_tag_by_image_count(run_cli, sample_copy, tree_snapshot):
    before = tree_snapshot(sample_copy)
    result = run_cli("suggest", sample_copy, "--profile", profile_of(sample_copy))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    # The sample's unsorted tags: `cup` and `holding cup` on 2 images, `holding` on 1.
    assert [r[:2] for r in rows] == [
        ["cup", "context"],
        ["holding cup", "context"],
        ["holding", "context"],
    ]
    assert all(len(r) == 3 and r[2] for r in rows)
    assert tree_snapshot(sample_copy) == before  # read-only: no state created


def test_suggest_json_without_a_profile_covers_every_tag(run_cli, sample_copy):
    result = run_cli("suggest", sample_copy, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    tags = run_cli("tags", sample_copy, "--json")
    assert {r["tag"] for r in rows} == {t["tag"] for t in json.loads(tags.stdout)}
    assert set(rows[0]) == {"tag", "images", "bucket", "reason", "source"}
    counts = [r["images"] for r in rows]
    assert counts == sorted(counts, reverse=True)
    by_tag = {r["tag"]: r for r in rows}
    assert by_tag["black hair"]["bucket"] == "trait"
    assert by_tag["closed eyes"]["bucket"] == "context"
    assert by_tag["blurry"]["bucket"] == "flaw"
    assert by_tag["general"]["bucket"] == "drop"
    assert by_tag["kaede (sample)"]["source"] in ("knowledge", "statistics")


def test_suggest_usage_errors(run_cli, tmp_path):
    result = run_cli("suggest", tmp_path / "missing")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# ---- check ----------------------------------------------------------------------------------


def parse_check_text(stdout: str) -> list[tuple[str, str, list[str]]]:
    """(kind, message, images) of each finding of the text output."""
    findings: list[tuple[str, str, list[str]]] = []
    for line in stdout.splitlines():
        if line.startswith("    "):
            findings[-1][2].append(line.strip())
        else:
            kind, message = line.split("\t", 1)
            findings.append((kind, message, []))
    return findings


def test_check_on_the_sample_finds_problems_and_exits_1(run_cli, sample_copy):
    result = run_cli("check", sample_copy, "--profile", profile_of(sample_copy))
    assert result.returncode == 1, result.stderr
    findings = parse_check_text(result.stdout)
    kinds = {kind for kind, _, _ in findings}
    # kaede_09.png has no caption file; the sample's pictures are all small (≤ 500 px).
    assert ("uncaptioned", ["10_kaede/kaede_09.png"]) in [(k, i) for k, _, i in findings]
    assert "untagged-lowres" in kinds
    assert "double-up" in kinds
    # The two blurred pictures are tagged `blurry`: no untagged blur.
    assert "untagged-blur" not in kinds
    assert "problem" in result.stderr.splitlines()[-1]
    # Measures are cached in the state.
    assert (sample_copy / ".lora-curator" / "state.sqlite3").exists()
    with Workspace.open(sample_copy, read_only=True) as ws:
        assert ws.store is not None
        assert len(ws.store.measures()) == 12


def test_check_json_lists_findings(run_cli, sample_copy):
    result = run_cli("check", sample_copy, "--profile", profile_of(sample_copy), "--json")
    assert result.returncode == 1
    rows = json.loads(result.stdout)
    assert rows and all(set(r) == {"kind", "severity", "message", "images", "tag"} for r in rows)
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["uncaptioned"]["images"] == ["10_kaede/kaede_09.png"]
    assert by_kind["double-up"]["severity"] == "advice"
    assert len(by_kind["untagged-lowres"]["images"]) == 12


def test_check_clean_dataset_exits_0_with_advice_only(run_cli, clean):
    root, profile = clean
    result = run_cli("check", root, "--profile", profile)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [kind for kind, _, _ in parse_check_text(result.stdout)] == ["double-up"]
    assert "0 problem(s), 1 advice" in result.stderr


def test_check_clean_keep_all_prints_nothing(run_cli, clean):
    root, profile = clean
    profile.write_text(CLEAN_PROFILE.replace('"absorb"', '"keep-all"'), encoding="utf-8")
    result = run_cli("check", root, "--profile", profile)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "clean" in result.stderr


def test_check_exit_1_on_a_planted_duplicate(run_cli, clean):
    root, profile = clean
    (root / "dup.png").write_bytes((root / "c0.png").read_bytes())
    (root / "dup.txt").write_text("black hair, red scarf, blush", encoding="utf-8")
    result = run_cli("check", root, "--profile", profile, "--json")
    assert result.returncode == 1
    rows = {r["kind"]: r for r in json.loads(result.stdout)}
    assert rows["identical-files"]["images"] == ["c0.png", "dup.png"]


def test_check_long_image_lists_are_cut_in_text(run_cli, make_dataset):
    files: dict[str, bytes | str | None] = {f"i{n:02}.png": None for n in range(25)}
    root = make_dataset(files, name="many")
    result = run_cli("check", root)
    assert result.returncode == 1
    (uncaptioned,) = [f for f in parse_check_text(result.stdout) if f[0] == "uncaptioned"]
    assert len(uncaptioned[2]) == 21
    assert uncaptioned[2][-1] == "… and 5 more (--json lists them all)"


def test_check_on_a_dataset_locked_by_the_app_measures_without_the_cache(run_cli, clean):
    root, profile = clean
    with Workspace.open(root) as ws:  # holds the dataset's lock, as the app does
        result = run_cli("check", root, "--profile", profile)
        assert ws.store is not None
        assert ws.store.measures() == {}
    assert result.returncode == 0, result.stderr
    assert "without the cache" in result.stderr
    assert [kind for kind, _, _ in parse_check_text(result.stdout)] == ["double-up"]


def test_second_check_uses_the_cache(run_cli, clean):
    root, profile = clean
    first = run_cli("check", root, "--profile", profile, "--json")
    with Workspace.open(root, read_only=True) as ws:
        assert ws.store is not None
        cached = ws.store.measures()
    assert len(cached) == 5
    second = run_cli("check", root, "--profile", profile, "--json")
    assert second.stdout == first.stdout
    with Workspace.open(root, read_only=True) as ws:
        assert ws.store is not None
        assert ws.store.measures() == cached


# ---- guide ----------------------------------------------------------------------------------


def test_guide_of_a_profile_alone(run_cli, sample_copy):
    result = run_cli("guide", "--profile", profile_of(sample_copy))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("# Prompt guide: kaede\n")
    assert "counts are unknown" in out
    for heading in (
        "## Trigger",
        "## Absorbed — don't prompt these",
        "## Promptable",
        "## Negative prompt",
        "## Pattern: absorb",
    ):
        assert f"\n{heading}\n" in out
    assert "- `black hair`\n" in out


def test_guide_with_a_dataset_has_counts(run_cli, sample_copy, tree_snapshot):
    before = tree_snapshot(sample_copy)
    result = run_cli("guide", "--profile", profile_of(sample_copy), sample_copy)
    assert result.returncode == 0, result.stderr
    assert "- `black hair` — 11 of 12 images" in result.stdout
    assert "counts are unknown" not in result.stdout
    assert tree_snapshot(sample_copy) == before


def test_guide_uses_the_working_strategy(run_cli, sample_copy):
    assert run_cli("apply", sample_copy, "--profile", profile_of(sample_copy)).returncode == 0
    result = run_cli("guide", sample_copy)
    assert result.returncode == 0, result.stderr
    assert "## Pattern: absorb" in result.stdout


def test_guide_usage_errors(run_cli, sample_copy):
    nothing = run_cli("guide")
    assert nothing.returncode == 2
    assert "lora-curator: error:" in nothing.stderr
    no_strategy = run_cli("guide", sample_copy)
    assert no_strategy.returncode == 2
    assert "no working strategy" in no_strategy.stderr


def test_headless_commands_never_import_textual(sample_copy):
    code = (
        "import sys\n"
        "from tui.cli import main\n"
        f"main(['check', {str(sample_copy)!r}])\n"
        f"main(['suggest', {str(sample_copy)!r}])\n"
        f"main(['guide', '--profile', {profile_of(sample_copy)!r}, {str(sample_copy)!r}])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich_pixels'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_help_lists_the_new_commands(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("suggest", "check", "guide"):
        assert command in result.stdout


def test_suggest_explains_implied_and_character_name_tags(run_cli, make_dataset, tmp_path):
    root = make_dataset(
        {
            "a.png": None,
            "a.txt": "kaede (blue archive), orange shirt, shirt, bow (weapon)\n",
            "b.png": None,
            "b.txt": "kaede (blue archive), orange shirt, shirt, smile\n",
        }
    )
    profile = tmp_path / "p.toml"
    profile.write_text('schema = 1\ntrigger = "kaede"\n')
    result = run_cli("suggest", root, "--profile", profile, "--json")
    assert result.returncode == 0, result.stderr
    by_tag = {r["tag"]: r for r in json.loads(result.stdout)}
    assert by_tag["kaede (blue archive)"]["bucket"] == "drop"
    assert by_tag["kaede (blue archive)"]["reason"] == (
        "the character's own name tag: the trigger kaede takes its place"
    )
    assert by_tag["shirt"]["bucket"] == "drop"
    assert by_tag["shirt"]["reason"].startswith("implied by a more specific tag on 100%")
    assert by_tag["bow (weapon)"]["bucket"] != "drop"
    assert by_tag["orange shirt"]["bucket"] != "drop"
