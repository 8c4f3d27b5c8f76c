"""`lora-curator find DATASET QUERY`: the query language on a dataset built on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main, quote_path
from tui.core.profile import load_profile
from tui.core.workspace import Workspace

PROFILE = """schema = 1
name = "kd"
trigger = "kd"
pattern = "absorb"
[buckets]
trait = ["black hair", "blonde hair", "orange shirt"]
context = ["smile", "grin"]
flaw = ["blurry"]
drop = ["general"]
[aliases]
"gray shirt" = "orange shirt"
"""

FILES = {
    "10_kaede/a.png": None,
    "10_kaede/a.txt": "black_hair, smile, kaede_(blue_archive), bow_(weapon), t-shirt, general",
    "10_kaede/b.png": None,
    "10_kaede/b.txt": "black hair, -_-, :d, re:zero, gray shirt",
    "10_kaede/sub/c.png": None,
    "10_kaede/sub/c.txt": "blonde hair, >_<, ;), grin, blurry",
    "5_casual/d.jpg": None,
    "5_casual/d.txt": "black hair\ngrin, :|\n",  # two lines: a problem, so flagged
    "e.png": None,  # no caption
    "f.png": None,
    "f.txt": "kd, smile\n",  # already as the strategy renders it: not changed
    'we"ird.png': None,
    'we"ird.txt': "smile, kaede \\(blue archive\\)",
}


@pytest.fixture
def dataset(make_dataset, tmp_path: Path) -> tuple[Path, Path]:
    root = make_dataset(FILES)
    profile = tmp_path / "kd.toml"
    profile.write_text(PROFILE)
    return root, profile


def find(capsys, root: Path, query: str, *extra: str) -> tuple[int, list[str], str]:
    code = main(["find", str(root), query, *extra])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


A, B, C = "10_kaede/a.png", "10_kaede/b.png", "10_kaede/sub/c.png"
D, E, F, W = "5_casual/d.jpg", "e.png", "f.png", 'we"ird.png'


def printed(*images: str) -> list[str]:
    """The lines `find` prints for these images: sorted by path, quoted as `apply` quotes."""
    return [quote_path(p) for p in sorted(images)]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("black hair", [A, B, D]),
        ("Black_Hair, smile", [A]),
        ("black hair, -smile", [B, D]),
        ("smile | grin, -blurry", [A, D, F, W]),
        ("(smile | grin), -(black hair | blurry)", [F, W]),
        ("* hair", [A, B, C, D]),
        ("-*", [E]),
        ('"-_-"', [B]),
        ("-_-, :d, re:zero", [B]),
        (">_<, ;)", [C]),
        (":|", [D]),
        ("kaede (blue archive), bow (weapon), t-shirt", [A]),
        ("kaede \\(blue archive\\)", [A, W]),
        ("gray shirt", [B]),  # an alias source finds its target
        ("orange shirt", [B]),
        ("kd", [A, B, C, D, E, F, W]),  # the trigger starts every caption
        ("general", [A]),  # dropped from the caption, but the image has it
        ("name:*.jpg", [D]),
        ("name:10_kaede/*", [A, B, C]),
        ("folder:sub", [C]),
        ("folder:.", [E, F, W]),
        ("bucket:flaw", [C]),
        ("bucket:drop", [A]),
        ("bucket:unsorted", [A, B, C, D, F, W]),  # F's `kd` is a tag in no bucket
        ("-changed", [F]),
        ("flagged", [D, E]),
        ("tags<1", [E]),
        ("tags>4", [A, B, C]),
        ("tags=2", [F, W]),
        ("tags<3, -tags<1", [F, W]),
    ],
)
def test_every_construct(capsys, dataset, query: str, found: list[str]) -> None:
    root, profile = dataset
    code, lines, err = find(capsys, root, query, "--profile", str(profile))
    assert (code, lines) == (0, printed(*found))
    assert err.strip() == f"{len(found)} of 7 images"


def test_without_a_profile_the_datasets_own_strategy_is_used(capsys, dataset) -> None:
    root, _ = dataset
    assert find(capsys, root, "kd")[:2] == (0, [F])  # no trigger: only the tag `kd`
    assert find(capsys, root, "orange shirt")[:2] == (1, [])  # no alias either


def test_nothing_found_exits_1_with_nothing_on_stdout(capsys, dataset) -> None:
    root, profile = dataset
    code, lines, err = find(capsys, root, "smile, blurry", "--profile", str(profile))
    assert (code, lines, err.strip()) == (1, [], "0 of 7 images")


def test_a_query_starting_with_a_dash_is_a_query(capsys, dataset) -> None:
    root, profile = dataset
    expected = printed(B, C, D, E)
    assert find(capsys, root, "-smile")[:2] == (0, expected)
    code = main(["find", "--profile", str(profile), str(root), "-smile, -kd"])
    assert (code, capsys.readouterr().out) == (1, "")
    code = main(["find", str(root), "--profile", str(profile), "--", "-smile"])
    assert (code, capsys.readouterr().out.splitlines()) == (0, expected)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("smile |", "query at column 8: expected a tag or a qualifier after '|'"),
        ("(smile, grin", "query at column 13: expected ')' to close the '(' of column 1"),
        ('a, "b', "query at column 4: expected a closing '\"' for this quote"),
        ("bucket:traits", "query at column 8: expected a bucket: trait, context"),
        ("smile, score:smile>0.5", "query at column 8: no tagger scores: run lora-curator tag"),
        ("concept:school", "query at column 1: no concepts in this strategy"),
    ],
)
def test_errors_are_one_line_naming_the_column_and_exit_2(
    run_cli, dataset, tree_snapshot, query: str, message: str
) -> None:
    root, profile = dataset
    before = tree_snapshot(root)
    result = run_cli("find", root, query, "--profile", profile)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"lora-curator: error: {message}")
    assert tree_snapshot(root) == before


def test_find_writes_nothing_and_prints_quoted_sorted_paths(run_cli, dataset, tree_snapshot):
    root, profile = dataset
    before = tree_snapshot(root)
    result = run_cli("find", root, "smile | -_-", "--profile", profile)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '10_kaede/a.png\n10_kaede/b.png\nf.png\n"we\\"ird.png"\n'
    assert result.stderr == "4 of 7 images\n"
    assert tree_snapshot(root) == before
    assert not (root / ".lora-curator").exists()


def test_a_dataset_under_curation_is_read_as_the_app_left_it(run_cli, dataset, tree_snapshot):
    root, profile = dataset
    # The working strategy and a per-image edit, recorded as the app records them.
    with Workspace.open(root) as ws:
        ws.use_strategy(load_profile(profile), str(profile))
        ws.edit_image_tags("10_kaede/b.png", remove=["black hair"], add=["smile"])
    before = tree_snapshot(root)
    result = run_cli("find", root, "smile, -black hair")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == printed(B, F, W)
    assert tree_snapshot(root) == before
