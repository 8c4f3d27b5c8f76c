"""Finding images by their tags with `/` and editing what it found: batch add and remove,
rename and merge from the tag list, each one undo step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.app.screens.dialogs import ConfirmScreen, PromptScreen
from tui.core.workspace import Workspace

FILES = {
    "a.png": None,
    "a.txt": "black hair, smile, blush",
    "b.png": None,
    "b.txt": "black hair, grin",
    "c.png": None,
    "c.txt": "blonde hair, smile",
    "d.png": None,
    "d.txt": "black hair, smile",
}


@pytest.fixture
def dataset(make_dataset) -> Path:
    return make_dataset(FILES)


def status_of(app: CuratorApp) -> str:
    return str(app.query_one("#status").render())


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space", ",": "comma", "-": "minus"}.get(c, c) for c in text])


async def filter_files(pilot, query: str) -> None:
    await pilot.press("/")
    await type_text(pilot, query)
    await pilot.press("enter")


async def test_slash_filters_the_files_by_a_query_and_keeps_the_last_good_result(
    dataset: Path,
) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("/")
        await type_text(pilot, "black hair, -smile")
        assert list(app.files.rows) == ["b.png"]
        await pilot.press("backspace", "backspace", "backspace", "backspace", "backspace")
        await pilot.press("backspace", "backspace")  # "black hair,": still a query
        assert sorted(app.files.rows) == ["a.png", "b.png", "d.png"]
        await type_text(pilot, "(smile")  # malformed while typing: error shown, rows kept
        assert sorted(app.files.rows) == ["a.png", "b.png", "d.png"]
        assert "column" in status_of(app)
        assert "column" in str(app.query_one("#filter").border_title)
        await type_text(pilot, ")")
        assert sorted(app.files.rows) == ["a.png", "d.png"]
        assert "column" not in status_of(app)
        await pilot.press("escape")
        await pilot.press("/")
        await type_text(pilot, "name:c*")
        assert list(app.files.rows) == ["c.png"]


async def test_b_adds_a_tag_to_every_shown_image_as_one_undo_step(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("b")  # not filtered: nothing happens, the user is told how
        assert not isinstance(app.screen, PromptScreen)
        await filter_files(pilot, "black hair")
        await pilot.press("b")
        assert isinstance(app.screen, PromptScreen)
        assert "3 images shown" in app.screen.title_text  # the count before it runs
        await type_text(pilot, "serious")
        await pilot.press("enter")
        ws = app.ws
        for image in ("a.png", "b.png", "d.png"):
            assert "serious" in ws.image_tags(image)
        assert "serious" not in ws.image_tags("c.png")
        await pilot.press("ctrl+z")  # the whole batch in one step
        assert all("serious" not in ws.image_tags(i) for i in ("a.png", "b.png", "d.png"))
        await pilot.press("ctrl+y")
    with Workspace.open(dataset) as ws:  # committed at once
        assert "serious" in ws.image_tags("b.png")
        assert "serious" not in ws.image_tags("c.png")


async def test_x_removes_the_highlighted_tag_from_every_shown_image(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await filter_files(pilot, "black hair")
        app.files.move_to("a.png")
        await pilot.pause()
        app.tags.move_to("smile")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        # smile is on 2 of the 3 images shown (c.png has it too, but is not shown).
        assert "2 image(s) (of the 3 shown)" in status_of(app)
        await pilot.press("y")
        ws = app.ws
        assert "smile" not in ws.image_tags("a.png")
        assert "smile" not in ws.image_tags("d.png")
        assert "smile" in ws.image_tags("c.png")
        await pilot.press("ctrl+z")
        assert "smile" in ws.image_tags("a.png") and "smile" in ws.image_tags("d.png")
        await pilot.press("ctrl+z")  # nothing else was recorded
        assert app.ws.store.cursor() == 0


async def test_r_renames_a_tag_everywhere_and_m_merges_it(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("v", "tab")  # the dataset's tags
        app.tags.move_to("blonde hair")
        await pilot.press("r")
        assert isinstance(app.screen, PromptScreen)
        await type_text(pilot, "yellow hair")
        await pilot.press("enter")
        assert app.ws.strategy.alias_of("blonde hair") == "yellow hair"
        # The tag list says what the captions will say.
        assert "blonde hair → yellow hair" in app.tags.row_text("blonde hair", 60).plain
        assert "yellow hair" in app.ws.caption_for("c.png")
        assert "blonde hair" not in app.ws.caption_for("c.png")
        app.tags.move_to("grin")
        await pilot.press("m")
        await type_text(pilot, "nowhere")
        await pilot.press("enter")  # not a tag of the dataset: nothing merged
        assert app.ws.strategy.alias_of("grin") == "grin"
        await pilot.press("m")
        await type_text(pilot, "smile")
        await pilot.press("enter")
        assert app.ws.strategy.alias_of("grin") == "smile"
        assert "grin" not in app.ws.caption_for("b.png")
        await filter_files(pilot, "smile")  # the query sees the merge
        assert sorted(app.files.rows) == ["a.png", "b.png", "c.png", "d.png"]
        await pilot.press("ctrl+z")
        assert app.ws.strategy.alias_of("grin") == "grin"
        await pilot.press("ctrl+z")
        assert app.ws.strategy.alias_of("blonde hair") == "blonde hair"
        await pilot.press("ctrl+y")
    with Workspace.open(dataset) as ws:
        assert ws.strategy.alias_of("blonde hair") == "yellow hair"
        assert ws.strategy.alias_of("grin") == "grin"
