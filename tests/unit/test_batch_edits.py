"""Batch edits (`images_tags`) and aliases in the core: one edit, replayed, refused if damaged."""

from __future__ import annotations

import pytest

from tui.core.store import Edit
from tui.core.strategy import Strategy
from tui.core.workspace import EditError, Workspace, check_edit, replay

FILES = {
    "a.png": None,
    "a.txt": "black hair, smile",
    "b.png": None,
    "b.txt": "black hair, grin",
}


def test_edit_many_is_one_edit_replayed_on_reopen(make_dataset) -> None:
    root = make_dataset(FILES)
    with Workspace.open(root) as ws:
        assert ws.edit_many(["a.png", "b.png"], add=["solo"], remove=["smile"]) == 2
        assert ws.store.last_seq() == 1
        assert ws.edit_many(["a.png", "b.png"], add=["solo"]) == 0  # both have it: nothing
        assert ws.store.last_seq() == 1
        with pytest.raises(ValueError, match="not an image"):
            ws.edit_many(["nope.png"], add=["x"])
    with Workspace.open(root) as ws:
        assert ws.image_tags("a.png") == ("black hair", "solo")
        assert ws.image_tags("b.png") == ("black hair", "grin", "solo")
        assert ws.tag_counts()["solo"] == 2


def test_a_damaged_batch_edit_is_refused_whole() -> None:
    bad = Edit(1, "images_tags", {"images": "a.png", "add": ["x"]})
    assert "images" in (check_edit(bad) or "")
    assert check_edit(Edit(1, "images_tags", {"images": ["a"], "remove": [3]})) is not None
    with pytest.raises(EditError):
        replay(Strategy(), [bad])


def test_set_alias_renames_merges_and_refuses_nonsense(make_dataset) -> None:
    root = make_dataset(FILES)
    with Workspace.open(root) as ws:
        ws.set_alias("grin", "smile")
        ws.set_alias("GRIN", "beam")  # replaces the alias, never doubles it
        assert dict(ws.strategy.aliases) == {"grin": "beam"}
        with pytest.raises(ValueError, match="itself"):
            ws.set_alias("smile", "Smile")
        with pytest.raises(ValueError, match="no alias"):
            ws.set_alias("smile", None)
        ws.set_alias("grin", None)
        assert dict(ws.strategy.aliases) == {}
        assert ws.undo()
        assert ws.strategy.alias_of("grin") == "beam"
