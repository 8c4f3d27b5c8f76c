"""`lora-curator edit` and `lora-curator alias`: batch edits recorded in the state only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import snapshot_tree
from tui.cli import main
from tui.core.workspace import Workspace

FILES = {
    "a.png": None,
    "a.txt": "black hair, smile, blush",
    "b.png": None,
    "b.txt": "black hair, grin",
    "c.png": None,
    "c.txt": "blonde hair, smile",
}


def outside_state(root: Path) -> dict:
    return {k: v for k, v in snapshot_tree(root).items() if not k.startswith(".lora-curator")}


def dry_run(capsys, root: Path) -> dict[str, str]:
    assert main(["apply", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    return dict(line.split("\t", 1) for line in out.splitlines())


@pytest.fixture
def root(make_dataset) -> Path:
    return make_dataset(FILES)


def test_edit_where_adds_and_removes_then_apply_shows_and_undo_reverts(capsys, root):
    before = outside_state(root)
    code = main(
        ["edit", str(root), "--where", "black hair", "--add", "serious", "--remove", "smile"]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "2 image(s) edited" in err
    assert outside_state(root) == before  # no caption file written
    shown = dry_run(capsys, root)
    assert shown["a.png"] == "black hair, blush, serious"
    assert shown["b.png"] == "black hair, grin, serious"
    assert shown["c.png"] == "blonde hair, smile"
    with Workspace.open(root) as ws:
        assert "serious" in ws.image_tags("a.png")
        assert ws.undo()  # the whole batch is one step
        assert ws.image_tags("a.png") == ("black hair", "smile", "blush")
        assert ws.image_tags("b.png") == ("black hair", "grin")
    with Workspace.open(root) as ws:  # the undo is in the state: reopened, still undone
        assert ws.image_tags("a.png") == ("black hair", "smile", "blush")
        assert ws.redo()
        assert "serious" in ws.image_tags("b.png")


def test_edit_without_where_edits_every_image_and_a_negated_query_works(capsys, root):
    assert main(["edit", str(root), "--add", "solo"]) == 0
    assert "3 image(s) edited" in capsys.readouterr().err
    assert main(["edit", str(root), "--where", "-smile", "--remove", "solo"]) == 0
    assert "1 image(s) edited" in capsys.readouterr().err
    shown = dry_run(capsys, root)
    assert shown["b.png"] == "black hair, grin"
    assert shown["a.png"].endswith("solo")


def test_edit_counts_only_images_it_changes(capsys, root):
    assert main(["edit", str(root), "--where", "smile", "--add", "blush"]) == 0
    assert "1 image(s) edited of the 2 found" in capsys.readouterr().err


def test_edit_malformed_query_exits_2_with_the_column(capsys, root):
    before = snapshot_tree(root)
    assert main(["edit", str(root), "--where", "smile, (grin", "--add", "x"]) == 2
    err = capsys.readouterr().err
    assert "column" in err or "query at" in err
    assert snapshot_tree(root) == before  # the dataset not even opened


def test_edit_without_add_or_remove_is_a_usage_error(capsys, root):
    before = snapshot_tree(root)
    assert main(["edit", str(root), "--where", "smile"]) == 2
    assert "--add" in capsys.readouterr().err
    assert snapshot_tree(root) == before


def test_alias_renames_then_merges_then_remove_and_undo(capsys, root):
    before = outside_state(root)
    assert main(["alias", str(root), "grin", "smile"]) == 0
    assert "merged into" in capsys.readouterr().err
    assert main(["alias", str(root), "blonde hair", "yellow hair"]) == 0
    assert "renamed to" in capsys.readouterr().err
    assert outside_state(root) == before
    shown = dry_run(capsys, root)
    assert shown["b.png"] == "black hair, smile"
    assert shown["c.png"] == "yellow hair, smile"
    assert main(["alias", str(root), "--remove", "grin"]) == 0
    capsys.readouterr()
    assert dry_run(capsys, root)["b.png"] == "black hair, grin"
    with Workspace.open(root) as ws:
        assert ws.undo()  # the removal undone: grin is smile again
        assert ws.strategy.alias_of("grin") == "smile"
        assert ws.undo()
        assert ws.strategy.alias_of("blonde hair") == "blonde hair"


def test_alias_usage_errors(capsys, root):
    assert main(["alias", str(root), "grin"]) == 2
    assert main(["alias", str(root), "--remove", "grin"]) == 2  # no such alias
    assert "no alias" in capsys.readouterr().err
    assert main(["alias", str(root), "grin", "GRIN"]) == 2


def test_tags_and_queries_that_start_with_a_dash(capsys, make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "-_-, smile", "b.png": None, "b.txt": "grin"})
    assert main(["alias", str(root), "-_-", "sad"]) == 0
    assert "renamed to" in capsys.readouterr().err
    assert main(["edit", str(root), "--where", "-smile", "--add", "-.-"]) == 0
    assert "1 image(s) edited" in capsys.readouterr().err
    shown = dry_run(capsys, root)
    assert shown["a.png"] == "sad, smile"
    assert shown["b.png"] == "grin, -.-"
