"""Found by trying the app as a new user: add-tag completion, dialogs that wrap, a help that
fits one 80×24 screen."""

from __future__ import annotations

from textual.widgets import Input, Label

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.app.screens.dialogs import ConfirmScreen, PromptScreen
from tui.app.screens.help import HelpScreen


async def test_add_completes_to_a_tag_the_image_lacks(make_dataset) -> None:
    root = make_dataset(
        {
            "a.png": None,
            "a.txt": "black hair, smile\n",
            "b.png": None,
            "b.txt": "black hair, blue eyes\n",
            "c.png": None,
            "c.txt": "black hair, blue eyes, blush\n",
        }
    )
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.image == "a.png"
        await pilot.press("a")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("b", "l")
        await pilot.pause()
        box = app.screen.query_one("#prompt-input", Input)
        # `black hair` is on 3 images but already on this one: the completion is `blue eyes`.
        assert box._suggestion == "blue eyes"
        await pilot.press("right", "enter")
        await pilot.pause()
        assert "blue eyes" in app.ws.image_tags("a.png")


async def test_add_says_when_the_typed_tag_is_already_there(make_dataset) -> None:
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("a", *"smile")
        await pilot.pause()
        note = app.screen.query_one("#prompt-note", Label)
        assert str(note.render()) == "smile is already on this image"
        await pilot.press("enter")
        await pilot.pause()
        assert app.ws.image_tags("a.png") == ("black hair", "smile")
        assert any("already on this image" in n.message for n in app._notifications)


async def test_the_quit_dialog_wraps_at_80x24(make_dataset) -> None:
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    app = CuratorApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "1")  # an edit: the captions are not saved
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        label = app.screen.query_one(".dialog-title", Label)
        dialog = app.screen.query_one(".dialog")
        # The whole question is drawn, on more than one line, inside the dialog.
        lines = [
            "".join(seg.text for seg in label.render_line(y)).rstrip()
            for y in range(label.size.height)
        ]
        assert " ".join(lines) == (
            "Captions are not saved (your edits are kept for next time). Quit anyway?"
        )
        assert label.size.height > 1
        assert dialog.region.right <= 80


async def test_the_help_fits_one_80x24_screen(sample_copy) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        scroll = app.screen.query_one("#help-scroll")
        text = app.screen.query_one("#help-text")
        assert text.size.height <= scroll.scrollable_content_region.height
        assert scroll.max_scroll_y == 0
        assert scroll.region.height <= 24 and scroll.region.width <= 80
        shown = str(text.render())
        for word in ("trait:", "context:", "absorb (removes", "f full screen"):
            assert word in shown


async def test_the_help_says_once_how_to_turn_on_what_is_off(sample_copy, monkeypatch) -> None:
    from tui.app import graphics

    # As `lora-curator DATASET` on a terminal without the graphics extra (auto).
    monkeypatch.setattr(graphics, "_current", graphics.choose("auto", False, True, {}, None))
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.caption.tokens = None  # no CLIP tokenizer here
        await pilot.press("question_mark")
        await pilot.pause()
        scroll = app.screen.query_one("#help-scroll")
        shown = str(app.screen.query_one("#help-text").render())
        assert "token counts and real pixels off: pip install 'lora-curator[tokens,graphics]'" in (
            shown
        )
        assert scroll.max_scroll_y == 0  # still one screen
