"""A caption changed by another tool is never overwritten silently: the app marks the image
and offers adopt (A) or overwrite (O)."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.core.workspace import Workspace

RETAGGED = "1girl, red hair, standing\n"


def retag_outside(dataset: Path) -> Path:
    """Open once (the originals are snapshotted), then change a caption as a tagger would."""
    with Workspace.open(dataset):
        pass
    caption = dataset / "10_kaede" / "window.txt"
    caption.write_text(RETAGGED, encoding="utf-8")
    return caption


async def test_adopt_takes_the_new_tags_and_undo_brings_the_old_back(worked_example: Path):
    caption = retag_outside(worked_example)
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.files.row_text(app.image, 40).plain[1] == "!"
        assert "changed on disk" in str(app.caption.render())
        await pilot.press("ctrl+s")  # a save does not overwrite it
        await settle(pilot, app)
        assert caption.read_text(encoding="utf-8") == RETAGGED
        await pilot.press("A")
        assert list(app.ws.image_tags(app.image)) == ["1girl", "red hair", "standing"]
        assert app.caption.shown == "1girl, red hair, standing"
        assert app.files.row_text(app.image, 40).plain[1] == " "
        await pilot.press("ctrl+z")  # the old source is in the history
        assert "black hair" in app.ws.image_tags(app.image)


async def test_overwrite_lets_the_next_save_write_ours(worked_example: Path):
    caption = retag_outside(worked_example)
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("P", "O", "ctrl+s")  # absorb (nothing sorted: all kept), then ours
        await settle(pilot, app)
        assert caption.read_text(encoding="utf-8") == app.ws.caption_for(app.image)
        assert "black hair" in caption.read_text(encoding="utf-8")


async def test_adopt_keys_are_off_for_an_unchanged_image(worked_example: Path):
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        before = list(app.ws.image_tags(app.image))
        await pilot.press("A", "O")
        assert list(app.ws.image_tags(app.image)) == before
        assert not app.ws.unsaved
