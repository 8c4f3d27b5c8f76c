"""The lists' scrollbar (ListScrollBar) draws what Textual's ScrollBar draws, cell for cell
(mouse actions included), and repaints only the rows a scroll changes."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widget import Widget

from tui.app.widgets.scrollbar import ListScrollBar
from tui.app.widgets.virtual_list import VirtualList

KEYS = ["j", "G", "k", "g", "pagedown", *["j"] * 14, "pagedown", "pageup", "end", "home"]


class Names(VirtualList[str]):
    def row_text(self, row: str, width: int) -> Text:
        return Text(row)


class ListApp(App[None]):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.rows = [f"image {i:06d}" for i in range(rows)]

    def compose(self) -> ComposeResult:
        yield Names(id="names")

    def on_mount(self) -> None:
        names = self.query_one(Names)
        names.set_rows(self.rows)
        names.focus()


async def bar_after_each_key(rows: int) -> list[list[tuple]]:
    """The scrollbar's rows (every segment: text, style with its mouse action) after each key."""
    app = ListApp(rows)
    shown: list[list[tuple]] = []
    async with app.run_test(size=(30, 12)) as pilot:
        names = app.query_one(Names)
        await pilot.pause()
        for key in KEYS:
            await pilot.press(key)
            await pilot.pause()
            bar = names.vertical_scrollbar
            strips = bar.render_lines(Region(0, 0, *bar.size))
            shown.append([tuple(strip) for strip in strips])
    return shown


@pytest.mark.parametrize("rows", [60, 100_000])
async def test_the_list_scrollbar_draws_what_textuals_scrollbar_draws(monkeypatch, rows) -> None:
    ours = await bar_after_each_key(rows)
    monkeypatch.setattr(VirtualList, "vertical_scrollbar", Widget.vertical_scrollbar)
    textuals = await bar_after_each_key(rows)
    assert all(len(rows) == 12 for rows in ours)  # the bar's every row
    assert ours == textuals


async def test_a_scroll_repaints_only_the_scrollbar_rows_that_change() -> None:
    app = ListApp(100_000)  # the thumb is one cell: a row's scroll rarely moves it
    async with app.run_test(size=(30, 12)) as pilot:
        names = app.query_one(Names)
        await pilot.pause()
        bar = names.vertical_scrollbar
        assert isinstance(bar, ListScrollBar)
        drawn: list[int] = []
        real = bar.render_line

        def counted(y: int):
            drawn.append(y)
            return real(y)

        bar.render_line = counted  # type: ignore[method-assign]
        await pilot.press(*["j"] * 16)  # past the bottom row: the list scrolls by rows
        await pilot.pause()
        assert names.scroll_offset.y > 0
        assert drawn == []  # the bar looks the same: none of its rows repainted
        await pilot.press("G")
        await pilot.pause()
        # The thumb went to the bottom: every row's cell changed (the track above the thumb
        # scrolls up when clicked, the track below down), so each is repainted once.
        assert sorted(drawn) == list(range(bar.size.height))
